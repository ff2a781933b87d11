package activitypub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/starling-live/starling/core/data"
)

// ErrOff is returned by what needs federation on.
var ErrOff = errors.New("the fediverse is off: enable it (config/federation/enable) and set the server URL (config/serverurl)")

// ErrInvalidPost wraps what is wrong with a post the admin wrote.
var ErrInvalidPost = errors.New("invalid post")

// ErrNoFollower is returned for an actor that asked nothing of us.
var ErrNoFollower = errors.New("no such follower or follow request")

func followerOf(d data.Follower) Follower {
	return Follower{Link: d.Actor, Name: d.Name, Username: d.Username, Image: d.Image, Timestamp: d.CreatedAt, Approved: d.ApprovedAt}
}

// Followers returns the followers in state ("approved", "pending" or
// "rejected"), oldest first.
func (f *Federation) Followers(ctx context.Context, state string, limit, offset int) ([]Follower, error) {
	list, err := f.store.Followers(ctx, state, limit, offset)
	if err != nil {
		return nil, err
	}
	out := make([]Follower, len(list))
	for i, d := range list {
		out[i] = followerOf(d)
	}
	return out, nil
}

// Approve approves a follow request (which sends the Accept) or rejects
// a request or a follower (who hears nothing more from us).
func (f *Federation) Approve(ctx context.Context, actor string, approved bool) error {
	st, ok := f.site()
	if !ok {
		return ErrOff
	}
	fl, err := f.store.Follower(ctx, actor)
	if errors.Is(err, data.ErrNotFound) {
		return ErrNoFollower
	}
	if err != nil {
		return err
	}
	state := "rejected"
	if approved {
		state = "approved"
	}
	if _, err := f.store.SetFollowerState(ctx, actor, state, time.Now()); err != nil {
		return err
	}
	if approved && fl.State != "approved" {
		fl.State = "approved"
		if err := f.accept(ctx, st, fl); err != nil {
			return err
		}
		f.engage(st, "follow", data.RemoteActor{ID: fl.Actor, Username: fl.Username, Image: fl.Image})
	}
	f.log.Info("the admin decided on a follower", "follower", fl.Username, "approved", approved)
	return nil
}

// maxPostLength bounds a post the admin sends by hand, in characters.
const maxPostLength = 500

// Send sends a post the admin wrote to every follower.
func (f *Federation) Send(ctx context.Context, text string) (string, error) {
	st, ok := f.site()
	if !ok {
		return "", ErrOff
	}
	text = strings.TrimSpace(text)
	if text == "" {
		return "", fmt.Errorf("%w: it is empty: write something", ErrInvalidPost)
	}
	if n := utf8.RuneCountInString(text); n > maxPostLength {
		return "", fmt.Errorf("%w: it is %d characters long: shorten it to %d", ErrInvalidPost, n, maxPostLength)
	}
	return f.publish(ctx, st, post{kind: kindManual, content: paragraphs(text), sensitive: st.s.NSFW})
}

// Action is an activity received, as the admin sees it (Owncast's shape).
type Action struct {
	IRI       string    `json:"iri"`
	ActorIRI  string    `json:"actorIRI"`
	Type      string    `json:"type"`
	Object    string    `json:"object,omitempty"`
	Timestamp time.Time `json:"timestamp"`
}

// Actions returns the follows, likes and boosts received, newest first.
func (f *Federation) Actions(ctx context.Context, limit, offset int) ([]Action, error) {
	list, err := f.store.Activities(ctx, []string{"Follow", "Like", "Announce"}, limit, offset)
	if err != nil {
		return nil, err
	}
	out := make([]Action, len(list))
	for i, a := range list {
		out[i] = Action{IRI: a.ID, ActorIRI: a.Actor, Type: a.Type, Object: a.Object, Timestamp: a.CreatedAt}
	}
	return out, nil
}

// Post is one of our posts and how its deliveries went.
type Post struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// URL is the Note's id; Content its HTML.
	URL        string    `json:"url,omitempty"`
	Content    string    `json:"content,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
	Recipients int       `json:"recipients"`
	Delivered  int       `json:"delivered"`
	Failed     int       `json:"failed"`
	Pending    int       `json:"pending"`
}

// Posts returns our posts, newest first, with their delivery counts.
func (f *Federation) Posts(ctx context.Context, limit, offset int) ([]Post, error) {
	list, err := f.store.Posts(ctx, nil, limit, offset)
	if err != nil {
		return nil, err
	}
	out := make([]Post, len(list))
	for i, p := range list {
		var m struct {
			Object struct {
				ID      string `json:"id"`
				Content string `json:"content"`
			} `json:"object"`
		}
		json.Unmarshal(p.Activity, &m)
		out[i] = Post{
			ID: p.ID, Kind: p.Kind, CreatedAt: p.CreatedAt,
			Recipients: p.Recipients, Delivered: p.Delivered, Failed: p.Failed,
			Pending: max(p.Recipients-p.Delivered-p.Failed, 0),
		}
		if p.Kind != kindUpdate {
			out[i].URL, out[i].Content = m.Object.ID, m.Object.Content
		}
	}
	return out, nil
}

// Status is how the fediverse actor is doing, for the admin's dashboard.
type Status struct {
	Enabled bool `json:"enabled"`
	// Handle is @user@host, as followers search for it.
	Handle    string `json:"handle,omitempty"`
	Followers int    `json:"followers"`
	Pending   int    `json:"pending"`
	// Warnings say what keeps followers from hearing, and what to do.
	Warnings []string `json:"warnings,omitempty"`
}

// Status returns the actor's status.
func (f *Federation) Status(ctx context.Context) Status {
	s := f.settings.Get()
	st, ok := f.site()
	if !ok {
		if s.Federation.Enabled {
			return Status{Warnings: []string{"The fediverse is enabled but the server URL is not set: set it (config/serverurl) to the https address viewers use."}}
		}
		return Status{}
	}
	out := Status{Enabled: true, Handle: "@" + st.handle()}
	out.Followers, _ = f.store.CountFollowers(ctx, "approved")
	out.Pending, _ = f.store.CountFollowers(ctx, "pending")
	if u, err := url.Parse(st.base); err == nil && u.Scheme != "https" && !isLocal(u.Hostname()) {
		out.Warnings = append(out.Warnings, "The server URL "+st.base+" is not https: Mastodon and other fediverse servers look accounts up over https only. Put Starling behind a TLS reverse proxy (see the README) and set the server URL to its https address.")
	}
	if out.Pending > 0 {
		out.Warnings = append(out.Warnings, fmt.Sprintf("%d fediverse accounts ask to follow the stream: approve or reject them (followers/approve).", out.Pending))
	}
	return out
}

// isLocal reports whether host is this machine or a private network's,
// where plain http is a test or a private deployment.
func isLocal(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && (a.IsLoopback() || a.IsPrivate())
}
