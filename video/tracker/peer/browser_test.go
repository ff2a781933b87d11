package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/starling-live/starling/core/testrig/chromium"
	"github.com/starling-live/starling/video/tracker"
)

// The Go peer against the real thing: p2p-media-loader-core 2.3.1 (the
// self-contained bundle the viewer page builds from, with bittorrent-tracker
// and simple-peer inside) in headless Chromium, meeting through the test
// relay. The page drives the Core directly, without hls.js: segments are
// random bytes, the Core never parses them. It checks, in both directions,
// that a segment crosses byte-identical, and both ways of setting up the
// connection (the browser offers to a Go peer; a Go peer offers to the
// browser).

// coreBundle is p2p-media-loader-core's browser bundle in the viewer
// page's node_modules (npm ci in build/web).
func coreBundle(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "../../../build/web/node_modules/p2p-media-loader-core/dist/p2p-media-loader-core.es.js")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no p2p-media-loader-core bundle (run npm ci in build/web): %v", err)
	}
	return p
}

const browserPage = `<!doctype html><meta charset="utf-8"><title>p2p</title>
<script type="module">
import { Core } from "/core.js";
const P = await (await fetch("/params")).json();
const hex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");
const core = new Core({
  announceTrackers: [P.tracker],
  rtcConfig: { iceServers: [] },
  swarmId: P.swarmId,
  highDemandTimeWindow: 2,
});
const state = (window.state = { loaded: [], errors: [], peers: [] });
core.addEventListener("onSegmentLoaded", (d) => state.loaded.push({ url: d.segmentUrl, source: d.downloadSource, peer: d.peerId ?? "" }));
core.addEventListener("onPeerConnect", (d) => state.peers.push(d.peerId));
core.addEventListener("onSegmentError", (d) => state.errors.push(String(d.error?.type ?? d.error)));
core.setManifestResponseUrl(location.origin + "/live/index.m3u8");
core.setIsLive(true);
core.addStreamIfNoneExists({ runtimeId: "main", type: "main", index: P.index });
core.updateStream("main", P.segments.map((s) => ({
  runtimeId: s.url, externalId: s.seq, url: location.origin + s.url, startTime: s.start, endTime: s.end,
})));
core.updatePlayback(0, 1);
// load resolves with the SHA-256 of what the Core hands the player.
window.load = (url) => new Promise((resolve) => core.loadSegment(url, {
  onSuccess: async (r) => resolve(hex(await crypto.subtle.digest("SHA-256", r.data))),
  onError: (e) => resolve("error: " + e.type),
}));
state.ready = true;
</script>`

type browserState struct {
	Ready  bool
	Loaded []struct{ URL, Source, Peer string }
	Errors []string
	Peers  []string
}

func TestBrowserPeer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Skip("no chromium")
	}
	bundle := coreBundle(t)

	// A live window of five 2 s segments. The page plays from 0 with a
	// 2 s high-demand window: segments 0 and 1 come over HTTP, the later
	// ones over P2P only. The server serves segments 0 and 1 alone (the
	// Core also fetches later ones over HTTP at random): segment 3 is only
	// at the Go peer, and nobody has segment 4.
	const swarmID = "starling-browser-test"
	index := tracker.StreamShortID(tracker.StreamProps{})
	const first = int64(18_000_000_000)
	segs := make([][]byte, 5)
	for i := range segs {
		segs[i] = make([]byte, 600_000+i*100_000)
		_, _ = rand.Read(segs[i])
	}
	url := func(i int) string { return "/seg/" + strconv.Itoa(i) }

	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	r := newRelayHandler(t, 120, srv.URL)
	mux.Handle("/tracker", r)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(browserPage)) })
	mux.HandleFunc("/core.js", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		http.ServeFile(w, req, bundle)
	})
	mux.HandleFunc("/params", func(w http.ResponseWriter, _ *http.Request) {
		type seg struct {
			Seq   int64   `json:"seq"`
			URL   string  `json:"url"`
			Start float64 `json:"start"`
			End   float64 `json:"end"`
		}
		p := struct {
			Tracker  string `json:"tracker"`
			SwarmID  string `json:"swarmId"`
			Index    string `json:"index"`
			Segments []seg  `json:"segments"`
		}{Tracker: "ws" + strings.TrimPrefix(srv.URL, "http") + "/tracker", SwarmID: swarmID, Index: index}
		for i := range segs {
			p.Segments = append(p.Segments, seg{Seq: first + int64(i), URL: url(i), Start: float64(2 * i), End: float64(2*i + 2)})
		}
		b, _ := json.Marshal(p)
		_, _ = w.Write(b)
	})
	mux.HandleFunc("/seg/{i}", func(w http.ResponseWriter, req *http.Request) {
		i, err := strconv.Atoi(req.PathValue("i"))
		if err != nil || i < 0 || i > 1 {
			http.NotFound(w, req)
			return
		}
		_, _ = w.Write(segs[i])
	})

	infoHash := tracker.SwarmInfoHash(swarmID, tracker.StreamMain, index)
	dialGo := func() *Peer {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		p, err := Dial(ctx, Config{Logger: testLogger(t), TrackerURL: "ws" + strings.TrimPrefix(srv.URL, "http") + "/tracker", Origin: srv.URL, InfoHash: infoHash})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		return p
	}
	// a is in the swarm first: the browser's offers go to it.
	a := dialGo()
	a.AddSegment(first+3, segs[3])

	actx, cancelAlloc, err := chromium.Allocator(t.TempDir(),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true))
	if err != nil {
		t.Fatal(err)
	}
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer func() {
		if err := chromium.Close(bctx); err != nil {
			t.Logf("closing chromium: %v", err)
		}
		cancelBrowser()
		cancelAlloc()
	}()
	// The first Run starts the browser, which lives as long as its context:
	// not one with a timeout.
	if err := chromedp.Run(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
		defer cancel()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	state := func() browserState {
		var s browserState
		run("read state", chromedp.Evaluate(`window.state ?? {}`, &s))
		return s
	}
	load := func(i int) string {
		var h string
		run("load "+url(i), chromedp.Evaluate(fmt.Sprintf("load(%q)", url(i)), &h, func(p *cdpruntime.EvaluateParams) *cdpruntime.EvaluateParams {
			return p.WithAwaitPromise(true)
		}))
		return h
	}
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

	run("open the page", chromedp.Navigate(srv.URL+"/"))
	eventually(t, "the page to start", 30*time.Second, func() bool { return state().Ready })

	// Segment 0 over HTTP; loading it starts the Core's tracker client.
	if got := load(0); got != sum(segs[0]) {
		t.Fatalf("segment 0 over HTTP: %s", got)
	}
	var browserID string
	eventually(t, "the browser's announce", 30*time.Second, func() bool {
		for _, m := range r.messages() {
			if m.m.Event == "started" && m.m.PeerID != a.ID() {
				browserID = m.m.PeerID
				if m.m.InfoHash != infoHash {
					t.Fatalf("the browser announced info hash %q, InfoHash gives %q", m.m.InfoHash, infoHash)
				}
				return true
			}
		}
		return false
	})
	t.Logf("browser peer id %s", browserID)

	// The browser offered, the Go peer answered.
	eventually(t, "a data channel between the browser and a", 30*time.Second, func() bool {
		return slices.Contains(a.Connected(), browserID)
	})

	// Browser to Go: what the browser loaded over HTTP, byte for byte.
	eventually(t, "the browser to announce segment 0", 20*time.Second, func() bool {
		return slices.Contains(a.Has(browserID), first)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := a.Request(ctx, browserID, first)
	if err != nil || !bytes.Equal(got, segs[0]) {
		t.Fatalf("segment 0 from the browser: %d bytes, %v", len(got), err)
	}

	// Go to browser: segment 3 exists only at a, so the Core's queue
	// fetches it over P2P, and the player gets exactly a's bytes.
	eventually(t, "the browser to load segment 3 over P2P", 30*time.Second, func() bool {
		for _, l := range state().Loaded {
			if strings.HasSuffix(l.URL, url(3)) && l.Source == "p2p" && l.Peer == a.ID() {
				return true
			}
		}
		return false
	})
	if got := load(3); got != sum(segs[3]) {
		t.Fatalf("segment 3 in the browser: %s, want %s", got, sum(segs[3]))
	}
	if a.Uploaded() != int64(len(segs[3])) {
		t.Errorf("a uploaded %d bytes, want %d", a.Uploaded(), len(segs[3]))
	}

	// b joins after the browser: b offers, the browser answers.
	b := dialGo()
	eventually(t, "a data channel between b and the browser", 30*time.Second, func() bool {
		return slices.Contains(b.Connected(), browserID)
	})
	eventually(t, "the browser to announce segment 0 to b", 20*time.Second, func() bool {
		return slices.Contains(b.Has(browserID), first)
	})
	got, err = b.Request(ctx, browserID, first)
	if err != nil || !bytes.Equal(got, segs[0]) {
		t.Fatalf("segment 0 from the browser to b: %d bytes, %v", len(got), err)
	}
	// A segment the browser does not have, but knows from its playlist.
	if _, err := b.Request(ctx, browserID, first+4); !errors.Is(err, ErrSegmentAbsent) {
		t.Fatalf("segment 4, which the browser never loaded: %v, want ErrSegmentAbsent", err)
	}
	if s := state(); len(s.Errors) > 0 {
		t.Logf("segment errors in the page (HTTP 404s for segments the server lacks are expected): %q", s.Errors)
	}
}
