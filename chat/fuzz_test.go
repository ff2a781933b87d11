package chat_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/starling-live/starling/chat"
	"github.com/starling-live/starling/chat/format"
	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/data"
)

const (
	// maxFuzzFrames bounds the frames one input sends.
	maxFuzzFrames = 16
	// hang is how long the harness waits for the hub before calling it
	// stuck; everything here takes milliseconds.
	hang = 10 * time.Second
	// sentinelType is a type no seed sends: the hub's refusal of it marks
	// the end of what the fuzzed frames caused.
	sentinelType = "FUZZ_SENTINEL_7f3a"
)

var knownTypes = []string{
	chat.TypeChat, chat.TypeNameChange, chat.TypeColorChange, chat.TypeUserJoined, chat.TypeUserParted,
	chat.TypeVisibilityUpdate, chat.TypeSystem, chat.TypeChatAction, chat.TypeConnectedUserInfo,
	chat.TypeStreamStarted, chat.TypeStreamStopped, chat.TypeNeedsRegistration, chat.TypeUserDisabled,
	chat.TypeMaxConnections, chat.TypePing, chat.TypePong, chat.TypeChatStatus,
}

var knownCodes = []string{
	chat.ErrCodeBadMessage, chat.ErrCodeTooLong, chat.ErrCodeEmpty, chat.ErrCodeRateLimited, chat.ErrCodeFlooding,
	chat.ErrCodeChatOff, chat.ErrCodeNameTaken, chat.ErrCodeNameForbidden, chat.ErrCodeNameInvalid,
	chat.ErrCodeColorInvalid, chat.ErrCodeInternalFailed,
}

// FuzzChatFrames sends a client's frames to a real Hub over /ws. The
// input is split at '\n' into frames; failures picks store calls that
// fail (1 renames, 2 colour changes, 4 saving messages). An observer,
// another user, is connected throughout.
//
// The store is an in-memory fake, not sqlite: fuzzing instruments every
// package in the binary, and modernc.org/sqlite's instrumented code made
// about one exec in two seconds, each reporting new coverage (its own
// timing-dependent paths) that the fuzzer then spent its minimizing time
// on. Settings are the defaults.
//
// It checks that every event either client gets is one Owncast clients
// read (a known type, an id, a reason on a refusal), that the observer
// sees from the fuzzed user only what it asked for, no more CHAT events
// than it sent CHAT frames, that every message the hub counts reached the
// observer, that the hub still delivers the observer's own message
// afterwards, and that Close leaves no connection and no goroutine.
func FuzzChatFrames(f *testing.F) {
	ctx := context.Background()
	defaults := core.DefaultSettings()
	settings := fakeSettings{get: func() *core.Settings { return &defaults }}

	msg := func(v map[string]any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	seeds := [][]string{
		{msg(map[string]any{"type": "CHAT", "body": "hello **world** :smile:"})},
		{msg(map[string]any{"type": "CHAT", "body": "see https://example.com/a?b=1 and [docs](https://example.com/docs)"})},
		{msg(map[string]any{"type": "CHAT", "body": "<script>window.__xss=1</script>"}), msg(map[string]any{"type": "CHAT", "body": "  "})},
		{msg(map[string]any{"type": "CHAT", "body": strings.Repeat("x", 501)})},
		{msg(map[string]any{"type": "NAME_CHANGE", "newName": "Fuzzy Otter"}), msg(map[string]any{"type": "NAME_CHANGE", "newName": ""})},
		{msg(map[string]any{"type": "NAME_CHANGE", "newName": "bell\a"}), msg(map[string]any{"type": "NAME_CHANGE", "newName": strings.Repeat("n", 40)})},
		{msg(map[string]any{"type": "COLOR_CHANGE", "newColor": 3}), msg(map[string]any{"type": "COLOR_CHANGE", "newColor": 8}), `{"type":"COLOR_CHANGE"}`},
		{`{"type":"PING"}`, `{"type":"PONG"}`, `{"type":"SYSTEM","body":"I am the server"}`, `{"type":"hello"}`},
		{`not json`, `{}`, `[1]`, `{"type":3}`, `{"type":"CHAT","body":7}`},
		{strings.Repeat(msg(map[string]any{"type": "CHAT", "body": "spam"})+"\n", maxFuzzFrames)},
		{msg(map[string]any{"type": "CHAT", "body": "invoice_\u202egnp.exe \x00\x1b[31m"})},
	}
	for _, s := range seeds {
		f.Add([]byte(strings.Join(s, "\n")), uint8(0))
	}
	f.Add([]byte(strings.Join(seeds[0], "\n")+"\n"+strings.Join(seeds[4], "\n")+"\n"+strings.Join(seeds[6], "\n")), uint8(7))

	f.Fuzz(func(t *testing.T, in []byte, failures uint8) {
		before := goleak.IgnoreCurrent()
		// A store of its own for each input: what one input leaves in
		// the history must not change what the next one covers.
		store := newMemStore(failures)
		h := startFuzzHub(t, store, settings)
		obsReg, err := h.hub.Register(ctx, "Observer", "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		fuzzReg, err := h.hub.Register(ctx, "Fuzzer", "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		obs := h.dial(t, obsReg.AccessToken)
		events := obs.readAll()

		sent := parseFrames(in)
		fz := h.dial(t, fuzzReg.AccessToken)
		for _, fr := range sent.frames {
			if fz.ws.WriteMessage(websocket.TextMessage, fr) != nil {
				break // closed by the hub; the observer below says whether it still serves
			}
		}
		if fz.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"`+sentinelType+`"}`)) == nil {
			fz.ws.SetReadDeadline(time.Now().Add(hang))
		read:
			for {
				_, frame, err := fz.ws.ReadMessage()
				if err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						t.Fatalf("the hub did not answer within %s", hang)
					}
					break // closed: flooding, or a frame over the read limit
				}
				for _, ev := range checkFrame(t, frame) {
					if ev.Type == chat.TypeChatAction && strings.Contains(ev.Body, sentinelType) {
						break read
					}
				}
			}
		}

		// The hub still serves: the observer's own message comes back,
		// after everything the fuzzed frames caused.
		if err := obs.ws.WriteJSON(map[string]string{"type": chat.TypeChat, "body": "observer check"}); err != nil {
			t.Fatalf("the observer cannot send: %v", err)
		}
		var chats, renames, recolors int
		deadline := time.After(hang)
	observe:
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("the hub closed the observer: %v", obs.err)
				}
				if ev.User == nil || !slices.Contains([]string{chat.TypeChat, chat.TypeNameChange, chat.TypeColorChange}, ev.Type) {
					continue
				}
				switch ev.User.ID {
				case obsReg.User.ID:
					if ev.Type == chat.TypeChat && ev.Body == "<p>observer check</p>" {
						break observe
					}
					t.Fatalf("the observer got a %s it did not ask for: %+v", ev.Type, ev)
				case fuzzReg.User.ID:
				default:
					t.Fatalf("the observer got a %s from a user not in this chat: %+v", ev.Type, ev)
				}
				switch ev.Type {
				case chat.TypeChat:
					chats++
				case chat.TypeNameChange:
					renames++
				case chat.TypeColorChange:
					recolors++
				}
			case <-deadline:
				t.Fatalf("the observer's message did not come back within %s of the fuzzed frames", hang)
			}
		}
		if chats > sent.count[chat.TypeChat] || renames > sent.count[chat.TypeNameChange] || recolors > sent.count[chat.TypeColorChange] {
			t.Fatalf("the observer saw %d chats, %d renames, %d recolours from %d, %d and %d frames asking for them",
				chats, renames, recolors, sent.count[chat.TypeChat], sent.count[chat.TypeNameChange], sent.count[chat.TypeColorChange])
		}
		if st := h.hub.Stats(); st.Messages != uint64(chats)+1 || st.Clients < 1 || st.Clients > 2 || st.Users < 1 || st.Users > 2 {
			t.Fatalf("stats %+v, but the observer saw %d messages and 1 or 2 users are connected", st, chats+1)
		}
		hist, err := h.hub.History(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var past []chat.Event
		if err := json.Unmarshal(hist, &past); err != nil {
			t.Fatalf("History is not a JSON array of events (%v): %s", err, hist)
		}
		if len(past) == 0 || past[len(past)-1].Body != "<p>observer check</p>" {
			t.Fatalf("History does not end with the observer's message: %s", hist)
		}

		fz.ws.Close()
		obs.ws.Close()
		h.close(t)
		<-obs.done
		if st := h.hub.Stats(); st.Clients != 0 {
			t.Fatalf("after Close the hub counts %+v", st)
		}
		goleak.VerifyNone(t, before)
	})
}

type fuzzHub struct {
	hub       *chat.Hub
	srv       *httptest.Server
	url       string
	closeOnce sync.Once
}

func startFuzzHub(t *testing.T, store *memStore, settings fakeSettings) *fuzzHub {
	t.Helper()
	hub := chat.New(chat.Deps{
		Logger:   slog.New(slog.DiscardHandler),
		Store:    store,
		Settings: settings,
		Stream:   fakeStream{status: func() core.Status { return core.Status{Online: true} }},
		Render:   format.Message,
		ClientIP: func(r *http.Request) string {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			return host
		},
		// Broadcasts go out at once: batching only adds waiting here.
		Config: chat.Config{BatchInterval: time.Microsecond},
	})
	if err := hub.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hub)
	h := &fuzzHub{hub: hub, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"}
	// For an iteration that fails before it closes the hub itself.
	t.Cleanup(func() { h.close(t) })
	return h
}

func (h *fuzzHub) close(t *testing.T) {
	t.Helper()
	h.closeOnce.Do(func() {
		if err := h.hub.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		h.srv.Close()
	})
}

// fuzzConn is a chat client. If readAll runs, done closes when the
// socket has, and err is then why.
type fuzzConn struct {
	t    *testing.T
	ws   *websocket.Conn
	done chan struct{}
	err  error
}

func (h *fuzzHub) dial(t *testing.T, token string) *fuzzConn {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(h.url+"?accessToken="+token, nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { ws.Close() })
	c := &fuzzConn{t: t, ws: ws, done: make(chan struct{})}
	ws.SetReadDeadline(time.Now().Add(hang))
	_, frame, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("no welcome: %v", err)
	}
	ws.SetReadDeadline(time.Time{})
	if evs := checkFrame(t, frame); len(evs) == 0 || evs[0].Type != chat.TypeConnectedUserInfo {
		t.Fatalf("the welcome does not start with %s: %s", chat.TypeConnectedUserInfo, frame)
	}
	return c
}

// readAll reads events on their own goroutine until the socket closes,
// checking each; the events channel then closes.
func (c *fuzzConn) readAll() <-chan chat.Event {
	events := make(chan chat.Event, 4096)
	// On a failure, the reader must be done before the test is.
	c.t.Cleanup(func() {
		c.ws.Close()
		<-c.done
	})
	go func() {
		defer close(c.done)
		defer close(events)
		for {
			_, frame, err := c.ws.ReadMessage()
			if err != nil {
				c.err = err
				return
			}
			for _, ev := range checkFrame(c.t, frame) {
				events <- ev
			}
		}
	}()
	return events
}

// checkFrame checks every event of a frame (events are separated by
// newlines) and returns them.
func checkFrame(t *testing.T, frame []byte) []chat.Event {
	var evs []chat.Event
	for line := range bytes.SplitSeq(frame, []byte{'\n'}) {
		var ev chat.Event
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Errorf("the hub sent a line that is not an event (%v): %q", err, line)
			continue
		}
		if p := eventProblem(ev); p != "" {
			t.Errorf("%s: %s", p, line)
		}
		evs = append(evs, ev)
	}
	return evs
}

func eventProblem(ev chat.Event) string {
	if !slices.Contains(knownTypes, ev.Type) {
		return "an event of a type no client knows"
	}
	if ev.ID == "" || ev.Timestamp.IsZero() {
		return "an event without id or timestamp"
	}
	switch ev.Type {
	case chat.TypeChatAction:
		if !slices.Contains(knownCodes, ev.Error) || ev.Body == "" {
			return "a refusal without a known code and a reason"
		}
	case chat.TypeChat:
		if ev.User == nil || ev.Body == "" || ev.Visible == nil || !*ev.Visible {
			return "a chat message without sender, body or visibility"
		}
	case chat.TypeNameChange:
		if ev.User == nil || ev.User.DisplayName == "" || utf8.RuneCountInString(ev.User.DisplayName) > core.MaxChatNameLength || ev.OldName == "" {
			return "a name change without a valid new name and the old one"
		}
	case chat.TypeColorChange:
		if ev.User == nil || ev.User.DisplayColor < 0 || ev.User.DisplayColor > 7 {
			return "a colour change without a colour of 0 to 7"
		}
	case chat.TypeConnectedUserInfo:
		if ev.User == nil || ev.User.ID == "" {
			return "user info without a user"
		}
	}
	return ""
}

// sentFrames is what the fuzzed client sent.
type sentFrames struct {
	frames [][]byte
	// count is how many frames of each type parse as a request.
	count map[string]int
}

func parseFrames(in []byte) sentFrames {
	s := sentFrames{count: map[string]int{}}
	for fr := range bytes.SplitSeq(in, []byte{'\n'}) {
		if len(s.frames) == maxFuzzFrames {
			break
		}
		s.frames = append(s.frames, fr)
		// The fields the hub reads, with the types it reads them as.
		var req struct {
			Type     string `json:"type"`
			Body     string `json:"body"`
			NewName  string `json:"newName"`
			NewColor *int   `json:"newColor"`
		}
		if json.Unmarshal(fr, &req) == nil {
			s.count[req.Type]++
		}
	}
	return s
}

type fakeStream struct{ status func() core.Status }

func (s fakeStream) Status() core.Status { return s.status() }

type fakeSettings struct{ get func() *core.Settings }

func (s fakeSettings) Get() *core.Settings { return s.get() }

// errInjected is what a failing store call returns.
var errInjected = errors.New("injected store failure")

// memStore is the chat part of data.Store in memory, with the same
// errors, and store calls that fail on demand.
type memStore struct {
	// mu guards the fields below.
	mu       sync.Mutex
	users    map[string]data.ChatUser // by id
	tokens   map[string]string        // token hash -> id
	messages []data.ChatMessage       // oldest first
	bans     map[string]data.IPBan
	failures uint8
}

// newMemStore returns a store with a short history, as a server that
// has chatted before has.
func newMemStore(failures uint8) *memStore {
	s := &memStore{users: map[string]data.ChatUser{}, tokens: map[string]string{}, bans: map[string]data.IPBan{}, failures: failures}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, body := range []string{"<p>earlier</p>", "<p>hidden <strong>one</strong></p>"} {
		ev, _ := json.Marshal(chat.Event{Type: chat.TypeChat, ID: fmt.Sprintf("HISTORY%09d", i), Timestamp: at,
			User: &chat.User{ID: "EARLIERUSER00000", DisplayName: "Earlier", PreviousNames: []string{"Earlier"}}, Body: body, Visible: &[]bool{true}[0]})
		m := data.ChatMessage{ID: fmt.Sprintf("HISTORY%09d", i), UserID: "EARLIERUSER00000", Event: ev, At: at}
		if i == 1 {
			m.HiddenAt = &at
		}
		s.messages = append(s.messages, m)
	}
	return s
}

// nameTakenLocked is sqlite's unique index on display_name COLLATE NOCASE.
func (s *memStore) nameTakenLocked(name, except string) bool {
	for id, u := range s.users {
		if id != except && strings.EqualFold(u.DisplayName, name) {
			return true
		}
	}
	return false
}

func (s *memStore) CreateChatUser(_ context.Context, u data.ChatUser, tokenHash string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nameTakenLocked(u.DisplayName, "") {
		return data.ErrNameTaken
	}
	u.PreviousNames = slices.Clone(u.PreviousNames)
	s.users[u.ID] = u
	s.tokens[tokenHash] = u.ID
	return nil
}

func (s *memStore) ChatUserByToken(ctx context.Context, tokenHash string) (data.ChatUser, error) {
	s.mu.Lock()
	id, ok := s.tokens[tokenHash]
	s.mu.Unlock()
	if !ok {
		return data.ChatUser{}, data.ErrNotFound
	}
	return s.ChatUser(ctx, id)
}

func (s *memStore) ChatUser(_ context.Context, id string) (data.ChatUser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return data.ChatUser{}, data.ErrNotFound
	}
	u.PreviousNames, u.Scopes = slices.Clone(u.PreviousNames), slices.Clone(u.Scopes)
	return u, nil
}

func (s *memStore) usersWhere(keep func(data.ChatUser) bool) []data.ChatUser {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []data.ChatUser
	for _, u := range s.users {
		if keep(u) {
			out = append(out, u)
		}
	}
	return out
}

func (s *memStore) DisabledChatUsers(context.Context) ([]data.ChatUser, error) {
	return s.usersWhere(func(u data.ChatUser) bool { return u.DisabledAt != nil }), nil
}

func (s *memStore) ChatUsersWithScope(_ context.Context, scope string) ([]data.ChatUser, error) {
	return s.usersWhere(func(u data.ChatUser) bool { return slices.Contains(u.Scopes, scope) }), nil
}

func (s *memStore) RenameChatUser(_ context.Context, id, name string, at time.Time) (data.ChatUser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures&1 != 0 {
		return data.ChatUser{}, errInjected
	}
	u, ok := s.users[id]
	if !ok {
		return u, data.ErrNotFound
	}
	if s.nameTakenLocked(name, id) {
		return u, data.ErrNameTaken
	}
	u.PreviousNames = append(slices.Clone(u.PreviousNames), name)
	u.DisplayName, u.NameChangedAt = name, &at
	s.users[id] = u
	return u, nil
}

func (s *memStore) update(id string, fail bool, change func(*data.ChatUser)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fail {
		return errInjected
	}
	u, ok := s.users[id]
	if !ok {
		return data.ErrNotFound
	}
	change(&u)
	s.users[id] = u
	return nil
}

func (s *memStore) SetChatUserColor(_ context.Context, id string, color int) error {
	return s.update(id, s.failing(2), func(u *data.ChatUser) { u.DisplayColor = color })
}

func (s *memStore) SetChatUserDisabled(_ context.Context, id string, at *time.Time) error {
	return s.update(id, false, func(u *data.ChatUser) { u.DisabledAt = at })
}

func (s *memStore) SetChatUserScopes(_ context.Context, id string, scopes []string) error {
	return s.update(id, false, func(u *data.ChatUser) { u.Scopes = slices.Clone(scopes) })
}

func (s *memStore) failing(bit uint8) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures&bit != 0
}

func (s *memStore) SaveChatMessages(_ context.Context, msgs []data.ChatMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures&4 != 0 {
		return errInjected
	}
	for _, m := range msgs {
		m.Event = slices.Clone(m.Event)
		s.messages = append(s.messages, m)
	}
	return nil
}

func (s *memStore) SetChatMessagesHidden(_ context.Context, ids []string, at *time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.messages {
		if slices.Contains(ids, s.messages[i].ID) {
			s.messages[i].HiddenAt = at
		}
	}
	return nil
}

func (s *memStore) HideChatMessagesOfUser(_ context.Context, userID string, at time.Time) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for i, m := range s.messages {
		if m.UserID == userID && m.HiddenAt == nil {
			s.messages[i].HiddenAt = &at
			ids = append(ids, m.ID)
		}
	}
	return ids, nil
}

func (s *memStore) RecentChatMessages(_ context.Context, limit int) ([]data.ChatMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.messages[max(0, len(s.messages)-limit):]), nil
}

func (s *memStore) AddIPBan(_ context.Context, b data.IPBan) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bans[b.IP] = b
	return nil
}

func (s *memStore) RemoveIPBan(_ context.Context, ip string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.bans, ip)
	return nil
}

func (s *memStore) IPBans(context.Context) ([]data.IPBan, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []data.IPBan
	for _, b := range s.bans {
		out = append(out, b)
	}
	return out, nil
}
