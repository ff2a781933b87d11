package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/starling-live/starling/core/testrig"
	"github.com/starling-live/starling/core/timeline"
)

// TestAdminTimeline: the dashboard's hour of figures is there from the
// start, shows a broadcast's bitrate, and refuses a since that is no time.
func TestAdminTimeline(t *testing.T) {
	s := startServer(t)
	pub := publish(t, s.RTMPURL+"/"+testStreamKey)
	defer pub.stop()
	testrig.Eventually(t, 60*time.Second, "a point with the publisher's bitrate", func() (bool, string) {
		code, body := s.admin("GET", "/api/admin/timeline", nil)
		var ps []timeline.Point
		if code != 200 || json.Unmarshal(body, &ps) != nil || len(ps) == 0 {
			return false, string(body)
		}
		last := ps[len(ps)-1]
		return last.Online && last.IngestKbps > 0, string(body)
	})
	code, body := s.admin("GET", "/api/admin/timeline?since=yesterday", nil)
	if code != 400 || !strings.Contains(string(body), "since") {
		t.Errorf("a bad since: %d %s", code, body)
	}
	if code, _ := s.get("/api/admin/timeline"); code != 401 {
		t.Errorf("without the admin: %d", code)
	}
}

// TestAdminMarkdownPreview: the preview is the page content as viewers
// will get it, rendered and sanitised by the server's own code.
func TestAdminMarkdownPreview(t *testing.T) {
	s := startServer(t)
	code, body := s.admin("POST", "/api/admin/preview/markdown", map[string]any{"value": "# Hi\n\n**bold** <script>alert(1)</script>"})
	var out struct {
		HTML string `json:"html"`
	}
	json.Unmarshal(body, &out)
	if code != 200 || !strings.Contains(out.HTML, "<strong>bold</strong>") || strings.Contains(out.HTML, "<script") {
		t.Errorf("preview: %d %s", code, body)
	}
	if code, body := s.admin("POST", "/api/admin/preview/markdown", map[string]any{"value": strings.Repeat("x", 70<<10)}); code != 400 || !strings.Contains(string(body), "at most") {
		t.Errorf("a preview too long: %d %s", code, body)
	}
}
