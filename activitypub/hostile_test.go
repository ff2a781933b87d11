package activitypub

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/starling-live/starling/activitypub/aptest"
	"github.com/starling-live/starling/core"
)

// TestInboxRefusesHostileRequests: each request an attacker could make is
// refused with the status that says why, and nothing is stored: no
// follower, no activity, no Accept sent.
func TestInboxRefusesHostileRequests(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		want int
		// build returns the request to send, given the attacker's actor
		// and a second one on another server.
		build func(t *testing.T, r *rig, a, other *aptest.Actor) *http.Request
		// setup, if set, changes our settings first.
		setup func(*core.Settings)
	}{
		{name: "no signature", want: 401, build: func(t *testing.T, r *rig, a, _ *aptest.Actor) *http.Request {
			req := signed(t, r, a)
			req.Header.Del("Signature")
			return req
		}},
		{name: "signed with another key than the actor's", want: 401, build: func(t *testing.T, r *rig, a, _ *aptest.Actor) *http.Request {
			req := signed(t, r, a)
			must(t, a.Sign(req, body(r, a), aptest.SignOptions{Key: a.Server().NewActor("mallory").Key()}))
			return req
		}},
		{name: "body changed after signing", want: 401, build: func(t *testing.T, r *rig, a, _ *aptest.Actor) *http.Request {
			req := signed(t, r, a)
			forged := bytes.Replace(body(r, a), []byte(`"Follow"`), []byte(`"Like"`), 1)
			aptest.SetBody(req, forged)
			return req
		}},
		{name: "Date two hours old", want: 401, build: func(t *testing.T, r *rig, a, _ *aptest.Actor) *http.Request {
			req := signed(t, r, a)
			must(t, a.Sign(req, body(r, a), aptest.SignOptions{Date: time.Now().Add(-2 * time.Hour)}))
			return req
		}},
		{name: "Date two hours ahead", want: 401, build: func(t *testing.T, r *rig, a, _ *aptest.Actor) *http.Request {
			req := signed(t, r, a)
			must(t, a.Sign(req, body(r, a), aptest.SignOptions{Date: time.Now().Add(2 * time.Hour)}))
			return req
		}},
		{name: "Digest of another body, signed", want: 401, build: func(t *testing.T, r *rig, a, _ *aptest.Actor) *http.Request {
			req := signed(t, r, a)
			// The Digest and the signature agree with each other, not
			// with the body sent.
			must(t, a.Sign(req, []byte(`{"type":"Follow"}`), aptest.SignOptions{}))
			return req
		}},
		{name: "signature that does not cover the digest", want: 401, build: func(t *testing.T, r *rig, a, _ *aptest.Actor) *http.Request {
			req := signed(t, r, a)
			must(t, a.Sign(req, body(r, a), aptest.SignOptions{Headers: []string{"(request-target)", "host", "date"}}))
			return req
		}},
		{name: "signed for another host", want: 401, build: func(t *testing.T, r *rig, a, _ *aptest.Actor) *http.Request {
			req := signed(t, r, a)
			req.Host = "elsewhere.example"
			must(t, a.Sign(req, body(r, a), aptest.SignOptions{}))
			req.Host = ""
			return req
		}},
		{name: "key id on a different host than the actor", want: 401, build: func(t *testing.T, r *rig, a, other *aptest.Actor) *http.Request {
			// other signs, truthfully with its own key, a Follow that
			// says it is from a.
			b := body(r, a)
			req, err := other.SignedRequest(ctx, "POST", r.inbox(), b)
			must(t, err)
			return req
		}},
		{name: "actor not the signer, same host", want: 401, build: func(t *testing.T, r *rig, a, _ *aptest.Actor) *http.Request {
			mallory := a.Server().NewActor("mallory")
			req, err := mallory.SignedRequest(ctx, "POST", r.inbox(), body(r, a))
			must(t, err)
			return req
		}},
		{name: "unsupported algorithm", want: 401, build: func(t *testing.T, r *rig, a, _ *aptest.Actor) *http.Request {
			req := signed(t, r, a)
			must(t, a.Sign(req, body(r, a), aptest.SignOptions{Algorithm: "hmac-sha256"}))
			return req
		}},
		{name: "oversized body", want: 413, build: func(t *testing.T, r *rig, a, _ *aptest.Actor) *http.Request {
			f := a.Follow(r.actor())
			f["padding"] = strings.Repeat("x", 300<<10)
			b, _ := json.Marshal(f)
			req, err := a.SignedRequest(ctx, "POST", r.inbox(), b)
			must(t, err)
			return req
		}},
		{name: "not an activity media type", want: 415, build: func(t *testing.T, r *rig, a, _ *aptest.Actor) *http.Request {
			req := signed(t, r, a)
			req.Header.Set("Content-Type", "text/plain")
			return req
		}},
		{name: "actor on a blocked domain", want: 403, setup: func(s *core.Settings) { s.Federation.BlockedDomains = []string{"127.0.0.1"} },
			build: func(t *testing.T, r *rig, a, _ *aptest.Actor) *http.Request { return signed(t, r, a) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []rigOption
			if tc.setup != nil {
				opts = append(opts, withSettings(tc.setup))
			}
			r := newRig(t, opts...)
			remote, elsewhere := aptest.New(t), aptest.New(t)
			a, other := remote.NewActor("attacker"), elsewhere.NewActor("other")
			resp, err := http.DefaultClient.Do(tc.build(t, r, a, other))
			must(t, err)
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d (%s), want %d", resp.StatusCode, msg, tc.want)
			}
			if n, m := r.count("followers"), r.count("activities"); n != 0 || m != 0 {
				t.Errorf("stored %d followers and %d activities, want none", n, m)
			}
			if len(remote.Deliveries()) != 0 || len(elsewhere.Deliveries()) != 0 {
				t.Errorf("something was delivered to the attacker: %v", remote.Deliveries())
			}
		})
	}
}

// TestReplayIsRefused: the same signed request twice is taken once.
func TestReplayIsRefused(t *testing.T) {
	r := newRig(t)
	remote := aptest.New(t)
	a := remote.NewActor("ann")
	req := signed(t, r, a)
	b := body(r, a)
	for i, want := range []int{202, 401} {
		aptest.SetBody(req, b)
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("send %d: %d, want %d", i+1, resp.StatusCode, want)
		}
	}
	if n := r.count("followers"); n != 1 {
		t.Errorf("%d followers after a replay, want 1", n)
	}
}

// signed is a Follow of our actor by a, signed, ready to send.
func signed(t *testing.T, r *rig, a *aptest.Actor) *http.Request {
	t.Helper()
	req, err := a.SignedRequest(context.Background(), "POST", r.inbox(), body(r, a))
	must(t, err)
	return req
}

// body is a's Follow of our actor; the same for one actor in one test.
func body(r *rig, a *aptest.Actor) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bodies == nil {
		r.bodies = map[string][]byte{}
	}
	if b, ok := r.bodies[a.ID()]; ok {
		return b
	}
	b, _ := json.Marshal(a.Follow(r.actor()))
	r.bodies[a.ID()] = b
	return b
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
