// Command rtmp attacks Starling's RTMP port as strangers would and
// measures what it costs the server: the memory that connections which
// never publish make it hold, whether a publisher with the key still gets
// in while strangers hold sockets, and the CPU the server burns when its
// file descriptors run out.
//
// It builds Starling from this checkout (or runs -bin, e.g. an older
// build to compare with) on loopback. Attackers connect from their own
// loopback addresses (127.2.0.1, 127.2.0.2, ...), as clients on the
// Internet would.
//
//	go run ./build/load/rtmp -conns 200
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/yutopp/go-rtmp/handshake"

	"github.com/starling-live/starling/build/benchkit"
)

// limitedExec names the server binary when this program runs as its
// wrapper: it lowers its own limit on open files, then becomes the server,
// which inherits the limit (the hard one too: Go raises the soft limit to
// it at start).
const limitedExec, limitedFiles = "STARLING_RTMP_LOAD_EXEC", 24

func main() {
	if bin := os.Getenv(limitedExec); bin != "" {
		lim := syscall.Rlimit{Cur: limitedFiles, Max: limitedFiles}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			fmt.Fprintln(os.Stderr, "rtmp load:", err)
			os.Exit(1)
		}
		err := syscall.Exec(bin, append([]string{bin}, os.Args[1:]...), os.Environ())
		fmt.Fprintln(os.Stderr, "rtmp load:", err)
		os.Exit(1)
	}
	conns := flag.Int("conns", 200, "attacking connections per scenario")
	perAddr := flag.Int("per-address", 8, "attacking connections per source address")
	flood := flag.Int("flood", 4<<20, "bytes of unfinished messages each flooding connection tries to send")
	bin := flag.String("bin", "", "Starling binary to attack (default: build this checkout)")
	flag.Parse()
	if _, err := benchkit.RaiseFileLimit(uint64(*conns) + 256); err != nil {
		fmt.Fprintln(os.Stderr, "rtmp load:", err)
		os.Exit(1)
	}
	if err := run(*bin, *conns, *perAddr, *flood); err != nil {
		fmt.Fprintln(os.Stderr, "rtmp load:", err)
		os.Exit(1)
	}
}

func run(bin string, conns, perAddr, flood int) error {
	tmp, built, err := benchkit.Build("starling-rtmp-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if bin == "" {
		bin = built
	}

	// 1. Memory: connections that complete the handshake, never send
	// connect, and leave messages of 16 MiB unfinished on many chunk
	// streams.
	srv, err := benchkit.Start(bin, tmp)
	if err != nil {
		return err
	}
	base := benchkit.RSS(srv.PID())
	held := attack(srv, conns, perAddr, func(c net.Conn) { floodChunks(c, flood) })
	time.Sleep(2 * time.Second) // let the server read what it will
	rss := benchkit.RSS(srv.PID())
	open := stillOpen(held)
	fmt.Printf("flood: %d connections, each sending up to %d KiB of unfinished messages: %d still open; server RSS %.1f MB -> %.1f MB (+%.1f MB)\n",
		conns, flood>>10, open, benchkit.MB(base), benchkit.MB(rss), benchkit.MB(rss-base))
	closeAll(held)
	srv.Stop()

	// 2. Lock-out: strangers drip their handshakes a byte every 5 s while
	// the publisher connects.
	srv, err = benchkit.Start(bin, tmp)
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	held = attack(srv, conns, perAddr, func(c net.Conn) { drip(c, stop) })
	time.Sleep(time.Second)
	start := time.Now()
	pub := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15", "-t", "3",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-pix_fmt", "yuv420p",
		"-f", "flv", srv.RTMP+"/"+benchkit.StreamKey)
	out, err := pub.CombinedOutput()
	online := false
	if b, ok := srv.Get("/api/status", false); ok {
		online = bytes.Contains(b, []byte(`"lastConnectTime":"`))
	}
	fmt.Printf("drip: %d strangers dripping handshakes; the publisher %s (ffmpeg: %v%s) in %.1f s; %d strangers still connected\n",
		conns, map[bool]string{true: "got in", false: "was kept out"}[online], err, strings.TrimSpace(" "+string(out)),
		time.Since(start).Seconds(), stillOpen(held))
	close(stop)
	closeAll(held)
	srv.Stop()

	// 3. Descriptors: the server runs with 24 of them (it uses 17 idle),
	// and strangers from 64 addresses open connections and keep them, so
	// that accepting fails. Measured over 5 s, before the waiting
	// connections time out.
	const idle = 64
	os.Setenv(limitedExec, bin)
	srv, err = benchkit.Start(os.Args[0], tmp)
	os.Unsetenv(limitedExec)
	if err != nil {
		return err
	}
	stop = make(chan struct{})
	held = attack(srv, idle, 1, func(c net.Conn) { <-stop })
	time.Sleep(time.Second)
	cpu0, t0 := benchkit.CPUSeconds(srv.PID()), time.Now()
	time.Sleep(5 * time.Second)
	cpu := (benchkit.CPUSeconds(srv.PID()) - cpu0) / time.Since(t0).Seconds()
	fmt.Printf("descriptors: server limited to %d, %d idle connections: server CPU %.1f%% of a core\n", limitedFiles, idle, cpu*100)
	close(stop)
	closeAll(held)
	srv.Stop()
	return nil
}

// attack opens n connections to the server's RTMP port, perAddr from each
// source address, and runs act on each in its own goroutine.
func attack(srv *benchkit.Server, n, perAddr int, act func(net.Conn)) []net.Conn {
	addr := strings.TrimSuffix(strings.TrimPrefix(srv.RTMP, "rtmp://"), "/live")
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	for i := range n {
		src := net.IPv4(127, 2, byte((i/perAddr)>>8), byte((i/perAddr)%256+1))
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			continue
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		wg.Add(1)
		go func() { defer wg.Done(); act(c) }()
	}
	return conns
}

// floodChunks completes the handshake, then sends 128-byte chunks of
// 16 MiB command messages on chunk streams 3 to 18 in turn, never
// finishing one, until max bytes are sent or the server hangs up.
func floodChunks(c net.Conn, max int) {
	if err := handshake.HandshakeWithServer(c, c, &handshake.Config{}); err != nil {
		return
	}
	payload := bytes.Repeat([]byte{'x'}, 128)
	for sent, round := 0, 0; sent < max; round++ {
		for cs := 3; cs < 19; cs++ {
			var b bytes.Buffer
			if round == 0 {
				b.Write([]byte{byte(cs), 0, 0, 0, 0xff, 0xff, 0xff, 20, 0, 0, 0, 0})
			} else {
				b.WriteByte(3<<6 | byte(cs))
			}
			b.Write(payload)
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(b.Bytes()); err != nil {
				return
			}
			sent += len(payload)
		}
	}
}

// drip sends a handshake a byte every 5 s.
func drip(c net.Conn, stop <-chan struct{}) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		if _, err := c.Write([]byte{3}); err != nil {
			return
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// stillOpen counts the connections the server has not closed.
func stillOpen(conns []net.Conn) int {
	n := 0
	buf := make([]byte, 4096)
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		for {
			_, err := c.Read(buf)
			if err == nil {
				continue
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				n++
			}
			break
		}
	}
	return n
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}
