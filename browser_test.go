package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/starling-live/starling/core/testrig"
	"github.com/starling-live/starling/core/testrig/chromium"
)

// browser is a headless Chromium driven over the DevTools protocol. It
// collects what the page reports as errors: exceptions, console errors and
// CSP violations.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	problems []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	requireTools(t, "chromium")
	actx, cancelAlloc, err := chromium.Allocator(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		if err := chromium.Close(ctx); err != nil {
			t.Logf("closing chromium: %v", err)
		}
		cancel()
		cancelAlloc()
	})
	b := &browser{t: t, ctx: ctx}
	b.listen()
	if err := chromedp.Run(ctx, log.Enable()); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

// newWindow opens a blank page in a new window of b's Chromium. Viewers
// are windows of one Chromium rather than a Chromium each: on two cores,
// separate Chromium processes decoding video starve each other
// (build/bench/swarm does the same). A window, not a tab, because a
// background tab is throttled. With isolated, the window gets a browser
// context of its own, so its storage (the viewer's P2P choice, among
// others) is not the other pages'.
func (b *browser) newWindow(isolated bool) *browser {
	b.t.Helper()
	var id target.ID
	b.run(chromedp.ActionFunc(func(ctx context.Context) error {
		onBrowser := cdp.WithExecutor(ctx, chromedp.FromContext(ctx).Browser)
		create := target.CreateTarget("about:blank").WithNewWindow(true)
		if isolated {
			// Chromium drops the context when it exits, at the end of
			// the test.
			bc, err := target.CreateBrowserContext().Do(onBrowser)
			if err != nil {
				return err
			}
			create = create.WithBrowserContextID(bc)
		}
		var err error
		id, err = create.Do(onBrowser)
		return err
	}))
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithTargetID(id))
	// Runs before b's cleanup, which closes Chromium.
	b.t.Cleanup(cancel)
	w := &browser{t: b.t, ctx: ctx}
	w.listen()
	// The first Run attaches to the window for as long as the context it
	// is given lives: the window's own, not b.run's timeout.
	if err := chromedp.Run(ctx, log.Enable()); err != nil {
		b.t.Fatalf("open a chromium window: %v", err)
	}
	return w
}

// listen collects what the page reports as problems.
func (b *browser) listen() {
	chromedp.ListenTarget(b.ctx, func(ev any) {
		var problem string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			problem = "exception: " + ev.ExceptionDetails.Error()
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.APITypeError {
				problem = "console.error"
				for _, a := range ev.Args {
					problem += " " + string(a.Value)
				}
			}
		case *log.EventEntryAdded:
			// The browser's own 404 reports for a missing thumbnail or a
			// playlist not written yet are expected; CSP violations are not.
			if ev.Entry.Level == log.LevelError && !strings.Contains(ev.Entry.Text, "404") {
				problem = "browser: " + ev.Entry.Text
			}
		}
		if problem != "" {
			b.mu.Lock()
			b.problems = append(b.problems, problem)
			b.mu.Unlock()
		}
	})
}

func (b *browser) run(actions ...chromedp.Action) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// eval evaluates a JavaScript expression in the page.
func (b *browser) eval(expr string, out any) {
	b.t.Helper()
	b.run(chromedp.Evaluate(expr, out))
}

func (b *browser) checkProblems() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("the page reported a problem: %s", p)
	}
}

// waitPlaying waits until the page is online and its video's currentTime
// advances by more than two seconds.
func (b *browser) waitPlaying() {
	b.t.Helper()
	var start float64 = -1
	testrig.Eventually(b.t, 90*time.Second, "the video to play", func() (bool, string) {
		var st struct {
			State       string  `json:"state"`
			CurrentTime float64 `json:"currentTime"`
			Paused      bool    `json:"paused"`
		}
		b.eval(`({state: window.starling.state, currentTime: document.querySelector('video').currentTime, paused: document.querySelector('video').paused})`, &st)
		if st.State != "online" || st.Paused {
			return false, fmt.Sprintf("%+v", st)
		}
		if start < 0 {
			start = st.CurrentTime
		}
		return st.CurrentTime > start+2, fmt.Sprintf("%+v (started at %.2f)", st, start)
	})
}

func (b *browser) waitState(want string) {
	b.t.Helper()
	testrig.Eventually(b.t, 60*time.Second, "page state "+want, func() (bool, string) {
		var st string
		b.eval(`window.starling.state`, &st)
		return st == want, st
	})
}

// TestViewerPagePlays opens the viewer page in headless Chromium with the
// default video settings: it shows the offline state, plays when the
// stream goes live, goes offline when the publisher leaves, and plays
// again when it returns, all without a reload.
func TestViewerPagePlays(t *testing.T) {
	s := startServer(t)
	if code, body := s.admin(http.MethodPost, "/api/admin/config/streamtitle", map[string]string{"value": "Browser test stream"}); code != http.StatusOK {
		t.Fatalf("set title: %d %s", code, body)
	}
	b := newBrowser(t)
	b.run(chromedp.Navigate(s.URL + "/"))
	b.waitState("offline")
	var title string
	testrig.Eventually(t, 30*time.Second, "the stream title", func() (bool, string) {
		b.eval(`document.getElementById('stream-title').textContent`, &title)
		return title == "Browser test stream", title
	})
	// A marker that a reload would lose.
	b.eval(`window.testMarker = 42`, nil)

	pub := publish(t, s.RTMPURL+"/"+testStreamKey)
	b.waitPlaying()
	var size struct{ W, H int }
	b.eval(`({W: document.querySelector('video').videoWidth, H: document.querySelector('video').videoHeight})`, &size)
	if size.W != 640 || size.H != 360 {
		t.Errorf("the video plays at %dx%d, want 640x360", size.W, size.H)
	}

	pub.stop()
	b.waitState("offline")
	publish(t, s.RTMPURL+"/"+testStreamKey)
	b.waitPlaying()

	var marker int
	b.eval(`window.testMarker`, &marker)
	if marker != 42 {
		t.Error("the page was reloaded")
	}
	b.checkProblems()
}
