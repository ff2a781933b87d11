package activitypub

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/starling-live/starling/activitypub/aptest"
	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/testrig"
)

const wait = 20 * time.Second

// TestFollowAcceptGoLiveLike: a remote account follows, gets a signed
// Accept, then the go-live post (to its server's shared inbox, with the
// title, hashtags and a picture), and its like of the post shows in chat.
func TestFollowAcceptGoLiveLike(t *testing.T) {
	r := newRig(t)
	remote := aptest.New(t)
	ann := remote.NewActor("ann")
	r.follow(t, remote, ann)
	if n, _ := r.store.CountFollowers(context.Background(), "approved"); n != 1 {
		t.Fatalf("%d followers after the Accept, want 1", n)
	}
	accept := remote.WaitDelivery(t, aptest.OfType("Accept"), wait)
	if !accept.Verified || accept.Inbox != "/users/ann/inbox" || accept.Activity["actor"] != r.actor() {
		t.Fatalf("the Accept: %+v", accept)
	}

	r.settings.Update(context.Background(), func(s *core.Settings) error { s.NSFW = true; return nil })
	r.fed.BroadcastStarted(core.Broadcast{ID: "b1", Title: "Building a synth", StartedAt: time.Now()})
	create := remote.WaitDelivery(t, aptest.OfType("Create"), wait)
	if !create.Verified || create.Inbox != "/inbox" {
		t.Fatalf("the go-live post was not verified at the shared inbox: %+v", create)
	}
	note, _ := create.Activity["object"].(map[string]any)
	content, _ := note["content"].(string)
	if !contains(content, "I&#39;ve gone live!", "Building a synth", "#<span>music</span>", "#<span>livecoding</span>", r.srv.URL) {
		t.Errorf("note content %q", content)
	}
	if note["sensitive"] != true || note["attributedTo"] != r.actor() {
		t.Errorf("note sensitive %v, attributedTo %v", note["sensitive"], note["attributedTo"])
	}
	att, _ := note["attachment"].(map[string]any)
	if att == nil {
		if list, ok := note["attachment"].([]any); ok && len(list) > 0 {
			att, _ = list[0].(map[string]any)
		}
	}
	if u, _ := att["url"].(string); !strings.HasPrefix(u, r.srv.URL+"/thumbnail.jpg") {
		t.Errorf("attachment %v", note["attachment"])
	}
	if b, _ := json.Marshal(create.Activity["to"]); !strings.Contains(string(b), publicIRI) {
		t.Errorf("to %s: want the public", b)
	}
	if tags, _ := json.Marshal(note["tag"]); !contains(string(tags), `"type":"Hashtag"`, `"name":"#music"`) {
		t.Errorf("tags %s", tags)
	}

	// The Note is served where its id says; the outbox lists it.
	noteID, _ := note["id"].(string)
	code, served := r.get(strings.TrimPrefix(noteID, r.srv.URL))
	if code != 200 || served["id"] != noteID {
		t.Fatalf("GET the note: %d %v", code, served)
	}
	if code, outbox := r.get("/federation/user/streamer/outbox"); code != 200 || outbox["totalItems"] != float64(1) {
		t.Errorf("outbox: %d %v", code, outbox)
	}

	if code := send(t, ann, r.inbox(), ann.Like(noteID)); code != http.StatusAccepted {
		t.Fatalf("like: %d", code)
	}
	// A second like of the post, under a new id, is taken once.
	if code := send(t, ann, r.inbox(), ann.Like(noteID)); code != http.StatusAccepted {
		t.Fatalf("like again: %d", code)
	}
	if code := send(t, ann, r.srv.URL+"/federation/inbox", ann.Announce(noteID)); code != http.StatusAccepted {
		t.Fatalf("announce at the shared inbox: %d", code)
	}
	testrig.Eventually(t, wait, "follow, like and boost in chat", func() (bool, string) {
		e := r.engagements()
		return len(e) == 3, fmt.Sprint(e)
	})
	e := r.engagements()
	if e[0].Type != "follow" || e[1].Type != "like" || e[2].Type != "repost" || e[1].Handle != "ann@127.0.0.1" || e[1].Profile != ann.ID() {
		t.Errorf("engagements %+v", e)
	}
	actions, err := r.fed.Actions(context.Background(), 10, 0)
	if err != nil || len(actions) != 3 || actions[0].Type != "Announce" || actions[1].Object != noteID {
		t.Errorf("actions %+v, %v", actions, err)
	}
	testrig.Eventually(t, wait, "the post counted as delivered", func() (bool, string) {
		posts, _ := r.fed.Posts(context.Background(), 10, 0)
		return len(posts) == 1 && posts[0].Delivered == 1 && posts[0].Pending == 0, fmt.Sprintf("%+v", posts)
	})
}

// TestGoLiveIsDebouncedAndRateLimited: a broadcast that ends before the
// delay posts nothing, and a second go-live within the interval neither.
func TestGoLiveIsDebouncedAndRateLimited(t *testing.T) {
	r := newRig(t, withSettings(func(s *core.Settings) { s.Federation.GoLiveDelay = 1 }))
	remote := aptest.New(t)
	ann := remote.NewActor("ann")
	r.follow(t, remote, ann)
	r.fed.BroadcastStarted(core.Broadcast{ID: "flap"})
	r.fed.BroadcastEnded(core.Broadcast{ID: "flap"})
	r.fed.BroadcastStarted(core.Broadcast{ID: "stays", Title: "second"})
	create := remote.WaitDelivery(t, aptest.OfType("Create"), wait)
	if n := len(filter(remote.Deliveries(), "Create")); n != 1 || !strings.Contains(fmt.Sprint(create.Activity["object"]), "second") {
		t.Fatalf("%d posts, want the one of the broadcast that stayed", n)
	}
	// Another broadcast within ten minutes: its job runs and posts nothing.
	r.fed.BroadcastEnded(core.Broadcast{ID: "stays"})
	r.fed.BroadcastStarted(core.Broadcast{ID: "third"})
	testrig.Eventually(t, wait, "the third go-live decided", func() (bool, string) {
		return strings.Contains(r.logs.String(), "a go-live post went out recently"), r.logs.String()
	})
	if n := len(filter(remote.Deliveries(), "Create")); n != 1 {
		t.Errorf("%d posts after a second go-live within the interval, want 1", n)
	}
}

func filter(ds []aptest.Delivery, typ string) []aptest.Delivery {
	var out []aptest.Delivery
	for _, d := range ds {
		if d.Type == typ && d.Verified {
			out = append(out, d)
		}
	}
	return out
}

// TestUndoFollow: an Undo of the Follow removes the follower, who gets no
// more posts.
func TestUndoFollow(t *testing.T) {
	r := newRig(t)
	remote := aptest.New(t)
	bob := remote.NewActor("bob")
	f := r.follow(t, remote, bob)
	if code := send(t, bob, r.inbox(), bob.Undo(f)); code != http.StatusAccepted {
		t.Fatalf("undo: %d", code)
	}
	if n := r.count("followers"); n != 0 {
		t.Fatalf("%d followers after the Undo", n)
	}
	if _, err := r.fed.Send(context.Background(), "Anyone there?"); err != nil {
		t.Fatal(err)
	}
	posts, _ := r.fed.Posts(context.Background(), 10, 0)
	if len(posts) != 1 || posts[0].Recipients != 0 {
		t.Errorf("a post after the Undo went to %+v", posts)
	}
}

// TestApproval: a private account holds follows until the admin decides;
// an approved one gets its Accept, a rejected one nothing.
func TestApproval(t *testing.T) {
	r := newRig(t, withSettings(func(s *core.Settings) { s.Federation.Private = true }))
	remote := aptest.New(t)
	cat, dan := remote.NewActor("cat"), remote.NewActor("dan")
	for _, a := range []*aptest.Actor{cat, dan} {
		if code := send(t, a, r.inbox(), a.Follow(r.actor())); code != http.StatusAccepted {
			t.Fatalf("follow: %d", code)
		}
	}
	pending, _ := r.fed.Followers(context.Background(), "pending", 10, 0)
	if len(pending) != 2 || len(remote.Deliveries()) != 0 {
		t.Fatalf("pending %+v, deliveries %d: want two requests and no Accept", pending, len(remote.Deliveries()))
	}
	if code, doc := r.get("/federation/user/streamer"); code != 200 || doc["manuallyApprovesFollowers"] != true {
		t.Errorf("the actor of a private account: %d %v", code, doc["manuallyApprovesFollowers"])
	}
	if err := r.fed.Approve(context.Background(), cat.ID(), true); err != nil {
		t.Fatal(err)
	}
	if err := r.fed.Approve(context.Background(), dan.ID(), false); err != nil {
		t.Fatal(err)
	}
	acc := remote.WaitDelivery(t, aptest.OfType("Accept"), wait)
	if acc.Inbox != "/users/cat/inbox" {
		t.Errorf("the Accept went to %s", acc.Inbox)
	}
	blocked, _ := r.fed.Followers(context.Background(), "rejected", 10, 0)
	if len(blocked) != 1 || blocked[0].Link != dan.ID() {
		t.Errorf("rejected %+v", blocked)
	}
	if err := r.fed.Approve(context.Background(), "https://nobody.example/u/x", true); err != ErrNoFollower {
		t.Errorf("approving a stranger: %v", err)
	}
	// The post is for followers only.
	r.fed.Send(context.Background(), "followers only")
	create := remote.WaitDelivery(t, aptest.OfType("Create"), wait)
	if b, _ := json.Marshal(create.Activity["to"]); strings.Contains(string(b), publicIRI) {
		t.Errorf("a private account's post is addressed to the public: %s", b)
	}
	if len(filter(remote.Deliveries(), "Accept")) != 1 {
		t.Errorf("a rejected follower got an Accept")
	}
}

// TestDeleteOfAnActor: a remote account deleted is no follower any more.
func TestDeleteOfAnActor(t *testing.T) {
	r := newRig(t)
	remote := aptest.New(t)
	eve := remote.NewActor("eve")
	r.follow(t, remote, eve)
	if code := send(t, eve, r.inbox(), eve.Delete()); code != http.StatusAccepted {
		t.Fatalf("delete: %d", code)
	}
	if n := r.count("followers"); n != 0 {
		t.Errorf("%d followers after the Delete", n)
	}
	if _, err := r.store.RemoteActorByKey(context.Background(), eve.KeyID()); err == nil {
		t.Error("the deleted actor's key is still cached")
	}
}

// TestUpdateRefreshesAFollower: an Update of an actor brings its new name.
func TestUpdateRefreshesAFollower(t *testing.T) {
	r := newRig(t)
	remote := aptest.New(t)
	fay := remote.NewActor("fay")
	r.follow(t, remote, fay)
	fay.SetName("Fay Renamed")
	if code := send(t, fay, r.inbox(), fay.Update()); code != http.StatusAccepted {
		t.Fatalf("update: %d", code)
	}
	fs, _ := r.fed.Followers(context.Background(), "approved", 10, 0)
	if len(fs) != 1 || fs[0].Name != "Fay Renamed" {
		t.Errorf("followers after the Update: %+v", fs)
	}
}

// TestProfileChangeSendsUpdate: renaming the stream tells the followers.
func TestProfileChangeSendsUpdate(t *testing.T) {
	r := newRig(t)
	remote := aptest.New(t)
	gus := remote.NewActor("gus")
	r.follow(t, remote, gus)
	r.settings.Update(context.Background(), func(s *core.Settings) error { s.Name = "Renamed Stream"; return nil })
	up := remote.WaitDelivery(t, aptest.OfType("Update"), wait)
	obj, _ := up.Activity["object"].(map[string]any)
	if obj["name"] != "Renamed Stream" || obj["id"] != r.actor() {
		t.Errorf("the Update: %v", up.Activity)
	}
}

// TestSignedFetchOfRemoteActors: a server that refuses unsigned GETs of
// its actors (authorized fetch) can still follow: our key fetch is
// signed, and the remote verified it.
func TestSignedFetchOfRemoteActors(t *testing.T) {
	r := newRig(t)
	remote := aptest.New(t)
	remote.RequireSignedFetch(true)
	hal := remote.NewActor("hal")
	r.follow(t, remote, hal)
	for _, f := range remote.Fetches() {
		if strings.HasPrefix(f.Path, "/users/hal") && !(f.Signed && f.Verified) {
			t.Errorf("a fetch of the actor was not signed and verified: %+v", f)
		}
	}
}
