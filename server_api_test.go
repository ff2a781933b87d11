package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/testrig"
	"github.com/starling-live/starling/webserver"
)

// TestServerReadSide: what the admin reads of the server (logs, hardware,
// viewers, metrics) and what viewers read besides the stream (variants,
// emoji, public files).
func TestServerReadSide(t *testing.T) {
	s := startServer(t, func(c *config) { c.TrustedProxies, _ = webserver.ParseTrustedProxies("127.0.0.0/8") })

	t.Run("logs", func(t *testing.T) {
		var logs []struct{ Level, Message string }
		_, b := s.admin(http.MethodGet, "/api/admin/logs", nil)
		json.Unmarshal(b, &logs)
		found := false
		for _, l := range logs {
			found = found || strings.HasPrefix(l.Message, "starling started")
		}
		if !found {
			t.Errorf("the start is not in the logs: %s", b)
		}
		s.admin(http.MethodGet, "/api/admin/status", nil)
		httpGet(t, s.URL+"/api/admin/status", "admin", "wrong-password") // a warning
		testrig.Eventually(t, 5*time.Second, "the failed login among the warnings", func() (bool, string) {
			_, b := s.admin(http.MethodGet, "/api/admin/logs/warnings", nil)
			json.Unmarshal(b, &logs)
			for _, l := range logs {
				if l.Level != "WARN" && l.Level != "ERROR" {
					return false, "a " + l.Level + " line among the warnings"
				}
			}
			return bytes.Contains(b, []byte("admin login failed")), string(b)
		})
	})

	t.Run("no self-update, addresses from the command line", func(t *testing.T) {
		if code, b := s.admin(http.MethodGet, "/api/admin/update/options", nil); code != http.StatusOK || string(b) != `{"supportsUpdate":false,"canRestart":false}`+"\n" {
			t.Errorf("update/options: %d %s", code, b)
		}
		for _, p := range []string{"/api/admin/update/start", "/api/admin/update/forcequit"} {
			if code, b := s.admin(http.MethodPost, p, nil); code != http.StatusBadRequest || !bytes.Contains(b, []byte("install the new version")) {
				t.Errorf("%s: %d %s", p, code, b)
			}
		}
		for setting, flag := range map[string]string{"webserverport": "--http", "webserverip": "--http", "rtmpserverport": "--rtmp", "ffmpegpath": "--ffmpeg"} {
			code, b := s.admin(http.MethodPost, "/api/admin/config/"+setting, map[string]any{"value": 9000})
			if code != http.StatusBadRequest || !bytes.Contains(b, []byte("use "+flag)) {
				t.Errorf("%s: %d %s, want 400 naming %s", setting, code, b, flag)
			}
		}
		// The server still serves where it started.
		if code, _ := s.admin(http.MethodGet, "/api/admin/status", nil); code != http.StatusOK {
			t.Errorf("status after the refused settings: %d", code)
		}
	})

	t.Run("hardware", func(t *testing.T) {
		var hw struct{ CPU, Memory, Disk []struct{ Value float64 } }
		_, b := s.admin(http.MethodGet, "/api/admin/hardwarestats", nil)
		if err := json.Unmarshal(b, &hw); err != nil || len(hw.Memory) == 0 || len(hw.Disk) == 0 || hw.Memory[0].Value <= 0 {
			t.Errorf("hardwarestats: %s", b)
		}
	})

	t.Run("viewers and metrics", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/metrics/playback", strings.NewReader(`{"viewerId":"viewer-on-a-phone","httpBytes":10}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "PhoneBrowser/1.0")
		req.Header.Set("X-Forwarded-For", "198.51.100.23")
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("report: %v %v", resp, err)
		}
		if code, _ := s.get("/api/ping"); code != http.StatusOK {
			t.Errorf("ping: %d", code)
		}
		var viewers []core.Viewer
		_, b := s.admin(http.MethodGet, "/api/admin/viewers", nil)
		json.Unmarshal(b, &viewers)
		if len(viewers) != 2 || viewers[0].ID != "viewer-on-a-phone" || viewers[0].Address != "198.51.100.23" || viewers[0].UserAgent != "PhoneBrowser/1.0" {
			t.Errorf("viewers: %s", b)
		}
		if code, b := s.admin(http.MethodGet, "/api/admin/prometheus", nil); code != http.StatusOK || !bytes.Contains(b, []byte("starling_viewers 2")) {
			t.Errorf("prometheus: %d %.300s", code, b)
		}
	})

	t.Run("video variants", func(t *testing.T) {
		s.setVariants(testVariant)
		if _, b := s.get("/api/video/variants"); string(bytes.TrimSpace(b)) != `[{"index":0,"name":"180p"}]` {
			t.Errorf("variants: %s", b)
		}
	})

	t.Run("emoji", func(t *testing.T) {
		var buf bytes.Buffer
		png.Encode(&buf, image.NewGray(image.Rect(0, 0, 4, 4)))
		data := "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
		if code, b := s.admin(http.MethodPost, "/api/admin/emoji/upload", map[string]string{"name": "wave.png", "data": data}); code != http.StatusOK {
			t.Fatalf("upload: %d %s", code, b)
		}
		for _, bad := range []map[string]string{{"name": "../x.png", "data": data}, {"name": "x.svg", "data": data},
			{"name": "x.png", "data": "data:image/png;base64," + base64.StdEncoding.EncodeToString([]byte("<html>"))}} {
			if code, b := s.admin(http.MethodPost, "/api/admin/emoji/upload", bad); code != http.StatusBadRequest {
				t.Errorf("upload %s: %d %s", bad["name"], code, b)
			}
		}
		if _, b := s.get("/api/emoji"); string(bytes.TrimSpace(b)) != `[{"name":"wave","url":"/img/emoji/wave.png"}]` {
			t.Errorf("emoji: %s", b)
		}
		if code, b := s.get("/img/emoji/wave.png"); code != http.StatusOK || !bytes.Equal(b, buf.Bytes()) {
			t.Errorf("the emoji image: %d", code)
		}
		if code, b := s.admin(http.MethodPost, "/api/admin/emoji/delete", map[string]string{"name": "/img/emoji/wave.png"}); code != http.StatusOK {
			t.Errorf("delete: %d %s", code, b)
		}
		if _, b := s.get("/api/emoji"); string(bytes.TrimSpace(b)) != `[]` {
			t.Errorf("emoji after delete: %s", b)
		}
	})

	t.Run("public files", func(t *testing.T) {
		dir := filepath.Join(s.app.cfg.DataDir, "public")
		os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
		os.WriteFile(filepath.Join(dir, "schedule.txt"), []byte("Mondays"), 0o644)
		os.WriteFile(filepath.Join(s.app.cfg.DataDir, "secret.txt"), []byte("nope"), 0o644)
		os.Symlink(filepath.Join(s.app.cfg.DataDir, "starling.db"), filepath.Join(dir, "db"))
		resp, err := http.Get(s.URL + "/public/schedule.txt")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Security-Policy") != "sandbox" {
			t.Errorf("a public file: %d %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
		}
		for _, p := range []string{"/public/sub/", "/public/sub", "/public/../secret.txt", "/public/%2e%2e/secret.txt", "/public/db"} {
			if code, _ := s.get(p); code != http.StatusNotFound {
				t.Errorf("%s: %d, want 404", p, code)
			}
		}
	})

	t.Run("chat", func(t *testing.T) {
		// A trusted proxy that signs users in names them.
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/chat/register", nil)
		req.Header.Set("X-Forwarded-User", "Proxy Alice")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var reg registration
		json.NewDecoder(resp.Body).Decode(&reg)
		resp.Body.Close()
		if reg.DisplayName != "Proxy Alice" {
			t.Errorf("registered as %q, want the proxy's user", reg.DisplayName)
		}
		// Messages in the admin's list show their author's state now.
		c := s.joinChat(reg)
		c.say("before I was disabled")
		testrig.Eventually(t, 10*time.Second, "the message stored", func() (bool, string) {
			_, b := s.admin(http.MethodGet, "/api/admin/chat/messages", nil)
			return bytes.Contains(b, []byte("before I was disabled")), string(b)
		})
		s.admin(http.MethodPost, "/api/admin/chat/users/setenabled", map[string]any{"userId": reg.ID, "enabled": false})
		_, b := s.admin(http.MethodGet, "/api/admin/chat/messages", nil)
		if !bytes.Contains(b, []byte(`"disabledAt"`)) {
			t.Errorf("the admin's list does not show the author disabled: %s", b)
		}
		// A banned address cannot read the history either.
		s.admin(http.MethodPost, "/api/admin/chat/users/ipbans/create", map[string]any{"value": "198.51.100.99"})
		req, _ = http.NewRequest(http.MethodGet, s.URL+"/api/chat?accessToken="+s.registerChat("Bob").AccessToken, nil)
		req.Header.Set("X-Forwarded-For", "198.51.100.99")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("history for a banned address: %d, want 403", resp.StatusCode)
		}
	})
}

// TestForwardedUserNeedsATrustedProxy: a client's own X-Forwarded-User
// names nobody.
func TestForwardedUserNeedsATrustedProxy(t *testing.T) {
	s := startServer(t, func(c *config) { c.TrustedProxies = nil })
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/chat/register", nil)
	req.Header.Set("X-Forwarded-User", "admin-impostor")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reg registration
	json.NewDecoder(resp.Body).Decode(&reg)
	if reg.DisplayName == "admin-impostor" || reg.DisplayName == "" {
		t.Errorf("registered as %q from an untrusted client", reg.DisplayName)
	}
}
