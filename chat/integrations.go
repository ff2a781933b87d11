package chat

// Integrations: Owncast's access tokens (bots) and what they may do in
// chat. A bot is a chat user marked bot: it posts as itself, with its own
// name and colour, and its name is unique among everyone's. Its token is
// stored as the SHA-256, like every user's, and is an access token of the
// integrations API only, never a chat login.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/data"
)

// Scopes of access tokens, as Owncast names them (core/user/user.go).
const (
	// ScopeCanSendMessages posts chat messages as the bot.
	ScopeCanSendMessages = "CAN_SEND_MESSAGES"
	// ScopeCanSendSystemMessages sends system messages and actions, to
	// everyone or to one client.
	ScopeCanSendSystemMessages = "CAN_SEND_SYSTEM_MESSAGES"
	// ScopeHasAdminAccess hides messages, sets the stream title, reads the
	// history and lists the clients.
	ScopeHasAdminAccess = "HAS_ADMIN_ACCESS"
)

// BotScopes returns the scopes an access token may hold.
func BotScopes() []string {
	return []string{ScopeCanSendMessages, ScopeCanSendSystemMessages, ScopeHasAdminAccess}
}

// MaxSystemMessageChars is the longest system message or action, in
// characters: the streamer's words may run longer than a viewer's.
const MaxSystemMessageChars = 2000

// Errors callers branch on.
var (
	ErrInvalidBot     = errors.New("access token refused")
	ErrUnknownBot     = errors.New("no access token has that id")
	ErrBotDisabled    = errors.New("this access token's bot has been disabled: enable it again, or create another token")
	ErrUnknownClient  = errors.New("no chat client with that id is connected")
	ErrMessageTooLong = errors.New("the message is too long")
	ErrChatOff        = errors.New("chat is closed")
)

// refusal is an error whose text is for the admin or the bot to read,
// and which errors.Is matches with its sentinel.
type refusal struct {
	msg string
	err error
}

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return r.err }

func refusalf(sentinel error, format string, args ...any) error {
	return &refusal{msg: fmt.Sprintf(format, args...), err: sentinel}
}

// Bot is an integration: the chat user its access token posts as, and
// what the token may do.
type Bot struct {
	// User is the bot as chat shows it: marked isBot, its scopes left out
	// (they are the admin's business, not every viewer's).
	User       *User
	Scopes     []string
	LastUsedAt *time.Time
}

// HasScope says whether the bot's token grants a scope.
func (b *Bot) HasScope(scope string) bool { return slices.Contains(b.Scopes, scope) }

func botFromData(d data.ChatUser) *Bot {
	u := userFromData(d)
	u.Scopes, u.IsBot = nil, true
	return &Bot{User: u, Scopes: d.Scopes, LastUsedAt: d.LastUsedAt}
}

// BotRegistration is a new bot and its token, which is shown this once:
// only its hash is kept.
type BotRegistration struct {
	Bot         *Bot
	AccessToken string
}

// botStore is the part of the database bots use.
type botStore interface {
	CreateBot(ctx context.Context, u data.ChatUser, tokenHash string) error
	BotByToken(ctx context.Context, tokenHash string) (data.ChatUser, error)
	Bots(ctx context.Context) ([]data.ChatUser, error)
	DeleteBot(ctx context.Context, id string) error
	SetBotLastUsed(ctx context.Context, id string, at time.Time) error
}

// BotsDeps are what Bots need.
type BotsDeps struct {
	Logger *slog.Logger
	Store  botStore
}

// lastUsedEvery is how often a token's last use is written: a bot that
// calls several times a second costs one write a minute.
const lastUsedEvery = time.Minute

// Bots are the integrations' access tokens. They start no goroutine.
type Bots struct {
	log   *slog.Logger
	store botStore

	// mu guards saved: when each bot's last use was last written, by bot
	// id. An entry lives until its bot is deleted.
	mu    sync.Mutex
	saved map[string]time.Time
}

// NewBots returns the access tokens.
func NewBots(d BotsDeps) *Bots {
	return &Bots{log: d.Logger, store: d.Store, saved: map[string]time.Time{}}
}

// Create makes a bot named name with the given scopes, and its token.
func (b *Bots) Create(ctx context.Context, name string, scopes []string) (BotRegistration, error) {
	name = strings.TrimSpace(name)
	if n := utf8.RuneCountInString(name); n == 0 || n > core.MaxChatNameLength {
		return BotRegistration{}, refusalf(ErrInvalidBot, `"name" has %d characters: give the bot a name of 1 to %d, which chat shows on its messages`, n, core.MaxChatNameLength)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) && r != ' ' {
			return BotRegistration{}, refusalf(ErrInvalidBot, `"name" cannot contain control or invisible characters`)
		}
	}
	valid := BotScopes()
	var granted []string
	for _, s := range scopes {
		if !slices.Contains(valid, s) {
			return BotRegistration{}, refusalf(ErrInvalidBot, `"scopes" has %q, which is not a scope: use %s`, s, strings.Join(valid, ", "))
		}
		if !slices.Contains(granted, s) {
			granted = append(granted, s)
		}
	}
	if len(granted) == 0 {
		return BotRegistration{}, refusalf(ErrInvalidBot, `"scopes" is empty: a token with no scope can do nothing; give one or more of %s`, strings.Join(valid, ", "))
	}
	token := rand.Text()
	u := data.ChatUser{
		ID:            newID(),
		DisplayName:   name,
		DisplayColor:  randIntn(maxColor + 1),
		CreatedAt:     time.Now().UTC(),
		PreviousNames: []string{name},
		Scopes:        granted,
		Bot:           true,
	}
	err := b.store.CreateBot(ctx, u, hashToken(token))
	if errors.Is(err, data.ErrNameTaken) {
		return BotRegistration{}, refusalf(err, `"name" %q is taken by a chat user or another bot: choose another`, name)
	}
	if err != nil {
		return BotRegistration{}, err
	}
	b.log.Info("access token created", "bot", u.ID, "name", name, "scopes", granted)
	return BotRegistration{Bot: botFromData(u), AccessToken: token}, nil
}

// List returns the bots, oldest first.
func (b *Bots) List(ctx context.Context) ([]*Bot, error) {
	ds, err := b.store.Bots(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Bot, len(ds))
	for i, d := range ds {
		out[i] = botFromData(d)
	}
	return out, nil
}

// Delete deletes a bot and its token, named by the bot's id (as List
// shows it) or by the token itself (as Owncast's admin sends it).
func (b *Bots) Delete(ctx context.Context, id, token string) error {
	if token != "" {
		d, err := b.store.BotByToken(ctx, hashToken(token))
		if errors.Is(err, data.ErrNotFound) {
			return ErrUnknownBot
		}
		if err != nil {
			return err
		}
		if id != "" && id != d.ID {
			return refusalf(ErrInvalidBot, `"id" and "token" name different tokens: give one`)
		}
		id = d.ID
	}
	if id == "" {
		return refusalf(ErrInvalidBot, `give the "id" of the token to delete, as the list of tokens shows it`)
	}
	if err := b.store.DeleteBot(ctx, id); errors.Is(err, data.ErrNotFound) {
		return ErrUnknownBot
	} else if err != nil {
		return err
	}
	b.mu.Lock()
	delete(b.saved, id)
	b.mu.Unlock()
	b.log.Info("access token deleted", "bot", id)
	return nil
}

// Authenticate returns the bot an access token belongs to, and records
// the use. A disabled bot is returned with ErrBotDisabled.
func (b *Bots) Authenticate(ctx context.Context, token string) (*Bot, error) {
	if token == "" {
		return nil, ErrUnknownToken
	}
	d, err := b.store.BotByToken(ctx, hashToken(token))
	if errors.Is(err, data.ErrNotFound) {
		return nil, ErrUnknownToken
	}
	if err != nil {
		return nil, err
	}
	bot := botFromData(d)
	if d.DisabledAt != nil {
		return bot, ErrBotDisabled
	}
	b.used(ctx, bot)
	return bot, nil
}

// used writes a bot's last use if the stored one is a minute old.
func (b *Bots) used(ctx context.Context, bot *Bot) {
	id, now := bot.User.ID, time.Now().UTC()
	b.mu.Lock()
	last := b.saved[id]
	if bot.LastUsedAt != nil && bot.LastUsedAt.After(last) {
		// Written before a restart, or by a request that raced this one.
		last = *bot.LastUsedAt
	}
	due := now.Sub(last) >= lastUsedEvery
	if due {
		b.saved[id] = now
	}
	b.mu.Unlock()
	if !due {
		return
	}
	// The caller hanging up does not undo the use.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := b.store.SetBotLastUsed(ctx, id, now); err != nil {
		b.log.Warn("cannot record an access token's use; the next request tries again", "bot", id, "err", err)
		b.mu.Lock()
		if b.saved[id].Equal(now) {
			delete(b.saved, id)
		}
		b.mu.Unlock()
		return
	}
	bot.LastUsedAt = &now
}

// render cleans, checks and renders a body through the same path as
// viewers' messages.
func (h *Hub) render(body string, limit int) (string, error) {
	body = strings.TrimSpace(cleanBody(body))
	if n := utf8.RuneCountInString(body); n > limit {
		return "", refusalf(ErrMessageTooLong, "the message has %d characters; the limit is %d", n, limit)
	}
	html := h.d.Render(body)
	if html == "" {
		return "", ErrEmptyMessage
	}
	return html, nil
}

// SendAs posts a chat message as a bot, to everyone and into the
// history, within the limits viewers have. While chat is closed, bots
// are refused as viewers are.
func (h *Hub) SendAs(u *User, body string) error {
	if st := h.chatStatus(); !st.enabled {
		return refusalf(ErrChatOff, "chat is closed to bots as to viewers: %s", st.reason)
	}
	html, err := h.render(body, h.cfg.MaxMessageChars)
	if err != nil {
		return err
	}
	ev := newEvent(TypeChat)
	ev.User = u
	ev.Body = html
	ev.Visible = boolPtr(true)
	return h.publish(post{ev: ev, enc: ev.encode(), save: true})
}

// systemUser is who system messages are from: the server, by its name.
func (h *Hub) systemUser() *User {
	return &User{DisplayName: h.d.Settings.Get().Name, PreviousNames: []string{}}
}

// SendSystemTo sends a system message to one connection, by the id the
// client list shows. It is not kept in the history.
func (h *Hub) SendSystemTo(ctx context.Context, clientID uint64, body string) error {
	html, err := h.render(body, MaxSystemMessageChars)
	if err != nil {
		return err
	}
	ev := newEvent(TypeSystem)
	ev.Body = html
	ev.User = h.systemUser()
	ev.Visible = boolPtr(true)
	enc := ev.encode()
	found := false
	if err := h.exec(ctx, func(st *state) {
		for c := range st.clients {
			if c.id == clientID {
				h.sendTo(st, c, enc)
				found = true
				return
			}
		}
	}); err != nil {
		return err
	}
	if !found {
		return ErrUnknownClient
	}
	return nil
}

// SendAction posts a CHAT_ACTION to everyone, such as "**Alice** followed
// the stream": author, if given, leads in bold. It is kept in the
// history.
func (h *Hub) SendAction(body, author string) error {
	body = strings.TrimSpace(cleanBody(body))
	if n := utf8.RuneCountInString(body); n > MaxSystemMessageChars {
		return refusalf(ErrMessageTooLong, "the message has %d characters; the limit is %d", n, MaxSystemMessageChars)
	}
	if body == "" {
		return ErrEmptyMessage
	}
	if author = strings.Join(strings.Fields(cleanBody(author)), " "); author != "" {
		body = "**" + escapeMarkdown(author) + "** " + body
	}
	html := h.d.Render(body)
	if html == "" {
		return ErrEmptyMessage
	}
	ev := newEvent(TypeChatAction)
	ev.Body = html
	ev.User = h.systemUser()
	return h.publish(post{ev: ev, enc: ev.encode(), save: true})
}

// escapeMarkdown makes a name read as itself: every ASCII punctuation
// mark is escaped (CommonMark 2.4), so "*_x_*" stays those characters.
// Safety does not rest on it: the rendered HTML is sanitised whatever it
// holds.
func escapeMarkdown(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < utf8.RuneSelf && (unicode.IsPunct(r) || unicode.IsSymbol(r)) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// newClientID returns a connection's id: random, so that ids say nothing
// about how many have connected, and below 2^53 so that JavaScript reads
// them exactly.
func newClientID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	if id := binary.BigEndian.Uint64(b[:]) >> 11; id != 0 {
		return id
	}
	return 1
}
