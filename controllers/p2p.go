package controllers

import (
	"errors"
	"net/http"
	"time"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/video/tracker"
)

type playbackStats interface {
	Record(r core.PlaybackReport, address string, now time.Time) error
	Viewers(now time.Time) []core.Viewer
	Stats(time.Time) core.PlaybackStats
}

type trackerStats interface{ Stats() tracker.Stats }

// p2pConfig is what the viewer page needs to share segments: the "p2p"
// object of GET /api/config.
type p2pConfig struct {
	Enabled                   bool             `json:"enabled"`
	SwarmID                   string           `json:"swarmId,omitempty"`
	TrackerPath               string           `json:"trackerPath,omitempty"`
	ICEServers                []core.ICEServer `json:"iceServers,omitzero"`
	HighDemandTimeWindow      float64          `json:"highDemandTimeWindow,omitempty"`
	LiveSyncDurationCount     int              `json:"liveSyncDurationCount,omitempty"`
	SimultaneousHTTPDownloads int              `json:"simultaneousHttpDownloads,omitempty"`
}

// p2pEnabled is whether viewers may share: the setting, unless the
// operator turned P2P off for this run.
func (h *Handlers) p2pEnabled(s *core.Settings) bool {
	return s.P2P.Enabled && !h.deps.P2PDisabled
}

func (h *Handlers) p2pConfig(s *core.Settings) p2pConfig {
	if !h.p2pEnabled(s) {
		return p2pConfig{}
	}
	ice := s.P2P.ICEServers
	if ice == nil {
		ice = []core.ICEServer{}
	}
	return p2pConfig{
		Enabled:                   true,
		SwarmID:                   SwarmID,
		TrackerPath:               TrackerPath,
		ICEServers:                ice,
		HighDemandTimeWindow:      s.P2P.HighDemandTimeWindow,
		LiveSyncDurationCount:     s.P2P.LiveSyncDurationCount,
		SimultaneousHTTPDownloads: s.P2P.SimultaneousHTTPDownloads,
	}
}

// SwarmID is the swarm id viewers' pages use, and TrackerPath where the
// tracker listens. The tracker accepts exactly the info hashes derived
// from SwarmID and the master playlist.
const (
	SwarmID     = "starling"
	TrackerPath = "/tracker"
)

// RecordPlayback answers POST /api/metrics/playback (Owncast's path for
// playback metrics): a viewer's page reports its bytes by source.
func (h *Handlers) RecordPlayback(w http.ResponseWriter, r *http.Request) {
	var rep core.PlaybackReport
	if err := readJSON(w, r, &rep); err != nil {
		h.writeError(w, r, err)
		return
	}
	rep.UserAgent = r.UserAgent()
	if err := h.deps.Playback.Record(rep, h.deps.ClientIP(r), time.Now()); err != nil {
		h.writeError(w, r, playbackError(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// playbackError maps the playback aggregate's refusals to API errors.
func playbackError(err error) error {
	switch {
	case errors.Is(err, core.ErrBadReport):
		return &apiError{status: http.StatusBadRequest, message: err.Error(), cause: err}
	case errors.Is(err, core.ErrTooManyViewers):
		return &apiError{status: http.StatusTooManyRequests, message: err.Error(), cause: err}
	}
	return err
}

// p2pStatus is the "p2p" object of GET /api/admin/status.
type p2pStatus struct {
	Enabled  bool               `json:"enabled"`
	Tracker  tracker.Stats      `json:"tracker"`
	Playback core.PlaybackStats `json:"playback"`
}

func (h *Handlers) p2pStatus(s *core.Settings) p2pStatus {
	return p2pStatus{
		Enabled:  h.p2pEnabled(s),
		Tracker:  h.deps.Tracker.Stats(),
		Playback: h.deps.Playback.Stats(time.Now()),
	}
}
