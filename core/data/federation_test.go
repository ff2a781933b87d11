package data

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestFollowersAreReachedOncePerInbox: followers on a server with a shared
// inbox are delivered to there, once; a repeated Follow keeps the state;
// only approved followers are delivered to.
func TestFollowersAreReachedOncePerInbox(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "starling.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	for _, f := range []Follower{
		{Actor: "https://a.example/users/1", Inbox: "https://a.example/users/1/inbox", SharedInbox: "https://a.example/inbox", State: "approved"},
		{Actor: "https://a.example/users/2", Inbox: "https://a.example/users/2/inbox", SharedInbox: "https://a.example/inbox", State: "approved"},
		{Actor: "https://b.example/u/3", Inbox: "https://b.example/u/3/inbox", State: "approved"},
		{Actor: "https://c.example/u/4", Inbox: "https://c.example/u/4/inbox", State: "pending"},
	} {
		f.FollowID, f.CreatedAt = f.Actor+"#follow", now
		if _, err := s.PutFollower(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	inboxes, err := s.FollowerInboxes(ctx)
	if err != nil || len(inboxes) != 2 || inboxes[0] != "https://a.example/inbox" || inboxes[1] != "https://b.example/u/3/inbox" {
		t.Fatalf("inboxes %q, %v", inboxes, err)
	}
	// A second Follow from a pending follower stays pending.
	f, err := s.PutFollower(ctx, Follower{Actor: "https://c.example/u/4", Inbox: "https://c.example/u/4/inbox", FollowID: "again", State: "approved", CreatedAt: now})
	if err != nil || f.State != "pending" || f.FollowID != "again" {
		t.Fatalf("repeated follow: %+v, %v", f, err)
	}
	if n, _ := s.DeleteFollowersOfHost(ctx, "https://a.example/"); n != 2 {
		t.Errorf("deleted %d followers of a.example, want 2", n)
	}
	if n, _ := s.CountFollowers(ctx, "approved"); n != 1 {
		t.Errorf("%d approved followers left, want 1", n)
	}
	first, err := s.AddActivity(ctx, Activity{ID: "https://b.example/like/1", Type: "Like", Actor: "https://b.example/u/3", CreatedAt: now})
	again, err2 := s.AddActivity(ctx, Activity{ID: "https://b.example/like/1", Type: "Like", Actor: "https://b.example/u/3", CreatedAt: now})
	if !first || again || err != nil || err2 != nil {
		t.Errorf("activity stored %v then %v (%v, %v): want once", first, again, err, err2)
	}
}
