package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/starling-live/starling/chat"
	"github.com/starling-live/starling/core"
)

// The integrations API (Owncast's /api/integrations/...): bots call it
// with an access token as "Authorization: Bearer TOKEN". The web server
// authenticates the token for the whole prefix and checks each route's
// scope; the handlers find the bot in the request's context.

type botKey struct{}

// WithBot returns ctx carrying the bot an integration request comes from.
func WithBot(ctx context.Context, b *chat.Bot) context.Context {
	return context.WithValue(ctx, botKey{}, b)
}

// BotFrom returns the bot WithBot put in ctx, or nil.
func BotFrom(ctx context.Context) *chat.Bot {
	b, _ := ctx.Value(botKey{}).(*chat.Bot)
	return b
}

// maxStreamTitleChars is the longest stream title a bot may set.
const maxStreamTitleChars = 200

// integrationError maps the chat's answers to an integration to API
// errors, naming the field at fault.
func integrationError(err error) error {
	switch {
	case errors.Is(err, chat.ErrMessageTooLong), errors.Is(err, chat.ErrEmptyMessage):
		return &apiError{status: http.StatusBadRequest, message: fmt.Sprintf(`"body": %v`, err), cause: err}
	case errors.Is(err, chat.ErrChatOff):
		return &apiError{status: http.StatusConflict, message: err.Error(), cause: err}
	case errors.Is(err, chat.ErrUnknownClient):
		return &apiError{status: http.StatusNotFound, message: "no chat client with that id is connected: see GET /api/integrations/clients", cause: err}
	}
	return chatError(err)
}

// message is the body of the chat integrations: Owncast's events with
// a body. Author is the chat action's.
type message struct {
	Body   string `json:"body"`
	Author string `json:"author"`
}

// readMessage decodes a message, refusing one without a body.
func readMessage(w http.ResponseWriter, r *http.Request) (message, error) {
	var m message
	if err := readJSON(w, r, &m); err != nil {
		return m, err
	}
	if strings.TrimSpace(m.Body) == "" {
		return m, invalid(`"body" is missing or empty: send {"body": "the message"}`)
	}
	return m, nil
}

// bot is the request's bot. The web server's gate puts it there; without
// it the route was mounted outside the gate, and nothing is done.
func (h *Handlers) bot(w http.ResponseWriter, r *http.Request) *chat.Bot {
	b := BotFrom(r.Context())
	if b == nil {
		h.writeError(w, r, &apiError{status: http.StatusUnauthorized, message: "an access token is required: Authorization: Bearer TOKEN",
			cause: errors.New("integration route reached without the token gate")})
	}
	return b
}

func sent(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "sent"})
}

// SendIntegrationChatMessage answers POST /api/integrations/chat/send
// {"body": "..."} (scope CAN_SEND_MESSAGES): a chat message from the bot,
// under its name and colour. Owncast's deprecated /chat/user lands here
// too; its "user" field is not honoured, since a token may post only as
// its own bot.
func (h *Handlers) SendIntegrationChatMessage(w http.ResponseWriter, r *http.Request) {
	b := h.bot(w, r)
	if b == nil {
		return
	}
	req, err := readMessage(w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.deps.Chat.SendAs(b.User, req.Body); err != nil {
		h.writeError(w, r, integrationError(err))
		return
	}
	sent(w)
}

// SendIntegrationSystemMessage answers POST /api/integrations/chat/system
// {"body": "..."} (scope CAN_SEND_SYSTEM_MESSAGES): a SYSTEM message from
// the server, to everyone.
func (h *Handlers) SendIntegrationSystemMessage(w http.ResponseWriter, r *http.Request) {
	req, err := readMessage(w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if n := utf8.RuneCountInString(req.Body); n > chat.MaxSystemMessageChars {
		h.writeError(w, r, invalid(`"body" has %d characters: the limit is %d`, n, chat.MaxSystemMessageChars))
		return
	}
	if err := h.deps.Chat.SendSystem(req.Body); err != nil {
		h.writeError(w, r, integrationError(err))
		return
	}
	sent(w)
}

// SendIntegrationSystemMessageToClient answers POST
// /api/integrations/chat/system/client/{clientId} {"body": "..."} (scope
// CAN_SEND_SYSTEM_MESSAGES): a SYSTEM message to one connection, by the id
// GET /api/integrations/clients shows.
func (h *Handlers) SendIntegrationSystemMessageToClient(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("clientId")
	id, err := strconv.ParseUint(raw, 10, 64)
	if err != nil || id == 0 {
		h.writeError(w, r, invalid(`the client id %q is not a client's "id": see GET /api/integrations/clients`, raw))
		return
	}
	req, err := readMessage(w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.deps.Chat.SendSystemTo(r.Context(), id, req.Body); err != nil {
		h.writeError(w, r, integrationError(err))
		return
	}
	sent(w)
}

// SendIntegrationChatAction answers POST /api/integrations/chat/action
// {"body": "...", "author": "..."} (scope CAN_SEND_SYSTEM_MESSAGES): a
// CHAT_ACTION line for everyone, such as "Alice followed"; author, if
// given, leads it in bold.
func (h *Handlers) SendIntegrationChatAction(w http.ResponseWriter, r *http.Request) {
	req, err := readMessage(w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if n := utf8.RuneCountInString(strings.TrimSpace(req.Author)); n > core.MaxChatNameLength {
		h.writeError(w, r, invalid(`"author" has %d characters: a name has at most %d`, n, core.MaxChatNameLength))
		return
	}
	if err := h.deps.Chat.SendAction(req.Body, req.Author); err != nil {
		h.writeError(w, r, integrationError(err))
		return
	}
	sent(w)
}

// IntegrationSetStreamTitle answers POST /api/integrations/streamtitle
// {"value": "..."} (scope HAS_ADMIN_ACCESS).
func (h *Handlers) IntegrationSetStreamTitle(w http.ResponseWriter, r *http.Request) {
	value, err := readValue[string](w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	title := strings.TrimSpace(value)
	if n := utf8.RuneCountInString(title); n > maxStreamTitleChars {
		h.writeError(w, r, invalid(`"value" has %d characters: a stream title has at most %d`, n, maxStreamTitleChars))
		return
	}
	if _, err := h.deps.Settings.Update(r.Context(), func(s *core.Settings) error { s.StreamTitle = title; return nil }); err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "changed"})
}

// IntegrationChatHistory answers GET /api/integrations/chat (scope
// HAS_ADMIN_ACCESS): the recent visible messages, oldest first.
func (h *Handlers) IntegrationChatHistory(w http.ResponseWriter, r *http.Request) {
	hist, err := h.deps.Chat.History(r.Context())
	writeList(h, w, r, hist, err)
}
