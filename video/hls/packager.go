// Package hls publishes the HLS stream viewers play (RFC 8216).
//
// ffmpeg PUTs its segments and playlists to the Packager over loopback
// HTTP. The Packager stores each segment once it is complete and listed by
// ffmpeg, then publishes its own playlists, built with
// github.com/grafov/m3u8: a stable media sequence that runs on across
// ffmpeg restarts (marked with EXT-X-DISCONTINUITY),
// EXT-X-PROGRAM-DATE-TIME on every segment, a sliding window, and the
// removal of segments that have left it.
//
// Segments go to storage: the local disk, from which the Packager serves
// them itself, or a remote store such as an S3 bucket, from which viewers
// fetch them (store.go). Playlists and hash lists change with every segment
// and are served from memory (handler.go).
package hls

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafov/m3u8"
)

// Storage is where segments are stored. Names are slash-separated paths
// relative to the HLS root, such as "0/seg-17.ts".
type Storage interface {
	Put(ctx context.Context, name string, data []byte) error
	// Delete removes the named objects; a missing one is not an error.
	Delete(ctx context.Context, names ...string) error
	// Clear removes everything a previous broadcast left.
	Clear(ctx context.Context) error
}

// Remote is a storage viewers fetch segments from directly: a bucket,
// usually behind a CDN.
type Remote interface {
	Storage
	// URL is where viewers fetch name.
	URL(name string) string
}

// Listener learns what the Packager publishes. Its methods run on the
// Packager's goroutines: they must return at once.
type Listener interface {
	// SegmentPublished is called once a segment has joined its playlist,
	// in order within each rendition.
	SegmentPublished(Segment)
	// RenditionsChanged is called when the master playlist's variants
	// change; a call may arrive after a newer one (compare Version).
	RenditionsChanged(Renditions)
}

// StillListener is a Listener that also takes the stills of the stream
// that ffmpeg makes beside its segments (video/transcode's
// ThumbnailSeconds): JPEG pictures of the current broadcast, each newer
// than the last. StillPublished runs on the Packager's goroutines: it
// must return at once, and never modify the picture.
type StillListener interface {
	Listener
	StillPublished(jpeg []byte)
}

// Still is the name, in an ffmpeg run's directory, of the still it POSTs.
const Still = "thumbnail.jpg"

// maxStill bounds a still: a 720-line JPEG is about 100 KB.
const maxStill = 8 << 20

// MasterPlaylist is the name of the master playlist, served at
// /hls/stream.m3u8 (Owncast's path).
const MasterPlaylist = "stream.m3u8"

// Deps are what a Packager needs.
type Deps struct {
	Logger *slog.Logger
	// Storage is the local disk. Segments of a broadcast without a
	// remote store go there, and so do those of one whose remote store is
	// failing: viewers then fetch them from this server.
	Storage Storage
	// Files are Storage's files, read to serve segments.
	Files fs.FS
	// Now is the clock (time.Now); media sequence numbers derive from it.
	Now func() time.Time
	// MaxBacklogBytes caps the segments kept on local disk for a remote
	// store that is down, once they have left the playlists (1 GiB).
	MaxBacklogBytes int64
	// UploadTimeout bounds one upload to a remote store (10 s).
	UploadTimeout time.Duration
}

// Packager receives ffmpeg's output and publishes the stream.
type Packager struct {
	log     *slog.Logger
	storage Storage
	files   fs.FS
	now     func() time.Time
	limits  limits
	// token authenticates ffmpeg's requests. The receiver listens on
	// loopback, where every local process can reach it: only processes of
	// this user get past the listener (ownerListener), and of those only
	// ffmpeg knows the token (a page in a local browser cannot read it).
	token string
	srv   *http.Server
	ln    net.Listener
	serve chan error
	// listeners are added before Start and read-only after; stills are
	// those of them that take stills.
	listeners []Listener
	stills    []StillListener

	// published are the playlists and hash lists viewers get, replaced
	// whole on every change, so that serving them takes no lock.
	published atomic.Pointer[map[string]*memFile]
	// changed is closed, and replaced, after every change to published:
	// blocking playlist reloads wait on it.
	changed atomic.Pointer[chan struct{}]
	// blocked counts the playlist requests waiting now.
	blocked atomic.Int32
	// onAir is set from Begin to End: playlists not out yet are coming.
	onAir atomic.Bool
	// renditions are the published master playlist's variants.
	renditions atomic.Pointer[Renditions]
	// wg counts every broadcast's publishers, stores and uploaders.
	wg sync.WaitGroup

	// mu guards the fields below and every Broadcast's state. Storage is
	// never written under it: a slow disk or bucket holds up the
	// publication of its own segments, nothing else.
	mu      sync.Mutex
	ids     int
	version uint64
	closed  bool
	current *Broadcast
	// sink uploads the current broadcast's segments to its remote store;
	// nil without one. The previous broadcast's is finished by Begin.
	sink *sink
}

type limits struct {
	maxBacklog    int64
	uploadTimeout time.Duration
	// maxBackoff is the longest wait between tries of a failing remote
	// store (30 s).
	maxBackoff time.Duration
	// segmentWait, if set, replaces the deadline of a segment's upload,
	// which derives from its length (tests).
	segmentWait time.Duration
}

// Rendition is a variant as the published master playlist announces it.
// Viewers' P2P swarms derive from it, so the tracker accepts exactly the
// swarms of these.
type Rendition struct {
	Bandwidth int    // BANDWIDTH, bit/s
	Codecs    string // CODECS
	Width     int    // RESOLUTION
	Height    int
}

// Renditions are the variants of the published master playlist (none
// while offline), with a version that grows whenever they change.
type Renditions struct {
	List    []Rendition
	Version uint64
}

// Renditions returns the published variants. It takes no lock.
func (p *Packager) Renditions() Renditions {
	if r := p.renditions.Load(); r != nil {
		return *r
	}
	return Renditions{}
}

// SegmentHashes is the name of each variant's list of segment SHA-256
// sums, beside its playlist: {"seg-N.ts": "hex", ...} for every segment
// still stored. Viewers check a segment from a peer against it.
const SegmentHashes = "segments.json"

// Segment is a published segment.
type Segment struct {
	// Rendition is the index of its variant.
	Rendition int
	// Name is the segment's storage name; URI is what its playlist names.
	Name, URI string
	// Data is the segment itself; never modify it.
	Data []byte
}

// New returns a Packager. Add its listeners, then Start it.
func New(d Deps) *Packager {
	if d.Now == nil {
		d.Now = time.Now
	}
	l := limits{maxBacklog: d.MaxBacklogBytes, uploadTimeout: d.UploadTimeout, maxBackoff: 30 * time.Second}
	if l.maxBacklog == 0 {
		l.maxBacklog = 1 << 30
	}
	if l.uploadTimeout == 0 {
		l.uploadTimeout = 10 * time.Second
	}
	p := &Packager{log: d.Logger, storage: d.Storage, files: d.Files, now: d.Now, limits: l, token: rand.Text()}
	p.published.Store(&map[string]*memFile{})
	changed := make(chan struct{})
	p.changed.Store(&changed)
	return p
}

// AddListener adds l; call it before Start.
func (p *Packager) AddListener(l Listener) {
	p.listeners = append(p.listeners, l)
	if sl, ok := l.(StillListener); ok {
		p.stills = append(p.stills, sl)
	}
}

// Start clears what an earlier run left in storage and starts the receiver
// on a loopback port.
func (p *Packager) Start(ctx context.Context) error {
	if err := p.storage.Clear(ctx); err != nil {
		return fmt.Errorf("clear old HLS output: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for ffmpeg's output: %w", err)
	}
	ln = newOwnerListener(ln, p.log)
	p.ln = ln
	p.srv = &http.Server{Handler: http.HandlerFunc(p.receive), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelDebug)}
	p.serve = make(chan error, 1)
	go func() { p.serve <- p.srv.Serve(ln) }()
	return nil
}

// Redact hides the token in s (an ffmpeg command line, or ffmpeg's
// complaint about a URL), for logging.
func (p *Packager) Redact(s string) string { return strings.ReplaceAll(s, p.token, "TOKEN") }

// Close stops the receiver after the requests in flight, then lets the
// segments it took reach storage and stops the uploads.
func (p *Packager) Close() error {
	var err error
	if p.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = p.srv.Shutdown(ctx)
		if serr := <-p.serve; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
	}
	p.mu.Lock()
	p.closed = true
	b, s := p.current, p.sink
	if b != nil {
		b.stop()
	}
	p.mu.Unlock()
	if s != nil {
		// What is still waiting for the bucket stays on disk, and is
		// cleared with the rest at the next start.
		s.finish(false)
	}
	p.wg.Wait()
	return err
}

// Options shape a broadcast's playlists.
type Options struct {
	// PlaylistSegments is how many segments each media playlist lists.
	// Segments that leave the playlist stay in storage for as many again,
	// for players and peers a little behind the live edge.
	PlaylistSegments int
	// Bandwidths, in bit/s, replace ffmpeg's estimates in the master
	// playlist; a missing or zero entry keeps ffmpeg's.
	Bandwidths []int
	// Remote, if set, is where the broadcast's segments go (see Remote).
	Remote Remote
}

// Begin starts publishing a new broadcast, removing the previous one.
func (p *Packager) Begin(ctx context.Context, o Options) *Broadcast {
	if err := p.storage.Clear(ctx); err != nil {
		p.log.Error("could not remove the previous broadcast's segments", "err", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current != nil {
		p.current.stop()
	}
	prev := p.sink
	p.sink = nil
	if o.Remote != nil {
		p.sink = p.newSink(o.Remote, prev)
	} else if prev != nil {
		p.wg.Go(func() { prev.finish(true) })
	}
	p.ids++
	b := &Broadcast{
		p:    p,
		id:   p.ids,
		opts: o,
		sink: p.sink,
		// Media sequence numbers start at the broadcast's start time in
		// hundredths of a second. Segments last longer than that (the
		// shortest, a run's first ones, 0.1 s), so numbers never repeat
		// across broadcasts or restarts: segment URLs stay unique for
		// immutable caching, and so do P2P segment ids. (2^53, where a
		// page's numbers lose precision, is 2.8 million years away.)
		firstSeq: uint64(p.now().UnixMilli() / 10),
	}
	p.current = b
	p.onAir.Store(true)
	p.replacePublished(map[string]*memFile{})
	p.setRenditions(nil)
	return b
}

// Broadcast is one broadcast's output: one or more ffmpeg runs.
type Broadcast struct {
	p        *Packager
	id       int
	opts     Options
	firstSeq uint64
	sink     *sink // nil without a remote store

	// The fields below are guarded by p.mu.
	run      int // newest run that has sent output
	runs     int // runs handed out by NextRunURL
	variants []*variant
	master   *m3u8.MasterPlaylist // ffmpeg's, of the newest run
	written  []byte               // the master playlist as last published
	// stopped is set when no more segments will be queued: the variants'
	// publishers return once their queues are empty.
	stopped bool
	ended   bool
}

// variant is one rendition's state.
type variant struct {
	index int
	// ffmpeg's segments of the current run that are not queued yet, by
	// ffmpeg's index: bodies that arrived and entries of its playlist.
	// A segment is queued when it has both, in index order.
	bodies  map[int][]byte
	listed  map[int]listing
	nextIdx int
	// queue holds the segments being stored, oldest first; the
	// publisher takes them from the head once stored, so they join the
	// playlist in order. wake tells it there is more; done is closed when
	// it has returned.
	queue []*job
	wake  chan struct{}
	done  chan struct{}
	// slots bounds the segments of this rendition stored at once.
	slots chan struct{}
	// published playlist state
	window  []*m3u8.MediaSegment // listed, oldest first
	retired []string             // left the window, still stored
	hashes  map[string]string    // segment URI -> SHA-256 hex, of every stored segment
	nextSeq uint64
	discSeq uint64
	target  float64
	// newRun is set when the next segment queued starts a new ffmpeg run;
	// lost when the next one published follows a segment that was lost.
	// Either makes it an EXT-X-DISCONTINUITY.
	newRun, lost bool
}

type listing struct {
	duration float64
	pdt      time.Time
}

// NextRunURL returns the URL prefix for the next ffmpeg run.
func (b *Broadcast) NextRunURL() string {
	b.p.mu.Lock()
	defer b.p.mu.Unlock()
	b.runs++
	return fmt.Sprintf("http://%s/%s/%d-%d/", b.p.ln.Addr(), b.p.token, b.id, b.runs)
}

// SetBandwidths replaces the peak bit rates the master playlist announces,
// for the next ffmpeg run, whose variants may differ (see Options).
func (b *Broadcast) SetBandwidths(bw []int) {
	b.p.mu.Lock()
	defer b.p.mu.Unlock()
	b.opts.Bandwidths = bw
}

// End waits for the segments ffmpeg has sent to be published, then closes
// the playlists with EXT-X-ENDLIST, so players stop at the last segment,
// and withdraws the master playlist, so new players see the stream is
// offline.
func (b *Broadcast) End(ctx context.Context) {
	p := b.p
	p.mu.Lock()
	if b.ended {
		p.mu.Unlock()
		return
	}
	b.ended = true
	b.stop()
	variants := b.variants
	p.mu.Unlock()
	for _, v := range variants {
		select {
		case <-v.done:
		case <-ctx.Done():
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current != b {
		return
	}
	p.current = nil
	p.onAir.Store(false)
	for _, v := range b.variants {
		if len(v.window) > 0 {
			b.writePlaylist(v, true)
		}
	}
	if b.written != nil {
		p.unpublish(MasterPlaylist)
		p.setRenditions(nil)
	}
	p.wake() // requests waiting for a playlist that now never comes
}

// stop queues no more segments and lets the publishers return once they
// have published what is queued. p.mu is held.
func (b *Broadcast) stop() {
	if b.stopped {
		return
	}
	b.stopped = true
	for _, v := range b.variants {
		signal(v.wake)
	}
}

// setRenditions publishes rs under a new version. p.mu is held.
func (p *Packager) setRenditions(rs []Rendition) Renditions {
	p.version++
	r := Renditions{List: rs, Version: p.version}
	p.renditions.Store(&r)
	return r
}

// errStale refuses output of a run or broadcast that has been superseded.
var errStale = errors.New("this output belongs to a finished ffmpeg run")

// errUnknownRun refuses output of a run the packager never handed out: a
// writer other than ffmpeg, which could otherwise jump ahead of the real
// ffmpeg and lock it out.
var errUnknownRun = errors.New("no ffmpeg run has this number")

// maxBody bounds one PUT: a 10 s segment at 50 Mbit/s is 62 MB.
const maxBody = 64 << 20

// receive handles ffmpeg's PUTs:
// /TOKEN/BROADCAST-RUN/stream.m3u8, /TOKEN/BROADCAST-RUN/V/stream.m3u8 and
// /TOKEN/BROADCAST-RUN/V/seg-N.ts, and the POSTs of its stills to
// /TOKEN/BROADCAST-RUN/thumbnail.jpg (ffmpeg's image2 muxer has no choice
// of method).
func (p *Packager) receive(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(parts) < 3 || subtle.ConstantTimeCompare([]byte(parts[0]), []byte(p.token)) != 1 {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	limit := int64(maxBody)
	switch r.Method {
	case http.MethodPut:
	case http.MethodPost:
		if len(parts) != 3 || parts[2] != Still {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		limit = maxStill
	case http.MethodDelete:
		// Starling removes old segments itself.
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		// ffmpeg was stopped mid-upload: there is nothing to publish.
		p.log.Debug("incomplete upload from ffmpeg", "path", p.Redact(r.URL.Path), "err", err)
		http.Error(w, "incomplete body", http.StatusBadRequest)
		return
	}
	accept := p.accept
	if r.Method == http.MethodPost {
		accept = p.acceptStill
	}
	if err := accept(parts[1], parts[2:], body); err != nil {
		status := http.StatusBadRequest
		switch {
		case errors.Is(err, errStale):
			status = http.StatusGone
		case errors.Is(err, errUnknownRun):
			status = http.StatusForbidden
			p.log.Warn("refused output for a run that was never started: is something else writing to the packager?", "remote", r.RemoteAddr)
		}
		p.log.Debug("output from ffmpeg refused", "path", p.Redact(r.URL.Path), "err", err)
		http.Error(w, err.Error(), status)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func (p *Packager) accept(runID string, rest []string, body []byte) error {
	bid, run, err := parseRunID(runID)
	if err != nil {
		return err
	}
	var (
		idx      = -1 // variant index; -1 for the master playlist
		file     string
		playlist m3u8.Playlist
	)
	switch len(rest) {
	case 1:
		file = rest[0]
	case 2:
		if idx, err = strconv.Atoi(rest[0]); err != nil || idx < 0 || idx > 63 {
			return fmt.Errorf("bad variant %q", rest[0])
		}
		file = rest[1]
	default:
		return fmt.Errorf("unexpected path")
	}
	if path.Ext(file) == ".m3u8" {
		// Decode before taking the lock: it is the costly part.
		pl, _, err := m3u8.DecodeFrom(bytes.NewReader(body), false)
		if err != nil {
			return fmt.Errorf("bad playlist from ffmpeg: %w", err)
		}
		playlist = pl
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.current
	if b == nil || b.id != bid || run < b.run || b.stopped {
		return errStale
	}
	if run > b.runs {
		return errUnknownRun
	}
	if run > b.run {
		b.newRun(run)
	}
	switch pl := playlist.(type) {
	case *m3u8.MasterPlaylist:
		if idx != -1 {
			return errors.New("master playlist in a variant directory")
		}
		b.master = pl
		if r, changed := b.writeMaster(); changed {
			p.wg.Go(func() { p.renditionsChanged(r) })
		}
		return nil
	case *m3u8.MediaPlaylist:
		if idx == -1 {
			return errors.New("media playlist outside a variant directory")
		}
		v := b.variant(idx)
		for _, s := range pl.GetAllSegments() {
			if n, ok := segmentIndex(s.URI); ok && n >= v.nextIdx {
				v.listed[n] = listing{duration: s.Duration, pdt: s.ProgramDateTime}
			}
		}
		b.enqueue(v)
		return nil
	}
	n, ok := segmentIndex(file)
	if idx == -1 || !ok {
		return fmt.Errorf("unexpected file %q", file)
	}
	v := b.variant(idx)
	if n >= v.nextIdx {
		v.bodies[n] = body
	}
	b.enqueue(v)
	return nil
}

// acceptStill hands a still of the current run to the listeners.
func (p *Packager) acceptStill(runID string, _ []string, body []byte) error {
	bid, run, err := parseRunID(runID)
	if err != nil {
		return err
	}
	// SOI, then a marker: anything else is not a JPEG.
	if len(body) < 4 || body[0] != 0xff || body[1] != 0xd8 || body[2] != 0xff {
		return errors.New("the still is not a JPEG")
	}
	p.mu.Lock()
	b := p.current
	switch {
	case b == nil || b.id != bid || run < b.run || b.stopped:
		err = errStale
	case run > b.runs:
		err = errUnknownRun
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	for _, l := range p.stills {
		l.StillPublished(body)
	}
	return nil
}

func parseRunID(s string) (broadcast, run int, err error) {
	a, c, ok := strings.Cut(s, "-")
	if ok {
		if broadcast, err = strconv.Atoi(a); err == nil {
			run, err = strconv.Atoi(c)
		}
	}
	if !ok || err != nil {
		return 0, 0, fmt.Errorf("bad run id %q", s)
	}
	return broadcast, run, nil
}

// segmentIndex parses ffmpeg's segment names, "seg-N.ts".
func segmentIndex(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "seg-")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, ".ts")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}

// newRun starts taking output from a restarted ffmpeg, whose segment
// numbers start again from zero.
func (b *Broadcast) newRun(run int) {
	b.run = run
	for _, v := range b.variants {
		v.bodies, v.listed, v.nextIdx = map[int][]byte{}, map[int]listing{}, 0
		v.newRun = v.newRun || v.nextSeq > b.firstSeq
	}
}

// segmentsInFlight bounds how many segments of one rendition are stored
// at once: a slow bucket takes the next segment while the last is still
// uploading, and publication stays in order.
const segmentsInFlight = 3

// variant returns variant i, starting the publishers of the variants it
// adds. p.mu is held.
func (b *Broadcast) variant(i int) *variant {
	for len(b.variants) <= i {
		v := &variant{
			index:   len(b.variants),
			bodies:  map[int][]byte{},
			listed:  map[int]listing{},
			hashes:  map[string]string{},
			nextSeq: b.firstSeq,
			wake:    make(chan struct{}, 1),
			done:    make(chan struct{}),
			slots:   make(chan struct{}, segmentsInFlight),
		}
		b.variants = append(b.variants, v)
		b.p.wg.Go(func() { b.publisher(v) })
	}
	return b.variants[i]
}

// signal wakes the goroutine waiting on c, if it is not awake already.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
