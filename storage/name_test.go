package storage_test

import (
	"errors"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/starling-live/starling/storage"
	"github.com/starling-live/starling/storage/storagetest"
)

func TestCheckName(t *testing.T) {
	for _, name := range []string{"stream.m3u8", "0/seg-17.ts", "12/segments.json", ".starling-check-X", "a b/ü+%2e.ts", "..a", "a..", "a/...", strings.Repeat("x", storage.MaxNameLen)} {
		if err := storage.CheckName(name); err != nil {
			t.Errorf("CheckName(%q) = %v; want it accepted", name, err)
		}
	}
	for _, name := range storagetest.HostileNames {
		if err := storage.CheckName(name); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("CheckName(%q) = %v; want storage.ErrInvalidName", name, err)
		}
	}
}

// FuzzCheckName: whatever CheckName accepts stays inside the root on every
// platform and is already clean, so that no storage sees two spellings of
// one name.
func FuzzCheckName(f *testing.F) {
	for _, name := range append([]string{"0/seg-1.ts", "a/b/c", "..a/b"}, storagetest.HostileNames...) {
		f.Add(name)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if storage.CheckName(name) != nil {
			return
		}
		switch {
		case path.Clean(name) != name:
			t.Errorf("accepted %q, which cleans to %q", name, path.Clean(name))
		case !filepath.IsLocal(filepath.FromSlash(name)):
			t.Errorf("accepted %q, which is not local", name)
		case !utf8.ValidString(name), strings.ContainsFunc(name, unicode.IsControl), strings.Contains(name, `\`):
			t.Errorf("accepted %q", name)
		}
	})
}
