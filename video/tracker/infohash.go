package tracker

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/starling-live/starling/video/hls"
)

// InfoHash is the info hash under which p2p-media-loader 2.3.1 announces
// the main stream of a rendition when its swarm id is swarmID, with what
// hls.js 1.7 parses from our master playlist: BANDWIDTH as the bit rate,
// the video codecs of CODECS, RESOLUTION (p2p-media-loader-hlsjs
// src/segment-manager.ts). A rendition without BANDWIDTH counts as having
// no metadata at all.
func InfoHash(swarmID string, r hls.Rendition) string {
	p := StreamProps{Bitrate: int64(r.Bandwidth)}
	if r.Bandwidth != 0 {
		p.Codecs, p.Width, p.Height = strings.Join(videoCodecs(r.Codecs), ","), r.Width, r.Height
	}
	return SwarmInfoHash(swarmID, StreamMain, StreamShortID(p))
}

// videoCodecs keeps the video codecs of a CODECS attribute, as hls.js
// does for a level's videoCodec.
func videoCodecs(codecs string) []string {
	var out []string
	for _, c := range strings.FieldsFunc(codecs, func(r rune) bool { return r == ',' || r == ' ' }) {
		fourcc, _, _ := strings.Cut(c, ".")
		switch strings.ToLower(fourcc) {
		case "avc1", "avc2", "avc3", "avc4", "avcp", "hev1", "hvc1", "dva1", "dvav", "dvh1", "dvhe", "av01", "vp08", "vp09", "drac", "mp4v", "svc1", "mvc1", "mvc2", "mvc3", "mvc4", "vp8", "vp9", "hevc":
			c, _, _ = strings.Cut(c, "/")
			out = append(out, c)
		}
	}
	return out
}

// Allowlist accepts the info hashes of the renditions the stream
// publishes now, as viewers with swarm id SwarmID derive them. It hears of
// the renditions as an hls.Listener, so the announce path only loads a
// pointer.
type Allowlist struct {
	swarmID string
	hashes  atomic.Pointer[allowed]
	// mu orders updates: a late one for older renditions is dropped.
	mu sync.Mutex
}

type allowed struct {
	version uint64
	hashes  map[string]bool
}

var _ hls.Listener = (*Allowlist)(nil)

// NewAllowlist returns an Allowlist that accepts nothing until the first
// renditions are published.
func NewAllowlist(swarmID string) *Allowlist {
	return &Allowlist{swarmID: swarmID}
}

// Allowed reports whether infoHash is one of the live stream's.
func (a *Allowlist) Allowed(infoHash string) bool {
	cur := a.hashes.Load()
	return cur != nil && cur.hashes[infoHash]
}

// RenditionsChanged takes the newly published renditions.
func (a *Allowlist) RenditionsChanged(rs hls.Renditions) {
	next := &allowed{version: rs.Version, hashes: make(map[string]bool, len(rs.List))}
	for _, r := range rs.List {
		next.hashes[InfoHash(a.swarmID, r)] = true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur := a.hashes.Load(); cur == nil || cur.version < rs.Version {
		a.hashes.Store(next)
	}
}

// SegmentPublished is of no interest to the allowlist.
func (a *Allowlist) SegmentPublished(hls.Segment) {}
