package tracker

import (
	"strings"
	"sync"

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

type renditionSource interface {
	Renditions() ([]hls.Rendition, uint64)
}

// Allowlist accepts the info hashes of the renditions the stream
// publishes now, as viewers with swarm id SwarmID derive them.
type Allowlist struct {
	swarmID string
	src     renditionSource

	// mu guards the cache of the hashes of one version of the renditions.
	mu      sync.Mutex
	version uint64
	hashes  map[string]bool
}

// NewAllowlist returns an Allowlist over src's renditions.
func NewAllowlist(swarmID string, src renditionSource) *Allowlist {
	return &Allowlist{swarmID: swarmID, src: src}
}

// Allowed reports whether infoHash is one of the live stream's.
func (a *Allowlist) Allowed(infoHash string) bool {
	rs, v := a.src.Renditions()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.hashes == nil || v != a.version {
		a.hashes = make(map[string]bool, len(rs))
		for _, r := range rs {
			a.hashes[InfoHash(a.swarmID, r)] = true
		}
		a.version = v
	}
	return a.hashes[infoHash]
}
