package controllers

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/starling-live/starling/activitypub"

	"github.com/starling-live/starling/chat"
	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/video/hls"
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
	// Storage is where the broadcast's segments go and how that goes.
	Storage hls.StorageStatus `json:"storage"`
	// Federation is the fediverse actor's followers and warnings.
	Federation activitypub.Status `json:"federation"`
	// Output is what each rendition put out over the last 30 s, by the
	// index of its variant.
	Output []hls.RenditionOutput `json:"output"`
}

type renditionOutput interface{ Rates() []hls.RenditionOutput }

// AdminStatus answers GET /api/admin/status: the public status plus who
// is broadcasting and what their encoder announced.
func (h *Handlers) AdminStatus(w http.ResponseWriter, r *http.Request) {
	st := h.deps.Stream.Status()
	s := h.deps.Settings.Get()
	p2p := h.p2pStatus(s)
	session, overall := h.deps.Viewers.Peaks()
	health := h.deps.Health.Health()
	var storage hls.StorageStatus
	if h.deps.Storage != nil {
		storage = h.deps.Storage.StorageStatus()
		health.Warnings = append(health.Warnings, storageWarnings(storage)...)
	}
	output := []hls.RenditionOutput{}
	if h.deps.Output != nil {
		output = h.deps.Output.Rates()
	}
	var fed activitypub.Status
	if h.deps.Federation != nil {
		fed = h.deps.Federation.Status(r.Context())
		health.Warnings = append(health.Warnings, fed.Warnings...)
	}
	writeJSON(w, http.StatusOK, adminStatusResponse{
		Online:                 st.Online,
		Broadcaster:            st.Broadcaster,
		ViewerCount:            p2p.Playback.Viewers,
		SessionPeakViewerCount: session,
		OverallPeakViewerCount: overall,
		Chat:                   h.deps.Chat.Stats(),
		Health:                 health,
		StreamTitle:            s.StreamTitle,
		VersionNumber:          h.deps.Version,
		P2P:                    p2p,
		Storage:                storage,
		Federation:             fed,
		Output:                 output,
	})
}

// Disconnect answers POST /api/admin/disconnect: the publisher is kicked
// off and the broadcast ends.
func (h *Handlers) Disconnect(w http.ResponseWriter, r *http.Request) {
	if !h.deps.Health.Disconnect() {
		h.writeError(w, r, &apiError{status: http.StatusBadRequest, message: "nobody is broadcasting", cause: errNotLive})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "inbound stream disconnected"})
}

var errNotLive = errors.New("disconnect while offline")

// serverConfigResponse is Owncast's GET /api/admin/serverconfig. The
// stream keys are here for the streamer; the admin password never is,
// and the S3 secret only as whether one is set.
type serverConfigResponse struct {
	InstanceDetails         adminInstanceDetails      `json:"instanceDetails"`
	StreamKeys              []core.StreamKey          `json:"streamKeys"`
	VideoSettings           videoSettings             `json:"videoSettings"`
	P2P                     core.P2PSettings          `json:"p2p"`
	FFmpegPath              string                    `json:"ffmpegPath"`
	VideoCodec              string                    `json:"videoCodec"`
	SupportedCodecs         []string                  `json:"supportedCodecs"`
	VersionNumber           string                    `json:"versionNumber"`
	ServerURL               string                    `json:"serverURL"`
	SocketHostOverride      string                    `json:"socketHostOverride"`
	VideoServingEndpoint    string                    `json:"videoServingEndpoint"`
	ChatDisabled            bool                      `json:"chatDisabled"`
	ChatLiveOnly            bool                      `json:"chatLiveOnly"`
	ChatJoinMessagesEnabled bool                      `json:"chatJoinMessagesEnabled"`
	ChatEstablishedUserMode bool                      `json:"chatEstablishedUserMode"`
	ForbiddenUsernames      []string                  `json:"forbiddenUsernames"`
	SuggestedUsernames      []string                  `json:"suggestedUsernames"`
	ExternalActions         []core.ExternalAction     `json:"externalActions"`
	DisableSearchIndexing   bool                      `json:"disableSearchIndexing"`
	HideViewerCount         bool                      `json:"hideViewerCount"`
	Federation              core.FederationSettings   `json:"federation"`
	Notifications           core.NotificationSettings `json:"notifications"`
	S3                      s3Config                  `json:"s3"`
	YP                      ypConfig                  `json:"yp"`
}

// adminInstanceDetails is what the viewer page shows, as the admin set
// it: the page content as Markdown.
type adminInstanceDetails struct {
	Name             string              `json:"name"`
	Summary          string              `json:"summary"`
	StreamTitle      string              `json:"streamTitle"`
	OfflineMessage   string              `json:"offlineMessage"`
	WelcomeMessage   string              `json:"welcomeMessage"`
	Logo             string              `json:"logo"`
	Tags             []string            `json:"tags"`
	NSFW             bool                `json:"nsfw"`
	SocialHandles    []core.SocialHandle `json:"socialHandles"`
	ExtraPageContent string              `json:"extraPageContent"`
	CustomStyles     string              `json:"customStyles"`
	CustomJavascript string              `json:"customJavascript"`
	Appearance       map[string]string   `json:"appearanceVariables"`
	Version          string              `json:"version"`
}

// s3Config is the S3 settings with the secret masked.
type s3Config struct {
	core.S3Settings
	// Secret is secretMask when one is set: sent back unchanged, it keeps
	// the stored one.
	Secret string `json:"secret"`
}

// secretMask stands for a stored secret in what the admin reads.
const secretMask = "********"

type ypConfig struct {
	Enabled     bool   `json:"enabled"`
	InstanceURL string `json:"instanceUrl"`
}

type videoSettings struct {
	VideoQualityVariants []core.Variant `json:"videoQualityVariants"`
	LatencyLevel         int            `json:"latencyLevel"`
	SegmentSeconds       int            `json:"segmentSeconds"`
	PlaylistSegments     int            `json:"playlistSegments"`
}

// ServerConfig answers GET /api/admin/serverconfig.
func (h *Handlers) ServerConfig(w http.ResponseWriter, r *http.Request) {
	s := h.deps.Settings.Get()
	s3 := s3Config{S3Settings: s.S3}
	if secret, err := h.deps.Keys.S3Secret(r.Context()); err != nil {
		h.writeError(w, r, err)
		return
	} else if secret != "" {
		s3.Secret = secretMask
	}
	writeJSON(w, http.StatusOK, serverConfigResponse{
		InstanceDetails: adminInstanceDetails{
			Name: s.Name, Summary: s.Summary, StreamTitle: s.StreamTitle, OfflineMessage: s.OfflineMessage,
			WelcomeMessage: s.WelcomeMessage, Logo: logoPath, Tags: s.Tags, NSFW: s.NSFW, SocialHandles: s.SocialHandles,
			ExtraPageContent: s.PageContent, CustomStyles: s.CustomStyles, CustomJavascript: s.CustomJavaScript,
			Appearance: s.Appearance, Version: h.deps.Version,
		},
		StreamKeys: h.deps.Keys.StreamKeys(),
		VideoSettings: videoSettings{
			VideoQualityVariants: s.Video.Variants,
			LatencyLevel:         s.LatencyLevel(),
			SegmentSeconds:       s.Video.SegmentSeconds,
			PlaylistSegments:     s.Video.PlaylistSegments,
		},
		P2P:                     s.P2P,
		FFmpegPath:              h.deps.FFmpeg,
		VideoCodec:              s.Video.Codec,
		SupportedCodecs:         h.deps.Codecs,
		VersionNumber:           h.deps.Version,
		ServerURL:               s.ServerURL,
		SocketHostOverride:      s.SocketHostOverride,
		VideoServingEndpoint:    s.VideoServingEndpoint,
		ChatDisabled:            s.Chat.Disabled,
		ChatLiveOnly:            s.Chat.LiveOnly,
		ChatJoinMessagesEnabled: s.Chat.JoinMessages,
		ChatEstablishedUserMode: s.Chat.EstablishedUserMode,
		ForbiddenUsernames:      s.Chat.ForbiddenNames,
		SuggestedUsernames:      s.Chat.SuggestedNames,
		ExternalActions:         s.ExternalActions,
		DisableSearchIndexing:   s.DisableSearchIndexing,
		HideViewerCount:         s.HideViewerCount,
		Federation:              s.Federation,
		Notifications:           s.Notifications,
		S3:                      s3,
		YP:                      ypConfig{Enabled: s.DirectoryEnabled, InstanceURL: s.ServerURL},
	})
}

// variantRequest is a variant as Owncast clients send it: only what the
// admin chose; the rest takes the defaults.
type variantRequest struct {
	Name             *string `json:"name"`
	VideoPassthrough bool    `json:"videoPassthrough"`
	AudioPassthrough *bool   `json:"audioPassthrough"`
	VideoBitrate     *int    `json:"videoBitrate"`
	AudioBitrate     *int    `json:"audioBitrate"`
	ScaledWidth      int     `json:"scaledWidth"`
	ScaledHeight     int     `json:"scaledHeight"`
	Framerate        *int    `json:"framerate"`
	CPUUsageLevel    *int    `json:"cpuUsageLevel"`
}

// Defaults of a variant's unset fields: Owncast's bit rate, and a frame
// rate and x264 preset a small machine keeps up with.
const (
	defaultVideoKbps = 1200
	defaultFramerate = 30
	defaultCPULevel  = 2
)

func (v variantRequest) variant(i int) core.Variant {
	or := func(p *int, def int) int {
		if p != nil {
			return *p
		}
		return def
	}
	out := core.Variant{
		VideoPassthrough: v.VideoPassthrough,
		VideoBitrate:     or(v.VideoBitrate, defaultVideoKbps),
		AudioBitrate:     or(v.AudioBitrate, 0),
		ScaledWidth:      v.ScaledWidth,
		ScaledHeight:     v.ScaledHeight,
		Framerate:        or(v.Framerate, defaultFramerate),
		CPUUsageLevel:    or(v.CPUUsageLevel, defaultCPULevel),
	}
	// Audio is copied unless the admin asked for a bit rate.
	out.AudioPassthrough = v.AudioBitrate == nil
	if v.AudioPassthrough != nil {
		out.AudioPassthrough = *v.AudioPassthrough
	}
	if out.AudioPassthrough && out.AudioBitrate == 0 {
		out.AudioBitrate = 128 // shown if passthrough is turned off later
	}
	if v.VideoPassthrough {
		out.VideoBitrate = 0
	}
	switch {
	case v.Name != nil && strings.TrimSpace(*v.Name) != "":
		out.Name = strings.TrimSpace(*v.Name)
	case v.VideoPassthrough:
		out.Name = "source"
	case v.ScaledHeight > 0:
		out.Name = fmt.Sprintf("%dp", v.ScaledHeight)
	default:
		out.Name = fmt.Sprintf("variant %d", i+1)
	}
	return out
}

// SetVideoVariants answers POST /api/admin/config/video/streamoutputvariants.
// The new variants apply from the next broadcast.
func (h *Handlers) SetVideoVariants(w http.ResponseWriter, r *http.Request) {
	value, err := readValue[[]variantRequest](w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	variants := make([]core.Variant, len(value))
	for i, v := range value {
		variants[i] = v.variant(i)
	}
	if _, err := h.deps.Settings.Update(r.Context(), func(s *core.Settings) error {
		s.Video.Variants = variants
		return nil
	}); err != nil {
		h.writeError(w, r, err)
		return
	}
	ok(w)
}
