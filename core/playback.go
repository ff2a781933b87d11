package core

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"time"
)

// PlaybackReport is what a viewer's page reports every few seconds: its
// cumulative counters since the page loaded.
type PlaybackReport struct {
	ViewerID            string `json:"viewerId"`
	HTTPBytes           int64  `json:"httpBytes"`
	P2PBytes            int64  `json:"p2pBytes"`
	P2PUploadedBytes    int64  `json:"p2pUploadedBytes"`
	P2PRejectedSegments int64  `json:"p2pRejectedSegments"`
	P2PEnabled          bool   `json:"p2pEnabled"`
	// UserAgent is the page's browser, from the request, not the body.
	UserAgent string `json:"-"`
}

// PlaybackStats aggregate the reports.
type PlaybackStats struct {
	// Viewers reported within the last ViewerTimeout; P2PViewers of them
	// have P2P on.
	Viewers    int `json:"viewers"`
	P2PViewers int `json:"p2pViewers"`
	// Totals since the server started.
	HTTPBytes           int64 `json:"httpBytes"`
	P2PBytes            int64 `json:"p2pBytes"`
	P2PUploadedBytes    int64 `json:"p2pUploadedBytes"`
	P2PRejectedSegments int64 `json:"p2pRejectedSegments"`
	// OffloadRatio is the share of segment bytes viewers got from each
	// other over the last OffloadWindow: P2P / (P2P + HTTP), 0 when idle.
	OffloadRatio float64 `json:"offloadRatio"`
}

// Playback windows.
const (
	// ViewerTimeout stops counting a viewer whose page stopped reporting.
	ViewerTimeout = 30 * time.Second
	// forgetAfter drops a quiet viewer's last counters. Until then a page
	// that comes back (a tab woken from sleep) adds only what is new.
	forgetAfter = 10 * time.Minute
	// OffloadWindow is the span of the live offload ratio.
	OffloadWindow = time.Minute
	bucketSpan    = 5 * time.Second
)

// Limits on what one report may claim, so a forged report cannot skew the
// figures much: no viewer downloads 1 GiB in the seconds between reports.
const (
	maxReportDelta   = 1 << 30
	maxRejectedDelta = 10_000 // segments: a few a second at most
	maxViewers       = 100_000
	// MaxViewersPerAddress is how many viewers one client address counts
	// for at a time: a household or a classroom behind one NAT, not a
	// script inventing an audience.
	MaxViewersPerAddress = 20
)

// ErrBadReport is wrapped by Record for a report it refuses.
var ErrBadReport = errors.New("bad playback report")

// ErrTooManyViewers is wrapped by Record for a new viewer from an address
// that already counts for MaxViewersPerAddress.
var ErrTooManyViewers = errors.New("too many viewers from one address")

var viewerIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{8,64}$`)

// Playback aggregates viewers' playback reports. It is safe for
// concurrent use.
type Playback struct {
	// mu guards the fields below.
	mu      sync.Mutex
	viewers map[string]*viewer
	// perAddress counts the viewers of each client address.
	perAddress map[string]int
	totals     PlaybackStats
	// buckets hold HTTP and P2P bytes per bucketSpan, a ring over the
	// offload window; bucketAt is the start of the newest.
	buckets  [OffloadWindow / bucketSpan][2]int64
	bucketAt time.Time
	newest   int
}

type viewer struct {
	last      PlaybackReport
	firstSeen time.Time
	seen      time.Time
	address   string
}

// Viewer is a viewer whose page reports, for the admin.
type Viewer struct {
	ID        string    `json:"clientID"`
	Address   string    `json:"ipAddress"`
	UserAgent string    `json:"userAgent"`
	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`
}

// Viewers returns the viewers counted at now, longest watching first.
func (p *Playback) Viewers(now time.Time) []Viewer {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := []Viewer{}
	for id, v := range p.viewers {
		if now.Sub(v.seen) <= ViewerTimeout {
			out = append(out, Viewer{ID: id, Address: v.address, UserAgent: v.last.UserAgent, FirstSeen: v.firstSeen, LastSeen: v.seen})
		}
	}
	slices.SortFunc(out, func(a, b Viewer) int { return a.FirstSeen.Compare(b.FirstSeen) })
	return out
}

// NewPlayback returns an empty aggregate.
func NewPlayback() *Playback {
	return &Playback{viewers: map[string]*viewer{}, perAddress: map[string]int{}}
}

// Record adds a report received at now from a client address.
func (p *Playback) Record(r PlaybackReport, address string, now time.Time) error {
	if !viewerIDPattern.MatchString(r.ViewerID) {
		return fmt.Errorf("%w: viewerId must be 8 to 64 letters, digits, '-' or '_'", ErrBadReport)
	}
	if r.HTTPBytes < 0 || r.P2PBytes < 0 || r.P2PUploadedBytes < 0 || r.P2PRejectedSegments < 0 {
		return fmt.Errorf("%w: counters cannot be negative", ErrBadReport)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expire(now)
	v := p.viewers[r.ViewerID]
	if v == nil || v.address != address {
		// A new viewer, or one that moved (a phone that changed
		// networks): it counts where it is now, with the counters it had.
		if v == nil && len(p.viewers) >= maxViewers {
			return fmt.Errorf("%w: too many viewers reporting", ErrBadReport)
		}
		if p.perAddress[address] >= MaxViewersPerAddress {
			p.forgetQuiet(address, now)
		}
		if p.perAddress[address] >= MaxViewersPerAddress {
			return fmt.Errorf("%w: your address counts for %d viewers already", ErrTooManyViewers, MaxViewersPerAddress)
		}
		if v == nil {
			v = &viewer{firstSeen: now}
			p.viewers[r.ViewerID] = v
		} else {
			p.release(v.address)
		}
		v.address = address
		p.perAddress[address]++
	}
	// Counters only grow while a page lives; smaller ones mean the page
	// was reloaded and counts from zero again.
	d := PlaybackReport{
		HTTPBytes:           delta(r.HTTPBytes, v.last.HTTPBytes),
		P2PBytes:            delta(r.P2PBytes, v.last.P2PBytes),
		P2PUploadedBytes:    delta(r.P2PUploadedBytes, v.last.P2PUploadedBytes),
		P2PRejectedSegments: delta(r.P2PRejectedSegments, v.last.P2PRejectedSegments),
	}
	if d.HTTPBytes > maxReportDelta || d.P2PBytes > maxReportDelta || d.P2PUploadedBytes > maxReportDelta {
		return fmt.Errorf("%w: more than 1 GiB since the last report", ErrBadReport)
	}
	if d.P2PRejectedSegments > maxRejectedDelta {
		return fmt.Errorf("%w: more than %d rejected segments since the last report", ErrBadReport, maxRejectedDelta)
	}
	v.last, v.seen = r, now
	p.totals.HTTPBytes += d.HTTPBytes
	p.totals.P2PBytes += d.P2PBytes
	p.totals.P2PUploadedBytes += d.P2PUploadedBytes
	p.totals.P2PRejectedSegments += d.P2PRejectedSegments
	b := p.bucket(now)
	b[0] += d.HTTPBytes
	b[1] += d.P2PBytes
	return nil
}

func delta(now, before int64) int64 {
	if now < before {
		return now
	}
	return now - before
}

// bucket returns the ring slot for now, clearing the slots it skips.
func (p *Playback) bucket(now time.Time) *[2]int64 {
	if p.bucketAt.IsZero() {
		p.bucketAt = now.Truncate(bucketSpan)
	}
	for steps := 0; now.Sub(p.bucketAt) >= bucketSpan && steps <= len(p.buckets); steps++ {
		p.bucketAt = p.bucketAt.Add(bucketSpan)
		p.newest = (p.newest + 1) % len(p.buckets)
		p.buckets[p.newest] = [2]int64{}
	}
	if now.Sub(p.bucketAt) >= bucketSpan {
		p.bucketAt = now.Truncate(bucketSpan)
	}
	return &p.buckets[p.newest]
}

func (p *Playback) expire(now time.Time) {
	for id, v := range p.viewers {
		if now.Sub(v.seen) > forgetAfter {
			p.forget(id, v)
		}
	}
}

// forgetQuiet drops the viewers of an address that no longer count
// (quiet for ViewerTimeout), to make room for new ones.
func (p *Playback) forgetQuiet(address string, now time.Time) {
	for id, v := range p.viewers {
		if v.address == address && now.Sub(v.seen) > ViewerTimeout {
			p.forget(id, v)
		}
	}
}

func (p *Playback) forget(id string, v *viewer) {
	delete(p.viewers, id)
	p.release(v.address)
}

func (p *Playback) release(address string) {
	if p.perAddress[address]--; p.perAddress[address] <= 0 {
		delete(p.perAddress, address)
	}
}

// Stats returns the aggregate at now.
func (p *Playback) Stats(now time.Time) PlaybackStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expire(now)
	st := p.totals
	for _, v := range p.viewers {
		if now.Sub(v.seen) > ViewerTimeout {
			continue
		}
		st.Viewers++
		if v.last.P2PEnabled {
			st.P2PViewers++
		}
	}
	p.bucket(now)
	var http, p2p int64
	for _, b := range p.buckets {
		http += b[0]
		p2p += b[1]
	}
	if http+p2p > 0 {
		st.OffloadRatio = float64(p2p) / float64(http+p2p)
	}
	return st
}
