package controllers

import (
	"net/http"
	"net/url"
	"time"

	"github.com/starling-live/starling/core"
)

// statusResponse is Owncast's GET /api/status.
type statusResponse struct {
	Online bool `json:"online"`
	// ViewerCount is left out when the admin hides it.
	ViewerCount        *int    `json:"viewerCount,omitempty"`
	LastConnectTime    *string `json:"lastConnectTime"`
	LastDisconnectTime *string `json:"lastDisconnectTime"`
	VersionNumber      string  `json:"versionNumber"`
	StreamTitle        string  `json:"streamTitle"`
	ServerTime         string  `json:"serverTime"`
}

// Status answers GET /api/status: is the stream live, and since when.
func (h *Handlers) Status(w http.ResponseWriter, r *http.Request) {
	st := h.deps.Stream.Status()
	var viewers *int
	if !h.deps.Settings.Get().HideViewerCount {
		n := h.deps.Playback.Stats(time.Now()).Viewers
		viewers = &n
	}
	writeJSON(w, http.StatusOK, statusResponse{
		Online:             st.Online,
		ViewerCount:        viewers,
		LastConnectTime:    timePtr(st.LastConnect),
		LastDisconnectTime: timePtr(st.LastDisconnect),
		VersionNumber:      h.deps.Version,
		StreamTitle:        h.deps.Settings.Get().StreamTitle,
		ServerTime:         time.Now().UTC().Format(time.RFC3339),
	})
}

// configResponse is Owncast's GET /api/config: what the viewer page
// shows, and what it needs to play and chat.
type configResponse struct {
	Name                 string                `json:"name"`
	Summary              string                `json:"summary"`
	SummaryHTML          string                `json:"summaryHTML"` // Summary's Markdown as sanitised HTML (Starling's)
	StreamTitle          string                `json:"streamTitle"`
	OfflineMessage       string                `json:"offlineMessage"`
	Logo                 string                `json:"logo"`
	Tags                 []string              `json:"tags"`
	NSFW                 bool                  `json:"nsfw"`
	Version              string                `json:"version"`
	SocialHandles        []core.SocialHandle   `json:"socialHandles"`
	ExtraPageContent     string                `json:"extraPageContent"` // HTML, sanitised
	ExternalActions      []core.ExternalAction `json:"externalActions"`
	CustomStyles         string                `json:"customStyles"`
	Appearance           map[string]string     `json:"appearanceVariables"`
	SocketHostOverride   string                `json:"socketHostOverride,omitempty"`
	HideViewerCount      bool                  `json:"hideViewerCount"`
	MaxSocketPayloadSize int                   `json:"maxSocketPayloadSize"`
	Federation           federationConfig      `json:"federation"`
	Notifications        notificationsConfig   `json:"notifications"`
	Authentication       authenticationConfig  `json:"authentication"`
	P2P                  p2pConfig             `json:"p2p"`
	// ChatDisabled is Owncast's; ChatLiveOnly Starling's.
	ChatDisabled bool `json:"chatDisabled"`
	ChatLiveOnly bool `json:"chatLiveOnly"`
}

type federationConfig struct {
	Enabled       bool   `json:"enabled"`
	Account       string `json:"account"`
	FollowerCount int    `json:"followerCount"`
}

type notificationsConfig struct {
	Browser struct {
		Enabled   bool   `json:"enabled"`
		PublicKey string `json:"publicKey"`
	} `json:"browser"`
}

type authenticationConfig struct {
	IndieAuthEnabled bool `json:"indieAuthEnabled"`
}

// maxSocketPayload is the largest chat frame a client may send (the hub's
// read limit, 8 KiB).
const maxSocketPayload = 8 << 10

// Config answers GET /api/config: the public settings.
func (h *Handlers) Config(w http.ResponseWriter, r *http.Request) {
	s := h.deps.Settings.Get()
	page, summary := "", ""
	if h.deps.RenderPage != nil {
		page = h.deps.RenderPage(s.PageContent)
		summary = h.deps.RenderPage(s.Summary)
	}
	fed := federationConfig{Enabled: s.Federation.Enabled}
	if fed.Enabled {
		if u, err := url.Parse(s.ServerURL); err == nil && u.Host != "" {
			fed.Account = "@" + s.Federation.Username + "@" + u.Host
		}
	}
	writeJSON(w, http.StatusOK, configResponse{
		Name:                 s.Name,
		Summary:              s.Summary,
		SummaryHTML:          summary,
		StreamTitle:          s.StreamTitle,
		OfflineMessage:       s.OfflineMessage,
		Logo:                 logoPath,
		Tags:                 s.Tags,
		NSFW:                 s.NSFW,
		Version:              h.deps.Version,
		SocialHandles:        s.SocialHandles,
		ExtraPageContent:     page,
		ExternalActions:      s.ExternalActions,
		CustomStyles:         s.CustomStyles,
		Appearance:           s.Appearance,
		SocketHostOverride:   s.SocketHostOverride,
		HideViewerCount:      s.HideViewerCount,
		MaxSocketPayloadSize: maxSocketPayload,
		Federation:           fed,
		P2P:                  h.p2pConfig(s),
		ChatDisabled:         s.Chat.Disabled,
		ChatLiveOnly:         s.Chat.LiveOnly,
	})
}

// SocialPlatforms answers GET /api/socialplatforms with Owncast's shape:
// the platforms the admin may pick from, by name. (Owncast adds icon
// paths; the viewer page draws its own icons, so there are none to give.)
func (h *Handlers) SocialPlatforms(w http.ResponseWriter, r *http.Request) {
	out := map[string]map[string]string{}
	for _, p := range core.SocialPlatforms {
		out[p] = map[string]string{"platform": p}
	}
	writeJSON(w, http.StatusOK, out)
}
