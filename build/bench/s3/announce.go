package main

// This file is shared with the driver of the old design (before_main.go):
// it must build against the tree at the commit before the seam too. It
// uses only what both trees have: tracker.New and its Deps,
// tracker.InfoHash and hls.Rendition.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/starling-live/starling/video/hls"
	"github.com/starling-live/starling/video/tracker"
)

// swarmID is the swarm id the simulated viewers derive info hashes with.
const swarmID = "starling-bench"

// trackerConfig shapes the tracker scenarios, in both designs.
type trackerConfig struct {
	kbps    []int
	segDur  time.Duration
	peers   int
	every   time.Duration // each peer's announce interval
	settle  time.Duration // after the storage turns slow, before measuring
	window  time.Duration
	timeout time.Duration // an announce not answered within it is lost
	delay   time.Duration // the slow storage's delay per Put
}

func (c *trackerConfig) flags(fs *flag.FlagSet) {
	fs.Func("kbps", "bit rate of each rendition, kbit/s, comma-separated (segment size = rate x -segdur)", func(s string) error {
		c.kbps = nil
		for _, f := range strings.Split(s, ",") {
			k, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || k <= 0 {
				return fmt.Errorf("bad bit rate %q", f)
			}
			c.kbps = append(c.kbps, k)
		}
		return nil
	})
	fs.DurationVar(&c.segDur, "segdur", 2*time.Second, "segment length; the tracker scenarios publish in real time")
	fs.IntVar(&c.peers, "peers", 100, "simulated viewers announcing to the tracker")
	fs.DurationVar(&c.every, "every", 2*time.Second, "announce interval of each viewer")
	fs.DurationVar(&c.settle, "settle", 10*time.Second, "wait after the storage turns slow, before measuring, so that uploads pile up")
	fs.DurationVar(&c.window, "window", 30*time.Second, "measurement window of each tracker scenario")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "an announce (or ffmpeg PUT) not answered within this counts as lost")
	fs.DurationVar(&c.delay, "delay", 5*time.Second, "how long the slow disk takes per write")
}

// args passes c on to the other design's driver.
func (c *trackerConfig) args() []string {
	k := make([]string, len(c.kbps))
	for i, v := range c.kbps {
		k[i] = strconv.Itoa(v)
	}
	return []string{"-kbps", strings.Join(k, ","), "-segdur", c.segDur.String(), "-peers", strconv.Itoa(c.peers),
		"-every", c.every.String(), "-settle", c.settle.String(), "-window", c.window.String(),
		"-timeout", c.timeout.String(), "-delay", c.delay.String()}
}

// target is a packager as one design builds it, with a broadcast begun.
type target struct {
	runURL  string
	allowed func(infoHash string) bool
	// slow makes the storage slow (or failing), as the scenario says.
	slow func()
}

// trackerResult is what one scenario measured.
type trackerResult struct {
	Scenario  string  `json:"scenario"`
	Announces summary `json:"announces"` // round trips
	Failures  int     `json:"failures"`  // answered with a failure reason
	PerSecond float64 `json:"perSecond"` // announces sent
	// Puts are ffmpeg's writes of a segment and its playlist under way
	// in the window; Expected is about how many there would be in real
	// time.
	Puts     summary `json:"puts"`
	Expected int     `json:"expected"`
	// Segments are segment complete -> published, in the window (the new
	// design only).
	Segments summary `json:"segments"`
	Storage  string  `json:"storage,omitempty"`
	// Stall is the longest the first rendition's playlist went without a
	// new segment, from the storage turning slow to the window's end (the
	// new design only); viewers stall if it exceeds their buffer.
	Stall time.Duration `json:"stall"`
	// slowAt is when the storage turned slow; from and to bound the
	// window.
	slowAt, from, to time.Time
}

// runTracker goes live on t in real time, connects the viewers, makes the
// storage slow, waits c.settle, then measures announce round trips for
// c.window while ffmpeg keeps publishing.
func runTracker(name string, c trackerConfig, t target) (trackerResult, *fakeFFmpeg, error) {
	res := trackerResult{Scenario: name}
	log := slog.New(slog.DiscardHandler)
	tr := tracker.New(tracker.Deps{
		Logger:  log,
		Allowed: t.allowed,
		// Every socket is its own viewer for the per-address limits, as
		// viewers on their own addresses are.
		ClientIP:    func(r *http.Request) string { return r.RemoteAddr },
		CheckOrigin: func(*http.Request) bool { return true },
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr.Start(ctx)
	defer tr.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, nil, err
	}
	srv := &http.Server{Handler: tr, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	ff := newFakeFFmpeg(t.runURL, c.kbps, c.segDur)
	defer ff.close()
	if err := ff.master(ctx); err != nil {
		return res, nil, err
	}
	ffDone := make(chan error, 1)
	go func() { ffDone <- ff.paced(ctx, c.segDur, 0, 0) }()
	defer func() { cancel(); <-ffDone }()

	w, h := rendition(0)
	ih := tracker.InfoHash(swarmID, hls.Rendition{Bandwidth: c.kbps[0] * 1000, Codecs: "avc1.64001f,mp4a.40.2", Width: w, Height: h})
	deadline := time.Now().Add(60 * time.Second)
	for !t.allowed(ih) {
		if time.Now().After(deadline) {
			return res, nil, fmt.Errorf("%s: the stream was not live within 60 s", name)
		}
		time.Sleep(20 * time.Millisecond)
	}

	st := &peerStats{timeout: c.timeout}
	url := "ws://" + ln.Addr().String() + "/"
	var peers []*peer
	var wg sync.WaitGroup
	defer func() {
		for _, p := range peers {
			p.ws.Close()
		}
		wg.Wait()
	}()
	for i := range c.peers {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			return res, nil, fmt.Errorf("viewer %d: %w", i, err)
		}
		p := &peer{ws: ws, id: fmt.Sprintf("-PM0203-%012d", i), ih: ih, st: st}
		peers = append(peers, p)
		wg.Go(p.read)
		p.announce("started")
	}
	// Everyone in the swarm before the storage turns slow.
	if !st.waitIdle(c.timeout) {
		return res, nil, fmt.Errorf("%s: the first announces had no answer within %s", name, c.timeout)
	}
	t.slow()
	res.slowAt = time.Now()
	time.Sleep(c.settle)

	st.reset()
	stop := make(chan struct{})
	var senders sync.WaitGroup
	res.from = time.Now()
	for _, p := range peers {
		senders.Go(func() {
			tick := time.NewTimer(rand.N(c.every))
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					p.announce("")
					tick.Reset(c.every)
				}
			}
		})
	}
	time.Sleep(c.window)
	close(stop)
	senders.Wait()
	res.to = time.Now()
	st.waitIdle(c.timeout)

	res.Announces = st.summary()
	res.Failures = int(st.failures.Load())
	res.PerSecond = float64(res.Announces.N) / c.window.Seconds()
	res.Puts = summarize(ff.putsDuring(res.from, res.to))
	res.Expected = int(c.window/c.segDur) * len(c.kbps)
	return res, ff, nil
}

// peer is a simulated viewer: it announces without offers (the tracker
// does the same work to admit it; relaying offers is not what this
// measures) and matches each answer to its oldest unanswered announce,
// since the tracker answers a socket's messages in order.
type peer struct {
	ws     *websocket.Conn
	id, ih string
	st     *peerStats

	mu      sync.Mutex // guards pending and writes
	pending []time.Time
}

func (p *peer) announce(event string) {
	m := map[string]any{"action": "announce", "info_hash": p.ih, "peer_id": p.id, "numwant": 0, "offers": []any{}, "uploaded": 0, "downloaded": 0}
	if event != "" {
		m["event"] = event
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = append(p.pending, time.Now())
	p.st.outstanding.Add(1)
	p.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := p.ws.WriteJSON(m); err != nil {
		p.pending = p.pending[:len(p.pending)-1]
		p.st.outstanding.Add(-1)
		p.st.failures.Add(1)
	}
}

func (p *peer) read() {
	for {
		_, data, err := p.ws.ReadMessage()
		if err != nil {
			return
		}
		var m struct {
			Interval int    `json:"interval"`
			Failure  string `json:"failure reason"`
		}
		if json.Unmarshal(data, &m) != nil || (m.Interval == 0 && m.Failure == "") {
			continue
		}
		now := time.Now()
		p.mu.Lock()
		if len(p.pending) == 0 {
			p.mu.Unlock()
			continue
		}
		sent := p.pending[0]
		p.pending = p.pending[1:]
		p.mu.Unlock()
		if m.Failure != "" {
			p.st.failures.Add(1)
		}
		p.st.record(now.Sub(sent))
	}
}

type peerStats struct {
	timeout     time.Duration
	outstanding atomic.Int64
	failures    atomic.Int64

	mu  sync.Mutex
	lat []time.Duration // guarded by mu
}

func (s *peerStats) record(d time.Duration) {
	s.outstanding.Add(-1)
	if d > s.timeout {
		d = lost
	}
	s.mu.Lock()
	s.lat = append(s.lat, d)
	s.mu.Unlock()
}

func (s *peerStats) reset() {
	s.mu.Lock()
	s.lat = nil
	s.mu.Unlock()
	s.failures.Store(0)
}

// waitIdle waits until every announce has been answered, at most d; it
// reports whether they were.
func (s *peerStats) waitIdle(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for s.outstanding.Load() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// summary counts the announces still unanswered as lost.
func (s *peerStats) summary() summary {
	s.mu.Lock()
	ds := append([]time.Duration(nil), s.lat...)
	s.mu.Unlock()
	for range s.outstanding.Load() {
		ds = append(ds, lost)
	}
	return summarize(ds)
}
