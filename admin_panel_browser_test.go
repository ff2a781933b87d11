package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/starling-live/starling/activitypub/aptest"
	"github.com/starling-live/starling/chat"
	"github.com/starling-live/starling/core/testrig"
	"github.com/starling-live/starling/core/timeline"
)

// The admin panel (build/web/src/admin) in headless Chromium against a
// fully wired server: an admin logs in through the form and works in the
// panel alone.

// panelLogin opens path of the panel, logs in through the form it gets,
// and waits for the panel's page.
func panelLogin(t *testing.T, s *testServer, path string) *browser {
	t.Helper()
	b := newBrowser(t)
	resp := b.response(chromedp.Navigate(s.URL + path))
	if resp.Status != http.StatusUnauthorized {
		t.Fatalf("%s without a session: %d, want 401 with the login form", path, resp.Status)
	}
	b.run(chromedp.SendKeys("#password", testAdminPassword, chromedp.ByID), chromedp.Click(`button[type=submit]`, chromedp.ByQuery))
	b.run(chromedp.WaitVisible(`main h1`, chromedp.ByQuery))
	var href string
	b.eval(`location.pathname`, &href)
	if href != path {
		t.Fatalf("after the login the panel is at %s, want %s", href, path)
	}
	// The 401 of the first request is no problem of the panel's.
	b.mu.Lock()
	b.problems = nil
	b.mu.Unlock()
	return b
}

// text is the visible text of the first element matching sel, "" if none.
func (b *browser) text(sel string) string {
	b.t.Helper()
	var s string
	b.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? e.innerText : ''; })()`, sel), &s)
	return s
}

// waitText waits until the text of sel holds want.
func (b *browser) waitText(sel, want string) string {
	b.t.Helper()
	var got string
	testrig.Eventually(b.t, 60*time.Second, fmt.Sprintf("%q in %s", want, sel), func() (bool, string) {
		got = b.text(sel)
		return strings.Contains(got, want), got
	})
	return got
}

// goTo follows the panel's navigation link to a page.
func (b *browser) goTo(title string) {
	b.t.Helper()
	b.run(chromedp.Click(fmt.Sprintf(`//nav//a[normalize-space(.)=%q]`, title), chromedp.BySearch))
	b.waitText("main h1", title)
}

// saveSetting types value into the setting labelled label and saves it,
// returning the message shown beside it.
func (b *browser) saveSetting(label, value string) string {
	b.t.Helper()
	var id string
	testrig.Eventually(b.t, 30*time.Second, "the setting "+label, func() (bool, string) {
		b.eval(fmt.Sprintf(`(() => { const l = [...document.querySelectorAll('form.setting label')].find((l) => l.textContent.trim() === %q); return l ? l.htmlFor : ''; })()`, label), &id)
		return id != "", b.text("main")
	})
	// Emptied as typing would, so the page hears it.
	b.eval(fmt.Sprintf(`(() => { const e = document.getElementById(%q); e.value = ''; e.dispatchEvent(new Event('input', { bubbles: true })); return true; })()`, id), nil)
	b.run(
		chromedp.SendKeys("#"+id, value, chromedp.ByID),
		chromedp.Click(fmt.Sprintf(`//form[.//label[@for=%q]]//button[@type="submit"]`, id), chromedp.BySearch),
	)
	var status string
	testrig.Eventually(b.t, 30*time.Second, "the save's outcome for "+label, func() (bool, string) {
		b.eval(fmt.Sprintf(`document.getElementById(%q).innerText`, id+"-status"), &status)
		return status != "", status
	})
	return status
}

// screenshot saves the page as docs/screenshots/NAME.png when
// STARLING_SCREENSHOTS names the repository's root (make screenshots).
func (b *browser) screenshot(name string, width, height int64, mobile bool) {
	b.t.Helper()
	root := os.Getenv("STARLING_SCREENSHOTS")
	if root == "" {
		return
	}
	var png []byte
	b.run(
		emulation.SetDeviceMetricsOverride(width, height, 1, mobile),
		chromedp.Sleep(1500*time.Millisecond), // a picture, not a check: let charts and video settle
		chromedp.FullScreenshot(&png, 100),
	)
	dir := filepath.Join(root, "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// TestAdminPanelDashboardAndSettings: the dashboard says offline, then
// online with the encoder's bitrate while ffmpeg streams; a setting saved
// in the panel reaches the viewer page, and a refused one shows the
// server's reason beside the field and changes nothing.
func TestAdminPanelDashboardAndSettings(t *testing.T) {
	s := startServer(t)
	b := panelLogin(t, s, "/admin/")
	b.waitText(`[data-stat="online"] .value`, "Offline")

	pub := publish(t, s.RTMPURL+"/"+testStreamKey)
	defer pub.stop()
	b.waitText(`[data-stat="online"] .value`, "Online")
	testrig.Eventually(t, 60*time.Second, "a bitrate on the dashboard", func() (bool, string) {
		v := b.text(`[data-stat="bitrate"] .value`)
		var kbps int
		fmt.Sscanf(v, "%d kbit/s", &kbps)
		return kbps > 0, v
	})
	// The rendition's own output, measured from its segments.
	b.waitText(`section[aria-label="Output"]`, "segments")
	var charts int
	b.eval(`document.querySelectorAll('.chart canvas').length`, &charts)
	if charts < 3 {
		t.Errorf("%d charts drawn, want the viewers, offload and bitrate", charts)
	}
	if os.Getenv("STARLING_SCREENSHOTS") != "" {
		// For the picture, a minute of a stream with two viewers.
		for range 2 {
			v := newBrowser(t)
			v.run(chromedp.Navigate(s.URL + "/"))
			v.waitPlaying()
		}
		testrig.Eventually(t, 5*time.Minute, "a minute of figures", func() (bool, string) {
			_, body := s.admin("GET", "/api/admin/timeline", nil)
			var ps []timeline.Point
			json.Unmarshal(body, &ps)
			return len(ps) >= 14, fmt.Sprint(len(ps))
		})
		b.screenshot("admin-dashboard", 1280, 900, false)
	}

	b.goTo("General")
	if got := b.saveSetting("Server name", "Panel Radio"); got != "Saved" {
		t.Fatalf("saving the name: %q", got)
	}
	if n := s.configName(); n != "Panel Radio" {
		t.Errorf("the public config names %q after the save", n)
	}
	got := b.saveSetting("Server name", strings.Repeat("x", 101))
	if !strings.Contains(got, "name") || got == "Saved" {
		t.Errorf("a name too long: %q, want the server's reason", got)
	}
	if n := s.configName(); n != "Panel Radio" {
		t.Errorf("a refused name changed the config to %q", n)
	}
	viewer := newBrowser(t)
	viewer.run(chromedp.Navigate(s.URL + "/"))
	viewer.waitText("body", "Panel Radio")
	viewer.screenshot("viewer-desktop", 1280, 800, false)
	viewer.screenshot("viewer-phone", 390, 844, true)

	// Every page of the panel opens without a problem.
	for _, page := range []string{"Appearance", "Server", "Video", "Storage", "Peer-to-peer", "Chat", "Moderation", "Fediverse", "Integrations", "Notifications", "Logs", "Dashboard"} {
		b.goTo(page)
		testrig.Eventually(t, 30*time.Second, page+" loaded", func() (bool, string) {
			m := b.text("main")
			return !strings.Contains(m, "Loading"), m
		})
	}
	// The refused name's 400 is the one failure the page may report.
	if n := b.problemsExcept("status of 400"); n != 1 {
		t.Errorf("%d refused requests reported, want the one name", n)
	}
}

// TestAdminPanelStreamKeys: a key generated in the panel publishes, and
// revoking it there ends its broadcast.
func TestAdminPanelStreamKeys(t *testing.T) {
	s := startServer(t)
	b := panelLogin(t, s, "/admin/server")
	b.run(chromedp.SendKeys("#newkey-comment", "Laptop", chromedp.ByID),
		chromedp.Click(`//button[normalize-space(.)="Generate a key"]`, chromedp.BySearch))
	b.waitText("main", "Stream keys saved")
	var cfg struct {
		StreamKeys []struct{ Key, Comment string } `json:"streamKeys"`
	}
	_, body := s.admin("GET", "/api/admin/serverconfig", nil)
	json.Unmarshal(body, &cfg)
	var key string
	for _, k := range cfg.StreamKeys {
		if k.Comment == "Laptop" {
			key = k.Key
		}
	}
	if len(key) < 20 {
		t.Fatalf("the generated key %q (keys %+v)", key, cfg.StreamKeys)
	}
	pub := publish(t, s.RTMPURL+"/"+key)
	defer pub.stop()
	testrig.Eventually(t, 60*time.Second, "live with the new key", func() (bool, string) {
		st := s.status()
		return st.Online, fmt.Sprint(st)
	})
	b.run(chromedp.Click(`button[data-revoke="Laptop"]`, chromedp.ByQuery))
	b.waitText("main", "Stream keys saved")
	if _, ended := pub.exited(60 * time.Second); !ended {
		t.Fatal("the publisher of a revoked key is still connected")
	}
	testrig.Eventually(t, 60*time.Second, "offline after the revoke", func() (bool, string) {
		st := s.status()
		return !st.Online, fmt.Sprint(st)
	})
	b.checkProblems()
}

// TestAdminPanelModeration: a message hidden from the moderation page
// leaves a viewer's chat at once.
func TestAdminPanelModeration(t *testing.T) {
	s := startServer(t)
	viewer, _ := openChatPage(t, s)
	talker := s.joinChat(s.registerChat("Loud Finch"))
	talker.say("hide this one")
	msg := talker.waitFor("the echo", isChat("hide this one"))
	row := fmt.Sprintf(`#chat-log .chat-msg[data-id=%q]`, msg.ID)
	viewer.run(chromedp.WaitVisible(row, chromedp.ByQuery))

	b := panelLogin(t, s, "/admin/moderation")
	b.run(chromedp.WaitVisible(fmt.Sprintf(`button[data-message=%q]`, msg.ID), chromedp.ByQuery))
	b.run(chromedp.Click(fmt.Sprintf(`button[data-message=%q]`, msg.ID), chromedp.ByQuery))
	talker.waitFor("VISIBILITY-UPDATE", func(ev chatEvent) bool { return ev.Type == chat.TypeVisibilityUpdate })
	testrig.Eventually(t, 10*time.Second, "the message gone from the viewer's chat", func() (bool, string) {
		var shown bool
		viewer.eval(fmt.Sprintf(`(() => { const r = document.querySelector('%s'); return Boolean(r && !r.hidden && r.offsetParent); })()`, row), &shown)
		return !shown, fmt.Sprint(shown)
	})
	b.waitText(fmt.Sprintf(`button[data-message=%q]`, msg.ID), "Show")
	b.checkProblems()
}

// TestAdminPanelIntegrations: an access token made in the panel is shown
// once and listed by its name, and a webhook to a private address is
// refused with the server's reason.
func TestAdminPanelIntegrations(t *testing.T) {
	s := startServer(t)
	b := panelLogin(t, s, "/admin/integrations")
	b.run(chromedp.WaitVisible("#token-name", chromedp.ByID),
		chromedp.SendKeys("#token-name", "Relay Bot", chromedp.ByID),
		chromedp.Click(`//form[.//input[@id="token-name"]]//button[@type="submit"]`, chromedp.BySearch))
	shown := b.waitText("main", "shown this once")
	b.waitText("main", "Relay Bot")
	_, body := s.admin("GET", "/api/admin/accesstokens", nil)
	if !strings.Contains(string(body), "Relay Bot") || !strings.Contains(shown, "The token") {
		t.Errorf("tokens %s; the page said %q", body, shown)
	}
	b.run(chromedp.SendKeys("#hook-url", "http://10.0.0.5/hook", chromedp.ByID),
		chromedp.Click(`//form[.//input[@id="hook-url"]]//button[@type="submit"]`, chromedp.BySearch))
	b.waitText("main", "private address")
	if _, body := s.admin("GET", "/api/admin/webhooks", nil); strings.Contains(string(body), "10.0.0.5") {
		t.Errorf("a refused webhook was stored: %s", body)
	}
	if n := b.problemsExcept("status of 400"); n != 1 {
		t.Errorf("%d refused requests reported, want the webhook", n)
	}
}

// TestAdminPanelApprovesAFollower: with the account private, a follow
// request waits on the Fediverse page until the admin approves it there;
// the follower then gets its Accept.
func TestAdminPanelApprovesAFollower(t *testing.T) {
	s := startServer(t, func(c *config) {
		c.FediverseNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	for path, v := range map[string]any{"serverurl": s.URL, "federation/private": true} {
		if code, body := s.admin("POST", "/api/admin/config/"+path, map[string]any{"value": v}); code != 200 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
	}
	s.admin("POST", "/api/admin/config/federation/enable", map[string]any{"value": true})
	remote := aptest.New(t)
	rae := remote.NewActor("rae")
	actor := s.URL + "/federation/user/streamer"
	if resp, err := rae.Post(t.Context(), actor+"/inbox", rae.Follow(actor)); err != nil || resp.StatusCode != 202 {
		t.Fatalf("follow: %v %v", resp, err)
	}
	b := panelLogin(t, s, "/admin/fediverse")
	approve := `//section[@aria-label="Follow requests"]//button[normalize-space(.)="Approve"]`
	b.run(chromedp.WaitVisible(approve, chromedp.BySearch), chromedp.Click(approve, chromedp.BySearch))
	accept := remote.WaitDelivery(t, aptest.OfType("Accept"), 30*time.Second)
	if !accept.Verified {
		t.Errorf("the Accept did not verify: %s", accept.Err)
	}
	b.waitText("main", "Approved")
	b.checkProblems()
}

// TestAdminPanelChangesThePassword: a new password set in the panel is in
// force at once, ends the session, and the panel goes to the login.
func TestAdminPanelChangesThePassword(t *testing.T) {
	s := startServer(t)
	b := panelLogin(t, s, "/admin/server")
	const fresh = "a-brand-new-password"
	b.run(chromedp.WaitVisible("#adminpass", chromedp.ByID),
		chromedp.SendKeys("#adminpass", fresh, chromedp.ByID),
		chromedp.SendKeys("#adminpass2", fresh, chromedp.ByID),
		chromedp.Click(`//button[normalize-space(.)="Change the password"]`, chromedp.BySearch))
	testrig.Eventually(t, 30*time.Second, "the login form", func() (bool, string) {
		var p string
		b.eval(`location.pathname`, &p)
		return p == "/admin/login", p
	})
	if code, _ := s.admin("GET", "/api/admin/status", nil); code != http.StatusUnauthorized {
		t.Errorf("the old password after the change: %d", code)
	}
	code, _, _ := s.send("GET", "/api/admin/status", func(r *http.Request) { r.SetBasicAuth("admin", fresh) }, nil)
	if code != 200 {
		t.Errorf("the new password: %d", code)
	}
}
