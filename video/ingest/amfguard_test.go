package ingest

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	rtmp "github.com/yutopp/go-rtmp"
	"github.com/yutopp/go-rtmp/handshake"
	rtmpmsg "github.com/yutopp/go-rtmp/message"

	"github.com/starling-live/starling/core/testrig"
)

// corpus reads a session of testdata/fuzz/FuzzIngestRTMP: what a client
// sends after its handshake.
func corpus(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzIngestRTMP", name))
	if err != nil {
		t.Fatal(err)
	}
	_, lit, _ := strings.Cut(strings.TrimSpace(string(raw)), "[]byte(")
	s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return []byte(s)
}

// feedInPieces feeds in to g in pieces of n bytes, up to the first error.
func feedInPieces(g *amfGuard, in []byte, n int) error {
	for ; len(in) > 0; in = in[min(n, len(in)):] {
		if err := g.feed(in[:min(n, len(in))]); err != nil {
			return err
		}
	}
	return nil
}

// TestAMFGuardFramesSessionsAsGoRTMP: the guard follows the chunk streams
// of real publishers however their bytes are split, follows the peer's
// chunk size, and refuses the session FuzzIngestRTMP found that took the
// process down.
func TestAMFGuardFramesSessionsAsGoRTMP(t *testing.T) {
	for _, name := range []string{"ffmpeg-publish", "go-rtmp-publish"} {
		in := corpus(t, name)
		var states []string
		for _, n := range []int{len(in), 1, 7, 129} {
			g := newAMFGuard(16)
			g.handshake = 0
			if err := feedInPieces(g, in, n); err != nil {
				t.Errorf("%s in pieces of %d: %v", name, n, err)
			}
			state := fmt.Sprintf("chunk size %d, %d payload and %d header bytes to come, %d chunk streams", g.chunkSize, g.body, len(g.header), len(g.streams))
			for _, id := range slices.Sorted(maps.Keys(g.streams)) {
				s := g.streams[id]
				state += fmt.Sprintf("; %d: type %d, %d of %d", id, s.typeID, s.got, s.length)
			}
			states = append(states, state)
		}
		for _, s := range states[1:] {
			if s != states[0] {
				t.Errorf("%s: the guard ends in another state when the bytes come in other pieces:\n%s\n%s", name, states[0], s)
			}
		}
	}

	// A session with the 2^31-element array FuzzIngestRTMP found.
	in := corpus(t, "amf-strict-array-2g")
	for _, n := range []int{len(in), 1, 7} {
		g := newAMFGuard(16)
		g.handshake = 0
		if err := feedInPieces(g, in, n); err == nil || !strings.Contains(err.Error(), "strict array of") {
			t.Errorf("the fuzzer's session in pieces of %d: %v, want the strict array refused", n, err)
		}
	}

	// After a Set Chunk Size of 4096, a 1000-byte command in one chunk:
	// read at 128-byte chunks, its tail would be taken for headers, and the
	// array at its end missed.
	cmd := append(amfStr("x"), amfStr(strings.Repeat("y", 990-len(amfHugeArray)))...)
	cmd = append(cmd, amfHugeArray...)
	var b bytes.Buffer
	writeChunk(&b, 2, typeSetChunkSize, true, 4, []byte{0, 0, 0x10, 0})
	writeChunk(&b, 3, typeCommandAMF0, true, uint32(len(cmd)), cmd)
	g := newAMFGuard(16)
	g.handshake = 0
	if err := g.feed(b.Bytes()); err == nil || !strings.Contains(err.Error(), "strict array of") || g.chunkSize != 4096 {
		t.Errorf("after a chunk size of 4096: %v at chunk size %d, want the strict array refused at 4096", err, g.chunkSize)
	}
}

// Hostile AMF0 values: what each does to go-amf0 v0.1.0.
var (
	// 2^31-1 elements, allocated before the first is read: 32 GiB.
	amfHugeArray = []byte{amfStrictArray, 0x7f, 0xff, 0xff, 0xff, amfNull}
	// Arrays in arrays: a recursion a level.
	amfDeep = append(bytes.Repeat([]byte{amfStrictArray, 0, 0, 0, 1}, maxAMFDepth+8), amfNull)
)

func amfStr(s string) []byte {
	return append([]byte{amfString, byte(len(s) >> 8), byte(len(s))}, s...)
}

// connectWith is a connect command whose object carries v as "x".
func connectWith(v []byte) []byte {
	b := append(amfStr("connect"), amfNumber, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0) // transaction 1
	b = append(b, amfObject, 0, 3, 'a', 'p', 'p')
	b = append(b, amfStr(App)...)
	b = append(b, 0, 1, 'x')
	b = append(b, v...)
	return append(b, 0, 0, amfObjectEnd)
}

// publish connects to addr as a publisher with the right key and waits
// until rec has its session.
func publish(t *testing.T, addr string, rec *recorder) (*rtmp.Stream, *session) {
	t.Helper()
	rec.mu.Lock()
	n := len(rec.sessions)
	rec.mu.Unlock()
	logger := logrus.New()
	logger.Out = io.Discard
	cc, err := rtmp.Dial("rtmp", addr, &rtmp.ConnConfig{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	if err := cc.Connect(&rtmpmsg.NetConnectionConnect{Command: rtmpmsg.NetConnectionConnectCommand{App: App}}); err != nil {
		t.Fatal(err)
	}
	st, err := cc.CreateStream(nil, rtmp.DefaultChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Publish(&rtmpmsg.NetStreamPublish{PublishingName: "right-key-123", PublishingType: "live"}); err != nil {
		t.Fatal(err)
	}
	var sess *session
	testrig.Eventually(t, 10*time.Second, "the publish", func() (bool, string) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.sessions) > n {
			sess = rec.sessions[n]
		}
		return sess != nil, fmt.Sprint(len(rec.sessions))
	})
	return st, sess
}

// TestAMFThatWouldCrashTheDecoderIsRefused: go-amf0 allocates a strict
// array's elements before reading them and recurses for each level of
// nesting, so one small message, even before connect, ended the process
// with a fatal out-of-memory error (FuzzIngestRTMP found it). Such a
// message, before connect or from a publisher, closes its connection with
// the reason in the log, and the server goes on serving.
func TestAMFThatWouldCrashTheDecoderIsRefused(t *testing.T) {
	onMetaData := amfStr("onMetaData")
	for _, tt := range []struct {
		name     string
		metadata bool // sent as metadata by a publisher with the right key
		body     []byte
		want     string
	}{
		{"a huge strict array before connect", false, connectWith(amfHugeArray), "strict array of 2147483647 elements"},
		{"deep nesting before connect", false, connectWith(amfDeep), "nested more than 32 deep"},
		{"a huge strict array as metadata", true, append(onMetaData, amfHugeArray...), "strict array of 2147483647 elements"},
		{"metadata over 64 KiB", true, append(onMetaData, amfStr(strings.Repeat("x", 65535))...), "more than 65536"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			_, cl, logs := startLimited(t, rec, Limits{})
			addr := cl.Addr().String()
			if tt.metadata {
				st, sess := publish(t, addr, rec)
				// The AMF0 values after "@setDataFrame", as encoders send metadata.
				msg := &rtmpmsg.DataMessage{Name: "@setDataFrame", Encoding: rtmpmsg.EncodingTypeAMF0, Body: bytes.NewReader(tt.body)}
				if err := st.Write(4, 0, msg); err != nil {
					t.Fatal(err)
				}
				testrig.Eventually(t, 30*time.Second, "the publisher disconnected", func() (bool, string) {
					_, closed := sess.snapshot()
					return closed, logs.String()
				})
			} else {
				c := testrig.DialFrom(t, "127.0.0.1", addr)
				if err := handshake.HandshakeWithServer(c, c, &handshake.Config{}); err != nil {
					t.Fatalf("handshake: %v", err)
				}
				for i, p := 0, tt.body; len(p) > 0; i++ {
					n := min(len(p), rtmp.DefaultChunkSize)
					if err := writeChunk(c, 3, typeCommandAMF0, i == 0, uint32(len(tt.body)), p[:n]); err != nil {
						break // closed by the server
					}
					p = p[n:]
				}
				if !closedByServer(c, 30*time.Second) {
					t.Fatal("the server kept the connection")
				}
			}
			if l := logs.String(); !strings.Contains(l, "would crash the server's decoder") || !strings.Contains(l, tt.want) {
				t.Errorf("the log does not say why (%q):\n%s", tt.want, l)
			}
			// Still serving: a publisher that does everything right.
			publish(t, addr, rec)
		})
	}
}
