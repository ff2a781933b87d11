package ingest

// Attacks on the RTMP port, each of which worked before the limits:
// sockets that drip bytes to hold every slot, memory held by messages
// left unfinished, an accept loop spinning when descriptors run out, and
// guessing the stream key as fast as connections open.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	rtmp "github.com/yutopp/go-rtmp"
	"github.com/yutopp/go-rtmp/handshake"
	rtmpmsg "github.com/yutopp/go-rtmp/message"

	"github.com/starling-live/starling/core/testrig"
)

// startLimited runs a server with limits on a listener that counts what
// the server reads.
func startLimited(t *testing.T, h Handler, l Limits) (*Server, *countingListener, *testrig.LogBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	logs := &testrig.LogBuffer{}
	s := New(Deps{Logger: logs.Logger(), Keys: keys("right-key-123"), Handler: h, Limits: l})
	s.Start(cl)
	t.Cleanup(func() { s.Close() })
	return s, cl, logs
}

// countingListener counts the bytes the server reads from its clients.
type countingListener struct {
	net.Listener
	read atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &l.read}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// closedByServer reports whether the server has closed c, waiting up to
// wait for it.
func closedByServer(c net.Conn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue // the server's handshake
		}
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
}

// drip sends the start of a handshake a byte at a time, every interval,
// until stop is closed or the server hangs up.
func drip(c net.Conn, interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
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

// TestSlowDripCannotLockOutThePublisher: strangers holding every socket
// by dripping their handshakes, from many addresses and from the
// publisher's own, do not keep a publisher with the right key out.
func TestSlowDripCannotLockOutThePublisher(t *testing.T) {
	rec := &recorder{}
	// A long deadline: the strangers must still hold their sockets when
	// the publisher comes.
	srv, cl, _ := startLimited(t, rec, Limits{AuthTimeout: time.Minute})
	addr := cl.Addr().String()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	var own []net.Conn
	for a := 2; a < 2+16; a++ {
		for range 4 {
			c := testrig.DialFrom(t, fmt.Sprintf("127.0.0.%d", a), addr)
			wg.Add(1)
			go func() { defer wg.Done(); drip(c, 5*time.Second, stop) }()
		}
	}
	for range 8 {
		c := testrig.DialFrom(t, "127.0.0.1", addr)
		own = append(own, c)
		wg.Add(1)
		go func() { defer wg.Done(); drip(c, 5*time.Second, stop) }()
	}
	// 72 sockets for 32 pending slots: 40 made room for newer ones.
	testrig.Eventually(t, 20*time.Second, "every socket admitted and every pending slot taken", func() (bool, string) {
		st := srv.Connections()
		return st.Pending == 32 && st.Evicted == 40, fmt.Sprintf("%+v", st)
	})
	// One address holds at most its share: four of the eight sockets of
	// the publisher's own address made room for the other four.
	closed := 0
	for _, c := range own {
		if closedByServer(c, time.Second) {
			closed++
		}
	}
	if closed != 4 {
		t.Errorf("%d of 8 sockets of one address were closed, want 4 (4 pending per address)", closed)
	}

	if out, err := push("rtmp://"+addr+"/live/right-key-123", 2, h264aac...).CombinedOutput(); err != nil {
		t.Fatalf("the publisher did not get in: %v\n%s", err, out)
	}
	rec.mu.Lock()
	n := len(rec.sessions)
	rec.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d sessions, want the publisher's", n)
	}
	if tags, _ := rec.sessions[0].snapshot(); tags < 30 {
		t.Errorf("the publisher's session got %d tags", tags)
	}
	if st := srv.Connections(); st.Evicted < 41 {
		t.Errorf("connections %+v: the publisher should have taken a stranger's place", st)
	}
}

// TestPendingDeadlineHoldsHoweverBytesTrickle: a connection gets a fixed
// time for handshake, connect and publish; sending a byte now and then
// does not extend it.
func TestPendingDeadlineHoldsHoweverBytesTrickle(t *testing.T) {
	_, cl, _ := startLimited(t, &recorder{}, Limits{AuthTimeout: time.Second})
	c := testrig.DialFrom(t, "127.0.0.1", cl.Addr().String())
	stop := make(chan struct{})
	defer close(stop)
	go drip(c, 100*time.Millisecond, stop)
	if !closedByServer(c, 30*time.Second) {
		t.Fatal("a connection dripping its handshake was never closed")
	}
}

// writeChunk writes one RTMP chunk (RFC-less, but see the Adobe RTMP
// specification 5.3.1): a type-0 header on chunk stream csid announcing a
// message of length bytes and type typeID, or a type-3 continuation, then
// payload.
func writeChunk(w io.Writer, csid int, typeID byte, first bool, length uint32, payload []byte) error {
	var b bytes.Buffer
	fmtBits := byte(3 << 6)
	if first {
		fmtBits = 0
	}
	switch {
	case csid < 64:
		b.WriteByte(fmtBits | byte(csid))
	default:
		b.WriteByte(fmtBits)
		b.WriteByte(byte(csid - 64))
	}
	if first {
		b.Write([]byte{0, 0, 0})                                             // timestamp
		b.Write([]byte{byte(length >> 16), byte(length >> 8), byte(length)}) // message length
		b.WriteByte(typeID)
		binary.Write(&b, binary.LittleEndian, uint32(0)) // message stream id
	}
	b.Write(payload)
	_, err := w.Write(b.Bytes())
	return err
}

// TestUnfinishedMessagesCannotHoldMemory: a connection that never sends
// connect, leaving messages of 16 MiB unfinished, is closed before it has
// made the server read more than the pending budget, on many chunk streams
// or on a few.
func TestUnfinishedMessagesCannotHoldMemory(t *testing.T) {
	for _, tt := range []struct {
		name    string
		streams int
	}{{"many chunk streams", 200}, {"few chunk streams", 4}} {
		t.Run(tt.name, func(t *testing.T) {
			const budget = 64 << 10
			_, cl, _ := startLimited(t, &recorder{}, Limits{PendingBytes: budget, AuthTimeout: time.Minute})
			c := testrig.DialFrom(t, "127.0.0.1", cl.Addr().String())
			if err := handshake.HandshakeWithServer(c, c, &handshake.Config{}); err != nil {
				t.Fatalf("handshake: %v", err)
			}
			payload := bytes.Repeat([]byte{'x'}, 128) // the default chunk size
			var sent int
			var err error
			// Up to 32 MiB, unless the server hangs up first.
			for round := 0; err == nil && sent < 32<<20; round++ {
				for cs := 3; cs < 3+tt.streams && err == nil; cs++ {
					err = writeChunk(c, cs, typeCommandAMF0, round == 0, 0xffffff, payload)
					sent += len(payload)
				}
			}
			if err == nil && !closedByServer(c, 30*time.Second) {
				t.Fatalf("the server kept a connection that sent %d bytes of unfinished messages", sent)
			}
			if read := cl.read.Load(); read > budget {
				t.Errorf("the server read %d bytes from a connection that never published, more than the %d budget", read, budget)
			}
		})
	}
}

// flakyListener fails Accept as a listener out of file descriptors does.
type flakyListener struct {
	net.Listener
	failures atomic.Int32
	calls    atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.calls.Add(1)
	if l.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

// TestAcceptBacksOffWhenDescriptorsRunOut: go-rtmp retries a failing
// Accept at once, forever; the server pauses between tries, doubling the
// pause, logs the trouble once, and serves again when accepts succeed.
func TestAcceptBacksOffWhenDescriptorsRunOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: ln}
	const failures = 7
	fl.failures.Store(failures)
	logs := &testrig.LogBuffer{}
	rec := &recorder{}
	s := New(Deps{Logger: logs.Logger(), Keys: keys("right-key-123"), Handler: rec})
	start := time.Now()
	s.Start(fl)
	defer s.Close()

	c := testrig.DialFrom(t, "127.0.0.1", ln.Addr().String())
	if err := handshake.HandshakeWithServer(c, c, &handshake.Config{}); err != nil {
		t.Fatalf("no connection served after the failures: %v", err)
	}
	// Pauses of 5, 10, 20, ... ms: a spinning loop gets through seven
	// failures in microseconds, a pausing one needs at least their sum.
	if took, least := time.Since(start), 635*time.Millisecond; took < least {
		t.Errorf("%d failed accepts took %v: no pause between them (want at least %v)", failures, took, least)
	}
	// One call per failure, one for the connection, and perhaps the next
	// one, already waiting.
	if n := fl.calls.Load(); n < failures+1 || n > failures+2 {
		t.Errorf("Accept was called %d times for %d failures and one connection", n, failures)
	}
	if n := strings.Count(logs.String(), "cannot accept connections"); n != 1 {
		t.Errorf("the failures were logged %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "accepts connections again") {
		t.Errorf("the recovery was not logged:\n%s", logs)
	}
}

// TestStreamKeyGuessesAreThrottled: an address that gets the key wrong
// too often is refused without its key being checked, the right key
// included, until a guess is due again; a right key costs no guess.
func TestStreamKeyGuessesAreThrottled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &testrig.LogBuffer{}
	rec := &recorder{}
	s := New(Deps{Logger: logs.Logger(), Keys: keys("right-key-123"), Handler: rec,
		Limits: Limits{KeyGuesses: 3, KeyGuessInterval: time.Second}})
	s.Start(ln)
	defer s.Close()
	outcomes := func() (published, wrong, throttled int) {
		rec.mu.Lock()
		published = len(rec.sessions)
		rec.mu.Unlock()
		l := logs.String()
		return published, strings.Count(l, "wrong stream key\""), strings.Count(l, "too many wrong stream keys")
	}
	// try publishes with key and says what the server made of it.
	try := func(key string) string {
		t.Helper()
		p0, w0, t0 := outcomes()
		logger := logrus.New()
		logger.Out = io.Discard
		cc, err := rtmp.Dial("rtmp", ln.Addr().String(), &rtmp.ConnConfig{Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		if err := cc.Connect(&rtmpmsg.NetConnectionConnect{Command: rtmpmsg.NetConnectionConnectCommand{App: App}}); err != nil {
			t.Fatal(err)
		}
		st, err := cc.CreateStream(nil, 128)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Publish(&rtmpmsg.NetStreamPublish{PublishingName: key, PublishingType: "live"}); err != nil {
			t.Fatal(err)
		}
		var got string
		testrig.Eventually(t, 30*time.Second, "the server's decision on "+key, func() (bool, string) {
			p, w, th := outcomes()
			switch {
			case p > p0:
				got = "published"
			case w > w0:
				got = "wrong"
			case th > t0:
				got = "throttled"
			}
			return got != "", logs.String()
		})
		return got
	}
	// Right keys spend nothing.
	for range 5 {
		if got := try("right-key-123"); got != "published" {
			t.Fatalf("the right key: %s", got)
		}
	}
	for i := range 3 {
		if got := try(fmt.Sprintf("guess-%d", i)); got != "wrong" {
			t.Fatalf("guess %d: %s", i, got)
		}
	}
	if got := try("right-key-123"); got != "throttled" {
		t.Fatalf("the right key while the address is throttled: %s", got)
	}
	// A guess comes due again within the interval (polled: no sleep
	// decides it).
	testrig.Eventually(t, 30*time.Second, "the right key taken once a guess is due", func() (bool, string) {
		got := try("right-key-123")
		return got == "published", got
	})
}
