package notify

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/data"
	"github.com/starling-live/starling/core/jobs"
	"github.com/starling-live/starling/core/testrig"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type settings struct{ s *core.Settings }

func (s settings) Get() *core.Settings { return s.s }

// TestGoLiveIsPostedOnceThroughTheQueue: a broadcast start posts the
// go-live message to the Discord webhook, retried after Discord fails,
// and only once; with the notification off, nothing is posted.
func TestGoLiveIsPostedOnceThroughTheQueue(t *testing.T) {
	var calls atomic.Int32
	var mu sync.Mutex
	var got []string
	discord := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Content string }
		json.NewDecoder(r.Body).Decode(&body)
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		mu.Lock()
		got = append(got, body.Content)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer discord.Close()

	store, err := data.Open(context.Background(), filepath.Join(t.TempDir(), "starling.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	q := jobs.New(jobs.Deps{Logger: log, Store: store, Config: jobs.Config{Backoff: 10 * time.Millisecond}})
	s := core.DefaultSettings()
	s.ServerURL = "https://live.example.com"
	s.Notifications.Discord = core.DiscordSettings{Enabled: true, Webhook: discord.URL + "/api/webhooks/1/x", GoLiveMessage: "Live now!"}
	n := New(Deps{Logger: log, Queue: q, Settings: settings{&s}})
	q.Start(context.Background())
	defer q.Close()

	n.BroadcastStarted(core.Broadcast{ID: "b1", Title: "Coding"})
	testrig.Eventually(t, 10*time.Second, "the post delivered", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1, ""
	})
	mu.Lock()
	if got[0] != "Live now!\nCoding\nhttps://live.example.com" {
		t.Errorf("posted %q", got[0])
	}
	mu.Unlock()
	testrig.Eventually(t, 10*time.Second, "the queue empty", func() (bool, string) {
		st, _ := q.Stats(context.Background())
		return st.Pending == 0 && st.Running == 0 && st.Done == 1, ""
	})
	if calls.Load() != 2 {
		t.Errorf("%d calls, want 2 (a failure, then the post)", calls.Load())
	}

	s.Notifications.Discord.Enabled = false
	n.BroadcastStarted(core.Broadcast{ID: "b2"})
	if st, _ := q.Stats(context.Background()); st.Pending != 0 {
		t.Errorf("a post was queued with the notification off: %+v", st)
	}
}
