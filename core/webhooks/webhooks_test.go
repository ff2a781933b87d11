package webhooks

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/starling-live/starling/chat"
	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/data"
	"github.com/starling-live/starling/core/jobs"
	"github.com/starling-live/starling/core/testrig"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// loopback lets the tests' receivers, on 127.0.0.1, be reached.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// fastQueue retries within milliseconds.
var fastQueue = jobs.Config{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Poll: 50 * time.Millisecond}

// rig is a service and a queue on a real sqlite file.
type rig struct {
	t        *testing.T
	path     string
	store    *data.Store
	settings *core.SettingsStore
	queue    *jobs.Queue
	svc      *Service
	logs     *testrig.LogBuffer
	once     sync.Once
}

func newRig(t *testing.T, path string, cfg Config, qcfg jobs.Config) *rig {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "starling.db")
	}
	ctx := context.Background()
	store, err := data.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	settings, err := core.LoadSettings(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, path: path, store: store, settings: settings, logs: &testrig.LogBuffer{}}
	r.queue = jobs.New(jobs.Deps{Logger: r.logs.Logger(), Store: store, Config: qcfg})
	r.svc = New(Deps{Logger: r.logs.Logger(), Store: store, Queue: r.queue, Settings: settings, Config: cfg})
	settings.AddListener(r.svc)
	if err := r.svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.queue.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	return r
}

// close stops as main does: the queue, then the service, then the
// database.
func (r *rig) close() {
	r.once.Do(func() {
		r.queue.Close()
		r.svc.Close()
		r.store.Close()
		if r.t.Failed() {
			r.t.Logf("log:\n%s", r.logs)
		}
	})
}

func (r *rig) create(url string, events ...string) Created {
	r.t.Helper()
	c, err := r.svc.Create(context.Background(), url, events)
	if err != nil {
		r.t.Fatalf("create %s: %v", url, err)
	}
	return c
}

func (r *rig) webhook(id int64) data.Webhook {
	r.t.Helper()
	w, err := r.store.Webhook(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return w
}

func (r *rig) idle() (bool, string) {
	st, err := r.queue.Stats(context.Background())
	if err != nil {
		return false, err.Error()
	}
	return st.Pending == 0 && st.Running == 0, fmt.Sprintf("%+v", st)
}

// delivery is a request a receiver got.
type delivery struct {
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is an HTTP server on 127.0.0.1 that answers the n-th request
// (from 0) with answer(n).
type receiver struct {
	*httptest.Server
	answer func(n int, r *http.Request) int
	mu     sync.Mutex
	got    []delivery
}

func newReceiver(t *testing.T, answer func(n int, r *http.Request) int) *receiver {
	rc := &receiver{answer: answer}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.got)
		rc.got = append(rc.got, delivery{header: r.Header.Clone(), body: body, at: time.Now()})
		rc.mu.Unlock()
		code := http.StatusOK
		if rc.answer != nil {
			code = rc.answer(n, r)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

func (rc *receiver) waitFor(t *testing.T, n int) []delivery {
	t.Helper()
	testrig.Eventually(t, 10*time.Second, fmt.Sprintf("%d deliveries", n), func() (bool, string) {
		d := rc.deliveries()
		return len(d) >= n, fmt.Sprintf("%d deliveries", len(d))
	})
	return rc.deliveries()
}

// verify checks a delivery's signature as a receiver following README.md
// would, with nothing of this package's: the HMAC-SHA256, keyed with the
// secret, of the timestamp header, a dot and the body, in lowercase hex
// after "sha256=".
func verify(t *testing.T, secret string, d delivery) {
	t.Helper()
	ts := d.header.Get("X-Starling-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		t.Fatalf("X-Starling-Timestamp %q is not a number", ts)
	}
	if skew := time.Since(time.Unix(sec, 0)); skew < -5*time.Minute || skew > 5*time.Minute {
		t.Errorf("timestamp %s is %s from now", ts, skew)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(d.body)))
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if got := d.header.Get("X-Starling-Signature"); !hmac.Equal([]byte(got), []byte(want)) {
		t.Errorf("signature %q, want %q", got, want)
	}
	if d.header.Get("Content-Type") != "application/json" {
		t.Errorf("content type %q", d.header.Get("Content-Type"))
	}
	if _, err := strconv.ParseInt(d.header.Get("X-Starling-Delivery"), 10, 64); err != nil {
		t.Errorf("X-Starling-Delivery %q is not a number", d.header.Get("X-Starling-Delivery"))
	}
	// Tampering with the body breaks the signature.
	mac = hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(d.body) + " "))
	if hmac.Equal([]byte(d.header.Get("X-Starling-Signature")), []byte("sha256="+hex.EncodeToString(mac.Sum(nil)))) {
		t.Error("a changed body has the same signature")
	}
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return v
}

// TestPayloadOfEachEvent sends one event of each type through the
// listeners and checks each body against Owncast's shape, field by field,
// and each signature with an independent implementation.
func TestPayloadOfEachEvent(t *testing.T) {
	rc := newReceiver(t, nil)
	r := newRig(t, "", Config{AllowedNetworks: loopback}, fastQueue)
	if _, err := r.settings.Update(context.Background(), func(s *core.Settings) error {
		s.Name, s.Summary = "My server", "Streams about birds"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	hook := r.create(rc.URL+"/hook?token=abc", Events...)
	if !strings.HasPrefix(hook.Secret, "whsec_") || len(hook.Secret) < 30 {
		t.Fatalf("secret %q", hook.Secret)
	}

	at := time.Date(2026, 11, 21, 10, 0, 0, 6, time.UTC)
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	user := &chat.User{ID: "u1", DisplayName: "Robin", DisplayColor: 3, CreatedAt: created, PreviousNames: []string{"Bird"}}
	userJSON := `{"id":"u1","displayName":"Robin","displayColor":3,"createdAt":"2026-01-02T03:04:05Z","previousNames":["Bird"],"isBot":false,"authenticated":false}`
	visible, hidden := true, false

	r.svc.ChatEvent(&chat.Event{Type: chat.TypeChat, ID: "m1", Timestamp: at, User: user, Body: "<p>hello</p>", Visible: &visible})
	r.svc.ChatEvent(&chat.Event{Type: chat.TypeUserJoined, ID: "j1", Timestamp: at, User: user})
	r.svc.ChatEvent(&chat.Event{Type: chat.TypeUserParted, ID: "p1", Timestamp: at, User: user})
	r.svc.ChatEvent(&chat.Event{Type: chat.TypeNameChange, ID: "n1", Timestamp: at, User: user, OldName: "Bird"})
	r.svc.ChatEvent(&chat.Event{Type: chat.TypeVisibilityUpdate, ID: "v1", Timestamp: at, IDs: []string{"m1", "m2"}, Visible: &hidden})
	// Types no webhook can have are not sent.
	r.svc.ChatEvent(&chat.Event{Type: chat.TypeSystem, ID: "s1", Timestamp: at, Body: "system"})
	r.svc.ChatEvent(&chat.Event{Type: chat.TypeColorChange, ID: "c1", Timestamp: at, User: user})
	b := core.Broadcast{ID: "b1", Title: "Birds at dawn", StartedAt: at, EndedAt: at.Add(time.Hour)}
	r.svc.BroadcastStarted(b)
	r.svc.BroadcastEnded(b)
	if _, err := r.settings.Update(context.Background(), func(s *core.Settings) error { s.StreamTitle = "Birds at noon"; return nil }); err != nil {
		t.Fatal(err)
	}
	// A change that is not the title sends nothing.
	if _, err := r.settings.Update(context.Background(), func(s *core.Settings) error { s.OfflineMessage = "Back soon"; return nil }); err != nil {
		t.Fatal(err)
	}

	want := map[string]string{
		"CHAT":              `{"user":` + userJSON + `,"body":"<p>hello</p>","id":"m1","visible":true,"timestamp":"2026-11-21T10:00:00.000000006Z"}`,
		"USER_JOINED":       `{"id":"j1","timestamp":"2026-11-21T10:00:00.000000006Z","user":` + userJSON + `}`,
		"USER_PARTED":       `{"id":"p1","timestamp":"2026-11-21T10:00:00.000000006Z","user":` + userJSON + `}`,
		"NAME_CHANGE":       `{"id":"n1","timestamp":"2026-11-21T10:00:00.000000006Z","user":` + userJSON + `,"newName":"Robin","oldName":"Bird"}`,
		"VISIBILITY-UPDATE": `{"id":"v1","timestamp":"2026-11-21T10:00:00.000000006Z","user":null,"visible":false,"ids":["m1","m2"]}`,
		"STREAM_STARTED":    `{"id":"b1","name":"My server","summary":"Streams about birds","streamTitle":"Birds at dawn","timestamp":"2026-11-21T10:00:00.000000006Z"}`,
		"STREAM_STOPPED":    `{"id":"b1","name":"My server","summary":"Streams about birds","streamTitle":"Birds at dawn","timestamp":"2026-11-21T11:00:00.000000006Z"}`,
	}
	rc.waitFor(t, len(Events))
	testrig.Eventually(t, 10*time.Second, "the queue to empty", r.idle)
	got := rc.deliveries()
	if len(got) != len(Events) {
		t.Fatalf("%d deliveries, want %d: one for each event type", len(got), len(Events))
	}
	seen := map[string]bool{}
	for _, d := range got {
		verify(t, hook.Secret, d)
		body := decode(t, d.body)
		if len(body) != 2 {
			t.Errorf("body has keys other than type and eventData: %s", d.body)
		}
		typ, _ := body["type"].(string)
		if seen[typ] {
			t.Errorf("%s delivered twice", typ)
		}
		seen[typ] = true
		data, _ := json.Marshal(body["eventData"])
		if typ == EventTitleUpdated {
			ed := body["eventData"].(map[string]any)
			if ed["streamTitle"] != "Birds at noon" || ed["name"] != "My server" || ed["summary"] != "Streams about birds" || ed["id"] == "" || len(ed) != 5 {
				t.Errorf("STREAM_TITLE_UPDATED eventData: %s", data)
			}
			if ts, err := time.Parse(time.RFC3339Nano, ed["timestamp"].(string)); err != nil || time.Since(ts) > time.Minute {
				t.Errorf("STREAM_TITLE_UPDATED timestamp %v", ed["timestamp"])
			}
			continue
		}
		w, ok := want[typ]
		if !ok {
			t.Errorf("unexpected event %q: %s", typ, d.body)
			continue
		}
		if !reflect.DeepEqual(decode(t, data), decode(t, []byte(w))) {
			t.Errorf("%s eventData:\n got %s\nwant %s", typ, data, w)
		}
	}
	if used := r.webhook(hook.ID).LastUsedAt; used == nil || time.Since(*used) > time.Minute {
		t.Errorf("lastUsed %v after deliveries", used)
	}
	if strings.Contains(r.logs.String(), hook.Secret) {
		t.Error("the secret is in the log")
	}
	if strings.Contains(r.logs.String(), "token=abc") {
		t.Error("the URL's query is in the log")
	}
}

// TestOnlySubscribedEventsAreSent: each webhook gets its events alone.
func TestOnlySubscribedEventsAreSent(t *testing.T) {
	chatRC, streamRC := newReceiver(t, nil), newReceiver(t, nil)
	r := newRig(t, "", Config{AllowedNetworks: loopback}, fastQueue)
	r.create(chatRC.URL, "CHAT", "CHAT")
	r.create(streamRC.URL, "STREAM_STARTED")
	r.svc.ChatEvent(&chat.Event{Type: chat.TypeChat, ID: "m1", Timestamp: time.Now()})
	r.svc.ChatEvent(&chat.Event{Type: chat.TypeUserJoined, ID: "j1", Timestamp: time.Now()})
	r.svc.BroadcastStarted(core.Broadcast{ID: "b1", StartedAt: time.Now()})
	r.svc.BroadcastEnded(core.Broadcast{ID: "b1", StartedAt: time.Now(), EndedAt: time.Now()})
	chatRC.waitFor(t, 1)
	streamRC.waitFor(t, 1)
	testrig.Eventually(t, 10*time.Second, "the queue to empty", r.idle)
	for name, c := range map[string]struct {
		rc   *receiver
		want string
	}{"chat": {chatRC, "CHAT"}, "stream": {streamRC, "STREAM_STARTED"}} {
		got := c.rc.deliveries()
		if len(got) != 1 || decode(t, got[0].body)["type"] != c.want {
			t.Errorf("%s webhook got %d deliveries, want one %s", name, len(got), c.want)
		}
	}
}

// TestRetryAfterServerError: a receiver that answers 500, then 200, gets
// the event exactly once more, the same body under the same delivery id.
func TestRetryAfterServerError(t *testing.T) {
	rc := newReceiver(t, func(n int, _ *http.Request) int {
		if n == 0 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	r := newRig(t, "", Config{AllowedNetworks: loopback}, fastQueue)
	hook := r.create(rc.URL, "STREAM_STARTED")
	r.svc.BroadcastStarted(core.Broadcast{ID: "b1", StartedAt: time.Now()})
	rc.waitFor(t, 2)
	testrig.Eventually(t, 10*time.Second, "the queue to empty", r.idle)
	got := rc.deliveries()
	if len(got) != 2 {
		t.Fatalf("%d deliveries, want 2: the failed one and one retry", len(got))
	}
	if string(got[0].body) != string(got[1].body) || got[0].header.Get("X-Starling-Delivery") != got[1].header.Get("X-Starling-Delivery") {
		t.Errorf("the retry differs:\n%s %s\n%s %s", got[0].header.Get("X-Starling-Delivery"), got[0].body, got[1].header.Get("X-Starling-Delivery"), got[1].body)
	}
	for _, d := range got {
		verify(t, hook.Secret, d)
	}
	w := r.webhook(hook.ID)
	if w.LastUsedAt == nil || !strings.Contains(w.LastError, "500") || w.LastErrorAt == nil || w.LastErrorAt.After(*w.LastUsedAt) {
		t.Errorf("after 500 then 200: lastUsed %v, lastError %q at %v", w.LastUsedAt, w.LastError, w.LastErrorAt)
	}
}

// TestPendingDeliverySurvivesRestart: a delivery that failed is retried
// by the next process on the same database.
func TestPendingDeliverySurvivesRestart(t *testing.T) {
	rc := newReceiver(t, func(n int, _ *http.Request) int {
		if n == 0 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	// The retry is due 1.5 to 3 s after the failure: well after this
	// process has stopped.
	slow := jobs.Config{Backoff: 3 * time.Second, Poll: 50 * time.Millisecond}
	r1 := newRig(t, "", Config{AllowedNetworks: loopback}, slow)
	hook := r1.create(rc.URL, "STREAM_STOPPED")
	r1.svc.BroadcastEnded(core.Broadcast{ID: "b1", StartedAt: time.Now(), EndedAt: time.Now()})
	rc.waitFor(t, 1)
	testrig.Eventually(t, 10*time.Second, "the failure recorded", func() (bool, string) {
		st, err := r1.queue.Stats(context.Background())
		return err == nil && st.Pending == 1 && st.Running == 0, fmt.Sprintf("%+v %v", st, err)
	})
	r1.close()
	stopped := time.Now()

	r2 := newRig(t, r1.path, Config{AllowedNetworks: loopback}, slow)
	rc.waitFor(t, 2)
	testrig.Eventually(t, 10*time.Second, "the queue to empty", r2.idle)
	got := rc.deliveries()
	if len(got) != 2 {
		t.Fatalf("%d deliveries, want 2: the failed one and its retry", len(got))
	}
	if !got[0].at.Before(stopped) || !got[1].at.After(stopped) {
		t.Fatalf("deliveries at %s and %s, the first process stopped at %s: the retry must come from the second",
			got[0].at.Format(time.StampMilli), got[1].at.Format(time.StampMilli), stopped.Format(time.StampMilli))
	}
	if string(got[0].body) != string(got[1].body) {
		t.Errorf("the body changed across the restart:\n%s\n%s", got[0].body, got[1].body)
	}
	verify(t, hook.Secret, got[1])
	if w := r2.webhook(hook.ID); w.LastUsedAt == nil {
		t.Error("lastUsed not recorded after the restart")
	}
}

// TestClientErrorsAreNotRetried: a 4xx is given up at once, except 408
// and 429, which are retried like a 5xx.
func TestClientErrorsAreNotRetried(t *testing.T) {
	for _, tc := range []struct {
		first int
		want  int // requests in all
	}{
		{http.StatusNotFound, 1},
		{http.StatusUnauthorized, 1},
		{http.StatusMovedPermanently, 1},
		{http.StatusRequestTimeout, 2},
		{http.StatusTooManyRequests, 2},
		{http.StatusServiceUnavailable, 2},
	} {
		t.Run(strconv.Itoa(tc.first), func(t *testing.T) {
			rc := newReceiver(t, func(n int, _ *http.Request) int {
				if n == 0 {
					return tc.first
				}
				return http.StatusOK
			})
			r := newRig(t, "", Config{AllowedNetworks: loopback}, fastQueue)
			hook := r.create(rc.URL, "CHAT")
			r.svc.ChatEvent(&chat.Event{Type: chat.TypeChat, ID: "m1", Timestamp: time.Now()})
			rc.waitFor(t, tc.want)
			testrig.Eventually(t, 10*time.Second, "the queue to empty", r.idle)
			if got := len(rc.deliveries()); got != tc.want {
				t.Errorf("%d requests, want %d", got, tc.want)
			}
			failed, err := r.queue.Failed(context.Background(), 10)
			if err != nil {
				t.Fatal(err)
			}
			if gaveUp := tc.want == 1; gaveUp != (len(failed) == 1) {
				t.Errorf("%d failed jobs after a %d", len(failed), tc.first)
			}
			if w := r.webhook(hook.ID); !strings.Contains(w.LastError, strconv.Itoa(tc.first)) {
				t.Errorf("lastError %q does not name the %d", w.LastError, tc.first)
			}
		})
	}
}

// TestTimeoutIsRetried: a receiver that does not answer in time fails
// the attempt, which is retried.
func TestTimeoutIsRetried(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if n == 0 {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}
		return http.StatusOK
	})
	r := newRig(t, "", Config{AllowedNetworks: loopback, Timeout: 200 * time.Millisecond}, fastQueue)
	hook := r.create(rc.URL, "CHAT")
	r.svc.ChatEvent(&chat.Event{Type: chat.TypeChat, ID: "m1", Timestamp: time.Now()})
	rc.waitFor(t, 2)
	testrig.Eventually(t, 10*time.Second, "the queue to empty", r.idle)
	w := r.webhook(hook.ID)
	if !strings.Contains(w.LastError, "did not answer within 200ms") || w.LastUsedAt == nil {
		t.Errorf("lastError %q, lastUsed %v", w.LastError, w.LastUsedAt)
	}
}

// TestLoopbackRefusedUnlessAllowed: without the setting, a delivery to a
// name that resolves to the loopback interface is refused, not sent, and
// says why; an address literal is refused when the webhook is created.
func TestLoopbackRefusedUnlessAllowed(t *testing.T) {
	rc := newReceiver(t, nil)
	r := newRig(t, "", Config{}, fastQueue)
	_, port, _ := strings.Cut(strings.TrimPrefix(rc.URL, "http://"), ":")
	hook := r.create("http://localhost:"+port+"/hook", "CHAT")
	r.svc.ChatEvent(&chat.Event{Type: chat.TypeChat, ID: "m1", Timestamp: time.Now()})
	testrig.Eventually(t, 10*time.Second, "the refusal recorded", func() (bool, string) {
		w := r.webhook(hook.ID)
		return w.LastError != "", w.LastError
	})
	testrig.Eventually(t, 10*time.Second, "the queue to empty", r.idle)
	w := r.webhook(hook.ID)
	if !strings.Contains(w.LastError, "loopback address") || !strings.Contains(w.LastError, "--webhook-allowed-networks") || w.LastUsedAt != nil {
		t.Errorf("lastError %q, lastUsed %v", w.LastError, w.LastUsedAt)
	}
	if n := len(rc.deliveries()); n != 0 {
		t.Errorf("the receiver on loopback got %d requests", n)
	}
	if failed, _ := r.queue.Failed(context.Background(), 10); len(failed) != 1 || failed[0].Attempts != 1 {
		t.Errorf("the refused delivery was not given up at once: %+v", failed)
	}

	for _, u := range []string{
		"http://127.0.0.1:" + port + "/",
		"http://127.1.2.3/",
		"https://10.0.0.8/hook",
		"http://172.16.5.4/",
		"http://192.168.1.1:8080/",
		"http://169.254.169.254/latest/meta-data/",
		"http://[::1]:8080/",
		"http://[fe80::1]/",
		"http://[fd00::5]/",
		"http://[::ffff:127.0.0.1]/",
		"http://[64:ff9b::a00:1]/",
		"http://0.0.0.0/",
		"http://[::]/",
		"http://224.0.0.1/",
		"http://100.64.0.1/",
	} {
		_, err := r.svc.Create(context.Background(), u, []string{"CHAT"})
		if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "), "url") || !strings.Contains(err.Error(), "address") {
			t.Errorf("create %s: %v, want a refusal naming the url and the kind of address", u, err)
		}
	}
	if hooks, _ := r.svc.List(context.Background()); len(hooks) != 1 {
		t.Errorf("%d webhooks after the refusals, want 1", len(hooks))
	}
	// Allowed, the same literal is accepted.
	r2 := newRig(t, "", Config{AllowedNetworks: loopback}, fastQueue)
	r2.create("http://127.0.0.1:"+port+"/", "CHAT")
}

// TestValidationNamesTheField: a bad webhook is refused with a message
// that names the field and what to do.
func TestValidationNamesTheField(t *testing.T) {
	r := newRig(t, "", Config{}, fastQueue)
	for _, tc := range []struct {
		url    string
		events []string
		want   []string
	}{
		{"", []string{"CHAT"}, []string{"url is empty"}},
		{"   ", []string{"CHAT"}, []string{"url is empty"}},
		{"ftp://example.com/hook", []string{"CHAT"}, []string{"url", "http:// or https://"}},
		{"javascript:alert(1)", []string{"CHAT"}, []string{"url", "http:// or https://"}},
		{"/relative/hook", []string{"CHAT"}, []string{"url", "http:// or https://"}},
		{"example.com/hook", []string{"CHAT"}, []string{"url", "http:// or https://"}},
		{"http:///path", []string{"CHAT"}, []string{"url", "no host"}},
		{"http://exa mple.com/", []string{"CHAT"}, []string{"url", "not a URL"}},
		{"http://example.com:99999/", []string{"CHAT"}, []string{"url", "port"}},
		{"https://example.com/" + strings.Repeat("a", 3000), []string{"CHAT"}, []string{"url is 3020 bytes"}},
		{"https://example.com/hook", nil, []string{"events is empty", "CHAT", "STREAM_TITLE_UPDATED"}},
		{"https://example.com/hook", []string{"CHAT", "MESSAGE_SENT", "chat"}, []string{"events", `"MESSAGE_SENT"`, `"chat"`, "use CHAT"}},
	} {
		_, err := r.svc.Create(context.Background(), tc.url, tc.events)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%q %q: %v, want ErrInvalid", tc.url, tc.events, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q %q: %q does not say %q", tc.url, tc.events, err, w)
			}
		}
	}
	if hooks, _ := r.svc.List(context.Background()); len(hooks) != 0 {
		t.Errorf("%d webhooks stored after refusals", len(hooks))
	}
	// A good one: events deduplicated in the API's order, the fragment
	// dropped, and no secret in the list.
	c := r.create("https://user:pw@example.com/hook?x=1#frag", "STREAM_STOPPED", "CHAT", "CHAT")
	if c.URL != "https://user:pw@example.com/hook?x=1" || !reflect.DeepEqual(c.Events, []string{"CHAT", "STREAM_STOPPED"}) {
		t.Errorf("created %+v", c.Webhook)
	}
	hooks, err := r.svc.List(context.Background())
	if err != nil || len(hooks) != 1 || hooks[0].ID != c.ID || hooks[0].LastUsed != nil || hooks[0].LastError != "" {
		t.Fatalf("list: %+v %v", hooks, err)
	}
	if b, _ := json.Marshal(hooks); strings.Contains(string(b), c.Secret) {
		t.Error("the list holds the secret")
	}
	if strings.Contains(r.logs.String(), c.Secret) || strings.Contains(r.logs.String(), "pw@") {
		t.Error("the secret or the URL's password is in the log")
	}
	if err := r.svc.Delete(context.Background(), c.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Delete(context.Background(), c.ID); !errors.Is(err, ErrUnknownWebhook) {
		t.Errorf("deleting twice: %v", err)
	}
}

// TestDeletedWebhookGetsNothing: deliveries queued for a webhook deleted
// since are dropped, and events after the delete are not queued.
func TestDeletedWebhookGetsNothing(t *testing.T) {
	var hits sync.WaitGroup
	hits.Add(1)
	rc := newReceiver(t, func(n int, _ *http.Request) int {
		if n == 0 {
			hits.Done()
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	r := newRig(t, "", Config{AllowedNetworks: loopback}, jobs.Config{Backoff: 300 * time.Millisecond, Poll: 50 * time.Millisecond})
	hook := r.create(rc.URL, "CHAT")
	r.svc.ChatEvent(&chat.Event{Type: chat.TypeChat, ID: "m1", Timestamp: time.Now()})
	hits.Wait()
	if err := r.svc.Delete(context.Background(), hook.ID); err != nil {
		t.Fatal(err)
	}
	r.svc.ChatEvent(&chat.Event{Type: chat.TypeChat, ID: "m2", Timestamp: time.Now()})
	testrig.Eventually(t, 10*time.Second, "the queue to empty", r.idle)
	if n := len(rc.deliveries()); n != 1 {
		t.Errorf("%d requests to a deleted webhook, want only the one before the delete", n)
	}
	if st := r.svc.Stats(); st.Queued != 1 {
		t.Errorf("%d deliveries queued, want 1", st.Queued)
	}
}

// TestFullBufferDrops: events beyond the buffer are dropped, counted and
// logged, and never block the caller; the ones buffered still go out.
func TestFullBufferDrops(t *testing.T) {
	rc := newReceiver(t, nil)
	path := filepath.Join(t.TempDir(), "starling.db")
	store, err := data.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	logs := &testrig.LogBuffer{}
	q := jobs.New(jobs.Deps{Logger: logs.Logger(), Store: store, Config: fastQueue})
	svc := New(Deps{Logger: logs.Logger(), Store: store, Queue: q, Config: Config{AllowedNetworks: loopback, Buffer: 2}})
	if _, err := svc.Create(context.Background(), rc.URL, []string{"CHAT"}); err != nil {
		t.Fatal(err)
	}
	// Not started: nothing takes events from the buffer yet.
	for i := range 5 {
		svc.ChatEvent(&chat.Event{Type: chat.TypeChat, ID: fmt.Sprint("m", i), Timestamp: time.Now()})
	}
	if st := svc.Stats(); st.Dropped != 3 {
		t.Errorf("%d dropped, want 3", st.Dropped)
	}
	if !strings.Contains(logs.String(), "dropping some") || strings.Count(logs.String(), "dropping some") != 1 {
		t.Errorf("the drops are not logged once:\n%s", logs)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := q.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	defer q.Close()
	got := rc.waitFor(t, 2)
	ids := map[string]bool{}
	for _, d := range got {
		ids[decode(t, d.body)["eventData"].(map[string]any)["id"].(string)] = true
	}
	if !ids["m0"] || !ids["m1"] {
		t.Errorf("delivered %v, want the two buffered first", ids)
	}
}

// TestCloseQueuesWhatIsBuffered: events handed over before Close are in
// the queue after it, for the next start.
func TestCloseQueuesWhatIsBuffered(t *testing.T) {
	rc := newReceiver(t, nil)
	r := newRig(t, "", Config{AllowedNetworks: loopback}, fastQueue)
	r.create(rc.URL, "CHAT")
	r.queue.Close() // nothing is delivered now
	for i := range 20 {
		r.svc.ChatEvent(&chat.Event{Type: chat.TypeChat, ID: fmt.Sprint("m", i), Timestamp: time.Now()})
	}
	r.svc.Close()
	st, err := r.queue.Stats(context.Background())
	if err != nil || st.Pending+int(r.svc.Stats().Dropped) != 20 || st.Pending == 0 {
		t.Errorf("after Close: %+v (%v), %d dropped; want the 20 events pending", st, err, r.svc.Stats().Dropped)
	}
	r.close()
	r2 := newRig(t, r.path, Config{AllowedNetworks: loopback}, fastQueue)
	rc.waitFor(t, st.Pending)
	testrig.Eventually(t, 10*time.Second, "the queue to empty", r2.idle)
}
