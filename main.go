// Command starling is a self-hosted live-streaming server: publishers push
// RTMP, viewers watch HLS in the browser.
//
// main.go is the composition root: it parses the configuration, builds
// every component in dependency order, starts them, and on SIGINT or
// SIGTERM stops them in reverse order.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/starling-live/starling/chat"
	"github.com/starling-live/starling/chat/format"
	"github.com/starling-live/starling/controllers"
	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/data"
	"github.com/starling-live/starling/static"
	"github.com/starling-live/starling/storage/local"
	"github.com/starling-live/starling/video/hls"
	"github.com/starling-live/starling/video/ingest"
	"github.com/starling-live/starling/video/pipeline"
	"github.com/starling-live/starling/video/thumbnail"
	"github.com/starling-live/starling/video/tracker"
	"github.com/starling-live/starling/webserver"
)

// version is set at release time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	cfg, err := parseConfig(os.Args[1:], os.LookupEnv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "starling:", err)
		os.Exit(2)
	}
	if cfg.ShowVersion {
		fmt.Println("starling", version)
		return
	}
	log := newLogger(os.Stderr, cfg.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	a, err := newApp(ctx, cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		os.Exit(1)
	}
	a.printWelcome(os.Stdout)
	if err := a.run(ctx); err != nil {
		log.Error("shutdown incomplete", "err", err)
		os.Exit(1)
	}
}

// config is the command line, each flag mirrored by an environment
// variable (STARLING_HTTP for --http, ...). Flags win over the environment.
type config struct {
	HTTPAddr      string
	RTMPAddr      string
	DataDir       string
	StreamKey     string
	AdminPassword string
	FFmpeg        string
	LogLevel      slog.Level
	ShowVersion   bool
	// P2P false turns peer-to-peer delivery off for this run.
	P2P            bool
	TrustedProxies []netip.Prefix
	// Chat are the chat's limits; zero values are the defaults. Tests
	// shrink them.
	Chat chat.Config
}

func parseConfig(args []string, env func(string) (string, bool), usage io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("starling", flag.ContinueOnError)
	fs.SetOutput(usage)
	str := func(p *string, name, def, usage string) {
		envName := "STARLING_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		if v, ok := env(envName); ok {
			def = v
		}
		fs.StringVar(p, name, def, usage+" (env "+envName+")")
	}
	var envErr error
	boolean := func(p *bool, name string, def bool, usage string) {
		envName := "STARLING_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		if v, ok := env(envName); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				envErr = fmt.Errorf("%s=%q: use true or false", envName, v)
			}
			def = b
		}
		fs.BoolVar(p, name, def, usage+" (env "+envName+")")
	}
	var level, proxies string
	str(&c.HTTPAddr, "http", ":8080", "address of the web server: viewer page, API, HLS")
	str(&c.RTMPAddr, "rtmp", ":1935", "address of the RTMP server publishers push to")
	str(&c.DataDir, "data", "./data", "directory for the database, the HLS output and thumbnails")
	str(&c.StreamKey, "stream-key", "", "set the stream key (at least 8 characters); generated on first run if unset")
	str(&c.AdminPassword, "admin-password", "", "set the admin password (at least 8 characters); generated on first run if unset")
	str(&c.FFmpeg, "ffmpeg", "ffmpeg", "ffmpeg executable")
	str(&level, "log-level", "info", "log level: debug, info, warn or error")
	str(&proxies, "trusted-proxies", "127.0.0.0/8,::1", "reverse proxies whose X-Forwarded-For is believed (addresses or CIDR networks, comma-separated)")
	boolean(&c.P2P, "p2p", true, "let viewers share segments with each other (peer to peer); false turns it off whatever the settings say")
	fs.BoolVar(&c.ShowVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if envErr != nil {
		return c, envErr
	}
	var err error
	if c.TrustedProxies, err = webserver.ParseTrustedProxies(proxies); err != nil {
		return c, fmt.Errorf("--trusted-proxies %q: %w", proxies, err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q: see starling --help", fs.Arg(0))
	}
	if err := c.LogLevel.UnmarshalText([]byte(level)); err != nil {
		return c, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	return c, nil
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// app is the running server.
type app struct {
	cfg       config
	log       *slog.Logger
	generated core.Generated

	httpLn, rtmpLn net.Listener
	store          *data.Store
	packager       *hls.Packager
	tracker        *tracker.Tracker
	pipeline       *pipeline.Pipeline
	ingest         *ingest.Server
	thumbnails     *thumbnail.Generator
	chat           *chat.Hub
	viewers        *core.ViewerHistory
	web            *webserver.Server
}

// newApp builds and starts every component. On error, what was started is
// stopped again.
func newApp(ctx context.Context, cfg config, log *slog.Logger) (a *app, err error) {
	a = &app{cfg: cfg, log: log}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	ffmpeg, err := exec.LookPath(cfg.FFmpeg)
	if err != nil {
		return nil, fmt.Errorf("ffmpeg not found (%w): install it (sudo apt-get install ffmpeg) or give its path with --ffmpeg", err)
	}
	checkEncoders(ctx, log, ffmpeg)
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create the data directory: %w", err)
	}
	a.store, err = data.Open(ctx, filepath.Join(cfg.DataDir, "starling.db"))
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { a.store.Close() })
	settings, err := core.LoadSettings(ctx, a.store)
	if err != nil {
		return nil, err
	}
	secrets, gen, err := core.LoadSecrets(ctx, a.store, cfg.StreamKey, cfg.AdminPassword)
	if err != nil {
		return nil, err
	}
	a.generated = gen
	stream, err := core.NewStream(ctx, log, a.store)
	if err != nil {
		return nil, err
	}

	hlsStore, err := local.New(filepath.Join(cfg.DataDir, "hls"))
	if err != nil {
		return nil, err
	}
	thumbStore, err := local.New(filepath.Join(cfg.DataDir, "thumbnails"))
	if err != nil {
		return nil, err
	}
	a.packager = hls.New(hls.Deps{Logger: log.With("component", "hls"), Storage: hlsStore})
	if err := a.packager.Start(ctx); err != nil {
		return nil, err
	}
	undo = append(undo, func() { a.packager.Close() })
	a.tracker = tracker.New(tracker.Deps{
		Logger:   log.With("component", "tracker"),
		Allowed:  tracker.NewAllowlist(controllers.SwarmID, a.packager).Allowed,
		ClientIP: webserver.ClientIP,
	})
	a.tracker.Start(context.WithoutCancel(ctx))
	undo = append(undo, func() { a.tracker.Close() })
	// A broadcast's start and end empty the swarms: peers meet again in
	// the new broadcast's.
	stream.AddListener(a.tracker)
	playback := core.NewPlayback()
	a.viewers = core.NewViewerHistory(core.ViewerHistoryDeps{
		Logger:  log.With("component", "viewers"),
		Store:   a.store,
		Viewers: playback,
	})
	if err := a.viewers.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	undo = append(undo, func() { a.viewers.Close() })
	stream.AddListener(a.viewers)
	a.chat = chat.New(chat.Deps{
		Logger:   log.With("component", "chat"),
		Store:    a.store,
		Settings: settings,
		Stream:   stream,
		Render:   format.Message,
		ClientIP: webserver.ClientIP,
		Config:   chatConfig(cfg.Chat, log),
	})
	if err := a.chat.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	undo = append(undo, func() { a.chat.Close() })
	stream.AddListener(a.chat)
	a.pipeline = pipeline.New(pipeline.Deps{
		Logger:   log.With("component", "pipeline"),
		Stream:   stream,
		Settings: settings,
		Packager: a.packager,
		FFmpeg:   ffmpeg,
	})
	handlers := controllers.New(controllers.Deps{
		Logger:   log.With("component", "api"),
		Stream:   stream,
		Settings: settings,
		Keys:     secrets,
		Version:  version,
		FFmpeg:   ffmpeg,
		Playback: playback,
		Tracker:  a.tracker,
		Chat:     a.chat,
		Viewers:  a.viewers,
		Health:   a.pipeline,
		ClientIP: webserver.ClientIP,

		P2PDisabled: !cfg.P2P,
	})
	a.web, err = webserver.New(webserver.Deps{
		Logger:         log.With("component", "http"),
		Handlers:       handlers,
		Admin:          secrets,
		HLSDir:         hlsStore.Dir(),
		ThumbnailDir:   thumbStore.Dir(),
		Web:            static.Web(),
		Tracker:        a.tracker,
		Chat:           a.chat,
		TrustedProxies: cfg.TrustedProxies,
	})
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { a.web.Close(context.Background()) })

	a.rtmpLn, err = net.Listen("tcp", cfg.RTMPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen for RTMP on %s: %w (is another server using the port? choose one with --rtmp)", cfg.RTMPAddr, err)
	}
	undo = append(undo, func() { a.rtmpLn.Close() })
	a.httpLn, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen for HTTP on %s: %w (is another server using the port? choose one with --http)", cfg.HTTPAddr, err)
	}

	a.ingest = ingest.New(ingest.Deps{
		Logger:  log.With("component", "rtmp"),
		Keys:    secrets,
		Handler: a.pipeline,
	})
	a.ingest.Start(a.rtmpLn)
	a.thumbnails = thumbnail.New(thumbnail.Deps{
		Logger: log.With("component", "thumbnail"),
		FFmpeg: ffmpeg,
		Source: a.packager,
		Store:  thumbStore,
	})
	a.thumbnails.Start(context.WithoutCancel(ctx))
	// The web server starts last: /api/status answering means ready.
	a.web.Start(a.httpLn)
	log.Info("starling started", "version", version, "http", a.httpLn.Addr().String(), "rtmp", a.rtmpLn.Addr().String(), "data", cfg.DataDir)
	return a, nil
}

// chatConfig caps chat connections at two thirds of the file descriptors
// (Go raises the soft limit to the hard one at start), leaving the rest
// for viewers' HTTP requests, ffmpeg and the database.
func chatConfig(c chat.Config, log *slog.Logger) chat.Config {
	if c.MaxConnections != 0 {
		return c
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		c.MaxConnections = 1000
		return c
	}
	c.MaxConnections = int(min(lim.Cur, 1<<20) * 2 / 3)
	if c.MaxConnections < 1000 {
		log.Warn("few file descriptors: chat will hold few viewers; raise the limit (ulimit -n, or LimitNOFILE= in a systemd unit)", "limit", lim.Cur, "chat connections", c.MaxConnections)
	}
	return c
}

// checkEncoders warns when ffmpeg lacks the encoders the defaults use.
func checkEncoders(ctx context.Context, log *slog.Logger, ffmpeg string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-encoders").Output()
	if err != nil {
		log.Warn("could not list ffmpeg's encoders", "ffmpeg", ffmpeg, "err", err)
		return
	}
	for _, enc := range []string{"libx264", "aac", "mjpeg"} {
		if !strings.Contains(string(out), " "+enc+" ") {
			log.Warn("ffmpeg lacks an encoder Starling uses; install a full ffmpeg build", "encoder", enc, "ffmpeg", ffmpeg)
		}
	}
}

// run waits for ctx, then stops the components in reverse order: the
// publisher goes first, so ffmpeg can finish the last segment and
// playlist while the web server still runs.
func (a *app) run(ctx context.Context) error {
	<-ctx.Done()
	a.log.Info("shutting down")
	var errs []error
	errs = append(errs, a.ingest.Close())
	a.pipeline.Wait()
	errs = append(errs, a.thumbnails.Close())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs = append(errs, a.web.Close(shutdownCtx))
	// The server's shutdown leaves WebSockets to their owners.
	errs = append(errs, a.chat.Close())
	errs = append(errs, a.tracker.Close())
	errs = append(errs, a.viewers.Close())
	errs = append(errs, a.packager.Close())
	errs = append(errs, a.store.Close())
	a.log.Info("stopped")
	return errors.Join(errs...)
}

// printWelcome tells the operator where to publish and watch. Secrets
// generated on this start are printed here, once, and never logged.
func (a *app) printWelcome(w io.Writer) {
	httpHost, httpPort := displayAddr(a.httpLn.Addr())
	rtmpHost, rtmpPort := displayAddr(a.rtmpLn.Addr())
	viewer := "http://" + net.JoinHostPort(httpHost, httpPort) + "/"
	publish := "rtmp://" + net.JoinHostPort(rtmpHost, rtmpPort) + "/" + ingest.App
	fmt.Fprintf(w, "\nStarling %s is running.\n\n", version)
	fmt.Fprintf(w, "  Watch:        %s\n", viewer)
	fmt.Fprintf(w, "  Publish to:   %s   (OBS: Settings > Stream > Service: Custom)\n", publish)
	if k := a.generated.StreamKey; k != "" {
		fmt.Fprintf(w, "  Stream key:   %s   (generated now and shown only once; keep it)\n", k)
	} else {
		fmt.Fprintf(w, "  Stream key:   as set before (change it with --stream-key)\n")
	}
	if p := a.generated.AdminPassword; p != "" {
		fmt.Fprintf(w, "  Admin login:  user %s, password %s   (generated now and shown only once)\n", webserver.AdminUser, p)
	} else {
		fmt.Fprintf(w, "  Admin login:  user %s, password as set before (change it with --admin-password)\n", webserver.AdminUser)
	}
	fmt.Fprintf(w, "\nPress Ctrl+C to stop.\n\n")
}

// displayAddr turns a listening address into one a user can type: a
// wildcard address becomes this machine's LAN address, or localhost.
func displayAddr(addr net.Addr) (host, port string) {
	host, port, _ = net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		return host, port
	}
	if ifaces, err := net.InterfaceAddrs(); err == nil {
		for _, a := range ifaces {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				return n.IP.String(), port
			}
		}
	}
	return "localhost", port
}
