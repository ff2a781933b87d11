package core

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// SocialHandle is a link to the streamer elsewhere (Owncast's
// socialHandles).
type SocialHandle struct {
	Platform string `json:"platform"`
	URL      string `json:"url"`
}

// ExternalAction is a button on the viewer page that opens a page, in a
// new tab or a frame over the player, or shows HTML (Owncast's
// externalActions).
type ExternalAction struct {
	URL            string `json:"url,omitempty"`
	HTML           string `json:"html,omitempty"`
	Title          string `json:"title"`
	Description    string `json:"description,omitempty"`
	Icon           string `json:"icon,omitempty"`
	Color          string `json:"color,omitempty"`
	OpenExternally bool   `json:"openExternally"`
}

// FederationSettings make the stream a fediverse actor (Owncast's
// federation settings); the fediverse part reads them.
type FederationSettings struct {
	Enabled        bool     `json:"enabled"`
	Private        bool     `json:"isPrivate"`
	ShowEngagement bool     `json:"showEngagement"`
	Username       string   `json:"username"`
	GoLiveMessage  string   `json:"goLiveMessage"`
	BlockedDomains []string `json:"blockedDomains"`
	// GoLiveDelay is how long, in seconds, a broadcast must stay live
	// before followers are told: a flapping connection posts once.
	GoLiveDelay int `json:"goLiveDelaySeconds"`
}

// MaxGoLiveDelay is the longest wait before the go-live post, in seconds.
const MaxGoLiveDelay = 3600

// S3Settings put the stream in an S3-compatible bucket. The secret key is
// kept with the secrets (Secrets.S3Secret), never here: settings are
// shown to the admin as they are.
type S3Settings struct {
	Enabled         bool   `json:"enabled"`
	Endpoint        string `json:"endpoint"`
	ServingEndpoint string `json:"servingEndpoint"`
	AccessKey       string `json:"accessKey"`
	Bucket          string `json:"bucket"`
	Region          string `json:"region"`
	ACL             string `json:"acl"`
	PathPrefix      string `json:"pathPrefix"`
	ForcePathStyle  bool   `json:"forcePathStyle"`
}

// NotificationSettings say who hears when the stream goes live.
type NotificationSettings struct {
	Discord DiscordSettings `json:"discord"`
}

// DiscordSettings post a message to a Discord channel's webhook when a
// broadcast starts.
type DiscordSettings struct {
	Enabled       bool   `json:"enabled"`
	Webhook       string `json:"webhook"`
	GoLiveMessage string `json:"goLiveMessage"`
}

// SocialPlatforms are the platforms the viewer page has an icon for
// (GET /api/socialplatforms); a handle may name any other.
var SocialPlatforms = []string{"bandcamp", "discord", "facebook", "fediverse", "github", "instagram", "kofi",
	"linkedin", "mastodon", "patreon", "paypal", "snapchat", "soundcloud", "spotify", "tiktok", "twitch",
	"twitter", "youtube", "bluesky", "pixelfed", "lemmy", "matrix", "xmpp", "email", "website"}

var (
	cssVariable    = regexp.MustCompile(`^--[a-zA-Z0-9-]{1,64}$`)
	fediverseName  = regexp.MustCompile(`^[a-z0-9_]{1,30}$`)
	s3Bucket       = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	hostnameLabels = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
)

// Limits on what the admin may set, in characters.
const (
	maxShortText = 200
	maxText      = 2000
	maxDocument  = 64 << 10
	maxListItems = 50
)

// webURL checks that a setting holds an absolute http or https address,
// or is empty when that is allowed.
func webURL(field, v string, emptyOK bool) error {
	if v == "" {
		if emptyOK {
			return nil
		}
		return fmt.Errorf("%s is empty: give an http or https address", field)
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return fmt.Errorf("%s %q is not an http or https address such as https://example.com", field, v)
	}
	return nil
}

func textLimit(field, v string, limit int) error {
	if n := utf8.RuneCountInString(v); n > limit {
		return fmt.Errorf("%s is %d characters long: the limit is %d", field, n, limit)
	}
	return nil
}

// validateInstance checks what the viewer page shows and the integrations
// the admin configures.
func (s *Settings) validateInstance() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range []struct {
		name, v string
		limit   int
	}{
		{"name", s.Name, 100}, {"streamTitle", s.StreamTitle, maxShortText}, {"summary", s.Summary, maxText},
		{"offlineMessage", s.OfflineMessage, maxText}, {"welcomeMessage", s.WelcomeMessage, maxText},
		{"extraPageContent", s.PageContent, maxDocument}, {"customStyles", s.CustomStyles, maxDocument},
		{"customJavascript", s.CustomJavaScript, maxDocument},
	} {
		add(textLimit(f.name, f.v, f.limit))
	}
	add(webURL("serverURL", s.ServerURL, true))
	add(webURL("videoServingEndpoint", s.VideoServingEndpoint, true))
	if v := s.SocketHostOverride; v != "" {
		if u, err := url.Parse(v); err != nil || (u.Scheme != "ws" && u.Scheme != "wss" && u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add(fmt.Errorf("socketHostOverride %q is not an address such as wss://chat.example.com", v))
		}
	}
	if len(s.Tags) > maxListItems {
		add(fmt.Errorf("%d tags are too many: use at most %d", len(s.Tags), maxListItems))
	}
	for _, t := range s.Tags {
		if n := utf8.RuneCountInString(t); n == 0 || n > 50 || strings.ContainsAny(t, " \t\n#,") {
			add(fmt.Errorf("tag %q must be 1 to 50 characters, one word, without '#'", t))
		}
	}
	if len(s.SocialHandles) > maxListItems {
		add(fmt.Errorf("%d socialHandles are too many: use at most %d", len(s.SocialHandles), maxListItems))
	}
	for _, h := range s.SocialHandles {
		if strings.TrimSpace(h.Platform) == "" || utf8.RuneCountInString(h.Platform) > 50 {
			add(fmt.Errorf("socialHandles: a platform must be named in 1 to 50 characters (%q)", h.Platform))
		}
		if strings.HasPrefix(h.URL, "mailto:") {
			continue
		}
		add(webURL("socialHandles "+h.Platform+" url", h.URL, false))
	}
	if len(s.ExternalActions) > maxListItems {
		add(fmt.Errorf("%d externalActions are too many: use at most %d", len(s.ExternalActions), maxListItems))
	}
	for _, a := range s.ExternalActions {
		if strings.TrimSpace(a.Title) == "" || utf8.RuneCountInString(a.Title) > 100 {
			add(fmt.Errorf("externalActions: a title of 1 to 100 characters is needed (%q)", a.Title))
		}
		switch {
		case a.URL == "" && a.HTML == "":
			add(fmt.Errorf("externalActions %q: give a url, or html to show", a.Title))
		case a.URL != "":
			add(webURL("externalActions "+a.Title+" url", a.URL, false))
		}
		add(textLimit("externalActions "+a.Title+" html", a.HTML, maxDocument))
		if a.Icon != "" {
			add(webURL("externalActions "+a.Title+" icon", a.Icon, false))
		}
		if a.Color != "" && !cssValue(a.Color) {
			add(fmt.Errorf("externalActions %q: color %q is not a CSS colour such as #33aa66", a.Title, a.Color))
		}
	}
	if len(s.Appearance) > 200 {
		add(fmt.Errorf("%d appearanceVariables are too many: use at most 200", len(s.Appearance)))
	}
	for k, v := range s.Appearance {
		if !cssVariable.MatchString(k) {
			add(fmt.Errorf("appearanceVariables: %q is not a CSS variable name such as --theme-color-background-main", k))
		}
		if !cssValue(v) {
			add(fmt.Errorf("appearanceVariables %s: %q is not a plain CSS value (no ; { } < > \\ or quotes, at most 200 characters)", k, v))
		}
	}
	add(s.Federation.validate())
	if s.Federation.Enabled && s.ServerURL == "" {
		add(errors.New("federation needs the server URL: set serverURL (such as https://live.example.com) first"))
	}
	add(s.S3.validate())
	add(s.Notifications.Discord.validate())
	return errors.Join(errs...)
}

// cssValue accepts what a CSS variable may hold in the page's style, and
// nothing that could end the declaration or the style element.
func cssValue(v string) bool {
	return v != "" && utf8.RuneCountInString(v) <= 200 && !strings.ContainsAny(v, ";{}<>\\\"'\n\r")
}

func (f FederationSettings) validate() error {
	var errs []error
	if f.Username != "" && !fediverseName.MatchString(f.Username) {
		errs = append(errs, fmt.Errorf("federation username %q must be 1 to 30 lower-case letters, digits or _", f.Username))
	}
	if f.Enabled && f.Username == "" {
		errs = append(errs, errors.New("federation username is empty: the fediverse needs a name, such as streamer"))
	}
	errs = append(errs, textLimit("federation goLiveMessage", f.GoLiveMessage, 500))
	if f.GoLiveDelay < 0 || f.GoLiveDelay > MaxGoLiveDelay {
		errs = append(errs, fmt.Errorf("federation goLiveDelaySeconds %d must be 0 to %d", f.GoLiveDelay, MaxGoLiveDelay))
	}
	if len(f.BlockedDomains) > 10_000 {
		errs = append(errs, fmt.Errorf("%d blockedDomains are too many: use at most 10000", len(f.BlockedDomains)))
	}
	for _, d := range f.BlockedDomains {
		if _, err := netip.ParseAddr(d); err != nil && !hostnameLabels.MatchString(d) {
			errs = append(errs, fmt.Errorf("blockedDomains: %q is not a domain such as spam.example (or an IP address)", d))
		}
	}
	return errors.Join(errs...)
}

// Validate checks the S3 settings.
func (s S3Settings) Validate() error {
	if err := s.validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSettings, err)
	}
	return nil
}

func (s S3Settings) validate() error {
	if !s.Enabled {
		return errors.Join(webURL("s3 endpoint", s.Endpoint, true), webURL("s3 servingEndpoint", s.ServingEndpoint, true))
	}
	var errs []error
	errs = append(errs, webURL("s3 endpoint", s.Endpoint, false), webURL("s3 servingEndpoint", s.ServingEndpoint, true))
	if !s3Bucket.MatchString(s.Bucket) || net.ParseIP(s.Bucket) != nil {
		errs = append(errs, fmt.Errorf("s3 bucket %q is not a bucket name: 3 to 63 lower-case letters, digits, dots and dashes", s.Bucket))
	}
	if s.AccessKey == "" || len(s.AccessKey) > 256 {
		errs = append(errs, errors.New("s3 accessKey is empty: give the access key id of the bucket's credentials"))
	}
	if s.Region == "" || len(s.Region) > 64 {
		errs = append(errs, errors.New("s3 region is empty: give the bucket's region, such as us-east-1"))
	}
	switch s.ACL {
	case "", "private", "public-read":
	default:
		errs = append(errs, fmt.Errorf("s3 acl %q: use public-read, private, or nothing (the bucket's own policy)", s.ACL))
	}
	if strings.Contains(s.PathPrefix, "..") || strings.HasPrefix(s.PathPrefix, "/") || len(s.PathPrefix) > 200 {
		errs = append(errs, fmt.Errorf("s3 pathPrefix %q must be a relative path without dot-dot parts", s.PathPrefix))
	}
	return errors.Join(errs...)
}

func (d DiscordSettings) validate() error {
	var errs []error
	if d.Enabled || d.Webhook != "" {
		if err := webURL("discord webhook", d.Webhook, !d.Enabled); err != nil {
			errs = append(errs, err)
		} else if u, _ := url.Parse(d.Webhook); d.Webhook != "" && u.Scheme != "https" {
			errs = append(errs, errors.New("discord webhook must be an https address, as Discord gives it"))
		}
	}
	errs = append(errs, textLimit("discord goLiveMessage", d.GoLiveMessage, maxText))
	return errors.Join(errs...)
}
