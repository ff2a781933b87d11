package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/starling-live/starling/core/data"
)

// ErrInvalidSettings wraps what is wrong with settings an admin tried to save.
var ErrInvalidSettings = errors.New("invalid settings")

// Settings is what the admin configures. A *Settings handed out by
// SettingsStore.Get is an immutable snapshot: never modify it, take a copy
// through SettingsStore.Update.
type Settings struct {
	// Name is the server's name, shown in the page header and link previews.
	Name string `json:"name"`
	// Summary is a short description of the stream, shown under the player.
	Summary string `json:"summary"`
	// StreamTitle is what the stream is about right now.
	StreamTitle string `json:"streamTitle"`
	// OfflineMessage is shown on the viewer page while nobody is live.
	OfflineMessage string `json:"offlineMessage"`
	// WelcomeMessage greets each viewer in chat.
	WelcomeMessage string `json:"welcomeMessage"`
	// PageContent is Markdown shown under the player (Owncast's
	// extraPageContent); it is rendered and sanitised before it is served.
	PageContent string `json:"extraPageContent"`
	// Tags say what the stream is about; they become fediverse hashtags.
	Tags []string `json:"tags"`
	// NSFW marks the stream as not safe for work.
	NSFW bool `json:"nsfw"`
	// SocialHandles are links to the streamer elsewhere.
	SocialHandles []SocialHandle `json:"socialHandles"`
	// Logo is the file name of the uploaded logo in the data directory,
	// served at /logo; empty for the built-in one.
	Logo string `json:"logo"`
	// ServerURL is the address viewers reach the server at, such as
	// https://live.example.com: links and the fediverse need it.
	ServerURL string `json:"serverURL"`
	// HideViewerCount keeps the viewer count out of the public API.
	HideViewerCount bool `json:"hideViewerCount"`
	// DisableSearchIndexing asks search engines to stay away (robots.txt).
	DisableSearchIndexing bool `json:"disableSearchIndexing"`
	// DirectoryEnabled lists the stream in Owncast's directory.
	DirectoryEnabled bool `json:"directoryEnabled"`
	// SocketHostOverride is where pages connect for chat, when that is
	// not the server itself (a separate host behind the proxy).
	SocketHostOverride string `json:"socketHostOverride"`
	// VideoServingEndpoint serves the stream from elsewhere (a CDN).
	VideoServingEndpoint string `json:"videoServingEndpoint"`
	// Appearance are CSS variables of the viewer page.
	Appearance map[string]string `json:"appearanceVariables"`
	// CustomStyles and CustomJavaScript are the admin's own, added to the
	// viewer page.
	CustomStyles     string `json:"customStyles"`
	CustomJavaScript string `json:"customJavascript"`
	// ExternalActions are buttons on the viewer page.
	ExternalActions []ExternalAction `json:"externalActions"`
	// Federation makes the stream a fediverse actor.
	Federation FederationSettings `json:"federation"`
	// S3 puts the stream in a bucket.
	S3 S3Settings `json:"s3"`
	// Notifications tell others when the stream goes live.
	Notifications NotificationSettings `json:"notifications"`
	// Video decides what ffmpeg makes of the publisher's stream.
	Video VideoSettings `json:"video"`
	// P2P decides how viewers share segments with each other.
	P2P P2PSettings `json:"p2p"`
	// Chat decides who may talk, and when.
	Chat ChatSettings `json:"chat"`
}

// ChatSettings configure the chat beside the player.
type ChatSettings struct {
	// Disabled turns chat off: clients stay connected but cannot send.
	Disabled bool `json:"disabled"`
	// LiveOnly opens chat only while a broadcast is live.
	LiveOnly bool `json:"liveOnly"`
	// JoinMessages announces users joining and leaving.
	JoinMessages bool `json:"joinMessagesEnabled"`
	// ForbiddenNames may not be taken as display names, whatever the case.
	ForbiddenNames []string `json:"forbiddenUsernames"`
	// SuggestedNames, if there are at least ten, are what new users are
	// named from; otherwise names are generated.
	SuggestedNames []string `json:"suggestedUsernames"`
	// EstablishedUserMode lets only users who registered a while ago talk.
	EstablishedUserMode bool `json:"establishedUserMode"`
}

// MaxChatNameLength is the longest display name, in characters.
const MaxChatNameLength = 30

// Validate checks the chat settings.
func (c ChatSettings) Validate() error {
	var errs []error
	for _, list := range []struct {
		what  string
		names []string
	}{{"forbidden", c.ForbiddenNames}, {"suggested", c.SuggestedNames}} {
		if len(list.names) > 10_000 {
			errs = append(errs, fmt.Errorf("%d %s names are too many: use at most 10000", len(list.names), list.what))
		}
		for _, n := range list.names {
			if l := utf8.RuneCountInString(strings.TrimSpace(n)); l == 0 || l > MaxChatNameLength {
				errs = append(errs, fmt.Errorf("%s name %q must be 1 to %d characters", list.what, n, MaxChatNameLength))
			}
		}
	}
	return errors.Join(errs...)
}

// P2PSettings configure peer-to-peer delivery between viewers.
type P2PSettings struct {
	// Enabled lets viewers' pages fetch segments from each other.
	Enabled bool `json:"enabled"`
	// ICEServers are the STUN and TURN servers viewers use to reach each
	// other across NATs. None are needed on a LAN. TURN credentials are
	// handed to every viewer: use ones made for that.
	ICEServers []ICEServer `json:"iceServers"`
	// HighDemandTimeWindow, in seconds: segments starting within it of the
	// playhead are fetched over HTTP at once; beyond it, from peers.
	HighDemandTimeWindow float64 `json:"highDemandTimeWindow"`
	// LiveSyncDurationCount is how many segments behind the live edge the
	// player stays (hls.js). Latency is about (this + 1) segments.
	LiveSyncDurationCount int `json:"liveSyncDurationCount"`
	// SimultaneousHTTPDownloads caps a viewer's parallel HTTP fetches.
	SimultaneousHTTPDownloads int `json:"simultaneousHttpDownloads"`
}

// ICEServer is a STUN or TURN server, as WebRTC's RTCIceServer.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Validate checks the P2P settings.
func (p P2PSettings) Validate() error {
	var errs []error
	for _, s := range p.ICEServers {
		if len(s.URLs) == 0 {
			errs = append(errs, errors.New("an ICE server has no URL: give stun:HOST:PORT or turn:HOST:PORT"))
		}
		for _, u := range s.URLs {
			scheme, _, _ := strings.Cut(u, ":")
			switch scheme {
			case "stun", "stuns":
			case "turn", "turns":
				if s.Username == "" || s.Credential == "" {
					errs = append(errs, fmt.Errorf("TURN server %s needs a username and a credential", u))
				}
			default:
				errs = append(errs, fmt.Errorf("ICE server URL %q must use the scheme stun, stuns, turn or turns", u))
			}
		}
	}
	if p.HighDemandTimeWindow < 1 || p.HighDemandTimeWindow > 60 {
		errs = append(errs, fmt.Errorf("high-demand time window %g s is out of range: use 1 to 60", p.HighDemandTimeWindow))
	}
	if p.LiveSyncDurationCount < 2 || p.LiveSyncDurationCount > 20 {
		errs = append(errs, fmt.Errorf("live sync duration count %d is out of range: use 2 to 20 segments", p.LiveSyncDurationCount))
	}
	if p.SimultaneousHTTPDownloads < 1 || p.SimultaneousHTTPDownloads > 6 {
		errs = append(errs, fmt.Errorf("simultaneous HTTP downloads %d is out of range: use 1 to 6", p.SimultaneousHTTPDownloads))
	}
	return errors.Join(errs...)
}

// VideoSettings are the transcoder and HLS packaging settings.
type VideoSettings struct {
	// SegmentSeconds is the HLS target segment length; transcoded variants
	// get a key frame exactly this often so every segment starts with one.
	SegmentSeconds int `json:"segmentSeconds"`
	// PlaylistSegments is how many segments each media playlist lists.
	PlaylistSegments int `json:"playlistSegments"`
	// Variants are the renditions offered to viewers, best first.
	Variants []Variant `json:"variants"`
	// Codec is the H.264 encoder of transcoded variants (one of
	// H264Encoders that this ffmpeg has).
	Codec string `json:"codec"`
}

// H264Encoders are the encoders Starling can drive, software first;
// which of them work depends on the ffmpeg build and the hardware.
var H264Encoders = []string{"libx264", "h264_nvenc", "h264_qsv", "h264_vaapi", "h264_videotoolbox", "h264_v4l2m2m", "h264_omx"}

// LatencyLevel is one of Owncast's stream latency levels as a measured
// preset: the segment length and playlist length, and how far behind the
// live edge players stay and how close to the playhead they stop waiting
// for peers. Their latency and offload are in docs/benchmarks.md.
type LatencyLevel struct {
	SegmentSeconds        int
	PlaylistSegments      int
	LiveSyncDurationCount int
	HighDemandTimeWindow  float64
}

// LatencyLevels are the presets, lowest latency first. Below three
// segments behind live there is no time left to take a segment from a
// peer before it is needed; beyond, the extra seconds are slack for
// viewers on slow or lossy links.
var LatencyLevels = [...]LatencyLevel{
	{1, 10, 2, 1}, // lowest latency, little sharing
	{1, 10, 3, 1}, // low latency (the default)
	{2, 10, 3, 1}, // balanced
	{2, 10, 4, 3}, // more buffer (the default before 2026-12-02)
	{4, 8, 4, 4},  // most buffer
}

// DefaultLatencyLevel is the preset new servers start with.
const DefaultLatencyLevel = 1

// Apply sets s to the preset l.
func (l LatencyLevel) Apply(s *Settings) {
	s.Video.SegmentSeconds, s.Video.PlaylistSegments = l.SegmentSeconds, l.PlaylistSegments
	s.P2P.LiveSyncDurationCount, s.P2P.HighDemandTimeWindow = l.LiveSyncDurationCount, l.HighDemandTimeWindow
}

// LatencyLevel is the preset s follows, or, when its values were set one
// by one, the first with its segment length or longer.
func (s Settings) LatencyLevel() int {
	for i, l := range LatencyLevels {
		if l.SegmentSeconds == s.Video.SegmentSeconds && l.LiveSyncDurationCount == s.P2P.LiveSyncDurationCount &&
			l.HighDemandTimeWindow == s.P2P.HighDemandTimeWindow {
			return i
		}
	}
	for i, l := range LatencyLevels {
		if s.Video.SegmentSeconds <= l.SegmentSeconds {
			return i
		}
	}
	return len(LatencyLevels) - 1
}

// Variant is one output rendition. Its JSON shape is Owncast's
// StreamOutputVariant, so Owncast admin tools can read and write it.
type Variant struct {
	Name string `json:"name"`
	// VideoPassthrough copies the publisher's video untouched: no CPU cost,
	// but segments are cut at the publisher's key frames.
	VideoPassthrough bool `json:"videoPassthrough"`
	// AudioPassthrough copies the publisher's AAC audio untouched.
	AudioPassthrough bool `json:"audioPassthrough"`
	// VideoBitrate and AudioBitrate are in kbit/s.
	VideoBitrate int `json:"videoBitrate"`
	AudioBitrate int `json:"audioBitrate"`
	// ScaledWidth and ScaledHeight scale the picture; 0 keeps the aspect
	// ratio from the other one, both 0 keep the publisher's size. A source
	// smaller than the target is never scaled up.
	ScaledWidth  int `json:"scaledWidth"`
	ScaledHeight int `json:"scaledHeight"`
	// Framerate is the output frame rate.
	Framerate int `json:"framerate"`
	// CPUUsageLevel picks the x264 preset, 0 (ultrafast, least CPU) to 4
	// (fast, best picture per bit), as Owncast does.
	CPUUsageLevel int `json:"cpuUsageLevel"`
}

// x264Presets are the x264 presets of CPUUsageLevel 0 to 4, as
// video/transcode passes them to ffmpeg.
var x264Presets = [...]string{"ultrafast", "superfast", "veryfast", "faster", "fast"}

// Validate says what is wrong with v, in words an admin can act on.
func (v Variant) Validate() error {
	var errs []error
	if strings.TrimSpace(v.Name) == "" {
		errs = append(errs, errors.New("name is empty: give the variant a name viewers will see, such as 720p"))
	}
	if !v.VideoPassthrough {
		if v.VideoBitrate < 100 || v.VideoBitrate > 50000 {
			errs = append(errs, fmt.Errorf("video bitrate %d kbit/s is out of range: use 100 to 50000", v.VideoBitrate))
		}
		if v.Framerate < 1 || v.Framerate > 120 {
			errs = append(errs, fmt.Errorf("frame rate %d is out of range: use 1 to 120", v.Framerate))
		}
		if v.ScaledWidth < 0 || v.ScaledWidth > 7680 || v.ScaledWidth%2 != 0 {
			errs = append(errs, fmt.Errorf("width %d is invalid: use an even number up to 7680, or 0 to keep the aspect ratio", v.ScaledWidth))
		}
		if v.ScaledHeight < 0 || v.ScaledHeight > 4320 || v.ScaledHeight%2 != 0 {
			errs = append(errs, fmt.Errorf("height %d is invalid: use an even number up to 4320, or 0 to keep the aspect ratio", v.ScaledHeight))
		}
		if v.CPUUsageLevel < 0 || v.CPUUsageLevel >= len(x264Presets) {
			errs = append(errs, fmt.Errorf("CPU usage level %d is out of range: use 0 (least CPU) to %d", v.CPUUsageLevel, len(x264Presets)-1))
		}
	}
	if !v.AudioPassthrough && (v.AudioBitrate < 32 || v.AudioBitrate > 512) {
		errs = append(errs, fmt.Errorf("audio bitrate %d kbit/s is out of range: use 32 to 512, or audio passthrough", v.AudioBitrate))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("variant %q: %w", v.Name, err)
	}
	return nil
}

// Validate checks the video settings as a whole.
func (v VideoSettings) Validate() error {
	var errs []error
	if v.SegmentSeconds < 1 || v.SegmentSeconds > 10 {
		errs = append(errs, fmt.Errorf("segment length %d s is out of range: use 1 to 10 seconds", v.SegmentSeconds))
	}
	if v.PlaylistSegments < 3 || v.PlaylistSegments > 60 {
		errs = append(errs, fmt.Errorf("playlist length %d is out of range: list 3 to 60 segments", v.PlaylistSegments))
	}
	if len(v.Variants) == 0 {
		errs = append(errs, errors.New("no output variants: configure at least one"))
	}
	if !slices.Contains(H264Encoders, v.Codec) {
		errs = append(errs, fmt.Errorf("video codec %q is not one Starling drives: use one of %s", v.Codec, strings.Join(H264Encoders, ", ")))
	}
	if len(v.Variants) > 8 {
		errs = append(errs, fmt.Errorf("%d output variants are too many: use at most 8", len(v.Variants)))
	}
	for _, vr := range v.Variants {
		if err := vr.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DefaultSettings serve a new user well on a small machine: one 720p
// variant that a two-core box encodes with room to spare, and the low
// latency preset: about 3 s from camera to screen with the viewers still
// carrying most of the stream.
func DefaultSettings() Settings {
	s := Settings{
		Name:    "Starling",
		Summary: "A live stream, carried by its viewers.",
		Video: VideoSettings{
			Codec: "libx264",
			Variants: []Variant{{
				Name:             "720p",
				AudioPassthrough: true,
				VideoBitrate:     2500,
				AudioBitrate:     128,
				ScaledHeight:     720,
				Framerate:        30,
				CPUUsageLevel:    2,
			}},
		},
		P2P: P2PSettings{
			Enabled:                   true,
			ICEServers:                []ICEServer{},
			SimultaneousHTTPDownloads: 2,
		},
		Chat: ChatSettings{
			JoinMessages:   true,
			ForbiddenNames: []string{"admin", "administrator", "moderator", "owncast", "operator", "starling", "system"},
			SuggestedNames: []string{},
		},
		Tags:            []string{},
		SocialHandles:   []SocialHandle{},
		ExternalActions: []ExternalAction{},
		Appearance:      map[string]string{},
		Federation: FederationSettings{
			Username:       "streamer",
			GoLiveMessage:  "I've gone live!",
			ShowEngagement: true,
			BlockedDomains: []string{},
			// Owncast's: two minutes on air before followers hear.
			GoLiveDelay: 120,
		},
		S3: S3Settings{Region: "us-east-1", ACL: "public-read"},
		Notifications: NotificationSettings{
			Discord: DiscordSettings{GoLiveMessage: "I've gone live!"},
		},
	}
	LatencyLevels[DefaultLatencyLevel].Apply(&s)
	return s
}

func (s *Settings) clone() *Settings {
	c := *s
	c.Video.Variants = slices.Clone(s.Video.Variants)
	c.P2P.ICEServers = slices.Clone(s.P2P.ICEServers)
	c.Chat.ForbiddenNames = slices.Clone(s.Chat.ForbiddenNames)
	c.Chat.SuggestedNames = slices.Clone(s.Chat.SuggestedNames)
	c.Tags = slices.Clone(s.Tags)
	c.SocialHandles = slices.Clone(s.SocialHandles)
	c.ExternalActions = slices.Clone(s.ExternalActions)
	c.Appearance = maps.Clone(s.Appearance)
	c.Federation.BlockedDomains = slices.Clone(s.Federation.BlockedDomains)
	for i := range c.P2P.ICEServers {
		c.P2P.ICEServers[i].URLs = slices.Clone(c.P2P.ICEServers[i].URLs)
	}
	return &c
}

// settingsKey is the row of the settings table holding the Settings JSON.
const settingsKey = "settings"

// SettingsListener is told of each change once it is saved and current,
// in the order of the changes, with the snapshots before and after: each
// consumer reacts to the part it owns. It runs with the store's update
// lock held, so it must be quick and must not call Update.
type SettingsListener interface {
	SettingsChanged(old, new *Settings)
}

// SettingsFunc is a function that is a SettingsListener.
type SettingsFunc func(old, new *Settings)

// SettingsChanged calls f.
func (f SettingsFunc) SettingsChanged(old, new *Settings) { f(old, new) }

// SettingsStore holds the current settings snapshot and persists changes.
type SettingsStore struct {
	store *data.Store
	// listeners are set before the server starts and never change.
	listeners []SettingsListener
	// mu serialises Update; readers never take it.
	mu  sync.Mutex
	cur atomic.Pointer[Settings]
}

// AddListener adds l. Call it before the server starts.
func (ss *SettingsStore) AddListener(l SettingsListener) { ss.listeners = append(ss.listeners, l) }

// LoadSettings reads the stored settings, filling what is missing with
// defaults.
func LoadSettings(ctx context.Context, store *data.Store) (*SettingsStore, error) {
	s := DefaultSettings()
	raw, err := store.Setting(ctx, settingsKey)
	switch {
	case errors.Is(err, data.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		// Decoding over the defaults keeps defaults for fields added since
		// the settings were saved.
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			return nil, fmt.Errorf("stored settings are not valid JSON (%v): fix or delete the settings row in the database", err)
		}
	}
	ss := &SettingsStore{store: store}
	ss.cur.Store(&s)
	return ss, nil
}

// Get returns the current snapshot. Do not modify it.
func (ss *SettingsStore) Get() *Settings { return ss.cur.Load() }

// Update applies change to a copy of the settings, validates and stores the
// result, and makes it current. If change or validation fails nothing
// changes.
func (ss *SettingsStore) Update(ctx context.Context, change func(*Settings) error) (*Settings, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	next := ss.cur.Load().clone()
	if err := change(next); err != nil {
		return nil, err
	}
	if err := errors.Join(next.validateInstance(), next.Video.Validate(), next.P2P.Validate(), next.Chat.Validate()); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSettings, err)
	}
	raw, err := json.Marshal(next)
	if err != nil {
		return nil, err
	}
	if err := ss.store.SetSetting(ctx, settingsKey, string(raw)); err != nil {
		return nil, err
	}
	old := ss.cur.Swap(next)
	for _, l := range ss.listeners {
		l.SettingsChanged(old, next)
	}
	return next, nil
}
