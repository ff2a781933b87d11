package transcode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/starling-live/starling/video/flv"
)

// Policy tunes the supervisor. Zero fields take the defaults in parentheses.
type Policy struct {
	// Drain is how long ffmpeg may take to finish on its own once its
	// input has ended, before it gets SIGINT (3 s).
	Drain time.Duration
	// Grace is how long ffmpeg may take to exit after SIGINT before it is
	// killed (5 s).
	Grace time.Duration
	// Stall is how long a write to ffmpeg's input may block before ffmpeg
	// is taken for hung and restarted (10 s).
	Stall time.Duration
	// Backoff is the pause before the first restart, doubled after each
	// quick failure up to MaxBackoff (0.5 s, 8 s).
	Backoff, MaxBackoff time.Duration
	// MaxFailures quick failures in a row, each a run shorter than
	// StableAfter, make the supervisor give up (5, 15 s).
	MaxFailures int
	StableAfter time.Duration
	// QueueLength is how many tags may wait between the publisher and
	// ffmpeg (1024, about 12 s of 30 fps video with audio). When the queue
	// is full, tags are dropped up to the next key frame rather than
	// stalling the publisher.
	QueueLength int
}

func (p Policy) withDefaults() Policy {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&p.Drain, 3*time.Second)
	def(&p.Grace, 5*time.Second)
	def(&p.Stall, 10*time.Second)
	def(&p.Backoff, 500*time.Millisecond)
	def(&p.MaxBackoff, 8*time.Second)
	def(&p.StableAfter, 15*time.Second)
	if p.MaxFailures == 0 {
		p.MaxFailures = 5
	}
	if p.QueueLength == 0 {
		p.QueueLength = 1024
	}
	return p
}

// Deps are what a Session needs.
type Deps struct {
	Logger *slog.Logger
	// Program is the ffmpeg executable.
	Program string
	// Args returns the arguments of the next run, given whether the
	// publisher sends audio.
	Args func(hasAudio bool) []string
	// Redact hides the secrets of the arguments (the packager's token) in
	// what is logged of them and of ffmpeg's output; nil logs them as
	// they are.
	Redact func(string) string
	Policy Policy
}

// Session feeds one publisher's stream to ffmpeg for as long as the
// publisher is connected, restarting ffmpeg if it dies.
type Session struct {
	log    *slog.Logger
	deps   Deps
	policy Policy

	// in carries tags from WriteTag to the run loop.
	in chan flv.Tag
	// closing is closed by Close: the publisher has left.
	closing   chan struct{}
	closeOnce sync.Once
	// done is closed when the run loop has returned; err is set before.
	done chan struct{}
	err  error

	// dropping and dropped belong to the goroutine calling WriteTag;
	// skipped is the video frames it dropped, read by Progress.
	dropping bool
	dropped  int
	skipped  atomic.Int64

	// mu guards the decoder configuration a new ffmpeg run needs before
	// its first frame: the first metadata and the latest sequence headers.
	mu                     sync.Mutex
	meta, avcConf, aacConf *flv.Tag

	// pmu guards the current run's number and progress, which runOnce
	// replaces at each start, and the frame counts of the runs before.
	pmu                  sync.Mutex
	runs                 int
	progress             *progressMeter
	pastDup, pastDropped int64
}

// Start begins a session. ffmpeg starts at the first key frame.
func Start(d Deps) *Session {
	p := d.Policy.withDefaults()
	s := &Session{
		log:     d.Logger,
		deps:    d,
		policy:  p,
		in:      make(chan flv.Tag, p.QueueLength),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	go s.run()
	return s
}

// WriteTag queues a tag for ffmpeg without blocking. Call it from one
// goroutine at a time (the publisher's connection).
func (s *Session) WriteTag(t flv.Tag) {
	switch {
	case t.Type == flv.TagScript:
		// Only the first onMetaData goes to ffmpeg, at time 0: ffmpeg 5.1
		// turns later ones into a bogus subtitle stream that breaks the
		// HLS muxer (GStreamer repeats it every few seconds).
		s.mu.Lock()
		if s.meta == nil {
			t.Timestamp = 0
			s.meta = &t
		}
		s.mu.Unlock()
		return
	case t.IsSequenceHeader():
		s.mu.Lock()
		if t.Type == flv.TagVideo {
			s.avcConf = &t
		} else {
			s.aacConf = &t
		}
		s.mu.Unlock()
	}
	if s.dropping && !t.IsKeyframe() {
		s.drop(t)
		return
	}
	select {
	case s.in <- t:
		if s.dropping {
			s.log.Warn("ffmpeg caught up with the stream", "dropped_tags", s.dropped)
			s.dropping, s.dropped = false, 0
		}
	case <-s.closing:
	default:
		if !s.dropping {
			s.log.Warn("ffmpeg is not keeping up with the publisher: dropping frames up to the next key frame; lower the variants' resolution or CPU usage level")
		}
		s.dropping = true
		s.drop(t)
	}
}

func (s *Session) drop(t flv.Tag) {
	s.dropped++
	if t.Type == flv.TagVideo {
		s.skipped.Add(1)
	}
}

// Progress reports how ffmpeg is doing; safe from any goroutine.
func (s *Session) Progress() Progress {
	s.pmu.Lock()
	run, pm, dup, dropped := s.runs, s.progress, s.pastDup, s.pastDropped
	s.pmu.Unlock()
	var p Progress
	if pm != nil {
		p = pm.progress()
	}
	p.Run = run
	p.DupFrames += dup
	p.DropFrames += dropped
	p.SkippedFrames = s.skipped.Load()
	return p
}

// newRun makes pm the progress of run n, keeping the frame counts of
// the run before.
func (s *Session) newRun(n int, pm *progressMeter) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if s.progress != nil {
		last := s.progress.progress()
		s.pastDup += last.DupFrames
		s.pastDropped += last.DropFrames
	}
	s.runs, s.progress = n, pm
}

// Done is closed when the session has ended: after Close, or when ffmpeg
// failed too often (see Err).
func (s *Session) Done() <-chan struct{} { return s.done }

// Err says why the session gave up; nil after a normal end.
func (s *Session) Err() error {
	<-s.done
	return s.err
}

// Close ends the session once the publisher has left: ffmpeg gets the rest
// of the queue, then end of input, then SIGINT, so that it writes its last
// segment and playlist. Close waits for ffmpeg to exit.
func (s *Session) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	return s.Err()
}

func (s *Session) redact(v string) string {
	if s.deps.Redact == nil {
		return v
	}
	return s.deps.Redact(v)
}

func (s *Session) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

func (s *Session) run() {
	defer close(s.done)
	p := s.policy
	backoff, failures := p.Backoff, 0
	for n := 1; ; n++ {
		first, ok := s.awaitKeyframe()
		if !ok {
			return
		}
		started := time.Now()
		err := s.runOnce(n, first)
		if s.isClosing() {
			return
		}
		if time.Since(started) >= p.StableAfter {
			backoff, failures = p.Backoff, 0
		}
		failures++
		if err == nil {
			err = errors.New("ffmpeg exited on its own although its input had not ended")
		}
		if failures >= p.MaxFailures {
			s.err = fmt.Errorf("ffmpeg failed %d times in a row, giving up (check the video settings and that ffmpeg works): %w", failures, err)
			s.log.Error("transcoder gave up", "err", s.err)
			return
		}
		s.log.Warn("ffmpeg exited while the publisher is live; restarting it", "run", n, "err", err, "restart_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-s.closing:
			t.Stop()
			return
		}
		backoff = min(backoff*2, p.MaxBackoff)
		// What queued up meanwhile is stale: start again from the live edge.
		s.discardQueue()
	}
}

// awaitKeyframe drops tags until a video key frame, where a decoder can
// start. It returns false if the session closes first.
func (s *Session) awaitKeyframe() (flv.Tag, bool) {
	for {
		select {
		case t := <-s.in:
			if t.IsKeyframe() && !t.IsSequenceHeader() {
				return t, true
			}
		case <-s.closing:
			return flv.Tag{}, false
		}
	}
}

func (s *Session) discardQueue() {
	for {
		select {
		case <-s.in:
		default:
			return
		}
	}
}

// runOnce runs ffmpeg once, feeding it first (a key frame) after the
// cached decoder configuration, then the queue, until ffmpeg exits.
func (s *Session) runOnce(n int, first flv.Tag) error {
	s.mu.Lock()
	var prelude []flv.Tag
	for _, t := range []*flv.Tag{s.meta, s.avcConf, s.aacConf} {
		if t != nil {
			prelude = append(prelude, *t)
		}
	}
	hasAudio := s.aacConf != nil
	s.mu.Unlock()

	args := s.deps.Args(hasAudio)
	log := s.log.With("run", n)
	log.Info("starting ffmpeg", "program", s.deps.Program, "args", s.redact(strings.Join(args, " ")))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, s.deps.Program, args...)
	// Its own process group, so that signals from the terminal reach the
	// server alone, and the server decides when ffmpeg stops.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = s.policy.Grace
	// Standard output carries the -progress report (see Args); exec's
	// copying goroutine writes it, and Wait waits for that.
	progress := newProgressMeter()
	s.newRun(n, progress)
	stderr := newLineLog(log.With("source", "ffmpeg"), s.redact)
	cmd.Stdout, cmd.Stderr = progress, stderr
	// An os.Pipe rather than cmd.StdinPipe: its write end takes deadlines,
	// which is how a hung ffmpeg is told from a slow one.
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdin = pr
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return fmt.Errorf("start %s: %w (is ffmpeg installed? set its path with --ffmpeg)", s.deps.Program, err)
	}
	pr.Close()
	started := time.Now()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	wait := func() error {
		err := exitError(<-exited, stderr)
		log.Info("ffmpeg exited", "err", err, "ran_for", time.Since(started).Round(time.Millisecond))
		return err
	}

	// buf holds the tags of one write, reused from write to write.
	var buf []byte
	// write writes t and, if gather, the tags already queued after it: the
	// publisher's are read a few at a time (ingest gathers its reads),
	// and each write wakes ffmpeg.
	write := func(t flv.Tag, gather bool) error {
		var err error
		if buf, err = flv.AppendTag(buf[:0], t); err != nil {
			return err
		}
	more:
		for gather && len(buf) < maxWrite {
			select {
			case t := <-s.in:
				if buf, err = flv.AppendTag(buf, t); err != nil {
					return err
				}
			default:
				break more
			}
		}
		pw.SetWriteDeadline(time.Now().Add(s.policy.Stall))
		_, err = pw.Write(buf)
		return err
	}
	writeQueued := func(t flv.Tag) error { return write(t, true) }
	_, werr := pw.Write(flv.Header(hasAudio, true))
	// The prelude and the first tag go before anything queued.
	for _, t := range append(prelude, first) {
		if werr == nil {
			werr = write(t, false)
		}
	}
	for werr == nil {
		select {
		case t := <-s.in:
			werr = writeQueued(t)
		case err := <-exited:
			exited <- err
			pw.Close()
			return wait()
		case <-s.closing:
			s.finish(writeQueued)
			pw.Close()
			t := time.NewTimer(s.policy.Drain)
			select {
			case err := <-exited:
				t.Stop()
				exited <- err
			case <-t.C:
				cancel() // SIGINT; killed after Grace
			}
			return wait()
		}
	}
	if errors.Is(werr, os.ErrDeadlineExceeded) {
		log.Warn("ffmpeg has not read its input for a while; stopping it", "stalled_for", s.policy.Stall)
	}
	pw.Close()
	cancel()
	return wait()
}

// maxWrite is where write stops gathering tags: a pipe holds 64 KiB.
const maxWrite = 256 << 10

// finish hands ffmpeg what is still queued once the publisher has left.
func (s *Session) finish(write func(flv.Tag) error) {
	for {
		select {
		case t := <-s.in:
			if write(t) != nil {
				return
			}
		default:
			return
		}
	}
}

// exitError describes how ffmpeg ended, with its last words.
func exitError(err error, stderr *lineLog) error {
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			err = fmt.Errorf("ffmpeg ended on signal %d (%v)", int(ws.Signal()), ws.Signal())
		} else {
			err = fmt.Errorf("ffmpeg exited with code %d", ee.ExitCode())
		}
	}
	if last := stderr.Last(); last != "" {
		err = fmt.Errorf("%w: %s", err, last)
	}
	return err
}
