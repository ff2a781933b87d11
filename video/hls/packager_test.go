package hls

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafov/m3u8"
	"go.uber.org/goleak"

	"github.com/starling-live/starling/storage/local"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newPackager(t *testing.T) (*Packager, string) {
	p, dir, _ := newPackagerClock(t)
	return p, dir
}

func newPackagerClock(t *testing.T) (*Packager, string, *clock) {
	t.Helper()
	c := &clock{t: time.Now()}
	dir := t.TempDir()
	st, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Leftovers of an earlier run must go at start.
	os.WriteFile(filepath.Join(dir, "stale.ts"), []byte("old"), 0o644)
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	p := New(Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Storage: st, Files: root.FS(), Now: c.now})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if _, err := os.Stat(filepath.Join(dir, "stale.ts")); !os.IsNotExist(err) {
		t.Errorf("Start left an old file in place: %v", err)
	}
	return p, dir, c
}

// fakeFFmpeg PUTs what ffmpeg's HLS muxer would.
type fakeFFmpeg struct {
	t    *testing.T
	base string
	pdt  time.Time
}

func (f *fakeFFmpeg) put(name string, body []byte) int {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodPut, f.base+name, bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatalf("PUT %s: %v", name, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (f *fakeFFmpeg) segment(v, n int) {
	f.t.Helper()
	if code := f.put(fmt.Sprintf("%d/seg-%d.ts", v, n), segmentBody(v, n)); code != http.StatusCreated {
		f.t.Fatalf("segment PUT answered %d", code)
	}
}

// send PUTs segment n of variant v and then the playlist listing it, as
// ffmpeg does.
func (f *fakeFFmpeg) send(v, n int) {
	f.t.Helper()
	f.segment(v, n)
	f.playlist(v, n, false)
}

// playlist PUTs variant v's playlist listing its segments up to n, as
// ffmpeg does (a window of 4, 2 s each).
func (f *fakeFFmpeg) playlist(v, n int, end bool) {
	f.t.Helper()
	var b strings.Builder
	first := max(0, n-3)
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:%d\n", first)
	for i := first; i <= n; i++ {
		fmt.Fprintf(&b, "#EXTINF:2.000000,\n#EXT-X-PROGRAM-DATE-TIME:%s\nseg-%d.ts\n",
			f.pdt.Add(time.Duration(i)*2*time.Second).Format("2006-01-02T15:04:05.000-0700"), i)
	}
	if end {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	if code := f.put(fmt.Sprintf("%d/stream.m3u8", v), []byte(b.String())); code != http.StatusCreated {
		f.t.Fatalf("playlist PUT answered %d", code)
	}
}

func (f *fakeFFmpeg) master(variants int) {
	f.t.Helper()
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:6\n")
	for v := range variants {
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=75900,RESOLUTION=640x360,CODECS=\"avc1.64001e,mp4a.40.2\"\n%d/stream.m3u8\n\n", v)
	}
	if code := f.put("stream.m3u8", []byte(b.String())); code != http.StatusCreated {
		f.t.Fatalf("master PUT answered %d", code)
	}
}

func segmentBody(v, n int) []byte {
	return []byte(fmt.Sprintf("variant %d segment %d", v, n))
}

// get fetches name from the packager's HLS handler: the status and body.
func get(t *testing.T, p *Packager, name string) (int, []byte) {
	t.Helper()
	// A client already gone: a playlist that is not out yet answers at
	// once instead of being waited for.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return serve(ctx, p, name)
}

// fetch answers a GET of name as a player waiting for it sees it.
func fetch(p *Packager, name string) (int, []byte) {
	return serve(context.Background(), p, name)
}

func serve(ctx context.Context, p *Packager, name string) (int, []byte) {
	w := httptest.NewRecorder()
	// As mounted: the prefix /hls/ stripped.
	http.StripPrefix("/hls/", p).ServeHTTP(w, httptest.NewRequestWithContext(ctx, http.MethodGet, "/hls/"+name, nil))
	return w.Code, w.Body.Bytes()
}

// published reports whether name is served.
func published(t *testing.T, p *Packager, name string) bool {
	code, _ := get(t, p, name)
	return code == http.StatusOK
}

func readPlaylist(t *testing.T, p *Packager, name string) *m3u8.MediaPlaylist {
	t.Helper()
	code, b := get(t, p, name)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", name, code, b)
	}
	pl, typ, err := m3u8.DecodeFrom(bytes.NewReader(b), true)
	if err != nil || typ != m3u8.MEDIA {
		t.Fatalf("%s is not a media playlist (%v):\n%s", name, err, b)
	}
	return pl.(*m3u8.MediaPlaylist)
}

// waitPlaylist polls until the playlist name lists a segment whose URI
// ends in last, and returns it. Segments are published once stored, after
// ffmpeg's PUT has been answered.
func waitPlaylist(t *testing.T, p *Packager, name string, ok func(*m3u8.MediaPlaylist) bool) *m3u8.MediaPlaylist {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if published(t, p, name) {
			if pl := readPlaylist(t, p, name); ok(pl) {
				return pl
			}
		}
		if time.Now().After(deadline) {
			code, b := get(t, p, name)
			t.Fatalf("%s never became what the test waits for: %d\n%s", name, code, b)
		}
		time.Sleep(time.Millisecond)
	}
}

func hasSegments(n int) func(*m3u8.MediaPlaylist) bool {
	return func(pl *m3u8.MediaPlaylist) bool { return len(pl.GetAllSegments()) == n }
}

func TestSegmentIsListedOnlyOnceCompleteAndListedByFFmpeg(t *testing.T) {
	p, _ := newPackager(t)
	b := p.Begin(context.Background(), Options{PlaylistSegments: 3})
	f := &fakeFFmpeg{t: t, base: b.NextRunURL(), pdt: time.Now()}

	// ffmpeg 5.1 may PUT the playlist naming a segment before the
	// segment's own upload has finished.
	f.playlist(0, 0, false)
	if published(t, p, "0/stream.m3u8") {
		t.Fatal("a playlist was published before its segment had arrived")
	}
	f.segment(0, 0)
	pl := waitPlaylist(t, p, "0/stream.m3u8", hasSegments(1))
	segs := pl.GetAllSegments()
	code, got := get(t, p, "0/"+segs[0].URI)
	if code != http.StatusOK || !bytes.Equal(got, segmentBody(0, 0)) {
		t.Fatalf("segment %s: %d %q", segs[0].URI, code, got)
	}
	if segs[0].ProgramDateTime.IsZero() {
		t.Error("segment has no EXT-X-PROGRAM-DATE-TIME")
	}

	// A segment that arrived but is not listed yet is not published.
	f.segment(0, 1)
	if n := len(readPlaylist(t, p, "0/stream.m3u8").GetAllSegments()); n != 1 {
		t.Errorf("an unlisted segment was published (%d segments)", n)
	}
	f.playlist(0, 1, false)
	waitPlaylist(t, p, "0/stream.m3u8", hasSegments(2))
}

func TestMasterWaitsForEveryVariant(t *testing.T) {
	p, _ := newPackager(t)
	b := p.Begin(context.Background(), Options{PlaylistSegments: 3, Bandwidths: []int{2_000_000, 0}})
	f := &fakeFFmpeg{t: t, base: b.NextRunURL(), pdt: time.Now()}

	f.send(0, 0)
	f.master(2)
	waitPlaylist(t, p, "0/stream.m3u8", hasSegments(1))
	if published(t, p, MasterPlaylist) {
		t.Fatal("the master playlist was published before variant 1 had a playlist")
	}
	f.send(1, 0)
	waitPlaylist(t, p, "1/stream.m3u8", hasSegments(1))
	// It goes out just after variant 1's playlist, which a player asking
	// for it at once waits for.
	code, raw := fetch(p, MasterPlaylist)
	if code != http.StatusOK {
		t.Fatalf("no master playlist once every variant had one: %d", code)
	}
	var m m3u8.MasterPlaylist
	if err := m.DecodeFrom(bytes.NewReader(raw), true); err != nil {
		t.Fatal(err)
	}
	if len(m.Variants) != 2 || m.Variants[0].URI != "0/stream.m3u8" || m.Variants[1].URI != "1/stream.m3u8" {
		t.Fatalf("master playlist variants wrong:\n%s", raw)
	}
	if m.Variants[0].Bandwidth != 2_000_000 || m.Variants[1].Bandwidth != 75900 {
		t.Errorf("bandwidths %d, %d: want the configured one, then ffmpeg's", m.Variants[0].Bandwidth, m.Variants[1].Bandwidth)
	}
	if m.Variants[0].Codecs != "avc1.64001e,mp4a.40.2" || m.Variants[0].Resolution != "640x360" {
		t.Errorf("codecs or resolution lost: %+v", m.Variants[0].VariantParams)
	}
	r1 := p.Renditions()
	want := []Rendition{{2_000_000, "avc1.64001e,mp4a.40.2", 640, 360}, {75900, "avc1.64001e,mp4a.40.2", 640, 360}}
	if fmt.Sprint(r1.List) != fmt.Sprint(want) {
		t.Errorf("renditions %+v, want %+v", r1.List, want)
	}
	b.End(context.Background())
	if r2 := p.Renditions(); r2.List != nil || r2.Version <= r1.Version {
		t.Errorf("after the end: renditions %+v, version %d -> %d", r2.List, r1.Version, r2.Version)
	}
}

func TestSequenceRunsOnAcrossRestartsWithDiscontinuity(t *testing.T) {
	p, _ := newPackager(t)
	b := p.Begin(context.Background(), Options{PlaylistSegments: 4})
	run1 := &fakeFFmpeg{t: t, base: b.NextRunURL(), pdt: time.Now()}
	for i := range 2 {
		run1.send(0, i)
	}
	// ffmpeg was restarted: its numbering starts again at 0.
	run2 := &fakeFFmpeg{t: t, base: b.NextRunURL(), pdt: time.Now().Add(5 * time.Second)}
	for i := range 2 {
		run2.send(0, i)
	}
	// The first run's late output is refused.
	if code := run1.put("0/seg-2.ts", []byte("late")); code != http.StatusGone {
		t.Errorf("output of a superseded run answered %d, want 410", code)
	}

	pl := waitPlaylist(t, p, "0/stream.m3u8", hasSegments(4))
	for i, s := range pl.GetAllSegments() {
		if want := fmt.Sprintf("seg-%d.ts", pl.SeqNo+uint64(i)); s.URI != want {
			t.Errorf("segment %d is %s, want %s: the sequence must run on", i, s.URI, want)
		}
		if s.Discontinuity != (i == 2) {
			t.Errorf("segment %d discontinuity = %v", i, s.Discontinuity)
		}
	}
	// Another restart pushes the discontinuity out of the window: the
	// count moves to EXT-X-DISCONTINUITY-SEQUENCE.
	for i := 2; i < 5; i++ {
		run2.send(0, i)
	}
	last := pl.SeqNo + 6
	waitPlaylist(t, p, "0/stream.m3u8", func(pl *m3u8.MediaPlaylist) bool {
		segs := pl.GetAllSegments()
		return segs[len(segs)-1].URI == fmt.Sprintf("seg-%d.ts", last)
	})
	if pl := readPlaylist(t, p, "0/stream.m3u8"); pl.DiscontinuitySeq != 1 {
		t.Errorf("EXT-X-DISCONTINUITY-SEQUENCE = %d, want 1", pl.DiscontinuitySeq)
	}
}

func TestRetentionRemovesOldSegments(t *testing.T) {
	p, dir := newPackager(t)
	b := p.Begin(context.Background(), Options{PlaylistSegments: 3})
	f := &fakeFFmpeg{t: t, base: b.NextRunURL(), pdt: time.Now()}
	for i := range 10 {
		f.send(0, i)
	}
	// End waits for every segment to be published, and for the removals.
	b.End(context.Background())
	pl := readPlaylist(t, p, "0/stream.m3u8")
	if n := len(pl.GetAllSegments()); n != 3 {
		t.Errorf("playlist lists %d segments, want 3", n)
	}
	var files []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Old segments are removed beside publication, not before it.
		files, _ = filepath.Glob(filepath.Join(dir, "0", "seg-*.ts"))
		if len(files) <= 6 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	// 3 listed + 3 retired for players a little behind.
	if len(files) != 6 {
		t.Errorf("%d segment files kept, want 6: %v", len(files), files)
	}
	oldest := fmt.Sprintf("seg-%d.ts", pl.SeqNo-3)
	if _, err := os.Stat(filepath.Join(dir, "0", oldest)); err != nil {
		t.Errorf("retired segment %s is gone too early: %v", oldest, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "0", fmt.Sprintf("seg-%d.ts", pl.SeqNo-4))); !os.IsNotExist(err) {
		t.Errorf("segment past retention still exists")
	}

	// The hash list covers exactly the stored segments, with their SHA-256.
	_, raw := get(t, p, "0/"+SegmentHashes)
	var hashes map[string]string
	if err := json.Unmarshal(raw, &hashes); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	if len(hashes) != len(files) {
		t.Errorf("%d hashes for %d stored segments", len(hashes), len(files))
	}
	for _, f := range files {
		data, _ := os.ReadFile(f)
		sum := sha256.Sum256(data)
		if hashes[filepath.Base(f)] != hex.EncodeToString(sum[:]) {
			t.Errorf("hash of %s is %q", filepath.Base(f), hashes[filepath.Base(f)])
		}
	}
}

// segments records the published segments.
type segments struct {
	mu   sync.Mutex
	segs []Segment
}

func (s *segments) SegmentPublished(seg Segment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.segs = append(s.segs, seg)
}

func (s *segments) RenditionsChanged(Renditions) {}

func (s *segments) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, seg := range s.segs {
		out = append(out, seg.Name)
	}
	return out
}

func TestEndClosesPlaylistsAndWithdrawsMaster(t *testing.T) {
	p, _, clock := newPackagerClock(t)
	b := p.Begin(context.Background(), Options{PlaylistSegments: 3})
	f := &fakeFFmpeg{t: t, base: b.NextRunURL(), pdt: time.Now()}
	f.send(0, 0)
	f.master(1)
	b.End(context.Background())
	pl := readPlaylist(t, p, "0/stream.m3u8")
	if !pl.Closed || len(pl.GetAllSegments()) != 1 {
		t.Errorf("after the end: the playlist must list the segment sent before it and EXT-X-ENDLIST:\n%s", pl)
	}
	if published(t, p, MasterPlaylist) {
		t.Error("the master playlist is still published after the broadcast ended")
	}
	if code := f.put("0/seg-1.ts", []byte("late")); code != http.StatusGone {
		t.Errorf("output after the end answered %d, want 410", code)
	}

	// The next broadcast starts clean, with higher sequence numbers.
	first := pl.SeqNo
	clock.t = clock.t.Add(time.Second) // a broadcast of one 2 s segment lasted at least 1 s
	b2 := p.Begin(context.Background(), Options{PlaylistSegments: 3})
	if published(t, p, "0/stream.m3u8") {
		t.Error("the previous broadcast's playlist survived a new broadcast")
	}
	f2 := &fakeFFmpeg{t: t, base: b2.NextRunURL(), pdt: time.Now()}
	f2.send(0, 0)
	if next := waitPlaylist(t, p, "0/stream.m3u8", hasSegments(1)).SeqNo; next <= first {
		t.Errorf("new broadcast's media sequence %d does not follow the old one's %d", next, first)
	}
}

func TestListenersHearOfSegmentsInOrder(t *testing.T) {
	p, _ := newPackager(t)
	var got segments
	p.AddListener(&got)
	b := p.Begin(context.Background(), Options{PlaylistSegments: 3})
	f := &fakeFFmpeg{t: t, base: b.NextRunURL(), pdt: time.Now()}
	// Bodies arrive out of order; the listing decides.
	for _, i := range []int{1, 0, 3, 2} {
		f.segment(0, i)
	}
	f.playlist(0, 3, false)
	b.End(context.Background())
	pl := readPlaylist(t, p, "0/stream.m3u8")
	var want []string
	for i := range 4 {
		want = append(want, fmt.Sprintf("0/seg-%d.ts", pl.SeqNo-1+uint64(i)))
	}
	if fmt.Sprint(got.names()) != fmt.Sprint(want) {
		t.Errorf("published %v, want %v", got.names(), want)
	}
}

func TestReceiverRefusesStrangers(t *testing.T) {
	p, _ := newPackager(t)
	b := p.Begin(context.Background(), Options{PlaylistSegments: 3})
	base := b.NextRunURL()
	host := base[:strings.Index(base[len("http://"):], "/")+len("http://")]
	for _, tc := range []struct {
		method, url string
		want        int
	}{
		{http.MethodPut, host + "/wrongtoken/1-1/0/seg-0.ts", http.StatusNotFound},
		{http.MethodGet, base + "0/stream.m3u8", http.StatusMethodNotAllowed},
		{http.MethodPut, base + "0/evil.sh", http.StatusBadRequest},
		{http.MethodPut, base + "../../etc/passwd", http.StatusBadRequest},
		{http.MethodPut, base + "0/../../x/seg-0.ts", http.StatusBadRequest},
		{http.MethodPut, base + "0/stream.m3u8", http.StatusBadRequest}, // not a playlist
		{http.MethodDelete, base + "0/seg-0.ts", http.StatusNoContent},
		// ffmpeg PUTs; nothing else writes.
		{http.MethodPost, base + "0/seg-0.ts", http.StatusMethodNotAllowed},
		// Except its stills, which are POSTed, JPEG, and only there.
		{http.MethodPost, base + "thumbnail.jpg", http.StatusBadRequest},
		{http.MethodPut, base + "thumbnail.jpg", http.StatusBadRequest},
		{http.MethodPost, base + "0/thumbnail.jpg", http.StatusMethodNotAllowed},
		{http.MethodPost, base + "../thumbnail.jpg", http.StatusMethodNotAllowed},
		{http.MethodPost, base + "evil.jpg", http.StatusMethodNotAllowed},
		{http.MethodPost, host + "/wrongtoken/1-1/thumbnail.jpg", http.StatusNotFound},
		// A run that was never handed out: with it a writer other than
		// ffmpeg would jump ahead of the real one and lock it out.
		{http.MethodPut, strings.Replace(base, "/1-1/", "/1-2/", 1) + "0/seg-0.ts", http.StatusForbidden},
		{http.MethodPut, strings.Replace(base, "/1-1/", "/1-99/", 1) + "1/seg-3.ts", http.StatusForbidden},
	} {
		req, _ := http.NewRequest(tc.method, tc.url, strings.NewReader("not a playlist"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.url, resp.StatusCode, tc.want)
		}
	}
}

// stills records the stills a StillListener is given.
type stills struct {
	segments
	stillsMu sync.Mutex
	got      [][]byte
}

func (s *stills) StillPublished(jpeg []byte) {
	s.stillsMu.Lock()
	defer s.stillsMu.Unlock()
	s.got = append(s.got, jpeg)
}

func (s *stills) count() int {
	s.stillsMu.Lock()
	defer s.stillsMu.Unlock()
	return len(s.got)
}

func TestStillsReachTheirListeners(t *testing.T) {
	p, _ := newPackager(t)
	var got stills
	p.AddListener(&got)
	b := p.Begin(context.Background(), Options{PlaylistSegments: 3})
	old := b.NextRunURL()
	jpeg := []byte("\xff\xd8\xff\xe0 a picture")
	post := func(url string, body []byte) int {
		t.Helper()
		resp, err := http.Post(url, "image/jpeg", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(old+Still, jpeg); code != http.StatusCreated || got.count() != 1 || !bytes.Equal(got.got[0], jpeg) {
		t.Fatalf("a still of the current run: %d, %d stills", code, got.count())
	}
	// A restarted ffmpeg's stills replace the old run's.
	current := b.NextRunURL()
	if code := post(current+Still, jpeg); code != http.StatusCreated {
		t.Errorf("a still of the new run: %d", code)
	}
	f := &fakeFFmpeg{t: t, base: current, pdt: time.Now()}
	f.segment(0, 0)
	for _, tc := range []struct {
		name string
		url  string
		body []byte
		want int
	}{
		{"the old run's, once the new one has sent output", old + Still, jpeg, http.StatusGone},
		{"a run never handed out", strings.Replace(current, "-2/", "-3/", 1) + Still, jpeg, http.StatusForbidden},
		{"not a JPEG", current + Still, []byte("GIF89a"), http.StatusBadRequest},
		{"empty", current + Still, nil, http.StatusBadRequest},
		{"too big", current + Still, append(slices.Clone(jpeg), make([]byte, maxStill)...), http.StatusBadRequest},
	} {
		if code := post(tc.url, tc.body); code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, code, tc.want)
		}
	}
	b.End(context.Background())
	if code := post(current+Still, jpeg); code != http.StatusGone {
		t.Errorf("a still after the end: %d, want 410", code)
	}
	if n := got.count(); n != 2 {
		t.Errorf("%d stills reached the listener, want 2", n)
	}
}
