// Package local stores the HLS stream in a directory on local disk, from
// which the web server serves it.
package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/starling-live/starling/storage"
)

// Storage writes files under one directory. Writes are atomic: a reader
// sees the old file or the new one, never part of either.
type Storage struct {
	dir string
}

// New returns a Storage rooted at dir, creating it if needed.
func New(dir string) (*Storage, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create HLS directory: %w", err)
	}
	return &Storage{dir: dir}, nil
}

// Dir is the root directory.
func (s *Storage) Dir() string { return s.dir }

// path turns a slash-separated name into a path under the root, refusing
// anything that would leave it (storage.CheckName).
func (s *Storage) path(name string) (string, error) {
	if err := storage.CheckName(name); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, filepath.FromSlash(path.Clean(name))), nil
}

// Put writes data to name through a temporary file and a rename.
func (s *Storage) Put(_ context.Context, name string, data []byte) error {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// Get reads name; a missing file is an error wrapping fs.ErrNotExist.
func (s *Storage) Get(_ context.Context, name string) ([]byte, error) {
	p, err := s.path(name)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(p)
}

// List names the files of a directory under the root; none if it does not
// exist.
func (s *Storage) List(dir string) ([]string, error) {
	p, err := s.path(dir)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Delete removes the named files; a missing one is not an error. It checks
// every name before it removes any, so a bad name removes nothing.
func (s *Storage) Delete(_ context.Context, names ...string) error {
	paths := make([]string, len(names))
	for i, name := range names {
		p, err := s.path(name)
		if err != nil {
			return err
		}
		paths[i] = p
	}
	var errs []error
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Clear removes everything under the root, keeping the root itself.
func (s *Storage) Clear(context.Context) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, os.RemoveAll(filepath.Join(s.dir, e.Name())))
	}
	return errors.Join(errs...)
}
