package thumbnail

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/starling-live/starling/core/testrig"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeStore records what it is given; put, if set, runs first.
type fakeStore struct {
	mu   sync.Mutex
	got  [][]byte
	put  func(data []byte) error
	name string
}

func (s *fakeStore) Put(_ context.Context, name string, data []byte) error {
	if s.put != nil {
		if err := s.put(data); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.name = name
	s.got = append(s.got, data)
	return nil
}

func (s *fakeStore) last() (string, string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) == 0 {
		return "", "", 0
	}
	return s.name, string(s.got[len(s.got)-1]), len(s.got)
}

func TestStillsAreStored(t *testing.T) {
	st := &fakeStore{}
	g := New(Deps{Logger: slog.New(slog.DiscardHandler), Store: st})
	g.Start(context.Background())
	defer g.Close()
	g.StillPublished([]byte("first"))
	testrig.Eventually(t, 5*time.Second, "the first still stored", func() (bool, string) {
		name, data, _ := st.last()
		return name == Name && data == "first", data
	})
	g.StillPublished([]byte("second"))
	testrig.Eventually(t, 5*time.Second, "the newer still stored", func() (bool, string) {
		_, data, _ := st.last()
		return data == "second", data
	})
}

// A slow store keeps the newest still for afterwards and the packager
// never waits; one that fails is tried again with the next still.
func TestSlowOrFailingStore(t *testing.T) {
	release := make(chan struct{})
	failed := make(chan struct{})
	st := &fakeStore{put: func(data []byte) error {
		switch string(data) {
		case "1":
			<-release
		case "4":
			close(failed)
			return errors.New("disk full")
		}
		return nil
	}}
	g := New(Deps{Logger: slog.New(slog.DiscardHandler), Store: st})
	g.Start(context.Background())
	defer g.Close()
	g.StillPublished([]byte("1"))
	testrig.Eventually(t, 5*time.Second, "the store busy with the first still", func() (bool, string) {
		return g.latest.Load() == nil, ""
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, s := range []string{"2", "3", "4"} {
			g.StillPublished([]byte(s))
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("StillPublished waited for the store")
	}
	close(release) // "1" is stored, then "4" fails: "2" and "3" were replaced
	<-failed
	g.StillPublished([]byte("5"))
	testrig.Eventually(t, 5*time.Second, "the newest still stored after a failure", func() (bool, string) {
		_, data, _ := st.last()
		return data == "5", data
	})
	if _, _, n := st.last(); n != 2 {
		t.Errorf("%d stills stored, want 2 (1 and 5)", n)
	}
}

func TestCloseWithoutStart(t *testing.T) {
	if err := New(Deps{}).Close(); err != nil {
		t.Fatal(err)
	}
}
