package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/data"
)

// chatStatus is whether users may send, and why not.
type chatStatus struct {
	enabled bool
	reason  string
}

func (s chatStatus) event() *Event {
	ev := newEvent(TypeChatStatus)
	ev.Enabled, ev.Reason = boolPtr(s.enabled), s.reason
	return ev
}

func (h *Hub) chatStatus() chatStatus {
	c := h.d.Settings.Get().Chat
	switch {
	case c.Disabled:
		return chatStatus{false, "Chat is turned off."}
	case c.LiveOnly && !h.d.Stream.Status().Online:
		return chatStatus{false, "Chat opens when the stream goes live."}
	}
	return chatStatus{enabled: true}
}

// SettingsChanged tells everyone if chat opened or closed.
func (h *Hub) SettingsChanged(old, new *core.Settings) {
	if old.Chat.Disabled != new.Chat.Disabled || old.Chat.LiveOnly != new.Chat.LiveOnly {
		h.refreshStatus(h.ctx)
	}
}

// refreshStatus tells everyone if chat opened or closed.
func (h *Hub) refreshStatus(ctx context.Context) error {
	now := h.chatStatus()
	return h.exec(ctx, func(st *state) {
		if now != st.status {
			st.status = now
			ev := now.event()
			h.accept(st, post{ev: ev, enc: ev.encode()})
		}
	})
}

// BroadcastStarted tells everyone the stream is live.
func (h *Hub) BroadcastStarted(core.Broadcast) { h.streamEvent(TypeStreamStarted) }

// BroadcastEnded tells everyone the stream ended.
func (h *Hub) BroadcastEnded(core.Broadcast) { h.streamEvent(TypeStreamStopped) }

func (h *Hub) streamEvent(typ string) {
	ev := newEvent(typ)
	if h.publish(post{ev: ev, enc: ev.encode()}) == nil {
		h.refreshStatus(h.ctx)
	}
}

// SendSystem posts a message from the server to everyone.
func (h *Hub) SendSystem(body string) error {
	html := h.d.Render(body)
	if html == "" {
		return ErrEmptyMessage
	}
	ev := newEvent(TypeSystem)
	ev.Body = html
	ev.User = &User{DisplayName: h.d.Settings.Get().Name, PreviousNames: []string{}}
	ev.Visible = boolPtr(true)
	return h.publish(post{ev: ev, enc: ev.encode(), save: true})
}

// Engagement is someone on the fediverse following the stream, or liking
// or boosting one of its posts.
type Engagement struct {
	// Type is TypeFediverseFollow, TypeFediverseLike or TypeFediverseRepost.
	Type string
	// Handle is user@host; Profile and Avatar are http(s) URLs or "".
	Handle, Profile, Avatar string
}

// engagementBodies are what each engagement says after the handle: fixed
// text, so nothing a remote server sends becomes HTML.
var engagementBodies = map[string]string{
	TypeFediverseFollow: "<p>followed this stream.</p>",
	TypeFediverseLike:   "<p>liked that this stream went live.</p>",
	TypeFediverseRepost: "<p>shared this stream with their followers.</p>",
}

// SendEngagement shows a fediverse engagement to everyone in chat.
func (h *Hub) SendEngagement(e Engagement) error {
	body, ok := engagementBodies[e.Type]
	if !ok {
		return fmt.Errorf("no such engagement: %q", e.Type)
	}
	ev := newEvent(e.Type)
	ev.Body, ev.Title = body, e.Handle
	ev.Link, ev.Image = webURL(e.Profile), webURL(e.Avatar)
	return h.publish(post{ev: ev, enc: ev.encode(), save: true})
}

// webURL is u if it is an http(s) URL, else "".
func webURL(u string) string {
	if strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://") {
		return u
	}
	return ""
}

// SetMessagesVisible hides or shows messages, for everyone at once.
func (h *Hub) SetMessagesVisible(ctx context.Context, ids []string, visible bool) error {
	if len(ids) == 0 {
		return errors.New("no message ids given: send {\"idArray\": [...], \"visible\": false}")
	}
	if err := h.persist.flush(ctx); err != nil {
		return err
	}
	var at *time.Time
	if !visible {
		now := time.Now().UTC()
		at = &now
	}
	if err := h.d.Store.SetChatMessagesHidden(ctx, ids, at); err != nil {
		return err
	}
	return h.exec(ctx, func(st *state) {
		for _, e := range st.history {
			if slices.Contains(ids, e.id) {
				e.hidden = !visible
			}
		}
		h.announceVisibility(st, ids, visible)
	})
}

func (h *Hub) announceVisibility(st *state, ids []string, visible bool) {
	ev := newEvent(TypeVisibilityUpdate)
	ev.IDs, ev.Visible = ids, boolPtr(visible)
	h.accept(st, post{ev: ev, enc: ev.encode()})
}

// SetUserEnabled disables a user (hiding their messages for everyone and
// closing their connections) or enables them again.
func (h *Hub) SetUserEnabled(ctx context.Context, userID string, enabled bool) error {
	if _, err := h.d.Store.ChatUser(ctx, userID); errors.Is(err, data.ErrNotFound) {
		return ErrUnknownUser
	} else if err != nil {
		return err
	}
	if enabled {
		return h.d.Store.SetChatUserDisabled(ctx, userID, nil)
	}
	now := time.Now().UTC()
	if err := h.d.Store.SetChatUserDisabled(ctx, userID, &now); err != nil {
		return err
	}
	// From here the hub drops whatever they send; then every message of
	// theirs, saved or on its way, is hidden.
	var ids []string
	err := h.exec(ctx, func(st *state) {
		if us := st.users[userID]; us != nil {
			us.disabled = true
		}
		for _, e := range st.history {
			if e.userID == userID && !e.hidden {
				e.hidden = true
				ids = append(ids, e.id)
			}
		}
	})
	if err != nil {
		return err
	}
	if err := h.persist.flush(ctx); err != nil {
		return err
	}
	saved, err := h.d.Store.HideChatMessagesOfUser(ctx, userID, now)
	if err != nil {
		return err
	}
	for _, id := range saved {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return h.exec(ctx, func(st *state) {
		if len(ids) > 0 {
			h.announceVisibility(st, ids, false)
		}
		ev := newEvent(TypeUserDisabled)
		ev.Body = "You have been removed from this chat."
		for _, c := range st.clientsOf(userID) {
			c.close(ev.encode())
		}
	})
}

// SetModerator grants or takes away the moderator scope. The user's open
// connections learn at once.
func (h *Hub) SetModerator(ctx context.Context, userID string, moderator bool) error {
	d, err := h.d.Store.ChatUser(ctx, userID)
	if errors.Is(err, data.ErrNotFound) {
		return ErrUnknownUser
	} else if err != nil {
		return err
	}
	scopes := slices.DeleteFunc(d.Scopes, func(s string) bool { return s == ScopeModerator })
	if moderator {
		scopes = append(scopes, ScopeModerator)
	}
	if err := h.d.Store.SetChatUserScopes(ctx, userID, scopes); err != nil {
		return err
	}
	return h.exec(ctx, func(st *state) {
		us := st.users[userID]
		if us == nil {
			return
		}
		u := *us.user.Load()
		u.Scopes = scopes
		us.user.Store(&u)
		info := newEvent(TypeConnectedUserInfo)
		info.User = &u
		for _, c := range st.clientsOf(userID) {
			h.sendTo(st, c, info.encode())
		}
	})
}

// normalizeIP returns the canonical form of an address, so a ban holds
// however it is written.
func normalizeIP(ip string) (string, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return "", fmt.Errorf("%q is %w: give one such as 203.0.113.7 or 2001:db8::1", ip, ErrBadAddress)
	}
	return a.Unmap().String(), nil
}

// Banned says whether an address may not chat.
func (h *Hub) Banned(ip string) bool {
	n, err := normalizeIP(ip)
	if err != nil {
		return false
	}
	h.ipMu.Lock()
	defer h.ipMu.Unlock()
	return h.bans[n]
}

// BanIP refuses an address from now on and closes its connections.
func (h *Hub) BanIP(ctx context.Context, ip, notes string) error {
	n, err := normalizeIP(ip)
	if err != nil {
		return err
	}
	if err := h.d.Store.AddIPBan(ctx, data.IPBan{IP: n, Notes: notes, CreatedAt: time.Now().UTC()}); err != nil {
		return err
	}
	h.ipMu.Lock()
	h.bans[n] = true
	h.ipMu.Unlock()
	return h.exec(ctx, func(st *state) {
		ev := newEvent(TypeUserDisabled)
		ev.Body = "Your address has been banned from this chat."
		for c := range st.clients {
			if cn, _ := normalizeIP(c.ip); cn == n {
				c.close(ev.encode())
			}
		}
	})
}

// UnbanIP lifts a ban.
func (h *Hub) UnbanIP(ctx context.Context, ip string) error {
	n, err := normalizeIP(ip)
	if err != nil {
		return err
	}
	if err := h.d.Store.RemoveIPBan(ctx, n); err != nil {
		return err
	}
	h.ipMu.Lock()
	delete(h.bans, n)
	h.ipMu.Unlock()
	return nil
}

// IPBans lists the bans.
func (h *Hub) IPBans(ctx context.Context) ([]data.IPBan, error) { return h.d.Store.IPBans(ctx) }

// DisabledUsers lists the disabled users.
func (h *Hub) DisabledUsers(ctx context.Context) ([]*User, error) {
	return users(h.d.Store.DisabledChatUsers(ctx))
}

// Moderators lists the moderators.
func (h *Hub) Moderators(ctx context.Context) ([]*User, error) {
	return users(h.d.Store.ChatUsersWithScope(ctx, ScopeModerator))
}

func users(ds []data.ChatUser, err error) ([]*User, error) {
	if err != nil {
		return nil, err
	}
	out := make([]*User, len(ds))
	for i, d := range ds {
		out[i] = userFromData(d)
	}
	return out, nil
}

// ClientInfo is a connection, for admins.
type ClientInfo struct {
	// ID is the connection's, for POST /api/integrations/chat/system/client/{id}.
	ID           uint64    `json:"id"`
	ConnectedAt  time.Time `json:"connectedAt"`
	MessageCount int64     `json:"messageCount"`
	UserAgent    string    `json:"userAgent"`
	IPAddress    string    `json:"ipAddress"`
	User         *User     `json:"user"`
}

// Clients lists the open connections, oldest first.
func (h *Hub) Clients(ctx context.Context) ([]ClientInfo, error) {
	out := []ClientInfo{}
	err := h.exec(ctx, func(st *state) {
		for c := range st.clients {
			out = append(out, ClientInfo{
				ID:           c.id,
				ConnectedAt:  c.connectedAt,
				MessageCount: c.messageCount.Load(),
				UserAgent:    c.userAgent,
				IPAddress:    c.ip,
				User:         c.us.user.Load(),
			})
		}
	})
	slices.SortFunc(out, func(a, b ClientInfo) int { return a.ConnectedAt.Compare(b.ConnectedAt) })
	return out, err
}

// History returns the recent visible messages as a JSON array, oldest
// first: what a joining client gets.
func (h *Hub) History(ctx context.Context) (json.RawMessage, error) {
	var b bytes.Buffer
	err := h.exec(ctx, func(st *state) {
		b.WriteByte('[')
		first := true
		for _, e := range st.history {
			if e.hidden {
				continue
			}
			if !first {
				b.WriteByte(',')
			}
			first = false
			b.Write(e.enc)
		}
		b.WriteByte(']')
	})
	return b.Bytes(), err
}

// AllMessages returns the newest stored messages, hidden ones too, each
// with its visibility, oldest first: for admins.
func (h *Hub) AllMessages(ctx context.Context, limit int) ([]json.RawMessage, error) {
	if err := h.persist.flush(ctx); err != nil {
		return nil, err
	}
	msgs, err := h.d.Store.RecentChatMessages(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, 0, len(msgs))
	// The author as they are now: a moderator sees who has been disabled
	// since they wrote.
	authors := map[string]*User{}
	for _, m := range msgs {
		var ev Event
		if err := json.Unmarshal(m.Event, &ev); err != nil {
			return nil, fmt.Errorf("stored chat message %s: %w", m.ID, err)
		}
		ev.Visible = boolPtr(m.HiddenAt == nil)
		if ev.User != nil && ev.User.ID != "" {
			u, seen := authors[ev.User.ID]
			if !seen {
				if d, err := h.d.Store.ChatUser(ctx, ev.User.ID); err == nil {
					u = userFromData(d)
				}
				authors[ev.User.ID] = u
			}
			if u != nil {
				ev.User.DisabledAt = u.DisabledAt
			}
		}
		out = append(out, ev.encode())
	}
	return out, nil
}

var (
	_ core.Listener         = (*Hub)(nil)
	_ core.SettingsListener = (*Hub)(nil)
)
