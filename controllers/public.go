package controllers

import (
	"net/http"
	"time"
)

// statusResponse is Owncast's GET /api/status.
type statusResponse struct {
	Online             bool    `json:"online"`
	ViewerCount        int     `json:"viewerCount"`
	LastConnectTime    *string `json:"lastConnectTime"`
	LastDisconnectTime *string `json:"lastDisconnectTime"`
	VersionNumber      string  `json:"versionNumber"`
	StreamTitle        string  `json:"streamTitle"`
	ServerTime         string  `json:"serverTime"`
}

// Status answers GET /api/status: is the stream live, and since when.
func (h *Handlers) Status(w http.ResponseWriter, r *http.Request) {
	st := h.deps.Stream.Status()
	writeJSON(w, http.StatusOK, statusResponse{
		Online:             st.Online,
		ViewerCount:        h.deps.Playback.Stats(time.Now()).Viewers,
		LastConnectTime:    timePtr(st.LastConnect),
		LastDisconnectTime: timePtr(st.LastDisconnect),
		VersionNumber:      h.deps.Version,
		StreamTitle:        h.deps.Settings.Get().StreamTitle,
		ServerTime:         time.Now().UTC().Format(time.RFC3339),
	})
}

// configResponse is the part of Owncast's GET /api/config that Starling
// has: what the viewer page shows.
type configResponse struct {
	Name           string    `json:"name"`
	Summary        string    `json:"summary"`
	StreamTitle    string    `json:"streamTitle"`
	OfflineMessage string    `json:"offlineMessage"`
	Tags           []string  `json:"tags"`
	NSFW           bool      `json:"nsfw"`
	Version        string    `json:"version"`
	P2P            p2pConfig `json:"p2p"`
	// ChatDisabled is Owncast's; ChatLiveOnly Starling's.
	ChatDisabled bool `json:"chatDisabled"`
	ChatLiveOnly bool `json:"chatLiveOnly"`
}

// Config answers GET /api/config: the public settings.
func (h *Handlers) Config(w http.ResponseWriter, r *http.Request) {
	s := h.deps.Settings.Get()
	writeJSON(w, http.StatusOK, configResponse{
		Name:           s.Name,
		Summary:        s.Summary,
		StreamTitle:    s.StreamTitle,
		OfflineMessage: s.OfflineMessage,
		Tags:           []string{},
		Version:        h.deps.Version,
		P2P:            h.p2pConfig(s),
		ChatDisabled:   s.Chat.Disabled,
		ChatLiveOnly:   s.Chat.LiveOnly,
	})
}
