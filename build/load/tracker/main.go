// Command tracker loads Starling's embedded WebTorrent tracker with
// simulated viewers and reports what it holds: announces per second, the
// latency of announce replies, and the server's memory and CPU.
//
// It builds and starts Starling on loopback, publishes a small synthetic
// stream (passthrough, so ffmpeg costs little) so that the tracker accepts
// the stream's info hash, then connects -peers WebSocket clients, each from
// its own loopback address (127.1.0.1, 127.1.0.2, ...) as viewers on the
// Internet would, so that the per-address limits apply as in production.
// Every client announces with -offers fake WebRTC offers every -interval
// and answers the offers relayed to it, as browsers do.
//
//	go run ./build/load/tracker -peers 10000 -interval 10s -window 30s
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/grafov/m3u8"

	"github.com/starling-live/starling/build/benchkit"
	"github.com/starling-live/starling/video/hls"
	"github.com/starling-live/starling/video/tracker"
)

func main() {
	peers := flag.Int("peers", 10000, "simulated viewers")
	interval := flag.Duration("interval", 10*time.Second, "announce interval of each viewer while measuring")
	offers := flag.Int("offers", 5, "offers per announce (p2p-media-loader sends 5)")
	window := flag.Duration("window", 30*time.Second, "measurement window")
	ramp := flag.Int("ramp", 1000, "new connections per second while ramping up")
	flag.Parse()
	if err := run(*peers, *offers, *ramp, *interval, *window); err != nil {
		fmt.Fprintln(os.Stderr, "tracker load:", err)
		os.Exit(1)
	}
}

// A Chrome offer with two host candidates is about 700 bytes.
var fakeSDP = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n" + strings.Repeat("a=fake-attribute:0123456789abcdef\r\n", 18)

func run(n, offers, ramp int, interval, window time.Duration) error {
	tmp, bin, err := benchkit.Build("starling-tracker-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	srv, err := benchkit.Start(bin, tmp)
	if err != nil {
		return err
	}
	defer srv.Stop()
	web := srv.Web

	// A cheap live stream: its master playlist makes the info hash.
	if err := srv.Admin("/api/admin/config/video/streamoutputvariants",
		`{"value":[{"name":"source","videoPassthrough":true,"audioPassthrough":true}]}`); err != nil {
		return err
	}
	pub := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30",
		"-pix_fmt", "yuv420p", "-f", "flv", srv.RTMP+"/"+benchkit.StreamKey)
	if err := pub.Start(); err != nil {
		return err
	}
	defer func() { pub.Process.Signal(syscall.SIGINT); pub.Wait() }()
	ih, err := infoHash(srv)
	if err != nil {
		return err
	}
	fmt.Printf("stream live, info hash %q; connecting %d peers at %d/s\n", ih, n, ramp)

	ws := "ws" + strings.TrimPrefix(web, "http") + "/tracker"
	st := &stats{}
	clients := make([]*client, 0, n)
	var wg sync.WaitGroup
	defer func() {
		for _, c := range clients {
			c.ws.Close()
		}
		wg.Wait()
	}()
	start := time.Now()
	for i := range n {
		c, err := dial(ws, web, i, ih, offers, st)
		if err != nil {
			return fmt.Errorf("peer %d: %w", i, err)
		}
		clients = append(clients, c)
		wg.Add(1)
		go func() { defer wg.Done(); c.read() }()
		c.announce("started")
		if wait := time.Duration(i+1)*time.Second/time.Duration(ramp) - time.Since(start); wait > 0 {
			time.Sleep(wait)
		}
	}
	fmt.Printf("%d peers connected in %.1f s\n", n, time.Since(start).Seconds())

	// Steady state: each peer announces every interval, at a random phase.
	stop := make(chan struct{})
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTimer(rand.N(interval))
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					c.announce("")
					t.Reset(interval)
				}
			}
		}()
	}
	time.Sleep(interval) // every peer announced once in the new rhythm
	pid := srv.PID()
	cpu0, t0 := benchkit.CPUSeconds(pid), time.Now()
	st.reset()
	var rates []float64
	var rss []int64
	last := st.replies.Load()
	for time.Since(t0) < window {
		time.Sleep(time.Second)
		now := st.replies.Load()
		rates = append(rates, float64(now-last))
		last = now
		rss = append(rss, benchkit.RSS(pid))
	}
	cpu := (benchkit.CPUSeconds(pid) - cpu0) / time.Since(t0).Seconds()
	close(stop)
	status, _ := srv.Get("/api/admin/status", true)

	lat := st.latencies()
	slices.Sort(rates)
	slices.Sort(rss)
	fmt.Printf("\n%d peers, %d offers per announce, announcing every %s, %s window:\n", n, offers, interval, window)
	fmt.Printf("| announces/s (median of 1 s samples) | reply p50 | reply p99 | offers relayed/s | answers relayed/s | server RSS | RSS per peer | server CPU |\n|---|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %.0f | %.1f ms | %.1f ms | %.0f | %.0f | %.0f MB | %.1f KB | %.0f%% of a core |\n",
		rates[len(rates)/2], ms(pct(lat, 50)), ms(pct(lat, 99)),
		float64(st.offers.Load())/window.Seconds(), float64(st.answers.Load())/window.Seconds(),
		float64(rss[len(rss)/2])/(1<<20), float64(rss[len(rss)/2])/1024/float64(n), cpu*100)
	fmt.Printf("errors: %d failure replies, %d dropped sockets\n", st.failures.Load(), st.dropped.Load())
	var as struct {
		P2P struct{ Tracker tracker.Stats } `json:"p2p"`
	}
	json.Unmarshal(status, &as)
	fmt.Printf("tracker's own count: %+v\n", as.P2P.Tracker)
	return nil
}

type stats struct {
	replies, offers, answers, failures, dropped atomic.Int64
	mu                                          sync.Mutex
	lat                                         []time.Duration
}

func (s *stats) reset() {
	s.replies.Store(0)
	s.offers.Store(0)
	s.answers.Store(0)
	s.mu.Lock()
	s.lat = s.lat[:0]
	s.mu.Unlock()
}

func (s *stats) latency(d time.Duration) {
	s.mu.Lock()
	s.lat = append(s.lat, d)
	s.mu.Unlock()
}

func (s *stats) latencies() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.lat)
	slices.Sort(out)
	return out
}

type client struct {
	ws     *websocket.Conn
	id, ih string
	offers int
	st     *stats

	// wmu serialises writes (announces and answers come from two goroutines).
	wmu  sync.Mutex
	sent atomic.Int64 // unix nanos of the pending announce, 0 if none
	seq  int
}

func dial(url, origin string, i int, ih string, offers int, st *stats) (*client, error) {
	d := websocket.Dialer{
		NetDial: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 1, byte(i/250), byte(i%250+1))}}).Dial,
		// Small buffers, as a browser's socket holds little at a time.
		ReadBufferSize: 4096, WriteBufferSize: 4096,
	}
	ws, _, err := d.Dial(url, http.Header{"Origin": {origin}})
	if err != nil {
		return nil, err
	}
	return &client{ws: ws, id: fmt.Sprintf("-PM0203-%012d", i), ih: ih, offers: offers, st: st}, nil
}

func (c *client) send(v any) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if c.ws.WriteJSON(v) != nil {
		c.st.dropped.Add(1)
	}
}

func (c *client) announce(event string) {
	os := make([]map[string]any, c.offers)
	for i := range os {
		c.seq++
		os[i] = map[string]any{"offer_id": fmt.Sprintf("%s%07d", c.id[7:], c.seq%10_000_000), "offer": map[string]string{"type": "offer", "sdp": fakeSDP}}
	}
	m := map[string]any{"action": "announce", "info_hash": c.ih, "peer_id": c.id, "numwant": c.offers, "offers": os, "uploaded": 0, "downloaded": 0}
	if event != "" {
		m["event"] = event
	}
	c.sent.Store(time.Now().UnixNano())
	c.send(m)
}

func (c *client) read() {
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		var m struct {
			Interval int             `json:"interval"`
			Offer    json.RawMessage `json:"offer"`
			Answer   json.RawMessage `json:"answer"`
			OfferID  string          `json:"offer_id"`
			PeerID   string          `json:"peer_id"`
			Failure  string          `json:"failure reason"`
		}
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		switch {
		case m.Failure != "":
			c.st.failures.Add(1)
		case m.Interval > 0:
			c.st.replies.Add(1)
			if sent := c.sent.Swap(0); sent != 0 {
				c.st.latency(time.Duration(time.Now().UnixNano() - sent))
			}
		case m.Offer != nil:
			c.st.offers.Add(1)
			c.send(map[string]any{"action": "announce", "info_hash": c.ih, "peer_id": c.id, "to_peer_id": m.PeerID,
				"offer_id": m.OfferID, "answer": map[string]string{"type": "answer", "sdp": fakeSDP}})
		case m.Answer != nil:
			c.st.answers.Add(1)
		}
	}
}

// infoHash waits for the master playlist and derives the info hash of its
// first rendition, as the viewer page would.
func infoHash(srv *benchkit.Server) (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if b, ok := srv.Get("/hls/stream.m3u8", false); ok {
			var m m3u8.MasterPlaylist
			if err := m.DecodeFrom(bytes.NewReader(b), false); err != nil || len(m.Variants) == 0 {
				return "", fmt.Errorf("master playlist: %v", err)
			}
			v := m.Variants[0]
			r := hls.Rendition{Bandwidth: int(v.Bandwidth), Codecs: v.Codecs}
			fmt.Sscanf(v.Resolution, "%dx%d", &r.Width, &r.Height)
			return tracker.InfoHash("starling", r), nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", fmt.Errorf("no master playlist within 30 s")
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, len(d)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
