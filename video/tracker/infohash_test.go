package tracker

import (
	"testing"

	"github.com/starling-live/starling/video/hls"
)

// The expected values were computed by p2p-media-loader-core 2.3.1 itself
// (node, lib/utils/stream.js generateStreamShortId + getStreamSwarmId, and
// lib/utils/peer.js getStreamHash). The first is also what a real browser
// announced for a media playlist without a master.
func TestInfoHashMatchesP2PMediaLoader(t *testing.T) {
	tests := []struct {
		swarm string
		r     hls.Rendition
		hash  string
	}{
		{"http://127.0.0.1:8090/live/index.m3u8", hls.Rendition{}, "XGUHNC+rjOQJsI5ORG2h"},
		{"starling", hls.Rendition{Bandwidth: 2910000, Codecs: "avc1.64001e,mp4a.40.2", Width: 640, Height: 360}, "eohKZ9lJmAenOJz37SRJ"},
		{"starling", hls.Rendition{Bandwidth: 935000, Codecs: "mp4a.40.2, avc1.42c015", Width: 320, Height: 180}, "ROHzfVUWnd20UNAGj+GG"},
		// A decimal avc1 profile is rewritten to hex first.
		{"starling", hls.Rendition{Bandwidth: 1500000, Codecs: "avc1.77.30", Width: 1280, Height: 720}, "L6jc7/YZx1CpPxZs+eUT"},
	}
	for _, tt := range tests {
		if got := InfoHash(tt.swarm, tt.r); got != tt.hash {
			t.Errorf("InfoHash(%q, %+v) = %s, want %s", tt.swarm, tt.r, got, tt.hash)
		}
	}
}

func TestAllowlistFollowsTheMasterPlaylist(t *testing.T) {
	a := NewAllowlist("starling")
	if a.Allowed("eohKZ9lJmAenOJz37SRJ") {
		t.Error("allowed while offline")
	}
	live := hls.Renditions{List: []hls.Rendition{{Bandwidth: 2910000, Codecs: "avc1.64001e,mp4a.40.2", Width: 640, Height: 360}}, Version: 2}
	a.RenditionsChanged(live)
	if !a.Allowed("eohKZ9lJmAenOJz37SRJ") || a.Allowed("ROHzfVUWnd20UNAGj+GG") {
		t.Error("allowlist does not match the renditions")
	}
	// A late event for older renditions changes nothing.
	a.RenditionsChanged(hls.Renditions{Version: 1})
	if !a.Allowed("eohKZ9lJmAenOJz37SRJ") {
		t.Error("an older version replaced the newer renditions")
	}
	a.RenditionsChanged(hls.Renditions{Version: 3})
	if a.Allowed("eohKZ9lJmAenOJz37SRJ") {
		t.Error("still allowed after the stream ended")
	}
}
