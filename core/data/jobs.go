package data

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Job is one piece of outbound work.
type Job struct {
	ID          int64
	Kind        string
	Destination string
	Payload     []byte
	// State is "pending", "running" or "failed".
	State     string
	Attempts  int
	NextAt    time.Time
	LastError string
	CreatedAt time.Time
	UpdatedAt time.Time
}

func millis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// AddJob queues a job, due at once.
func (s *Store) AddJob(ctx context.Context, kind, destination string, payload []byte, now time.Time) (int64, error) {
	if payload == nil {
		payload = []byte{} // NULL is not an empty payload
	}
	res, err := s.db.ExecContext(ctx,
		`INSERT INTO jobs (kind, destination, payload, state, next_at, created_at, updated_at) VALUES (?, ?, ?, 'pending', ?, ?, ?)`,
		kind, destination, payload, millis(now), millis(now), millis(now))
	if err != nil {
		return 0, fmt.Errorf("queue a %s job: %w", kind, err)
	}
	return res.LastInsertId()
}

// NewJob is a job to queue with AddJobs.
type NewJob struct {
	Kind, Destination string
	Payload           []byte
	// DueAt is when it may run first; zero for at once.
	DueAt time.Time
}

// AddJobs queues jobs in one transaction: all of them or none.
func (s *Store) AddJobs(ctx context.Context, jobs []NewJob, now time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := addJobs(ctx, tx, jobs, now); err != nil {
		return err
	}
	return tx.Commit()
}

func addJobs(ctx context.Context, tx *sql.Tx, jobs []NewJob, now time.Time) error {
	stmt, err := tx.PrepareContext(ctx,
		`INSERT INTO jobs (kind, destination, payload, state, next_at, created_at, updated_at) VALUES (?, ?, ?, 'pending', ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, j := range jobs {
		due := j.DueAt
		if due.IsZero() {
			due = now
		}
		payload := j.Payload
		if payload == nil {
			payload = []byte{}
		}
		if _, err := stmt.ExecContext(ctx, j.Kind, j.Destination, payload, millis(due), millis(now), millis(now)); err != nil {
			return fmt.Errorf("queue a %s job: %w", j.Kind, err)
		}
	}
	return nil
}

const jobColumns = `id, kind, destination, payload, state, attempts, next_at, last_error, created_at, updated_at`

func scanJob(row interface{ Scan(...any) error }) (Job, error) {
	var j Job
	var next, created, updated int64
	err := row.Scan(&j.ID, &j.Kind, &j.Destination, &j.Payload, &j.State, &j.Attempts, &next, &j.LastError, &created, &updated)
	j.NextAt, j.CreatedAt, j.UpdatedAt = fromMillis(next), fromMillis(created), fromMillis(updated)
	return j, err
}

func (s *Store) jobs(ctx context.Context, query string, args ...any) ([]Job, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+jobColumns+` FROM jobs `+query, args...)
	if err != nil {
		return nil, fmt.Errorf("read jobs: %w", err)
	}
	defer rows.Close()
	var out []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("read jobs: %w", err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// DueJobs returns up to limit pending jobs due at now, oldest due first.
func (s *Store) DueJobs(ctx context.Context, now time.Time, limit int) ([]Job, error) {
	return s.jobs(ctx, `WHERE state = 'pending' AND next_at <= ? ORDER BY next_at, id LIMIT ?`, millis(now), limit)
}

// NextJobAt returns when the soonest pending job is due, or false if none is.
func (s *Store) NextJobAt(ctx context.Context) (time.Time, bool, error) {
	var next *int64
	if err := s.db.QueryRowContext(ctx, `SELECT MIN(next_at) FROM jobs WHERE state = 'pending'`).Scan(&next); err != nil {
		return time.Time{}, false, fmt.Errorf("read jobs: %w", err)
	}
	if next == nil {
		return time.Time{}, false, nil
	}
	return fromMillis(*next), true, nil
}

// ClaimJob marks a pending job running; false if it was not pending.
func (s *Store) ClaimJob(ctx context.Context, id int64, now time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE jobs SET state = 'running', updated_at = ? WHERE id = ? AND state = 'pending'`, millis(now), id)
	if err != nil {
		return false, fmt.Errorf("claim job %d: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// FinishJob deletes a done job.
func (s *Store) FinishJob(ctx context.Context, id int64) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM jobs WHERE id = ?`, id); err != nil {
		return fmt.Errorf("finish job %d: %w", id, err)
	}
	return nil
}

// RetryJob makes a job pending again, due at next, after an attempt.
func (s *Store) RetryJob(ctx context.Context, id int64, attempts int, next time.Time, lastError string, now time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE jobs SET state = 'pending', attempts = ?, next_at = ?, last_error = ?, updated_at = ? WHERE id = ?`,
		attempts, millis(next), lastError, millis(now), id)
	if err != nil {
		return fmt.Errorf("reschedule job %d: %w", id, err)
	}
	return nil
}

// FailJob gives a job up.
func (s *Store) FailJob(ctx context.Context, id int64, attempts int, lastError string, now time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE jobs SET state = 'failed', attempts = ?, last_error = ?, updated_at = ? WHERE id = ?`,
		attempts, lastError, millis(now), id)
	if err != nil {
		return fmt.Errorf("fail job %d: %w", id, err)
	}
	return nil
}

// ReleaseRunningJobs makes the jobs left running pending again: the
// process that ran them stopped before it knew how they ended.
func (s *Store) ReleaseRunningJobs(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE jobs SET state = 'pending', updated_at = ? WHERE state = 'running'`, millis(now))
	if err != nil {
		return 0, fmt.Errorf("release running jobs: %w", err)
	}
	return res.RowsAffected()
}

// JobCounts counts the jobs of each state.
func (s *Store) JobCounts(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT state, COUNT(*) FROM jobs GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			return nil, err
		}
		out[state] = n
	}
	return out, rows.Err()
}

// UnfinishedJobs counts the jobs of kind to destination that are pending
// or running.
func (s *Store) UnfinishedJobs(ctx context.Context, kind, destination string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM jobs WHERE kind = ? AND destination = ? AND state IN ('pending', 'running')`, kind, destination).Scan(&n)
	return n, err
}

// Jobs returns the jobs of a state, newest change first, at most limit.
func (s *Store) Jobs(ctx context.Context, state string, limit int) ([]Job, error) {
	return s.jobs(ctx, `WHERE state = ? ORDER BY updated_at DESC, id DESC LIMIT ?`, state, limit)
}
