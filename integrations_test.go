package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/starling-live/starling/chat"
	"github.com/starling-live/starling/core/testrig"
)

// The integrations API end to end: admin-created access tokens, bots
// posting over the real chat hub to real WebSocket clients, a real sqlite
// file behind them.

type accessToken struct {
	ID           string     `json:"id"`
	AccessToken  string     `json:"accessToken"`
	DisplayName  string     `json:"displayName"`
	DisplayColor int        `json:"displayColor"`
	Type         string     `json:"type"`
	Scopes       []string   `json:"scopes"`
	IsBot        bool       `json:"isBot"`
	LastUsedAt   *time.Time `json:"lastUsedAt"`
}

// createToken creates an access token through the admin API.
func (s *testServer) createToken(name string, scopes ...string) accessToken {
	s.t.Helper()
	code, b := s.admin(http.MethodPost, "/api/admin/accesstokens/create", map[string]any{"name": name, "scopes": scopes})
	var tok accessToken
	if code != http.StatusOK || json.Unmarshal(b, &tok) != nil || tok.AccessToken == "" || tok.ID == "" {
		s.t.Fatalf("create token %q: %d %s", name, code, b)
	}
	return tok
}

func (s *testServer) tokens() []accessToken {
	s.t.Helper()
	code, b := s.admin(http.MethodGet, "/api/admin/accesstokens", nil)
	var list []accessToken
	if code != http.StatusOK || json.Unmarshal(b, &list) != nil {
		s.t.Fatalf("list tokens: %d %s", code, b)
	}
	return list
}

// integration calls the integrations API with an Authorization header
// (none if empty) and a JSON body (none if nil).
func (s *testServer) integration(method, path, authorization string, body any) (int, http.Header, string) {
	s.t.Helper()
	var auth func(*http.Request)
	if authorization != "" {
		auth = func(r *http.Request) { r.Header.Set("Authorization", authorization) }
	}
	code, h, out := s.send(method, path, auth, body)
	return code, h, string(out)
}

func bearer(tok accessToken) string { return "Bearer " + tok.AccessToken }

// botEvent is a chat event as a WebSocket client reads it, with the bot
// marker chatUser leaves out.
type botEvent struct {
	Type    string   `json:"type"`
	ID      string   `json:"id"`
	Body    string   `json:"body"`
	IDs     []string `json:"ids"`
	Visible *bool    `json:"visible"`
	User    *struct {
		ID           string   `json:"id"`
		DisplayName  string   `json:"displayName"`
		DisplayColor int      `json:"displayColor"`
		IsBot        bool     `json:"isBot"`
		Scopes       []string `json:"scopes"`
	} `json:"user"`
}

type botWatcher struct {
	t      *testing.T
	events chan botEvent
}

// watchChat connects a chat user over a real WebSocket and waits for the
// welcome.
func (s *testServer) watchChat(r registration) *botWatcher {
	s.t.Helper()
	ws, resp, err := s.chatDial(r.AccessToken, nil)
	if err != nil {
		s.t.Fatalf("dial chat: %v (%v)", err, resp)
	}
	s.t.Cleanup(func() { ws.Close() })
	w := &botWatcher{t: s.t, events: make(chan botEvent, 10_000)}
	go func() {
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			for _, line := range bytes.Split(msg, []byte{'\n'}) {
				var ev botEvent
				if json.Unmarshal(line, &ev) == nil {
					w.events <- ev
				}
			}
		}
	}()
	w.waitFor("CONNECTED_USER_INFO", func(e botEvent) bool { return e.Type == chat.TypeConnectedUserInfo })
	return w
}

func (w *botWatcher) waitFor(what string, match func(botEvent) bool) botEvent {
	w.t.Helper()
	deadline := time.After(10 * time.Second)
	var seen []string
	for {
		select {
		case ev := <-w.events:
			if match(ev) {
				return ev
			}
			seen = append(seen, ev.Type+":"+ev.Body)
		case <-deadline:
			w.t.Fatalf("no %s within 10 s; saw %q", what, seen)
			return botEvent{}
		}
	}
}

func ofType(typ string) func(botEvent) bool {
	return func(e botEvent) bool { return e.Type == typ }
}

// integrationCall is one route of the integrations API with a body it
// accepts.
type integrationCall struct {
	method, path, scope string
	body                any
}

func TestIntegrationsAccessTokensAndAuth(t *testing.T) {
	s := startServer(t)
	viewer := s.registerChat("Alice")
	watcher := s.watchChat(viewer)

	sender := s.createToken("Relay Bot", chat.ScopeCanSendMessages)
	system := s.createToken("Announcer", chat.ScopeCanSendSystemMessages, chat.ScopeCanSendSystemMessages)
	admin := s.createToken("Mod Bot", chat.ScopeHasAdminAccess)
	idle := s.createToken("Idle Bot", chat.ScopeCanSendMessages)
	all := []accessToken{sender, system, admin, idle}
	if sender.Type != "API" || !sender.IsBot || len(sender.Scopes) != 1 || sender.Scopes[0] != chat.ScopeCanSendMessages || sender.LastUsedAt != nil {
		t.Errorf("created token: %+v", sender)
	}
	if len(system.Scopes) != 1 {
		t.Errorf("a scope given twice is held once: %v", system.Scopes)
	}

	// Creation refuses what cannot work, naming the field.
	for _, tc := range []struct {
		body any
		code int
		want string
	}{
		{map[string]any{"name": "", "scopes": []string{chat.ScopeCanSendMessages}}, http.StatusBadRequest, `"name"`},
		{map[string]any{"name": strings.Repeat("n", 31), "scopes": []string{chat.ScopeCanSendMessages}}, http.StatusBadRequest, `"name"`},
		{map[string]any{"name": "Bell\u0007Bot", "scopes": []string{chat.ScopeCanSendMessages}}, http.StatusBadRequest, `"name"`},
		{map[string]any{"name": "No Scope"}, http.StatusBadRequest, `"scopes"`},
		{map[string]any{"name": "Root Bot", "scopes": []string{"ROOT"}}, http.StatusBadRequest, `"ROOT"`},
		{map[string]any{"name": "relay bot", "scopes": []string{chat.ScopeCanSendMessages}}, http.StatusConflict, `"name"`},
		// A viewer's name: a bot cannot pass itself off as her.
		{map[string]any{"name": "Alice", "scopes": []string{chat.ScopeCanSendMessages}}, http.StatusConflict, `"name"`},
		{map[string]any{"name": 7}, http.StatusBadRequest, "name"},
	} {
		code, b := s.admin(http.MethodPost, "/api/admin/accesstokens/create", tc.body)
		if code != tc.code || !strings.Contains(apiMessage(string(b)), tc.want) || !strings.Contains(string(b), `"success":false`) {
			t.Errorf("create %v: %d %s, want %d naming %s", tc.body, code, b, tc.code, tc.want)
		}
	}

	// The list shows every token, never a token itself.
	_, raw := s.admin(http.MethodGet, "/api/admin/accesstokens", nil)
	for _, tok := range all {
		if strings.Contains(string(raw), tok.AccessToken) {
			t.Errorf("the list shows %s's token: %s", tok.DisplayName, raw)
		}
	}
	if strings.Contains(string(raw), "accessToken") {
		t.Errorf("the list has an accessToken field: %s", raw)
	}
	if list := s.tokens(); len(list) != 4 || list[0].ID != sender.ID || list[0].DisplayName != "Relay Bot" || !list[0].IsBot {
		t.Errorf("list: %+v", list)
	}

	// Every route: 401 without a token or with an unknown one, 403 with a
	// valid token that lacks the scope, served with the scope.
	var clientID uint64
	testrig.Eventually(t, 10*time.Second, "the viewer among the clients", func() (bool, string) {
		code, _, b := s.integration(http.MethodGet, "/api/integrations/clients", bearer(admin), nil)
		var clients []struct {
			ID   uint64 `json:"id"`
			User struct {
				ID string `json:"id"`
			} `json:"user"`
		}
		json.Unmarshal([]byte(b), &clients)
		for _, c := range clients {
			if c.User.ID == viewer.ID {
				clientID = c.ID
			}
		}
		return code == http.StatusOK && clientID != 0, fmt.Sprintf("%d %s", code, b)
	})
	calls := []integrationCall{
		{"POST", "/api/integrations/chat/send", chat.ScopeCanSendMessages, map[string]any{"body": "from the relay"}},
		{"POST", "/api/integrations/chat/user", chat.ScopeCanSendMessages, map[string]any{"body": "the old way", "user": "Someone Else"}},
		{"POST", "/api/integrations/chat/system", chat.ScopeCanSendSystemMessages, map[string]any{"body": "system notice"}},
		{"POST", fmt.Sprintf("/api/integrations/chat/system/client/%d", clientID), chat.ScopeCanSendSystemMessages, map[string]any{"body": "for you"}},
		{"POST", "/api/integrations/chat/action", chat.ScopeCanSendSystemMessages, map[string]any{"body": "did a thing"}},
		{"POST", "/api/integrations/chat/messagevisibility", chat.ScopeHasAdminAccess, map[string]any{"idArray": []string{"no-such-message"}, "visible": false}},
		{"POST", "/api/integrations/streamtitle", chat.ScopeHasAdminAccess, map[string]any{"value": "Set by a bot"}},
		{"GET", "/api/integrations/chat", chat.ScopeHasAdminAccess, nil},
		{"GET", "/api/integrations/clients", chat.ScopeHasAdminAccess, nil},
	}
	for _, c := range calls {
		for _, auth := range []string{"", "Bearer not-a-token", "Bearer ", "Basic " + basic("admin", testAdminPassword), sender.AccessToken} {
			if code, hdr, b := s.integration(c.method, c.path, auth, c.body); code != http.StatusUnauthorized || !strings.Contains(b, `"success":false`) || hdr.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s with Authorization %q: %d %s, want 401", c.method, c.path, auth, code, b)
			}
		}
		for _, tok := range []accessToken{sender, system, admin} {
			code, _, b := s.integration(c.method, c.path, bearer(tok), c.body)
			want := http.StatusForbidden
			if tok.Scopes[0] == c.scope {
				want = http.StatusOK
			}
			if code != want || (want == http.StatusForbidden && !strings.Contains(b, c.scope)) {
				t.Errorf("%s %s with %s's token (%v): %d %s, want %d", c.method, c.path, tok.DisplayName, tok.Scopes, code, b, want)
			}
		}
	}
	if ev := watcher.waitFor("the deprecated route's message", func(e botEvent) bool { return e.Type == chat.TypeChat && strings.Contains(e.Body, "the old way") }); ev.User == nil || ev.User.ID != sender.ID || !ev.User.IsBot {
		t.Errorf("/chat/user posted as %+v, want the bot", ev.User)
	}
	if st := s.status(); st.StreamTitle != "Set by a bot" {
		t.Errorf("stream title %q after the bot set it", st.StreamTitle)
	}
	if code, _, b := s.integration(http.MethodPost, "/api/integrations/chat/send", bearer(sender), map[string]any{"body": "x"}); code != http.StatusOK || !strings.Contains(b, `"success":true`) {
		t.Errorf("send: %d %s", code, b)
	}

	// An unknown path: 401 before 404.
	if code, _, _ := s.integration(http.MethodGet, "/api/integrations/nope", "", nil); code != http.StatusUnauthorized {
		t.Errorf("unknown integration path without a token: %d, want 401", code)
	}
	if code, _, b := s.integration(http.MethodGet, "/api/integrations/nope", bearer(admin), nil); code != http.StatusNotFound || !strings.Contains(b, `"success":false`) {
		t.Errorf("unknown integration path with a token: %d %s, want 404", code, b)
	}

	// The scheme is case-insensitive.
	for _, scheme := range []string{"bearer", "BEARER", "BeArEr"} {
		if code, _, b := s.integration(http.MethodGet, "/api/integrations/chat", scheme+" "+admin.AccessToken, nil); code != http.StatusOK {
			t.Errorf("scheme %q: %d %s", scheme, code, b)
		}
	}
	// Owncast bots often send no content type; fetch() sends text/plain.
	for _, ct := range []string{"", "text/plain;charset=UTF-8"} {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/integrations/chat/system", strings.NewReader(`{"body": "no content type"}`))
		req.Header.Set("Authorization", bearer(system))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("a body with content type %q: %d", ct, resp.StatusCode)
		}
	}
	watcher.waitFor("the system message sent without a content type", func(e botEvent) bool { return e.Type == chat.TypeSystem && strings.Contains(e.Body, "no content type") })

	// CORS: any origin may call, preflight first; the admin API never.
	req, _ := http.NewRequest(http.MethodOptions, s.URL+"/api/integrations/chat/send", nil)
	req.Header.Set("Origin", "https://overlay.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := resp.Header; resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	for _, auth := range []string{bearer(admin), ""} {
		if _, hdr, _ := s.integration(http.MethodGet, "/api/integrations/chat", auth, nil); hdr.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("integration answer with Authorization %q has no CORS header: %v", auth, hdr)
		}
	}
	for _, method := range []string{http.MethodOptions, http.MethodGet} {
		for _, path := range []string{"/api/admin/accesstokens", "/api/admin/status", "/api/admin/nope"} {
			req, _ := http.NewRequest(method, s.URL+path, nil)
			req.SetBasicAuth("admin", testAdminPassword)
			req.Header.Set("Origin", "https://overlay.example")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			for k := range resp.Header {
				if strings.HasPrefix(k, "Access-Control-") {
					t.Errorf("%s %s has %s: %v", method, path, k, resp.Header)
				}
			}
		}
	}

	// Last use is recorded; a token never used has none.
	testrig.Eventually(t, 10*time.Second, "the admin token's last use", func() (bool, string) {
		for _, tok := range s.tokens() {
			if tok.ID == admin.ID {
				return tok.LastUsedAt != nil && time.Since(*tok.LastUsedAt) < time.Minute, fmt.Sprintf("%+v", tok)
			}
		}
		return false, "no admin token"
	})
	for _, tok := range s.tokens() {
		if tok.ID == idle.ID && tok.LastUsedAt != nil {
			t.Errorf("a token never used has lastUsedAt %v", tok.LastUsedAt)
		}
	}

	// Deleting: by id (the list's) or by the token (Owncast's admin).
	if code, b := s.admin(http.MethodPost, "/api/admin/accesstokens/delete", map[string]any{"id": sender.ID}); code != http.StatusOK || !strings.Contains(string(b), `"success":true`) {
		t.Fatalf("delete by id: %d %s", code, b)
	}
	if code, b := s.admin(http.MethodPost, "/api/admin/accesstokens/delete", map[string]any{"token": system.AccessToken}); code != http.StatusOK {
		t.Fatalf("delete by token: %d %s", code, b)
	}
	for _, tc := range []struct {
		body any
		code int
		want string
	}{
		{map[string]any{"id": sender.ID}, http.StatusNotFound, "no access token"},
		{map[string]any{"token": "not-a-token"}, http.StatusNotFound, "no access token"},
		{map[string]any{}, http.StatusBadRequest, `"id"`},
		{map[string]any{"id": admin.ID, "token": idle.AccessToken}, http.StatusBadRequest, `"id"`},
	} {
		if code, b := s.admin(http.MethodPost, "/api/admin/accesstokens/delete", tc.body); code != tc.code || !strings.Contains(apiMessage(string(b)), tc.want) {
			t.Errorf("delete %v: %d %s, want %d naming %s", tc.body, code, b, tc.code, tc.want)
		}
	}
	for _, tok := range []accessToken{sender, system} {
		if code, _, b := s.integration(http.MethodPost, "/api/integrations/chat/send", bearer(tok), map[string]any{"body": "after deletion"}); code != http.StatusUnauthorized {
			t.Errorf("%s's deleted token: %d %s, want 401", tok.DisplayName, code, b)
		}
	}
	if list := s.tokens(); len(list) != 2 || list[0].ID != admin.ID || list[1].ID != idle.ID {
		t.Errorf("list after deleting two: %+v", list)
	}

	// The tokens never reach the log, whatever was refused.
	logs := s.logs.String()
	for _, tok := range all {
		if strings.Contains(logs, tok.AccessToken) {
			t.Errorf("%s's token is in the server log", tok.DisplayName)
		}
	}
	if !strings.Contains(logs, "integration request refused") {
		t.Error("refused integration requests are not logged")
	}
}

// apiMessage is the message of an API answer.
func apiMessage(body string) string {
	var m struct {
		Message string `json:"message"`
	}
	json.Unmarshal([]byte(body), &m)
	return m.Message
}

func basic(user, pass string) string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, pass)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

func TestIntegrationsBotsInChat(t *testing.T) {
	s := startServer(t)
	alice, bob := s.registerChat("Alice"), s.registerChat("Bob")
	a, b := s.watchChat(alice), s.watchChat(bob)
	relay := s.createToken("Relay Bot", chat.ScopeCanSendMessages)
	system := s.createToken("Announcer", chat.ScopeCanSendSystemMessages)
	mod := s.createToken("Mod Bot", chat.ScopeHasAdminAccess)

	// A bot's message is the bot's: its name, its colour, marked a bot,
	// rendered like anyone's, and in the history.
	if code, _, body := s.integration(http.MethodPost, "/api/integrations/chat/send", bearer(relay), map[string]any{"body": "hello **viewers** <script>alert(1)</script>"}); code != http.StatusOK {
		t.Fatalf("send: %d %s", code, body)
	}
	var msg botEvent
	for _, w := range []*botWatcher{a, b} {
		msg = w.waitFor("the bot's message", func(e botEvent) bool { return e.Type == chat.TypeChat && strings.Contains(e.Body, "viewers") })
		if u := msg.User; u == nil || u.ID != relay.ID || u.DisplayName != "Relay Bot" || u.DisplayColor != relay.DisplayColor || !u.IsBot || len(u.Scopes) != 0 {
			t.Errorf("the bot's message is from %+v, want Relay Bot (%s), a bot, no scopes shown", u, relay.ID)
		}
		if !strings.HasPrefix(msg.Body, "<p>hello <strong>viewers</strong>") || strings.Contains(msg.Body, "<script") {
			t.Errorf("body %q, want it rendered and sanitised", msg.Body)
		}
	}
	for _, source := range []string{"GET /api/chat", "GET /api/integrations/chat"} {
		var hist []botEvent
		if source == "GET /api/chat" {
			s.getJSON("/api/chat?accessToken="+url.QueryEscape(alice.AccessToken), &hist)
		} else {
			code, _, raw := s.integration(http.MethodGet, "/api/integrations/chat", bearer(mod), nil)
			if code != http.StatusOK || json.Unmarshal([]byte(raw), &hist) != nil {
				t.Fatalf("%s: %d %s", source, code, raw)
			}
		}
		if len(hist) != 1 || hist[0].ID != msg.ID || hist[0].User == nil || !hist[0].User.IsBot || hist[0].User.DisplayName != "Relay Bot" {
			t.Errorf("%s: %+v", source, hist)
		}
	}

	// A system message to one client reaches that client alone: Bob's
	// next system message is the one sent to everyone after it.
	var aliceClient uint64
	code, _, raw := s.integration(http.MethodGet, "/api/integrations/clients", bearer(mod), nil)
	var clients []struct {
		ID   uint64 `json:"id"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(raw), &clients) != nil || len(clients) != 2 {
		t.Fatalf("clients: %d %s", code, raw)
	}
	for _, c := range clients {
		if c.User.ID == alice.ID {
			aliceClient = c.ID
		}
	}
	if code, _, body := s.integration(http.MethodPost, fmt.Sprintf("/api/integrations/chat/system/client/%d", aliceClient), bearer(system), map[string]any{"body": "just for *you*"}); code != http.StatusOK {
		t.Fatalf("system message to a client: %d %s", code, body)
	}
	if code, _, body := s.integration(http.MethodPost, "/api/integrations/chat/system", bearer(system), map[string]any{"body": "for everyone"}); code != http.StatusOK {
		t.Fatalf("system message: %d %s", code, body)
	}
	if ev := a.waitFor("the private system message", ofType(chat.TypeSystem)); ev.Body != "<p>just for <em>you</em></p>" {
		t.Errorf("Alice's first system message: %q", ev.Body)
	}
	if ev := b.waitFor("the public system message", ofType(chat.TypeSystem)); !strings.Contains(ev.Body, "for everyone") {
		t.Errorf("Bob's first system message is %q: he got Alice's", ev.Body)
	}
	a.waitFor("the public system message", func(e botEvent) bool { return e.Type == chat.TypeSystem && strings.Contains(e.Body, "for everyone") })
	for _, tc := range []struct {
		client string
		code   int
	}{{"12345", http.StatusNotFound}, {"abc", http.StatusBadRequest}, {"0", http.StatusBadRequest}, {"-1", http.StatusBadRequest}} {
		if code, _, body := s.integration(http.MethodPost, "/api/integrations/chat/system/client/"+tc.client, bearer(system), map[string]any{"body": "x"}); code != tc.code {
			t.Errorf("system message to client %s: %d %s, want %d", tc.client, code, body, tc.code)
		}
	}

	// An action, its author in bold and taken literally.
	if code, _, body := s.integration(http.MethodPost, "/api/integrations/chat/action", bearer(system), map[string]any{"body": "followed the stream", "author": "*Carol*"}); code != http.StatusOK {
		t.Fatalf("action: %d %s", code, body)
	}
	if ev := b.waitFor("the action", ofType(chat.TypeChatAction)); ev.Body != "<p><strong>*Carol*</strong> followed the stream</p>" {
		t.Errorf("action body %q", ev.Body)
	}

	// A bot with admin access hides the bot's message for everyone.
	if code, _, body := s.integration(http.MethodPost, "/api/integrations/chat/messagevisibility", bearer(mod), map[string]any{"idArray": []string{msg.ID}, "visible": false}); code != http.StatusOK {
		t.Fatalf("hide: %d %s", code, body)
	}
	if ev := a.waitFor("VISIBILITY-UPDATE", ofType(chat.TypeVisibilityUpdate)); len(ev.IDs) != 1 || ev.IDs[0] != msg.ID || ev.Visible == nil || *ev.Visible {
		t.Errorf("VISIBILITY-UPDATE %+v", ev)
	}

	// Bad bodies are refused, naming the field.
	for _, tc := range []struct {
		path  string
		tok   accessToken
		body  any
		want  string
		wantC int
	}{
		{path: "/api/integrations/chat/send", tok: relay, body: map[string]any{}, want: `"body"`},
		{path: "/api/integrations/chat/send", tok: relay, body: map[string]any{"text": "hi"}, want: `"body"`},
		{path: "/api/integrations/chat/send", tok: relay, body: map[string]any{"body": "   "}, want: `"body"`},
		{path: "/api/integrations/chat/send", tok: relay, body: map[string]any{"body": 5}, want: "body"},
		{path: "/api/integrations/chat/send", tok: relay, body: map[string]any{"body": strings.Repeat("a", 501)}, want: `"body"`},
		{path: "/api/integrations/chat/send", tok: relay, body: map[string]any{"body": "<b></b>"}, want: `"body"`},
		{path: "/api/integrations/chat/send", tok: relay, body: rawBody{"application/json", "{not json"}, want: "JSON"},
		{path: "/api/integrations/chat/system", tok: system, body: map[string]any{"body": strings.Repeat("s", 2001)}, want: `"body"`},
		{path: "/api/integrations/chat/action", tok: system, body: map[string]any{"body": "x", "author": strings.Repeat("n", 31)}, want: `"author"`},
		{path: "/api/integrations/chat/action", tok: system, body: map[string]any{"author": "Carol"}, want: `"body"`},
		{path: "/api/integrations/streamtitle", tok: mod, body: map[string]any{"title": "x"}, want: `"value"`},
		{path: "/api/integrations/streamtitle", tok: mod, body: map[string]any{"value": 5}, want: `"value"`},
		{path: "/api/integrations/streamtitle", tok: mod, body: map[string]any{"value": strings.Repeat("t", 201)}, want: `"value"`},
		{path: "/api/integrations/chat/messagevisibility", tok: mod, body: map[string]any{"visible": false}, want: "idArray"},
		{path: "/api/integrations/chat/send", tok: relay, body: rawBody{"application/x-www-form-urlencoded", `{"body":"x"}`}, want: "Content-Type", wantC: http.StatusUnsupportedMediaType},
	} {
		code, _, body := s.integration(http.MethodPost, tc.path, bearer(tc.tok), tc.body)
		want := tc.wantC
		if want == 0 {
			want = http.StatusBadRequest
		}
		if code != want || !strings.Contains(apiMessage(body), tc.want) || !strings.Contains(body, `"success":false`) {
			t.Errorf("POST %s %v: %d %s, want %d naming %s", tc.path, tc.body, code, body, want, tc.want)
		}
	}

	// A bot's token is no chat login.
	if code, body := s.get("/api/chat?accessToken=" + url.QueryEscape(relay.AccessToken)); code != http.StatusUnauthorized {
		t.Errorf("GET /api/chat with a bot's token: %d %s", code, body)
	}
	ws, _, err := s.chatDial(relay.AccessToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, first, _ := ws.ReadMessage()
	ws.Close()
	if !strings.Contains(string(first), chat.TypeNeedsRegistration) {
		t.Errorf("/ws with a bot's token: %s", first)
	}

	// While chat is off, bots are refused as viewers are; the server's
	// own messages still go out.
	if code, body := s.admin(http.MethodPost, "/api/admin/config/chat/disable", map[string]any{"value": true}); code != http.StatusOK {
		t.Fatalf("disable chat: %d %s", code, body)
	}
	if code, _, body := s.integration(http.MethodPost, "/api/integrations/chat/send", bearer(relay), map[string]any{"body": "while off"}); code != http.StatusConflict || !strings.Contains(body, "off") {
		t.Errorf("a bot's message while chat is off: %d %s, want 409", code, body)
	}
	if code, _, body := s.integration(http.MethodPost, "/api/integrations/chat/system", bearer(system), map[string]any{"body": "while off"}); code != http.StatusOK {
		t.Errorf("a system message while chat is off: %d %s", code, body)
	}
	if code, body := s.admin(http.MethodPost, "/api/admin/config/chat/disable", map[string]any{"value": false}); code != http.StatusOK {
		t.Fatalf("enable chat: %d %s", code, body)
	}

	// A bot a moderator disabled is refused, its messages hidden.
	if code, body := s.admin(http.MethodPost, "/api/admin/chat/users/setenabled", map[string]any{"userId": relay.ID, "enabled": false}); code != http.StatusOK {
		t.Fatalf("disable the bot: %d %s", code, body)
	}
	if code, _, body := s.integration(http.MethodPost, "/api/integrations/chat/send", bearer(relay), map[string]any{"body": "disabled"}); code != http.StatusForbidden || !strings.Contains(body, "disabled") {
		t.Errorf("a disabled bot's message: %d %s, want 403", code, body)
	}
	if logs := s.logs.String(); strings.Contains(logs, relay.AccessToken) || strings.Contains(logs, system.AccessToken) || strings.Contains(logs, mod.AccessToken) {
		t.Error("a token is in the server log")
	}
}
