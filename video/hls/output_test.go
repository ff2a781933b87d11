package hls

import (
	"testing"
	"time"
)

// TestOutputMeasuresEachRendition: bytes published within the window make
// each rendition's bitrate; older ones fall out, totals stay.
func TestOutputMeasuresEachRendition(t *testing.T) {
	now := time.Unix(1000, 0)
	o := NewOutput()
	o.now = func() time.Time { return now }
	// 30 s of 2 s segments: 15 of 250 kB at rendition 0 (1000 kbit/s
	// over 30 s... 15*250e3*8/1000/30 = 1000), 15 of 50 kB at 1.
	for i := range 15 {
		now = time.Unix(1000+int64(2*i), 0)
		o.SegmentPublished(Segment{Rendition: 0, Data: make([]byte, 250_000)})
		o.SegmentPublished(Segment{Rendition: 1, Data: make([]byte, 50_000)})
	}
	r := o.Rates()
	if len(r) != 2 || r[0].Kbps != 1000 || r[1].Kbps != 200 || r[0].Segments != 15 || r[1].Total != 15 {
		t.Fatalf("rates %+v", r)
	}
	now = now.Add(time.Minute)
	r = o.Rates()
	if r[0].Kbps != 0 || r[0].Segments != 0 || r[0].Total != 15 {
		t.Errorf("a minute later %+v", r)
	}
}
