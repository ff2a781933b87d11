package activitypub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/go-fed/activity/pub"
	"github.com/go-fed/activity/streams"
	"github.com/go-fed/activity/streams/vocab"

	"github.com/starling-live/starling/core/data"
)

// inboxMediaType reports whether a Content-Type is one the inbox takes.
func inboxMediaType(ct string) bool {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch mt {
	case "application/activity+json":
		return true
	case "application/ld+json":
		return params["profile"] == "https://www.w3.org/ns/activitystreams"
	}
	return false
}

// envelope is what the inbox reads of an activity before it is verified.
type envelope struct {
	ID    string          `json:"id"`
	Type  string          `json:"type"`
	Actor json.RawMessage `json:"actor"`
}

// actorID is the actor's id, given as a string or an object with an id.
func (e envelope) actorID() string {
	var s string
	if json.Unmarshal(e.Actor, &s) == nil {
		return s
	}
	var o struct {
		ID string `json:"id"`
	}
	json.Unmarshal(e.Actor, &o)
	return o.ID
}

// serveInbox takes an activity POSTed to our inbox or the shared inbox.
// Nothing is stored before its signature is verified.
func (f *Federation) serveInbox(w http.ResponseWriter, r *http.Request) {
	st, ok := f.site()
	if !ok || (r.PathValue("user") != "" && r.PathValue("user") != st.s.Federation.Username) {
		writeError(w, http.StatusNotFound, "no such inbox")
		return
	}
	now := time.Now()
	if !f.limits.Allow("ip:"+f.clientIP(r), now) {
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusTooManyRequests, "too many requests from your address: slow down")
		return
	}
	if !inboxMediaType(r.Header.Get("Content-Type")) {
		writeError(w, http.StatusUnsupportedMediaType, `send application/activity+json or application/ld+json; profile="https://www.w3.org/ns/activitystreams"`)
		return
	}
	body, tooBig, err := readBody(r, f.cfg.MaxBody)
	if tooBig {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the activity is larger than %d bytes", f.cfg.MaxBody))
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "the body could not be read")
		return
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil || env.Type == "" {
		writeError(w, http.StatusBadRequest, "the body is not an activity (JSON with a type)")
		return
	}
	actorID := env.actorID()
	actorHost := hostOf(actorID)
	if actorHost == "" {
		writeError(w, http.StatusBadRequest, "the activity has no actor")
		return
	}
	if blocked(st.s, actorHost) {
		writeError(w, http.StatusForbidden, "your server is blocked here")
		return
	}
	v, err := f.verify(r.Context(), r, body, actorID)
	if errors.Is(err, errBusy) {
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusTooManyRequests, err.Error())
		return
	}
	if err != nil {
		var gone errStatus
		if env.Type == "Delete" && errors.As(err, &gone) && (gone.code == http.StatusGone || gone.code == http.StatusNotFound) {
			// A deleted account we never knew: nothing to remove.
			w.WriteHeader(http.StatusAccepted)
			return
		}
		f.log.Info("refused an unverified activity", "type", env.Type, "actor", actorID, "err", err)
		writeError(w, http.StatusUnauthorized, "signature refused: "+err.Error())
		return
	}
	// Counted once verified: a stranger claiming to be a server cannot
	// spend that server's share.
	if !f.limits.Allow("host:"+actorHost, now) {
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusTooManyRequests, "too many requests from your server: slow down")
		return
	}
	if err := f.handle(r.Context(), st, v, body); err != nil {
		var ue userError
		if errors.As(err, &ue) {
			writeError(w, http.StatusBadRequest, ue.msg)
			return
		}
		f.log.Error("cannot take an activity", "type", env.Type, "actor", actorID, "err", err)
		writeError(w, http.StatusInternalServerError, "the activity could not be taken: send it again later")
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// userError is what is wrong with an activity, for its sender.
type userError struct{ msg string }

func (e userError) Error() string { return e.msg }

// handle acts on a verified activity through go-fed's resolver, each type
// with its own callback. Types we do not act on are taken and dropped.
func (f *Federation) handle(ctx context.Context, st site, v verified, body []byte) error {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return userError{"the body is not a JSON object"}
	}
	in := inbound{f: f, st: st, from: v.actor}
	res, err := streams.NewJSONResolver(in.follow, in.undo, in.like, in.announce, in.delete, in.update)
	if err != nil {
		return err
	}
	err = res.Resolve(ctx, m)
	if errors.Is(err, streams.ErrNoCallbackMatch) || errors.Is(err, streams.ErrUnhandledType) {
		return nil
	}
	return err
}

// inbound acts on one verified activity from one remote actor.
type inbound struct {
	f    *Federation
	st   site
	from data.RemoteActor
}

// check reads an activity's id and actor, which must be the signer.
func (in inbound) check(t vocab.Type, actor vocab.ActivityStreamsActorProperty) (string, error) {
	id, err := pub.GetId(t)
	if err != nil {
		return "", userError{"the activity has no id"}
	}
	if actor == nil || actor.Len() != 1 {
		return "", userError{"the activity must have one actor"}
	}
	a, err := pub.ToId(actor.At(0))
	if err != nil || a.String() != in.from.ID {
		return "", userError{"the activity's actor is not its signer"}
	}
	if hostOf(id.String()) != hostOf(in.from.ID) {
		return "", userError{"the activity's id is on another host than its actor"}
	}
	return id.String(), nil
}

// objectIDs are the ids of an activity's objects.
func objectIDs(o vocab.ActivityStreamsObjectProperty) []string {
	var out []string
	if o == nil {
		return nil
	}
	for it := o.Begin(); it != o.End(); it = it.Next() {
		if u, err := pub.ToId(it); err == nil {
			out = append(out, u.String())
		}
	}
	return out
}

// record stores a received activity, reporting false for a repeat.
func (in inbound) record(id, typ, object string) (bool, error) {
	return in.f.store.AddActivity(context.Background(), data.Activity{ID: id, Type: typ, Actor: in.from.ID, Object: object, CreatedAt: time.Now()})
}

func (in inbound) follow(ctx context.Context, a vocab.ActivityStreamsFollow) error {
	id, err := in.check(a, a.GetActivityStreamsActor())
	if err != nil {
		return err
	}
	objs := objectIDs(a.GetActivityStreamsObject())
	if len(objs) != 1 || objs[0] != in.st.actor() {
		return userError{"a Follow here must have this server's actor as its object"}
	}
	state := "approved"
	if in.st.s.Federation.Private {
		state = "pending"
	}
	fl, err := in.f.store.PutFollower(ctx, data.Follower{
		Actor: in.from.ID, Inbox: in.from.Inbox, SharedInbox: in.from.SharedInbox,
		Username: in.from.Username, Name: in.from.Name, Image: in.from.Image,
		FollowID: id, State: state, CreatedAt: time.Now(),
	})
	if err != nil {
		return err
	}
	fresh, err := in.record(id, "Follow", in.st.actor())
	if err != nil {
		return err
	}
	switch fl.State {
	case "approved":
		if err := in.f.accept(ctx, in.st, fl); err != nil {
			return err
		}
		if fresh {
			in.f.engage(in.st, "follow", in.from)
		}
		in.f.log.Info("a fediverse account follows the stream", "follower", fl.Username)
	case "pending":
		in.f.log.Info("a fediverse account asks to follow the stream: approve or reject it in the admin", "follower", fl.Username)
	}
	return nil
}

func (in inbound) undo(ctx context.Context, a vocab.ActivityStreamsUndo) error {
	if _, err := in.check(a, a.GetActivityStreamsActor()); err != nil {
		return err
	}
	o := a.GetActivityStreamsObject()
	if o == nil {
		return userError{"an Undo must have an object"}
	}
	for it := o.Begin(); it != o.End(); it = it.Next() {
		// An Undo of a Follow, embedded (Mastodon) or by id.
		isFollow := it.IsActivityStreamsFollow()
		if !isFollow {
			if u, err := pub.ToId(it); err == nil {
				if fl, err := in.f.store.Follower(ctx, in.from.ID); err == nil && fl.FollowID == u.String() {
					isFollow = true
				}
			}
		}
		if isFollow {
			if ok, err := in.f.store.DeleteFollower(ctx, in.from.ID); err != nil {
				return err
			} else if ok {
				in.f.log.Info("a fediverse account stopped following the stream", "follower", in.from.Username)
			}
		}
	}
	return nil
}

// ours reports whether iri is one of our posts.
func (in inbound) ours(iri string) bool {
	return strings.HasPrefix(iri, in.st.base+"/federation/posts/")
}

func (in inbound) engagement(t vocab.Type, actor vocab.ActivityStreamsActorProperty, object vocab.ActivityStreamsObjectProperty, typ, kind string) error {
	id, err := in.check(t, actor)
	if err != nil {
		return err
	}
	for _, o := range objectIDs(object) {
		if !in.ours(o) {
			continue
		}
		// A second like of one post (a new id, no Undo between) is
		// taken and not shown again.
		if again, err := in.f.store.HasActivity(context.Background(), in.from.ID, typ, o); err != nil || again {
			return err
		}
		fresh, err := in.record(id, typ, o)
		if err != nil {
			return err
		}
		if fresh {
			in.f.engage(in.st, kind, in.from)
		}
		return nil
	}
	return nil
}

func (in inbound) like(ctx context.Context, a vocab.ActivityStreamsLike) error {
	return in.engagement(a, a.GetActivityStreamsActor(), a.GetActivityStreamsObject(), "Like", "like")
}

func (in inbound) announce(ctx context.Context, a vocab.ActivityStreamsAnnounce) error {
	return in.engagement(a, a.GetActivityStreamsActor(), a.GetActivityStreamsObject(), "Announce", "repost")
}

// delete removes an actor that deleted itself: as follower and from the
// cache of keys.
func (in inbound) delete(ctx context.Context, a vocab.ActivityStreamsDelete) error {
	if _, err := in.check(a, a.GetActivityStreamsActor()); err != nil {
		return err
	}
	for _, o := range objectIDs(a.GetActivityStreamsObject()) {
		if o != in.from.ID {
			continue // a post of theirs: we keep none
		}
		if _, err := in.f.store.DeleteFollower(ctx, o); err != nil {
			return err
		}
		if err := in.f.store.DeleteRemoteActor(ctx, o); err != nil {
			return err
		}
		in.f.log.Info("a fediverse account was deleted; it no longer follows the stream", "account", in.from.Username)
	}
	return nil
}

// update refreshes a cached actor from its server.
func (in inbound) update(ctx context.Context, a vocab.ActivityStreamsUpdate) error {
	if _, err := in.check(a, a.GetActivityStreamsActor()); err != nil {
		return err
	}
	for _, o := range objectIDs(a.GetActivityStreamsObject()) {
		if o != in.from.ID {
			continue
		}
		fresh, err := in.f.fetchActor(ctx, o)
		if err != nil {
			return fmt.Errorf("refresh %s: %w", o, err)
		}
		if fl, err := in.f.store.Follower(ctx, o); err == nil {
			fl.Inbox, fl.SharedInbox, fl.Username, fl.Name, fl.Image = fresh.Inbox, fresh.SharedInbox, fresh.Username, fresh.Name, fresh.Image
			if _, err := in.f.store.PutFollower(ctx, fl); err != nil {
				return err
			}
		}
	}
	return nil
}

// engage tells the chat, when the admin shows engagement.
func (f *Federation) engage(st site, kind string, a data.RemoteActor) {
	if f.engaged == nil || !st.s.Federation.ShowEngagement {
		return
	}
	f.engaged(Engagement{Type: kind, Handle: a.Username, Profile: a.ID, Avatar: a.Image})
}
