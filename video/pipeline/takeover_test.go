package pipeline

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/grafov/m3u8"

	"github.com/starling-live/starling/core/testrig"
)

// watcher polls the stream as a player and a status page would, every
// 50 ms, and remembers everything it saw: whether the stream ever showed
// offline, every segment by media sequence number, and ENDLIST.
type watcher struct {
	r    *rig
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	offline  bool              // seen offline after online
	ended    bool              // a playlist had EXT-X-ENDLIST
	segments map[uint64]string // media sequence -> URI
	disc     map[uint64]bool   // sequence numbers that start a discontinuity
	polls    int
	live     bool // seen online
}

func watch(t *testing.T, r *rig) *watcher {
	w := &watcher{r: r, stop: make(chan struct{}), done: make(chan struct{}), segments: map[uint64]string{}, disc: map[uint64]bool{}}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			w.poll()
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(w.close)
	return w
}

func (w *watcher) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *watcher) poll() {
	online := w.r.stream.Status().Online
	pl := readPlaylist(w.r.hls)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polls++
	if online {
		w.live = true
	} else if w.live {
		w.offline = true
	}
	if pl == nil {
		return
	}
	if pl.Closed {
		w.ended = true
	}
	for i, s := range pl.GetAllSegments() {
		seq := pl.SeqNo + uint64(i)
		w.segments[seq] = s.URI
		if s.Discontinuity {
			w.disc[seq] = true
		}
	}
}

// newest returns the highest media sequence number seen.
func (w *watcher) newest() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n uint64
	for seq := range w.segments {
		n = max(n, seq)
	}
	return n
}

// readPlaylist fetches the first variant's playlist from the packager,
// as a viewer does; nil if there is none.
func readPlaylist(hls http.Handler) *m3u8.MediaPlaylist {
	w := httptest.NewRecorder()
	// Mounted with /hls/ stripped.
	hreq := httptest.NewRequest(http.MethodGet, "/", nil)
	hreq.URL.Path = "0/stream.m3u8"
	hls.ServeHTTP(w, hreq)
	if w.Code != http.StatusOK {
		return nil
	}
	b := w.Body.Bytes()
	pl, typ, err := m3u8.DecodeFrom(bytes.NewReader(b), true)
	if err != nil || typ != m3u8.MEDIA {
		return nil
	}
	return pl.(*m3u8.MediaPlaylist)
}

// checkContinuous fails unless the segments seen have consecutive media
// sequence numbers, each segment named by its own, with exactly one
// discontinuity after the first one seen: one broadcast, two ffmpeg runs.
func (w *watcher) checkContinuous(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.offline || w.ended {
		t.Errorf("viewers saw the broadcast end (offline %v, ENDLIST %v) while a publisher took over", w.offline, w.ended)
	}
	first, last := ^uint64(0), uint64(0)
	for seq := range w.segments {
		first, last = min(first, seq), max(last, seq)
	}
	for seq := first; seq <= last; seq++ {
		uri, ok := w.segments[seq]
		if !ok {
			t.Errorf("media sequence %d is missing between %d and %d", seq, first, last)
			continue
		}
		if uri != "seg-"+strconv.FormatUint(seq, 10)+".ts" {
			t.Errorf("media sequence %d names %s", seq, uri)
		}
	}
	var discs []uint64
	for seq := range w.disc {
		if seq > first {
			discs = append(discs, seq)
		}
	}
	if len(discs) != 1 {
		t.Errorf("discontinuities at %v, want one where the new publisher's run starts (segments %d to %d)", discs, first, last)
	}
}

// discontinuityAfter is the first segment after seq that starts a new
// run, 0 if none was seen.
func (w *watcher) discontinuityAfter(seq uint64) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var first uint64
	for d := range w.disc {
		if d > seq && (first == 0 || d < first) {
			first = d
		}
	}
	return first
}

// awaitSegments waits until n segments newer than after are published.
func (w *watcher) awaitSegments(t *testing.T, what string, after uint64, n int) {
	t.Helper()
	testrig.Eventually(t, 60*time.Second, what, func() (bool, string) {
		newest := w.newest()
		return newest >= after+uint64(n), fmt.Sprintf("newest segment %d", newest)
	})
}

// TestNewPublishTakesOver: a publish with the stream key always gets in.
// The publisher before it is gone (killed; OBS restarted) or frozen (its
// network went away and the server still holds the socket); either way
// the broadcast goes on, viewers never see it end, and the media
// sequence runs on through a discontinuity.
func TestNewPublishTakesOver(t *testing.T) {
	for _, tt := range []struct {
		name string
		sig  syscall.Signal
	}{{"after the publisher was killed", syscall.SIGKILL}, {"from a frozen publisher", syscall.SIGSTOP}} {
		t.Run(tt.name, func(t *testing.T) {
			r := startRig(t, lightVideo)
			first := publish(t, r.rtmpURL, 120, 30)
			w := watch(t, r)
			w.awaitSegments(t, "the first publisher's segments", 0, 0)
			w.awaitSegments(t, "two segments from the first publisher", w.newest(), 2)
			before := r.stream.Status()

			first.Process.Signal(tt.sig)
			cut := w.newest()
			start := time.Now()
			publish(t, r.rtmpURL, 120, 30)
			testrig.Eventually(t, 30*time.Second, "the new publisher to take over", func() (bool, string) {
				st := r.stream.Status()
				return st.Broadcaster != nil && st.Broadcaster.RemoteAddr != before.Broadcaster.RemoteAddr, fmt.Sprintf("%+v", st.Broadcaster)
			})
			t.Logf("the new publisher took over %v after it was started", time.Since(start).Round(time.Millisecond))
			// Three segments of the new publisher's run, which starts with a
			// discontinuity: the old run may still flush a few short ones.
			testrig.Eventually(t, 60*time.Second, "three segments from the new publisher's run", func() (bool, string) {
				run, newest := w.discontinuityAfter(cut), w.newest()
				return run > 0 && newest >= run+2, fmt.Sprintf("its run starts at %d, newest segment %d", run, newest)
			})
			w.close()
			w.checkContinuous(t)
			if st := r.stream.Status(); !st.LastConnect.Equal(*before.LastConnect) {
				t.Errorf("the broadcast restarted: connected at %v, then at %v", before.LastConnect, st.LastConnect)
			}
			if tt.sig == syscall.SIGSTOP {
				// Woken up, the frozen publisher finds itself disconnected.
				first.Process.Signal(syscall.SIGCONT)
				exited := make(chan error, 1)
				go func() { exited <- first.Wait() }()
				select {
				case <-exited:
				case <-time.After(30 * time.Second):
					t.Error("the replaced publisher is still connected")
				}
			}
		})
	}
}

// TestGonePublisherGoesOffline: a publisher that is really gone, killed or
// frozen, and not replaced, shows offline within 5 s of the end of its
// last segment, and the playlist is closed.
func TestGonePublisherGoesOffline(t *testing.T) {
	for _, tt := range []struct {
		name string
		sig  syscall.Signal
	}{{"killed", syscall.SIGKILL}, {"frozen", syscall.SIGSTOP}} {
		t.Run(tt.name, func(t *testing.T) {
			r := startRig(t, lightVideo)
			pub := publish(t, r.rtmpURL, 120, 30)
			w := watch(t, r)
			w.awaitSegments(t, "the first segments", 0, 0)
			w.awaitSegments(t, "two more segments", w.newest(), 2)
			pub.Process.Signal(tt.sig)
			signalled := time.Now()
			testrig.Eventually(t, 30*time.Second, "the stream to go offline", func() (bool, string) {
				return !r.stream.Status().Online, "online"
			})
			pl := readPlaylist(r.hls)
			if pl == nil || !pl.Closed {
				t.Fatalf("the playlist after the broadcast ended: %+v", pl)
			}
			// The end of the last segment is when the server wrote it:
			// ffmpeg's EXT-X-PROGRAM-DATE-TIME runs seconds off the clock.
			segs := pl.GetAllSegments()
			fi, err := os.Stat(filepath.Join(r.hlsDir, "0", segs[len(segs)-1].URI))
			if err != nil {
				t.Fatal(err)
			}
			end := fi.ModTime()
			off := *r.stream.Status().LastDisconnect
			t.Logf("offline %v after the last segment was written, %v after the publisher was %s", off.Sub(end).Round(time.Millisecond), off.Sub(signalled).Round(time.Millisecond), tt.name)
			if off.Sub(end) > 5*time.Second {
				t.Errorf("offline %v after the last segment was written, want at most 5 s", off.Sub(end).Round(time.Millisecond))
			}
			if how := "how=" + map[syscall.Signal]string{syscall.SIGKILL: "dropped", syscall.SIGSTOP: `"went silent"`}[tt.sig]; !strings.Contains(r.logs.String(), how) {
				t.Errorf("the log does not say the publisher %s", how)
			}
		})
	}
}
