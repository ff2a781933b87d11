package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/starling-live/starling/core"
)

// Setter is one of Owncast's POST /api/admin/config/PATH calls, each
// with a body of {"value": ...}.
type Setter struct {
	Path    string
	Handler http.HandlerFunc
}

// ConfigSetters are every setting the admin API changes. A setting
// changed here is saved, checked whole, and heard by whoever uses it
// (core.SettingsListener); nothing is half-saved.
func (h *Handlers) ConfigSetters() []Setter {
	return []Setter{
		{"name", setting(h, text(func(s *core.Settings) *string { return &s.Name }))},
		{"serversummary", setting(h, text(func(s *core.Settings) *string { return &s.Summary }))},
		{"streamtitle", setting(h, text(func(s *core.Settings) *string { return &s.StreamTitle }))},
		{"offlinemessage", setting(h, text(func(s *core.Settings) *string { return &s.OfflineMessage }))},
		{"welcomemessage", setting(h, text(func(s *core.Settings) *string { return &s.WelcomeMessage }))},
		{"pagecontent", setting(h, text(func(s *core.Settings) *string { return &s.PageContent }))},
		{"customstyles", setting(h, text(func(s *core.Settings) *string { return &s.CustomStyles }))},
		{"customjavascript", setting(h, text(func(s *core.Settings) *string { return &s.CustomJavaScript }))},
		{"serverurl", setting(h, func(s *core.Settings, v string) { s.ServerURL = strings.TrimRight(strings.TrimSpace(v), "/") })},
		{"sockethostoverride", setting(h, text(func(s *core.Settings) *string { return &s.SocketHostOverride }))},
		{"videoservingendpoint", setting(h, func(s *core.Settings, v string) {
			s.VideoServingEndpoint = strings.TrimRight(strings.TrimSpace(v), "/")
		})},
		{"tags", setting(h, func(s *core.Settings, v []string) { s.Tags = cleanTags(v) })},
		{"nsfw", setting(h, flag(func(s *core.Settings) *bool { return &s.NSFW }))},
		{"hideviewercount", setting(h, flag(func(s *core.Settings) *bool { return &s.HideViewerCount }))},
		{"disablesearchindexing", setting(h, flag(func(s *core.Settings) *bool { return &s.DisableSearchIndexing }))},
		{"directoryenabled", setting(h, flag(func(s *core.Settings) *bool { return &s.DirectoryEnabled }))},
		{"socialhandles", setting(h, func(s *core.Settings, v []core.SocialHandle) { s.SocialHandles = nonNil(v) })},
		{"externalactions", setting(h, func(s *core.Settings, v []core.ExternalAction) { s.ExternalActions = nonNil(v) })},
		{"appearance", setting(h, func(s *core.Settings, v map[string]string) {
			if v == nil {
				v = map[string]string{}
			}
			s.Appearance = v
		})},

		{"chat/disable", setting(h, flag(func(s *core.Settings) *bool { return &s.Chat.Disabled }))},
		{"chat/liveonly", setting(h, flag(func(s *core.Settings) *bool { return &s.Chat.LiveOnly }))},
		{"chat/joinmessagesenabled", setting(h, flag(func(s *core.Settings) *bool { return &s.Chat.JoinMessages }))},
		{"chat/establishedusermode", setting(h, flag(func(s *core.Settings) *bool { return &s.Chat.EstablishedUserMode }))},
		{"chat/forbiddenusernames", setting(h, func(s *core.Settings, v []string) { s.Chat.ForbiddenNames = trimmed(v) })},
		{"chat/suggestedusernames", setting(h, func(s *core.Settings, v []string) { s.Chat.SuggestedNames = trimmed(v) })},

		{"federation/enable", setting(h, flag(func(s *core.Settings) *bool { return &s.Federation.Enabled }))},
		{"federation/private", setting(h, flag(func(s *core.Settings) *bool { return &s.Federation.Private }))},
		{"federation/showengagement", setting(h, flag(func(s *core.Settings) *bool { return &s.Federation.ShowEngagement }))},
		{"federation/username", setting(h, func(s *core.Settings, v string) {
			s.Federation.Username = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(v), "@"))
		})},
		{"federation/golivedelay", setting(h, func(s *core.Settings, v int) { s.Federation.GoLiveDelay = v })},
		{"federation/livemessage", setting(h, text(func(s *core.Settings) *string { return &s.Federation.GoLiveMessage }))},
		{"federation/blockdomains", setting(h, func(s *core.Settings, v []string) {
			out := trimmed(v)
			for i := range out {
				out[i] = strings.ToLower(out[i])
			}
			s.Federation.BlockedDomains = out
		})},
		{"notifications/discord", setting(h, func(s *core.Settings, v core.DiscordSettings) { s.Notifications.Discord = v })},

		{"video/streamoutputvariants", h.SetVideoVariants},
		{"video/codec", h.SetVideoCodec},
		{"video/streamlatencylevel", setting(h, func(s *core.Settings, level latencyLevel) {
			core.LatencyLevels[level].Apply(s)
		})},
		{"video/segments", setting(h, func(s *core.Settings, v segmentsValue) {
			s.Video.SegmentSeconds, s.Video.PlaylistSegments = v.SegmentSeconds, v.PlaylistSegments
		})},
		{"p2p", setting(h, func(s *core.Settings, v core.P2PSettings) { s.P2P = v })},
		{"streamkeys", h.SetStreamKeys},
		{"adminpass", h.SetAdminPassword},
		{"s3", h.SetS3},
		{"logo", h.SetLogo},

		{"webserverport", h.startupOnly("--http")},
		{"webserverip", h.startupOnly("--http")},
		{"rtmpserverport", h.startupOnly("--rtmp")},
		{"ffmpegpath", h.startupOnly("--ffmpeg")},
	}
}

// setting returns a handler that decodes {"value": T} and applies it to
// the settings.
func setting[T any](h *Handlers, apply func(*core.Settings, T)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := readValue[T](w, r)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if _, err := h.deps.Settings.Update(r.Context(), func(s *core.Settings) error { apply(s, v); return nil }); err != nil {
			h.writeError(w, r, err)
			return
		}
		ok(w)
	}
}

// text sets a text setting, trimmed.
func text(field func(*core.Settings) *string) func(*core.Settings, string) {
	return func(s *core.Settings, v string) { *field(s) = strings.TrimSpace(v) }
}

func flag(field func(*core.Settings) *bool) func(*core.Settings, bool) {
	return func(s *core.Settings, v bool) { *field(s) = v }
}

func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

// cleanTags trims tags and the '#' Owncast users type, and drops empty
// ones and repeats.
func cleanTags(tags []string) []string {
	out := []string{}
	for _, t := range tags {
		t = strings.TrimLeft(strings.TrimSpace(t), "#")
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

func trimmed(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

func ok(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "changed"})
}

// segmentsValue is the body of POST /api/admin/config/video/segments.
type segmentsValue struct {
	SegmentSeconds   int `json:"segmentSeconds"`
	PlaylistSegments int `json:"playlistSegments"`
}

// secrets are the secrets the admin sets; none is ever read back but the
// stream keys.
type secrets interface {
	StreamKeys() []core.StreamKey
	SetStreamKeys(context.Context, []core.StreamKey) error
	SetAdminPassword(context.Context, string) error
	S3Secret(context.Context) (string, error)
	SetS3Secret(context.Context, string) error
}

// SetStreamKeys answers POST /api/admin/config/streamkeys: the keys
// publishers may use, each with a comment. A broadcast whose key is no
// longer among them ends.
func (h *Handlers) SetStreamKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := readValue[[]core.StreamKey](w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	for i := range keys {
		keys[i].Key, keys[i].Comment = strings.TrimSpace(keys[i].Key), strings.TrimSpace(keys[i].Comment)
	}
	if err := h.deps.Keys.SetStreamKeys(r.Context(), keys); err != nil {
		h.writeError(w, r, err)
		return
	}
	ok(w)
}

// SetAdminPassword answers POST /api/admin/config/adminpass. The new
// password is in force at once; the request that set it was the old
// one's last.
func (h *Handlers) SetAdminPassword(w http.ResponseWriter, r *http.Request) {
	pw, err := readValue[string](w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.deps.Keys.SetAdminPassword(r.Context(), pw); err != nil {
		h.writeError(w, r, err)
		return
	}
	ok(w)
}

// SetS3 answers POST /api/admin/config/s3. The value is the S3 settings
// with the secret key, which is kept with the secrets; the secret as
// serverconfig shows it (masked), or none, keeps the stored one.
func (h *Handlers) SetS3(w http.ResponseWriter, r *http.Request) {
	v, err := readValue[s3Config](w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	v.Secret = strings.TrimSpace(v.Secret)
	keep := v.Secret == "" || v.Secret == secretMask
	stored, err := h.deps.Keys.S3Secret(r.Context())
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if v.Enabled && keep && stored == "" {
		h.writeError(w, r, invalid("s3 secret is empty: give the secret access key of the bucket's credentials"))
		return
	}
	_, err = h.deps.Settings.Update(r.Context(), func(s *core.Settings) error {
		s.S3 = v.S3Settings
		if err := s.S3.Validate(); err != nil {
			return err
		}
		// Stored only once the settings it goes with are valid.
		if !keep {
			return h.deps.Keys.SetS3Secret(r.Context(), v.Secret)
		}
		return nil
	})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	ok(w)
}

// latencyLevel is one of Owncast's latency levels, 0 (lowest latency) to
// 4; decoding refuses any other.
type latencyLevel int

func (l *latencyLevel) UnmarshalJSON(b []byte) error {
	var n int
	if err := json.Unmarshal(b, &n); err != nil || n < 0 || n >= len(core.LatencyLevels) {
		return fmt.Errorf("the latency level must be 0 (lowest latency) to %d", len(core.LatencyLevels)-1)
	}
	*l = latencyLevel(n)
	return nil
}

// SetVideoCodec answers POST /api/admin/config/video/codec: an H.264
// encoder this server's ffmpeg has. It applies from the next broadcast.
func (h *Handlers) SetVideoCodec(w http.ResponseWriter, r *http.Request) {
	codec, err := readValue[string](w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if !slices.Contains(h.deps.Codecs, codec) {
		h.writeError(w, r, invalid("video codec %q does not work with this ffmpeg on this machine: use one of %s", codec, strings.Join(h.deps.Codecs, ", ")))
		return
	}
	if _, err := h.deps.Settings.Update(r.Context(), func(s *core.Settings) error { s.Video.Codec = codec; return nil }); err != nil {
		h.writeError(w, r, err)
		return
	}
	ok(w)
}
