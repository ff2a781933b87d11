package controllers

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/starling-live/starling/chat"
	"github.com/starling-live/starling/core/data"
)

// botService is the integrations' access tokens (chat.Bots), as the API
// sees them.
type botService interface {
	Create(ctx context.Context, name string, scopes []string) (chat.BotRegistration, error)
	List(ctx context.Context) ([]*chat.Bot, error)
	Delete(ctx context.Context, id, token string) error
}

// accessToken is Owncast's ExternalAPIUser (models/externalAPIUser.go).
// AccessToken is set in the answer to create only: the server keeps the
// token's hash, never the token.
type accessToken struct {
	ID           string     `json:"id"`
	AccessToken  string     `json:"accessToken,omitempty"`
	DisplayName  string     `json:"displayName"`
	DisplayColor int        `json:"displayColor"`
	Type         string     `json:"type"`
	Scopes       []string   `json:"scopes"`
	IsBot        bool       `json:"isBot"`
	CreatedAt    time.Time  `json:"createdAt"`
	LastUsedAt   *time.Time `json:"lastUsedAt"`
	DisabledAt   *time.Time `json:"disabledAt,omitempty"`
}

func accessTokenOf(b *chat.Bot) accessToken {
	return accessToken{
		ID:           b.User.ID,
		DisplayName:  b.User.DisplayName,
		DisplayColor: b.User.DisplayColor,
		// Owncast's user type of integrations.
		Type:       "API",
		Scopes:     b.Scopes,
		IsBot:      true,
		CreatedAt:  b.User.CreatedAt,
		LastUsedAt: b.LastUsedAt,
		DisabledAt: b.User.DisabledAt,
	}
}

// botError maps the access tokens' errors to API errors.
func botError(err error) error {
	switch {
	case errors.Is(err, data.ErrNameTaken):
		return &apiError{status: http.StatusConflict, message: err.Error(), cause: err}
	case errors.Is(err, chat.ErrInvalidBot):
		return &apiError{status: http.StatusBadRequest, message: err.Error(), cause: err}
	case errors.Is(err, chat.ErrUnknownBot):
		return &apiError{status: http.StatusNotFound, message: "no access token has that id or token: see GET /api/admin/accesstokens", cause: err}
	}
	return err
}

// AccessTokens answers GET /api/admin/accesstokens: every token's bot and
// scopes, never the token itself.
func (h *Handlers) AccessTokens(w http.ResponseWriter, r *http.Request) {
	bots, err := h.deps.Bots.List(r.Context())
	out := make([]accessToken, len(bots))
	for i, b := range bots {
		out[i] = accessTokenOf(b)
	}
	writeList(h, w, r, out, err)
}

// CreateAccessToken answers POST /api/admin/accesstokens/create
// {"name": "...", "scopes": [...]}: a new bot and its token, shown in this
// answer only.
func (h *Handlers) CreateAccessToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}
	if err := readJSON(w, r, &req); err != nil {
		h.writeError(w, r, err)
		return
	}
	reg, err := h.deps.Bots.Create(r.Context(), req.Name, req.Scopes)
	if err != nil {
		h.writeError(w, r, botError(err))
		return
	}
	out := accessTokenOf(reg.Bot)
	out.AccessToken = reg.AccessToken
	writeJSON(w, http.StatusOK, out)
}

// DeleteAccessToken answers POST /api/admin/accesstokens/delete. The
// token is named by its "id", as the list shows it; Owncast's admin sends
// {"token": "..."}, the token itself, which works too.
func (h *Handlers) DeleteAccessToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	if err := readJSON(w, r, &req); err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.deps.Bots.Delete(r.Context(), req.ID, req.Token); err != nil {
		h.writeError(w, r, botError(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "deleted token"})
}
