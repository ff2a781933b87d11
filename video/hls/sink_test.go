package hls

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafov/m3u8"

	"github.com/starling-live/starling/core/testrig"
)

// fakeRemote is a remote store in memory that fails or blocks on demand:
// fault injection (storage/s3's tests run a real S3 server).
type fakeRemote struct {
	mu      sync.Mutex
	objects map[string][]byte
	failing bool
	// hold, if set, blocks every Put until it is closed.
	hold    chan struct{}
	deletes [][]string // each Delete call's names
	puts    int
}

func newFakeRemote() *fakeRemote { return &fakeRemote{objects: map[string][]byte{}} }

func (f *fakeRemote) Put(ctx context.Context, name string, data []byte) error {
	f.mu.Lock()
	hold, failing := f.hold, f.failing
	f.puts++
	f.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if failing {
		return errors.New("503 Service Unavailable: the bucket is down")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objects[name] = data
	return nil
}

func (f *fakeRemote) Delete(ctx context.Context, names ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing {
		return errors.New("503 Service Unavailable: the bucket is down")
	}
	f.deletes = append(f.deletes, names)
	for _, n := range names {
		delete(f.objects, n)
	}
	return nil
}

func (f *fakeRemote) Clear(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing {
		return errors.New("503 Service Unavailable: the bucket is down")
	}
	clear(f.objects)
	return nil
}

func (f *fakeRemote) URL(name string) string { return "https://cdn.example/live/" + name }

// setHold makes every Put wait until hold is closed; nil lets them go.
func (f *fakeRemote) setHold(hold chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hold = hold
}

func (f *fakeRemote) set(failing bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing = failing
}

func (f *fakeRemote) names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.objects {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (f *fakeRemote) has(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.objects[name]
	return ok
}

// eventually polls cond until it holds, failing the test after a
// deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testrig.Eventually(t, 10*time.Second, what, func() (bool, string) { return cond(), "" })
}

func lastURI(pl *m3u8.MediaPlaylist) string {
	segs := pl.GetAllSegments()
	return segs[len(segs)-1].URI
}

func TestRemoteSegmentsAreListedUnderTheirURLOnceUploaded(t *testing.T) {
	p, _ := newPackager(t)
	remote := newFakeRemote()
	b := p.Begin(context.Background(), Options{PlaylistSegments: 3, Remote: remote})
	f := &fakeFFmpeg{t: t, base: b.NextRunURL(), pdt: time.Now()}
	for i := range 3 {
		f.send(0, i)
	}
	pl := waitPlaylist(t, p, "0/stream.m3u8", hasSegments(3))
	for _, s := range pl.GetAllSegments() {
		name := strings.TrimPrefix(s.URI, "https://cdn.example/live/")
		if name == s.URI || !remote.has(name) {
			t.Errorf("playlist names %s, which is not an uploaded object", s.URI)
		}
	}
	if st := p.StorageStatus(); !st.Remote || st.Down || st.Uploaded != 3 {
		t.Errorf("status %+v", st)
	}
	// Nothing is kept on local disk for a bucket that works.
	if code, _ := get(t, p, "0/"+strings.TrimPrefix(lastURI(pl), "https://cdn.example/live/0/")); code != 404 {
		t.Errorf("a segment in the bucket is also served locally (%d)", code)
	}

	// Segments past retention are removed from the bucket in batches.
	for i := 3; i < 3+deleteBatch+6; i++ {
		f.send(0, i)
	}
	eventually(t, "a batch delete", func() bool {
		remote.mu.Lock()
		defer remote.mu.Unlock()
		return len(remote.deletes) > 0
	})
	remote.mu.Lock()
	first := remote.deletes[0]
	remote.mu.Unlock()
	if len(first) < deleteBatch {
		t.Errorf("deleted %d objects in one request, want batches of %d", len(first), deleteBatch)
	}
	// A new broadcast empties the bucket of the old one.
	b.End(context.Background())
	p.Begin(context.Background(), Options{PlaylistSegments: 3})
	eventually(t, "the old broadcast's objects removed", func() bool { return len(remote.names()) == 0 })
}

func TestBucketOutageServesLocallyThenUploadsTheBacklog(t *testing.T) {
	p, _ := newPackager(t)
	p.limits.maxBackoff = 10 * time.Millisecond
	remote := newFakeRemote()
	b := p.Begin(context.Background(), Options{PlaylistSegments: 3, Remote: remote})
	f := &fakeFFmpeg{t: t, base: b.NextRunURL(), pdt: time.Now()}
	f.send(0, 0)
	pl := waitPlaylist(t, p, "0/stream.m3u8", hasSegments(1))
	first := pl.SeqNo

	remote.set(true)
	for i := 1; i < 10; i++ {
		f.send(0, i)
		// Each segment is listed, and can be fetched where the playlist
		// says, while the bucket is down: viewers keep watching.
		want := fmt.Sprintf("seg-%d.ts", first+uint64(i))
		pl := waitPlaylist(t, p, "0/stream.m3u8", func(pl *m3u8.MediaPlaylist) bool { return lastURI(pl) == want })
		if code, body := get(t, p, "0/"+lastURI(pl)); code != 200 || string(body) != string(segmentBody(0, i)) {
			t.Fatalf("segment %s, listed during the outage: %d %q", want, code, body)
		}
	}
	st := p.StorageStatus()
	if !st.Down || st.LastError == "" || st.Backlog != 9 || st.DownSince.IsZero() {
		t.Errorf("status during the outage: %+v", st)
	}

	// The bucket comes back: the backlog goes up, even the segments that
	// have left retention meanwhile, and new segments go there again.
	remote.set(false)
	eventually(t, "the backlog uploaded", func() bool { return p.StorageStatus().Backlog == 0 })
	for i := range 10 {
		name := fmt.Sprintf("0/seg-%d.ts", first+uint64(i))
		if !remote.has(name) && !slices.ContainsFunc(remote.deletes, func(d []string) bool { return slices.Contains(d, name) }) {
			t.Errorf("%s never reached the bucket", name)
		}
	}
	f.send(0, 10)
	want := fmt.Sprintf("https://cdn.example/live/0/seg-%d.ts", first+10)
	waitPlaylist(t, p, "0/stream.m3u8", func(pl *m3u8.MediaPlaylist) bool { return lastURI(pl) == want })
	if st := p.StorageStatus(); st.Down || st.Deferred != 9 {
		t.Errorf("status after the outage: %+v", st)
	}
}

func TestSlowBucketHoldsOnlyItsOwnSegments(t *testing.T) {
	p, _ := newPackager(t)
	remote := newFakeRemote()
	b := p.Begin(context.Background(), Options{PlaylistSegments: 3, Remote: remote})
	f := &fakeFFmpeg{t: t, base: b.NextRunURL(), pdt: time.Now()}
	f.send(0, 0)
	f.master(1)
	waitPlaylist(t, p, "0/stream.m3u8", hasSegments(1))

	hold := make(chan struct{})
	remote.setHold(hold)
	f.send(0, 1)
	eventually(t, "the upload started", func() bool {
		remote.mu.Lock()
		defer remote.mu.Unlock()
		return remote.puts >= 2
	})
	// While the upload hangs, ffmpeg's PUTs are answered, the renditions
	// and playlists are served: nothing waits on the bucket but the
	// segment itself.
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.segment(0, 2)
		p.Renditions()
		get(t, p, MasterPlaylist)
		get(t, p, "0/stream.m3u8")
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the packager is stuck behind a hanging upload")
	}
	if n := len(readPlaylist(t, p, "0/stream.m3u8").GetAllSegments()); n != 1 {
		t.Errorf("%d segments listed: one whose upload has not finished was published", n)
	}
	close(hold)
	waitPlaylist(t, p, "0/stream.m3u8", hasSegments(2))
}

func TestBacklogOfALongOutageIsCapped(t *testing.T) {
	p, dir := newPackager(t)
	// Room for four of the test's segments.
	p.limits.maxBacklog = int64(4 * len(segmentBody(0, 10)))
	remote := newFakeRemote()
	remote.set(true)
	b := p.Begin(context.Background(), Options{PlaylistSegments: 2, Remote: remote})
	f := &fakeFFmpeg{t: t, base: b.NextRunURL(), pdt: time.Now()}
	for i := range 30 {
		f.send(0, i)
	}
	b.End(context.Background())
	eventually(t, "expired segments given up at the cap", func() bool {
		st := p.StorageStatus()
		return st.Dropped > 0 && st.BacklogBytes <= p.limits.maxBacklog+int64(2*2*len(segmentBody(0, 10)))
	})
	// What is left on disk: the backlog under its cap, and the segments
	// still in the playlist or its retention.
	eventually(t, "the given-up segments removed from disk", func() bool {
		files, _ := filepath.Glob(filepath.Join(dir, "0", "seg-*.ts"))
		return len(files) <= 4+2*2
	})
	if st := p.StorageStatus(); !st.Down || st.Deferred != 30 {
		t.Errorf("status: %+v", st)
	}
}

// delay holds every Put of f until d from now.
func (f *fakeRemote) delay(d time.Duration) {
	hold := make(chan struct{})
	f.setHold(hold)
	go func() {
		time.Sleep(d)
		close(hold)
	}()
}

func TestHangingBucketFallsBackOnceForAllUploadsInFlight(t *testing.T) {
	p, _ := newPackager(t)
	p.limits.segmentWait = 200 * time.Millisecond
	remote := newFakeRemote()
	b := p.Begin(context.Background(), Options{PlaylistSegments: 5, Remote: remote})
	f := &fakeFFmpeg{t: t, base: b.NextRunURL(), pdt: time.Now()}
	f.send(0, 0)
	waitPlaylist(t, p, "0/stream.m3u8", hasSegments(1))

	// The bucket hangs: every upload waits until the test ends.
	hang := make(chan struct{})
	defer close(hang)
	remote.setHold(hang)
	for i := 1; i <= 3; i++ {
		f.send(0, i)
	}
	// The first upload to miss its deadline marks the bucket down and
	// sends the others in flight to local disk at once, rather than each
	// waiting out a deadline of its own behind it.
	pl := waitPlaylist(t, p, "0/stream.m3u8", hasSegments(4))
	for _, s := range pl.GetAllSegments()[1:] {
		if strings.HasPrefix(s.URI, "https://") {
			t.Errorf("%s listed from the hanging bucket", s.URI)
		}
	}
	if st := p.StorageStatus(); !st.Down || st.Deferred != 3 {
		t.Errorf("status: %+v", st)
	}
}

func TestSlowBucketStaysDownUntilItKeepsUp(t *testing.T) {
	p, _ := newPackager(t)
	p.limits.maxBackoff = 10 * time.Millisecond
	// A segment may wait 100 ms for its upload; the bucket takes 300 ms:
	// it answers, but a live edge waiting for it would fall ever further
	// behind.
	p.limits.segmentWait = 100 * time.Millisecond
	remote := newFakeRemote()
	b := p.Begin(context.Background(), Options{PlaylistSegments: 3, Remote: remote})
	f := &fakeFFmpeg{t: t, base: b.NextRunURL(), pdt: time.Now()}
	remote.delay(300 * time.Millisecond)
	f.send(0, 0)
	pl := waitPlaylist(t, p, "0/stream.m3u8", hasSegments(1))
	if strings.HasPrefix(lastURI(pl), "https://") {
		t.Fatalf("%s listed from a bucket slower than the segment may wait", lastURI(pl))
	}
	// The backlog upload succeeds, slowly: that is not the bucket back.
	eventually(t, "the backlog uploaded", func() bool { return p.StorageStatus().Backlog == 0 })
	if st := p.StorageStatus(); !st.Down || !strings.Contains(st.LastError, "took") {
		t.Errorf("a bucket slower than the segments may wait counts as back: %+v", st)
	}
	// Once it keeps up, it is back.
	remote.setHold(nil)
	f.send(0, 1)
	eventually(t, "the bucket back", func() bool { return !p.StorageStatus().Down })
	f.send(0, 2)
	pl = waitPlaylist(t, p, "0/stream.m3u8", hasSegments(3))
	if !strings.HasPrefix(lastURI(pl), "https://") {
		t.Errorf("%s: the bucket keeps up again, yet segments stay local", lastURI(pl))
	}
}
