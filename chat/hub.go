// Package chat is the chat beside the player: a WebSocket hub at /ws that
// speaks Owncast's chat protocol (docs/chat.md), users with access tokens,
// history kept in sqlite, limits and moderation.
//
// One goroutine owns the hub's state (who is connected, the recent history,
// what is waiting to go out) and takes requests over channels. Each
// connection has a reader and a writer goroutine; the hub never writes to
// a socket, so a slow client cannot stall it: when its queue is full it is
// dropped. Broadcasts are batched: what arrives within one BatchInterval
// goes out as one frame, encoded once for every client
// (websocket.PreparedMessage), Owncast's newline-separated event batches.
package chat

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/data"
)

// Config are the hub's limits. Zero values take the defaults.
type Config struct {
	// MaxConnections caps sockets in all; MaxPerIP caps them per address.
	MaxConnections int
	MaxPerIP       int
	// MaxMessageChars is the longest body, in characters; ReadLimit the
	// largest frame, in bytes (a bigger one closes the connection).
	MaxMessageChars int
	ReadLimit       int64
	// Rate and Burst limit each user's messages; a user refused
	// FloodRefusals times within FloodWindow is disconnected.
	Rate          rate.Limit
	Burst         int
	FloodRefusals int
	FloodWindow   time.Duration
	// SendQueue is how many frames may wait for a slow client before it is
	// dropped; WriteTimeout how long one write may take.
	SendQueue    int
	WriteTimeout time.Duration
	// PingInterval is how often the server pings; a client silent for
	// PongWait is gone.
	PingInterval time.Duration
	PongWait     time.Duration
	// BatchInterval is the most a broadcast waits to share a frame with
	// others.
	BatchInterval time.Duration
	// History is how many recent messages a joining client gets.
	History int
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxConnections, 20_000)
	def(&c.MaxPerIP, 64)
	def(&c.MaxMessageChars, 500)
	def(&c.Burst, 5)
	def(&c.FloodRefusals, 10)
	def(&c.SendQueue, 64)
	def(&c.History, defaultHistoryMessages)
	if c.ReadLimit == 0 {
		c.ReadLimit = 8 << 10
	}
	if c.Rate == 0 {
		c.Rate = 2
	}
	durDef := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	durDef(&c.FloodWindow, 10*time.Second)
	durDef(&c.WriteTimeout, 10*time.Second)
	durDef(&c.PingInterval, 50*time.Second)
	durDef(&c.PongWait, 60*time.Second)
	durDef(&c.BatchInterval, 100*time.Millisecond)
	return c
}

// store is the part of the database chat uses.
type store interface {
	CreateChatUser(ctx context.Context, u data.ChatUser, tokenHash string) error
	ChatUserByToken(ctx context.Context, tokenHash string) (data.ChatUser, error)
	ChatUser(ctx context.Context, id string) (data.ChatUser, error)
	DisabledChatUsers(ctx context.Context) ([]data.ChatUser, error)
	ChatUsersWithScope(ctx context.Context, scope string) ([]data.ChatUser, error)
	RenameChatUser(ctx context.Context, id, name string, at time.Time) (data.ChatUser, error)
	SetChatUserColor(ctx context.Context, id string, color int) error
	SetChatUserDisabled(ctx context.Context, id string, at *time.Time) error
	SetChatUserScopes(ctx context.Context, id string, scopes []string) error
	SaveChatMessages(ctx context.Context, msgs []data.ChatMessage) error
	SetChatMessagesHidden(ctx context.Context, ids []string, at *time.Time) error
	HideChatMessagesOfUser(ctx context.Context, userID string, at time.Time) ([]string, error)
	RecentChatMessages(ctx context.Context, limit int) ([]data.ChatMessage, error)
	AddIPBan(ctx context.Context, b data.IPBan) error
	RemoveIPBan(ctx context.Context, ip string) error
	IPBans(ctx context.Context) ([]data.IPBan, error)
}

type settingsSource interface{ Get() *core.Settings }

type streamStatus interface{ Status() core.Status }

// Deps are what the hub needs.
type Deps struct {
	Logger   *slog.Logger
	Store    store
	Settings settingsSource
	Stream   streamStatus
	// Render turns a body as typed into safe HTML (chat/format.Message).
	Render func(string) string
	// ClientIP names the client behind any trusted proxy.
	ClientIP func(*http.Request) string
	// CheckOrigin reports whether a browser page from the request's
	// Origin may connect; nil allows only the server's own host.
	CheckOrigin func(*http.Request) bool
	Config      Config
	// Observe, if set, is given each event accepted for everyone, and
	// each join and part even when they are not announced. It runs on the
	// hub's goroutine, so it must return at once (webhooks only buffer
	// the event), and must not modify the event.
	Observe func(*Event)
}

// Stats are the hub's counters.
type Stats struct {
	// Clients are open sockets; Users the distinct users behind them.
	Clients  int    `json:"clients"`
	Users    int    `json:"users"`
	Messages uint64 `json:"messages"`
	Dropped  uint64 `json:"droppedSlowClients"`
}

// Hub is the chat server.
type Hub struct {
	log      *slog.Logger
	d        Deps
	cfg      Config
	upgrader websocket.Upgrader
	persist  *persister

	// Requests to the owner goroutine (run).
	joins  chan *client
	leaves chan *client
	posts  chan post
	do     chan func(*state)

	// ipMu guards perIP, the open sockets per address, and bans.
	ipMu  sync.Mutex
	perIP map[string]int
	bans  map[string]bool

	conns    atomic.Int64
	users    atomic.Int64
	messages atomic.Uint64
	dropped  atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	// wg counts the hub's goroutines and its clients'. lifeMu guards
	// closed, and every wg.Add after Start happens under it, so that Close
	// never waits while a new client is being added.
	wg     sync.WaitGroup
	lifeMu sync.Mutex
	closed bool
}

// post is an event on its way to everyone.
type post struct {
	ev  *Event
	enc []byte
	// from is the sending client, nil for the server's own events.
	from *client
	// save stores it in the history.
	save bool
}

// New returns a hub; Start runs it.
func New(d Deps) *Hub {
	h := &Hub{
		log:    d.Logger,
		d:      d,
		cfg:    d.Config.withDefaults(),
		joins:  make(chan *client),
		leaves: make(chan *client),
		posts:  make(chan post, 256),
		do:     make(chan func(*state)),
		perIP:  map[string]int{},
		bans:   map[string]bool{},
	}
	h.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   1024,
		// Idle sockets hold no write buffer.
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     d.CheckOrigin,
	}
	h.persist = newPersister(d.Logger, d.Store)
	return h
}

// Start loads the bans and the recent history and starts serving.
func (h *Hub) Start(ctx context.Context) error {
	bans, err := h.d.Store.IPBans(ctx)
	if err != nil {
		return err
	}
	for _, b := range bans {
		h.bans[b.IP] = true
	}
	recent, err := h.d.Store.RecentChatMessages(ctx, h.cfg.History)
	if err != nil {
		return err
	}
	st := &state{
		clients: map[*client]struct{}{},
		users:   map[string]*userState{},
		status:  h.chatStatus(),
	}
	for _, m := range recent {
		st.remember(h.cfg.History, &entry{id: m.ID, userID: m.UserID, enc: m.Event, hidden: m.HiddenAt != nil})
	}
	h.ctx, h.cancel = context.WithCancel(ctx)
	h.wg.Add(2)
	go func() {
		defer h.wg.Done()
		h.persist.run(h.ctx)
	}()
	go func() {
		defer h.wg.Done()
		h.run(st)
	}()
	return nil
}

// Close disconnects everyone, stores what is unsaved and waits for every
// goroutine.
func (h *Hub) Close() error {
	if h.cancel == nil {
		return nil
	}
	h.lifeMu.Lock()
	h.closed = true
	h.lifeMu.Unlock()
	h.cancel()
	h.wg.Wait()
	// What the hub accepted last is stored too.
	h.persist.save()
	return nil
}

// Stats returns the counters.
func (h *Hub) Stats() Stats {
	return Stats{
		Clients:  int(h.conns.Load()),
		Users:    int(h.users.Load()),
		Messages: h.messages.Load(),
		Dropped:  h.dropped.Load(),
	}
}

// exec runs f in the owner goroutine and waits for it.
func (h *Hub) exec(ctx context.Context, f func(*state)) error {
	done := make(chan struct{})
	select {
	case h.do <- func(st *state) { f(st); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-h.ctx.Done():
		return errClosed
	}
	select {
	case <-done:
		return nil
	case <-h.ctx.Done():
		return errClosed
	}
}

var errClosed = errors.New("chat is shutting down")

// publish hands an event to the owner goroutine for everyone.
func (h *Hub) publish(p post) error {
	select {
	case h.posts <- p:
		return nil
	case <-h.ctx.Done():
		return errClosed
	}
}

// state is the hub's live state, owned by the run goroutine.
type state struct {
	clients map[*client]struct{}
	users   map[string]*userState
	// history is a ring of the recent messages, oldest first.
	history []*entry
	// pending are events waiting for the next batch.
	pending   [][]byte
	lastFlush time.Time
	status    chatStatus
}

// userState is a connected user, shared by their connections.
type userState struct {
	// user is replaced, never modified, by the owner goroutine; readers
	// load it.
	user    atomic.Pointer[User]
	limiter *rate.Limiter
	// conns and disabled belong to the owner goroutine.
	conns    int
	disabled bool
}

// entry is a message in the recent history.
type entry struct {
	id, userID string
	enc        []byte
	hidden     bool
}

func (st *state) remember(limit int, e *entry) {
	if len(st.history) >= limit {
		copy(st.history, st.history[1:])
		st.history = st.history[:len(st.history)-1]
	}
	st.history = append(st.history, e)
}

func (h *Hub) run(st *state) {
	flush := time.NewTimer(time.Hour)
	flush.Stop()
	armed := false
	defer func() {
		flush.Stop()
		for c := range st.clients {
			c.closeNow()
		}
	}()
	for {
		select {
		case <-h.ctx.Done():
			return
		case c := <-h.joins:
			h.join(st, c)
		case c := <-h.leaves:
			h.leave(st, c)
		case f := <-h.do:
			f(st)
		case p := <-h.posts:
			h.accept(st, p)
		case <-flush.C:
			armed = false
			h.flush(st)
		}
		if len(st.pending) > 0 && !armed {
			flush.Reset(max(0, time.Until(st.lastFlush.Add(h.cfg.BatchInterval))))
			armed = true
		}
	}
}

func (h *Hub) join(st *state, c *client) {
	us := st.users[c.userID]
	first := us == nil
	if first {
		us = &userState{limiter: rate.NewLimiter(h.cfg.Rate, h.cfg.Burst)}
		us.user.Store(c.initial)
		st.users[c.userID] = us
		h.users.Add(1)
	}
	us.conns++
	c.us = us
	st.clients[c] = struct{}{}

	// The welcome: who you are, whether chat is open, and the history.
	var b bytes.Buffer
	info := newEvent(TypeConnectedUserInfo)
	info.User = us.user.Load()
	b.Write(info.encode())
	b.WriteByte('\n')
	b.Write(st.status.event().encode())
	for _, e := range st.history {
		if !e.hidden {
			b.WriteByte('\n')
			b.Write(e.enc)
		}
	}
	h.sendTo(st, c, b.Bytes())
	close(c.joined)

	if first {
		ev := newEvent(TypeUserJoined)
		ev.User = us.user.Load()
		h.announce(st, ev, h.d.Settings.Get().Chat.JoinMessages)
	}
}

func (h *Hub) leave(st *state, c *client) {
	if _, ok := st.clients[c]; !ok {
		return
	}
	delete(st.clients, c)
	us := c.us
	us.conns--
	if us.conns > 0 {
		return
	}
	delete(st.users, c.userID)
	h.users.Add(-1)
	if !us.disabled {
		ev := newEvent(TypeUserParted)
		ev.User = us.user.Load()
		h.announce(st, ev, h.d.Settings.Get().Chat.JoinMessages)
	}
}

// announce sends a join or part to everyone if shown, and to the observer
// in any case.
func (h *Hub) announce(st *state, ev *Event, shown bool) {
	if shown {
		h.accept(st, post{ev: ev, enc: ev.encode()})
	} else if h.d.Observe != nil {
		h.d.Observe(ev)
	}
}

// accept queues an event for everyone; a chat message also goes into the
// history and the database.
func (h *Hub) accept(st *state, p post) {
	if p.from != nil && p.from.us.disabled {
		// Disabled while the message was on its way.
		return
	}
	if h.d.Observe != nil {
		h.d.Observe(p.ev)
	}
	if p.save {
		userID := ""
		if p.ev.User != nil {
			userID = p.ev.User.ID
		}
		st.remember(h.cfg.History, &entry{id: p.ev.ID, userID: userID, enc: p.enc})
		h.persist.add(data.ChatMessage{ID: p.ev.ID, UserID: userID, Event: p.enc, At: p.ev.Timestamp})
		h.messages.Add(1)
		if p.from != nil {
			p.from.messageCount.Add(1)
		}
	}
	st.pending = append(st.pending, p.enc)
}

// flush sends the pending events to everyone as one frame.
func (h *Hub) flush(st *state) {
	if len(st.pending) == 0 {
		return
	}
	frame := bytes.Join(st.pending, []byte{'\n'})
	st.pending = st.pending[:0]
	st.lastFlush = time.Now()
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, frame)
	if err != nil {
		h.log.Error("cannot prepare chat frame", "err", err)
		return
	}
	for c := range st.clients {
		h.enqueue(st, c, pm)
	}
}

// sendTo sends one frame to one client.
func (h *Hub) sendTo(st *state, c *client, frame []byte) {
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, frame)
	if err != nil {
		h.log.Error("cannot prepare chat frame", "err", err)
		return
	}
	h.enqueue(st, c, pm)
}

// enqueue never blocks: a client whose queue is full is too slow to keep
// up, and is dropped so that it cannot hold back the others.
func (h *Hub) enqueue(st *state, c *client, pm *websocket.PreparedMessage) {
	select {
	case c.send <- pm:
	default:
		h.countSlow(c, "its queue is full")
		h.leave(st, c)
		c.closeNow()
	}
}

// countSlow counts and logs a client dropped for being too slow, whichever
// way it showed.
func (h *Hub) countSlow(c *client, why string) {
	h.dropped.Add(1)
	h.log.Info("dropping a chat client too slow to keep up", "user", c.userID, "why", why)
}

// clientsOf returns a user's connections.
func (st *state) clientsOf(userID string) []*client {
	var cs []*client
	for c := range st.clients {
		if c.userID == userID {
			cs = append(cs, c)
		}
	}
	return cs
}
