package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"time"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/hardware"
	"github.com/starling-live/starling/core/logring"
)

type logRing interface {
	Entries(min slog.Level) []logring.Entry
}

type hardwareStats interface{ Stats() hardware.Stats }

// Logs answers GET /api/admin/logs: what the server logged lately.
func (h *Handlers) Logs(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.deps.Logs.Entries(slog.LevelInfo))
}

// LogWarnings answers GET /api/admin/logs/warnings: the warnings and
// errors among them.
func (h *Handlers) LogWarnings(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.deps.Logs.Entries(slog.LevelWarn))
}

// HardwareStats answers GET /api/admin/hardwarestats: the machine's CPU,
// memory and disk use over the last half hour, in percent.
func (h *Handlers) HardwareStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.deps.Hardware.Stats())
}

// ActiveViewers answers GET /api/admin/viewers: who is watching now.
func (h *Handlers) ActiveViewers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.deps.Playback.Viewers(time.Now()))
}

// Ping answers GET /api/ping, which Owncast's player sends while it
// plays: it counts as a viewer (by address and browser) for a page that
// does not report its playback.
func (h *Handlers) Ping(w http.ResponseWriter, r *http.Request) {
	ip, ua := h.deps.ClientIP(r), r.UserAgent()
	sum := sha256.Sum256([]byte(ip + "\x00" + ua))
	err := h.deps.Playback.Record(core.PlaybackReport{ViewerID: "ping-" + hex.EncodeToString(sum[:12]), UserAgent: ua}, ip, time.Now())
	if err != nil {
		h.writeError(w, r, playbackError(err))
		return
	}
	w.WriteHeader(http.StatusOK)
}

// videoVariant is one rendition as GET /api/video/variants lists it.
type videoVariant struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
}

// VideoVariants answers GET /api/video/variants: the renditions a player
// may pick, by their index in the master playlist.
func (h *Handlers) VideoVariants(w http.ResponseWriter, r *http.Request) {
	out := []videoVariant{}
	for i, v := range h.deps.Settings.Get().Video.Variants {
		out = append(out, videoVariant{Index: i, Name: v.Name})
	}
	writeJSON(w, http.StatusOK, out)
}

// UpdateOptions answers GET /api/admin/update/options as Owncast does
// where it cannot update itself: a Starling server never replaces its own
// binary, so an admin tool offers no update button.
func (h *Handlers) UpdateOptions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		SupportsUpdate bool `json:"supportsUpdate"`
		CanRestart     bool `json:"canRestart"`
	}{})
}

// NoSelfUpdate answers /api/admin/update/start and /update/forcequit.
func (h *Handlers) NoSelfUpdate(w http.ResponseWriter, r *http.Request) {
	h.writeError(w, r, invalid("Starling does not update or stop itself from the API: install the new version, then restart the service (the data directory carries over)"))
}

// startupOnly refuses a setting Owncast keeps in its database and
// Starling takes from its command line, so that a server cannot be
// moved off its own port by a request: the message names the flag.
func (h *Handlers) startupOnly(flag string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h.writeError(w, r, invalid("this is set when the server starts: use %s (or its STARLING_ environment variable) and restart", flag))
	}
}
