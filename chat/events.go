package chat

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"time"

	"github.com/starling-live/starling/core/data"
)

// Event types, as Owncast names them (core/chat/events/eventtype.go), so
// Owncast bots and overlays understand them.
const (
	TypeChat              = "CHAT"
	TypeNameChange        = "NAME_CHANGE"
	TypeColorChange       = "COLOR_CHANGE"
	TypeUserJoined        = "USER_JOINED"
	TypeUserParted        = "USER_PARTED"
	TypeVisibilityUpdate  = "VISIBILITY-UPDATE"
	TypeSystem            = "SYSTEM"
	TypeChatAction        = "CHAT_ACTION"
	TypeConnectedUserInfo = "CONNECTED_USER_INFO"
	TypeStreamStarted     = "STREAM_STARTED"
	TypeStreamStopped     = "STREAM_STOPPED"
	TypeNeedsRegistration = "ERROR_NEEDS_REGISTRATION"
	TypeUserDisabled      = "ERROR_USER_DISABLED"
	TypeMaxConnections    = "ERROR_MAX_CONNECTIONS_EXCEEDED"
	TypePing              = "PING"
	TypePong              = "PONG"
	TypeChatStatus        = "CHAT_STATUS" // Starling's: whether chat is open, and why not
	// Fediverse engagement: someone followed the stream, liked or boosted
	// one of its posts.
	TypeFediverseFollow    = "FEDIVERSE_ENGAGEMENT_FOLLOW"
	TypeFediverseLike      = "FEDIVERSE_ENGAGEMENT_LIKE"
	TypeFediverseRepost    = "FEDIVERSE_ENGAGEMENT_REPOST"
	ScopeModerator         = "MODERATOR"
	maxColor               = 7
	defaultHistoryMessages = 50
)

// Error codes of CHAT_ACTION events sent to one connection (docs/chat.md).
const (
	ErrCodeBadMessage     = "BAD_MESSAGE"
	ErrCodeTooLong        = "MESSAGE_TOO_LONG"
	ErrCodeEmpty          = "EMPTY_MESSAGE"
	ErrCodeRateLimited    = "RATE_LIMITED"
	ErrCodeFlooding       = "FLOODING"
	ErrCodeChatOff        = "CHAT_OFF"
	ErrCodeNameTaken      = "NAME_TAKEN"
	ErrCodeNameForbidden  = "NAME_FORBIDDEN"
	ErrCodeNameInvalid    = "NAME_INVALID"
	ErrCodeColorInvalid   = "COLOR_INVALID"
	ErrCodeInternalFailed = "INTERNAL_ERROR"
)

// User is a chat user as clients see it: Owncast's user JSON.
type User struct {
	ID            string     `json:"id"`
	DisplayName   string     `json:"displayName"`
	DisplayColor  int        `json:"displayColor"`
	CreatedAt     time.Time  `json:"createdAt"`
	DisabledAt    *time.Time `json:"disabledAt,omitempty"`
	PreviousNames []string   `json:"previousNames"`
	NameChangedAt *time.Time `json:"nameChangedAt,omitempty"`
	Scopes        []string   `json:"scopes,omitempty"`
	IsBot         bool       `json:"isBot"`
	Authenticated bool       `json:"authenticated"`
}

// IsModerator says whether the user may hide messages and disable users.
func (u *User) IsModerator() bool {
	for _, s := range u.Scopes {
		if s == ScopeModerator {
			return true
		}
	}
	return false
}

func userFromData(d data.ChatUser) *User {
	return &User{
		ID:            d.ID,
		DisplayName:   d.DisplayName,
		DisplayColor:  d.DisplayColor,
		CreatedAt:     d.CreatedAt,
		DisabledAt:    d.DisabledAt,
		PreviousNames: d.PreviousNames,
		NameChangedAt: d.NameChangedAt,
		Scopes:        d.Scopes,
		IsBot:         d.Bot,
	}
}

// Event is every event's JSON: the fields of all types, each type using
// its own (docs/chat.md).
type Event struct {
	Type      string    `json:"type"`
	ID        string    `json:"id"`
	Timestamp time.Time `json:"timestamp"`
	User      *User     `json:"user,omitempty"`
	Body      string    `json:"body,omitempty"`
	// Visible is set on CHAT events, and on VISIBILITY-UPDATE.
	Visible *bool `json:"visible,omitempty"`
	// OldName is set on NAME_CHANGE.
	OldName string `json:"oldName,omitempty"`
	// IDs is set on VISIBILITY-UPDATE.
	IDs []string `json:"ids,omitempty"`
	// Error is the code of a CHAT_ACTION sent to one connection.
	Error string `json:"error,omitempty"`
	// Enabled and Reason are set on CHAT_STATUS.
	Enabled *bool  `json:"enabled,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// Title, Link and Image are set on FEDIVERSE_ENGAGEMENT_*: who it was
	// (their handle), their profile and their avatar. They come from a
	// remote server: plain text and URLs, never HTML.
	Title string `json:"title,omitempty"`
	Link  string `json:"link,omitempty"`
	Image string `json:"image,omitempty"`
}

func newEvent(typ string) *Event {
	return &Event{Type: typ, ID: newID(), Timestamp: time.Now().UTC()}
}

// encode returns the event's JSON. Bodies are HTML: left unescaped, each
// < is one byte on the wire instead of six.
func (e *Event) encode() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		// Every field is a plain value: this cannot happen.
		panic(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
}

func boolPtr(b bool) *bool { return &b }

// inbound is what a client sends.
type inbound struct {
	Type     string `json:"type"`
	Body     string `json:"body"`
	NewName  string `json:"newName"`
	NewColor *int   `json:"newColor"`
}

// newID returns a random 16-character id (80 bits).
func newID() string { return rand.Text()[:16] }
