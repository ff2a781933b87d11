package controllers

import (
	"net/http"
	"time"

	"github.com/starling-live/starling/core/timeline"
)

// liveTimeline is the last hour of the live figures.
type liveTimeline interface {
	Since(t time.Time) []timeline.Point
}

// Timeline answers GET /api/admin/timeline?since=RFC3339 (Starling's):
// the live figures a point every 5 s over the last hour, after since if
// given, for the dashboard's charts.
func (h *Handlers) Timeline(w http.ResponseWriter, r *http.Request) {
	var since time.Time
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			h.writeError(w, r, invalid("since %q is not a time such as 2026-12-01T20:00:00Z", v))
			return
		}
		since = t
	}
	writeJSON(w, http.StatusOK, h.deps.Timeline.Since(since))
}
