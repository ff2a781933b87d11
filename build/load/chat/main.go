// Command chat loads Starling's chat with simulated users and reports
// whether every message reaches every client, how late, and what the
// server spends on it.
//
// It builds and starts Starling on loopback, registers -clients users,
// each from its own loopback address as viewers on the Internet would,
// connects one WebSocket per user at -ramp a second and waits until all
// are connected and the server is quiet. It reads the server's memory,
// then for -duration sends -rate CHAT messages a second in all, each from
// a randomly chosen user that sent nothing in the last 600 ms (the server
// allows 2 a second per user). Each body carries a sequence number and its
// send time on this process's monotonic clock; every client's reader
// records the latency of each one it receives (docs/chat.md is the
// protocol).
//
//	go run ./build/load/chat -clients 5000 -rate 20 -duration 60s
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/starling-live/starling/build/benchkit"
)

type config struct {
	clients      int
	rate         float64
	duration     time.Duration
	ramp         int
	drain        time.Duration
	joinMessages bool
}

// minGap between two messages of one user keeps each under the server's
// 2 messages a second.
const minGap = 600 * time.Millisecond

func main() {
	var c config
	flag.IntVar(&c.clients, "clients", 1000, "simulated users, one WebSocket each")
	flag.Float64Var(&c.rate, "rate", 20, "CHAT messages a second, in all")
	flag.DurationVar(&c.duration, "duration", 60*time.Second, "how long to send")
	flag.IntVar(&c.ramp, "ramp", 250, "new connections a second while connecting")
	flag.DurationVar(&c.drain, "drain", 10*time.Second, "how long to wait for deliveries after the last message")
	flag.BoolVar(&c.joinMessages, "join-messages", true, "leave USER_JOINED/USER_PARTED messages on, as the server ships")
	flag.Parse()
	if c.clients < 1 || c.rate <= 0 || c.ramp < 1 {
		fmt.Fprintln(os.Stderr, "chat load: -clients, -rate and -ramp must be positive")
		os.Exit(2)
	}
	if c.rate > float64(c.clients)*float64(time.Second)/float64(minGap)*0.8 {
		fmt.Fprintf(os.Stderr, "chat load: %g messages a second from %d users would break the limit of 2 a second per user: use more clients or a lower rate\n", c.rate, c.clients)
		os.Exit(2)
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "chat load:", err)
		os.Exit(1)
	}
}

// summary is the one-line JSON the tool prints last.
type summary struct {
	Clients        int            `json:"clients"`
	Rate           float64        `json:"rate"`
	DurationS      float64        `json:"durationS"`
	Connected      int            `json:"connected"`
	ConnectFailed  int            `json:"connectFailed"`
	ConnectS       float64        `json:"connectS"`
	RegisterS      float64        `json:"registerS"`
	Register429    int64          `json:"register429"`
	Sent           int            `json:"sent"`
	SendFailed     int            `json:"sendFailed"`
	Stayed         int            `json:"stayed"`
	Expected       int64          `json:"expected"`
	Received       int64          `json:"received"`
	Delivery       float64        `json:"deliveryRatio"`
	Duplicates     int            `json:"duplicates"`
	P50ms          float64        `json:"p50ms"`
	P90ms          float64        `json:"p90ms"`
	P99ms          float64        `json:"p99ms"`
	MaxMs          float64        `json:"maxMs"`
	ToServerP50ms  float64        `json:"toServerP50ms"`
	ToServerP99ms  float64        `json:"toServerP99ms"`
	FromServerP50  float64        `json:"fromServerP50ms"`
	FromServerP99  float64        `json:"fromServerP99ms"`
	Dropped        int            `json:"dropped"`
	DropReasons    map[string]int `json:"dropReasons,omitempty"`
	Refusals       map[string]int `json:"refusals,omitempty"`
	BaselineRSSMB  float64        `json:"baselineRssMB"`
	IdleRSSMB      float64        `json:"idleRssMB"`
	IdleKBPerConn  float64        `json:"idleKBPerConn"`
	RunRSSMedianMB float64        `json:"runRssMedianMB"`
	RunRSSPeakMB   float64        `json:"runRssPeakMB"`
	ServerCPU      float64        `json:"serverCpuPct"`
	ToolCPU        float64        `json:"toolCpuPct"`
	// OthersCPU is what the rest of the machine used meanwhile, of
	// MachineCPU in all (percent of one core each).
	OthersCPU  float64 `json:"othersCpuPct"`
	MachineCPU float64 `json:"machineCpuPct"`
	Cores      int     `json:"cores"`
}

func run(c config) error {
	limit, err := benchkit.RaiseFileLimit(uint64(c.clients) + 256)
	if err != nil {
		return err
	}
	tmp, bin, err := benchkit.Build("starling-chat-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	srv, err := benchkit.Start(bin, tmp)
	if err != nil {
		return err
	}
	defer srv.Stop()
	pid := srv.PID()
	s := summary{Clients: c.clients, Rate: c.rate, DurationS: c.duration.Seconds()}
	fmt.Printf("Starling at %s (pid %d), open-file limit %d\n", srv.Web, pid, limit)
	if !c.joinMessages {
		if err := srv.Admin("/api/admin/config/chat/joinmessagesenabled", `{"value":false}`); err != nil {
			return err
		}
	}

	// Register everyone first, so that the connections are all the
	// memory measured after them.
	t := time.Now()
	tokens, limited, err := registerAll(srv.Web, c.clients)
	if err != nil {
		return err
	}
	s.RegisterS, s.Register429 = time.Since(t).Seconds(), limited
	fmt.Printf("registered %d users in %.1f s (%d answers 429)\n", c.clients, s.RegisterS, limited)
	time.Sleep(2 * time.Second)
	baseline := sampleRSS(pid)

	t0 := time.Now() // the clock of every latency
	var closing atomic.Bool
	clients, failed := connectAll(srv.Web, tokens, c.ramp, t0, &closing)
	defer func() {
		closing.Store(true)
		for _, cl := range clients {
			cl.ws.Close()
		}
		for _, cl := range clients {
			<-cl.done
		}
	}()
	s.Connected, s.ConnectFailed, s.ConnectS = len(clients), len(failed), time.Since(t0).Seconds()
	if len(failed) > 0 {
		fmt.Printf("%d connections failed, for example: %v\n", len(failed), failed[0])
	}
	notReady := waitReady(clients, 60*time.Second)
	quiet := waitQuiet(clients, 2*time.Second, 120*time.Second)
	fmt.Printf("%d clients connected in %.1f s (%d without CONNECTED_USER_INFO); server quiet after %.1f s more\n",
		len(clients), s.ConnectS, notReady, quiet.Seconds())
	idle := sampleRSS(pid)
	if len(clients) == 0 {
		return fmt.Errorf("no client connected")
	}

	// Send, sampling the server every second.
	stopSampling := make(chan struct{})
	var rss []int64
	var sampling sync.WaitGroup
	sampling.Add(1)
	go func() {
		defer sampling.Done()
		progress(pid, clients, stopSampling, &rss)
	}()
	cpu0, tool0, ts := benchkit.CPUSeconds(pid), benchkit.CPUSeconds(os.Getpid()), time.Now()
	busy0, _ := benchkit.MachineCPU()
	sent, sendFailed := send(clients, c.rate, c.duration, t0)
	wall := time.Since(ts).Seconds()
	busy1, _ := benchkit.MachineCPU()
	s.ServerCPU = (benchkit.CPUSeconds(pid) - cpu0) / wall * 100
	s.ToolCPU = (benchkit.CPUSeconds(os.Getpid()) - tool0) / wall * 100
	s.MachineCPU = (busy1 - busy0) / wall * 100
	s.OthersCPU = max(0, s.MachineCPU-s.ServerCPU-s.ToolCPU)
	s.Cores = runtime.NumCPU()
	close(stopSampling)
	sampling.Wait()
	s.Sent, s.SendFailed = sent, sendFailed

	// Wait for the stragglers, then close everything so that the readers'
	// counts can be read.
	deadline := time.Now().Add(c.drain)
	for time.Now().Before(deadline) {
		var got, want int64
		for _, cl := range clients {
			if !cl.gone.Load() {
				got += cl.got.Load()
				want += int64(sent)
			}
		}
		if got >= want {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	closing.Store(true)
	for _, cl := range clients {
		cl.ws.Close()
	}
	var lat, toStamp, fromStamp benchkit.Histogram
	s.DropReasons, s.Refusals = map[string]int{}, map[string]int{}
	for _, cl := range clients {
		<-cl.done
		lat.Merge(&cl.lat)
		toStamp.Merge(&cl.toStamp)
		fromStamp.Merge(&cl.fromStamp)
		s.Duplicates += cl.dups
		for k, v := range cl.refusals {
			s.Refusals[k] += v
		}
		if cl.gone.Load() {
			s.Dropped++
			s.DropReasons[cl.reason]++
			continue
		}
		s.Stayed++
		s.Received += cl.got.Load()
	}
	s.Expected = int64(sent) * int64(s.Stayed)
	if s.Expected > 0 {
		s.Delivery = float64(s.Received) / float64(s.Expected)
	}
	s.P50ms, s.P90ms, s.P99ms, s.MaxMs = ms(lat.Quantile(0.5)), ms(lat.Quantile(0.9)), ms(lat.Quantile(0.99)), ms(lat.Max())
	s.ToServerP50ms, s.ToServerP99ms = ms(toStamp.Quantile(0.5)), ms(toStamp.Quantile(0.99))
	s.FromServerP50, s.FromServerP99 = ms(fromStamp.Quantile(0.5)), ms(fromStamp.Quantile(0.99))
	s.BaselineRSSMB, s.IdleRSSMB = benchkit.MB(baseline), benchkit.MB(idle)
	s.IdleKBPerConn = float64(idle-baseline) / 1024 / float64(len(clients))
	if len(rss) > 0 {
		slices.Sort(rss)
		s.RunRSSMedianMB, s.RunRSSPeakMB = benchkit.MB(rss[len(rss)/2]), benchkit.MB(rss[len(rss)-1])
	}
	report(s)
	return nil
}

func registerAll(web string, n int) ([]string, int64, error) {
	tokens := make([]string, n)
	var limited atomic.Int64
	var next atomic.Int64
	errs := make([]error, 16)
	var wg sync.WaitGroup
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				tok, err := register(web, i, &limited)
				if err != nil {
					errs[w] = err
					next.Store(int64(n)) // stop the others too
					return
				}
				tokens[i] = tok
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, limited.Load(), err
		}
	}
	return tokens, limited.Load(), nil
}

// connectAll opens one WebSocket per token, starting them at ramp a
// second with at most 256 handshakes in flight, and starts each one's
// reader. It returns the clients that connected and the errors of the
// others.
func connectAll(web string, tokens []string, ramp int, t0 time.Time, closing *atomic.Bool) ([]*client, []error) {
	var mu sync.Mutex // guards clients and failed while dialling
	var clients []*client
	var failed []error
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	start := time.Now()
	for i, tok := range tokens {
		if wait := time.Duration(i)*time.Second/time.Duration(ramp) - time.Since(start); wait > 0 {
			time.Sleep(wait)
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := dial(web, tok, i, t0)
			<-sem
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, fmt.Errorf("client %d: %w", i, err))
				return
			}
			clients = append(clients, cl)
			go cl.read(closing)
		}()
	}
	wg.Wait()
	return clients, failed
}

// waitReady waits until every client has had CONNECTED_USER_INFO or
// lost its connection, and returns how many had neither by the timeout.
func waitReady(clients []*client, timeout time.Duration) int {
	deadline := time.After(timeout)
	for i, cl := range clients {
		select {
		case <-cl.ready:
		case <-cl.done:
		case <-deadline:
			n := 0
			for _, cl := range clients[i:] {
				select {
				case <-cl.ready:
				case <-cl.done:
				default:
					n++
				}
			}
			return n
		}
	}
	return 0
}

// waitQuiet waits until the clients have received no event for still
// (the history and the join messages of everyone else are through), at
// most max, and returns how long it waited.
func waitQuiet(clients []*client, still, max time.Duration) time.Duration {
	start := time.Now()
	last, since := int64(-1), time.Now()
	for time.Since(start) < max {
		var n int64
		for _, cl := range clients {
			n += cl.events.Load()
		}
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= still {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

// send sends rate messages a second for d, each from a random client that
// is still connected and sent nothing in the last minGap. A slow write
// does not lower the rate: each message has its slot from the start.
func send(clients []*client, rate float64, d time.Duration, t0 time.Time) (sent, failed int) {
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for seq := 0; time.Duration(seq)*interval < d; seq++ {
		if wait := time.Duration(seq)*interval - time.Since(start); wait > 0 {
			time.Sleep(wait)
		}
		now := time.Since(t0)
		var cl *client
		for range 1000 {
			c := clients[rand.N(len(clients))]
			if !c.gone.Load() && now-c.lastSent >= minGap {
				cl = c
				break
			}
		}
		if cl == nil {
			failed++
			continue
		}
		msg, _ := json.Marshal(map[string]string{"type": "CHAT", "body": loadBody(seq, time.Since(t0))})
		cl.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := cl.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
			failed++
			continue
		}
		cl.lastSent = now
		sent++
	}
	return sent, failed
}

// progress prints a line every 10 s of sending and collects the server's
// RSS every second until stop is closed.
func progress(pid int, clients []*client, stop <-chan struct{}, rss *[]int64) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	cpu, at := benchkit.CPUSeconds(pid), time.Now()
	busy, _ := benchkit.MachineCPU()
	for i := 1; ; i++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		r := benchkit.RSS(pid)
		*rss = append(*rss, r)
		if i%10 != 0 {
			continue
		}
		var got int64
		gone := 0
		for _, cl := range clients {
			got += cl.got.Load()
			if cl.gone.Load() {
				gone++
			}
		}
		now := benchkit.CPUSeconds(pid)
		busyNow, _ := benchkit.MachineCPU()
		secs := time.Since(at).Seconds()
		fmt.Printf("  %3d s: %d deliveries, %d clients dropped, server RSS %.0f MB, CPU %.0f%% of a core; machine %.0f%%\n",
			i, got, gone, benchkit.MB(r), (now-cpu)/secs*100, (busyNow-busy)/secs*100)
		cpu, busy, at = now, busyNow, time.Now()
	}
}

// sampleRSS is the median of three readings half a second apart.
func sampleRSS(pid int) int64 {
	var v []int64
	for i := range 3 {
		if i > 0 {
			time.Sleep(500 * time.Millisecond)
		}
		v = append(v, benchkit.RSS(pid))
	}
	slices.Sort(v)
	return v[1]
}

func report(s summary) {
	fmt.Printf("\n%d clients, %g messages/s for %g s:\n", s.Clients, s.Rate, s.DurationS)
	fmt.Printf("| sent | delivered / expected | ratio | p50 | p90 | p99 | max | dropped | RSS per idle conn | server RSS (median, peak) | server CPU | tool CPU |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %d | %d / %d | %.4f | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %d | %.1f KB | %.0f, %.0f MB | %.0f%% | %.0f%% |\n",
		s.Sent, s.Received, s.Expected, s.Delivery, s.P50ms, s.P90ms, s.P99ms, s.MaxMs, s.Dropped,
		s.IdleKBPerConn, s.RunRSSMedianMB, s.RunRSSPeakMB, s.ServerCPU, s.ToolCPU)
	fmt.Printf("server RSS %.1f MB before connecting, %.1f MB with %d idle clients; %d connections failed, %d sends failed, %d duplicates\n",
		s.BaselineRSSMB, s.IdleRSSMB, s.Connected, s.ConnectFailed, s.SendFailed, s.Duplicates)
	fmt.Printf("latency split at the server's event timestamp (wall clock): send → accepted p50 %.1f ms, p99 %.1f ms; accepted → received p50 %.1f ms, p99 %.1f ms\n",
		s.ToServerP50ms, s.ToServerP99ms, s.FromServerP50, s.FromServerP99)
	fmt.Printf("machine CPU while sending: %.0f%% of %d cores' %d%%; other processes %.0f%%\n",
		s.MachineCPU, s.Cores, s.Cores*100, s.OthersCPU)
	if s.OthersCPU > 10 {
		fmt.Printf("WARNING: other processes took %.0f%% of a core while sending: the latencies are not the server's alone; run again on a quiet machine\n", s.OthersCPU)
	}
	for _, k := range slices.Sorted(maps.Keys(s.DropReasons)) {
		fmt.Printf("dropped: %d × %s\n", s.DropReasons[k], k)
	}
	if len(s.Refusals) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(s.Refusals)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, s.Refusals[k]))
		}
		fmt.Printf("refused by the server: %s\n", strings.Join(parts, ", "))
	}
	b, _ := json.Marshal(s)
	fmt.Printf("%s\n", b)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
