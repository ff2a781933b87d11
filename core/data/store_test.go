package data

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestStoreMigratesOnceAndKeepsValues(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "starling.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v != len(migrations) {
		t.Fatalf("schema version %d (%v), want %d", v, err, len(migrations))
	}
	if _, err := s.Setting(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing setting: %v, want ErrNotFound", err)
	}
	for _, kv := range [][2]string{{"a", `"one"`}, {"a", `"two"`}} {
		if err := s.SetSetting(ctx, kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetSecret(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetState(ctx, "k", "state"); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Reopening applies no migration twice and finds everything.
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if v, _ := s.SchemaVersion(ctx); v != len(migrations) {
		t.Errorf("schema version after reopen %d", v)
	}
	if v, err := s.Setting(ctx, "a"); err != nil || v != `"two"` {
		t.Errorf("setting a = %q, %v", v, err)
	}
	if v, err := s.Secret(ctx, "k"); err != nil || v != "v" {
		t.Errorf("secret k = %q, %v", v, err)
	}
	if v, err := s.State(ctx, "k"); err != nil || v != "state" {
		t.Errorf("state k = %q, %v", v, err)
	}
	// Secrets and settings are separate tables.
	if _, err := s.Setting(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a secret is readable as a setting: %v", err)
	}
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal mode %q (%v), want wal", mode, err)
	}
}

func TestStoreRefusesANewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "starling.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES (999)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(ctx, path); err == nil {
		t.Fatal("a database from a newer Starling was opened")
	}
}

// TestDatabaseIsPrivate: the database holds the stream key, so no other
// user may read it or its journal files, even one left world-readable by
// an older version.
func TestDatabaseIsPrivate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "starling.db")
	check := func(when string) {
		t.Helper()
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if errors.Is(err, os.ErrNotExist) && p != path {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if mode := fi.Mode().Perm(); mode != 0o600 {
				t.Errorf("%s: %s has mode %o, want 600", when, filepath.Base(p), mode)
			}
		}
	}
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetSecret(ctx, "stream_key", "secret"); err != nil {
		t.Fatal(err)
	}
	check("new")
	s.Close()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SetSecret(ctx, "stream_key", "secret2"); err != nil {
		t.Fatal(err)
	}
	check("reopened")
}
