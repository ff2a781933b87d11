package ingest

import (
	"errors"
	"net"
	"os"
	"runtime"
	"testing"
	"time"
)

// A publisher is read in gulps while it sends fast, and stays live when it
// slows to a trickle below the low-water mark: only one that sends nothing
// at all for the timeout is silent.
func TestLowWaterFollowsThePublisher(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	const timeout = 1200 * time.Millisecond
	dc := &deadlineConn{Conn: server}
	dc.published(timeout)

	sent := make(chan int, 1)
	go func() {
		n := 0
		chunk := make([]byte, 4096)
		// About 800 KB/s: the mark rises to its cap.
		for start := time.Now(); time.Since(start) < 1100*time.Millisecond; {
			k, _ := client.Write(chunk)
			n += k
			time.Sleep(5 * time.Millisecond)
		}
		// Then 50 bytes a second, far below it, for longer than the
		// timeout; then nothing.
		for range 15 {
			k, _ := client.Write(chunk[:10])
			n += k
			time.Sleep(200 * time.Millisecond)
		}
		sent <- n
	}()

	buf := make([]byte, 64<<10)
	var got, reads, maxMark int
	var rerr error
	for {
		n, err := dc.Read(buf)
		got += n
		reads++
		maxMark = max(maxMark, dc.lowWater)
		if err != nil {
			rerr = err
			break
		}
	}
	want := <-sent
	if !errors.Is(rerr, os.ErrDeadlineExceeded) || !dc.silent {
		t.Errorf("after the publisher went quiet: %v, silent %v; want a timeout", rerr, dc.silent)
	}
	if got != want {
		t.Errorf("read %d bytes of %d: the trickle below the mark was taken for silence", got, want)
	}
	if runtime.GOOS == "linux" && maxMark < 16<<10 {
		t.Errorf("the low-water mark rose to %d bytes only while the publisher sent 800 KB/s", maxMark)
	}
	t.Logf("%d bytes in %d reads, low-water mark up to %d", got, reads, maxMark)
}
