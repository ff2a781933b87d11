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
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/starling-live/starling/activitypub"
	"github.com/starling-live/starling/chat"
	"github.com/starling-live/starling/chat/format"
	"github.com/starling-live/starling/controllers"
	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/data"
	"github.com/starling-live/starling/core/hardware"
	"github.com/starling-live/starling/core/jobs"
	"github.com/starling-live/starling/core/logring"
	"github.com/starling-live/starling/core/notify"
	"github.com/starling-live/starling/core/timeline"
	"github.com/starling-live/starling/core/webhooks"
	"github.com/starling-live/starling/static"
	"github.com/starling-live/starling/storage/local"
	"github.com/starling-live/starling/storage/s3"
	"github.com/starling-live/starling/video/hls"
	"github.com/starling-live/starling/video/ingest"
	"github.com/starling-live/starling/video/pipeline"
	"github.com/starling-live/starling/video/thumbnail"
	"github.com/starling-live/starling/video/tracker"
	"github.com/starling-live/starling/video/transcode"
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
	// WebhookNetworks are private networks webhooks may reach, and
	// FediverseNetworks those remote fediverse servers may be on.
	WebhookNetworks   []netip.Prefix
	FediverseNetworks []netip.Prefix
	// Chat are the chat's limits; zero values are the defaults. Tests
	// shrink them.
	Chat chat.Config
	// HTTPLimits and RTMPLimits bound what clients may hold; zero values
	// are the defaults.
	HTTPLimits webserver.Limits
	RTMPLimits ingest.Limits
	// SecretFlags names the secrets given as command-line flags, which
	// other local users can read.
	SecretFlags []string
}

func parseConfig(args []string, env func(string) (string, bool), usage io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("starling", flag.ContinueOnError)
	fs.SetOutput(usage)
	envName := func(flag string) string { return "STARLING_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_")) }
	str := func(p *string, name, def, usage string) {
		if v, ok := env(envName(name)); ok {
			def = v
		}
		fs.StringVar(p, name, def, usage+" (env "+envName(name)+")")
	}
	var envErr error
	boolean := func(p *bool, name string, def bool, usage string) {
		if v, ok := env(envName(name)); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				envErr = fmt.Errorf("%s=%q: use true or false", envName(name), v)
			}
			def = b
		}
		fs.BoolVar(p, name, def, usage+" (env "+envName(name)+")")
	}
	integer := func(p *int, name string, usage string) {
		def := 0
		if v, ok := env(envName(name)); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				envErr = fmt.Errorf("%s=%q: use a whole number, 0 for the default", envName(name), v)
			}
			def = n
		}
		fs.IntVar(p, name, def, usage+" (env "+envName(name)+")")
	}
	var level, proxies, keyFile, passwordFile, webhookNets, fediNets string
	str(&c.HTTPAddr, "http", ":8080", "address of the web server: viewer page, API, HLS")
	str(&c.RTMPAddr, "rtmp", ":1935", "address of the RTMP server publishers push to")
	str(&c.DataDir, "data", "./data", "directory for the database, the HLS output and thumbnails")
	str(&c.StreamKey, "stream-key", "", "set the stream key (at least 8 characters); generated on first run if unset")
	str(&c.AdminPassword, "admin-password", "", "set the admin password (at least 8 characters); generated on first run if unset")
	str(&keyFile, "stream-key-file", "", "read the stream key from this file (other local users can read flags, not your files)")
	str(&passwordFile, "admin-password-file", "", "read the admin password from this file")
	str(&c.FFmpeg, "ffmpeg", "ffmpeg", "ffmpeg executable")
	str(&level, "log-level", "info", "log level: debug, info, warn or error")
	str(&proxies, "trusted-proxies", "127.0.0.0/8,::1", "reverse proxies whose X-Forwarded-For is believed (addresses or CIDR networks, comma-separated)")
	str(&webhookNets, "webhook-allowed-networks", "", "private networks webhooks may reach, such as a receiver on the LAN (addresses or CIDR networks, comma-separated); none by default")
	str(&fediNets, "fediverse-allowed-networks", "", "private networks remote fediverse servers may be reached at, such as a private deployment's (addresses or CIDR networks, comma-separated); none by default")
	boolean(&c.P2P, "p2p", true, "let viewers share segments with each other (peer to peer); false turns it off whatever the settings say")
	integer(&c.HTTPLimits.MaxConnsPerIP, "http-max-conns-per-ip", "open HTTP connections one client address may hold (0: 256); trusted proxies are exempt")
	integer(&c.RTMPLimits.MaxPendingPerIP, "rtmp-max-pending-per-ip", "RTMP connections one address may hold before it publishes (0: 4)")
	fs.BoolVar(&c.ShowVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if envErr != nil {
		return c, envErr
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "stream-key" || f.Name == "admin-password" {
			c.SecretFlags = append(c.SecretFlags, f.Name)
		}
	})
	for _, sf := range []struct {
		file, name string
		dst        *string
	}{{keyFile, "stream-key", &c.StreamKey}, {passwordFile, "admin-password", &c.AdminPassword}} {
		if sf.file == "" {
			continue
		}
		if *sf.dst != "" {
			return c, fmt.Errorf("both --%s and --%s-file are set: give one", sf.name, sf.name)
		}
		raw, err := os.ReadFile(sf.file)
		if err != nil {
			return c, fmt.Errorf("--%s-file: %w", sf.name, err)
		}
		// Editors end files with a newline; the secret never has one.
		*sf.dst = strings.TrimRight(string(raw), "\r\n")
		if *sf.dst == "" {
			return c, fmt.Errorf("--%s-file %s is empty", sf.name, sf.file)
		}
	}
	var err error
	if c.TrustedProxies, err = webserver.ParseTrustedProxies(proxies); err != nil {
		return c, fmt.Errorf("--trusted-proxies %q: %w", proxies, err)
	}
	if c.WebhookNetworks, err = webserver.ParseTrustedProxies(webhookNets); err != nil {
		return c, fmt.Errorf("--webhook-allowed-networks %q: %w", webhookNets, err)
	}
	if c.FediverseNetworks, err = webserver.ParseTrustedProxies(fediNets); err != nil {
		return c, fmt.Errorf("--fediverse-allowed-networks %q: %w", fediNets, err)
	}
	if c.HTTPLimits.MaxConnsPerIP < 0 || c.RTMPLimits.MaxPendingPerIP < 0 {
		return c, errors.New("connection limits cannot be negative: use 0 for the default")
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

	// closers stop what start started, in reverse order: the one list
	// serves a failed start and the shutdown alike.
	closers []closer
}

type closer struct {
	name  string
	close func() error
}

// onStop registers how to stop what was just started.
func (a *app) onStop(name string, close func() error) {
	a.closers = append(a.closers, closer{name, close})
}

// stop closes everything started, newest first, once.
func (a *app) stop() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i].close(); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", a.closers[i].name, err))
		}
	}
	a.closers = nil
	return errors.Join(errs...)
}

// newApp builds and starts every component. On error, what was started is
// stopped again.
func newApp(ctx context.Context, cfg config, log *slog.Logger) (*app, error) {
	a := &app{cfg: cfg, log: log}
	if err := a.start(ctx); err != nil {
		if serr := a.stop(); serr != nil {
			log.Warn("could not undo a failed start", "err", serr)
		}
		return nil, err
	}
	return a, nil
}

// closeListener closes a listener that a server may already have closed.
func closeListener(ln net.Listener) func() error {
	return func() error {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	}
}

func (a *app) start(ctx context.Context) error {
	// The latest lines are kept for the admin too (GET /api/admin/logs).
	logs := logring.New(500, slog.LevelInfo)
	a.log = slog.New(logs.Handler(a.log.Handler()))
	cfg, log := a.cfg, a.log
	for _, name := range cfg.SecretFlags {
		log.Warn("a secret was given on the command line, where every local user can read it (ps, /proc): pass it in the environment or a file instead", "flag", "--"+name, "instead", "STARLING_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))+" or --"+name+"-file")
	}
	ffmpeg, err := exec.LookPath(cfg.FFmpeg)
	if err != nil {
		return fmt.Errorf("ffmpeg not found (%w): install it (sudo apt-get install ffmpeg) or give its path with --ffmpeg", err)
	}
	codecs := checkEncoders(ctx, log, ffmpeg)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create the data directory: %w", err)
	}
	a.store, err = data.Open(ctx, filepath.Join(cfg.DataDir, "starling.db"))
	if err != nil {
		return err
	}
	a.onStop("database", a.store.Close)
	settings, err := core.LoadSettings(ctx, a.store)
	if err != nil {
		return err
	}
	secrets, gen, err := core.LoadSecrets(ctx, a.store, cfg.StreamKey, cfg.AdminPassword)
	if err != nil {
		return err
	}
	a.generated = gen
	stream, err := core.NewStream(ctx, core.StreamDeps{Logger: log, Store: a.store, Settings: settings})
	if err != nil {
		return err
	}
	// Outbound work goes through one persisted queue. It stops after the
	// webhooks' sources (the stream and chat) and before the webhooks,
	// which then store what they still hold for the next start.
	// Deliveries spend their time waiting on the network: sixteen run at
	// once, at most two to one host (docs/benchmarks.md, "Fediverse").
	queue := jobs.New(jobs.Deps{Logger: log.With("component", "jobs"), Store: a.store, Config: jobs.Config{Workers: 16}})
	hooks := webhooks.New(webhooks.Deps{
		Logger:   log.With("component", "webhooks"),
		Store:    a.store,
		Queue:    queue,
		Settings: settings,
		Config:   webhooks.Config{AllowedNetworks: cfg.WebhookNetworks},
	})
	if err := hooks.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	a.onStop("webhooks", hooks.Close)
	// The go-live post to Discord, once per broadcast.
	stream.AddListener(notify.New(notify.Deps{Logger: log.With("component", "notify"), Queue: queue, Settings: settings}))
	// The fediverse actor: its deliveries go through the queue too.
	fediverse := activitypub.New(activitypub.Deps{
		Logger:   log.With("component", "activitypub"),
		Store:    a.store,
		Settings: settings,
		Keys:     secrets,
		Queue:    queue,
		// Engagement arrives at the inbox, which the web server serves
		// once chat is there.
		Engaged:  a.showEngagement,
		ClientIP: webserver.ClientIP,
		Host:     webserver.ForwardedHost,
		Version:  version,
		Config:   activitypub.Config{AllowedNetworks: cfg.FediverseNetworks},
	})
	stream.AddListener(fediverse)
	settings.AddListener(fediverse)
	if err := queue.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	a.onStop("job queue", queue.Close)
	stream.AddListener(hooks)
	settings.AddListener(hooks)

	hlsStore, err := local.New(filepath.Join(cfg.DataDir, "hls"))
	if err != nil {
		return err
	}
	thumbStore, err := local.New(filepath.Join(cfg.DataDir, "thumbnails"))
	if err != nil {
		return err
	}
	uploads, err := local.New(filepath.Join(cfg.DataDir, "uploads"))
	if err != nil {
		return err
	}
	machine := hardware.New(cfg.DataDir)
	machine.Start(context.WithoutCancel(ctx))
	a.onStop("hardware stats", machine.Close)
	hlsFiles, err := os.OpenRoot(hlsStore.Dir())
	if err != nil {
		return fmt.Errorf("open the HLS directory: %w", err)
	}
	a.onStop("HLS directory", hlsFiles.Close)
	a.packager = hls.New(hls.Deps{Logger: log.With("component", "hls"), Storage: hlsStore, Files: hlsFiles.FS()})
	// The thumbnails (the stills ffmpeg sends) and the tracker's swarms
	// follow what is published.
	a.thumbnails = thumbnail.New(thumbnail.Deps{
		Logger: log.With("component", "thumbnail"),
		Store:  thumbStore,
	})
	a.packager.AddListener(a.thumbnails)
	swarms := tracker.NewAllowlist(controllers.SwarmID)
	a.packager.AddListener(swarms)
	// What each rendition puts out, for the dashboard.
	output := hls.NewOutput()
	a.packager.AddListener(output)
	if err := a.packager.Start(ctx); err != nil {
		return err
	}
	a.onStop("packager", a.packager.Close)
	// Where each broadcast's segments go: the settings say.
	stores := &buckets{log: log.With("component", "s3"), settings: settings, secrets: secrets, local: hlsStore}
	stores.SettingsChanged(nil, settings.Get())
	settings.AddListener(stores)
	a.onStop("S3 client", stores.close)
	a.tracker = tracker.New(tracker.Deps{
		Logger:   log.With("component", "tracker"),
		Allowed:  swarms.Allowed,
		ClientIP: webserver.ClientIP,
	})
	a.tracker.Start(context.WithoutCancel(ctx))
	a.onStop("tracker", a.tracker.Close)
	// --p2p=false wins over the setting.
	p2pOn := func(s *core.Settings) bool { return cfg.P2P && s.P2P.Enabled }
	a.tracker.SetEnabled(p2pOn(settings.Get()))
	settings.AddListener(core.SettingsFunc(func(old, new *core.Settings) {
		if p2pOn(old) != p2pOn(new) {
			a.tracker.SetEnabled(p2pOn(new))
		}
	}))
	// A broadcast's start and end empty the swarms: peers meet again in
	// the new broadcast's.
	stream.AddListener(swarmReset{a.tracker})
	playback := core.NewPlayback()
	a.viewers = core.NewViewerHistory(core.ViewerHistoryDeps{
		Logger:  log.With("component", "viewers"),
		Store:   a.store,
		Viewers: playback,
	})
	if err := a.viewers.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	a.onStop("viewer history", a.viewers.Close)
	stream.AddListener(a.viewers)
	a.chat = chat.New(chat.Deps{
		Logger:   log.With("component", "chat"),
		Store:    a.store,
		Settings: settings,
		Stream:   stream,
		Render:   format.Message,
		ClientIP: webserver.ClientIP,
		Config:   chatConfig(cfg.Chat, log),
		Observe:  hooks.ChatEvent,
	})
	if err := a.chat.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	// The web server's shutdown leaves WebSockets to their owners: chat
	// and tracker close after it.
	a.onStop("chat", a.chat.Close)
	stream.AddListener(a.chat)
	settings.AddListener(a.chat)

	// The listeners are all there: stream events flow until the publisher
	// has gone, and what is queued reaches them before they close.
	stream.Start()
	a.onStop("stream events", stream.Close)
	a.pipeline = pipeline.New(pipeline.Deps{
		Logger:   log.With("component", "pipeline"),
		Stream:   stream,
		Settings: settings,
		Packager: a.packager,
		FFmpeg:   ffmpeg,
		Remote:   stores.Remote,
	})
	// The last hour of the live figures, for the dashboard.
	live := timeline.New(timeline.Deps{Read: func() timeline.Reading {
		p := playback.Stats(time.Now())
		h := a.pipeline.Health()
		c := a.chat.Stats()
		return timeline.Reading{
			Online: h.Online, Viewers: p.Viewers, P2PViewers: p.P2PViewers,
			HTTPBytes: p.HTTPBytes, P2PBytes: p.P2PBytes,
			IngestKbps: h.IngestBitrateKbps, IngestFramerate: h.IngestFramerate, TranscoderSpeed: h.TranscoderSpeed,
			ChatClients: c.Clients, ChatMessages: c.Messages,
		}
	}})
	live.Start(context.WithoutCancel(ctx))
	a.onStop("timeline", live.Close)
	// Integrations' access tokens: bots that post in chat as themselves.
	bots := chat.NewBots(chat.BotsDeps{Logger: log.With("component", "bots"), Store: a.store})
	handlers := controllers.New(controllers.Deps{
		Logger:        log.With("component", "api"),
		Stream:        stream,
		Settings:      settings,
		Keys:          secrets,
		Version:       version,
		FFmpeg:        ffmpeg,
		Playback:      playback,
		Tracker:       a.tracker,
		Chat:          a.chat,
		Viewers:       a.viewers,
		Health:        a.pipeline,
		Webhooks:      hooks,
		Federation:    fediverse,
		Timeline:      live,
		Output:        output,
		Bots:          bots,
		ClientIP:      webserver.ClientIP,
		ForwardedUser: webserver.ForwardedUser,
		// The request id of a failure's log line.
		RequestID:   webserver.RequestID,
		Uploads:     uploads,
		RenderPage:  format.Page,
		DefaultLogo: static.Logo(),
		Codecs:      codecs,
		Logs:        logs,
		Hardware:    machine,
		Storage:     a.packager,
		S3Test:      stores,

		P2PDisabled: !cfg.P2P,
	})
	// The servers close the listeners they are given; the listeners'
	// closers are for a start that fails before then, and they come
	// before the servers' so that they run after them.
	a.rtmpLn, err = net.Listen("tcp", cfg.RTMPAddr)
	if err != nil {
		return fmt.Errorf("listen for RTMP on %s: %w (is another server using the port? choose one with --rtmp)", cfg.RTMPAddr, err)
	}
	a.onStop("RTMP listener", closeListener(a.rtmpLn))
	a.httpLn, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen for HTTP on %s: %w (is another server using the port? choose one with --http)", cfg.HTTPAddr, err)
	}
	a.onStop("HTTP listener", closeListener(a.httpLn))
	a.web, err = webserver.New(webserver.Deps{
		Logger:         log.With("component", "http"),
		Handlers:       handlers,
		Admin:          secrets,
		HLS:            a.packager,
		MediaOrigins:   stores.MediaOrigins,
		ThumbnailDir:   thumbStore.Dir(),
		PublicDir:      filepath.Join(cfg.DataDir, "public"),
		Web:            static.Web(),
		Panel:          static.Panel(),
		Tracker:        a.tracker,
		Chat:           a.chat,
		Bots:           bots,
		Federation:     fediverse,
		TrustedProxies: cfg.TrustedProxies,
		Limits:         cfg.HTTPLimits,
	})
	if err != nil {
		return err
	}
	a.onStop("web server", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return a.web.Close(ctx)
	})

	a.ingest = ingest.New(ingest.Deps{
		Logger:  log.With("component", "rtmp"),
		Keys:    secrets,
		Handler: a.pipeline,
		Limits:  cfg.RTMPLimits,
	})
	a.ingest.Start(a.rtmpLn)
	// A broadcast whose key is revoked ends.
	secrets.OnStreamKeysChanged(a.ingest.RecheckKeys)
	// The publisher goes first, so ffmpeg can finish the last segment and
	// playlist while the web server still runs.
	a.onStop("RTMP server", func() error {
		err := a.ingest.Close()
		a.pipeline.Wait()
		return err
	})
	a.thumbnails.Start(context.WithoutCancel(ctx))
	a.onStop("thumbnails", a.thumbnails.Close)
	// The web server starts last: /api/status answering means ready. Its
	// closer is registered above, so that it stops after the publisher.
	a.web.Start(a.httpLn)
	log.Info("starling started", "version", version, "http", a.httpLn.Addr().String(), "rtmp", a.rtmpLn.Addr().String(), "data", cfg.DataDir)
	return nil
}

// showEngagement shows a fediverse follow, like or boost in chat.
func (a *app) showEngagement(e activitypub.Engagement) {
	typ := map[string]string{"follow": chat.TypeFediverseFollow, "like": chat.TypeFediverseLike, "repost": chat.TypeFediverseRepost}[e.Type]
	if err := a.chat.SendEngagement(chat.Engagement{Type: typ, Handle: e.Handle, Profile: e.Profile, Avatar: e.Avatar}); err != nil {
		a.log.Debug("fediverse engagement not shown in chat", "err", err)
	}
}

// swarmReset empties the tracker's swarms when a broadcast starts or ends.
// It lives here, not in tracker, so that tracker links no core (and no
// sqlite).
type swarmReset struct{ t *tracker.Tracker }

func (r swarmReset) BroadcastStarted(core.Broadcast) { r.t.Reset() }
func (r swarmReset) BroadcastEnded(core.Broadcast)   { r.t.Reset() }

var _ core.Listener = swarmReset{}

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

// checkEncoders warns when ffmpeg lacks the encoders the defaults use, and
// returns the H.264 encoders that work on this machine, which the admin may
// choose from.
func checkEncoders(ctx context.Context, log *slog.Logger, ffmpeg string) []string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-encoders").Output()
	if err != nil {
		log.Warn("could not list ffmpeg's encoders", "ffmpeg", ffmpeg, "err", err)
		return []string{"libx264"}
	}
	has := func(enc string) bool { return strings.Contains(string(out), " "+enc+" ") }
	for _, enc := range []string{"libx264", "aac", "mjpeg"} {
		if !has(enc) {
			log.Warn("ffmpeg lacks an encoder Starling uses; install a full ffmpeg build", "encoder", enc, "ffmpeg", ffmpeg)
		}
	}
	var h264 []string
	for _, enc := range core.H264Encoders {
		if !has(enc) {
			continue
		}
		// A hardware encoder is listed if ffmpeg was built with it; only
		// one that encodes on this machine is offered to the admin.
		if enc != "libx264" {
			out, err := exec.CommandContext(ctx, ffmpeg, transcode.ProbeArgs(enc)...).CombinedOutput()
			if err != nil {
				log.Debug("an H.264 encoder ffmpeg has does not work on this machine", "encoder", enc, "err", err, "ffmpeg_said", strings.TrimSpace(string(out)))
				continue
			}
		}
		h264 = append(h264, enc)
	}
	return h264
}

// run waits for ctx, then stops the components in reverse order of their
// start.
func (a *app) run(ctx context.Context) error {
	<-ctx.Done()
	a.log.Info("shutting down")
	err := a.stop()
	a.log.Info("stopped")
	return err
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

// buckets builds the storage a broadcast's segments go to from the
// settings: an S3 bucket when one is enabled, or this server's disk with a
// CDN in front (videoServingEndpoint). A broadcast keeps the storage it
// started with; a change applies from the next one.
type buckets struct {
	log      *slog.Logger
	settings *core.SettingsStore
	secrets  *core.Secrets
	local    *local.Storage
	// origins are where viewers fetch segments from besides this server,
	// for the page's CSP; replaced whole when the settings change.
	origins atomic.Pointer[[]string]

	// mu guards the bucket of the newest configuration, reused while it
	// stays the same.
	mu    sync.Mutex
	cfg   s3.Config
	store *s3.Storage
}

// s3Config is the S3 configuration of s with secret; a CDN given as the
// video serving endpoint comes before the bucket's own serving endpoint.
func s3Config(s *core.Settings, secret string) s3.Config {
	serving := s.S3.ServingEndpoint
	if s.VideoServingEndpoint != "" {
		serving = s.VideoServingEndpoint
	}
	return s3.Config{
		Endpoint: s.S3.Endpoint, ServingEndpoint: serving, AccessKey: s.S3.AccessKey, Secret: secret,
		Bucket: s.S3.Bucket, Region: s.S3.Region, ACL: s.S3.ACL, PathPrefix: s.S3.PathPrefix, ForcePathStyle: s.S3.ForcePathStyle,
	}
}

// remote returns the storage of s, nil for this server's disk alone.
func (b *buckets) remote(ctx context.Context, s *core.Settings) (hls.Remote, error) {
	if !s.S3.Enabled {
		if s.VideoServingEndpoint == "" {
			return nil, nil
		}
		return cdn{Storage: b.local, base: strings.TrimSuffix(s.VideoServingEndpoint, "/") + "/hls/"}, nil
	}
	secret, err := b.secrets.S3Secret(ctx)
	if err != nil {
		return nil, err
	}
	cfg := s3Config(s, secret)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.store != nil && b.cfg == cfg {
		return b.store, nil
	}
	st, err := s3.New(cfg, s3.Deps{Logger: b.log})
	if err != nil {
		return nil, err
	}
	if b.store != nil {
		b.store.Close()
	}
	b.cfg, b.store = cfg, st
	return st, nil
}

// Remote is the pipeline's choice of storage for a new broadcast. A
// configuration that cannot be used leaves the broadcast on local disk.
func (b *buckets) Remote() hls.Remote {
	r, err := b.remote(context.Background(), b.settings.Get())
	if err != nil {
		b.log.Error("the S3 storage cannot be used, so this broadcast is served from this server: fix the S3 settings (test them in the admin)", "err", err)
		return nil
	}
	return r
}

// SettingsChanged keeps the page's media origins current.
func (b *buckets) SettingsChanged(_, s *core.Settings) {
	var origins []string
	if r, err := b.remote(context.Background(), s); err == nil && r != nil {
		if u, err := url.Parse(r.URL("x")); err == nil && u.Host != "" {
			origins = []string{u.Scheme + "://" + u.Host}
		}
	}
	b.origins.Store(&origins)
}

// MediaOrigins are where viewers fetch segments from besides this server.
func (b *buckets) MediaOrigins() []string {
	if o := b.origins.Load(); o != nil {
		return *o
	}
	return nil
}

// TestS3 is the admin's "test connection" of S3 settings before they are
// saved.
func (b *buckets) TestS3(ctx context.Context, s *core.Settings, secret string) (passed, warnings []string, err error) {
	st, err := s3.New(s3Config(s, secret), s3.Deps{Logger: b.log})
	if err != nil {
		return nil, nil, err
	}
	defer st.Close()
	res, err := st.Check(ctx)
	return res.Passed, res.Warnings, err
}

// close lets go of the bucket's connections.
func (b *buckets) close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.store != nil {
		return b.store.Close()
	}
	return nil
}

// cdn is this server's disk with a CDN in front: the CDN fetches segments
// from /hls/ and viewers fetch them from the CDN.
type cdn struct {
	*local.Storage
	base string // the CDN's URL of /hls/
}

func (c cdn) URL(name string) string { return c.base + name }

var _ core.SettingsListener = (*buckets)(nil)
