package webhooks

import (
	"crypto/rand"
	"strings"
	"time"

	"github.com/starling-live/starling/chat"
	"github.com/starling-live/starling/core"
)

// Event types a webhook can be sent: Owncast's names (models/eventType.go),
// so that Owncast integrations understand them.
const (
	EventChat          = "CHAT"
	EventUserJoined    = "USER_JOINED"
	EventUserParted    = "USER_PARTED"
	EventNameChange    = "NAME_CHANGE"
	EventVisibility    = "VISIBILITY-UPDATE"
	EventStreamStarted = "STREAM_STARTED"
	EventStreamStopped = "STREAM_STOPPED"
	EventTitleUpdated  = "STREAM_TITLE_UPDATED"
)

// Events are the event types, in the order the API lists them.
var Events = []string{EventChat, EventUserJoined, EventUserParted, EventNameChange, EventVisibility, EventStreamStarted, EventStreamStopped, EventTitleUpdated}

// eventBit is an event type's bit in a webhook's mask; 0 for an unknown one.
func eventBit(typ string) uint16 {
	for i, e := range Events {
		if e == typ {
			return 1 << i
		}
	}
	return 0
}

// payload is the body of a delivery: Owncast's WebhookEvent.
type payload struct {
	Type      string `json:"type"`
	EventData any    `json:"eventData"`
}

// Owncast's eventData of each event type (core/webhooks/*.go); Starling's
// additions are marked.

// chatMessage is the eventData of CHAT. Owncast also has clientId and
// rawBody, both omitted when empty: Starling has neither.
type chatMessage struct {
	User      *chat.User `json:"user,omitempty"`
	Body      string     `json:"body,omitempty"`
	ID        string     `json:"id,omitempty"`
	Visible   bool       `json:"visible"`
	Timestamp *time.Time `json:"timestamp,omitempty"`
}

// userEvent is the eventData of USER_JOINED and USER_PARTED.
type userEvent struct {
	ID        string     `json:"id"`
	Timestamp time.Time  `json:"timestamp"`
	User      *chat.User `json:"user"`
}

// nameChange is the eventData of NAME_CHANGE; user is the user renamed.
type nameChange struct {
	ID        string     `json:"id"`
	Timestamp time.Time  `json:"timestamp"`
	User      *chat.User `json:"user"`
	NewName   string     `json:"newName"`
	// OldName is Starling's.
	OldName string `json:"oldName"`
}

// visibilityUpdate is the eventData of VISIBILITY-UPDATE. User is always
// null, as in Owncast: the hub does not say who hid the messages.
type visibilityUpdate struct {
	ID        string     `json:"id"`
	Timestamp time.Time  `json:"timestamp"`
	User      *chat.User `json:"user"`
	Visible   bool       `json:"visible"`
	IDs       []string   `json:"ids"`
}

// streamStatus is the eventData of STREAM_STARTED, STREAM_STOPPED and
// STREAM_TITLE_UPDATED.
type streamStatus struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Summary     string    `json:"summary"`
	StreamTitle string    `json:"streamTitle"`
	Timestamp   time.Time `json:"timestamp"`
}

// The service is a stream listener: each broadcast's start and end.
var _ core.Listener = (*Service)(nil)

// BroadcastStarted sends STREAM_STARTED, with the title the broadcast
// started with.
func (s *Service) BroadcastStarted(b core.Broadcast) {
	s.submit(EventStreamStarted, s.streamStatus(b.ID, b.Title, b.StartedAt))
}

// BroadcastEnded sends STREAM_STOPPED, with the broadcast's id: the same
// as its STREAM_STARTED's.
func (s *Service) BroadcastEnded(b core.Broadcast) {
	s.submit(EventStreamStopped, s.streamStatus(b.ID, b.Title, b.EndedAt))
}

func (s *Service) streamStatus(id, title string, at time.Time) streamStatus {
	st := streamStatus{ID: id, StreamTitle: title, Timestamp: at.UTC()}
	if s.settings != nil {
		cur := s.settings.Get()
		st.Name, st.Summary = cur.Name, cur.Summary
	}
	return st
}

// The service is a settings listener: the stream title.
var _ core.SettingsListener = (*Service)(nil)

// SettingsChanged sends STREAM_TITLE_UPDATED when the title changed. It
// runs under the settings lock, and only queues.
func (s *Service) SettingsChanged(old, new *core.Settings) {
	if old.StreamTitle == new.StreamTitle {
		return
	}
	s.submit(EventTitleUpdated, streamStatus{
		ID: newID(), Name: new.Name, Summary: new.Summary, StreamTitle: new.StreamTitle, Timestamp: time.Now().UTC(),
	})
}

// ChatEvent takes an event the chat hub accepted for everyone
// (chat.Deps.Observe). It runs on the hub's goroutine: it copies what it
// needs and queues, never blocking. The event and its user are not
// modified after the hub accepted them.
func (s *Service) ChatEvent(ev *chat.Event) {
	switch ev.Type {
	case chat.TypeChat:
		ts := ev.Timestamp
		s.submit(EventChat, chatMessage{User: ev.User, Body: ev.Body, ID: ev.ID, Visible: ev.Visible == nil || *ev.Visible, Timestamp: &ts})
	case chat.TypeUserJoined:
		s.submit(EventUserJoined, userEvent{ID: ev.ID, Timestamp: ev.Timestamp, User: ev.User})
	case chat.TypeUserParted:
		s.submit(EventUserParted, userEvent{ID: ev.ID, Timestamp: ev.Timestamp, User: ev.User})
	case chat.TypeNameChange:
		nc := nameChange{ID: ev.ID, Timestamp: ev.Timestamp, User: ev.User, OldName: ev.OldName}
		if ev.User != nil {
			nc.NewName = ev.User.DisplayName
		}
		s.submit(EventNameChange, nc)
	case chat.TypeVisibilityUpdate:
		ids := append([]string{}, ev.IDs...)
		s.submit(EventVisibility, visibilityUpdate{ID: ev.ID, Timestamp: ev.Timestamp, Visible: ev.Visible != nil && *ev.Visible, IDs: ids})
	}
}

// newID is a random id for events that have none of their own.
func newID() string { return strings.ToLower(rand.Text()[:16]) }
