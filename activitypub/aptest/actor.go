package aptest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"time"
)

const (
	asContext = "https://www.w3.org/ns/activitystreams"
	// public is the special collection addressing everyone
	// (https://www.w3.org/TR/activitypub/#public-addressing).
	public = "https://www.w3.org/ns/activitystreams#Public"
)

// Actor is a Person on a Server, with its own key. Its methods are safe
// for concurrent use.
type Actor struct {
	srv  *Server
	name string          // preferredUsername, and the last path segment of its id
	key  *rsa.PrivateKey // from keyPool; never changed
	pem  string          // key's public half, PEM
	// displayName is the served name; guarded by srv.mu.
	displayName string
}

// Name is the actor's username (preferredUsername).
func (a *Actor) Name() string { return a.name }

// Server is the remote server the actor is on.
func (a *Actor) Server() *Server { return a.srv }

// ID is the actor's id, "http://127.0.0.1:PORT/users/NAME".
func (a *Actor) ID() string { return a.srv.URL() + "/users/" + a.name }

// KeyID names the actor's key, ID()+"#main-key", as Mastodon does.
func (a *Actor) KeyID() string { return a.ID() + "#main-key" }

// Inbox is the actor's own inbox, ID()+"/inbox".
func (a *Actor) Inbox() string { return a.ID() + "/inbox" }

// SharedInbox is the Server's shared inbox, URL()+"/inbox".
func (a *Actor) SharedInbox() string { return a.srv.URL() + "/inbox" }

// Outbox is ID()+"/outbox", served as an empty collection.
func (a *Actor) Outbox() string { return a.ID() + "/outbox" }

// Followers is ID()+"/followers", served as an empty collection.
func (a *Actor) Followers() string { return a.ID() + "/followers" }

// ProfileURL is the actor's human-facing url, URL()+"/@NAME" (not served).
func (a *Actor) ProfileURL() string { return a.srv.URL() + "/@" + a.name }

// Key is the actor's private key, to sign with it as another actor (see
// SignOptions.Key). Actors of different Servers may share a key.
func (a *Actor) Key() *rsa.PrivateKey { return a.key }

// SetName changes the name in the actor's served document, for tests of
// Update.
func (a *Actor) SetName(name string) {
	a.srv.mu.Lock()
	defer a.srv.mu.Unlock()
	a.displayName = name
}

// Document is the actor's document as served at ID(), shaped like
// Mastodon's.
func (a *Actor) Document() map[string]any {
	a.srv.mu.Lock()
	name := a.displayName
	a.srv.mu.Unlock()
	return map[string]any{
		"@context":                  []any{asContext, "https://w3id.org/security/v1"},
		"id":                        a.ID(),
		"type":                      "Person",
		"preferredUsername":         a.name,
		"name":                      name,
		"inbox":                     a.Inbox(),
		"outbox":                    a.Outbox(),
		"followers":                 a.Followers(),
		"manuallyApprovesFollowers": false,
		"endpoints":                 map[string]any{"sharedInbox": a.SharedInbox()},
		"icon":                      map[string]any{"type": "Image", "mediaType": "image/png", "url": a.srv.URL() + "/avatars/" + a.name + ".png"},
		"url":                       a.ProfileURL(),
		"publicKey": map[string]any{
			"id":           a.KeyID(),
			"owner":        a.ID(),
			"publicKeyPem": a.pem,
		},
	}
}

// SignedRequest builds a request signed by the actor: Date, Host, and for
// a body (sent as application/activity+json) Digest, signing
// "(request-target) host date digest", or "(request-target) host date"
// without a body. To build a hostile request, change it afterwards, or
// sign it again with Sign.
func (a *Actor) SignedRequest(ctx context.Context, method, url string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, err
	}
	if body != nil {
		SetBody(req, body)
		req.Header.Set("Content-Type", "application/activity+json")
	}
	req.Header.Set("Accept", "application/activity+json")
	req.Header.Set("User-Agent", "aptest (+"+a.srv.URL()+")")
	if err := a.Sign(req, body, SignOptions{}); err != nil {
		return nil, err
	}
	return req, nil
}

// Post sends activity, signed, as application/activity+json to inbox. The
// response's body is already read (up to 1 MiB) and closed; reading it
// again from resp.Body works, closing it is not needed.
func (a *Actor) Post(ctx context.Context, inbox string, activity map[string]any) (*http.Response, error) {
	body, err := json.Marshal(activity)
	if err != nil {
		return nil, fmt.Errorf("encode activity: %w", err)
	}
	req, err := a.SignedRequest(ctx, http.MethodPost, inbox, body)
	if err != nil {
		return nil, err
	}
	return a.srv.do(req)
}

// Get sends a signed GET, asking for application/activity+json, as a
// server in authorized-fetch mode fetches. The response is read as for
// Post.
func (a *Actor) Get(ctx context.Context, url string) (*http.Response, error) {
	req, err := a.SignedRequest(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return a.srv.do(req)
}

// do sends req with the Server's client and reads the response.
func (s *Server) do(req *http.Request) (*http.Response, error) {
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read response: %w", req.Method, req.URL, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

// newActivity is an activity by the actor, with a fresh id under its
// Server.
func (a *Actor) newActivity(typ string, object any) map[string]any {
	return map[string]any{
		"@context": asContext,
		"id":       a.srv.URL() + "/activities/" + strings.ToLower(rand.Text()),
		"type":     typ,
		"actor":    a.ID(),
		"object":   object,
	}
}

// Follow asks to follow object (an actor id).
func (a *Actor) Follow(object string) map[string]any { return a.newActivity("Follow", object) }

// Undo takes back inner (a Follow, Like or Announce of the actor's),
// embedding it without its @context, as Mastodon does.
func (a *Actor) Undo(inner map[string]any) map[string]any {
	embedded := maps.Clone(inner)
	delete(embedded, "@context")
	return a.newActivity("Undo", embedded)
}

// Like likes object.
func (a *Actor) Like(object string) map[string]any { return a.newActivity("Like", object) }

// Announce boosts object publicly, addressed as Mastodon addresses a
// boost: to the public, cc the actor's followers.
func (a *Actor) Announce(object string) map[string]any {
	act := a.newActivity("Announce", object)
	act["published"] = time.Now().UTC().Format(time.RFC3339)
	act["to"] = []any{public}
	act["cc"] = []any{a.Followers()}
	return act
}

// Delete deletes the actor itself (object is the actor's id), as Mastodon
// sends when an account is deleted.
func (a *Actor) Delete() map[string]any {
	act := a.newActivity("Delete", a.ID())
	act["to"] = []any{public}
	return act
}

// Update announces the actor's document as it is now (see SetName).
func (a *Actor) Update() map[string]any {
	doc := a.Document()
	delete(doc, "@context")
	act := a.newActivity("Update", doc)
	act["to"] = []any{public}
	return act
}
