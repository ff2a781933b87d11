package data

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Bots are the users of the integrations API (Owncast's access tokens):
// chat users marked bot (migration 4), so that a bot posts in chat as
// itself and its name is unique among everyone's. A bot's token is stored
// as its SHA-256, like every user's, and is never a chat login: the chat
// finds users with ChatUserByToken, which passes bots over.

// CreateBot stores a new bot with the SHA-256 of its access token. It
// returns ErrNameTaken if the name is someone else's.
func (s *Store) CreateBot(ctx context.Context, u ChatUser, tokenHash string) error {
	prev, _ := json.Marshal(u.PreviousNames)
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO chat_users (id, token_hash, display_name, display_color, created_at, previous_names, scopes, bot) VALUES (?, ?, ?, ?, ?, ?, ?, 1)`,
		u.ID, tokenHash, u.DisplayName, u.DisplayColor, formatTime(u.CreatedAt), string(prev), strings.Join(u.Scopes, ","))
	if isUnique(err) {
		return ErrNameTaken
	}
	if err != nil {
		return fmt.Errorf("create bot: %w", err)
	}
	return nil
}

// BotByToken returns the bot whose access token hashes to tokenHash.
func (s *Store) BotByToken(ctx context.Context, tokenHash string) (ChatUser, error) {
	return scanChatUser(s.db.QueryRowContext(ctx, `SELECT `+chatUserColumns+` FROM chat_users WHERE token_hash = ? AND bot = 1`, tokenHash))
}

// Bots lists the bots, oldest first.
func (s *Store) Bots(ctx context.Context) ([]ChatUser, error) {
	return s.chatUsers(ctx, `bot = 1`)
}

// DeleteBot deletes a bot, and with it its token. Its messages stay in
// the history under its name.
func (s *Store) DeleteBot(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM chat_users WHERE id = ? AND bot = 1`, id)
	if err != nil {
		return fmt.Errorf("delete bot: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// SetBotLastUsed records when a bot's token was last used.
func (s *Store) SetBotLastUsed(ctx context.Context, id string, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE chat_users SET last_used_at = ? WHERE id = ? AND bot = 1`, formatTime(at), id); err != nil {
		return fmt.Errorf("record bot use: %w", err)
	}
	return nil
}
