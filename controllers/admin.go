package controllers

import (
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/starling-live/starling/chat"
	"github.com/starling-live/starling/core"
)

// adminStatusResponse is Owncast's GET /api/admin/status.
type adminStatusResponse struct {
	Online      bool              `json:"online"`
	Broadcaster *core.Broadcaster `json:"broadcaster"`
	ViewerCount int               `json:"viewerCount"`
	// SessionPeakViewerCount is the current (or last) broadcast's peak.
	SessionPeakViewerCount int               `json:"sessionPeakViewerCount"`
	OverallPeakViewerCount int               `json:"overallPeakViewerCount"`
	Chat                   chat.Stats        `json:"chat"`
	Health                 core.StreamHealth `json:"health"`
	StreamTitle            string            `json:"streamTitle"`
	VersionNumber          string            `json:"versionNumber"`
	P2P                    p2pStatus         `json:"p2p"`
}

// AdminStatus answers GET /api/admin/status: the public status plus who
// is broadcasting and what their encoder announced.
func (h *Handlers) AdminStatus(w http.ResponseWriter, r *http.Request) {
	st := h.deps.Stream.Status()
	s := h.deps.Settings.Get()
	p2p := h.p2pStatus(s)
	session, overall := h.deps.Viewers.Peaks()
	writeJSON(w, http.StatusOK, adminStatusResponse{
		Online:                 st.Online,
		Broadcaster:            st.Broadcaster,
		ViewerCount:            p2p.Playback.Viewers,
		SessionPeakViewerCount: session,
		OverallPeakViewerCount: overall,
		Chat:                   h.deps.Chat.Stats(),
		Health:                 h.deps.Health.Health(),
		StreamTitle:            s.StreamTitle,
		VersionNumber:          h.deps.Version,
		P2P:                    p2p,
	})
}

type streamKey struct {
	Key     string `json:"key"`
	Comment string `json:"comment"`
}

// serverConfigResponse is the part of Owncast's GET
// /api/admin/serverconfig that Starling has. The stream key is here for
// the streamer; the admin password never is.
type serverConfigResponse struct {
	InstanceDetails instanceDetails  `json:"instanceDetails"`
	StreamKeys      []streamKey      `json:"streamKeys"`
	VideoSettings   videoSettings    `json:"videoSettings"`
	P2P             core.P2PSettings `json:"p2p"`
	FFmpegPath      string           `json:"ffmpegPath"`
	VersionNumber   string           `json:"versionNumber"`
}

type instanceDetails struct {
	Name           string `json:"name"`
	Summary        string `json:"summary"`
	StreamTitle    string `json:"streamTitle"`
	OfflineMessage string `json:"offlineMessage"`
}

type videoSettings struct {
	VideoQualityVariants []core.Variant `json:"videoQualityVariants"`
	SegmentSeconds       int            `json:"segmentSeconds"`
	PlaylistSegments     int            `json:"playlistSegments"`
}

// ServerConfig answers GET /api/admin/serverconfig.
func (h *Handlers) ServerConfig(w http.ResponseWriter, r *http.Request) {
	s := h.deps.Settings.Get()
	writeJSON(w, http.StatusOK, serverConfigResponse{
		InstanceDetails: instanceDetails{Name: s.Name, Summary: s.Summary, StreamTitle: s.StreamTitle, OfflineMessage: s.OfflineMessage},
		StreamKeys:      []streamKey{{Key: h.deps.Keys.StreamKey(), Comment: "Stream key"}},
		VideoSettings: videoSettings{
			VideoQualityVariants: s.Video.Variants,
			SegmentSeconds:       s.Video.SegmentSeconds,
			PlaylistSegments:     s.Video.PlaylistSegments,
		},
		P2P:           s.P2P,
		FFmpegPath:    h.deps.FFmpeg,
		VersionNumber: h.deps.Version,
	})
}

func ok(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "changed"})
}

// textSetting returns a handler that sets one text setting of at most
// limit characters.
func (h *Handlers) textSetting(what string, limit int, set func(*core.Settings, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		value, err := readValue[string](w, r)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		v := strings.TrimSpace(value)
		if n := utf8.RuneCountInString(v); n > limit {
			h.writeError(w, r, invalid("the %s is %d characters long: the limit is %d", what, n, limit))
			return
		}
		if _, err := h.deps.Settings.Update(r.Context(), func(s *core.Settings) error { set(s, v); return nil }); err != nil {
			h.writeError(w, r, err)
			return
		}
		ok(w)
	}
}

// SetStreamTitle answers POST /api/admin/config/streamtitle.
func (h *Handlers) SetStreamTitle() http.HandlerFunc {
	return h.textSetting("stream title", 200, func(s *core.Settings, v string) { s.StreamTitle = v })
}

// SetName answers POST /api/admin/config/name.
func (h *Handlers) SetName() http.HandlerFunc {
	return h.textSetting("server name", 100, func(s *core.Settings, v string) { s.Name = v })
}

// SetSummary answers POST /api/admin/config/serversummary.
func (h *Handlers) SetSummary() http.HandlerFunc {
	return h.textSetting("summary", 2000, func(s *core.Settings, v string) { s.Summary = v })
}

// SetOfflineMessage answers POST /api/admin/config/offlinemessage.
func (h *Handlers) SetOfflineMessage() http.HandlerFunc {
	return h.textSetting("offline message", 2000, func(s *core.Settings, v string) { s.OfflineMessage = v })
}

// SetVideoVariants answers POST /api/admin/config/video/streamoutputvariants.
// The new variants apply from the next broadcast.
func (h *Handlers) SetVideoVariants(w http.ResponseWriter, r *http.Request) {
	value, err := readValue[[]core.Variant](w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if _, err := h.deps.Settings.Update(r.Context(), func(s *core.Settings) error {
		s.Video.Variants = value
		return nil
	}); err != nil {
		h.writeError(w, r, err)
		return
	}
	ok(w)
}

// SetStreamKeys answers POST /api/admin/config/streamkeys. Starling has
// one stream key; Owncast's list shape is kept.
func (h *Handlers) SetStreamKeys(w http.ResponseWriter, r *http.Request) {
	value, err := readValue[[]streamKey](w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if len(value) != 1 {
		h.writeError(w, r, invalid("%d stream keys given: Starling takes exactly one", len(value)))
		return
	}
	if err := h.deps.Keys.SetStreamKey(r.Context(), value[0].Key); err != nil {
		h.writeError(w, r, err)
		return
	}
	ok(w)
}

// segmentsValue is the body of POST /api/admin/config/video/segments.
type segmentsValue struct {
	SegmentSeconds   int `json:"segmentSeconds"`
	PlaylistSegments int `json:"playlistSegments"`
}

// SetSegments answers POST /api/admin/config/video/segments: the segment
// length and how many segments a playlist lists. Latency and how much
// viewers can share depend on them; they apply from the next broadcast.
func (h *Handlers) SetSegments(w http.ResponseWriter, r *http.Request) {
	value, err := readValue[segmentsValue](w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if _, err := h.deps.Settings.Update(r.Context(), func(s *core.Settings) error {
		s.Video.SegmentSeconds, s.Video.PlaylistSegments = value.SegmentSeconds, value.PlaylistSegments
		return nil
	}); err != nil {
		h.writeError(w, r, err)
		return
	}
	ok(w)
}
