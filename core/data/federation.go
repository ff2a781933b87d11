package data

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Follower is a remote actor following the stream (migration 5).
type Follower struct {
	// Actor is the follower's actor id (an IRI).
	Actor string
	// Inbox and SharedInbox are where deliveries go; SharedInbox is ""
	// when the follower's server has none.
	Inbox, SharedInbox string
	// Username is user@host, Name the display name, Image the avatar URL.
	Username, Name, Image string
	// FollowID is the id of the Follow activity, which the Accept names.
	FollowID string
	// State is "pending", "approved" or "rejected".
	State      string
	CreatedAt  time.Time
	ApprovedAt *time.Time
}

const followerColumns = `actor, inbox, shared_inbox, username, name, image, follow_id, state, created_at, approved_at`

func scanFollower(row interface{ Scan(...any) error }) (Follower, error) {
	var f Follower
	var created int64
	var approved sql.NullInt64
	err := row.Scan(&f.Actor, &f.Inbox, &f.SharedInbox, &f.Username, &f.Name, &f.Image, &f.FollowID, &f.State, &created, &approved)
	if errors.Is(err, sql.ErrNoRows) {
		return f, ErrNotFound
	}
	f.CreatedAt = fromMillis(created)
	if approved.Valid {
		t := fromMillis(approved.Int64)
		f.ApprovedAt = &t
	}
	return f, err
}

// PutFollower stores a follow request or replaces one from the same
// actor. A follower already approved stays approved (a repeated Follow is
// answered with another Accept); a rejected one stays rejected.
func (s *Store) PutFollower(ctx context.Context, f Follower) (Follower, error) {
	var approved any
	if f.State == "approved" {
		approved = millis(f.CreatedAt)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO fedi_followers (`+followerColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (actor) DO UPDATE SET inbox = excluded.inbox, shared_inbox = excluded.shared_inbox,
			username = excluded.username, name = excluded.name, image = excluded.image, follow_id = excluded.follow_id`,
		f.Actor, f.Inbox, f.SharedInbox, f.Username, f.Name, f.Image, f.FollowID, f.State, millis(f.CreatedAt), approved)
	if err != nil {
		return Follower{}, fmt.Errorf("store a follower: %w", err)
	}
	return s.Follower(ctx, f.Actor)
}

// Follower returns the follower with the actor id, or ErrNotFound.
func (s *Store) Follower(ctx context.Context, actor string) (Follower, error) {
	return scanFollower(s.db.QueryRowContext(ctx, `SELECT `+followerColumns+` FROM fedi_followers WHERE actor = ?`, actor))
}

// SetFollowerState approves or rejects a follower, reporting whether there
// was one.
func (s *Store) SetFollowerState(ctx context.Context, actor, state string, now time.Time) (bool, error) {
	var approved any
	if state == "approved" {
		approved = millis(now)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE fedi_followers SET state = ?, approved_at = ? WHERE actor = ?`, state, approved, actor)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// DeleteFollower removes a follower, reporting whether there was one.
func (s *Store) DeleteFollower(ctx context.Context, actor string) (bool, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM fedi_followers WHERE actor = ?`, actor)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// DeleteFollowersByInbox removes the followers delivered to at inbox (their
// own or shared), returning how many there were.
func (s *Store) DeleteFollowersByInbox(ctx context.Context, inbox string) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM fedi_followers WHERE inbox = ? OR shared_inbox = ?`, inbox, inbox)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// DeleteFollowersOfHost removes the followers whose actor id starts with
// prefix (such as "https://blocked.example/"), returning how many.
func (s *Store) DeleteFollowersOfHost(ctx context.Context, prefix string) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM fedi_followers WHERE substr(actor, 1, ?) = ?`, len(prefix), prefix)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Followers returns the followers in state, oldest first, from offset on;
// limit < 0 is all of them.
func (s *Store) Followers(ctx context.Context, state string, limit, offset int) ([]Follower, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+followerColumns+` FROM fedi_followers WHERE state = ? ORDER BY created_at, actor LIMIT ? OFFSET ?`, state, limit, offset)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Follower{}
	for rows.Next() {
		f, err := scanFollower(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// CountFollowers counts the followers in state.
func (s *Store) CountFollowers(ctx context.Context, state string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM fedi_followers WHERE state = ?`, state).Scan(&n)
	return n, err
}

// FollowerInboxes returns each inbox the approved followers are reached
// at, once: a server's shared inbox stands for all its followers.
func (s *Store) FollowerInboxes(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT CASE WHEN shared_inbox != '' THEN shared_inbox ELSE inbox END
		FROM fedi_followers WHERE state = 'approved' ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var inbox string
		if err := rows.Scan(&inbox); err != nil {
			return nil, err
		}
		out = append(out, inbox)
	}
	return out, rows.Err()
}

// RemoteActor is a remote actor as last fetched: its key verifies what it
// signs.
type RemoteActor struct {
	ID, KeyID, PublicKey  string
	Inbox, SharedInbox    string
	Username, Name, Image string
	FetchedAt             time.Time
}

const remoteActorColumns = `id, key_id, public_key, inbox, shared_inbox, username, name, image, fetched_at`

// PutRemoteActor stores or refreshes a remote actor.
func (s *Store) PutRemoteActor(ctx context.Context, a RemoteActor) error {
	_, err := s.db.ExecContext(ctx, `INSERT OR REPLACE INTO fedi_actors (`+remoteActorColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.KeyID, a.PublicKey, a.Inbox, a.SharedInbox, a.Username, a.Name, a.Image, millis(a.FetchedAt))
	return err
}

// RemoteActorByKey returns the actor whose key has keyID, or ErrNotFound.
func (s *Store) RemoteActorByKey(ctx context.Context, keyID string) (RemoteActor, error) {
	var a RemoteActor
	var fetched int64
	err := s.db.QueryRowContext(ctx, `SELECT `+remoteActorColumns+` FROM fedi_actors WHERE key_id = ? ORDER BY fetched_at DESC LIMIT 1`, keyID).
		Scan(&a.ID, &a.KeyID, &a.PublicKey, &a.Inbox, &a.SharedInbox, &a.Username, &a.Name, &a.Image, &fetched)
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	a.FetchedAt = fromMillis(fetched)
	return a, err
}

// DeleteRemoteActor forgets a remote actor.
func (s *Store) DeleteRemoteActor(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM fedi_actors WHERE id = ?`, id)
	return err
}

// Post is one of our posts (an activity we sent to followers).
type Post struct {
	// ID is the post's local id; Kind is "golive", "manual" or "update".
	ID, Kind string
	// Activity is the activity's JSON as sent.
	Activity  []byte
	CreatedAt time.Time
	// Recipients is how many inboxes it was sent to, Delivered and Failed
	// how many of those took it or were given up.
	Recipients, Delivered, Failed int
}

const postColumns = `id, kind, activity, created_at, recipients, delivered, failed`

func scanPost(row interface{ Scan(...any) error }) (Post, error) {
	var p Post
	var created int64
	err := row.Scan(&p.ID, &p.Kind, &p.Activity, &created, &p.Recipients, &p.Delivered, &p.Failed)
	if errors.Is(err, sql.ErrNoRows) {
		return p, ErrNotFound
	}
	p.CreatedAt = fromMillis(created)
	return p, err
}

// AddPost stores a post with its deliveries, one job per inbox, in one
// transaction.
func (s *Store) AddPost(ctx context.Context, p Post, deliveries []NewJob, now time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO fedi_posts (`+postColumns+`) VALUES (?, ?, ?, ?, ?, 0, 0)`,
		p.ID, p.Kind, p.Activity, millis(p.CreatedAt), len(deliveries)); err != nil {
		return fmt.Errorf("store a post: %w", err)
	}
	if err := addJobs(ctx, tx, deliveries, now); err != nil {
		return err
	}
	return tx.Commit()
}

// Post returns the post with id, or ErrNotFound.
func (s *Store) Post(ctx context.Context, id string) (Post, error) {
	return scanPost(s.db.QueryRowContext(ctx, `SELECT `+postColumns+` FROM fedi_posts WHERE id = ?`, id))
}

// Posts returns the posts of the kinds given, newest first.
func (s *Store) Posts(ctx context.Context, kinds []string, limit, offset int) ([]Post, error) {
	q := `SELECT ` + postColumns + ` FROM fedi_posts`
	args := []any{}
	if len(kinds) > 0 {
		q += ` WHERE kind IN (?` + strings.Repeat(", ?", len(kinds)-1) + `)`
		for _, k := range kinds {
			args = append(args, k)
		}
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY seq DESC LIMIT ? OFFSET ?`, append(args, limit, offset)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Post{}
	for rows.Next() {
		p, err := scanPost(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// CountPosts counts the posts of the kinds given.
func (s *Store) CountPosts(ctx context.Context, kinds []string) (int, error) {
	q := `SELECT COUNT(*) FROM fedi_posts`
	args := []any{}
	if len(kinds) > 0 {
		q += ` WHERE kind IN (?` + strings.Repeat(", ?", len(kinds)-1) + `)`
		for _, k := range kinds {
			args = append(args, k)
		}
	}
	var n int
	err := s.db.QueryRowContext(ctx, q, args...).Scan(&n)
	return n, err
}

// LastPostAt is when the newest post of kind was made; zero if none.
func (s *Store) LastPostAt(ctx context.Context, kind string) (time.Time, error) {
	var at sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(created_at) FROM fedi_posts WHERE kind = ?`, kind).Scan(&at); err != nil || !at.Valid {
		return time.Time{}, err
	}
	return fromMillis(at.Int64), nil
}

// CountDelivery records how one delivery of a post ended.
func (s *Store) CountDelivery(ctx context.Context, postID string, delivered bool) error {
	col := "failed"
	if delivered {
		col = "delivered"
	}
	_, err := s.db.ExecContext(ctx, `UPDATE fedi_posts SET `+col+` = `+col+` + 1 WHERE id = ?`, postID)
	return err
}

// Activity is an activity received from a remote actor.
type Activity struct {
	ID, Type, Actor, Object string
	CreatedAt               time.Time
}

// maxActivities is how many received activities are kept.
const maxActivities = 10_000

// AddActivity stores a received activity, reporting false if one with its
// id was stored before (a repeat to ignore). The oldest beyond the last
// maxActivities are let go.
func (s *Store) AddActivity(ctx context.Context, a Activity) (bool, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO fedi_activities (id, type, actor, object, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		a.ID, a.Type, a.Actor, a.Object, millis(a.CreatedAt))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil || n == 0 {
		return false, err
	}
	_, err = s.db.ExecContext(ctx, `DELETE FROM fedi_activities WHERE seq <= (SELECT MAX(seq) FROM fedi_activities) - ?`, maxActivities)
	return true, err
}

// HasActivity reports whether actor already sent an activity of typ on
// object, under any id.
func (s *Store) HasActivity(ctx context.Context, actor, typ, object string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM fedi_activities WHERE actor = ? AND type = ? AND object = ?`, actor, typ, object).Scan(&n)
	return n > 0, err
}

// Activities returns the received activities of the types given, newest
// first.
func (s *Store) Activities(ctx context.Context, types []string, limit, offset int) ([]Activity, error) {
	q := `SELECT id, type, actor, object, created_at FROM fedi_activities`
	args := []any{}
	if len(types) > 0 {
		q += ` WHERE type IN (?` + strings.Repeat(", ?", len(types)-1) + `)`
		for _, t := range types {
			args = append(args, t)
		}
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY seq DESC LIMIT ? OFFSET ?`, append(args, limit, offset)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Activity{}
	for rows.Next() {
		var a Activity
		var created int64
		if err := rows.Scan(&a.ID, &a.Type, &a.Actor, &a.Object, &created); err != nil {
			return nil, err
		}
		a.CreatedAt = fromMillis(created)
		out = append(out, a)
	}
	return out, rows.Err()
}
