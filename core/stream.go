// Package core holds Starling's shared state: whether a broadcast is live
// and who is sending it, the settings snapshot, and the secrets.
package core

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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

// Broadcast is one broadcast as one of its transitions saw it.
type Broadcast struct {
	// ID names the broadcast, the same in its start and its end.
	ID string `json:"id"`
	// Title is the stream title when the broadcast started.
	Title     string    `json:"title"`
	StartedAt time.Time `json:"startedAt"`
	// EndedAt is zero when the broadcast starts.
	EndedAt time.Time `json:"endedAt,omitzero"`
	// Broadcaster is who started it.
	Broadcaster Broadcaster `json:"broadcaster"`
}

// Listener is told when a broadcast starts and ends. Each listener hears
// the transitions in the order they happened, on a goroutine of its own:
// a slow listener never holds up the publisher, nor the others.
type Listener interface {
	BroadcastStarted(Broadcast)
	BroadcastEnded(Broadcast)
}

type titleSource interface{ Get() *Settings }

// StreamDeps are what a Stream needs.
type StreamDeps struct {
	Logger *slog.Logger
	Store  *data.Store
	// Settings give a broadcast its title; nil leaves it empty.
	Settings titleSource
}

// Stream is the live state of the one stream this server carries.
type Stream struct {
	log      *slog.Logger
	store    *data.Store
	settings titleSource
	// queues are one per listener, added before Start and never after.
	queues []*eventQueue
	wg     sync.WaitGroup

	// mu guards status and current, and orders the transitions: their
	// events are queued under it. Status hands out copies.
	mu      sync.Mutex
	status  Status
	current Broadcast
}

// AddListener adds l. Call it before Start.
func (s *Stream) AddListener(l Listener) {
	s.queues = append(s.queues, &eventQueue{l: l, wake: make(chan struct{}, 1)})
}

// NewStream loads the times of the last broadcast, and closes one that the
// server stopped in without ending it.
func NewStream(ctx context.Context, d StreamDeps) (*Stream, error) {
	s := &Stream{log: d.Logger, store: d.Store, settings: d.Settings}
	for key, dst := range map[string]**time.Time{stateLastConnect: &s.status.LastConnect, stateLastDisconnect: &s.status.LastDisconnect} {
		raw, err := d.Store.State(ctx, key)
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

// Start delivers events to the listeners until Close.
func (s *Stream) Start() {
	for _, q := range s.queues {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			q.run()
		}()
	}
}

// Close delivers what is queued, then stops. Transitions after Close are
// not delivered.
func (s *Stream) Close() error {
	s.mu.Lock()
	for _, q := range s.queues {
		q.close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Begin makes b the live broadcaster, or returns ErrAlreadyLive.
func (s *Stream) Begin(b Broadcaster) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status.Online {
		return ErrAlreadyLive
	}
	now := b.Time
	s.status.Online = true
	s.status.Broadcaster = &b
	s.status.LastConnect = &now
	s.persist(stateLastConnect, now)
	s.current = Broadcast{ID: strings.ToLower(rand.Text()[:16]), StartedAt: now, Broadcaster: b}
	if s.settings != nil {
		s.current.Title = s.settings.Get().StreamTitle
	}
	s.emit(event{started: true, b: s.current})
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
	defer s.mu.Unlock()
	if !s.status.Online {
		return
	}
	now := time.Now()
	s.status.Online = false
	s.status.Broadcaster = nil
	s.status.LastDisconnect = &now
	s.persist(stateLastDisconnect, now)
	s.current.EndedAt = now
	s.emit(event{b: s.current})
}

// emit queues ev for every listener. Called with s.mu held, so that every
// listener gets the transitions in their order.
func (s *Stream) emit(ev event) {
	for _, q := range s.queues {
		q.push(ev)
	}
}

// event is a transition of the stream.
type event struct {
	started bool
	b       Broadcast
}

// eventQueue delivers events to one listener, in order, on the goroutine
// that runs run. push never blocks: the queue grows instead (a broadcast
// starts and ends a few times a day, so it stays short).
type eventQueue struct {
	l    Listener
	wake chan struct{} // holds a token when there may be work

	// mu guards events and closed.
	mu     sync.Mutex
	events []event
	closed bool
}

func (q *eventQueue) push(ev event) {
	q.mu.Lock()
	if !q.closed {
		q.events = append(q.events, ev)
	}
	q.mu.Unlock()
	q.signal()
}

func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *eventQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run delivers events until the queue is closed and empty.
func (q *eventQueue) run() {
	for range q.wake {
		q.mu.Lock()
		evs, closed := q.events, q.closed
		q.events = nil
		q.mu.Unlock()
		for _, ev := range evs {
			if ev.started {
				q.l.BroadcastStarted(ev.b)
			} else {
				q.l.BroadcastEnded(ev.b)
			}
		}
		if closed {
			return
		}
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
