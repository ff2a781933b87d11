// Package hls publishes the HLS stream viewers play (RFC 8216).
//
// ffmpeg PUTs its segments and playlists to the Packager over loopback
// HTTP. The Packager stores each segment once it is complete and listed by
// ffmpeg, then writes its own playlists with github.com/grafov/m3u8: a
// stable media sequence that runs on across ffmpeg restarts (marked with
// EXT-X-DISCONTINUITY), EXT-X-PROGRAM-DATE-TIME on every segment, a sliding
// window, and the removal of segments that have left it.
package hls

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grafov/m3u8"
)

// Storage is where the stream is published. Names are slash-separated
// paths relative to the HLS root, such as "0/seg-17.ts".
type Storage interface {
	Put(ctx context.Context, name string, data []byte) error
	Delete(ctx context.Context, names ...string) error
	// Clear removes everything a previous broadcast left.
	Clear(ctx context.Context) error
}

// MasterPlaylist is the name of the master playlist, served at
// /hls/stream.m3u8 (Owncast's path).
const MasterPlaylist = "stream.m3u8"

// Deps are what a Packager needs.
type Deps struct {
	Logger  *slog.Logger
	Storage Storage
	// Now is the clock (time.Now); media sequence numbers derive from it.
	Now func() time.Time
}

// Packager receives ffmpeg's output and publishes the stream.
type Packager struct {
	log     *slog.Logger
	storage Storage
	now     func() time.Time
	// token authenticates ffmpeg's requests. The receiver listens on
	// loopback, where every local process can reach it: only processes of
	// this user get past the listener (ownerListener), and of those only
	// ffmpeg knows the token (a page in a local browser cannot read it).
	token string
	srv   *http.Server
	ln    net.Listener
	serve chan error

	// mu guards the fields below and serialises publishing.
	mu      sync.Mutex
	ids     int
	current *Broadcast
	latest  Segment
	// renditions are the published master playlist's variants; version
	// changes whenever they do.
	renditions []Rendition
	version    uint64
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

// Renditions returns the variants of the published master playlist (none
// while offline) and a version that changes when they do.
func (p *Packager) Renditions() ([]Rendition, uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.renditions, p.version
}

// SegmentHashes is the name of each variant's list of segment SHA-256
// sums, beside its playlist: {"seg-N.ts": "hex", ...} for every segment
// still stored. Viewers check a segment from a peer against it.
const SegmentHashes = "segments.json"

// Segment is a published segment.
type Segment struct {
	// Name is the segment's storage name.
	Name string
	// Data is the segment itself; never modify it.
	Data []byte
}

// New returns a Packager. Start it before use.
func New(d Deps) *Packager {
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Packager{log: d.Logger, storage: d.Storage, now: d.Now, token: rand.Text()}
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

// Close stops the receiver after the requests in flight.
func (p *Packager) Close() error {
	if p.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := p.srv.Shutdown(ctx)
	if serr := <-p.serve; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// Latest returns the newest segment of the first variant, if any.
func (p *Packager) Latest() (Segment, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.latest, p.latest.Data != nil
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
}

// Begin starts publishing a new broadcast, removing the previous one.
func (p *Packager) Begin(ctx context.Context, o Options) *Broadcast {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.storage.Clear(ctx); err != nil {
		p.log.Error("could not remove the previous broadcast's segments", "err", err)
	}
	p.ids++
	b := &Broadcast{
		p:    p,
		id:   p.ids,
		opts: o,
		// Media sequence numbers start at the broadcast's start time in
		// tenths of a second. Segments last at least a second, so numbers
		// never repeat across broadcasts or restarts: segment URLs stay
		// unique for immutable caching, and so do P2P segment ids.
		firstSeq: uint64(p.now().UnixMilli() / 100),
	}
	p.current = b
	p.latest = Segment{}
	p.setRenditions(nil)
	return b
}

// Broadcast is one broadcast's output: one or more ffmpeg runs.
type Broadcast struct {
	p        *Packager
	id       int
	opts     Options
	firstSeq uint64

	// The fields below are guarded by p.mu.
	run      int // newest run that has sent output
	runs     int // runs handed out by NextRunURL
	variants []*variant
	master   *m3u8.MasterPlaylist // ffmpeg's, of the newest run
	written  []byte               // the master playlist as last stored
	ended    bool
}

// variant is one rendition's state.
type variant struct {
	index int
	// ffmpeg's segments of the current run that are not published yet,
	// by ffmpeg's index: bodies that arrived and entries of its playlist.
	// A segment is published when it has both, in index order.
	bodies  map[int][]byte
	listed  map[int]listing
	nextIdx int
	// published playlist state
	window        []*m3u8.MediaSegment // listed, oldest first
	retired       []string             // left the window, still stored
	hashes        map[string]string    // segment URI -> SHA-256 hex, of every stored segment
	nextSeq       uint64
	discSeq       uint64
	target        float64
	discontinuity bool // the next segment starts a new ffmpeg run
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

// End closes the playlists with EXT-X-ENDLIST, so players stop at the last
// segment, and withdraws the master playlist, so new players see the
// stream is offline.
func (b *Broadcast) End(ctx context.Context) {
	p := b.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if b.ended {
		return
	}
	b.ended = true
	if p.current == b {
		p.current = nil
	}
	for _, v := range b.variants {
		if len(v.window) > 0 {
			b.writePlaylist(ctx, v, true)
		}
	}
	if b.written != nil {
		if err := p.storage.Delete(ctx, MasterPlaylist); err != nil {
			p.log.Error("could not withdraw the master playlist", "err", err)
		}
		p.setRenditions(nil)
	}
}

func (p *Packager) setRenditions(rs []Rendition) {
	p.renditions = rs
	p.version++
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
// /TOKEN/BROADCAST-RUN/V/seg-N.ts.
func (p *Packager) receive(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(parts) < 3 || subtle.ConstantTimeCompare([]byte(parts[0]), []byte(p.token)) != 1 {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	switch r.Method {
	case http.MethodPut:
	case http.MethodDelete:
		// Starling removes old segments itself.
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		// ffmpeg was stopped mid-upload: there is nothing to publish.
		p.log.Debug("incomplete upload from ffmpeg", "path", p.Redact(r.URL.Path), "err", err)
		http.Error(w, "incomplete body", http.StatusBadRequest)
		return
	}
	if err := p.accept(r.Context(), parts[1], parts[2:], body); err != nil {
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

func (p *Packager) accept(ctx context.Context, runID string, rest []string, body []byte) error {
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
	if b == nil || b.id != bid || run < b.run {
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
		b.writeMaster(ctx)
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
		b.publish(ctx, v)
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
	b.publish(ctx, v)
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
		v.discontinuity = len(v.window) > 0
	}
}

func (b *Broadcast) variant(i int) *variant {
	for len(b.variants) <= i {
		b.variants = append(b.variants, &variant{
			index:   len(b.variants),
			bodies:  map[int][]byte{},
			listed:  map[int]listing{},
			hashes:  map[string]string{},
			nextSeq: b.firstSeq,
		})
	}
	return b.variants[i]
}

// publish stores, in order, the segments that are both complete and listed,
// then rewrites the playlist. A segment is always stored before a playlist
// names it.
func (b *Broadcast) publish(ctx context.Context, v *variant) {
	p := b.p
	published := false
	for {
		l, listed := v.listed[v.nextIdx]
		data, complete := v.bodies[v.nextIdx]
		if !listed || !complete {
			break
		}
		delete(v.listed, v.nextIdx)
		delete(v.bodies, v.nextIdx)
		v.nextIdx++

		seq := v.nextSeq
		v.nextSeq++
		uri := fmt.Sprintf("seg-%d.ts", seq)
		name := fmt.Sprintf("%d/%s", v.index, uri)
		if err := p.storage.Put(ctx, name, data); err != nil {
			// Viewers skip the gap; the stream goes on.
			p.log.Error("could not store a segment; viewers will skip it (is the disk full?)", "segment", name, "err", err)
			v.discontinuity = true
			continue
		}
		sum := sha256.Sum256(data)
		v.hashes[uri] = hex.EncodeToString(sum[:])
		pdt := l.pdt
		if pdt.IsZero() {
			pdt = p.now().Add(-time.Duration(l.duration * float64(time.Second)))
		}
		v.window = append(v.window, &m3u8.MediaSegment{
			URI:             uri,
			Duration:        l.duration,
			ProgramDateTime: pdt.UTC(),
			Discontinuity:   v.discontinuity,
		})
		v.discontinuity = false
		v.target = max(v.target, math.Ceil(l.duration))
		if v.index == 0 {
			p.latest = Segment{Name: name, Data: data}
		}
		published = true
	}
	if !published {
		return
	}
	for len(v.window) > b.opts.PlaylistSegments {
		old := v.window[0]
		v.window = v.window[1:]
		if old.Discontinuity {
			v.discSeq++
		}
		v.retired = append(v.retired, fmt.Sprintf("%d/%s", v.index, old.URI))
	}
	for len(v.retired) > b.opts.PlaylistSegments {
		if err := p.storage.Delete(ctx, v.retired[0]); err != nil {
			p.log.Warn("could not remove an old segment", "segment", v.retired[0], "err", err)
		}
		delete(v.hashes, path.Base(v.retired[0]))
		v.retired = v.retired[1:]
	}
	// The hashes go out before the playlist naming the new segment: a
	// viewer never meets a segment it cannot check.
	b.writeHashes(ctx, v)
	b.writePlaylist(ctx, v, false)
	b.writeMaster(ctx)
}

// writeHashes stores v's list of segment hashes.
func (b *Broadcast) writeHashes(ctx context.Context, v *variant) {
	raw, err := json.Marshal(v.hashes)
	if err != nil {
		b.p.log.Error("could not encode segment hashes", "err", err)
		return
	}
	name := fmt.Sprintf("%d/%s", v.index, SegmentHashes)
	if err := b.p.storage.Put(ctx, name, raw); err != nil {
		b.p.log.Error("could not store segment hashes", "list", name, "err", err)
	}
}

// writePlaylist stores v's media playlist.
func (b *Broadcast) writePlaylist(ctx context.Context, v *variant, closed bool) {
	pl, err := m3u8.NewMediaPlaylist(0, uint(len(v.window)))
	if err != nil {
		b.p.log.Error("could not build a playlist", "err", err)
		return
	}
	pl.SeqNo = v.nextSeq - uint64(len(v.window))
	pl.DiscontinuitySeq = v.discSeq
	pl.TargetDuration = v.target
	for _, s := range v.window {
		c := *s // AppendSegment writes SeqId
		if err := pl.AppendSegment(&c); err != nil {
			b.p.log.Error("could not build a playlist", "err", err)
			return
		}
	}
	if closed {
		pl.Close()
	}
	name := fmt.Sprintf("%d/%s", v.index, MasterPlaylist)
	if err := b.p.storage.Put(ctx, name, pl.Encode().Bytes()); err != nil {
		b.p.log.Error("could not store a playlist", "playlist", name, "err", err)
	}
}

// writeMaster stores the master playlist once every variant it lists has a
// media playlist, so a player never follows a link to nothing.
func (b *Broadcast) writeMaster(ctx context.Context) {
	if b.master == nil || len(b.master.Variants) == 0 {
		return
	}
	m := m3u8.NewMasterPlaylist()
	m.SetIndependentSegments(true)
	var rs []Rendition
	for i, fv := range b.master.Variants {
		if i >= len(b.variants) || len(b.variants[i].window) == 0 {
			return
		}
		params := fv.VariantParams
		if i < len(b.opts.Bandwidths) && b.opts.Bandwidths[i] > 0 {
			params.Bandwidth = uint32(b.opts.Bandwidths[i])
		}
		m.Append(fmt.Sprintf("%d/%s", i, MasterPlaylist), nil, params)
		r := Rendition{Bandwidth: int(params.Bandwidth), Codecs: params.Codecs}
		fmt.Sscanf(params.Resolution, "%dx%d", &r.Width, &r.Height)
		rs = append(rs, r)
	}
	raw := m.Encode().Bytes()
	if bytes.Equal(raw, b.written) {
		return
	}
	if err := b.p.storage.Put(ctx, MasterPlaylist, raw); err != nil {
		b.p.log.Error("could not store the master playlist", "err", err)
		return
	}
	b.written = bytes.Clone(raw)
	b.p.setRenditions(rs)
}
