// Package core holds Starling's shared state: whether a broadcast is live
// and who is sending it, the settings snapshot, and the secrets.
package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/starling-live/starling/core/data"
)

// ErrAlreadyLive refuses a second publisher while one is live.
var ErrAlreadyLive = errors.New("a broadcast is already live: only one publisher at a time")

// StreamDetails is what the publisher's encoder announced in onMetaData.
// Zero values mean the encoder did not say.
type StreamDetails struct {
	Width        int     `json:"width"`
	Height       int     `json:"height"`
	FrameRate    float64 `json:"framerate"`
	VideoBitrate int     `json:"videoBitrate"` // kbit/s
	VideoCodec   string  `json:"videoCodec"`
	AudioBitrate int     `json:"audioBitrate"` // kbit/s
	AudioCodec   string  `json:"audioCodec"`
	Encoder      string  `json:"encoder"`
}

// Broadcaster is the publisher of the live broadcast.
type Broadcaster struct {
	RemoteAddr    string        `json:"remoteAddr"`
	Time          time.Time     `json:"time"`
	StreamDetails StreamDetails `json:"streamDetails"`
}

// Status is a copy of the live state.
type Status struct {
	Online bool
	// Broadcaster is nil while offline.
	Broadcaster *Broadcaster
	// LastConnect and LastDisconnect are the start and end of the latest
	// broadcast; nil if there never was one.
	LastConnect    *time.Time
	LastDisconnect *time.Time
}

// State keys of the broadcast times, kept across restarts.
const (
	stateLastConnect    = "last_connect_time"
	stateLastDisconnect = "last_disconnect_time"
)

// Listener is told when a broadcast starts and ends, in order, outside
// the Stream's lock.
type Listener interface {
	BroadcastStarted(Status)
	BroadcastEnded(Status)
}

// Stream is the live state of the one stream this server carries.
type Stream struct {
	log   *slog.Logger
	store *data.Store
	// listeners are set before the server starts and never change.
	listeners []Listener

	// mu guards status; Status hands out copies.
	mu     sync.Mutex
	status Status
}

// AddListener adds l. Call it before the server starts.
func (s *Stream) AddListener(l Listener) { s.listeners = append(s.listeners, l) }

// NewStream loads the times of the last broadcast.
func NewStream(ctx context.Context, log *slog.Logger, store *data.Store) (*Stream, error) {
	s := &Stream{log: log, store: store}
	for key, dst := range map[string]**time.Time{stateLastConnect: &s.status.LastConnect, stateLastDisconnect: &s.status.LastDisconnect} {
		raw, err := store.State(ctx, key)
		if errors.Is(err, data.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		t, err := time.Parse(time.RFC3339Nano, raw)
		if err != nil {
			return nil, fmt.Errorf("stored %s %q is not a time: %w", key, raw, err)
		}
		*dst = &t
	}
	// A broadcast that started after the last one ended was live when the
	// server stopped without ending it (a crash, kill -9, power loss): it
	// ended then, and now is the best bound for when.
	if c, d := s.status.LastConnect, s.status.LastDisconnect; c != nil && (d == nil || d.Before(*c)) {
		end := time.Now()
		if end.Before(*c) { // the clock went back
			end = *c
		}
		s.status.LastDisconnect = &end
		s.persist(stateLastDisconnect, end)
	}
	return s, nil
}

// Begin makes b the live broadcaster, or returns ErrAlreadyLive.
func (s *Stream) Begin(b Broadcaster) error {
	s.mu.Lock()
	if s.status.Online {
		s.mu.Unlock()
		return ErrAlreadyLive
	}
	now := b.Time
	s.status.Online = true
	s.status.Broadcaster = &b
	s.status.LastConnect = &now
	s.persist(stateLastConnect, now)
	s.mu.Unlock()
	st := s.Status()
	for _, l := range s.listeners {
		l.BroadcastStarted(st)
	}
	return nil
}

// Replace makes b the broadcaster of the live broadcast, which goes on:
// a new publisher took it over.
func (s *Stream) Replace(b Broadcaster) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status.Online {
		s.status.Broadcaster = &b
	}
}

// SetDetails records what the encoder announced.
func (s *Stream) SetDetails(d StreamDetails) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status.Broadcaster != nil {
		b := *s.status.Broadcaster
		b.StreamDetails = d
		s.status.Broadcaster = &b
	}
}

// End marks the broadcast as over.
func (s *Stream) End() {
	s.mu.Lock()
	if !s.status.Online {
		s.mu.Unlock()
		return
	}
	now := time.Now()
	s.status.Online = false
	s.status.Broadcaster = nil
	s.status.LastDisconnect = &now
	s.persist(stateLastDisconnect, now)
	s.mu.Unlock()
	st := s.Status()
	for _, l := range s.listeners {
		l.BroadcastEnded(st)
	}
}

// persist stores a broadcast time. Losing one is harmless (the status shows
// an older time after a restart), so a failure is logged, not returned.
func (s *Stream) persist(key string, t time.Time) {
	if err := s.store.SetState(context.Background(), key, t.UTC().Format(time.RFC3339Nano)); err != nil {
		s.log.Warn("could not store broadcast time", "key", key, "err", err)
	}
}

// Status returns a copy of the live state.
func (s *Stream) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	if st.Broadcaster != nil {
		b := *st.Broadcaster
		st.Broadcaster = &b
	}
	return st
}
