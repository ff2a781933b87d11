package activitypub

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/starling-live/starling/activitypub/aptest"
	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/data"
	"github.com/starling-live/starling/core/jobs"
	"github.com/starling-live/starling/core/testrig"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(runChild(path))
	}
	goleak.VerifyTestMain(m)
}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// rig is our server: a Federation with a real database, job queue,
// settings and key, served on 127.0.0.1.
type rig struct {
	t        *testing.T
	path     string
	store    *data.Store
	settings *core.SettingsStore
	secrets  *core.Secrets
	queue    *jobs.Queue
	fed      *Federation
	srv      *httptest.Server
	logs     *testrig.LogBuffer
	cfg      Config
	qcfg     jobs.Config
	// serving is the Federation the server hands requests to.
	serving atomic.Pointer[Federation]

	mu      sync.Mutex
	engaged []Engagement
	bodies  map[string][]byte
}

type rigOption func(*rigConfig)

type rigConfig struct {
	path   string
	cfg    Config
	queue  jobs.Config
	change func(*core.Settings)
}

func withSettings(f func(*core.Settings)) rigOption { return func(c *rigConfig) { c.change = f } }

// newRig starts our server with federation on, the go-live post due at
// once, and remote servers on loopback allowed.
func newRig(t *testing.T, opts ...rigOption) *rig {
	t.Helper()
	rc := rigConfig{
		path:  filepath.Join(t.TempDir(), "starling.db"),
		cfg:   Config{AllowedNetworks: loopback, Timeout: 5 * time.Second},
		queue: jobs.Config{Backoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Poll: 50 * time.Millisecond},
	}
	for _, o := range opts {
		o(&rc)
	}
	ctx := context.Background()
	r := &rig{t: t, path: rc.path, logs: &testrig.LogBuffer{}}
	var err error
	if r.store, err = data.Open(ctx, rc.path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.store.Close() })
	if r.settings, err = core.LoadSettings(ctx, r.store); err != nil {
		t.Fatal(err)
	}
	if r.secrets, _, err = core.LoadSecrets(ctx, r.store, "", ""); err != nil {
		t.Fatal(err)
	}
	// Routed as the web server routes them.
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		f := r.serving.Load()
		switch req.URL.Path {
		case "/api/remotefollow":
			f.RemoteFollow(w, req)
		case "/api/followers":
			f.PublicFollowers(w, req)
		default:
			f.ServeHTTP(w, req)
		}
	}))
	t.Cleanup(r.srv.Close)
	if _, err := r.settings.Update(ctx, func(s *core.Settings) error {
		s.ServerURL = r.srv.URL
		s.Federation.Enabled = true
		s.Federation.GoLiveDelay = 0
		s.Name = "Rig Stream"
		s.Tags = []string{"music", "livecoding"}
		if rc.change != nil {
			rc.change(s)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r.cfg, r.qcfg = rc.cfg, rc.queue
	r.start()
	return r
}

// start starts a job queue and a Federation on the rig's database, and
// serves the Federation.
func (r *rig) start() {
	t := r.t
	r.queue = jobs.New(jobs.Deps{Logger: r.logs.Logger(), Store: r.store, Config: r.qcfg})
	r.fed = New(Deps{
		Logger: r.logs.Logger(), Store: r.store, Settings: r.settings, Keys: r.secrets, Queue: r.queue,
		Engaged: func(e Engagement) {
			r.mu.Lock()
			r.engaged = append(r.engaged, e)
			r.mu.Unlock()
		},
		ClientIP: func(r *http.Request) string { return r.RemoteAddr },
		Version:  "test",
		Config:   r.cfg,
	})
	r.settings.AddListener(r.fed)
	r.serving.Store(r.fed)
	if err := r.queue.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	q := r.queue
	t.Cleanup(func() { q.Close() })
}

func (r *rig) actor() string { return r.srv.URL + "/federation/user/streamer" }
func (r *rig) inbox() string { return r.actor() + "/inbox" }

func (r *rig) engagements() []Engagement {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Engagement(nil), r.engaged...)
}

// send sends a signed activity and returns the status.
func send(t *testing.T, a *aptest.Actor, inbox string, activity map[string]any) int {
	t.Helper()
	resp, err := a.Post(context.Background(), inbox, activity)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}

// get fetches a path of our server as a remote server would.
func (r *rig) get(path string) (int, map[string]any) {
	r.t.Helper()
	req, _ := http.NewRequest("GET", r.srv.URL+path, nil)
	req.Header.Set("Accept", activityJSON)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// follow has a follow accepted, returning once the Accept arrived.
func (r *rig) follow(t *testing.T, remote *aptest.Server, a *aptest.Actor) map[string]any {
	t.Helper()
	f := a.Follow(r.actor())
	if code := send(t, a, r.inbox(), f); code != http.StatusAccepted {
		t.Fatalf("follow: %d", code)
	}
	remote.WaitDelivery(t, func(d aptest.Delivery) bool {
		o, _ := d.Activity["object"].(map[string]any)
		return d.Type == "Accept" && o != nil && o["id"] == f["id"]
	}, 20*time.Second)
	return f
}

// idle waits until the queue has nothing left to do.
func (r *rig) idle() {
	r.t.Helper()
	testrig.Eventually(r.t, wait, "the job queue idle", func() (bool, string) {
		st, err := r.queue.Stats(context.Background())
		return err == nil && st.Pending == 0 && st.Running == 0, fmt.Sprintf("%+v %v", st, err)
	})
}

// count is how many rows a table has.
func (r *rig) count(table string) int {
	r.t.Helper()
	var n int
	switch table {
	case "followers":
		for _, s := range []string{"approved", "pending", "rejected"} {
			c, _ := r.store.CountFollowers(context.Background(), s)
			n += c
		}
	case "activities":
		list, _ := r.store.Activities(context.Background(), nil, 1000, 0)
		n = len(list)
	}
	return n
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
