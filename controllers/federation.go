package controllers

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/starling-live/starling/activitypub"
)

// federation is the fediverse actor, as the admin API sees it.
type federation interface {
	Followers(ctx context.Context, state string, limit, offset int) ([]activitypub.Follower, error)
	Approve(ctx context.Context, actor string, approved bool) error
	Send(ctx context.Context, text string) (string, error)
	Actions(ctx context.Context, limit, offset int) ([]activitypub.Action, error)
	Posts(ctx context.Context, limit, offset int) ([]activitypub.Post, error)
	Status(ctx context.Context) activitypub.Status
}

func federationError(err error) error {
	switch {
	case errors.Is(err, activitypub.ErrOff):
		return &apiError{status: http.StatusConflict, message: err.Error(), cause: err}
	case errors.Is(err, activitypub.ErrInvalidPost):
		return &apiError{status: http.StatusBadRequest, message: "value: " + err.Error(), cause: err}
	case errors.Is(err, activitypub.ErrNoFollower):
		return &apiError{status: http.StatusNotFound, message: "actorIRI: " + err.Error() + "; GET /api/admin/followers/pending lists the requests", cause: err}
	}
	return err
}

// maxListed is how many followers or actions one admin request lists.
const maxListed = 10_000

// listParams reads ?offset= and ?limit= (default and most maxListed).
func listParams(r *http.Request) (offset, limit int, err error) {
	limit = maxListed
	q := r.URL.Query()
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxListed {
			return 0, 0, invalid("limit must be 1 to %d", maxListed)
		}
	}
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			return 0, 0, invalid("offset must be 0 or more")
		}
	}
	return offset, limit, nil
}

func (h *Handlers) followers(state string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		offset, limit, err := listParams(r)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		list, err := h.deps.Federation.Followers(r.Context(), state, limit, offset)
		writeList(h, w, r, list, err)
	}
}

// Followers answers GET /api/admin/followers, FollowRequests
// /api/admin/followers/pending and BlockedFollowers
// /api/admin/followers/blocked (the requests and followers rejected).
func (h *Handlers) Followers() http.HandlerFunc      { return h.followers("approved") }
func (h *Handlers) FollowRequests() http.HandlerFunc { return h.followers("pending") }
func (h *Handlers) BlockedFollowers() http.HandlerFunc {
	return h.followers("rejected")
}

// ApproveFollower answers POST /api/admin/followers/approve
// {"actorIRI": ..., "approved": true|false}.
func (h *Handlers) ApproveFollower(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ActorIRI string `json:"actorIRI"`
		Approved *bool  `json:"approved"`
	}
	if err := readJSON(w, r, &req); err != nil {
		h.writeError(w, r, err)
		return
	}
	if req.ActorIRI == "" || req.Approved == nil {
		h.writeError(w, r, invalid(`send {"actorIRI": "https://...", "approved": true or false}`))
		return
	}
	if err := h.deps.Federation.Approve(r.Context(), req.ActorIRI, *req.Approved); err != nil {
		h.writeError(w, r, federationError(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "follower updated"})
}

// SendFederatedPost answers POST /api/admin/federation/send {"value":
// "text"}: a post to every follower.
func (h *Handlers) SendFederatedPost(w http.ResponseWriter, r *http.Request) {
	text, err := readValue[string](w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	id, err := h.deps.Federation.Send(r.Context(), text)
	if err != nil {
		h.writeError(w, r, federationError(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "sent", "id": id})
}

// FederatedActions answers GET /api/admin/federation/actions: the
// follows, likes and boosts received, newest first.
func (h *Handlers) FederatedActions(w http.ResponseWriter, r *http.Request) {
	offset, limit, err := listParams(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	list, err := h.deps.Federation.Actions(r.Context(), limit, offset)
	writeList(h, w, r, list, err)
}

// FederatedPosts answers GET /api/admin/federation/posts (Starling's):
// the posts sent, newest first, and how their deliveries went.
func (h *Handlers) FederatedPosts(w http.ResponseWriter, r *http.Request) {
	offset, limit, err := listParams(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	list, err := h.deps.Federation.Posts(r.Context(), limit, offset)
	writeList(h, w, r, list, err)
}
