package chat

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/data"
)

// Errors callers branch on.
var (
	ErrUnknownToken = errors.New("unknown chat access token")
	ErrUnknownUser  = errors.New("no such chat user")
	ErrBanned       = errors.New("this address is banned from chat")
	ErrBadAddress   = errors.New("not an IP address")
	ErrEmptyMessage = errors.New("the message is empty: nothing visible is left of it")
)

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Registration is a new user and the token that is them.
type Registration struct {
	User        *User
	AccessToken string
}

// Register creates an anonymous user. A wanted name that is taken,
// forbidden or invalid is replaced by a generated one.
func (h *Hub) Register(ctx context.Context, wantedName, ip string) (Registration, error) {
	if h.Banned(ip) {
		return Registration{}, ErrBanned
	}
	token := rand.Text()
	u := data.ChatUser{
		ID:           newID(),
		DisplayColor: randIntn(maxColor + 1),
		CreatedAt:    time.Now().UTC(),
	}
	wantedName = strings.TrimSpace(wantedName)
	for attempt := 0; ; attempt++ {
		switch {
		case attempt == 0 && wantedName != "" && h.checkName(wantedName) == nil:
			u.DisplayName = wantedName
		case attempt < 5:
			u.DisplayName = h.generateName()
		default:
			// The name pool is crowded: a number makes it unique.
			u.DisplayName = fmt.Sprintf("%s %d", h.generateName(), randIntn(10_000))
		}
		u.PreviousNames = []string{u.DisplayName}
		err := h.d.Store.CreateChatUser(ctx, u, hashToken(token))
		if errors.Is(err, data.ErrNameTaken) && attempt < 20 {
			continue
		}
		if err != nil {
			return Registration{}, err
		}
		return Registration{User: userFromData(u), AccessToken: token}, nil
	}
}

// Authenticate returns the user an access token belongs to.
func (h *Hub) Authenticate(ctx context.Context, token string) (*User, error) {
	if token == "" {
		return nil, ErrUnknownToken
	}
	d, err := h.d.Store.ChatUserByToken(ctx, hashToken(token))
	if errors.Is(err, data.ErrNotFound) {
		return nil, ErrUnknownToken
	}
	if err != nil {
		return nil, err
	}
	return userFromData(d), nil
}

type nameError struct{ code, msg string }

func (e *nameError) Error() string { return e.msg }

// checkName says what is wrong with a display name, if anything; whether
// it is taken is the database's to say.
func (h *Hub) checkName(name string) error {
	n := utf8.RuneCountInString(name)
	if n == 0 || n > core.MaxChatNameLength {
		return &nameError{ErrCodeNameInvalid, fmt.Sprintf("A name has 1 to %d characters.", core.MaxChatNameLength)}
	}
	for _, r := range name {
		if !unicode.IsPrint(r) && r != ' ' {
			return &nameError{ErrCodeNameInvalid, "A name cannot contain control or invisible characters."}
		}
	}
	s := h.d.Settings.Get()
	// A new slice: appending to the snapshot's could write into it.
	for _, f := range slices.Concat(s.Chat.ForbiddenNames, []string{s.Name}) {
		if strings.EqualFold(strings.TrimSpace(f), name) {
			return &nameError{ErrCodeNameForbidden, fmt.Sprintf("The name %q is reserved: choose another.", name)}
		}
	}
	return nil
}

var (
	nameAdjectives = []string{"Quiet", "Brave", "Swift", "Gentle", "Lucky", "Clever", "Sunny", "Mellow", "Bold", "Curious",
		"Happy", "Calm", "Bright", "Witty", "Jolly", "Nimble", "Cosy", "Merry", "Steady", "Keen",
		"Silver", "Golden", "Amber", "Crimson", "Misty", "Rusty", "Velvet", "Dusky", "Frosty", "Breezy"}
	nameAnimals = []string{"Starling", "Heron", "Otter", "Fox", "Badger", "Wren", "Lynx", "Panda", "Robin", "Falcon",
		"Hare", "Owl", "Seal", "Koala", "Moth", "Finch", "Marten", "Bison", "Gecko", "Puffin",
		"Raven", "Stoat", "Tapir", "Lemur", "Ibis", "Kestrel", "Newt", "Quokka", "Yak", "Dolphin"}
)

// generateName picks from the admin's suggestions if there are enough,
// else makes an "Adjective Animal" name.
func (h *Hub) generateName() string {
	if sugg := h.d.Settings.Get().Chat.SuggestedNames; len(sugg) >= 10 {
		return sugg[randIntn(len(sugg))]
	}
	return nameAdjectives[randIntn(len(nameAdjectives))] + " " + nameAnimals[randIntn(len(nameAnimals))]
}

func randIntn(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		return 0
	}
	return int(v.Int64())
}

// updateUser changes a connected user for all their connections and
// tells everyone with the event made from the new user.
func (h *Hub) updateUser(ctx context.Context, userID string, change func(*User), event func(*User) *Event) error {
	return h.exec(ctx, func(st *state) {
		us := st.users[userID]
		if us == nil {
			return
		}
		u := *us.user.Load()
		change(&u)
		us.user.Store(&u)
		if event != nil {
			ev := event(&u)
			h.accept(st, post{ev: ev, enc: ev.encode()})
		}
	})
}
