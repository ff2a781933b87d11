package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/grafov/m3u8"

	"github.com/starling-live/starling/core/testrig"
	"github.com/starling-live/starling/video/hls"
	"github.com/starling-live/starling/video/tracker"
	"github.com/starling-live/starling/video/tracker/peer"
)

// p2pSnapshot is what the viewer page reports of its P2P traffic
// (window.starling.p2p).
type p2pSnapshot struct {
	Enabled             bool  `json:"enabled"`
	HTTPBytes           int64 `json:"httpBytes"`
	P2PBytes            int64 `json:"p2pBytes"`
	P2PUploadedBytes    int64 `json:"p2pUploadedBytes"`
	P2PRejectedSegments int64 `json:"p2pRejectedSegments"`
	Peers               int   `json:"peers"`
}

func (b *browser) p2p() p2pSnapshot {
	b.t.Helper()
	var s p2pSnapshot
	b.eval(`window.starling.p2p`, &s)
	return s
}

// watchStalls counts the times playback stops to wait for data after it
// first started.
func (b *browser) watchStalls() {
	b.t.Helper()
	b.eval(`(() => {
		const v = document.querySelector('video');
		window.testStalls = 0;
		let started = false;
		v.addEventListener('playing', () => { started = true; });
		v.addEventListener('waiting', () => { if (started) window.testStalls++; });
		return true;
	})()`, nil)
}

func (b *browser) stalls() int {
	b.t.Helper()
	var n int
	b.eval(`window.testStalls`, &n)
	return n
}

// openViewer opens the viewer page in its own Chromium and waits until it
// plays.
func openViewer(t *testing.T, s *testServer, query string) *browser {
	t.Helper()
	b := newBrowser(t)
	b.run(chromedp.Navigate(s.URL + "/" + query))
	b.watchStalls()
	b.waitPlaying()
	return b
}

// TestViewersShareSegments: three viewers, each in its own Chromium
// process, watch for a minute; the later ones get a real share of their
// bytes from the others, and nobody stalls.
func TestViewersShareSegments(t *testing.T) {
	s := startServer(t)
	publish(t, s.RTMPURL+"/"+testStreamKey)
	s.waitSegments("/hls/0/stream.m3u8", 2)

	first := openViewer(t, s, "")
	later := []*browser{openViewer(t, s, ""), openViewer(t, s, "")}
	all := append([]*browser{first}, later...)
	for _, b := range all {
		if !b.p2p().Enabled {
			t.Fatal("a viewer has P2P off")
		}
	}
	start := time.Now()
	testrig.Eventually(t, 90*time.Second, "a minute of watching", func() (bool, string) {
		return time.Since(start) > time.Minute, ""
	})

	var p2p, total int64
	for i, b := range all {
		st := b.p2p()
		t.Logf("viewer %d: %+v, stalls %d", i+1, st, b.stalls())
		if n := b.stalls(); n > 0 {
			t.Errorf("viewer %d stalled %d times", i+1, n)
		}
		if st.P2PRejectedSegments != 0 {
			t.Errorf("viewer %d rejected %d segments from honest peers", i+1, st.P2PRejectedSegments)
		}
		if i > 0 {
			p2p += st.P2PBytes
			total += st.P2PBytes + st.HTTPBytes
		}
	}
	share := float64(p2p) / float64(total)
	t.Logf("later viewers got %.0f%% of their segment bytes over P2P", share*100)
	if share < 0.2 {
		t.Errorf("later viewers got %.0f%% of their segment bytes over P2P, want a real share (at least 20%%)", share*100)
	}
	// The server saw the same through the page reports.
	var as struct {
		P2P struct {
			Tracker  struct{ Peers, Swarms int }
			Playback struct {
				P2PViewers int     `json:"p2pViewers"`
				Offload    float64 `json:"offloadRatio"`
			}
		} `json:"p2p"`
	}
	testrig.Eventually(t, 20*time.Second, "the server's P2P figures", func() (bool, string) {
		_, body := s.admin(http.MethodGet, "/api/admin/status", nil)
		json.Unmarshal(body, &as)
		return as.P2P.Tracker.Peers == 3 && as.P2P.Playback.P2PViewers == 3 && as.P2P.Playback.Offload > 0, string(body)
	})
}

// TestTamperedSegmentIsRejected: a viewer whose page corrupts what it
// uploads is caught by the others' SHA-256 check; they fetch over HTTP
// instead and keep playing.
func TestTamperedSegmentIsRejected(t *testing.T) {
	s := startServer(t)
	publish(t, s.RTMPURL+"/"+testStreamKey)
	s.waitSegments("/hls/0/stream.m3u8", 2)

	liar := openViewer(t, s, "?p2pTamper=1")
	honest := openViewer(t, s, "")
	testrig.Eventually(t, 90*time.Second, "a corrupt segment to be rejected", func() (bool, string) {
		st := honest.p2p()
		return st.P2PRejectedSegments > 0, fmt.Sprintf("honest %+v, liar %+v", st, liar.p2p())
	})
	// The honest viewer plays on.
	honest.waitPlaying()
	if n := honest.stalls(); n > 0 {
		t.Errorf("the honest viewer stalled %d times", n)
	}
	testrig.Eventually(t, 20*time.Second, "the rejection in the server's figures", func() (bool, string) {
		_, body := s.admin(http.MethodGet, "/api/admin/status", nil)
		var as struct {
			P2P struct {
				Playback struct {
					Rejected int64 `json:"p2pRejectedSegments"`
				}
			} `json:"p2p"`
		}
		json.Unmarshal(body, &as)
		return as.P2P.Playback.Rejected > 0, string(body)
	})
}

// TestGoPeerConformance: a Go peer (pion) joins a real viewer's swarm
// through Starling's tracker. It serves the viewer segments it fetched
// from the server, which the viewer accepts after checking them, and
// fetches from the viewer segments byte-identical to the server's copy.
func TestGoPeerConformance(t *testing.T) {
	s := startServer(t)
	publish(t, s.RTMPURL+"/"+testStreamKey)
	// A viewer that starts with a full playlist plays liveSyncDurationCount
	// segments behind the live edge, where segments are shared; one that
	// starts with the first two plays closer, and fetches all over HTTP.
	s.waitSegments("/hls/0/stream.m3u8", 7)

	var master m3u8.MasterPlaylist
	_, raw := s.get("/hls/stream.m3u8")
	if err := master.DecodeFrom(bytes.NewReader(raw), true); err != nil || len(master.Variants) == 0 {
		t.Fatalf("master playlist: %v\n%s", err, raw)
	}
	v := master.Variants[0]
	r := hls.Rendition{Bandwidth: int(v.Bandwidth), Codecs: v.Codecs}
	fmt.Sscanf(v.Resolution, "%dx%d", &r.Width, &r.Height)

	viewer := openViewer(t, s, "")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	gp, err := peer.Dial(ctx, peer.Config{
		Logger:     s.logs.Logger(),
		TrackerURL: "ws" + strings.TrimPrefix(s.URL, "http") + "/tracker",
		Origin:     s.URL,
		InfoHash:   tracker.InfoHash("starling", r),
	})
	if err != nil {
		t.Fatalf("Go peer: %v", err)
	}
	defer gp.Close()

	// The Go peer holds every even segment as the server published it, as
	// a viewer that fetched them over HTTP would.
	seq := func(uri string) int64 {
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(uri, "seg-"), ".ts"), 10, 64)
		return n
	}
	served := map[int64][]byte{}
	feed := func() {
		for _, seg := range s.mediaPlaylist("/hls/0/stream.m3u8").GetAllSegments() {
			if n := seq(seg.URI); n%2 == 0 && served[n] == nil {
				_, data := s.get("/hls/0/" + seg.URI)
				served[n] = data
				gp.AddSegment(n, data)
			}
		}
	}

	// Browser -> Go: an odd segment the viewer loaded over HTTP.
	var browserID string
	var got int64
	testrig.Eventually(t, 2*time.Minute, "the Go peer to fetch a segment from the viewer", func() (bool, string) {
		feed()
		conns := gp.Connected()
		if len(conns) == 0 {
			return false, "not connected"
		}
		browserID = conns[0]
		for _, n := range gp.Has(browserID) {
			if n%2 == 1 {
				data, err := gp.Request(ctx, browserID, n)
				if err != nil {
					return false, err.Error()
				}
				_, want := s.get(fmt.Sprintf("/hls/0/seg-%d.ts", n))
				if !bytes.Equal(data, want) {
					t.Fatalf("segment %d from the viewer differs from the server's copy (%d vs %d bytes)", n, len(data), len(want))
				}
				got = n
				return true, ""
			}
		}
		return false, fmt.Sprintf("viewer has %v", gp.Has(browserID))
	})
	t.Logf("fetched segment %d from the viewer, identical to the server's", got)

	// Go -> browser: the viewer takes segments from the Go peer and its
	// SHA-256 check passes.
	testrig.Eventually(t, 2*time.Minute, "the viewer to accept segments from the Go peer", func() (bool, string) {
		feed()
		st := viewer.p2p()
		return st.P2PBytes > 0 && gp.Uploaded() > 0, fmt.Sprintf("viewer %+v, Go peer uploaded %d", st, gp.Uploaded())
	})
	if st := viewer.p2p(); st.P2PRejectedSegments != 0 {
		t.Errorf("the viewer rejected %d segments from the Go peer", st.P2PRejectedSegments)
	}
}
