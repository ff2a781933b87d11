package data

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrNameTaken is returned when a chat display name is already someone's,
// ignoring case.
var ErrNameTaken = errors.New("display name taken")

// ChatUser is a chat user as stored.
type ChatUser struct {
	ID            string
	DisplayName   string
	DisplayColor  int
	CreatedAt     time.Time
	DisabledAt    *time.Time
	PreviousNames []string
	NameChangedAt *time.Time
	Scopes        []string
	// Bot marks an integration's user: its token is an access token of
	// the integrations API, never a chat login (see bots.go).
	Bot bool
	// LastUsedAt is when a bot's token was last used, to the minute.
	LastUsedAt *time.Time
}

// ChatMessage is a chat event as stored: Event is its JSON as it was sent.
type ChatMessage struct {
	ID       string
	UserID   string
	Event    []byte
	At       time.Time
	HiddenAt *time.Time
}

// IPBan is a banned client address.
type IPBan struct {
	IP        string
	Notes     string
	CreatedAt time.Time
}

// ViewerSample is the number of viewers at a moment.
type ViewerSample struct {
	At    time.Time
	Count int
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func formatTimePtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return formatTime(*t)
}

func parseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }

func parseTimePtr(s sql.NullString) (*time.Time, error) {
	if !s.Valid {
		return nil, nil
	}
	t, err := parseTime(s.String)
	return &t, err
}

func isUnique(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

const chatUserColumns = `id, display_name, display_color, created_at, disabled_at, previous_names, name_changed_at, scopes, bot, last_used_at`

func scanChatUser(row interface{ Scan(...any) error }) (ChatUser, error) {
	var (
		u                            ChatUser
		created, prev, sc            string
		disabled, nameChgd, lastUsed sql.NullString
	)
	if err := row.Scan(&u.ID, &u.DisplayName, &u.DisplayColor, &created, &disabled, &prev, &nameChgd, &sc, &u.Bot, &lastUsed); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return u, ErrNotFound
		}
		return u, err
	}
	var errs [5]error
	u.CreatedAt, errs[0] = parseTime(created)
	u.DisabledAt, errs[1] = parseTimePtr(disabled)
	u.NameChangedAt, errs[2] = parseTimePtr(nameChgd)
	errs[3] = json.Unmarshal([]byte(prev), &u.PreviousNames)
	u.LastUsedAt, errs[4] = parseTimePtr(lastUsed)
	if sc != "" {
		u.Scopes = strings.Split(sc, ",")
	}
	if err := errors.Join(errs[:]...); err != nil {
		return u, fmt.Errorf("chat user %s: %w", u.ID, err)
	}
	return u, nil
}

// CreateChatUser stores a new user with the SHA-256 of its access token.
// It returns ErrNameTaken if the name is someone else's.
func (s *Store) CreateChatUser(ctx context.Context, u ChatUser, tokenHash string) error {
	prev, _ := json.Marshal(u.PreviousNames)
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO chat_users (id, token_hash, display_name, display_color, created_at, previous_names, scopes) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		u.ID, tokenHash, u.DisplayName, u.DisplayColor, formatTime(u.CreatedAt), string(prev), strings.Join(u.Scopes, ","))
	if isUnique(err) {
		return ErrNameTaken
	}
	if err != nil {
		return fmt.Errorf("create chat user: %w", err)
	}
	return nil
}

// ChatUserByToken returns the user whose access token hashes to tokenHash.
// A bot's token is not a chat login (BotByToken finds bots).
func (s *Store) ChatUserByToken(ctx context.Context, tokenHash string) (ChatUser, error) {
	return scanChatUser(s.db.QueryRowContext(ctx, `SELECT `+chatUserColumns+` FROM chat_users WHERE token_hash = ? AND bot = 0`, tokenHash))
}

// ChatUser returns the user with the id.
func (s *Store) ChatUser(ctx context.Context, id string) (ChatUser, error) {
	return scanChatUser(s.db.QueryRowContext(ctx, `SELECT `+chatUserColumns+` FROM chat_users WHERE id = ?`, id))
}

func (s *Store) chatUsers(ctx context.Context, where string, args ...any) ([]ChatUser, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+chatUserColumns+` FROM chat_users WHERE `+where+` ORDER BY created_at`, args...)
	if err != nil {
		return nil, fmt.Errorf("list chat users: %w", err)
	}
	defer rows.Close()
	users := []ChatUser{}
	for rows.Next() {
		u, err := scanChatUser(rows)
		if err != nil {
			return nil, err
		}
		users = append(users, u)
	}
	return users, rows.Err()
}

// DisabledChatUsers lists the users disabled by moderators.
func (s *Store) DisabledChatUsers(ctx context.Context) ([]ChatUser, error) {
	return s.chatUsers(ctx, `disabled_at IS NOT NULL`)
}

// ChatUsersWithScope lists the users holding a scope.
func (s *Store) ChatUsersWithScope(ctx context.Context, scope string) ([]ChatUser, error) {
	return s.chatUsers(ctx, `(',' || scopes || ',') LIKE ?`, "%,"+scope+",%")
}

// RenameChatUser changes a user's display name, keeping the old ones. It
// returns ErrNameTaken if the name is someone else's.
func (s *Store) RenameChatUser(ctx context.Context, id, name string, at time.Time) (ChatUser, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return ChatUser{}, err
	}
	defer tx.Rollback()
	u, err := scanChatUser(tx.QueryRowContext(ctx, `SELECT `+chatUserColumns+` FROM chat_users WHERE id = ?`, id))
	if err != nil {
		return u, err
	}
	u.PreviousNames = append(u.PreviousNames, name)
	prev, _ := json.Marshal(u.PreviousNames)
	_, err = tx.ExecContext(ctx, `UPDATE chat_users SET display_name = ?, previous_names = ?, name_changed_at = ? WHERE id = ?`,
		name, string(prev), formatTime(at), id)
	if isUnique(err) {
		return u, ErrNameTaken
	}
	if err != nil {
		return u, fmt.Errorf("rename chat user: %w", err)
	}
	u.DisplayName, u.NameChangedAt = name, &at
	return u, tx.Commit()
}

func (s *Store) updateChatUser(ctx context.Context, id, set string, arg any) error {
	res, err := s.db.ExecContext(ctx, `UPDATE chat_users SET `+set+` = ? WHERE id = ?`, arg, id)
	if err != nil {
		return fmt.Errorf("update chat user: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// SetChatUserColor changes a user's colour.
func (s *Store) SetChatUserColor(ctx context.Context, id string, color int) error {
	return s.updateChatUser(ctx, id, "display_color", color)
}

// SetChatUserDisabled disables a user from the time given, or enables
// them with nil.
func (s *Store) SetChatUserDisabled(ctx context.Context, id string, at *time.Time) error {
	return s.updateChatUser(ctx, id, "disabled_at", formatTimePtr(at))
}

// SetChatUserScopes replaces a user's scopes.
func (s *Store) SetChatUserScopes(ctx context.Context, id string, scopes []string) error {
	return s.updateChatUser(ctx, id, "scopes", strings.Join(scopes, ","))
}

// SaveChatMessages stores messages in one transaction.
func (s *Store) SaveChatMessages(ctx context.Context, msgs []ChatMessage) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO chat_messages (id, user_id, event, created_at, hidden_at) VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, m := range msgs {
		var user any
		if m.UserID != "" {
			user = m.UserID
		}
		if _, err := stmt.ExecContext(ctx, m.ID, user, string(m.Event), formatTime(m.At), formatTimePtr(m.HiddenAt)); err != nil {
			return fmt.Errorf("save chat message: %w", err)
		}
	}
	return tx.Commit()
}

// SetChatMessagesHidden hides the messages from the time given, or shows
// them again with nil.
func (s *Store) SetChatMessagesHidden(ctx context.Context, ids []string, at *time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	args := []any{formatTimePtr(at)}
	for _, id := range ids {
		args = append(args, id)
	}
	_, err := s.db.ExecContext(ctx, `UPDATE chat_messages SET hidden_at = ? WHERE id IN (?`+strings.Repeat(",?", len(ids)-1)+`)`, args...)
	if err != nil {
		return fmt.Errorf("hide chat messages: %w", err)
	}
	return nil
}

// HideChatMessagesOfUser hides every visible message of a user and returns
// their ids.
func (s *Store) HideChatMessagesOfUser(ctx context.Context, userID string, at time.Time) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `UPDATE chat_messages SET hidden_at = ? WHERE user_id = ? AND hidden_at IS NULL RETURNING id`, formatTime(at), userID)
	if err != nil {
		return nil, fmt.Errorf("hide chat messages of user: %w", err)
	}
	defer rows.Close()
	ids := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// RecentChatMessages returns the newest messages, oldest first.
func (s *Store) RecentChatMessages(ctx context.Context, limit int) ([]ChatMessage, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, COALESCE(user_id, ''), event, created_at, hidden_at FROM
		(SELECT * FROM chat_messages ORDER BY seq DESC LIMIT ?) ORDER BY seq`, limit)
	if err != nil {
		return nil, fmt.Errorf("read chat history: %w", err)
	}
	defer rows.Close()
	msgs := []ChatMessage{}
	for rows.Next() {
		var (
			m      ChatMessage
			ev, at string
			hidden sql.NullString
		)
		if err := rows.Scan(&m.ID, &m.UserID, &ev, &at, &hidden); err != nil {
			return nil, err
		}
		m.Event = []byte(ev)
		var e1, e2 error
		m.At, e1 = parseTime(at)
		m.HiddenAt, e2 = parseTimePtr(hidden)
		if err := errors.Join(e1, e2); err != nil {
			return nil, fmt.Errorf("chat message %s: %w", m.ID, err)
		}
		msgs = append(msgs, m)
	}
	return msgs, rows.Err()
}

// AddIPBan bans an address; banning it again changes nothing.
func (s *Store) AddIPBan(ctx context.Context, b IPBan) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO ip_bans (ip, notes, created_at) VALUES (?, ?, ?) ON CONFLICT(ip) DO NOTHING`,
		b.IP, b.Notes, formatTime(b.CreatedAt))
	if err != nil {
		return fmt.Errorf("ban IP address: %w", err)
	}
	return nil
}

// RemoveIPBan lifts a ban.
func (s *Store) RemoveIPBan(ctx context.Context, ip string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM ip_bans WHERE ip = ?`, ip)
	if err != nil {
		return fmt.Errorf("lift IP ban: %w", err)
	}
	return nil
}

// IPBans lists the banned addresses, oldest first.
func (s *Store) IPBans(ctx context.Context) ([]IPBan, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT ip, notes, created_at FROM ip_bans ORDER BY created_at`)
	if err != nil {
		return nil, fmt.Errorf("list IP bans: %w", err)
	}
	defer rows.Close()
	bans := []IPBan{}
	for rows.Next() {
		var (
			b  IPBan
			at string
		)
		if err := rows.Scan(&b.IP, &b.Notes, &at); err != nil {
			return nil, err
		}
		if b.CreatedAt, err = parseTime(at); err != nil {
			return nil, err
		}
		bans = append(bans, b)
	}
	return bans, rows.Err()
}

// AddViewerSample records the viewer count at a moment and forgets
// samples older than keep.
func (s *Store) AddViewerSample(ctx context.Context, v ViewerSample, keep time.Duration) error {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO viewer_samples (at, count) VALUES (?, ?) ON CONFLICT(at) DO UPDATE SET count = excluded.count`,
		formatTime(v.At), v.Count); err != nil {
		return fmt.Errorf("record viewer count: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM viewer_samples WHERE at < ?`, formatTime(v.At.Add(-keep))); err != nil {
		return fmt.Errorf("prune viewer counts: %w", err)
	}
	return nil
}

// ViewerSamples returns the samples since a time, oldest first.
func (s *Store) ViewerSamples(ctx context.Context, since time.Time) ([]ViewerSample, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT at, count FROM viewer_samples WHERE at >= ? ORDER BY at`, formatTime(since))
	if err != nil {
		return nil, fmt.Errorf("read viewer counts: %w", err)
	}
	defer rows.Close()
	out := []ViewerSample{}
	for rows.Next() {
		var (
			v  ViewerSample
			at string
		)
		if err := rows.Scan(&at, &v.Count); err != nil {
			return nil, err
		}
		if v.At, err = parseTime(at); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
