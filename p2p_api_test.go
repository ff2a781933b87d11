package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/testrig"
)

type p2pConfig struct {
	P2P struct {
		Enabled               bool             `json:"enabled"`
		SwarmID               string           `json:"swarmId"`
		TrackerPath           string           `json:"trackerPath"`
		ICEServers            []core.ICEServer `json:"iceServers"`
		HighDemandTimeWindow  float64          `json:"highDemandTimeWindow"`
		LiveSyncDurationCount int              `json:"liveSyncDurationCount"`
	} `json:"p2p"`
}

func (s *testServer) post(path string, body any) (int, []byte) {
	s.t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(s.URL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	out.ReadFrom(resp.Body)
	return resp.StatusCode, out.Bytes()
}

// TestP2PControlPlane checks what the server offers P2P viewers: the page
// configuration, the segment hash lists, telemetry in, figures out.
func TestP2PControlPlane(t *testing.T) {
	s := startServer(t)

	var cfg p2pConfig
	s.getJSON("/api/config", &cfg)
	if !cfg.P2P.Enabled || cfg.P2P.SwarmID != "starling" || cfg.P2P.TrackerPath != "/tracker" || cfg.P2P.ICEServers == nil || cfg.P2P.LiveSyncDurationCount == 0 {
		t.Errorf("p2p config %+v", cfg.P2P)
	}

	t.Run("ICE servers are validated and published", func(t *testing.T) {
		p := core.DefaultSettings().P2P
		p.ICEServers = []core.ICEServer{{URLs: []string{"turn:turn.example.org:3478"}}}
		if code, body := s.admin(http.MethodPost, "/api/admin/config/p2p", map[string]any{"value": p}); code != http.StatusBadRequest || !strings.Contains(string(body), "needs a username and a credential") {
			t.Errorf("TURN without credentials: %d %s", code, body)
		}
		p.ICEServers = []core.ICEServer{{URLs: []string{"stun:stun.example.org:3478"}}}
		if code, body := s.admin(http.MethodPost, "/api/admin/config/p2p", map[string]any{"value": p}); code != http.StatusOK {
			t.Fatalf("set ICE servers: %d %s", code, body)
		}
		s.getJSON("/api/config", &cfg)
		if len(cfg.P2P.ICEServers) != 1 || cfg.P2P.ICEServers[0].URLs[0] != "stun:stun.example.org:3478" {
			t.Errorf("ICE servers in the page config: %+v", cfg.P2P.ICEServers)
		}
	})

	t.Run("segment hashes match the segments", func(t *testing.T) {
		s.setVariants(core.Variant{Name: "source", VideoPassthrough: true, AudioPassthrough: true})
		pub := publish(t, s.RTMPURL+"/"+testStreamKey)
		defer pub.stop()
		pl := s.waitSegments("/hls/0/stream.m3u8", 2)
		resp, err := http.Get(s.URL + "/hls/0/segments.json")
		if err != nil {
			t.Fatal(err)
		}
		var hashes map[string]string
		json.NewDecoder(resp.Body).Decode(&hashes)
		resp.Body.Close()
		if resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("hash list headers %v", resp.Header)
		}
		for _, seg := range pl.GetAllSegments() {
			_, data := s.get("/hls/0/" + seg.URI)
			sum := sha256.Sum256(data)
			if hashes[seg.URI] != hex.EncodeToString(sum[:]) {
				t.Errorf("hash of %s: %q", seg.URI, hashes[seg.URI])
			}
		}
	})

	t.Run("telemetry makes the offload ratio", func(t *testing.T) {
		for _, r := range []core.PlaybackReport{
			{ViewerID: "viewer-one-0001", HTTPBytes: 1000, P2PBytes: 3000, P2PEnabled: true},
			{ViewerID: "viewer-two-0002", HTTPBytes: 4000, P2PEnabled: true},
		} {
			if code, body := s.post("/api/metrics/playback", r); code != http.StatusNoContent {
				t.Fatalf("report: %d %s", code, body)
			}
		}
		if code, body := s.post("/api/metrics/playback", map[string]any{"viewerId": "x", "httpBytes": 1}); code != http.StatusBadRequest || !strings.Contains(string(body), "viewerId") {
			t.Errorf("bad report: %d %s", code, body)
		}
		var as struct {
			ViewerCount int `json:"viewerCount"`
			P2P         struct {
				Enabled  bool               `json:"enabled"`
				Playback core.PlaybackStats `json:"playback"`
			} `json:"p2p"`
		}
		_, body := s.admin(http.MethodGet, "/api/admin/status", nil)
		if err := json.Unmarshal(body, &as); err != nil {
			t.Fatal(err)
		}
		if as.ViewerCount != 2 || as.P2P.Playback.P2PBytes != 3000 || as.P2P.Playback.OffloadRatio != 3000.0/8000 {
			t.Errorf("admin status %s", body)
		}
		var st struct{ ViewerCount int }
		s.getJSON("/api/status", &st)
		if st.ViewerCount != 2 {
			t.Errorf("public viewer count %d", st.ViewerCount)
		}

		resp, _ := http.Get(s.URL + "/metrics")
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("/metrics without the admin password: %d", resp.StatusCode)
		}
		code, metrics := s.admin(http.MethodGet, "/metrics", nil)
		for _, want := range []string{"starling_p2p_offload_ratio 0.375", `starling_segment_bytes_total{source="p2p"} 3000`, "starling_tracker_peers 0", "starling_viewers 2"} {
			if code != http.StatusOK || !strings.Contains(string(metrics), want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}

		// One address cannot flood the telemetry.
		limited := false
		for range 50 {
			if code, _ := s.post("/api/metrics/playback", core.PlaybackReport{ViewerID: "viewer-one-0001"}); code == http.StatusTooManyRequests {
				limited = true
				break
			}
		}
		if !limited {
			t.Error("50 reports at once from one address were all accepted")
		}
	})

	t.Run("tracker refuses other sites' pages", func(t *testing.T) {
		ws := "ws" + strings.TrimPrefix(s.URL, "http") + "/tracker"
		if _, resp, err := websocket.DefaultDialer.Dial(ws, http.Header{"Origin": {"https://evil.example"}}); err == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("foreign origin: %v", err)
		}
		c, resp, err := websocket.DefaultDialer.Dial(ws, http.Header{"Origin": {s.URL}})
		if err != nil {
			t.Fatalf("own origin: %v (%v)", err, resp)
		}
		c.Close()
	})
}

// trackerRefuses reports whether the tracker answers an announce with a
// refusal that says P2P is off.
func (s *testServer) trackerRefuses() (bool, string) {
	s.t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/tracker", http.Header{"Origin": {s.URL}})
	if err != nil {
		s.t.Fatalf("tracker: %v (%v)", err, resp)
	}
	defer ws.Close()
	ws.WriteJSON(map[string]any{"action": "announce", "info_hash": "XGUHNC+rjOQJsI5ORG2h", "peer_id": "-PM0203-offtest00000", "numwant": 5, "offers": []any{}})
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var reply map[string]any
	if err := ws.ReadJSON(&reply); err != nil {
		s.t.Fatalf("tracker reply: %v", err)
	}
	reason, _ := reply["failure reason"].(string)
	return strings.Contains(reason, "sharing is off"), fmt.Sprint(reply)
}

func TestP2PCanBeTurnedOff(t *testing.T) {
	t.Run("for a run", func(t *testing.T) {
		s := startServer(t, func(c *config) { c.P2P = false })
		var cfg p2pConfig
		s.getJSON("/api/config", &cfg)
		if cfg.P2P.Enabled || cfg.P2P.SwarmID != "" {
			t.Errorf("p2p config with --p2p=false: %+v", cfg.P2P)
		}
		testrig.Eventually(t, time.Second, "admin status", func() (bool, string) {
			_, body := s.admin(http.MethodGet, "/api/admin/status", nil)
			return strings.Contains(string(body), `"enabled":false`), string(body)
		})
		if off, saw := s.trackerRefuses(); !off {
			t.Errorf("the tracker serves with --p2p=false: %s", saw)
		}
	})
	t.Run("by the setting", func(t *testing.T) {
		s := startServer(t)
		if off, saw := s.trackerRefuses(); off {
			t.Fatalf("the tracker refuses with P2P on: %s", saw)
		}
		p2p := core.DefaultSettings().P2P
		p2p.Enabled = false
		if code, b := s.admin(http.MethodPost, "/api/admin/config/p2p", map[string]any{"value": p2p}); code != http.StatusOK {
			t.Fatalf("turn P2P off: %d %s", code, b)
		}
		if off, saw := s.trackerRefuses(); !off {
			t.Errorf("the tracker serves after P2P was turned off: %s", saw)
		}
	})
}
