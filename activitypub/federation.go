// Package activitypub makes the stream a fediverse actor: a Service that
// Mastodon users find by WebFinger (@streamer@your.host), follow, and hear
// from when the stream goes live.
//
// It is built on go-fed/activity's vocabulary (streams) for what we send
// and what we accept, and on go-fed/httpsig for HTTP Signatures. Incoming
// requests are verified before anything is stored (verify.go); outgoing
// ones are signed by the actor's key, which never changes once made
// (core.Secrets.ActorKey). Every delivery goes through the persisted job
// queue (core/jobs): retried with backoff for about a day, kept across
// restarts, once per shared inbox. go-fed's pub.FederatingActor is not
// used: it stores every inbox activity in its own Database and delivers
// on the request's goroutine, where ours must be queued.
package activitypub

import (
	"context"
	"crypto/rsa"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/data"
	"github.com/starling-live/starling/core/jobs"
	"github.com/starling-live/starling/core/netguard"
	"github.com/starling-live/starling/core/ratelimit"
)

type settingsSource interface{ Get() *core.Settings }

type keySource interface {
	ActorKey(ctx context.Context) (*rsa.PrivateKey, error)
}

type queue interface {
	HandleWith(kind string, h jobs.Handler, r jobs.Retry)
	EnqueueAll(ctx context.Context, jobs []data.NewJob) error
	Wake()
}

// Engagement is someone following the stream, or liking or boosting one
// of its posts, for the chat to show.
type Engagement struct {
	// Type is "follow", "like" or "repost".
	Type string
	// Handle is user@host; Profile and Avatar are their URLs.
	Handle, Profile, Avatar string
}

// Deps are what a Federation needs.
type Deps struct {
	Logger   *slog.Logger
	Store    *data.Store
	Settings settingsSource
	Keys     keySource
	Queue    queue
	// Engaged, if set, is told of engagement to show in chat, when the
	// admin shows it.
	Engaged func(Engagement)
	// ClientIP is the address of a request's client, for the limits.
	ClientIP func(*http.Request) string
	// Host is the host a request was sent to, as the client asked for
	// it (a trusted proxy's X-Forwarded-Host): what its signature covers.
	Host func(*http.Request) string
	// Version is the server's version, for NodeInfo.
	Version string
	Config  Config
}

// Config tunes the federation. Zero fields take the defaults in
// parentheses.
type Config struct {
	// AllowedNetworks are private networks remote servers may be reached
	// at (none): a test's on 127.0.0.1, or a private deployment's.
	AllowedNetworks []netip.Prefix
	// Timeout bounds one outbound request (10 s).
	Timeout time.Duration
	// MaxBody is the largest activity accepted (256 KiB).
	MaxBody int64
	// ClockSkew is how far a signed request's Date may be from now (1 h).
	ClockSkew time.Duration
	// GoLiveInterval is the least time between two go-live posts (10 min).
	GoLiveInterval time.Duration
	// HostRate is how many activities per second one remote host may
	// deliver once verified, how many keys of one host we fetch, and how
	// many requests one client address may make to the inbox; HostBurst
	// how many at once (5 and 100).
	HostRate  float64
	HostBurst int
}

func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MaxBody == 0 {
		c.MaxBody = 256 << 10
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = time.Hour
	}
	if c.GoLiveInterval == 0 {
		c.GoLiveInterval = 10 * time.Minute
	}
	if c.HostRate == 0 {
		c.HostRate = 5
	}
	if c.HostBurst == 0 {
		c.HostBurst = 100
	}
	return c
}

// guardHint says how to let the fediverse reach a private address.
const guardHint = "remote fediverse servers are reached only at public addresses unless the server's --fediverse-allowed-networks includes it"

// Federation is the stream's fediverse actor.
type Federation struct {
	log      *slog.Logger
	store    *data.Store
	settings settingsSource
	keys     keySource
	queue    queue
	engaged  func(Engagement)
	clientIP func(*http.Request) string
	host     func(*http.Request) string
	version  string
	cfg      Config

	client  *http.Client
	limits  *ratelimit.Keyed
	replays *replayCache
	mux     *http.ServeMux
	// live is the id of the broadcast on air, "" while offline; the
	// go-live post checks it is still the one it was queued for.
	live atomic.Pointer[string]

	// keyFetches remembers when a key was last fetched again after it
	// failed to verify, so a forged signature cannot make us fetch a key
	// at every request.
	keyMu      sync.Mutex
	keyFetches map[string]time.Time
}

// New returns the Federation and registers its deliveries with the
// queue; call it before the queue starts.
func New(d Deps) *Federation {
	cfg := d.Config.withDefaults()
	f := &Federation{
		log: d.Logger, store: d.Store, settings: d.Settings, keys: d.Keys, queue: d.Queue,
		engaged: d.Engaged, clientIP: d.ClientIP, host: d.Host, version: d.Version, cfg: cfg,
		limits:     ratelimit.New(rate.Limit(cfg.HostRate), cfg.HostBurst),
		replays:    newReplayCache(2*cfg.ClockSkew, 100_000),
		keyFetches: map[string]time.Time{},
	}
	if f.clientIP == nil {
		f.clientIP = func(r *http.Request) string { return r.RemoteAddr }
	}
	if f.host == nil {
		f.host = func(r *http.Request) string { return r.Host }
	}
	guard := netguard.New(cfg.AllowedNetworks, guardHint)
	f.client = &http.Client{
		Transport: guard.Transport(cfg.Timeout),
		Timeout:   cfg.Timeout,
		// Redirects are followed a few times, each checked by the guard.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	d.Queue.HandleWith(jobDeliver, f.deliver, deliveryRetry)
	d.Queue.HandleWith(jobAccept, f.deliver, deliveryRetry)
	d.Queue.HandleWith(jobGoLive, f.goLive, jobs.Retry{MaxAttempts: 5})
	d.Queue.HandleWith(jobUpdate, f.sendUpdate, jobs.Retry{MaxAttempts: 5})
	f.mux = f.routes()
	return f
}

// site is what the actor's URLs are made of, from one settings snapshot.
type site struct {
	s *core.Settings
	// base is the server URL without a trailing slash; host its host.
	base, host string
}

// site returns the current site, and false while federation is off:
// until the admin enables it and the server URL is set.
func (f *Federation) site() (site, bool) {
	s := f.settings.Get()
	if !s.Federation.Enabled || s.ServerURL == "" || s.Federation.Username == "" {
		return site{}, false
	}
	u, err := url.Parse(s.ServerURL)
	if err != nil || u.Host == "" {
		return site{}, false
	}
	return site{s: s, base: strings.TrimRight(s.ServerURL, "/"), host: u.Host}, true
}

func (st site) actor() string       { return st.base + "/federation/user/" + st.s.Federation.Username }
func (st site) keyID() string       { return st.actor() + "#main-key" }
func (st site) inbox() string       { return st.actor() + "/inbox" }
func (st site) outbox() string      { return st.actor() + "/outbox" }
func (st site) followers() string   { return st.actor() + "/followers" }
func (st site) following() string   { return st.actor() + "/following" }
func (st site) sharedInbox() string { return st.base + "/federation/inbox" }
func (st site) object(id string) string {
	return st.base + "/federation/posts/" + id
}
func (st site) handle() string { return st.s.Federation.Username + "@" + st.host }

// blocked reports whether host (or a domain it is under) is blocked.
func blocked(s *core.Settings, host string) bool {
	h := strings.ToLower(hostOnly(host))
	for _, d := range s.Federation.BlockedDomains {
		if h == d || strings.HasSuffix(h, "."+d) {
			return true
		}
	}
	return false
}

// hostOnly is host without its port.
func hostOnly(host string) string {
	if u, err := url.Parse("//" + host); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return host
}

// hostOf is the host (with port) of a URL, "" if it has none.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// ServeHTTP serves the fediverse's routes: discovery, the actor, its
// inbox, outbox and collections, and our posts.
func (f *Federation) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

// Paths are the path prefixes ServeHTTP answers, for the router.
func Paths() []string {
	return []string{
		"/.well-known/webfinger", "/.well-known/host-meta", "/.well-known/nodeinfo", "/.well-known/x-nodeinfo2",
		"/nodeinfo/", "/api/v1/instance", "/federation/",
	}
}

// BroadcastStarted queues the go-live post, due after the debounce.
func (f *Federation) BroadcastStarted(b core.Broadcast) {
	id := b.ID
	f.live.Store(&id)
	st, ok := f.site()
	if !ok {
		return
	}
	f.queueGoLive(st, b)
}

// BroadcastEnded lets a go-live post not yet sent know it is too late.
func (f *Federation) BroadcastEnded(core.Broadcast) {
	none := ""
	f.live.Store(&none)
}

var _ core.Listener = (*Federation)(nil)
