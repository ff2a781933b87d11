package activitypub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/starling-live/starling/activitypub/aptest"
	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/testrig"
)

// TestPostWaitsForTheAccept: while a follower's server refuses the Accept,
// a post to it waits, so the follower never gets a post from an account
// their server does not know they follow.
func TestPostWaitsForTheAccept(t *testing.T) {
	r := newRig(t)
	remote := aptest.New(t)
	liz := remote.NewActor("liz")
	remote.Respond(3, http.StatusServiceUnavailable)
	if code := send(t, liz, r.inbox(), liz.Follow(r.actor())); code != http.StatusAccepted {
		t.Fatalf("follow: %d", code)
	}
	if _, err := r.fed.Send(context.Background(), "first post"); err != nil {
		t.Fatal(err)
	}
	remote.WaitDelivery(t, func(d aptest.Delivery) bool { return d.Type == "Create" && d.Status == 202 }, wait)
	var order []string
	for _, d := range remote.Deliveries() {
		if d.Status == 202 {
			order = append(order, d.Type)
		}
	}
	if len(order) != 2 || order[0] != "Accept" || order[1] != "Create" {
		t.Errorf("taken in the order %v, want the Accept first", order)
	}
	for _, d := range remote.Deliveries() {
		if d.Type == "Create" && d.Status != 202 {
			t.Errorf("the post was sent before the Accept was taken (answered %d)", d.Status)
		}
	}
}

// TestBlockingADomainStopsBothWays: once a follower's server is blocked,
// its requests are refused and our posts no longer go there.
func TestBlockingADomainStopsBothWays(t *testing.T) {
	r := newRig(t)
	remote := aptest.New(t)
	max := remote.NewActor("max")
	r.follow(t, remote, max)
	r.settings.Update(context.Background(), func(s *core.Settings) error {
		s.Federation.BlockedDomains = []string{"127.0.0.1"}
		return nil
	})
	if code := send(t, max, r.inbox(), max.Like(r.srv.URL+"/federation/posts/x")); code != http.StatusForbidden {
		t.Errorf("a like from a blocked server: %d, want 403", code)
	}
	r.fed.Send(context.Background(), "not for them")
	posts, _ := r.fed.Posts(context.Background(), 1, 0)
	if len(posts) != 1 || posts[0].Recipients != 0 {
		t.Errorf("a post went to a blocked server: %+v", posts)
	}
}

// TestRemoteServersOnPrivateNetworksAreNotReached: without an allowed
// network, a remote on loopback is never fetched, so its follow fails
// verification and nothing is stored.
func TestRemoteServersOnPrivateNetworksAreNotReached(t *testing.T) {
	r := newRig(t, func(c *rigConfig) { c.cfg.AllowedNetworks = nil })
	remote := aptest.New(t)
	ned := remote.NewActor("ned")
	resp, err := ned.Post(context.Background(), r.inbox(), ned.Follow(r.actor()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 401 || !strings.Contains(string(b), "loopback") {
		t.Errorf("a follow from loopback: %d %s", resp.StatusCode, b)
	}
	if len(remote.Fetches()) != 0 || r.count("followers") != 0 {
		t.Errorf("fetched %v, stored %d followers", remote.Fetches(), r.count("followers"))
	}
}

// TestInboxLimitsEachRemoteHost: a server sending more than its share is
// answered 429 and its activities are not stored.
func TestInboxLimitsEachRemoteHost(t *testing.T) {
	r := newRig(t, func(c *rigConfig) { c.cfg.HostRate, c.cfg.HostBurst = 0.001, 3 })
	remote := aptest.New(t)
	var codes []int
	for i := range 5 {
		a := remote.NewActor(fmt.Sprintf("a%d", i))
		codes = append(codes, send(t, a, r.inbox(), a.Follow(r.actor())))
	}
	if fmt.Sprint(codes) != "[202 202 202 429 429]" {
		t.Errorf("statuses %v, want three taken and the rest refused", codes)
	}
	testrig.Eventually(t, wait, "three followers", func() (bool, string) {
		return r.count("followers") == 3, fmt.Sprint(r.count("followers"))
	})
}

// TestInboxTakesLDJSON: the inbox takes the other media type ActivityPub
// names.
func TestInboxTakesLDJSON(t *testing.T) {
	r := newRig(t)
	remote := aptest.New(t)
	oli := remote.NewActor("oli")
	b, _ := json.Marshal(oli.Follow(r.actor()))
	req, err := oli.SignedRequest(context.Background(), "POST", r.inbox(), b)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ldJSON)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 || r.count("followers") != 1 {
		t.Errorf("ld+json: %d, %d followers", resp.StatusCode, r.count("followers"))
	}
}

// TestRemoteFollow: a viewer names their account, and is sent to their
// own server's page for following ours.
func TestRemoteFollow(t *testing.T) {
	r := newRig(t)
	remote := aptest.New(t)
	remote.NewActor("pat")
	for _, tc := range []struct {
		account string
		want    int
		has     string
	}{
		{"pat@" + remote.Host(), 200, remote.URL() + "/authorize_interaction?uri=" + url.QueryEscape("acct:streamer@"+strings.TrimPrefix(r.srv.URL, "http://"))},
		{"not an account", 400, "you@your.server"},
		{"nobody@" + remote.Host(), 502, "check the account"},
	} {
		body, _ := json.Marshal(map[string]string{"account": tc.account})
		resp, err := http.Post(r.srv.URL+"/api/remotefollow", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want || !strings.Contains(string(b), tc.has) {
			t.Errorf("%q: %d %s, want %d with %q", tc.account, resp.StatusCode, b, tc.want, tc.has)
		}
	}
}

func TestInterleaveTakesAHostAtATime(t *testing.T) {
	got := interleave([]string{"https://a/1", "https://a/2", "https://a/3", "https://b/1", "https://c/1", "https://c/2"})
	want := "[https://a/1 https://b/1 https://c/1 https://a/2 https://c/2 https://a/3]"
	if fmt.Sprint(got) != want {
		t.Errorf("%v, want %s", got, want)
	}
}

// TestStrangersCannotSpendAServersShare: requests that fail verification
// while claiming to come from a server do not count against it, so its
// real deliveries still get in.
func TestStrangersCannotSpendAServersShare(t *testing.T) {
	r := newRig(t, func(c *rigConfig) { c.cfg.HostRate, c.cfg.HostBurst = 0.001, 3 })
	remote := aptest.New(t)
	quin := remote.NewActor("quin")
	for range 5 {
		req := signed(t, r, quin)
		req.Header.Del("Signature")
		// A connection of its own each: the rig tells clients apart by
		// their address and port.
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("a forged request: %d", resp.StatusCode)
		}
	}
	if code := send(t, quin, r.inbox(), quin.Follow(r.actor())); code != http.StatusAccepted {
		t.Errorf("the real follow after forgeries in its name: %d, want 202", code)
	}
}
