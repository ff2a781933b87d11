package ingest

import (
	"bytes"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/starling-live/starling/video/flv"
)

// nopSession takes tags and does nothing, so that the benchmark measures
// the ingest side of the frame path alone.
type nopSession struct{}

func (nopSession) Metadata(Details) {}
func (nopSession) WriteTag(flv.Tag) {}
func (nopSession) Close(Leave)      {}

// BenchmarkMediaFrame is the per-frame work of a publisher's connection:
// copying a 20 KB video tag body, checking it, and handing it on.
func BenchmarkMediaFrame(b *testing.B) {
	h := &connHandler{log: slog.New(slog.NewTextHandler(io.Discard, nil)), session: nopSession{}, meter: newMeter(time.Now())}
	body := append([]byte{0x27, 1, 0, 0, 0}, bytes.Repeat([]byte{7}, 20_000)...)
	key := append([]byte{0x17, 1, 0, 0, 0}, bytes.Repeat([]byte{7}, 20_000)...)
	r := bytes.NewReader(nil)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%60 == 0 {
			r.Reset(key)
		} else {
			r.Reset(body)
		}
		if err := h.media(flv.TagVideo, uint32(i*33), r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMeterObserve is what measuring adds to each frame.
func BenchmarkMeterObserve(b *testing.B) {
	m := newMeter(time.Now())
	t := flv.Tag{Type: flv.TagVideo, Data: []byte{0x27, 1, 0, 0, 0, 9}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		t.Timestamp = uint32(i * 33)
		m.observe(t, time.Now())
	}
}

// BenchmarkAMFGuard is what the guard adds to every byte a publisher
// sends: a second of 2.5 Mbit/s video, 30 frames of about 10 KB in
// 4096-byte chunks, fed as 64 KiB reads as go-rtmp makes them.
func BenchmarkAMFGuard(b *testing.B) {
	var in bytes.Buffer
	writeChunk(&in, 2, typeSetChunkSize, true, 4, []byte{0, 0, 0x10, 0})
	frame := bytes.Repeat([]byte{7}, 10_400)
	for range 30 {
		for i, p := 0, frame; len(p) > 0; i++ {
			n := min(len(p), 4096)
			writeChunk(&in, 6, 9, i == 0, uint32(len(frame)), p[:n])
			p = p[n:]
		}
	}
	b.SetBytes(int64(in.Len()))
	b.ReportAllocs()
	for b.Loop() {
		g := newAMFGuard(16)
		g.handshake = 0
		if err := feedInPieces(g, in.Bytes(), 64<<10); err != nil {
			b.Fatal(err)
		}
	}
}
