package core_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/starling-live/starling/core"
)

// fuzzAddrs are the client addresses reports come from.
var fuzzAddrs = []string{"203.0.113.1", "203.0.113.2", "2001:db8::1", "198.51.100.7"}

// FuzzPlayback feeds viewers' playback reports to Playback as the API
// gets them: each line of reports is a request body, decoded as
// controllers.readJSON decodes it, then recorded. Byte i of steps says
// where report i comes from (its low 2 bits pick an address) and how much
// later than the one before (the rest: up to 8 s in steps of 250 ms, or
// up to 21 min in steps of 40 s).
//
// After every report it checks that a refusal is one the API answers as
// the client's fault (ErrBadReport, ErrTooManyViewers) and changes no
// figure, that totals never go down or below zero, that the viewers
// counted are exactly those whose last accepted report is recent, at most
// MaxViewersPerAddress an address, and that the offload ratio is within
// [0, 1].
func FuzzPlayback(f *testing.F) {
	seeds := []struct {
		reports []string
		steps   []byte
	}{
		{[]string{
			`{"viewerId":"viewer-a1","httpBytes":1000,"p2pEnabled":true}`,
			`{"viewerId":"viewer-b1","httpBytes":500,"p2pBytes":500,"p2pEnabled":true}`,
			`{"viewerId":"viewer-a1","httpBytes":1000,"p2pBytes":3000,"p2pUploadedBytes":700,"p2pEnabled":true}`,
			`{"viewerId":"viewer-b1","httpBytes":100}`,
		}, []byte{0, 4, 16, 4}},
		// Quiet viewers, forgotten ones, a tab woken from sleep.
		{[]string{
			`{"viewerId":"viewer-a1","httpBytes":2000,"p2pBytes":3000}`,
			`{"viewerId":"viewer-a1","httpBytes":2500,"p2pBytes":3000}`,
			`{"viewerId":"viewer-a1","httpBytes":2600,"p2pBytes":3100,"p2pRejectedSegments":2}`,
		}, []byte{0, 33 << 2, 50 << 2}},
		// A phone that changes networks.
		{[]string{
			`{"viewerId":"phone-0001","httpBytes":10,"p2pEnabled":true}`,
			`{"viewerId":"phone-0001","httpBytes":20,"p2pEnabled":true}`,
		}, []byte{0, 1 | 4}},
		// Refused: bad ids, negative counters, more than 1 GiB at once,
		// and bodies the API cannot decode.
		{[]string{
			`{"viewerId":"short"}`,
			`{"viewerId":"has spaces in it"}`,
			`{"viewerId":"viewer-ok1","httpBytes":-1}`,
			`{"viewerId":"viewer-ok1","p2pBytes":2147483648}`,
			`{"viewerId":"viewer-ok1","httpBytes":"1"}`,
			`{"viewerId":"viewer-ok1","httpBytes":1e3}`,
			`{"viewerId":"viewer-ok1"} trailing`,
			`[]`,
		}, nil},
	}
	for _, s := range seeds {
		f.Add([]byte(strings.Join(s.reports, "\n")), s.steps)
	}
	// One address past MaxViewersPerAddress.
	var many []string
	for i := range core.MaxViewersPerAddress + 2 {
		many = append(many, fmt.Sprintf(`{"viewerId":"viewer-%03d","httpBytes":100,"p2pBytes":100}`, i))
	}
	f.Add([]byte(strings.Join(many, "\n")), []byte{})

	f.Fuzz(func(t *testing.T, reports, steps []byte) {
		p := core.NewPlayback()
		now := time.Date(2026, 3, 1, 20, 0, 0, 0, time.UTC)
		// last is each viewer's last accepted report, the model the
		// counts are checked against.
		type accepted struct {
			at      time.Time
			address string
			p2p     bool
		}
		last := map[string]accepted{}
		prev := p.Stats(now)
		for i, body := range bytes.Split(reports, []byte{'\n'}) {
			if i == 64 {
				break
			}
			var step byte
			if i < len(steps) {
				step = steps[i]
			}
			addr := fuzzAddrs[step&3]
			if n := time.Duration(step >> 2); n < 32 {
				now = now.Add(n * 250 * time.Millisecond)
			} else {
				now = now.Add((n - 32) * 40 * time.Second)
			}

			var rep core.PlaybackReport
			dec := json.NewDecoder(http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(body)), 1<<20))
			if dec.Decode(&rep) != nil {
				continue // the API answers 400 before Record
			}
			before := p.Stats(now)
			err := p.Record(rep, addr, now)
			st := p.Stats(now)
			switch {
			case err == nil:
				last[rep.ViewerID] = accepted{now, addr, rep.P2PEnabled}
			case errors.Is(err, core.ErrBadReport) || errors.Is(err, core.ErrTooManyViewers):
				if st != before {
					t.Fatalf("report %d %s was refused (%v) but changed the figures from %+v to %+v", i, body, err, before, st)
				}
			default:
				t.Fatalf("report %d %s: %v is neither ErrBadReport nor ErrTooManyViewers, so the API answers 500", i, body, err)
			}

			if st.HTTPBytes < 0 || st.P2PBytes < 0 || st.P2PUploadedBytes < 0 || st.P2PRejectedSegments < 0 {
				t.Fatalf("after report %d %s a total is negative: %+v", i, body, st)
			}
			if st.HTTPBytes < prev.HTTPBytes || st.P2PBytes < prev.P2PBytes || st.P2PUploadedBytes < prev.P2PUploadedBytes || st.P2PRejectedSegments < prev.P2PRejectedSegments {
				t.Fatalf("after report %d %s a total went down: %+v, then %+v", i, body, prev, st)
			}
			if math.IsNaN(st.OffloadRatio) || st.OffloadRatio < 0 || st.OffloadRatio > 1 {
				t.Fatalf("after report %d %s the offload ratio is %v", i, body, st.OffloadRatio)
			}
			viewers, p2p, perAddr := 0, 0, map[string]int{}
			for _, a := range last {
				if now.Sub(a.at) <= core.ViewerTimeout {
					viewers++
					perAddr[a.address]++
					if a.p2p {
						p2p++
					}
				}
			}
			if st.Viewers != viewers || st.P2PViewers != p2p {
				t.Fatalf("after report %d %s: %d viewers, %d with P2P; want %d and %d, those that reported in the last %s",
					i, body, st.Viewers, st.P2PViewers, viewers, p2p, core.ViewerTimeout)
			}
			for a, n := range perAddr {
				if n > core.MaxViewersPerAddress {
					t.Fatalf("after report %d %s, %s counts for %d viewers, more than %d", i, body, a, n, core.MaxViewersPerAddress)
				}
			}
			prev = st
		}
	})
}
