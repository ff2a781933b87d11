// Package pipeline wires a publisher to the transcoder and the HLS
// packager: one broadcast per accepted publisher, from its first tag to
// EXT-X-ENDLIST.
package pipeline

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/video/flv"
	"github.com/starling-live/starling/video/hls"
	"github.com/starling-live/starling/video/ingest"
	"github.com/starling-live/starling/video/transcode"
)

type streamState interface {
	Begin(core.Broadcaster) error
	Replace(core.Broadcaster)
	SetDetails(core.StreamDetails)
	Status() core.Status
	End()
}

type settingsSource interface{ Get() *core.Settings }

type packager interface {
	Begin(context.Context, hls.Options) *hls.Broadcast
	// Redact hides the packager's token in what ffmpeg logs.
	Redact(string) string
}

// Deps are what a Pipeline needs.
type Deps struct {
	Logger   *slog.Logger
	Stream   streamState
	Settings settingsSource
	Packager packager
	// FFmpeg is the ffmpeg executable.
	FFmpeg string
	// Remote, if set, says where a new broadcast's segments go: a remote
	// store (an S3 bucket), or nil for the local disk. A change of
	// storage applies from the next broadcast.
	Remote func() hls.Remote
	// ReconnectGrace is how long a broadcast whose publisher dropped
	// without a word stays live for it to come back (3 s). OBS reconnects
	// within seconds of a network blip; viewers' buffers hold longer.
	ReconnectGrace time.Duration
}

// Pipeline runs a broadcast for accepted publishers. It implements
// ingest.Handler.
//
// A publish with the stream key always gets in: while a broadcast goes
// on, the new publisher takes it over and the old one is disconnected.
// That is what a streamer needs when OBS reconnects after a network blip
// while the server still holds the old, silent connection, or when the
// stream moves to another machine. The broadcast continues: the same
// playlists, a new ffmpeg run after an EXT-X-DISCONTINUITY. It ends when
// its last publisher has left and nobody took over.
type Pipeline struct {
	log  *slog.Logger
	deps Deps
	// wg counts the watchers of running transcoders.
	wg sync.WaitGroup

	// mu guards the fields below and serialises the start and end of
	// broadcasts.
	mu sync.Mutex
	// live is the session of the publisher sending now, nil while nobody
	// is. Publish sets it, the session's Close clears it, Health reads it.
	live *session
	// current is the broadcast going on, nil while offline.
	current *broadcast
}

// broadcast is one broadcast: from its first publish until its last
// session has closed with no publisher live.
type broadcast struct {
	b *hls.Broadcast
	// video are the broadcast's settings, fixed when it started: changes
	// apply to the next one.
	video core.VideoSettings
	// sessions counts the sessions still closing or sending, and joined
	// is closed when one more joins; both guarded by Pipeline.mu.
	sessions int
	joined   chan struct{}
}

// New returns a Pipeline.
func New(d Deps) *Pipeline {
	if d.ReconnectGrace == 0 {
		d.ReconnectGrace = 3 * time.Second
	}
	return &Pipeline{log: d.Logger, deps: d}
}

// Wait returns when every broadcast's watcher has returned: after the
// ingest server has closed every session.
func (p *Pipeline) Wait() { p.wg.Wait() }

// Publish starts a broadcast, or hands the one going on to a new
// publisher.
func (p *Pipeline) Publish(pub ingest.Publish) (ingest.Session, error) {
	who := core.Broadcaster{RemoteAddr: pub.RemoteAddr, Time: pub.Time}
	log := p.log.With("remote", pub.RemoteAddr)
	p.mu.Lock()
	bc, old := p.current, p.live
	if bc == nil {
		if err := p.deps.Stream.Begin(who); err != nil {
			p.mu.Unlock()
			return nil, err
		}
		video := p.deps.Settings.Get().Video
		opts := hls.Options{
			PlaylistSegments: video.PlaylistSegments,
			Bandwidths:       bandwidths(transcodeVariants(video.Variants)),
		}
		if p.deps.Remote != nil {
			opts.Remote = p.deps.Remote()
		}
		bc = &broadcast{video: video, b: p.deps.Packager.Begin(context.Background(), opts)}
		p.current = bc
		log.Info("broadcast started", "variants", len(video.Variants), "storage", storageName(opts.Remote))
	} else {
		p.deps.Stream.Replace(who)
		close(bc.joined)
		log.Info("publisher took over the broadcast")
	}
	bc.joined = make(chan struct{})
	bc.sessions++
	stats := pub.Stats
	if stats == nil {
		stats = func() ingest.Stats { return ingest.Stats{} }
	}
	s := &session{p: p, log: log, bc: bc, stats: stats, started: pub.Time, kick: pub.Kick}
	s.t = p.startTranscoder(log, bc)
	p.live = s
	p.mu.Unlock()

	if old != nil {
		old.log.Warn("disconnecting the publisher: a new publish with the stream key took over the broadcast", "new_remote", pub.RemoteAddr)
		old.kick()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		<-s.t.Done()
		if s.t.Err() != nil {
			log.Error("disconnecting the publisher: the stream cannot be transcoded", "err", s.t.Err())
			pub.Kick()
		}
	}()
	return s, nil
}

// startTranscoder starts the ffmpeg session of a publisher of bc.
func (p *Pipeline) startTranscoder(log *slog.Logger, bc *broadcast) *transcode.Session {
	return transcode.Start(transcode.Deps{
		Logger:  log,
		Program: p.deps.FFmpeg,
		Redact:  p.deps.Packager.Redact,
		Args: func(hasAudio bool) []string {
			// The encoder's metadata arrives before its first key frame,
			// which is when ffmpeg starts.
			var src core.StreamDetails
			if br := p.deps.Stream.Status().Broadcaster; br != nil {
				src = br.StreamDetails
			}
			// Renditions that would come out the same from this source
			// are made once.
			variants := transcode.Effective(transcodeVariants(bc.video.Variants), src.Width, src.Height)
			bc.b.SetBandwidths(bandwidths(variants))
			return transcode.Args(transcode.Job{
				Codec:           bc.video.Codec,
				Variants:        variants,
				SegmentSeconds:  bc.video.SegmentSeconds,
				HasAudio:        hasAudio,
				OutputURL:       bc.b.NextRunURL(),
				SourceVideoKbps: src.VideoBitrate,
				SourceAudioKbps: src.AudioBitrate,
				// The packager hands the stills to the thumbnail.
				ThumbnailSeconds: thumbnailSeconds,
			})
		},
	})
}

// thumbnailSeconds is how often ffmpeg sends a still of the stream, the
// poster of /thumbnail.jpg (Owncast's interval).
const thumbnailSeconds = 5

// Disconnect kicks the live publisher off, ending the broadcast (Owncast's
// POST /api/admin/disconnect); it reports whether anyone was live.
func (p *Pipeline) Disconnect() bool {
	p.mu.Lock()
	s := p.live
	p.mu.Unlock()
	if s == nil {
		return false
	}
	s.log.Info("disconnecting the publisher, as the admin asked")
	s.kick()
	return true
}

// staleProgress is when ffmpeg's last report is too old to stand for its
// speed now.
const staleProgress = 5 * time.Second

// Health reports how the live broadcast is doing, with warnings for the
// admin; Online is false while nobody is publishing. It is cheap, and safe
// from any goroutine.
func (p *Pipeline) Health() core.StreamHealth {
	now := time.Now()
	p.mu.Lock()
	s := p.live
	p.mu.Unlock()
	h := core.StreamHealth{UpdatedAt: now}
	if s == nil {
		h.Warnings = core.HealthWarnings(h, core.HealthTargets{})
		return h
	}
	in := s.stats()
	pr := s.t.Progress()
	h.Online = true
	h.IngestBitrateKbps = in.Bitrate
	h.VideoBitrateKbps = in.VideoBitrate
	h.IngestFramerate = in.Framerate
	h.KeyframeIntervalSeconds = in.KeyframeInterval.Seconds()
	h.LastFrameAgeSeconds = in.LastFrameAge.Seconds()

	reported := pr.UpdatedAt
	if reported.IsZero() {
		reported = s.started
	}
	age := max(now.Sub(reported), 0)
	h.TranscoderProgressAgeSeconds = age.Seconds()
	if age < staleProgress {
		h.TranscoderSpeed, h.TranscoderFramerate = pr.Speed, pr.FPS
	}
	h.TranscoderOutTimeSeconds = pr.OutTime.Seconds()
	h.TranscoderRestarts = max(pr.Run-1, 0)
	h.DroppedFrames, h.DuplicatedFrames, h.SkippedFrames = pr.DropFrames, pr.DupFrames, pr.SkippedFrames

	want := core.HealthTargets{KeyframeIntervalSeconds: float64(s.bc.video.SegmentSeconds)}
	if in.Full() {
		if br := p.deps.Stream.Status().Broadcaster; br != nil {
			want.Framerate = br.StreamDetails.FrameRate
		}
	}
	h.Warnings = core.HealthWarnings(h, want)
	return h
}

func storageName(r hls.Remote) string {
	if r == nil {
		return "local"
	}
	return "remote"
}

// bandwidths are the peak bit rates of the transcoded variants, for the
// master playlist (RFC 8216 4.3.4.2); ffmpeg's own estimate is kept for
// passthrough, which only the publisher's encoder knows.
func bandwidths(vs []transcode.Variant) []int {
	out := make([]int, len(vs))
	for i, v := range vs {
		if v.VideoPassthrough {
			continue
		}
		audio := v.AudioBitrate
		if v.AudioPassthrough {
			audio = 160
		}
		out[i] = (v.VideoBitrate*11/10 + audio) * 1000
	}
	return out
}

type session struct {
	p   *Pipeline
	log *slog.Logger
	t   *transcode.Session
	bc  *broadcast
	// stats measures what the publisher sends.
	stats   func() ingest.Stats
	started time.Time
	// kick disconnects the publisher.
	kick func()
}

func (s *session) Metadata(d ingest.Details) { s.p.deps.Stream.SetDetails(streamDetails(d)) }

func (s *session) WriteTag(t flv.Tag) { s.t.WriteTag(t) }

// Close lets ffmpeg finish the last segment. Then, unless another
// publisher has taken over, it closes the playlists and only then reports
// the stream offline; a publisher that dropped without a word gets
// ReconnectGrace to come back first.
func (s *session) Close(how ingest.Leave) {
	p := s.p
	p.mu.Lock()
	if p.live == s {
		// The publisher has gone: there is nothing left to judge.
		p.live = nil
	}
	p.mu.Unlock()
	if err := s.t.Close(); err != nil {
		s.log.Warn("transcoder ended with an error", "err", err)
	}
	bc := s.bc
	p.mu.Lock()
	bc.sessions--
	joined := bc.joined
	last := bc.sessions == 0
	p.mu.Unlock()
	if !last {
		s.log.Info("publisher left; the broadcast goes on")
		return
	}
	if how == ingest.Dropped && s.t.Err() == nil {
		s.log.Info("publisher dropped; waiting for it to reconnect", "grace", p.deps.ReconnectGrace)
		t := time.NewTimer(p.deps.ReconnectGrace)
		select {
		case <-joined:
			t.Stop()
			s.log.Info("publisher left; the broadcast goes on")
			return
		case <-t.C:
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if bc.sessions > 0 {
		s.log.Info("publisher left; the broadcast goes on")
		return
	}
	p.current = nil
	bc.b.End(context.Background())
	p.deps.Stream.End()
	s.log.Info("broadcast ended")
}
