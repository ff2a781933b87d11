package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/starling-live/starling/activitypub/aptest"
	"github.com/starling-live/starling/chat"
	"github.com/starling-live/starling/core/testrig"
)

// TestFediverseFollowGoLiveLike: the whole path as a Mastodon user lives
// it, against the real server: the admin turns the fediverse on, a remote
// account finds @streamer by WebFinger and follows, the stream goes live
// with ffmpeg and the follower gets the post with the title, a hashtag
// and a picture that is served, and their like shows in a viewer's chat.
func TestFediverseFollowGoLiveLike(t *testing.T) {
	s := startServer(t, func(c *config) {
		c.FediverseNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	host := strings.TrimPrefix(s.URL, "http://")
	// Off until the admin enables it, and not without a server URL.
	if code, _ := s.get("/.well-known/webfinger?resource=acct:streamer@" + host); code != 404 {
		t.Fatalf("webfinger before enabling: %d", code)
	}
	if code, body := s.admin("POST", "/api/admin/config/federation/enable", map[string]any{"value": true}); code != 400 || !strings.Contains(string(body), "server URL") {
		t.Fatalf("enabling without a server URL: %d %s", code, body)
	}
	for path, v := range map[string]any{
		"serverurl":                 s.URL,
		"streamtitle":               "Patching the modular",
		"tags":                      []string{"synth"},
		"federation/golivedelay":    0,
		"federation/livemessage":    "Live now!",
		"federation/showengagement": true,
	} {
		if code, body := s.admin("POST", "/api/admin/config/"+path, map[string]any{"value": v}); code != 200 {
			t.Fatalf("config/%s: %d %s", path, code, body)
		}
	}
	if code, body := s.admin("POST", "/api/admin/config/federation/enable", map[string]any{"value": true}); code != 200 {
		t.Fatalf("enable: %d %s", code, body)
	}

	// The remote finds the actor as Mastodon does, then follows.
	remote := aptest.New(t)
	ann := remote.NewActor("ann")
	code, wf := s.get("/.well-known/webfinger?resource=" + url.QueryEscape("acct:streamer@"+host))
	var j struct {
		Links []struct{ Rel, Type, Href string } `json:"links"`
	}
	json.Unmarshal(wf, &j)
	var actor string
	for _, l := range j.Links {
		if l.Rel == "self" && l.Type == "application/activity+json" {
			actor = l.Href
		}
	}
	if code != 200 || actor != s.URL+"/federation/user/streamer" {
		t.Fatalf("webfinger: %d %s", code, wf)
	}
	follow := ann.Follow(actor)
	resp, err := ann.Post(context.Background(), actor+"/inbox", follow)
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("follow: %v %v", resp, err)
	}
	accept := remote.WaitDelivery(t, aptest.OfType("Accept"), 30*time.Second)
	if !accept.Verified {
		t.Fatalf("the Accept did not verify: %s", accept.Err)
	}

	viewer := s.joinChat(s.registerChat(""))
	pub := publish(t, s.RTMPURL+"/"+testStreamKey)
	defer pub.stop()
	create := remote.WaitDelivery(t, aptest.OfType("Create"), 60*time.Second)
	note, _ := create.Activity["object"].(map[string]any)
	content, _ := note["content"].(string)
	if !create.Verified || !contains(content, "Live now!", "Patching the modular", "#<span>synth</span>", s.URL) {
		t.Fatalf("the go-live post (verified %v %s): %s", create.Verified, create.Err, content)
	}
	// The picture is the stream's, served where the post says.
	att, _ := json.Marshal(note["attachment"])
	var atts []struct {
		URL string `json:"url"`
	}
	if json.Unmarshal(att, &atts) != nil {
		var one struct {
			URL string `json:"url"`
		}
		json.Unmarshal(att, &one)
		atts = append(atts, one)
	}
	if len(atts) != 1 || !strings.HasPrefix(atts[0].URL, s.URL+"/thumbnail.jpg") {
		t.Fatalf("attachment %s", att)
	}
	testrig.Eventually(t, 60*time.Second, "the post's picture served", func() (bool, string) {
		resp, err := http.Get(atts[0].URL)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && len(b) > 1000 && resp.Header.Get("Content-Type") == "image/jpeg", resp.Status
	})

	noteID, _ := note["id"].(string)
	if resp, err := ann.Post(context.Background(), s.URL+"/federation/inbox", ann.Like(noteID)); err != nil || resp.StatusCode != 202 {
		t.Fatalf("like: %v %v", resp, err)
	}
	like := viewer.waitFor("the like in chat", func(e chatEvent) bool { return e.Type == chat.TypeFediverseLike })
	if !strings.Contains(like.Body, "liked") {
		t.Errorf("the like in chat: %+v", like)
	}

	// The admin sees the follower, the like and how the post went.
	_, body := s.admin("GET", "/api/admin/followers", nil)
	if !strings.Contains(string(body), ann.ID()) {
		t.Errorf("followers: %s", body)
	}
	_, body = s.admin("GET", "/api/admin/federation/actions", nil)
	if !contains(string(body), `"type":"Like"`, noteID) {
		t.Errorf("actions: %s", body)
	}
	testrig.Eventually(t, 30*time.Second, "the post counted as delivered", func() (bool, string) {
		_, body := s.admin("GET", "/api/admin/federation/posts", nil)
		return strings.Contains(string(body), `"delivered":1`), string(body)
	})
	if code, body := s.get("/api/followers"); code != 200 || !strings.Contains(string(body), `"total":1`) {
		t.Errorf("public followers: %d %s", code, body)
	}
	if code, body := s.admin("POST", "/api/admin/federation/send", map[string]any{"value": ""}); code != 400 || !strings.Contains(string(body), "value") {
		t.Errorf("an empty post: %d %s", code, body)
	}
	if logs := s.logs.String(); strings.Contains(logs, "PRIVATE KEY") {
		t.Error("the log holds the private key")
	}
}
