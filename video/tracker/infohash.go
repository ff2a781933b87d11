package tracker

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/starling-live/starling/video/hls"
)

// InfoHash is the info hash under which p2p-media-loader 2.3.1 announces
// the main stream of a rendition when its swarm id is swarmID
// (p2p-media-loader-core src/utils/peer.ts getStreamHash and
// src/utils/stream.ts getStreamSwarmId; the hls.js engine derives the
// stream index in p2p-media-loader-hlsjs src/segment-manager.ts).
func InfoHash(swarmID string, r hls.Rendition) string {
	streamSwarmID := "v2-" + swarmID + "-main-" + StreamShortID(r)
	sum := sha1.Sum([]byte(streamSwarmID))
	return base64.StdEncoding.EncodeToString(sum[:15])
}

// StreamShortID is generateStreamShortId of p2p-media-loader-core 2.3.1
// for a main stream, with what hls.js 1.7 parses from the master playlist:
// BANDWIDTH as the bit rate, the video codecs of CODECS, RESOLUTION. A
// rendition without BANDWIDTH counts as having no metadata at all.
func StreamShortID(r hls.Rendition) string {
	var s string
	if r.Bandwidth == 0 {
		s = "0--------"
	} else {
		s = fmt.Sprintf("%d-%s-%s-%s-----", r.Bandwidth, normalizeCodecs(videoCodecs(r.Codecs)), dimension(r.Width), dimension(r.Height))
	}
	sum := sha1.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}

func dimension(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
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

// normalizeCodecs lower-cases, rewrites decimal avc1 profiles to hex and
// sorts, as generateStreamShortId does.
func normalizeCodecs(codecs []string) string {
	out := make([]string, len(codecs))
	for i, c := range codecs {
		c = strings.ToLower(strings.TrimSpace(c))
		parts := strings.Split(c, ".")
		if len(parts) == 3 && (parts[0] == "avc1" || parts[0] == "avc") {
			profile, err1 := strconv.Atoi(parts[1])
			level, err2 := strconv.Atoi(parts[2])
			if err1 == nil && err2 == nil && strconv.Itoa(profile) == parts[1] && strconv.Itoa(level) == parts[2] {
				c = fmt.Sprintf("%s.%02x00%02x", parts[0], profile, level)
			}
		}
		out[i] = c
	}
	sort.Strings(out)
	return strings.Join(out, ",")
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
