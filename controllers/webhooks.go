package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/starling-live/starling/core/webhooks"
)

// webhookService is the outbound webhooks, as the admin API sees them.
type webhookService interface {
	List(ctx context.Context) ([]webhooks.Webhook, error)
	Create(ctx context.Context, url string, events []string) (webhooks.Created, error)
	Delete(ctx context.Context, id int64) error
}

// webhook is Owncast's models.Webhook, with what Starling adds: how the
// last delivery went.
type webhook struct {
	ID        int64      `json:"id"`
	URL       string     `json:"url"`
	Events    []string   `json:"events"`
	Timestamp time.Time  `json:"timestamp"`
	LastUsed  *time.Time `json:"lastUsed"`
	// LastError is why the latest failed delivery failed, at LastErrorAt;
	// "" and null if none has.
	LastError   string     `json:"lastError"`
	LastErrorAt *time.Time `json:"lastErrorAt"`
}

func webhookJSON(w webhooks.Webhook) webhook {
	utc := func(t *time.Time) *time.Time {
		if t == nil {
			return nil
		}
		u := t.UTC()
		return &u
	}
	return webhook{ID: w.ID, URL: w.URL, Events: w.Events, Timestamp: w.CreatedAt.UTC(),
		LastUsed: utc(w.LastUsed), LastError: w.LastError, LastErrorAt: utc(w.LastErrorAt)}
}

// createdWebhook is the answer to a create: the webhook and, this once,
// the secret its deliveries are signed with.
type createdWebhook struct {
	webhook
	Secret string `json:"secret"`
}

func webhookError(err error) error {
	switch {
	case errors.Is(err, webhooks.ErrInvalid):
		return &apiError{status: http.StatusBadRequest, message: err.Error(), cause: err}
	case errors.Is(err, webhooks.ErrUnknownWebhook):
		return &apiError{status: http.StatusNotFound, message: "id: no webhook has that id; GET /api/admin/webhooks lists them", cause: err}
	}
	return err
}

// Webhooks answers GET /api/admin/webhooks: every webhook, never a secret.
func (h *Handlers) Webhooks(w http.ResponseWriter, r *http.Request) {
	hooks, err := h.deps.Webhooks.List(r.Context())
	out := make([]webhook, len(hooks))
	for i, hk := range hooks {
		out[i] = webhookJSON(hk)
	}
	writeList(h, w, r, out, err)
}

// CreateWebhook answers POST /api/admin/webhooks/create {"url": ...,
// "events": [...]}: the new webhook, with its signing secret.
func (h *Handlers) CreateWebhook(w http.ResponseWriter, r *http.Request) {
	var req struct {
		URL    string   `json:"url"`
		Events []string `json:"events"`
	}
	if err := readJSON(w, r, &req); err != nil {
		h.writeError(w, r, err)
		return
	}
	c, err := h.deps.Webhooks.Create(r.Context(), req.URL, req.Events)
	if err != nil {
		h.writeError(w, r, webhookError(err))
		return
	}
	writeJSON(w, http.StatusOK, createdWebhook{webhook: webhookJSON(c.Webhook), Secret: c.Secret})
}

// DeleteWebhook answers POST /api/admin/webhooks/delete {"id": N}.
func (h *Handlers) DeleteWebhook(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID *int64 `json:"id"`
	}
	if err := readJSON(w, r, &req); err != nil {
		h.writeError(w, r, err)
		return
	}
	if req.ID == nil || *req.ID < 1 {
		h.writeError(w, r, invalid(`id is missing: send {"id": N}, N from GET /api/admin/webhooks`))
		return
	}
	if err := h.deps.Webhooks.Delete(r.Context(), *req.ID); err != nil {
		h.writeError(w, r, webhookError(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": fmt.Sprintf("deleted webhook %d", *req.ID)})
}
