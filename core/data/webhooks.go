package data

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Webhook is an outbound webhook as stored (migration 4).
type Webhook struct {
	ID  int64
	URL string
	// Events are the event types it is sent, such as "CHAT".
	Events []string
	// Secret is the key its deliveries are signed with. It is never
	// served after the webhook is created.
	Secret    string
	CreatedAt time.Time
	// LastUsedAt is the last delivery the receiver accepted; nil if none.
	LastUsedAt *time.Time
	// LastError is why the latest failed delivery failed, at LastErrorAt;
	// empty and nil if none ever did.
	LastError   string
	LastErrorAt *time.Time
}

const webhookColumns = `id, url, events, secret, created_at, last_used_at, last_error, last_error_at`

func scanWebhook(row interface{ Scan(...any) error }) (Webhook, error) {
	var (
		w                 Webhook
		events, created   string
		used, lastErrorAt sql.NullString
	)
	if err := row.Scan(&w.ID, &w.URL, &events, &w.Secret, &created, &used, &w.LastError, &lastErrorAt); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return w, ErrNotFound
		}
		return w, err
	}
	var errs [4]error
	errs[0] = json.Unmarshal([]byte(events), &w.Events)
	w.CreatedAt, errs[1] = parseTime(created)
	w.LastUsedAt, errs[2] = parseTimePtr(used)
	w.LastErrorAt, errs[3] = parseTimePtr(lastErrorAt)
	if err := errors.Join(errs[:]...); err != nil {
		return w, fmt.Errorf("webhook %d: %w", w.ID, err)
	}
	return w, nil
}

// CreateWebhook stores a new webhook and returns its id. ID and the
// delivery fields of w are ignored.
func (s *Store) CreateWebhook(ctx context.Context, w Webhook) (int64, error) {
	events, err := json.Marshal(w.Events)
	if err != nil {
		return 0, err
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO webhooks (url, events, secret, created_at) VALUES (?, ?, ?, ?)`,
		w.URL, string(events), w.Secret, formatTime(w.CreatedAt))
	if err != nil {
		return 0, fmt.Errorf("create webhook: %w", err)
	}
	return res.LastInsertId()
}

// Webhook returns one webhook, or ErrNotFound.
func (s *Store) Webhook(ctx context.Context, id int64) (Webhook, error) {
	w, err := scanWebhook(s.db.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = ?`, id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return w, fmt.Errorf("read webhook %d: %w", id, err)
	}
	return w, err
}

// Webhooks returns every webhook, oldest first.
func (s *Store) Webhooks(ctx context.Context) ([]Webhook, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+webhookColumns+` FROM webhooks ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read webhooks: %w", err)
	}
	defer rows.Close()
	out := []Webhook{}
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, fmt.Errorf("read webhooks: %w", err)
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// DeleteWebhook deletes a webhook, or returns ErrNotFound.
func (s *Store) DeleteWebhook(ctx context.Context, id int64) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM webhooks WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete webhook %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return ErrNotFound
	}
	return nil
}

// SetWebhookUsed records a delivery the receiver accepted. A webhook
// deleted meanwhile is no error.
func (s *Store) SetWebhookUsed(ctx context.Context, id int64, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE webhooks SET last_used_at = ? WHERE id = ?`, formatTime(at), id); err != nil {
		return fmt.Errorf("record webhook %d used: %w", id, err)
	}
	return nil
}

// SetWebhookError records why a delivery failed. A webhook deleted
// meanwhile is no error.
func (s *Store) SetWebhookError(ctx context.Context, id int64, msg string, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE webhooks SET last_error = ?, last_error_at = ? WHERE id = ?`, msg, formatTime(at), id); err != nil {
		return fmt.Errorf("record webhook %d error: %w", id, err)
	}
	return nil
}
