package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starling-live/starling/chat"
	"github.com/starling-live/starling/core/testrig"
)

// hookReceiver is a webhook receiver on 127.0.0.1 that checks each
// delivery's signature as README.md tells receivers to.
type hookReceiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	got    []hookEvent
}

type hookEvent struct {
	Type      string         `json:"type"`
	EventData map[string]any `json:"eventData"`
}

func newHookReceiver(t *testing.T) *hookReceiver {
	hr := &hookReceiver{t: t}
	hr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		hr.mu.Lock()
		defer hr.mu.Unlock()
		ts := r.Header.Get("X-Starling-Timestamp")
		mac := hmac.New(sha256.New, []byte(hr.secret))
		mac.Write([]byte(ts + "." + string(body)))
		if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); !hmac.Equal([]byte(r.Header.Get("X-Starling-Signature")), []byte(want)) {
			t.Errorf("a delivery's signature %q is not %q", r.Header.Get("X-Starling-Signature"), want)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev hookEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("a delivery is not JSON: %s", body)
		}
		hr.got = append(hr.got, ev)
	}))
	t.Cleanup(hr.srv.Close)
	return hr
}

func (hr *hookReceiver) setSecret(s string) {
	hr.mu.Lock()
	hr.secret = s
	hr.mu.Unlock()
}

// wait returns the first delivery of typ that match accepts.
func (hr *hookReceiver) wait(typ string, match func(map[string]any) bool) map[string]any {
	hr.t.Helper()
	var found map[string]any
	testrig.Eventually(hr.t, 30*time.Second, "a "+typ+" webhook", func() (bool, string) {
		hr.mu.Lock()
		defer hr.mu.Unlock()
		var types []string
		for _, ev := range hr.got {
			if ev.Type == typ && (match == nil || match(ev.EventData)) {
				found = ev.EventData
				return true, ""
			}
			types = append(types, ev.Type)
		}
		return false, strings.Join(types, ", ")
	})
	return found
}

func userName(d map[string]any) string {
	u, _ := d["user"].(map[string]any)
	name, _ := u["displayName"].(string)
	return name
}

// TestWebhooks creates a webhook through the admin API and follows every
// event type to the receiver: chat (with join messages on and off), the
// stream title, and a real ffmpeg publishing and stopping.
func TestWebhooks(t *testing.T) {
	hr := newHookReceiver(t)
	s := startServer(t, func(c *config) {
		c.WebhookNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})

	t.Run("admin only", func(t *testing.T) {
		for _, p := range []struct{ method, path string }{
			{http.MethodGet, "/api/admin/webhooks"},
			{http.MethodPost, "/api/admin/webhooks/create"},
			{http.MethodPost, "/api/admin/webhooks/delete"},
		} {
			req, _ := http.NewRequest(p.method, s.URL+p.path, strings.NewReader(`{"url":"http://example.com","events":["CHAT"],"id":1}`))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s without credentials: %d", p.method, p.path, resp.StatusCode)
			}
		}
	})

	t.Run("validation names the field", func(t *testing.T) {
		for _, tc := range []struct {
			body any
			path string
			want []string
		}{
			{map[string]any{"url": "ftp://example.com/", "events": []string{"CHAT"}}, "create", []string{"url", "http://"}},
			{map[string]any{"url": "http://10.0.0.1/hook", "events": []string{"CHAT"}}, "create", []string{"url", "private address"}},
			{map[string]any{"url": "https://example.com/", "events": []string{"CHAT", "NOT_AN_EVENT"}}, "create", []string{"events", "NOT_AN_EVENT"}},
			{map[string]any{"url": "https://example.com/"}, "create", []string{"events is empty"}},
			{map[string]any{}, "delete", []string{"id is missing"}},
		} {
			code, b := s.admin(http.MethodPost, "/api/admin/webhooks/"+tc.path, tc.body)
			if code != http.StatusBadRequest || !contains(string(b), tc.want...) || !strings.Contains(string(b), `"success":false`) {
				t.Errorf("%s %v: %d %s, want 400 saying %q", tc.path, tc.body, code, b, tc.want)
			}
		}
		if code, b := s.admin(http.MethodPost, "/api/admin/webhooks/delete", map[string]any{"id": 999}); code != http.StatusNotFound {
			t.Errorf("delete an unknown id: %d %s", code, b)
		}
	})

	var created struct {
		ID        int64    `json:"id"`
		URL       string   `json:"url"`
		Events    []string `json:"events"`
		Timestamp string   `json:"timestamp"`
		LastUsed  *string  `json:"lastUsed"`
		Secret    string   `json:"secret"`
	}
	code, b := s.admin(http.MethodPost, "/api/admin/webhooks/create", map[string]any{"url": hr.srv.URL + "/hook",
		"events": []string{"CHAT", "USER_JOINED", "USER_PARTED", "NAME_CHANGE", "VISIBILITY-UPDATE", "STREAM_STARTED", "STREAM_STOPPED", "STREAM_TITLE_UPDATED"}})
	if code != http.StatusOK || json.Unmarshal(b, &created) != nil || created.ID == 0 || created.Secret == "" || created.URL != hr.srv.URL+"/hook" || len(created.Events) != 8 || created.Timestamp == "" || created.LastUsed != nil {
		t.Fatalf("create: %d %s", code, b)
	}
	hr.setSecret(created.Secret)
	if strings.Contains(s.logs.String(), created.Secret) {
		t.Error("the secret is in the server log")
	}

	// Chat: join, say, rename, hide, leave.
	robin := s.registerChat("Robin")
	c := s.joinChat(robin)
	hr.wait("USER_JOINED", func(d map[string]any) bool { return userName(d) == "Robin" })
	c.say("hello *birds*")
	msg := c.waitFor("the message", isChat("birds"))
	got := hr.wait("CHAT", func(d map[string]any) bool { return d["id"] == msg.ID })
	if got["body"] != "<p>hello <em>birds</em></p>" || got["visible"] != true || userName(got) != "Robin" {
		t.Errorf("CHAT eventData: %v", got)
	}
	c.send(map[string]string{"type": chat.TypeNameChange, "newName": "Robin Redbreast"})
	got = hr.wait("NAME_CHANGE", nil)
	if got["newName"] != "Robin Redbreast" || got["oldName"] != "Robin" || userName(got) != "Robin Redbreast" {
		t.Errorf("NAME_CHANGE eventData: %v", got)
	}
	if code, b := s.admin(http.MethodPost, "/api/admin/chat/messagevisibility", map[string]any{"idArray": []string{msg.ID}, "visible": false}); code != http.StatusOK {
		t.Fatalf("hide: %d %s", code, b)
	}
	got = hr.wait("VISIBILITY-UPDATE", nil)
	if ids, _ := got["ids"].([]any); got["visible"] != false || len(ids) != 1 || ids[0] != msg.ID {
		t.Errorf("VISIBILITY-UPDATE eventData: %v", got)
	}
	c.ws.Close()
	hr.wait("USER_PARTED", func(d map[string]any) bool { return userName(d) == "Robin Redbreast" })

	// With join messages off, chat shows no joins, but webhooks still
	// hear of them, as in Owncast.
	if code, b := s.admin(http.MethodPost, "/api/admin/config/chat/joinmessagesenabled", map[string]any{"value": false}); code != http.StatusOK {
		t.Fatalf("join messages off: %d %s", code, b)
	}
	quiet := s.joinChat(s.registerChat("Wren"))
	hr.wait("USER_JOINED", func(d map[string]any) bool { return userName(d) == "Wren" })
	quiet.ws.Close()
	hr.wait("USER_PARTED", func(d map[string]any) bool { return userName(d) == "Wren" })

	// The title, then a broadcast.
	if code, b := s.admin(http.MethodPost, "/api/admin/config/streamtitle", map[string]any{"value": "Dawn chorus"}); code != http.StatusOK {
		t.Fatalf("title: %d %s", code, b)
	}
	hr.wait("STREAM_TITLE_UPDATED", func(d map[string]any) bool { return d["streamTitle"] == "Dawn chorus" })
	pub := publish(t, s.RTMPURL+"/"+testStreamKey)
	started := hr.wait("STREAM_STARTED", nil)
	if started["streamTitle"] != "Dawn chorus" || started["id"] == "" || started["name"] == nil || started["timestamp"] == nil {
		t.Errorf("STREAM_STARTED eventData: %v", started)
	}
	pub.stop()
	stopped := hr.wait("STREAM_STOPPED", nil)
	if stopped["id"] != started["id"] {
		t.Errorf("STREAM_STOPPED has id %v, STREAM_STARTED %v: the same broadcast", stopped["id"], started["id"])
	}

	// The list has what happened, and never the secret.
	code, b = s.admin(http.MethodGet, "/api/admin/webhooks", nil)
	var list []map[string]any
	if code != http.StatusOK || json.Unmarshal(b, &list) != nil || len(list) != 1 {
		t.Fatalf("list: %d %s", code, b)
	}
	for _, key := range []string{"id", "url", "events", "timestamp", "lastUsed", "lastError", "lastErrorAt"} {
		if _, ok := list[0][key]; !ok {
			t.Errorf("the list item has no %q: %s", key, b)
		}
	}
	if list[0]["lastUsed"] == nil || strings.Contains(string(b), created.Secret) || strings.Contains(string(b), "secret") {
		t.Errorf("list: %s", b)
	}
	if strings.Contains(s.logs.String(), created.Secret) {
		t.Error("the secret is in the server log")
	}

	code, b = s.admin(http.MethodPost, "/api/admin/webhooks/delete", map[string]any{"id": created.ID})
	if code != http.StatusOK || !strings.Contains(string(b), `"success":true`) {
		t.Fatalf("delete: %d %s", code, b)
	}
	if code, b := s.admin(http.MethodGet, "/api/admin/webhooks", nil); code != http.StatusOK || strings.TrimSpace(string(b)) != "[]" {
		t.Errorf("list after the delete: %d %s", code, b)
	}
}

// TestWebhooksAllowedNetworksFlag: private networks are refused unless
// named, by flag or environment, and a bad one is refused at start.
func TestWebhooksAllowedNetworksFlag(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	c, err := parseConfig(nil, none, io.Discard)
	if err != nil || len(c.WebhookNetworks) != 0 {
		t.Errorf("default: %v %v, want no network allowed", c.WebhookNetworks, err)
	}
	c, err = parseConfig([]string{"--webhook-allowed-networks", "192.168.1.0/24, 10.0.0.7"}, none, io.Discard)
	if err != nil || fmt.Sprint(c.WebhookNetworks) != "[192.168.1.0/24 10.0.0.7/32]" {
		t.Errorf("flag: %v %v", c.WebhookNetworks, err)
	}
	env := func(k string) (string, bool) { return "127.0.0.0/8", k == "STARLING_WEBHOOK_ALLOWED_NETWORKS" }
	if c, err = parseConfig(nil, env, io.Discard); err != nil || fmt.Sprint(c.WebhookNetworks) != "[127.0.0.0/8]" {
		t.Errorf("environment: %v %v", c.WebhookNetworks, err)
	}
	if _, err := parseConfig([]string{"--webhook-allowed-networks", "lan"}, none, io.Discard); err == nil || !strings.Contains(err.Error(), "--webhook-allowed-networks") {
		t.Errorf("a bad network: %v", err)
	}
}
