package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/starling-live/starling/core/data"
	"github.com/starling-live/starling/core/testrig"
)

func openStore(t *testing.T) (*data.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "starling.db")
	s, err := data.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestDefaultSettingsAreValid(t *testing.T) {
	if err := DefaultSettings().Video.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestSettingsUpdateValidatesAndPersists(t *testing.T) {
	ctx := context.Background()
	store, path := openStore(t)
	ss, err := LoadSettings(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	before := ss.Get()
	_, err = ss.Update(ctx, func(s *Settings) error {
		s.Video.Variants[0].VideoBitrate = 5
		s.Video.Variants[0].ScaledHeight = 721
		return nil
	})
	if !errors.Is(err, ErrInvalidSettings) || !strings.Contains(err.Error(), "video bitrate 5") || !strings.Contains(err.Error(), "height 721") {
		t.Fatalf("invalid variant: %v", err)
	}
	if ss.Get() != before || before.Video.Variants[0].VideoBitrate != 2500 {
		t.Fatal("a refused update changed the settings")
	}
	if _, err := ss.Update(ctx, func(s *Settings) error { s.StreamTitle = "Hello"; return nil }); err != nil {
		t.Fatal(err)
	}
	store.Close()
	store2, err := data.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer store2.Close()
	ss2, err := LoadSettings(ctx, store2)
	if err != nil {
		t.Fatal(err)
	}
	if got := ss2.Get(); got.StreamTitle != "Hello" || got.Video.SegmentSeconds != 1 {
		t.Errorf("settings after reload: %+v", got)
	}
}

func TestSecrets(t *testing.T) {
	ctx := context.Background()
	store, _ := openStore(t)
	if _, _, err := LoadSecrets(ctx, store, "short", ""); err == nil {
		t.Error("a 5-character stream key was accepted")
	}
	s, gen, err := LoadSecrets(ctx, store, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(gen.StreamKey) < 20 || len(gen.AdminPassword) < 20 || gen.StreamKey == gen.AdminPassword {
		t.Fatalf("weak generated secrets: %q %q", gen.StreamKey, gen.AdminPassword)
	}
	if !s.CheckStreamKey(gen.StreamKey) || s.CheckStreamKey(gen.StreamKey+"x") || s.CheckStreamKey("") {
		t.Error("stream key check is wrong")
	}
	// Twice: the second check takes the cached path.
	for range 2 {
		if !s.CheckAdminPassword(gen.AdminPassword) || s.CheckAdminPassword("wrong-password") {
			t.Error("admin password check is wrong")
		}
	}
	// The password is stored hashed, never as given.
	if raw, _ := store.Secret(ctx, secretAdminPassword); strings.Contains(raw, gen.AdminPassword) || !strings.HasPrefix(raw, prehashedPrefix+"$2") {
		t.Errorf("admin password stored as %q", raw)
	}

	// A second start keeps them and generates nothing.
	s2, gen2, err := LoadSecrets(ctx, store, "", "")
	if err != nil || gen2 != (Generated{}) {
		t.Fatalf("second start generated %+v (%v)", gen2, err)
	}
	if !s2.CheckStreamKey(gen.StreamKey) || !s2.CheckAdminPassword(gen.AdminPassword) {
		t.Error("secrets changed across starts")
	}
	// Flags replace them.
	s3, _, err := LoadSecrets(ctx, store, "new-stream-key", "new-admin-password")
	if err != nil {
		t.Fatal(err)
	}
	if !s3.CheckStreamKey("new-stream-key") || !s3.CheckAdminPassword("new-admin-password") || s3.CheckAdminPassword(gen.AdminPassword) {
		t.Error("flags did not replace the secrets")
	}
}

// TestActorKeyIsMadeOnceAndKept: the fediverse key is generated on first
// use, stored, and the same after a restart, even one that replaces the
// other secrets with flags.
func TestActorKeyIsMadeOnceAndKept(t *testing.T) {
	ctx := context.Background()
	store, _ := openStore(t)
	s, _, err := LoadSecrets(ctx, store, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Secret(ctx, secretActorKey); !errors.Is(err, data.ErrNotFound) {
		t.Fatalf("a key exists before it is asked for: %v", err)
	}
	k1, err := s.ActorKey(ctx)
	if err != nil || k1.N.BitLen() != actorKeyBits {
		t.Fatalf("key %v, %v", k1, err)
	}
	s2, _, err := LoadSecrets(ctx, store, "another-stream-key", "another-password")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := s2.ActorKey(ctx)
	if err != nil || !k2.Equal(k1) {
		t.Fatalf("the key changed across a restart: %v", err)
	}
	store.SetSecret(ctx, secretActorKey, "not a key")
	s3, _, _ := LoadSecrets(ctx, store, "", "")
	if _, err := s3.ActorKey(ctx); err == nil || !strings.Contains(err.Error(), "restore the database") {
		t.Errorf("a broken stored key: %v, want an error that says not to make a new one", err)
	}
}

// TestAdminPasswordEveryByteCounts: bcrypt reads 72 bytes; a password
// longer than that is still checked whole, and the 72-byte prefix of it,
// or the prefix with anything appended, is refused.
func TestAdminPasswordEveryByteCounts(t *testing.T) {
	ctx := context.Background()
	store, _ := openStore(t)
	long := strings.Repeat("p", 72) + "-the-rest-of-the-password"
	s, _, err := LoadSecrets(ctx, store, "", long)
	if err != nil {
		t.Fatalf("a %d-byte password: %v", len(long), err)
	}
	for _, wrong := range []string{long[:72], long[:72] + "anything", long + "x", long[:len(long)-1] + "X"} {
		if s.CheckAdminPassword(wrong) {
			t.Errorf("%q (%d bytes) logged in as the %d-byte password", wrong, len(wrong), len(long))
		}
	}
	if !s.CheckAdminPassword(long) {
		t.Error("the long password itself was refused")
	}
	if _, _, err := LoadSecrets(ctx, store, "", strings.Repeat("x", maxPasswordBytes+1)); err == nil || !strings.Contains(err.Error(), "use 8 to 1024") {
		t.Errorf("an over-long password: %v", err)
	}

	// A hash stored before prehashing still works, and only for its
	// password: bcrypt would let the 72-byte prefix plus anything in.
	legacy, err := bcrypt.GenerateFromPassword([]byte(long[:72]), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SetSecret(ctx, secretAdminPassword, string(legacy)); err != nil {
		t.Fatal(err)
	}
	old, _, err := LoadSecrets(ctx, store, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if !old.CheckAdminPassword(long[:72]) {
		t.Error("a legacy hash no longer accepts its password")
	}
	if old.CheckAdminPassword(long[:72] + "anything") {
		t.Error("a legacy hash accepts its password with bytes appended")
	}
}

func TestStreamKeyRules(t *testing.T) {
	ctx := context.Background()
	store, _ := openStore(t)
	for _, bad := range []string{"short", "has a space in it", "key?with=query", strings.Repeat("k", 257), "tab\there-key"} {
		if _, _, err := LoadSecrets(ctx, store, bad, ""); err == nil {
			t.Errorf("stream key %q accepted", bad)
		}
	}
}

func TestStreamAllowsOnePublisherAndRemembersTimes(t *testing.T) {
	ctx := context.Background()
	store, _ := openStore(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := NewStream(ctx, StreamDeps{Logger: log, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.Online || st.LastConnect != nil || st.LastDisconnect != nil {
		t.Fatalf("fresh status %+v", st)
	}
	start := time.Now()
	if err := s.Begin(Broadcaster{RemoteAddr: "1.2.3.4:5", Time: start}); err != nil {
		t.Fatal(err)
	}
	if err := s.Begin(Broadcaster{RemoteAddr: "6.7.8.9:1", Time: time.Now()}); !errors.Is(err, ErrAlreadyLive) {
		t.Fatalf("second publisher: %v, want ErrAlreadyLive", err)
	}
	s.SetDetails(StreamDetails{Width: 1280, Height: 720, Encoder: "obs"})
	st := s.Status()
	if !st.Online || st.Broadcaster.RemoteAddr != "1.2.3.4:5" || st.Broadcaster.StreamDetails.Width != 1280 {
		t.Fatalf("live status %+v", st)
	}
	s.End()
	if st := s.Status(); st.Online || st.Broadcaster != nil || st.LastDisconnect == nil {
		t.Fatalf("ended status %+v", st)
	}
	s2, err := NewStream(ctx, StreamDeps{Logger: log, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if st := s2.Status(); st.LastConnect == nil || !st.LastConnect.Equal(start) || st.LastDisconnect == nil {
		t.Errorf("times were not kept across a restart: %+v", st)
	}
}

// TestStreamClosesACrashedBroadcast: a server killed while live never
// stored the broadcast's end; the next start does, so the stored state
// never shows a connect time after the disconnect.
func TestStreamClosesACrashedBroadcast(t *testing.T) {
	ctx := context.Background()
	store, _ := openStore(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := NewStream(ctx, StreamDeps{Logger: log, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	s.Begin(Broadcaster{RemoteAddr: "1.2.3.4:5", Time: time.Now()})
	s.End()
	crash := time.Now().Add(time.Second)
	s.Begin(Broadcaster{RemoteAddr: "1.2.3.4:6", Time: crash}) // and then kill -9

	after, err := NewStream(ctx, StreamDeps{Logger: log, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	st := after.Status()
	if st.Online || st.LastConnect == nil || !st.LastConnect.Equal(crash) || st.LastDisconnect == nil || st.LastDisconnect.Before(*st.LastConnect) {
		t.Fatalf("after a crash: %+v", st)
	}
	again, err := NewStream(ctx, StreamDeps{Logger: log, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if d := again.Status().LastDisconnect; d == nil || !d.Equal(*st.LastDisconnect) {
		t.Errorf("the closing time was not stored: %v, then %v", st.LastDisconnect, d)
	}
}

// TestSettingsListenersHearEachChange: listeners get the snapshots before
// and after every saved change, in order, and nothing of a refused one.
func TestSettingsListenersHearEachChange(t *testing.T) {
	ctx := context.Background()
	store, _ := openStore(t)
	ss, err := LoadSettings(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	var heard []string
	ss.AddListener(SettingsFunc(func(old, new *Settings) {
		heard = append(heard, old.StreamTitle+" -> "+new.StreamTitle)
		if ss.Get() != new {
			t.Error("a listener ran before the change was current")
		}
	}))
	for _, title := range []string{"one", "two"} {
		if _, err := ss.Update(ctx, func(s *Settings) error { s.StreamTitle = title; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	ss.Update(ctx, func(s *Settings) error { s.Video.SegmentSeconds = 0; return nil }) // refused
	if got := strings.Join(heard, ", "); got != " -> one, one -> two" {
		t.Errorf("listeners heard %q", got)
	}
}

// recordingListener records the events it hears; block, if set, holds up
// each one until it is closed.
type recordingListener struct {
	mu     sync.Mutex
	events []string
	block  chan struct{}
}

func (r *recordingListener) hear(what string, b Broadcast) {
	if r.block != nil {
		<-r.block
	}
	r.mu.Lock()
	r.events = append(r.events, fmt.Sprintf("%s %s %q", what, b.ID, b.Title))
	r.mu.Unlock()
}
func (r *recordingListener) BroadcastStarted(b Broadcast) { r.hear("started", b) }
func (r *recordingListener) BroadcastEnded(b Broadcast)   { r.hear("ended", b) }
func (r *recordingListener) heard() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// TestStreamEventsInOrderNeverBlocking: a listener that does not return
// holds up neither the publisher's transitions nor the other listeners;
// each listener hears every transition in order, each with its own
// broadcast's id and title; Close delivers what is queued.
func TestStreamEventsInOrderNeverBlocking(t *testing.T) {
	ctx := context.Background()
	store, _ := openStore(t)
	settings, err := LoadSettings(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStream(ctx, StreamDeps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: store, Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	slow, quick := &recordingListener{block: make(chan struct{})}, &recordingListener{}
	s.AddListener(slow)
	s.AddListener(quick)
	s.Start()
	var ids []string
	for _, title := range []string{"first", "second"} {
		settings.Update(ctx, func(st *Settings) error { st.StreamTitle = title; return nil })
		if err := s.Begin(Broadcaster{RemoteAddr: "192.0.2.1:1", Time: time.Now()}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.current.ID)
		s.End()
	}
	if ids[0] == ids[1] || len(ids[0]) < 16 {
		t.Fatalf("broadcast ids %q", ids)
	}
	want := []string{
		fmt.Sprintf("started %s %q", ids[0], "first"), fmt.Sprintf("ended %s %q", ids[0], "first"),
		fmt.Sprintf("started %s %q", ids[1], "second"), fmt.Sprintf("ended %s %q", ids[1], "second"),
	}
	testrig.Eventually(t, 5*time.Second, "the quick listener to hear everything", func() (bool, string) {
		got := quick.heard()
		return slices.Equal(got, want), fmt.Sprint(got)
	})
	if got := slow.heard(); len(got) != 0 {
		t.Fatalf("the blocked listener heard %v", got)
	}
	close(slow.block)
	s.Close()
	if got := slow.heard(); !slices.Equal(got, want) {
		t.Errorf("after Close the slow listener heard %v, want %v", got, want)
	}
}
