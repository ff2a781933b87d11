package activitypub

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/starling-live/starling/core"
)

func fetch(t *testing.T, rawURL, accept string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", rawURL, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestWebFinger: the account is found by acct:USER@HOST and by its URL; a
// missing or malformed resource is a 400, another user or host a 404.
func TestWebFinger(t *testing.T) {
	r := newRig(t)
	host := strings.TrimPrefix(r.srv.URL, "http://")
	for _, tc := range []struct {
		resource string
		want     int
	}{
		{"", 400},
		{"streamer", 400},
		{"acct:streamer", 400},
		{"acct:a@b@c", 400},
		{"acct:someone@" + host, 404},
		{"acct:streamer@elsewhere.example", 404},
		{"acct:streamer@" + host, 200},
		{"acct:STREAMER@" + host, 200},
		{r.actor(), 200},
	} {
		resp, b := fetch(t, r.srv.URL+"/.well-known/webfinger?resource="+url.QueryEscape(tc.resource), "")
		if resp.StatusCode != tc.want {
			t.Errorf("resource %q: %d %s, want %d", tc.resource, resp.StatusCode, b, tc.want)
			continue
		}
		if tc.want != 200 {
			continue
		}
		var j jrd
		json.Unmarshal(b, &j)
		if j.Subject != "acct:streamer@"+host || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/jrd+json") {
			t.Errorf("resource %q: %s (%s)", tc.resource, b, resp.Header.Get("Content-Type"))
		}
		var self bool
		for _, l := range j.Links {
			self = self || (l.Rel == "self" && l.Type == activityJSON && l.Href == r.actor())
		}
		if !self {
			t.Errorf("no self link to the actor: %s", b)
		}
	}
	resp, b := fetch(t, r.srv.URL+"/.well-known/host-meta", "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), r.srv.URL+"/.well-known/webfinger?resource={uri}") {
		t.Errorf("host-meta: %d %s", resp.StatusCode, b)
	}
}

// TestFederationIsOffUntilEnabledWithAServerURL: nothing is served before
// the admin turns it on, and it cannot be turned on without a server URL.
func TestFederationIsOffUntilEnabledWithAServerURL(t *testing.T) {
	r := newRig(t, withSettings(func(s *core.Settings) { s.Federation.Enabled = false }))
	host := strings.TrimPrefix(r.srv.URL, "http://")
	for _, p := range []string{"/.well-known/webfinger?resource=acct:streamer@" + host, "/federation/user/streamer", "/.well-known/nodeinfo", "/api/v1/instance"} {
		if resp, _ := fetch(t, r.srv.URL+p, activityJSON); resp.StatusCode != 404 {
			t.Errorf("%s while off: %d, want 404", p, resp.StatusCode)
		}
	}
	_, err := r.settings.Update(context.Background(), func(s *core.Settings) error {
		s.ServerURL, s.Federation.Enabled = "", true
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "server URL") {
		t.Errorf("enabling without a server URL: %v", err)
	}
}

// TestActorDocument: the actor is a Service with everything Mastodon
// reads, served as activity+json; a browser is sent to the viewer page.
func TestActorDocument(t *testing.T) {
	r := newRig(t, withSettings(func(s *core.Settings) {
		s.Summary = "Synths & <code>"
		s.SocialHandles = []core.SocialHandle{{Platform: "github", URL: "https://github.com/example"}}
	}))
	resp, b := fetch(t, r.actor(), ldJSON)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != activityJSON {
		t.Fatalf("actor: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var doc struct {
		Context   []any  `json:"@context"`
		ID        string `json:"id"`
		Type      string `json:"type"`
		Username  string `json:"preferredUsername"`
		Name      string `json:"name"`
		Summary   string `json:"summary"`
		Inbox     string `json:"inbox"`
		Outbox    string `json:"outbox"`
		Followers string `json:"followers"`
		Following string `json:"following"`
		Endpoints struct {
			SharedInbox string `json:"sharedInbox"`
		} `json:"endpoints"`
		Manual    *bool `json:"manuallyApprovesFollowers"`
		Icon      any   `json:"icon"`
		Image     any   `json:"image"`
		PublicKey struct {
			ID, Owner, PublicKeyPem string
		} `json:"publicKey"`
		Attachment []map[string]any `json:"attachment"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if doc.ID != r.actor() || doc.Type != "Service" || doc.Username != "streamer" || doc.Name != "Rig Stream" ||
		doc.Inbox != r.inbox() || doc.Outbox != r.actor()+"/outbox" || doc.Followers != r.actor()+"/followers" ||
		doc.Following != r.actor()+"/following" || doc.Endpoints.SharedInbox != r.srv.URL+"/federation/inbox" ||
		doc.Manual == nil || *doc.Manual || doc.PublicKey.ID != r.actor()+"#main-key" || doc.PublicKey.Owner != r.actor() {
		t.Errorf("actor document: %s", b)
	}
	if doc.Summary != "<p>Synths &amp; &lt;code&gt;</p>" {
		t.Errorf("summary %q: want the text escaped", doc.Summary)
	}
	if imageURL(doc.Icon) != r.srv.URL+"/logo" || imageURL(doc.Image) == "" {
		t.Errorf("icon %v image %v", doc.Icon, doc.Image)
	}
	if _, err := parsePublicKey(doc.PublicKey.PublicKeyPem); err != nil {
		t.Errorf("public key: %v", err)
	}
	if strings.Contains(string(b), "PRIVATE") {
		t.Error("the actor document holds a private key")
	}
	if len(doc.Attachment) != 1 || doc.Attachment[0]["type"] != "PropertyValue" || !strings.Contains(doc.Attachment[0]["value"].(string), "https://github.com/example") {
		t.Errorf("profile links %v", doc.Attachment)
	}
	resp, _ = fetch(t, r.actor(), "text/html,application/xhtml+xml")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != r.srv.URL+"/" {
		t.Errorf("a browser: %d to %q, want the viewer page", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The key is the same after a restart.
	r.queue.Close()
	r.start()
	_, again := fetch(t, r.actor(), activityJSON)
	var doc2 struct {
		PublicKey struct{ PublicKeyPem string } `json:"publicKey"`
	}
	json.Unmarshal(again, &doc2)
	if doc2.PublicKey.PublicKeyPem != doc.PublicKey.PublicKeyPem {
		t.Error("the key changed across a restart")
	}
}

// TestNodeInfo: NodeInfo 2.0 as its schema has it (every required field,
// of its type and pattern), found from /.well-known/nodeinfo; the other
// discovery documents say who we are.
func TestNodeInfo(t *testing.T) {
	r := newRig(t)
	resp, b := fetch(t, r.srv.URL+"/.well-known/nodeinfo", "")
	var links struct {
		Links []jrdLink `json:"links"`
	}
	if json.Unmarshal(b, &links); resp.StatusCode != 200 || len(links.Links) != 1 || links.Links[0].Rel != nodeinfoSchema {
		t.Fatalf("nodeinfo links: %d %s", resp.StatusCode, b)
	}
	resp, b = fetch(t, links.Links[0].Href, "")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), nodeinfoSchema) {
		t.Fatalf("nodeinfo: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var ni map[string]any
	if err := json.Unmarshal(b, &ni); err != nil {
		t.Fatal(err)
	}
	// The schema's rules (nodeinfo.diaspora.software/ns/schema/2.0).
	sw, _ := ni["software"].(map[string]any)
	name, _ := sw["name"].(string)
	_, version := sw["version"].(string)
	services, _ := ni["services"].(map[string]any)
	_, in := services["inbound"].([]any)
	_, out := services["outbound"].([]any)
	_, open := ni["openRegistrations"].(bool)
	usage, _ := ni["usage"].(map[string]any)
	users, _ := usage["users"].(map[string]any)
	_, meta := ni["metadata"].(map[string]any)
	protocols, _ := ni["protocols"].([]any)
	known := map[any]bool{"activitypub": true, "buddycloud": true, "dfrn": true, "diaspora": true, "libertree": true, "ostatus": true, "pumpio": true, "tent": true, "xmpp": true, "zot": true}
	if ni["version"] != "2.0" || !regexp.MustCompile(`^[a-z0-9-]+$`).MatchString(name) || !version ||
		!in || !out || !open || users == nil || !meta || len(protocols) < 1 || !known[protocols[0]] {
		t.Errorf("nodeinfo does not follow its schema: %s", b)
	}
	for _, k := range []string{"total", "activeHalfyear", "activeMonth"} {
		if n, ok := users[k].(float64); !ok || n < 0 {
			t.Errorf("usage.users.%s = %v", k, users[k])
		}
	}
	for k := range ni {
		if !map[string]bool{"version": true, "software": true, "protocols": true, "services": true, "openRegistrations": true, "usage": true, "metadata": true}[k] {
			t.Errorf("nodeinfo has %q, which its schema does not allow", k)
		}
	}
	_, b = fetch(t, r.srv.URL+"/.well-known/x-nodeinfo2", "")
	if !strings.Contains(string(b), `"baseUrl":"`+r.srv.URL+`"`) {
		t.Errorf("x-nodeinfo2: %s", b)
	}
	_, b = fetch(t, r.srv.URL+"/api/v1/instance", "")
	if !strings.Contains(string(b), `"uri":"`+strings.TrimPrefix(r.srv.URL, "http://")+`"`) {
		t.Errorf("instance: %s", b)
	}
}

// TestStatusWarnsOfPlainHTTP: a public server URL without TLS keeps
// Mastodon away, and the admin is told what to do; a loopback one is a
// test's and fine.
func TestStatusWarnsOfPlainHTTP(t *testing.T) {
	r := newRig(t)
	if st := r.fed.Status(context.Background()); !st.Enabled || len(st.Warnings) != 0 || !strings.HasPrefix(st.Handle, "@streamer@127.0.0.1:") {
		t.Errorf("on loopback: %+v", st)
	}
	r.settings.Update(context.Background(), func(s *core.Settings) error { s.ServerURL = "http://live.example.com"; return nil })
	st := r.fed.Status(context.Background())
	if len(st.Warnings) != 1 || !contains(st.Warnings[0], "not https", "reverse proxy") {
		t.Errorf("on plain http: %+v", st)
	}
}
