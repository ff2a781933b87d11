// Package data is Starling's embedded database: one sqlite file in the data
// directory (modernc.org/sqlite, no cgo), in WAL mode, with versioned
// migrations. It holds settings, secrets and the little state that must
// survive a restart.
package data

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrNotFound is returned when a key has no value.
var ErrNotFound = errors.New("not found")

// Store is the sqlite database. Its methods are safe for concurrent use.
type Store struct {
	db *sql.DB
}

// Open opens (creating if needed) the database at path and brings its schema
// up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	if err := private(path); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// sqlite has one writer; a small pool keeps readers concurrent in WAL
	// mode while writers queue on busy_timeout instead of failing.
	db.SetMaxOpenConns(4)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w (is the data directory writable?)", path, err)
	}
	s := &Store{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// private makes the database file, and the journal files beside it,
// readable by this user alone: it holds the stream key and the admin
// password's hash. sqlite creates the journal files with the database
// file's mode.
func private(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open database %s: %w (is the data directory writable?)", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("make %s private: %w", p, err)
		}
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// migrations are applied in order, each once, each in its own transaction.
// Never edit one that has shipped: append a new one.
var migrations = []string{
	// 1: settings (JSON values, readable by the admin API), secrets (never
	// served) and state (small values owned by the server itself).
	`CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
	 CREATE TABLE secrets (key TEXT PRIMARY KEY, value TEXT NOT NULL);
	 CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
	// 2: chat users (a token is stored only as its SHA-256), messages (the
	// event as sent, so history replays exactly), IP bans, and viewer
	// counts over time.
	`CREATE TABLE chat_users (
		id TEXT PRIMARY KEY,
		token_hash TEXT NOT NULL UNIQUE,
		display_name TEXT NOT NULL,
		display_color INTEGER NOT NULL,
		created_at TEXT NOT NULL,
		disabled_at TEXT,
		previous_names TEXT NOT NULL,
		name_changed_at TEXT,
		scopes TEXT NOT NULL DEFAULT ''
	 );
	 CREATE UNIQUE INDEX chat_users_display_name ON chat_users (display_name COLLATE NOCASE);
	 CREATE TABLE chat_messages (
		seq INTEGER PRIMARY KEY AUTOINCREMENT,
		id TEXT NOT NULL UNIQUE,
		user_id TEXT,
		event TEXT NOT NULL,
		created_at TEXT NOT NULL,
		hidden_at TEXT
	 );
	 CREATE INDEX chat_messages_user_id ON chat_messages (user_id);
	 CREATE TABLE ip_bans (ip TEXT PRIMARY KEY, notes TEXT NOT NULL, created_at TEXT NOT NULL);
	 CREATE TABLE viewer_samples (at TEXT PRIMARY KEY, count INTEGER NOT NULL);`,
	// 3: the outbound job queue (webhook and fediverse deliveries). A job
	// is pending until due (next_at, unix ms), running while a worker has
	// it, and failed when it has given up; done jobs are deleted.
	`CREATE TABLE jobs (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		kind TEXT NOT NULL,
		destination TEXT NOT NULL,
		payload BLOB NOT NULL,
		state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'failed')),
		attempts INTEGER NOT NULL DEFAULT 0,
		next_at INTEGER NOT NULL,
		last_error TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL
	 );
	 CREATE INDEX jobs_due ON jobs (state, next_at);`,
	// 4: outbound webhooks (each with the key its deliveries are signed
	// with), and integration access tokens, which are chat users marked
	// bot: a bot posts in chat as itself, its token stored as the SHA-256
	// like any user's.
	`CREATE TABLE webhooks (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		url TEXT NOT NULL,
		events TEXT NOT NULL,
		secret TEXT NOT NULL,
		created_at TEXT NOT NULL,
		last_used_at TEXT,
		last_error TEXT NOT NULL DEFAULT '',
		last_error_at TEXT
	 );
	 ALTER TABLE chat_users ADD COLUMN bot INTEGER NOT NULL DEFAULT 0;
	 ALTER TABLE chat_users ADD COLUMN last_used_at TEXT;`,
	// 5: the fediverse (times in unix ms). Followers, pending until
	// approved when the account is private, or rejected; remote actors
	// whose keys signed requests, cached; our posts as they were sent,
	// with their delivery counts; and the activities received, once each
	// by id.
	`CREATE TABLE fedi_followers (
		actor TEXT PRIMARY KEY,
		inbox TEXT NOT NULL,
		shared_inbox TEXT NOT NULL,
		username TEXT NOT NULL,
		name TEXT NOT NULL,
		image TEXT NOT NULL,
		follow_id TEXT NOT NULL,
		state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
		created_at INTEGER NOT NULL,
		approved_at INTEGER
	 );
	 CREATE TABLE fedi_actors (
		id TEXT PRIMARY KEY,
		key_id TEXT NOT NULL,
		public_key TEXT NOT NULL,
		inbox TEXT NOT NULL,
		shared_inbox TEXT NOT NULL,
		username TEXT NOT NULL,
		name TEXT NOT NULL,
		image TEXT NOT NULL,
		fetched_at INTEGER NOT NULL
	 );
	 CREATE INDEX fedi_actors_key_id ON fedi_actors (key_id);
	 CREATE TABLE fedi_posts (
		seq INTEGER PRIMARY KEY AUTOINCREMENT,
		id TEXT NOT NULL UNIQUE,
		kind TEXT NOT NULL,
		activity TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		recipients INTEGER NOT NULL DEFAULT 0,
		delivered INTEGER NOT NULL DEFAULT 0,
		failed INTEGER NOT NULL DEFAULT 0
	 );
	 CREATE TABLE fedi_activities (
		seq INTEGER PRIMARY KEY AUTOINCREMENT,
		id TEXT NOT NULL UNIQUE,
		type TEXT NOT NULL,
		actor TEXT NOT NULL,
		object TEXT NOT NULL,
		created_at INTEGER NOT NULL
	 );`,
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx,
		`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)`); err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	var current int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this build knows (%d): run a newer Starling or restore a backup", current, len(migrations))
	}
	for v := current + 1; v <= len(migrations); v++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			tx.Rollback()
			return fmt.Errorf("apply migration %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES (?)`, v); err != nil {
			tx.Rollback()
			return fmt.Errorf("record migration %d: %w", v, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit migration %d: %w", v, err)
		}
	}
	return nil
}

// SchemaVersion returns the number of migrations applied.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// table names are constants, never user input.
type table string

const (
	tableSettings table = "settings"
	tableSecrets  table = "secrets"
	tableState    table = "state"
)

func (s *Store) get(ctx context.Context, t table, key string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM `+string(t)+` WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("read %s %q: %w", t, key, err)
	}
	return v, nil
}

func (s *Store) set(ctx context.Context, t table, key, value string) error {
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO `+string(t)+` (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("write %s %q: %w", t, key, err)
	}
	return nil
}

// Setting returns the JSON value stored for a settings key.
func (s *Store) Setting(ctx context.Context, key string) (string, error) {
	return s.get(ctx, tableSettings, key)
}

// SetSetting stores the JSON value of a settings key.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	return s.set(ctx, tableSettings, key, value)
}

// Secret returns a stored secret.
func (s *Store) Secret(ctx context.Context, name string) (string, error) {
	return s.get(ctx, tableSecrets, name)
}

// SetSecret stores a secret.
func (s *Store) SetSecret(ctx context.Context, name, value string) error {
	return s.set(ctx, tableSecrets, name, value)
}

// State returns a server-owned state value.
func (s *Store) State(ctx context.Context, key string) (string, error) {
	return s.get(ctx, tableState, key)
}

// SetState stores a server-owned state value.
func (s *Store) SetState(ctx context.Context, key, value string) error {
	return s.set(ctx, tableState, key, value)
}
