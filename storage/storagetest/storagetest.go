// Package storagetest is one conformance suite for every storage of the
// HLS stream, so that local disk and an S3 bucket behave alike where
// video/hls relies on them.
package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"testing"

	"github.com/starling-live/starling/storage"
)

// Store is what the suite exercises.
type Store interface {
	Put(ctx context.Context, name string, data []byte) error
	Get(ctx context.Context, name string) ([]byte, error)
	Delete(ctx context.Context, names ...string) error
	Clear(ctx context.Context) error
}

// HostileNames must be refused by Put, Get and Delete with an error
// wrapping storage.ErrInvalidName.
var HostileNames = []string{
	"",
	".",
	"..",
	"../x",
	"/abs",
	"/",
	"a/../../b",
	"a/../b",
	"./a",
	"a/./b",
	"a//b",
	"a/",
	`a\b`,
	`..\x`,
	"a\x00b",
	"a\nb",
	"seg\r.ts",
	"\x1b[31mred",
	"a\x7fb",
	"a\u0085b", // C1 next line
	"\xff\xfe",
	string(make([]byte, storage.MaxNameLen+1)),
}

// Run runs the suite; open returns an empty storage for each subtest.
func Run(t *testing.T, open func(t *testing.T) Store) {
	t.Run("RoundTrip", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		for _, name := range []string{"0/seg-1.ts", "stream.m3u8", "1/segments.json", "a/b/c/d.bin", ".hidden", "with space.ts", "ünïcødé.ts", "100%.ts", "a+b.ts"} {
			data := []byte("data of " + name)
			if err := s.Put(ctx, name, data); err != nil {
				t.Fatalf("Put(%q): %v", name, err)
			}
			got, err := s.Get(ctx, name)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("Get(%q) = %q, %v; want %q", name, got, err, data)
			}
		}
		if err := s.Put(ctx, "empty.ts", nil); err != nil {
			t.Fatalf("Put of no bytes: %v", err)
		}
		if got, err := s.Get(ctx, "empty.ts"); err != nil || len(got) != 0 {
			t.Errorf("Get of an empty object = %q, %v", got, err)
		}
	})

	t.Run("Missing", func(t *testing.T) {
		s := open(t)
		if got, err := s.Get(t.Context(), "0/seg-404.ts"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Get of a missing name = %q, %v; want an error wrapping fs.ErrNotExist", got, err)
		}
	})

	t.Run("Overwrite", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		for _, data := range []string{"first, and longer", "second"} {
			if err := s.Put(ctx, "stream.m3u8", []byte(data)); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Get(ctx, "stream.m3u8"); err != nil || string(got) != data {
				t.Fatalf("Get after Put(%q) = %q, %v", data, got, err)
			}
		}
	})

	t.Run("Delete", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		for _, name := range []string{"0/seg-1.ts", "0/seg-2.ts", "0/seg-3.ts", "1/seg-1.ts"} {
			if err := s.Put(ctx, name, []byte(name)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Delete(ctx, "0/seg-1.ts", "1/seg-1.ts", "0/seg-404.ts", "9/missing.ts", "0/seg-1.ts"); err != nil {
			t.Fatalf("Delete of two, two missing and a repeat: %v", err)
		}
		for _, name := range []string{"0/seg-1.ts", "1/seg-1.ts"} {
			if _, err := s.Get(ctx, name); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s after Delete: %v; want fs.ErrNotExist", name, err)
			}
		}
		for _, name := range []string{"0/seg-2.ts", "0/seg-3.ts"} {
			if _, err := s.Get(ctx, name); err != nil {
				t.Errorf("%s, not deleted, is gone: %v", name, err)
			}
		}
		if err := s.Delete(ctx); err != nil {
			t.Errorf("Delete of nothing: %v", err)
		}
		if err := s.Delete(ctx, "0/seg-2.ts", "../x"); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Delete with a bad name = %v; want storage.ErrInvalidName", err)
		}
		if _, err := s.Get(ctx, "0/seg-2.ts"); err != nil {
			t.Errorf("a Delete refused for a bad name deleted a good one: %v", err)
		}
	})

	t.Run("Clear", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		if err := s.Clear(ctx); err != nil {
			t.Fatalf("Clear of an empty storage: %v", err)
		}
		names := []string{"stream.m3u8", "0/stream.m3u8", "0/seg-1.ts", "0/segments.json", "1/seg-7.ts", "12/seg-1.ts"}
		for _, name := range names {
			if err := s.Put(ctx, name, []byte(name)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Clear(ctx); err != nil {
			t.Fatalf("Clear: %v", err)
		}
		for _, name := range names {
			if _, err := s.Get(ctx, name); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s after Clear: %v; want fs.ErrNotExist", name, err)
			}
		}
		if err := s.Put(ctx, "0/seg-2.ts", []byte("next broadcast")); err != nil {
			t.Fatalf("Put after Clear: %v", err)
		}
		if got, err := s.Get(ctx, "0/seg-2.ts"); err != nil || string(got) != "next broadcast" {
			t.Errorf("Get after Clear and Put = %q, %v", got, err)
		}
	})

	t.Run("HostileNames", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		for _, name := range HostileNames {
			if err := s.Put(ctx, name, []byte("evil")); !errors.Is(err, storage.ErrInvalidName) {
				t.Errorf("Put(%q) = %v; want storage.ErrInvalidName", name, err)
			}
			if _, err := s.Get(ctx, name); !errors.Is(err, storage.ErrInvalidName) {
				t.Errorf("Get(%q) = %v; want storage.ErrInvalidName", name, err)
			}
			if err := s.Delete(ctx, name); !errors.Is(err, storage.ErrInvalidName) {
				t.Errorf("Delete(%q) = %v; want storage.ErrInvalidName", name, err)
			}
		}
		// What a refused name would have become, cleaned, must not exist.
		for _, name := range []string{"x", "b", "abs", "a/b", "a"} {
			if _, err := s.Get(ctx, name); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%q exists after hostile Puts: %v", name, err)
			}
		}
	})

	t.Run("ConcurrentPuts", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		const n = 32
		var wg sync.WaitGroup
		errs := make(chan error, 2*n)
		for i := range n {
			wg.Go(func() {
				name := fmt.Sprintf("%d/seg-%d.ts", i%4, i)
				errs <- s.Put(ctx, name, []byte(name))
				// Everyone also writes the same playlist: a reader must
				// see one whole version.
				errs <- s.Put(ctx, "stream.m3u8", fmt.Appendf(nil, "version %04d", i))
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		for i := range n {
			name := fmt.Sprintf("%d/seg-%d.ts", i%4, i)
			if got, err := s.Get(ctx, name); err != nil || string(got) != name {
				t.Errorf("Get(%q) = %q, %v", name, got, err)
			}
		}
		got, err := s.Get(ctx, "stream.m3u8")
		var v int
		if _, serr := fmt.Sscanf(string(got), "version %04d", &v); err != nil || serr != nil || len(got) != len("version 0000") {
			t.Errorf("the playlist written by all is %q, %v: not one whole version", got, err)
		}
	})

	t.Run("Large", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		data := make([]byte, 20<<20)
		rand.Read(data)
		if err := s.Put(ctx, "0/seg-big.ts", data); err != nil {
			t.Fatalf("Put of 20 MB: %v", err)
		}
		got, err := s.Get(ctx, "0/seg-big.ts")
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("Get of 20 MB: %d bytes back, equal %v, %v", len(got), bytes.Equal(got, data), err)
		}
	})
}
