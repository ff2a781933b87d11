package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/starling-live/starling/core/data"
)

// client is one WebSocket connection.
type client struct {
	h           *Hub
	ws          *websocket.Conn
	ip          string
	userAgent   string
	connectedAt time.Time
	userID      string
	// id names the connection to integrations (SendSystemTo).
	id uint64
	// initial is the user as authenticated; the hub's userState has the
	// current one.
	initial *User
	// us is set by the owner goroutine before joined closes.
	us     *userState
	joined chan struct{}
	// send holds frames for the writer. Only the owner goroutine and this
	// client's reader put frames in, never blocking.
	send chan *websocket.PreparedMessage
	// done closes when the connection is to end; final, set before,
	// is the last frame to write.
	done      chan struct{}
	closeOnce sync.Once
	final     []byte
	// wrote closes when the writer has finished.
	wrote chan struct{}

	messageCount atomic.Int64
	// refusals are the times of recent refused messages (reader only).
	refusals []time.Time
}

// ServeHTTP upgrades GET /ws?accessToken= to a chat connection.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ip := h.d.ClientIP(r)
	if h.Banned(ip) {
		http.Error(w, "this address is banned from chat", http.StatusForbidden)
		return
	}
	if !h.acquireIP(ip) {
		w.Header().Set("Retry-After", "30")
		http.Error(w, "too many chat connections from your address: close some tabs", http.StatusTooManyRequests)
		return
	}
	ws, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// The upgrader has answered: 403 for a foreign origin, 400 else.
		h.log.Debug("chat upgrade failed", "remote", ip, "err", err)
		h.releaseIP(ip)
		return
	}
	h.conns.Add(1)
	release := func() {
		ws.Close()
		h.conns.Add(-1)
		h.releaseIP(ip)
	}
	if h.conns.Load() > int64(h.cfg.MaxConnections) {
		h.refuse(ws, TypeMaxConnections, "The chat is full: try again later.")
		release()
		return
	}
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	u, err := h.Authenticate(ctx, r.URL.Query().Get("accessToken"))
	cancel()
	switch {
	case errors.Is(err, ErrUnknownToken):
		h.refuse(ws, TypeNeedsRegistration, "Register first: POST /api/chat/register, then connect with ?accessToken=.")
		release()
		return
	case err != nil:
		h.log.Error("chat authentication failed", "err", err)
		ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseInternalServerErr, "try again later"), time.Now().Add(time.Second))
		release()
		return
	case u.DisabledAt != nil:
		h.refuse(ws, TypeUserDisabled, "You have been removed from this chat.")
		release()
		return
	}
	c := &client{
		h:           h,
		id:          newClientID(),
		ws:          ws,
		ip:          ip,
		userAgent:   r.UserAgent(),
		connectedAt: time.Now(),
		userID:      u.ID,
		initial:     u,
		joined:      make(chan struct{}),
		send:        make(chan *websocket.PreparedMessage, h.cfg.SendQueue),
		done:        make(chan struct{}),
		wrote:       make(chan struct{}),
	}
	h.lifeMu.Lock()
	if h.closed {
		h.lifeMu.Unlock()
		release()
		return
	}
	h.wg.Add(2)
	h.lifeMu.Unlock()
	go func() {
		defer h.wg.Done()
		defer close(c.wrote)
		c.writeLoop()
	}()
	go func() {
		defer h.wg.Done()
		c.readLoop()
		// The writer ends once done is closed, after any last words.
		<-c.wrote
		release()
	}()
}

// refuse tells a client why it cannot stay, and closes.
func (h *Hub) refuse(ws *websocket.Conn, typ, body string) {
	ev := newEvent(typ)
	ev.Body = body
	ws.SetWriteDeadline(time.Now().Add(time.Second))
	ws.WriteMessage(websocket.TextMessage, ev.encode())
	ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, body), time.Now().Add(time.Second))
}

func (h *Hub) acquireIP(ip string) bool {
	h.ipMu.Lock()
	defer h.ipMu.Unlock()
	if h.perIP[ip] >= h.cfg.MaxPerIP {
		return false
	}
	h.perIP[ip]++
	return true
}

func (h *Hub) releaseIP(ip string) {
	h.ipMu.Lock()
	defer h.ipMu.Unlock()
	if h.perIP[ip]--; h.perIP[ip] <= 0 {
		delete(h.perIP, ip)
	}
}

func (c *client) readLoop() {
	h := c.h
	select {
	case h.joins <- c:
	case <-h.ctx.Done():
		c.closeNow()
		return
	}
	defer func() {
		select {
		case h.leaves <- c:
		case <-h.ctx.Done():
		}
		c.close(nil)
	}()
	<-c.joined
	c.ws.SetReadLimit(h.cfg.ReadLimit)
	c.ws.SetReadDeadline(time.Now().Add(h.cfg.PongWait))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(h.cfg.PongWait))
	})
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			// Over ReadLimit, the library has closed with 1009, message
			// too big.
			return
		}
		c.ws.SetReadDeadline(time.Now().Add(h.cfg.PongWait))
		var in inbound
		if err := json.Unmarshal(msg, &in); err != nil || in.Type == "" {
			c.notify(ErrCodeBadMessage, "That was not a chat message: send JSON such as {\"type\":\"CHAT\",\"body\":\"hello\"}.")
			continue
		}
		switch in.Type {
		case TypeChat:
			c.chat(in.Body)
		case TypeNameChange:
			c.rename(in.NewName)
		case TypeColorChange:
			c.recolor(in.NewColor)
		case TypePing, TypePong:
		default:
			c.notify(ErrCodeBadMessage, fmt.Sprintf("Unknown message type %q: send CHAT, NAME_CHANGE or COLOR_CHANGE.", in.Type))
		}
		select {
		case <-c.done:
			return
		default:
		}
	}
}

// allowed spends one of the user's tokens; a flooder is told, then cut off.
func (c *client) allowed() bool {
	u := c.us.user.Load()
	if u.IsModerator() || c.us.limiter.Allow() {
		return true
	}
	now := time.Now()
	cut := 0
	for cut < len(c.refusals) && now.Sub(c.refusals[cut]) > c.h.cfg.FloodWindow {
		cut++
	}
	c.refusals = append(c.refusals[cut:], now)
	if len(c.refusals) >= c.h.cfg.FloodRefusals {
		c.h.log.Info("disconnecting a chat flooder", "user", c.userID, "remote", c.ip)
		c.close(c.action(ErrCodeFlooding, "You kept sending messages too fast, so you were disconnected. Wait a little before reconnecting."))
		return false
	}
	c.notify(ErrCodeRateLimited, "You are sending messages too fast: that one was not sent. Wait a moment.")
	return false
}

func (c *client) chat(body string) {
	h := c.h
	if st := h.chatStatus(); !st.enabled {
		c.notify(ErrCodeChatOff, st.reason)
		return
	}
	body = strings.TrimSpace(cleanBody(body))
	if n := utf8.RuneCountInString(body); n > h.cfg.MaxMessageChars {
		c.notify(ErrCodeTooLong, fmt.Sprintf("That message has %d characters; the limit is %d. Shorten it and send again.", n, h.cfg.MaxMessageChars))
		return
	}
	if !c.allowed() {
		return
	}
	html := h.d.Render(body)
	if html == "" {
		c.notify(ErrCodeEmpty, "There was nothing to send.")
		return
	}
	ev := newEvent(TypeChat)
	ev.User = c.us.user.Load()
	ev.Body = html
	ev.Visible = boolPtr(true)
	h.publish(post{ev: ev, enc: ev.encode(), from: c, save: true})
}

func (c *client) rename(name string) {
	h := c.h
	name = strings.TrimSpace(name)
	if err := h.checkName(name); err != nil {
		var ne *nameError
		errors.As(err, &ne)
		c.notify(ne.code, ne.msg)
		return
	}
	if !c.allowed() {
		return
	}
	old := c.us.user.Load()
	if old.DisplayName == name {
		return
	}
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	d, err := h.d.Store.RenameChatUser(ctx, c.userID, name, time.Now().UTC())
	if errors.Is(err, data.ErrNameTaken) {
		c.notify(ErrCodeNameTaken, fmt.Sprintf("Someone is already called %q: choose another name.", name))
		return
	}
	if err != nil {
		h.log.Error("cannot rename chat user", "user", c.userID, "err", err)
		c.notify(ErrCodeInternalFailed, "Your name could not be changed: try again later.")
		return
	}
	h.updateUser(ctx, c.userID, func(u *User) {
		u.DisplayName, u.PreviousNames, u.NameChangedAt = d.DisplayName, d.PreviousNames, d.NameChangedAt
	}, func(u *User) *Event {
		ev := newEvent(TypeNameChange)
		ev.User, ev.OldName = u, old.DisplayName
		return ev
	})
}

func (c *client) recolor(color *int) {
	h := c.h
	if color == nil || *color < 0 || *color > maxColor {
		c.notify(ErrCodeColorInvalid, fmt.Sprintf("Colours are numbered 0 to %d.", maxColor))
		return
	}
	if !c.allowed() {
		return
	}
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	if err := h.d.Store.SetChatUserColor(ctx, c.userID, *color); err != nil {
		h.log.Error("cannot change chat colour", "user", c.userID, "err", err)
		c.notify(ErrCodeInternalFailed, "Your colour could not be changed: try again later.")
		return
	}
	h.updateUser(ctx, c.userID, func(u *User) { u.DisplayColor = *color }, func(u *User) *Event {
		ev := newEvent(TypeColorChange)
		ev.User = u
		return ev
	})
}

// action is a CHAT_ACTION for this client alone.
func (c *client) action(code, body string) []byte {
	ev := newEvent(TypeChatAction)
	ev.Error, ev.Body = code, body
	return ev.encode()
}

// notify tells this client alone; a client too slow to take it is
// dropped.
func (c *client) notify(code, body string) {
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, c.action(code, body))
	if err != nil {
		return
	}
	select {
	case c.send <- pm:
	default:
		h := c.h
		h.countSlow(c, "its queue is full")
		c.closeNow()
	}
}

// close ends the connection after writing final.
func (c *client) close(final []byte) {
	c.closeOnce.Do(func() {
		c.final = final
		close(c.done)
	})
}

// closeNow ends the connection at once: a blocked read or write fails.
func (c *client) closeNow() {
	c.close(nil)
	c.ws.NetConn().Close()
}

func (c *client) writeLoop() {
	h := c.h
	ping := time.NewTicker(h.cfg.PingInterval)
	defer ping.Stop()
	defer c.ws.NetConn().Close()
	for {
		select {
		case pm := <-c.send:
			c.ws.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
			if err := c.ws.WritePreparedMessage(pm); err != nil {
				// gorilla/websocket wraps the timeout in a net.Error of
				// its own.
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					h.countSlow(c, "a write took longer than the write timeout")
				}
				c.closeNow()
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(h.cfg.WriteTimeout)); err != nil {
				c.closeNow()
				return
			}
		case <-c.done:
			c.ws.SetWriteDeadline(time.Now().Add(time.Second))
			if c.final != nil {
				c.ws.WriteMessage(websocket.TextMessage, c.final)
			}
			c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, ""), time.Now().Add(time.Second))
			return
		case <-h.ctx.Done():
			c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
			return
		}
	}
}

// cleanBody removes what a chat line has no use for and can abuse:
// control characters other than line breaks (a terminal or a bot may act
// on them) and the bidirectional controls that make text read otherwise
// than it is stored ("txt.exe" shown as "exe.txt"). Joiners stay: emoji
// sequences and some scripts need them.
func cleanBody(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n':
			return r
		case r == '\t':
			return ' '
		case unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r):
			return -1
		}
		return r
	}, s)
}
