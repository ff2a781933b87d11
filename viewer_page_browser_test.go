package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/testrig"
)

// Browser tests of the viewer page's own parts (issue 12): what the admin
// sets, the live player's controls, the quality menu and the P2P switch.
// The server, ffmpeg and Chromium start as in browser_test.go.

// setConfig sets one admin setting, failing the test if it is refused.
func (s *testServer) setConfig(name string, value any) {
	s.t.Helper()
	if code, b := s.admin(http.MethodPost, "/api/admin/config/"+name, map[string]any{"value": value}); code != http.StatusOK {
		s.t.Fatalf("set %s: %d %s", name, code, b)
	}
}

// problemsExcept fails the test for every problem the page reported that
// contains none of allowed, and returns how many contained one.
func (b *browser) problemsExcept(allowed ...string) int {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, p := range b.problems {
		if containsAny(p, allowed) {
			n++
			continue
		}
		b.t.Errorf("the page reported a problem: %s", p)
	}
	return n
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// TestViewerPageShowsAdminContent: the summary's and the about page's
// Markdown render as HTML, the admin's CSS and JavaScript apply, and the
// CSP still refuses every inline script, inline style and eval, whichever
// setting brings them.
func TestViewerPageShowsAdminContent(t *testing.T) {
	s := startServer(t)
	s.setConfig("serversummary", "A **bold** summary")
	s.setConfig("pagecontent", "## Schedule\n\nEvery *Friday*, **live**.\n\n"+
		"<script>window.__inline = 'pagecontent'</script>\n\n<img src=x onerror=\"window.__inline = 'img'\">")
	s.setConfig("tags", []string{"music", "live"})
	s.setConfig("socialhandles", []core.SocialHandle{
		{Platform: "mastodon", URL: "https://social.example/@me"},
		{Platform: "github", URL: "https://github.example/me"},
	})
	s.setConfig("externalactions", []core.ExternalAction{
		{Title: "Donate", URL: "https://pay.example/", OpenExternally: true},
		{Title: "Info", HTML: "<p><strong>Hello</strong><script>window.__inline='action'</script></p>"},
	})
	s.setConfig("customstyles", "#stream-title { color: rgb(1, 2, 3); }\n</style><script>window.__inline = 'css'</script>")
	s.setConfig("streamtitle", "<script>window.__inline = 'title'</script>")
	// The admin's script runs; what it tries beyond itself is refused.
	s.setConfig("customjavascript", `window.__custom = 'ran';
try { eval('window.__eval = "ran"'); } catch (e) { window.__eval = 'refused'; }
const s = document.createElement('script');
s.textContent = "window.__inline = 'injected'";
document.head.appendChild(s);
const st = document.createElement('style');
st.textContent = '#stream-title { background-color: rgb(9, 9, 9); }';
document.head.appendChild(st);`)

	// The admin's CSS is a stylesheet of this origin, never markup.
	resp, err := http.Get(s.URL + "/customstyles.css")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/css; charset=utf-8" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("/customstyles.css is served as %q (nosniff %q)", ct, resp.Header.Get("X-Content-Type-Options"))
	}
	var cfg struct {
		SummaryHTML string `json:"summaryHTML"`
	}
	s.getJSON("/api/config", &cfg)
	if !strings.Contains(cfg.SummaryHTML, "<strong>bold</strong>") {
		t.Errorf("/api/config summaryHTML = %q, want the Markdown rendered", cfg.SummaryHTML)
	}

	b := newBrowser(t)
	b.run(chromedp.Navigate(s.URL + "/"))
	b.waitState("offline")

	var got struct {
		Summary      string   `json:"summary"`
		SummaryBold  string   `json:"summaryBold"`
		About        string   `json:"about"`
		AboutBold    string   `json:"aboutBold"`
		AboutHeading string   `json:"aboutHeading"`
		Color        string   `json:"color"`
		Background   string   `json:"background"`
		Custom       string   `json:"custom"`
		Eval         string   `json:"eval"`
		Inline       string   `json:"inline"`
		Tags         []string `json:"tags"`
		Social       []string `json:"social"`
		Actions      []string `json:"actions"`
		Logo         string   `json:"logo"`
		P2PHidden    bool     `json:"p2pHidden"`
		Controls     bool     `json:"controls"`
	}
	testrig.Eventually(t, 30*time.Second, "the admin's content on the page", func() (bool, string) {
		b.eval(`(() => {
			const q = (sel) => document.querySelector(sel);
			const title = getComputedStyle(q('#stream-title'));
			return {
				summary: q('#summary').textContent,
				summaryBold: (q('#summary strong') || {}).textContent || '',
				about: q('#about').hidden ? '' : q('#about-content').textContent,
				aboutBold: (q('#about-content strong') || {}).textContent || '',
				aboutHeading: (q('#about-content h2') || {}).textContent || '',
				color: title.color,
				background: title.backgroundColor,
				custom: String(window.__custom),
				eval: String(window.__eval),
				inline: String(window.__inline),
				tags: [...document.querySelectorAll('#tags li')].map((li) => li.textContent),
				social: [...document.querySelectorAll('#social a')].map((a) => a.href + ' ' + a.rel + ' ' + a.target),
				actions: [...document.querySelectorAll('#actions button')].map((b) => b.textContent),
				logo: q('#brand-logo').getAttribute('src'),
				p2pHidden: q('#p2p').hidden,
				controls: q('video').controls,
			};
		})()`, &got)
		return got.SummaryBold == "bold" && got.AboutBold == "live" && got.Color == "rgb(1, 2, 3)" && got.Custom == "ran", fmt.Sprintf("%+v", got)
	})
	if strings.Contains(got.Summary, "**") {
		t.Errorf("the summary shows raw Markdown: %q", got.Summary)
	}
	if got.AboutHeading != "Schedule" {
		t.Errorf("the about page's heading is %q, want Schedule", got.AboutHeading)
	}
	if got.Eval != "refused" {
		t.Errorf("eval in the custom script: %s, want refused by the CSP", got.Eval)
	}
	if got.Inline != "undefined" {
		t.Errorf("an inline script ran: window.__inline = %s", got.Inline)
	}
	if got.Background == "rgb(9, 9, 9)" {
		t.Error("an inline <style> added by the custom script applied: the CSP allows inline styles")
	}
	if strings.Join(got.Tags, ",") != "#music,#live" {
		t.Errorf("tags %q", got.Tags)
	}
	if len(got.Social) != 2 || got.Social[0] != "https://social.example/@me noopener me _blank" {
		t.Errorf("social links %q, want both, opening in a new tab with rel noopener me", got.Social)
	}
	if strings.Join(got.Actions, ",") != "Donate,Info" {
		t.Errorf("action buttons %q", got.Actions)
	}
	if got.Logo != "/logo" {
		t.Errorf("the logo is %q", got.Logo)
	}
	if !got.P2PHidden {
		t.Error("the P2P switch shows while offline")
	}
	if got.Controls {
		t.Error("the video has the browser's controls, with their seek bar")
	}

	// The HTML action opens in a dialog, sanitised.
	var dialog struct {
		Open   bool   `json:"open"`
		Strong string `json:"strong"`
		Script int    `json:"script"`
	}
	b.eval(`document.querySelectorAll('#actions button')[1].click()`, nil)
	b.eval(`({open: document.getElementById('action-dialog').open,
		strong: (document.querySelector('#action-body strong') || {}).textContent || '',
		script: document.querySelectorAll('#action-body script').length})`, &dialog)
	if !dialog.Open || dialog.Strong != "Hello" || dialog.Script != 0 {
		t.Errorf("the HTML action's dialog: %+v", dialog)
	}
	b.eval(`String(window.__inline)`, &got.Inline)
	if got.Inline != "undefined" {
		t.Errorf("an inline script ran: window.__inline = %s", got.Inline)
	}

	// The refusals show as CSP reports, and nothing else went wrong.
	if n := b.problemsExcept("Content Security Policy"); n == 0 {
		t.Error("the browser reported no CSP refusal: did the custom script's injections run at all?")
	}
}

// waitQuality waits until the quality menu offers n choices.
func (b *browser) waitQuality(n int) []string {
	b.t.Helper()
	var opts []string
	testrig.Eventually(b.t, 60*time.Second, fmt.Sprintf("a quality menu of %d choices", n), func() (bool, string) {
		b.eval(`(() => { const q = document.getElementById('ctl-quality');
			return q.hidden ? [] : [...q.options].map((o) => o.value + '=' + o.textContent); })()`, &opts)
		return len(opts) == n, fmt.Sprint(opts)
	})
	return opts
}

// TestViewerPageQualityAndNSFW: a stream marked NSFW waits behind its
// notice; once through, the live controls show, and the quality menu
// switches hls.js's rendition and back to Auto.
func TestViewerPageQualityAndNSFW(t *testing.T) {
	s := startServer(t)
	s.setVariants(
		core.Variant{Name: "360p", VideoBitrate: 800, AudioBitrate: 64, ScaledHeight: 360, Framerate: 30, CPUUsageLevel: 0},
		core.Variant{Name: "180p", VideoBitrate: 250, AudioBitrate: 64, ScaledHeight: 180, Framerate: 30, CPUUsageLevel: 0},
	)
	s.setConfig("nsfw", true)
	publish(t, s.RTMPURL+"/"+testStreamKey)
	s.waitSegments("/hls/1/stream.m3u8", 2)

	b := newBrowser(t)
	b.run(chromedp.Navigate(s.URL + "/"))
	b.waitState("online")
	var gate struct {
		Overlay bool `json:"overlay"`
		Player  bool `json:"player"`
	}
	testrig.Eventually(t, 20*time.Second, "the NSFW notice", func() (bool, string) {
		b.eval(`({overlay: !document.getElementById('nsfw').hidden, player: window.starling.hls !== null})`, &gate)
		return gate.Overlay, fmt.Sprintf("%+v", gate)
	})
	if gate.Player {
		t.Fatal("the player started behind the NSFW notice")
	}
	b.eval(`document.getElementById('nsfw-continue').click()`, nil)
	b.waitPlaying()

	var controls struct {
		Shown    bool   `json:"shown"`
		Native   bool   `json:"native"`
		Live     string `json:"live"`
		Spinners int    `json:"spinners"`
	}
	b.eval(`({shown: !document.getElementById('controls').hidden, native: document.querySelector('video').controls,
		live: document.getElementById('ctl-live-text').textContent,
		spinners: [...document.querySelectorAll('.spinner')].filter((e) => !e.hidden).length})`, &controls)
	if !controls.Shown || controls.Native || controls.Live != "Live" || controls.Spinners != 0 {
		t.Errorf("while playing at the live edge: %+v, want our controls reading Live, no native ones, no spinner", controls)
	}

	opts := b.waitQuality(3)
	if !strings.HasPrefix(opts[0], "-1=Auto") || !strings.Contains(opts[1], "360p") || !strings.Contains(opts[2], "180p") {
		t.Errorf("quality menu %q, want Auto, 360p, 180p", opts)
	}
	// Pick the rendition hls.js is not playing.
	var pick struct {
		Index  int `json:"index"`
		Height int `json:"height"`
	}
	b.eval(`(() => { const h = window.starling.hls; const i = h.levels.findIndex((l, i) => i !== h.currentLevel);
		return {index: i, height: h.levels[i].height}; })()`, &pick)
	b.eval(fmt.Sprintf(`(() => { const q = document.getElementById('ctl-quality'); q.value = '%d';
		q.dispatchEvent(new Event('change')); })()`, pick.Index), nil)
	var now struct {
		Level  int  `json:"level"`
		Auto   bool `json:"auto"`
		Height int  `json:"height"`
	}
	testrig.Eventually(t, 60*time.Second, fmt.Sprintf("hls.js playing level %d (%dp)", pick.Index, pick.Height), func() (bool, string) {
		b.eval(`({level: window.starling.hls.currentLevel, auto: window.starling.hls.autoLevelEnabled,
			height: document.querySelector('video').videoHeight})`, &now)
		return now.Level == pick.Index && !now.Auto && now.Height == pick.Height, fmt.Sprintf("%+v", now)
	})
	b.waitPlaying()

	b.eval(`(() => { const q = document.getElementById('ctl-quality'); q.value = '-1';
		q.dispatchEvent(new Event('change')); })()`, nil)
	testrig.Eventually(t, 10*time.Second, "Auto quality", func() (bool, string) {
		b.eval(`({level: window.starling.hls.currentLevel, auto: window.starling.hls.autoLevelEnabled})`, &now)
		return now.Auto, fmt.Sprintf("%+v", now)
	})
	b.checkProblems()
}

// TestViewerPageP2PToggleKeepsPlaying: turning sharing off and on again
// changes the P2P engine in place: the same hls.js player keeps playing,
// and the video's currentTime only ever moves forward.
func TestViewerPageP2PToggleKeepsPlaying(t *testing.T) {
	s := liveServer(t)
	b := newBrowser(t)
	b.play(s, "")
	var before struct {
		Mode    string `json:"mode"`
		Enabled bool   `json:"enabled"`
		Shown   bool   `json:"shown"`
	}
	b.eval(`window.__player = window.starling.hls;
		({mode: window.starling.playerMode, enabled: window.starling.p2p.enabled, shown: !document.getElementById('p2p').hidden})`, &before)
	if before.Mode != "share" || !before.Enabled || !before.Shown {
		t.Fatalf("before the toggle: %+v, want sharing with the switch shown", before)
	}

	// playsOn clicks the switch and checks, for a few seconds of playback,
	// that currentTime never goes back and that the player is the same.
	playsOn := func(wantMode string) {
		t.Helper()
		var start float64
		b.eval(`document.querySelector('video').currentTime`, &start)
		b.eval(`window.__minTime = document.querySelector('video').currentTime; window.__wentBack = 0;
			window.__watch = setInterval(() => { const t = document.querySelector('video').currentTime;
				if (t < window.__minTime) window.__wentBack++; window.__minTime = Math.max(window.__minTime, t); }, 50);
			document.getElementById('p2p-share').click()`, nil)
		var st struct {
			Time     float64 `json:"time"`
			WentBack int     `json:"wentBack"`
			Same     bool    `json:"same"`
			Mode     string  `json:"mode"`
			Paused   bool    `json:"paused"`
		}
		testrig.Eventually(t, 60*time.Second, "playback going on after the toggle", func() (bool, string) {
			b.eval(`({time: document.querySelector('video').currentTime, wentBack: window.__wentBack,
				same: window.starling.hls === window.__player, mode: window.starling.playerMode,
				paused: document.querySelector('video').paused})`, &st)
			if st.WentBack > 0 || !st.Same {
				t.Fatalf("after turning sharing to %s: %+v: playback restarted (started at %.2f)", wantMode, st, start)
			}
			return st.Mode == wantMode && !st.Paused && st.Time > start+4, fmt.Sprintf("%+v (started at %.2f)", st, start)
		})
		b.eval(`clearInterval(window.__watch)`, nil)
	}
	playsOn("off")
	var p2p struct {
		Enabled bool `json:"enabled"`
		Peers   int  `json:"peers"`
	}
	b.eval(`window.starling.p2p`, &p2p)
	if p2p.Enabled {
		t.Errorf("with sharing off the page still reports P2P on: %+v", p2p)
	}
	playsOn("share")
	b.eval(`window.starling.p2p`, &p2p)
	if !p2p.Enabled {
		t.Errorf("with sharing back on the page reports P2P off: %+v", p2p)
	}
	b.checkProblems()
}

// TestViewerCatchesUpWithLive: a viewer held back (here by pausing)
// speeds up until it is back at the target latency, or, held back too far,
// jumps straight back; the control bar says how far behind it is.
func TestViewerCatchesUpWithLive(t *testing.T) {
	s := liveServer(t)
	b := newBrowser(t)
	b.play(s, "")

	type state struct {
		Off, MaxRate float64
		Seeks        int
		Behind       string
	}
	read := func() state {
		var st state
		b.eval(`(() => { const h = window.starling.hls, v = document.querySelector('video');
			return {off: h.latency - h.targetLatency, maxRate: window.__maxRate || 1, seeks: window.__seeks || 0,
				behind: document.getElementById('ctl-behind').textContent}; })()`, &st)
		return st
	}
	onTarget := func(what string) state {
		t.Helper()
		var st state
		testrig.Eventually(t, 90*time.Second, what, func() (bool, string) {
			st = read()
			return st.Off > -1 && st.Off < 1, fmt.Sprintf("%+v", st)
		})
		return st
	}
	// holdBack pauses the player until it is more than behind seconds
	// behind its target, then plays on, counting seeks and the fastest
	// rate from then on.
	holdBack := func(behind float64) {
		t.Helper()
		b.eval(`document.querySelector('video').pause()`, nil)
		testrig.Eventually(t, 60*time.Second, fmt.Sprintf("the paused player %g s behind", behind), func() (bool, string) {
			st := read()
			return st.Off > behind, fmt.Sprintf("%+v", st)
		})
		b.eval(`(() => { const v = document.querySelector('video');
			window.__maxRate = 1; window.__seeks = 0;
			clearInterval(window.__rates);
			window.__rates = setInterval(() => { window.__maxRate = Math.max(window.__maxRate, v.playbackRate); }, 100);
			v.onseeking = () => { window.__seeks++; };
			v.play(); })()`, nil)
	}

	st := onTarget("the player at its target latency")
	if !strings.HasSuffix(st.Behind, " s behind") {
		t.Errorf("the control bar says %q, want how far behind live the player is", st.Behind)
	}

	holdBack(4)
	st = onTarget("the player caught up with its target")
	if st.MaxRate <= 1 || st.Seeks > 0 {
		t.Errorf("4 s behind: %+v, want a catch-up at a higher rate and no jump", st)
	}

	holdBack(9)
	st = onTarget("the player back at its target")
	if st.Seeks == 0 {
		t.Errorf("9 s behind: %+v, want a jump back", st)
	}
	b.checkProblems()
}
