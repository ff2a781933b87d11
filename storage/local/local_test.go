package local_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/starling-live/starling/storage/local"
	"github.com/starling-live/starling/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storagetest.Store {
		// The root sits one level down, so that a name escaping it would
		// land in a directory the test can look at.
		s, err := local.New(filepath.Join(t.TempDir(), "hls"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			entries, _ := os.ReadDir(filepath.Dir(s.Dir()))
			for _, e := range entries {
				if e.Name() != "hls" {
					t.Errorf("%s appeared beside the storage's root", e.Name())
				}
			}
		})
		return s
	})
}

// TestClearKeepsRoot: the web server serves the root directory, so Clear
// empties it without removing it.
func TestClearKeepsRoot(t *testing.T) {
	s, err := local.New(filepath.Join(t.TempDir(), "hls"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "0/seg-1.ts", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.Clear(t.Context()); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(s.Dir())
	if err != nil || len(entries) != 0 {
		t.Errorf("root after Clear: %v entries, %v", len(entries), err)
	}
}
