package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/starling-live/starling/chat"
)

// chatEvent is what tests read of the server's events.
type chatEvent struct {
	Type    string    `json:"type"`
	ID      string    `json:"id"`
	Body    string    `json:"body"`
	User    *chatUser `json:"user"`
	OldName string    `json:"oldName"`
	IDs     []string  `json:"ids"`
	Visible *bool     `json:"visible"`
	Error   string    `json:"error"`
	Enabled *bool     `json:"enabled"`
	Reason  string    `json:"reason"`
}

type chatUser struct {
	ID           string   `json:"id"`
	DisplayName  string   `json:"displayName"`
	DisplayColor int      `json:"displayColor"`
	Scopes       []string `json:"scopes"`
}

type registration struct {
	ID          string `json:"id"`
	AccessToken string `json:"accessToken"`
	DisplayName string `json:"displayName"`
}

// registerChat registers a chat user through the API.
func (s *testServer) registerChat(name string) registration {
	s.t.Helper()
	body, _ := json.Marshal(map[string]string{"displayName": name})
	resp, err := http.Post(s.URL+"/api/chat/register", "application/json", bytes.NewReader(body))
	if err != nil {
		s.t.Fatalf("register: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r registration
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &r) != nil || r.AccessToken == "" {
		s.t.Fatalf("register: %d %s", resp.StatusCode, b)
	}
	return r
}

// userPost calls a chat user's API with their token.
func (s *testServer) userPost(path, token string, body any) (int, []byte) {
	s.t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(s.URL+path+"?accessToken="+url.QueryEscape(token), "application/json", bytes.NewReader(b))
	if err != nil {
		s.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// chatHistory reads GET /api/chat.
func (s *testServer) chatHistory(token string) []chatEvent {
	s.t.Helper()
	var h []chatEvent
	s.getJSON("/api/chat?accessToken="+url.QueryEscape(token), &h)
	return h
}

// chatConn is a real WebSocket chat client.
type chatConn struct {
	t      *testing.T
	ws     *websocket.Conn
	events chan chatEvent
	// closed closes when the server ends the connection; err is then why.
	closed chan struct{}
	err    error
}

func (s *testServer) chatDial(token string, header http.Header) (*websocket.Conn, *http.Response, error) {
	if header == nil {
		header = http.Header{"Origin": {s.URL}}
	}
	u := "ws" + strings.TrimPrefix(s.URL, "http") + "/ws?accessToken=" + url.QueryEscape(token)
	return websocket.DefaultDialer.Dial(u, header)
}

// joinChat connects a user and waits for the welcome.
func (s *testServer) joinChat(r registration) *chatConn {
	s.t.Helper()
	ws, resp, err := s.chatDial(r.AccessToken, nil)
	if err != nil {
		s.t.Fatalf("dial chat: %v (%v)", err, resp)
	}
	c := &chatConn{t: s.t, ws: ws, events: make(chan chatEvent, 100_000), closed: make(chan struct{})}
	go func() {
		defer close(c.closed)
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				c.err = err
				return
			}
			for _, line := range bytes.Split(msg, []byte{'\n'}) {
				var ev chatEvent
				if err := json.Unmarshal(line, &ev); err != nil {
					s.t.Errorf("server sent a line that is not JSON: %q", line)
					continue
				}
				c.events <- ev
			}
		}
	}()
	s.t.Cleanup(func() { ws.Close() })
	info := c.waitFor("CONNECTED_USER_INFO", func(e chatEvent) bool { return e.Type == chat.TypeConnectedUserInfo })
	if info.User == nil || info.User.ID != r.ID {
		s.t.Fatalf("CONNECTED_USER_INFO names %+v, want user %s", info.User, r.ID)
	}
	return c
}

func (c *chatConn) send(v any) {
	c.t.Helper()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *chatConn) say(body string) {
	c.t.Helper()
	c.send(map[string]string{"type": chat.TypeChat, "body": body})
}

// waitFor reads events until one matches, failing after 10 s.
func (c *chatConn) waitFor(what string, match func(chatEvent) bool) chatEvent {
	c.t.Helper()
	deadline := time.After(10 * time.Second)
	var seen []string
	for {
		select {
		case ev := <-c.events:
			if match(ev) {
				return ev
			}
			seen = append(seen, ev.Type+":"+ev.Body+ev.Error)
		case <-deadline:
			c.t.Fatalf("no %s within 10 s; saw %q", what, seen)
		}
	}
}

// waitClosed waits for the server to close the connection, and returns
// the error reading it.
func (c *chatConn) waitClosed() error {
	c.t.Helper()
	select {
	case <-c.closed:
		return c.err
	case <-time.After(10 * time.Second):
		c.t.Fatal("the server did not close the connection within 10 s")
		return nil
	}
}

func isChat(body string) func(chatEvent) bool {
	return func(e chatEvent) bool { return e.Type == chat.TypeChat && strings.Contains(e.Body, body) }
}

func isError(code string) func(chatEvent) bool {
	return func(e chatEvent) bool { return e.Type == chat.TypeChatAction && e.Error == code }
}

func TestChatSendReceiveAndHistory(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, func(c *config) { c.DataDir = dir })
	alice, bob := s.registerChat("Alice"), s.registerChat("")
	if alice.DisplayName != "Alice" || bob.DisplayName == "" {
		t.Fatalf("names: %q, %q", alice.DisplayName, bob.DisplayName)
	}
	a, b := s.joinChat(alice), s.joinChat(bob)
	a.say("hello **world**")
	for _, c := range []*chatConn{a, b} {
		ev := c.waitFor("alice's message", isChat("hello"))
		if ev.Body != "<p>hello <strong>world</strong></p>" || ev.User.DisplayName != "Alice" || ev.Visible == nil || !*ev.Visible {
			t.Errorf("got %+v (user %+v)", ev, ev.User)
		}
	}

	// A latecomer gets the history on join, and over the API; the others
	// see them arrive.
	carol := s.joinChat(s.registerChat("Carol"))
	carol.waitFor("history", isChat("hello"))
	a.waitFor("USER_JOINED", func(e chatEvent) bool { return e.Type == chat.TypeUserJoined && e.User.DisplayName == "Carol" })
	if h := s.chatHistory(bob.AccessToken); len(h) != 1 || h[0].Body != "<p>hello <strong>world</strong></p>" {
		t.Errorf("GET /api/chat: %+v", h)
	}
	if code, body := s.get("/api/chat"); code != http.StatusUnauthorized || !strings.Contains(string(body), "register") {
		t.Errorf("GET /api/chat without a token: %d %s", code, body)
	}

	// The history is in the database: it survives a restart.
	if err := s.shutdown(); err != nil {
		t.Fatal(err)
	}
	s2 := startServer(t, func(c *config) { c.DataDir = dir })
	if h := s2.chatHistory(bob.AccessToken); len(h) != 1 || h[0].Body != "<p>hello <strong>world</strong></p>" {
		t.Errorf("GET /api/chat after a restart: %+v", h)
	}
	late := s2.joinChat(s2.registerChat(""))
	late.waitFor("history after a restart", isChat("hello"))
}

func TestChatNameAndColour(t *testing.T) {
	s := startServer(t)
	alice, bob := s.registerChat("Alice"), s.registerChat("Bob")
	a, b := s.joinChat(alice), s.joinChat(bob)

	a.send(map[string]string{"type": chat.TypeNameChange, "newName": "  Alicia "})
	ev := b.waitFor("NAME_CHANGE", func(e chatEvent) bool { return e.Type == chat.TypeNameChange })
	if ev.OldName != "Alice" || ev.User.DisplayName != "Alicia" || ev.User.ID != alice.ID {
		t.Errorf("NAME_CHANGE %+v user %+v", ev, ev.User)
	}
	a.say("renamed")
	if ev := b.waitFor("message under the new name", isChat("renamed")); ev.User.DisplayName != "Alicia" {
		t.Errorf("message from %q", ev.User.DisplayName)
	}

	for _, tc := range []struct{ name, code string }{
		{"bob", chat.ErrCodeNameTaken}, // Bob's, whatever the case
		{"ADMIN", chat.ErrCodeNameForbidden},
		{strings.Repeat("x", 31), chat.ErrCodeNameInvalid},
		{"bad\u0007name", chat.ErrCodeNameInvalid},
	} {
		a.send(map[string]string{"type": chat.TypeNameChange, "newName": tc.name})
		a.waitFor(tc.code+" for "+tc.name, isError(tc.code))
	}
	// A taken name asked for at registration is replaced, not refused.
	if r := s.registerChat("BOB"); strings.EqualFold(r.DisplayName, "bob") {
		t.Errorf("registered a second %q", r.DisplayName)
	}

	a.send(map[string]any{"type": chat.TypeColorChange, "newColor": 6})
	if ev := b.waitFor("COLOR_CHANGE", func(e chatEvent) bool { return e.Type == chat.TypeColorChange }); ev.User.DisplayColor != 6 {
		t.Errorf("colour %d", ev.User.DisplayColor)
	}
	a.send(map[string]any{"type": chat.TypeColorChange, "newColor": 9})
	a.waitFor("COLOR_INVALID", isError(chat.ErrCodeColorInvalid))
}

func TestChatModeration(t *testing.T) {
	s := startServer(t)
	mod, troll, other := s.registerChat("Mod"), s.registerChat("Troll"), s.registerChat("Other")
	if code, body := s.admin("POST", "/api/admin/chat/users/setmoderator", map[string]any{"userId": mod.ID, "isModerator": true}); code != http.StatusOK {
		t.Fatalf("setmoderator: %d %s", code, body)
	}
	m, tr, o := s.joinChat(mod), s.joinChat(troll), s.joinChat(other)
	if ev := m.waitFor("moderator scope", func(e chatEvent) bool { return e.User != nil && e.User.ID == mod.ID }); len(ev.User.Scopes) == 0 {
		// The welcome came first: the scope was set before joining.
		t.Errorf("moderator has scopes %v", ev.User.Scopes)
	}

	tr.say("first nasty")
	first := o.waitFor("troll's message", isChat("first nasty"))
	tr.say("second nasty")
	second := o.waitFor("troll's second message", isChat("second nasty"))

	// Only moderators hide.
	if code, _ := s.userPost("/api/chat/messagevisibility", troll.AccessToken, map[string]any{"idArray": []string{first.ID}, "visible": false}); code != http.StatusForbidden {
		t.Errorf("a non-moderator hid a message: %d", code)
	}
	if code, body := s.userPost("/api/chat/messagevisibility", mod.AccessToken, map[string]any{"idArray": []string{first.ID}, "visible": false}); code != http.StatusOK {
		t.Fatalf("hide: %d %s", code, body)
	}
	for _, c := range []*chatConn{m, tr, o} {
		ev := c.waitFor("VISIBILITY-UPDATE", func(e chatEvent) bool { return e.Type == chat.TypeVisibilityUpdate })
		if len(ev.IDs) != 1 || ev.IDs[0] != first.ID || ev.Visible == nil || *ev.Visible {
			t.Errorf("VISIBILITY-UPDATE %+v", ev)
		}
	}
	if h := s.chatHistory(other.AccessToken); len(h) != 1 || h[0].ID != second.ID {
		t.Errorf("history after hiding: %+v", h)
	}
	_, all := s.admin("GET", "/api/admin/chat/messages", nil)
	var msgs []chatEvent
	json.Unmarshal(all, &msgs)
	hidden := false
	for _, e := range msgs {
		if e.ID == first.ID {
			hidden = e.Visible != nil && !*e.Visible
		}
	}
	if !hidden {
		t.Errorf("admin messages do not show the hidden one as hidden: %s", all)
	}

	// Disabling cuts the user off and hides all they said.
	if code, body := s.userPost("/api/chat/users/setenabled", mod.AccessToken, map[string]any{"userId": troll.ID, "enabled": false}); code != http.StatusOK {
		t.Fatalf("disable: %d %s", code, body)
	}
	tr.waitFor("ERROR_USER_DISABLED", func(e chatEvent) bool { return e.Type == chat.TypeUserDisabled })
	tr.waitClosed()
	ev := o.waitFor("their messages hidden", func(e chatEvent) bool {
		return e.Type == chat.TypeVisibilityUpdate && strings.Contains(strings.Join(e.IDs, ","), second.ID)
	})
	if *ev.Visible {
		t.Errorf("disabling showed messages: %+v", ev)
	}
	// They cannot come back with the same token.
	ws, _, err := s.chatDial(troll.AccessToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, msg, _ := ws.ReadMessage()
	ws.Close()
	if !strings.Contains(string(msg), chat.TypeUserDisabled) {
		t.Errorf("a disabled user reconnecting got %s", msg)
	}
	var disabled []chatUser
	_, list := s.admin("GET", "/api/admin/chat/users/disabled", nil)
	json.Unmarshal(list, &disabled)
	if len(disabled) != 1 || disabled[0].ID != troll.ID {
		t.Errorf("disabled users: %s", list)
	}
	// Nothing of theirs in anyone's history.
	if h := s.chatHistory(other.AccessToken); len(h) != 0 {
		t.Errorf("history after disabling: %+v", h)
	}
}

func TestChatLimits(t *testing.T) {
	s := startServer(t)
	flooder, watcher := s.registerChat("Flooder"), s.registerChat("Watcher")
	f, w := s.joinChat(flooder), s.joinChat(watcher)

	// Bad input is answered, and the connection stays.
	f.ws.WriteMessage(websocket.TextMessage, []byte("{not json"))
	f.waitFor("BAD_MESSAGE for bad JSON", isError(chat.ErrCodeBadMessage))
	f.send(map[string]string{"type": "SHOUT", "body": "x"})
	f.waitFor("BAD_MESSAGE for an unknown type", isError(chat.ErrCodeBadMessage))
	f.say(strings.Repeat("a", 501))
	f.waitFor("MESSAGE_TOO_LONG", isError(chat.ErrCodeTooLong))
	f.say("   ")
	f.waitFor("EMPTY_MESSAGE", isError(chat.ErrCodeEmpty))
	f.say("still here")
	w.waitFor("a message after the bad ones", isChat("still here"))
	// Control characters and text-reversing overrides are taken out.
	f.say("file_\u202egnp.exe\x1b[2J\x00")
	w.waitFor("the body without controls", isChat("file_gnp.exe[2J"))

	// A flooder is slowed, then cut off.
	for i := range 40 {
		f.say(fmt.Sprintf("flood %d", i))
	}
	f.waitFor("RATE_LIMITED", isError(chat.ErrCodeRateLimited))
	f.waitFor("FLOODING", isError(chat.ErrCodeFlooding))
	f.waitClosed()
	// The watcher got the burst the limiter allows, not the flood.
	got := 0
	for drained := false; !drained; {
		select {
		case ev := <-w.events:
			if isChat("flood")(ev) {
				got++
			}
		case <-time.After(500 * time.Millisecond):
			drained = true
		}
	}
	if got == 0 || got > 8 {
		t.Errorf("the watcher received %d flood messages, want the burst (about 5)", got)
	}

	// A frame over 8 KiB closes the connection as "message too big".
	big := s.joinChat(s.registerChat(""))
	big.say(strings.Repeat("b", 9<<10))
	if err := big.waitClosed(); !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Errorf("a huge frame closed the connection with %v, want close code 1009", err)
	}
}

func TestChatConnectionChecks(t *testing.T) {
	s := startServer(t)
	r := s.registerChat("")

	// Another site's page may not connect as the viewer.
	_, resp, err := s.chatDial(r.AccessToken, http.Header{"Origin": {"https://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign origin: err %v, response %v", err, resp)
	}
	// No token: told to register.
	ws, _, err := s.chatDial("not-a-token", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, msg, _ := ws.ReadMessage()
	ws.Close()
	if !strings.Contains(string(msg), chat.TypeNeedsRegistration) {
		t.Errorf("unknown token got %s", msg)
	}

	// Chat off: clients learn at once and cannot send.
	c := s.joinChat(r)
	s.admin("POST", "/api/admin/config/chat/disable", map[string]any{"value": true})
	if ev := c.waitFor("CHAT_STATUS off", func(e chatEvent) bool { return e.Type == chat.TypeChatStatus && !*e.Enabled }); ev.Reason == "" {
		t.Error("no reason given for chat being off")
	}
	c.say("anyone?")
	c.waitFor("CHAT_OFF", isError(chat.ErrCodeChatOff))
	s.admin("POST", "/api/admin/config/chat/disable", map[string]any{"value": false})
	c.waitFor("CHAT_STATUS on", func(e chatEvent) bool { return e.Type == chat.TypeChatStatus && *e.Enabled })
	// Live only, while offline: closed.
	s.admin("POST", "/api/admin/config/chat/liveonly", map[string]any{"value": true})
	if ev := c.waitFor("CHAT_STATUS live only", func(e chatEvent) bool { return e.Type == chat.TypeChatStatus && !*e.Enabled }); !strings.Contains(ev.Reason, "live") {
		t.Errorf("reason %q", ev.Reason)
	}
	s.admin("POST", "/api/admin/config/chat/liveonly", map[string]any{"value": false})

	// An IP ban closes the address's connections and keeps it out.
	if code, body := s.admin("POST", "/api/admin/chat/users/ipbans/create", map[string]any{"value": "127.0.0.1"}); code != http.StatusOK {
		t.Fatalf("ban: %d %s", code, body)
	}
	c.waitClosed()
	if _, resp, err := s.chatDial(r.AccessToken, nil); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("a banned address connected: %v %v", err, resp)
	}
	if resp, err := http.Post(s.URL+"/api/chat/register", "application/json", nil); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("a banned address registered: %v %v", err, resp)
	}
	if code, body := s.admin("POST", "/api/admin/chat/users/ipbans/create", map[string]any{"value": "not an ip"}); code != http.StatusBadRequest || !strings.Contains(string(body), "IP address") {
		t.Errorf("banning garbage: %d %s", code, body)
	}
	s.admin("POST", "/api/admin/chat/users/ipbans/remove", map[string]any{"value": "127.0.0.1"})
	s.joinChat(r)
}

func TestChatSlowClientDropped(t *testing.T) {
	s := startServer(t, func(c *config) {
		c.Chat = chat.Config{SendQueue: 4, WriteTimeout: time.Second, MaxMessageChars: 16 << 10, ReadLimit: 64 << 10}
	})
	mod := s.registerChat("Mod")
	s.admin("POST", "/api/admin/chat/users/setmoderator", map[string]any{"userId": mod.ID, "isModerator": true})
	sender, fast := s.joinChat(mod), s.joinChat(s.registerChat("Fast"))
	// The slow client connects and never reads again. A small receive
	// buffer makes the socket fill soon.
	d := websocket.Dialer{NetDialContext: (&net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}).DialContext}
	slow, _, err := d.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/ws?accessToken="+s.registerChat("Slow").AccessToken, http.Header{"Origin": {s.URL}})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()

	// Moderators are not rate limited: 16 KiB messages fill the slow
	// client's socket buffers, then its queue.
	const n = 400
	body := strings.Repeat("z", 16<<10-10)
	for i := range n {
		sender.say(fmt.Sprintf("%d %s", i, body))
	}
	var st struct {
		Chat chat.Stats `json:"chat"`
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, b := s.admin("GET", "/api/admin/status", nil)
		json.Unmarshal(b, &st)
		if st.Chat.Dropped >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slow client was never dropped: %+v", st.Chat)
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
	// The others got every message, in order.
	for i := range n {
		fast.waitFor(fmt.Sprintf("message %d", i), func(e chatEvent) bool {
			return e.Type == chat.TypeChat && strings.HasPrefix(e.Body, fmt.Sprintf("<p>%d ", i))
		})
	}
	sender.say("after")
	fast.waitFor("a message after the drop", isChat("after"))
}
