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
	SetDetails(core.StreamDetails)
	Status() core.Status
	End()
}

type settingsSource interface{ Get() *core.Settings }

type packager interface {
	Begin(context.Context, hls.Options) *hls.Broadcast
}

// Deps are what a Pipeline needs.
type Deps struct {
	Logger   *slog.Logger
	Stream   streamState
	Settings settingsSource
	Packager packager
	// FFmpeg is the ffmpeg executable.
	FFmpeg string
}

// Pipeline starts a broadcast for each accepted publisher. It implements
// ingest.Handler.
type Pipeline struct {
	log  *slog.Logger
	deps Deps
	// wg counts the watchers of running transcoders.
	wg sync.WaitGroup

	// mu guards live: the session of the publisher sending now, nil while
	// nobody is. Publish sets it, the session's Close clears it, Health
	// reads it.
	mu   sync.Mutex
	live *session
}

// New returns a Pipeline.
func New(d Deps) *Pipeline { return &Pipeline{log: d.Logger, deps: d} }

// Wait returns when every broadcast's watcher has returned: after the
// ingest server has closed every session.
func (p *Pipeline) Wait() { p.wg.Wait() }

// Publish starts a broadcast, or refuses a publisher while one is live.
func (p *Pipeline) Publish(pub ingest.Publish) (ingest.Session, error) {
	if err := p.deps.Stream.Begin(core.Broadcaster{RemoteAddr: pub.RemoteAddr, Time: pub.Time}); err != nil {
		return nil, err
	}
	// The settings of a broadcast are fixed when it starts; changes apply
	// to the next one.
	video := p.deps.Settings.Get().Video
	b := p.deps.Packager.Begin(context.Background(), hls.Options{
		PlaylistSegments: video.PlaylistSegments,
		Bandwidths:       bandwidths(video.Variants),
	})
	log := p.log.With("remote", pub.RemoteAddr)
	t := transcode.Start(transcode.Deps{
		Logger:  log,
		Program: p.deps.FFmpeg,
		Args: func(hasAudio bool) []string {
			// The encoder's metadata arrives before its first key frame,
			// which is when ffmpeg starts.
			var src core.StreamDetails
			if br := p.deps.Stream.Status().Broadcaster; br != nil {
				src = br.StreamDetails
			}
			return transcode.Args(transcode.Job{
				Variants:        video.Variants,
				SegmentSeconds:  video.SegmentSeconds,
				HasAudio:        hasAudio,
				OutputURL:       b.NextRunURL(),
				SourceVideoKbps: src.VideoBitrate,
				SourceAudioKbps: src.AudioBitrate,
			})
		},
	})
	log.Info("broadcast started", "variants", len(video.Variants))
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		<-t.Done()
		if t.Err() != nil {
			log.Error("disconnecting the publisher: the stream cannot be transcoded", "err", t.Err())
			pub.Kick()
		}
	}()
	stats := pub.Stats
	if stats == nil {
		stats = func() ingest.Stats { return ingest.Stats{} }
	}
	s := &session{p: p, log: log, t: t, b: b, stats: stats, video: video, started: pub.Time}
	p.mu.Lock()
	p.live = s
	p.mu.Unlock()
	return s, nil
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

	want := core.HealthTargets{KeyframeIntervalSeconds: float64(s.video.SegmentSeconds)}
	if in.Full() {
		if br := p.deps.Stream.Status().Broadcaster; br != nil {
			want.Framerate = br.StreamDetails.FrameRate
		}
	}
	h.Warnings = core.HealthWarnings(h, want)
	return h
}

// bandwidths are the peak bit rates of the transcoded variants, for the
// master playlist (RFC 8216 4.3.4.2); ffmpeg's own estimate is kept for
// passthrough, which only the publisher's encoder knows.
func bandwidths(vs []core.Variant) []int {
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
	b   *hls.Broadcast
	// stats measures what the publisher sends.
	stats func() ingest.Stats
	// video are the broadcast's settings, fixed when it started.
	video   core.VideoSettings
	started time.Time
}

func (s *session) Metadata(d core.StreamDetails) { s.p.deps.Stream.SetDetails(d) }

func (s *session) WriteTag(t flv.Tag) { s.t.WriteTag(t) }

// Close lets ffmpeg finish the last segment, closes the playlists, and
// only then reports the stream offline.
func (s *session) Close() {
	// The publisher has gone: there is nothing left to judge.
	s.p.mu.Lock()
	if s.p.live == s {
		s.p.live = nil
	}
	s.p.mu.Unlock()
	if err := s.t.Close(); err != nil {
		s.log.Warn("transcoder ended with an error", "err", err)
	}
	s.b.End(context.Background())
	s.p.deps.Stream.End()
	s.log.Info("broadcast ended")
}
