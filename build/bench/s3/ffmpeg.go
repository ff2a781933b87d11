package main

// This file is shared with the driver of the old design (before_main.go):
// it must build against the tree at the commit before the seam too.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// fakeFFmpeg PUTs to the packager what ffmpeg's HLS muxer does with one
// output and several variant streams: the master playlist once, then for
// each segment of each rendition in turn the segment and the rendition's
// playlist naming it, one request after the other (ffmpeg's muxer waits
// for each), with a window of four segments.
type fakeFFmpeg struct {
	base   string
	client *http.Client
	sizes  []int // segment bytes, by rendition
	kbps   []int
	segDur time.Duration
	pdt    time.Time

	// mu guards the fields below, written by the request goroutines.
	mu sync.Mutex
	// done is when the packager had all of a segment: the later of the
	// last byte of its body and the last byte of the playlist that first
	// lists it, as handed to the connection.
	done map[segKey]time.Time
	// puts are the round trips of the PUTs of each segment and its
	// playlist together, by start time.
	puts []timedPut
}

type segKey struct{ v, n int }

type timedPut struct {
	start time.Time
	took  time.Duration // lost if it failed or was cut short
}

// noise fills segments: incompressible, as video is.
var noise = func() []byte {
	b := make([]byte, 8<<20)
	r := rand.NewChaCha8([32]byte{})
	r.Read(b)
	return b
}()

func newFakeFFmpeg(base string, kbps []int, segDur time.Duration) *fakeFFmpeg {
	f := &fakeFFmpeg{
		base:   base,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}},
		kbps:   kbps,
		segDur: segDur,
		pdt:    time.Now(),
		done:   map[segKey]time.Time{},
	}
	for _, k := range kbps {
		f.sizes = append(f.sizes, min(k*1000/8*int(segDur/time.Millisecond)/1000, len(noise)))
	}
	return f
}

func (f *fakeFFmpeg) close() { f.client.CloseIdleConnections() }

// header starts every segment body, so that a listener knows which
// segment it has been given.
const headerFormat = "starling-bench %3d %9d\n"

func segmentBody(v, n, size int) []byte {
	b := make([]byte, size)
	copy(b, noise)
	copy(b, fmt.Sprintf(headerFormat, v, n))
	return b
}

// parseSegment tells which segment data is.
func parseSegment(data []byte) (segKey, bool) {
	var k segKey
	if len(data) < 32 {
		return k, false
	}
	_, err := fmt.Sscanf(string(data[:32]), headerFormat, &k.v, &k.n)
	return k, err == nil
}

// stamped is a request body that notes when its last byte was read.
type stamped struct {
	r    *bytes.Reader
	done func(time.Time)
}

func (s *stamped) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if s.r.Len() == 0 && s.done != nil {
		s.done(time.Now())
		s.done = nil
	}
	return n, err
}

func (f *fakeFFmpeg) put(ctx context.Context, name string, body []byte, done func(time.Time)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, f.base+name, &stamped{r: bytes.NewReader(body), done: done})
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(body))
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("PUT %s: the packager answered %s", name, resp.Status)
	}
	return nil
}

// master PUTs the master playlist: every rendition 16:9, H.264 and AAC.
func (f *fakeFFmpeg) master(ctx context.Context) error {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:6\n")
	for v, k := range f.kbps {
		w, h := rendition(v)
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,RESOLUTION=%dx%d,CODECS=\"avc1.64001f,mp4a.40.2\"\n%d/stream.m3u8\n\n", k*1000, w, h, v)
	}
	return f.put(ctx, "stream.m3u8", []byte(b.String()), nil)
}

// rendition is the picture size of rendition v: 720p, then 360p, then
// smaller halves.
func rendition(v int) (w, h int) {
	return 1280 >> min(v, 4), 720 >> min(v, 4)
}

func (f *fakeFFmpeg) mark(k segKey, t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.After(f.done[k]) {
		f.done[k] = t
	}
}

// segment PUTs segment n of rendition v, then the playlist naming it.
// The pair's round trip is what holds up ffmpeg's muxer.
func (f *fakeFFmpeg) segment(ctx context.Context, v, n int) error {
	k := segKey{v, n}
	body := segmentBody(v, n, f.sizes[v])
	// A write still waiting when the results are read counts as lost.
	start := time.Now()
	f.mu.Lock()
	i := len(f.puts)
	f.puts = append(f.puts, timedPut{start: start, took: lost})
	f.mu.Unlock()
	if err := f.put(ctx, fmt.Sprintf("%d/seg-%d.ts", v, n), body, func(t time.Time) { f.mark(k, t) }); err != nil {
		return err
	}
	var b strings.Builder
	first := max(0, n-3)
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:%d\n#EXT-X-MEDIA-SEQUENCE:%d\n", int((f.segDur+time.Second-1)/time.Second), first)
	for i := first; i <= n; i++ {
		fmt.Fprintf(&b, "#EXTINF:%.6f,\n#EXT-X-PROGRAM-DATE-TIME:%s\nseg-%d.ts\n", f.segDur.Seconds(),
			f.pdt.Add(time.Duration(i)*f.segDur).Format("2006-01-02T15:04:05.000-0700"), i)
	}
	if err := f.put(ctx, fmt.Sprintf("%d/stream.m3u8", v), []byte(b.String()), func(t time.Time) { f.mark(k, t) }); err != nil {
		return err
	}
	f.mu.Lock()
	f.puts[i].took = time.Since(start)
	f.mu.Unlock()
	return nil
}

// paced sends segments first, first+1, ... of every rendition, one
// every every, as an encoder does in real time (every = the segment
// length) or faster; a PUT that takes longer delays the ones after it,
// as it does ffmpeg. It sends count segments per rendition, or goes on
// until ctx ends (count 0).
func (f *fakeFFmpeg) paced(ctx context.Context, every time.Duration, first, count int) error {
	start := time.Now()
	for i := 0; count == 0 || i < count; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * every)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		for v := range f.sizes {
			if err := f.segment(ctx, v, first+i); err != nil {
				return err
			}
		}
	}
	return nil
}

// putsDuring are the writes (segment and playlist) under way at some time in [from, to):
// one still unanswered counts as lost.
func (f *fakeFFmpeg) putsDuring(from, to time.Time) []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []time.Duration
	for _, p := range f.puts {
		if p.start.Before(to) && (p.took == lost || !p.start.Add(p.took).Before(from)) {
			out = append(out, p.took)
		}
	}
	return out
}
