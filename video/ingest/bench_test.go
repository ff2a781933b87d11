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
