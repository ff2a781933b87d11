package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/starling-live/starling/chat"
	"github.com/starling-live/starling/core/data"
)

// chatService is the chat hub, as the API sees it.
type chatService interface {
	Register(ctx context.Context, wantedName, ip string) (chat.Registration, error)
	Banned(ip string) bool
	Authenticate(ctx context.Context, token string) (*chat.User, error)
	History(ctx context.Context) (json.RawMessage, error)
	AllMessages(ctx context.Context, limit int) ([]json.RawMessage, error)
	SetMessagesVisible(ctx context.Context, ids []string, visible bool) error
	SetUserEnabled(ctx context.Context, userID string, enabled bool) error
	SetModerator(ctx context.Context, userID string, moderator bool) error
	DisabledUsers(ctx context.Context) ([]*chat.User, error)
	Moderators(ctx context.Context) ([]*chat.User, error)
	Clients(ctx context.Context) ([]chat.ClientInfo, error)
	IPBans(ctx context.Context) ([]data.IPBan, error)
	BanIP(ctx context.Context, ip, notes string) error
	UnbanIP(ctx context.Context, ip string) error
	SendSystem(body string) error
	// For integrations (integrations.go).
	SendAs(u *chat.User, body string) error
	SendSystemTo(ctx context.Context, clientID uint64, body string) error
	SendAction(body, author string) error
	Stats() chat.Stats
}

// chatError maps the chat's errors to API errors.
func chatError(err error) error {
	switch {
	case errors.Is(err, chat.ErrUnknownUser):
		return &apiError{status: http.StatusNotFound, message: "no chat user has that id", cause: err}
	case errors.Is(err, chat.ErrBanned):
		return &apiError{status: http.StatusForbidden, message: "this address is banned from chat", cause: err}
	case errors.Is(err, chat.ErrBadAddress), errors.Is(err, chat.ErrEmptyMessage):
		return &apiError{status: http.StatusBadRequest, message: err.Error(), cause: err}
	case errors.Is(err, chat.ErrUnknownToken):
		return &apiError{status: http.StatusUnauthorized, message: "unknown access token: register with POST /api/chat/register and pass ?accessToken=", cause: err}
	}
	return err
}

// RegisterChatUser answers POST /api/chat/register: a new anonymous user
// and its access token.
func (h *Handlers) RegisterChatUser(w http.ResponseWriter, r *http.Request) {
	var req struct {
		DisplayName string `json:"displayName"`
	}
	// Owncast accepts an empty body: so do we.
	if r.ContentLength != 0 {
		if err := readJSON(w, r, &req); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	// A reverse proxy that signs users in names them (Owncast's
	// X-Forwarded-User); only a trusted proxy's word counts.
	if u := h.forwardedUser(r); u != "" {
		req.DisplayName = u
	}
	reg, err := h.deps.Chat.Register(r.Context(), req.DisplayName, h.deps.ClientIP(r))
	if err != nil {
		h.writeError(w, r, chatError(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id":           reg.User.ID,
		"accessToken":  reg.AccessToken,
		"displayName":  reg.User.DisplayName,
		"displayColor": reg.User.DisplayColor,
	})
}

// chatUser authenticates ?accessToken=.
func (h *Handlers) chatUser(r *http.Request) (*chat.User, error) {
	u, err := h.deps.Chat.Authenticate(r.Context(), r.URL.Query().Get("accessToken"))
	if err != nil {
		return nil, chatError(err)
	}
	if u.DisabledAt != nil {
		return nil, &apiError{status: http.StatusForbidden, message: "this chat user has been disabled", cause: errors.New("disabled user")}
	}
	return u, nil
}

// ChatHistory answers GET /api/chat?accessToken=: the recent visible
// messages.
func (h *Handlers) ChatHistory(w http.ResponseWriter, r *http.Request) {
	if h.deps.Chat.Banned(h.deps.ClientIP(r)) {
		h.writeError(w, r, chatError(chat.ErrBanned))
		return
	}
	if _, err := h.chatUser(r); err != nil {
		h.writeError(w, r, err)
		return
	}
	hist, err := h.deps.Chat.History(r.Context())
	writeList(h, w, r, hist, err)
}

// moderator wraps a handler for chat users with the MODERATOR scope.
func (h *Handlers) moderator(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, err := h.chatUser(r)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if !u.IsModerator() {
			h.writeError(w, r, &apiError{status: http.StatusForbidden, message: "only moderators may do this", cause: fmt.Errorf("user %s is not a moderator", u.ID)})
			return
		}
		next(w, r)
	}
}

// ModeratorSetMessageVisibility answers POST /api/chat/messagevisibility.
func (h *Handlers) ModeratorSetMessageVisibility() http.HandlerFunc {
	return h.moderator(h.SetMessageVisibility)
}

// ModeratorSetUserEnabled answers POST /api/chat/users/setenabled.
func (h *Handlers) ModeratorSetUserEnabled() http.HandlerFunc {
	return h.moderator(h.SetChatUserEnabled)
}

// SetMessageVisibility answers POST /api/admin/chat/messagevisibility.
func (h *Handlers) SetMessageVisibility(w http.ResponseWriter, r *http.Request) {
	var req struct {
		IDs     []string `json:"idArray"`
		Visible bool     `json:"visible"`
	}
	if err := readJSON(w, r, &req); err != nil {
		h.writeError(w, r, err)
		return
	}
	if len(req.IDs) == 0 || len(req.IDs) > 500 {
		h.writeError(w, r, invalid(`give 1 to 500 message ids: {"idArray": ["id"], "visible": false}`))
		return
	}
	if err := h.deps.Chat.SetMessagesVisible(r.Context(), req.IDs, req.Visible); err != nil {
		h.writeError(w, r, err)
		return
	}
	ok(w)
}

// SetChatUserEnabled answers POST /api/admin/chat/users/setenabled.
func (h *Handlers) SetChatUserEnabled(w http.ResponseWriter, r *http.Request) {
	var req struct {
		UserID  string `json:"userId"`
		Enabled bool   `json:"enabled"`
	}
	if err := readJSON(w, r, &req); err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.deps.Chat.SetUserEnabled(r.Context(), req.UserID, req.Enabled); err != nil {
		h.writeError(w, r, chatError(err))
		return
	}
	ok(w)
}

// SetChatModerator answers POST /api/admin/chat/users/setmoderator.
func (h *Handlers) SetChatModerator(w http.ResponseWriter, r *http.Request) {
	var req struct {
		UserID      string `json:"userId"`
		IsModerator bool   `json:"isModerator"`
	}
	if err := readJSON(w, r, &req); err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.deps.Chat.SetModerator(r.Context(), req.UserID, req.IsModerator); err != nil {
		h.writeError(w, r, chatError(err))
		return
	}
	ok(w)
}

func writeList[T any](h *Handlers, w http.ResponseWriter, r *http.Request, list T, err error) {
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// ChatMessages answers GET /api/admin/chat/messages: hidden ones too.
func (h *Handlers) ChatMessages(w http.ResponseWriter, r *http.Request) {
	msgs, err := h.deps.Chat.AllMessages(r.Context(), 1000)
	writeList(h, w, r, msgs, err)
}

// DisabledChatUsers answers GET /api/admin/chat/users/disabled.
func (h *Handlers) DisabledChatUsers(w http.ResponseWriter, r *http.Request) {
	users, err := h.deps.Chat.DisabledUsers(r.Context())
	writeList(h, w, r, users, err)
}

// ChatModerators answers GET /api/admin/chat/users/moderators.
func (h *Handlers) ChatModerators(w http.ResponseWriter, r *http.Request) {
	users, err := h.deps.Chat.Moderators(r.Context())
	writeList(h, w, r, users, err)
}

// ChatClients answers GET /api/admin/chat/clients.
func (h *Handlers) ChatClients(w http.ResponseWriter, r *http.Request) {
	clients, err := h.deps.Chat.Clients(r.Context())
	writeList(h, w, r, clients, err)
}

type ipBan struct {
	IPAddress string    `json:"ipAddress"`
	Notes     string    `json:"notes"`
	CreatedAt time.Time `json:"createdAt"`
}

// IPBans answers GET /api/admin/chat/users/ipbans.
func (h *Handlers) IPBans(w http.ResponseWriter, r *http.Request) {
	bans, err := h.deps.Chat.IPBans(r.Context())
	out := make([]ipBan, len(bans))
	for i, b := range bans {
		out[i] = ipBan{IPAddress: b.IP, Notes: b.Notes, CreatedAt: b.CreatedAt}
	}
	writeList(h, w, r, out, err)
}

// BanIP answers POST /api/admin/chat/users/ipbans/create.
func (h *Handlers) BanIP(w http.ResponseWriter, r *http.Request) {
	value, err := readValue[string](w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.deps.Chat.BanIP(r.Context(), strings.TrimSpace(value), "banned by an admin"); err != nil {
		h.writeError(w, r, chatError(err))
		return
	}
	ok(w)
}

// UnbanIP answers POST /api/admin/chat/users/ipbans/remove.
func (h *Handlers) UnbanIP(w http.ResponseWriter, r *http.Request) {
	value, err := readValue[string](w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.deps.Chat.UnbanIP(r.Context(), strings.TrimSpace(value)); err != nil {
		h.writeError(w, r, chatError(err))
		return
	}
	ok(w)
}

// SendChatSystemMessage answers POST /api/admin/chat/send: a SYSTEM
// message from the streamer.
func (h *Handlers) SendChatSystemMessage(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Body string `json:"body"`
	}
	if err := readJSON(w, r, &req); err != nil {
		h.writeError(w, r, err)
		return
	}
	if n := utf8.RuneCountInString(req.Body); n == 0 || n > 2000 {
		h.writeError(w, r, invalid("the message has %d characters: send 1 to 2000", n))
		return
	}
	if err := h.deps.Chat.SendSystem(req.Body); err != nil {
		h.writeError(w, r, chatError(err))
		return
	}
	ok(w)
}

type viewerSample struct {
	Time  time.Time `json:"time"`
	Value int       `json:"value"`
}

// ViewersOverTime answers GET /api/admin/viewersOverTime[?windowStart=RFC
// 3339 time]: viewer counts, a sample a minute, the last day by default.
func (h *Handlers) ViewersOverTime(w http.ResponseWriter, r *http.Request) {
	since := time.Now().Add(-24 * time.Hour)
	if v := r.URL.Query().Get("windowStart"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			h.writeError(w, r, invalid("windowStart %q is not an RFC 3339 time such as 2026-11-21T10:00:00Z", v))
			return
		}
		since = t
	}
	samples, err := h.deps.Viewers.OverTime(r.Context(), since)
	out := make([]viewerSample, len(samples))
	for i, s := range samples {
		out[i] = viewerSample{Time: s.At, Value: s.Count}
	}
	writeList(h, w, r, out, err)
}

func (h *Handlers) forwardedUser(r *http.Request) string {
	if h.deps.ForwardedUser == nil {
		return ""
	}
	return h.deps.ForwardedUser(r)
}
