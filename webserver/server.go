// Package webserver routes HTTP requests and adds the middleware every
// request passes through: request ids, access logs, security headers and
// admin authentication. It holds no business logic.
package webserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path"
	"strings"

	"github.com/starling-live/starling/activitypub"
	"github.com/starling-live/starling/controllers"
)

type federation interface {
	http.Handler
	PublicFollowers(w http.ResponseWriter, r *http.Request)
	RemoteFollow(w http.ResponseWriter, r *http.Request)
}

type adminAuth interface {
	CheckAdminPassword(string) bool
	AdminPasswordVersion() string
}

// Deps are what the web server needs.
type Deps struct {
	Logger   *slog.Logger
	Handlers *controllers.Handlers
	Admin    adminAuth
	// HLS serves the published stream under /hls/ (the prefix stripped).
	HLS http.Handler
	// MediaOrigins, if set, are the origins besides this server that
	// viewers fetch segments from (a bucket or CDN), for the page's CSP.
	MediaOrigins func() []string
	// ThumbnailDir holds thumbnail.jpg.
	ThumbnailDir string
	// PublicDir holds the admin's own files, served at /public/.
	PublicDir string
	// Web is the built viewer page, served at /.
	Web fs.FS
	// Panel is the built admin panel, served at /admin/ behind the login.
	Panel fs.FS
	// Tracker is the P2P tracker's WebSocket endpoint.
	Tracker http.Handler
	// Chat is the chat's WebSocket endpoint.
	Chat http.Handler
	// Bots authenticate the integrations API's access tokens.
	Bots botAuth
	// Federation is the fediverse actor: discovery, the actor and its
	// inbox, and the public follower routes.
	Federation federation
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client (see ClientIP).
	TrustedProxies []netip.Prefix
	// Limits bound what clients may hold.
	Limits Limits
}

// Server is the HTTP server.
type Server struct {
	log     *slog.Logger
	limits  Limits
	trusted func(netip.Addr) bool
	handler http.Handler
	srv     *http.Server
	done    chan error
	roots   []*os.Root
}

// New builds the router.
func New(d Deps) (*Server, error) {
	s := &Server{log: d.Logger, limits: d.Limits.withDefaults(), trusted: trustedBy(d.TrustedProxies)}
	if err := os.MkdirAll(d.PublicDir, 0o755); err != nil {
		return nil, fmt.Errorf("create the public directory: %w", err)
	}
	for _, dir := range []struct{ name, path string }{
		{"thumbnail", d.ThumbnailDir}, {"public", d.PublicDir},
	} {
		root, err := os.OpenRoot(dir.path)
		if err != nil {
			s.closeRoots()
			return nil, fmt.Errorf("open the %s directory: %w", dir.name, err)
		}
		s.roots = append(s.roots, root)
	}
	thumbRoot, publicRoot := s.roots[0], s.roots[1]
	web, err := newStaticFiles(d.Web, d.MediaOrigins)
	if err != nil {
		s.closeRoots()
		return nil, err
	}
	panel, err := newPanelFiles(d.Panel)
	if err != nil {
		s.closeRoots()
		return nil, fmt.Errorf("the admin panel: %w", err)
	}

	h := d.Handlers
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/status", h.Status)
	mux.HandleFunc("GET /api/config", h.Config)
	mux.HandleFunc("GET /api/socialplatforms", h.SocialPlatforms)
	mux.HandleFunc("GET /logo", h.Logo)
	mux.HandleFunc("GET /customjavascript", h.CustomJavaScript)
	mux.HandleFunc("GET /customstyles.css", h.CustomStyles)
	mux.HandleFunc("GET /robots.txt", h.Robots)
	mux.HandleFunc("GET /api/emoji", h.Emoji)
	mux.HandleFunc("GET /img/emoji/{name}", h.EmojiImage)
	mux.HandleFunc("GET /api/ping", h.Ping)
	mux.HandleFunc("GET /api/video/variants", h.VideoVariants)
	mux.Handle("GET /public/", http.StripPrefix("/public/", &publicFiles{root: publicRoot}))
	// Every viewer's page reports every few seconds; a flood from one
	// address is cut short.
	mux.Handle("POST /api/metrics/playback", newIPLimiter(5, 20).wrap(http.HandlerFunc(h.RecordPlayback)))
	mux.Handle("GET "+controllers.TrackerPath, d.Tracker)
	for _, p := range activitypub.Paths() {
		mux.Handle(p, d.Federation)
	}
	mux.HandleFunc("GET /api/followers", d.Federation.PublicFollowers)
	mux.HandleFunc("POST /api/remotefollow", d.Federation.RemoteFollow)

	// Chat: Owncast's paths (docs/chat.md).
	mux.Handle("GET /ws", d.Chat)
	// Registering costs a database row: a flood from one address is cut
	// short, while a classroom behind one NAT still gets in.
	mux.Handle("POST /api/chat/register", newIPLimiter(10, 50).wrap(http.HandlerFunc(h.RegisterChatUser)))
	mux.HandleFunc("GET /api/chat", h.ChatHistory)
	mux.HandleFunc("POST /api/chat/messagevisibility", h.ModeratorSetMessageVisibility())
	mux.HandleFunc("POST /api/chat/users/setenabled", h.ModeratorSetUserEnabled())

	// One gate for every admin path, known or not: a route added to
	// adminRoutes cannot forget it, and an unknown path answers 401
	// before 404.
	admin := http.NewServeMux()
	for _, r := range adminRoutes(h) {
		admin.Handle(r.pattern, r.handler)
	}
	admin.Handle("GET /admin/", http.StripPrefix("/admin", panel))
	admin.HandleFunc("/", apiNotFound)
	gated := newAdminGate(d.Logger, d.Admin).wrap(admin)
	for _, prefix := range adminPrefixes {
		mux.Handle(prefix, gated)
	}

	// Integrations: bots with an access token, from any origin.
	mux.Handle(integrationsPrefix, integrationsHandler(d.Logger, d.Bots, h))
	mux.HandleFunc("/api/", apiNotFound)
	mux.Handle("/hls/", http.StripPrefix("/hls/", d.HLS))
	mux.Handle("GET /thumbnail.jpg", &thumbnail{root: thumbRoot})
	mux.Handle("/", web)

	routes := http.Handler(mux)
	if files, ok := d.HLS.(hlsFiles); ok {
		routes = hlsFirst(files, mux)
	}
	s.handler = requestID(clientIP(s.trusted, accessLog(d.Logger, securityHeaders(deadlines(s.limits, recoverPanics(d.Logger, routes))))))
	return s, nil
}

// Handler is the router with its middleware.
func (s *Server) Handler() http.Handler { return s.handler }

// Start serves on ln, holding each client address to its share of
// connections.
func (s *Server) Start(ln net.Listener) {
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.done = make(chan error, 1)
	ln = newConnLimiter(ln, s.log, s.limits.MaxConnsPerIP, s.trusted)
	go func() { s.done <- s.srv.Serve(ln) }()
}

// Close stops accepting and waits up to the context's deadline for the
// requests in flight.
func (s *Server) Close(ctx context.Context) error {
	defer s.closeRoots()
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.srv.Close()
	}
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

func (s *Server) closeRoots() {
	for _, r := range s.roots {
		r.Close()
	}
}

// hlsFiles is the packager's way in for a path with the prefix taken off.
type hlsFiles interface {
	ServeFile(w http.ResponseWriter, r *http.Request, name string)
}

// hlsFirst hands the stream's requests, most of all requests by far,
// straight to the packager: the mux would match each against every route,
// and StripPrefix copy the request and its URL. A path the mux would
// clean or redirect, or one with escapes, still goes through the mux and
// is served (or refused) as before.
func hlsFirst(files hlsFiles, mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if name, ok := strings.CutPrefix(r.URL.Path, "/hls/"); ok && name != "" && r.URL.RawPath == "" &&
			r.Method != http.MethodConnect && path.Clean(r.URL.Path) == r.URL.Path {
			files.ServeFile(w, r, name)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func apiNotFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "no such API endpoint: see the API documentation")
}
