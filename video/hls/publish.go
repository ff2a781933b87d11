package hls

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"path"
	"time"

	"github.com/grafov/m3u8"
)

// job is a segment on its way to storage and then to its playlist.
type job struct {
	seq     uint64
	name    string // storage name, "V/seg-SEQ.ts"
	data    []byte
	listing listing
	newRun  bool // the first segment of a new ffmpeg run
	// done is closed once the store has finished; the fields below are
	// set before it is.
	done chan struct{}
	uri  string // what the playlist names: the remote URL, or the name relative to the playlist
	hash string // SHA-256 hex of data
	err  error  // the segment could not be stored anywhere
}

// enqueue queues, in order, the segments that are both complete and
// listed, and starts storing each. p.mu is held.
func (b *Broadcast) enqueue(v *variant) {
	for {
		l, listed := v.listed[v.nextIdx]
		data, complete := v.bodies[v.nextIdx]
		if !listed || !complete {
			return
		}
		delete(v.listed, v.nextIdx)
		delete(v.bodies, v.nextIdx)
		v.nextIdx++

		j := &job{
			seq:     v.nextSeq,
			name:    fmt.Sprintf("%d/seg-%d.ts", v.index, v.nextSeq),
			data:    data,
			listing: l,
			newRun:  v.newRun,
			done:    make(chan struct{}),
		}
		v.newRun = false
		v.nextSeq++
		v.queue = append(v.queue, j)
		signal(v.wake)
		b.p.wg.Go(func() { b.store(v, j) })
	}
}

// store puts j's segment in the broadcast's remote store if it has one
// that works, else on local disk, where it waits for the remote store to
// come back. It runs outside p.mu.
func (b *Broadcast) store(v *variant, j *job) {
	defer close(j.done)
	v.slots <- struct{}{}
	defer func() { <-v.slots }()
	sum := sha256.Sum256(j.data)
	j.hash = hex.EncodeToString(sum[:])
	length := time.Duration(j.listing.duration * float64(time.Second))
	if b.sink != nil && b.sink.upload(j.name, j.data, length) {
		j.uri = b.sink.remote.URL(j.name)
		return
	}
	if err := b.p.storage.Put(context.Background(), j.name, j.data); err != nil {
		j.err = err
		return
	}
	j.uri = path.Base(j.name)
	if b.sink != nil {
		b.sink.defer_(j.name, j.data, length)
	}
}

// publisher adds v's stored segments to its playlist, in order, until the
// broadcast stops and the queue is empty.
func (b *Broadcast) publisher(v *variant) {
	p := b.p
	defer close(v.done)
	for {
		p.mu.Lock()
		for len(v.queue) == 0 {
			if b.stopped {
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
			<-v.wake
			p.mu.Lock()
		}
		j := v.queue[0]
		p.mu.Unlock()

		<-j.done

		p.mu.Lock()
		v.queue = v.queue[1:]
		seg, published := b.publish(v, j)
		r, changed := b.writeMaster()
		p.mu.Unlock()
		if published {
			for _, l := range p.listeners {
				l.SegmentPublished(seg)
			}
		}
		if changed {
			p.renditionsChanged(r)
		}
	}
}

func (p *Packager) renditionsChanged(r Renditions) {
	for _, l := range p.listeners {
		l.RenditionsChanged(r)
	}
}

// publish adds a stored segment to v's playlist, retires the oldest and
// removes what has left retention. p.mu is held.
func (b *Broadcast) publish(v *variant, j *job) (Segment, bool) {
	p := b.p
	if j.err != nil {
		// Viewers skip the gap; the stream goes on. A playlist's media
		// sequence has no holes (RFC 8216 6.2.1), so the segments before
		// the gap leave the playlist.
		p.log.Error("could not store a segment; viewers will skip it (is the disk full?)", "segment", j.name, "err", j.err)
		v.lost = true
		b.retire(v, len(v.window))
		return Segment{}, false
	}
	if p.current != b {
		// A newer broadcast has begun; this one's playlists are gone.
		return Segment{}, false
	}
	pdt := j.listing.pdt
	if pdt.IsZero() {
		pdt = p.now().Add(-time.Duration(j.listing.duration * float64(time.Second)))
	}
	v.hashes[path.Base(j.name)] = j.hash
	v.window = append(v.window, &m3u8.MediaSegment{
		URI:             j.uri,
		Duration:        j.listing.duration,
		ProgramDateTime: pdt.UTC(),
		Discontinuity:   j.newRun || v.lost,
	})
	v.lost = false
	v.target = max(v.target, math.Ceil(j.listing.duration))
	b.retire(v, len(v.window)-b.opts.PlaylistSegments)
	// The hashes go out before the playlist naming the new segment: a
	// viewer never meets a segment it cannot check.
	b.writeHashes(v)
	b.writePlaylist(v, false)
	return Segment{Rendition: v.index, Name: j.name, URI: j.uri, Data: j.data}, true
}

// retire moves the n oldest segments of v's window out of its playlist,
// and removes from storage those that have left retention. p.mu is held.
func (b *Broadcast) retire(v *variant, n int) {
	p := b.p
	for ; n > 0; n-- {
		old := v.window[0]
		v.window = v.window[1:]
		if old.Discontinuity {
			v.discSeq++
		}
		v.retired = append(v.retired, fmt.Sprintf("%d/seg-%d.ts", v.index, seqOf(old)))
	}
	var gone []string
	for len(v.retired) > b.opts.PlaylistSegments {
		gone = append(gone, v.retired[0])
		delete(v.hashes, path.Base(v.retired[0]))
		v.retired = v.retired[1:]
	}
	if len(gone) > 0 {
		if b.sink != nil {
			b.sink.expire(gone...)
		} else {
			p.wg.Go(func() {
				if err := p.storage.Delete(context.Background(), gone...); err != nil {
					p.log.Warn("could not remove old segments", "segments", gone, "err", err)
				}
			})
		}
	}
}

// seqOf is the media sequence number of s, a segment of a window: the
// URI's last element is the storage name's, whatever the URI's base.
func seqOf(s *m3u8.MediaSegment) uint64 {
	var n uint64
	fmt.Sscanf(path.Base(s.URI), "seg-%d.ts", &n)
	return n
}

// writeHashes publishes v's list of segment hashes. p.mu is held.
func (b *Broadcast) writeHashes(v *variant) {
	raw, err := json.Marshal(v.hashes)
	if err != nil {
		b.p.log.Error("could not encode segment hashes", "err", err)
		return
	}
	b.p.publishFile(fmt.Sprintf("%d/%s", v.index, SegmentHashes), raw, nil)
}

// writePlaylist publishes v's media playlist. p.mu is held.
func (b *Broadcast) writePlaylist(v *variant, closed bool) {
	pl, err := m3u8.NewMediaPlaylist(0, uint(len(v.window)))
	if err != nil {
		b.p.log.Error("could not build a playlist", "err", err)
		return
	}
	pl.SeqNo = seqOf(v.window[0])
	pl.DiscontinuitySeq = v.discSeq
	pl.TargetDuration = v.target
	for _, s := range v.window {
		c := *s // AppendSegment writes SeqId
		if err := pl.AppendSegment(&c); err != nil {
			b.p.log.Error("could not build a playlist", "err", err)
			return
		}
	}
	var edge *liveEdge
	if closed {
		pl.Close()
	} else {
		pl.SetCustomTag(canBlockReload{})
		edge = &liveEdge{next: seqOf(v.window[len(v.window)-1]) + 1, hold: time.Duration(3 * v.target * float64(time.Second))}
	}
	b.p.publishFile(fmt.Sprintf("%d/%s", v.index, MasterPlaylist), pl.Encode().Bytes(), edge)
}

// writeMaster publishes the master playlist once every variant it lists
// has a media playlist, so a player never follows a link to nothing. It
// reports the renditions when they changed. p.mu is held.
func (b *Broadcast) writeMaster() (Renditions, bool) {
	if b.master == nil || len(b.master.Variants) == 0 || b.p.current != b {
		return Renditions{}, false
	}
	m := m3u8.NewMasterPlaylist()
	m.SetIndependentSegments(true)
	var rs []Rendition
	for i, fv := range b.master.Variants {
		if i >= len(b.variants) || len(b.variants[i].window) == 0 {
			return Renditions{}, false
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
		return Renditions{}, false
	}
	b.p.publishFile(MasterPlaylist, raw, nil)
	b.written = bytes.Clone(raw)
	return b.p.setRenditions(rs), true
}

// canBlockReload is the playlist tag that tells players they may ask for
// the next segment before it exists (Packager.await).
type canBlockReload struct{}

func (canBlockReload) TagName() string { return "#EXT-X-SERVER-CONTROL:" }
func (canBlockReload) String() string  { return "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES" }
func (t canBlockReload) Encode() *bytes.Buffer {
	return bytes.NewBufferString(t.String())
}
