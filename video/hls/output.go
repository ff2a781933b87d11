package hls

import (
	"sync"
	"time"
)

// OutputWindow is the span over which Output measures each rendition.
const OutputWindow = 30 * time.Second

// RenditionOutput is what one rendition put out over the last
// OutputWindow.
type RenditionOutput struct {
	// Rendition is the index of its variant.
	Rendition int `json:"rendition"`
	// Kbps is the bitrate of its segments, in kbit/s; Segments how many
	// were published in the window, Total since the server started.
	Kbps     float64 `json:"kbps"`
	Segments int     `json:"segments"`
	Total    uint64  `json:"total"`
}

// Output measures what each rendition publishes. It is a Listener.
type Output struct {
	now func() time.Time

	// mu guards the fields below.
	mu     sync.Mutex
	recent []outputSample // within the window, oldest first
	total  map[int]uint64
}

type outputSample struct {
	at        time.Time
	rendition int
	bytes     int
}

// NewOutput returns an Output; add it to the Packager's listeners.
func NewOutput() *Output { return &Output{now: time.Now, total: map[int]uint64{}} }

// SegmentPublished counts a segment.
func (o *Output) SegmentPublished(s Segment) {
	now := o.now()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.expire(now)
	o.recent = append(o.recent, outputSample{at: now, rendition: s.Rendition, bytes: len(s.Data)})
	o.total[s.Rendition]++
}

// RenditionsChanged forgets the window: a new set of renditions measures
// afresh.
func (o *Output) RenditionsChanged(Renditions) {
	o.mu.Lock()
	o.recent = nil
	o.mu.Unlock()
}

func (o *Output) expire(now time.Time) {
	i := 0
	for i < len(o.recent) && now.Sub(o.recent[i].at) > OutputWindow {
		i++
	}
	o.recent = o.recent[i:]
}

// Rates returns each rendition's output over the window, by index.
func (o *Output) Rates() []RenditionOutput {
	now := o.now()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.expire(now)
	most := -1
	for r := range o.total {
		most = max(most, r)
	}
	out := make([]RenditionOutput, most+1)
	bytes := make([]int, most+1)
	for _, p := range o.recent {
		out[p.rendition].Segments++
		bytes[p.rendition] += p.bytes
	}
	for r := range out {
		out[r].Rendition, out[r].Total = r, o.total[r]
		out[r].Kbps = float64(bytes[r]) * 8 / 1000 / OutputWindow.Seconds()
	}
	return out
}

var _ Listener = (*Output)(nil)
