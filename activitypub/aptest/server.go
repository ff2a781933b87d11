package aptest

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// maxBody caps every body read, inbound or fetched.
const maxBody = 1 << 20

// clientTimeout bounds every request the Server makes, and those tests
// make with its Client.
const clientTimeout = 10 * time.Second

// Server is a remote fediverse instance: actors, their documents and
// inboxes, on an httptest server at http://127.0.0.1:PORT. All its
// methods are safe for concurrent use, except that NewActor, Respond and
// the Wait methods fail the test and so belong on the test's goroutine.
type Server struct {
	t         testing.TB
	srv       *httptest.Server // started by New, closed by Close
	transport *http.Transport  // the client's; its idle connections closed by Close
	client    *http.Client

	mu sync.Mutex
	// Everything below is guarded by mu.
	actors     map[string]*Actor // by name
	nextKey    int               // index in keyPool of the next actor's key
	deliveries []Delivery        // in the order they were answered
	fetches    []Fetch           // in the order they were answered
	// changed is closed, and replaced, when a delivery or fetch is
	// recorded: the Wait methods sleep on it.
	changed       chan struct{}
	signedFetch   bool
	respondLeft   int // how many more verified deliveries get respondStatus
	respondStatus int
	gone          bool
	keys          map[string]remoteKey // fetched keys, by keyId, until ForgetKeys
}

// Delivery is one POST to an inbox of the Server.
type Delivery struct {
	// Inbox is the path POSTed to: "/users/NAME/inbox", or "/inbox" for
	// the shared inbox.
	Inbox       string
	Body        []byte
	Activity    map[string]any // Body decoded, nil if it is not a JSON object
	Type        string         // Activity["type"], if a string
	ContentType string
	Header      http.Header
	// KeyID is the keyId of the Signature header, if it could be read.
	KeyID string
	// Verified says the delivery passed every check, independently of the
	// sender's own signing code: an ActivityPub media type, a JSON object
	// body, a valid HTTP signature (see VerifyRequest) by a key whose
	// owner is the activity's actor.
	Verified bool
	// Err is the first check that failed, when Verified is false.
	Err string
	// Status is what the Server answered: 202 for a verified delivery
	// unless Respond or Gone say otherwise; 401 for a bad signature or
	// key owner, 400 (not JSON), 404 (no such actor), 413 (over 1 MiB)
	// or 415 (media type) for the rest.
	Status int
}

// Fetch is one GET of an actor's document (or its outbox or followers
// collection).
type Fetch struct {
	Path   string
	Accept string
	// Signed says the request had a Signature header, and Verified that it
	// verified (with VerifyRequest; no digest is needed without a body).
	Signed   bool
	Verified bool
	KeyID    string
	Err      string // why the signature did not verify
	Status   int    // 200, 401 (RequireSignedFetch) or 404
}

// remoteKey is a public key fetched for a keyId, with its owner's id.
type remoteKey struct {
	pub   *rsa.PublicKey
	owner string
}

// New starts a remote instance on 127.0.0.1:0. It is closed by
// t.Cleanup, after waiting for the requests it is serving.
func New(t testing.TB) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("aptest: listen on 127.0.0.1:0: %v", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // loopback, always direct
	s := &Server{
		t:         t,
		transport: tr,
		client:    &http.Client{Transport: tr, Timeout: clientTimeout},
		actors:    map[string]*Actor{},
		changed:   make(chan struct{}),
		keys:      map[string]remoteKey{},
	}
	s.srv = &httptest.Server{
		Listener: ln,
		Config:   &http.Server{Handler: s.routes(), ReadHeaderTimeout: clientTimeout},
	}
	s.srv.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{name}", s.serveDocument(func(a *Actor) map[string]any { return a.Document() }))
	mux.HandleFunc("GET /users/{name}/outbox", s.serveDocument(func(a *Actor) map[string]any { return emptyCollection(a.Outbox()) }))
	mux.HandleFunc("GET /users/{name}/followers", s.serveDocument(func(a *Actor) map[string]any { return emptyCollection(a.Followers()) }))
	mux.HandleFunc("POST /users/{name}/inbox", s.serveInbox)
	mux.HandleFunc("POST /inbox", s.serveInbox)
	mux.HandleFunc("GET /.well-known/webfinger", s.serveWebfinger)
	mux.HandleFunc("GET /avatars/{file}", s.serveAvatar)
	return mux
}

// Close stops the Server early, so that it refuses connections as a
// remote instance that is down does. It waits for the requests being
// served. Calling it again does nothing.
func (s *Server) Close() {
	s.srv.Close()
	s.transport.CloseIdleConnections()
}

// URL is "http://127.0.0.1:PORT".
func (s *Server) URL() string { return s.srv.URL }

// Host is "127.0.0.1:PORT", the host part of the Server's ids.
func (s *Server) Host() string { return s.srv.Listener.Addr().String() }

// Client is a plain HTTP client with a 10 s timeout, for sending
// hand-made (hostile) requests. The Server fetches keys with it too.
func (s *Server) Client() *http.Client { return s.client }

// NewActor adds a Person named name, with an RSA 2048 key of its own on
// this Server. Keys are slow to generate under the race detector, so each
// is generated once per test binary and the k-th actor of every Server
// gets the same one: two actors of one Server never share a key, actors
// of two Servers may. It fails the test if name is taken or is not a
// username (letters, digits, '_', '.', '-').
func (s *Server) NewActor(name string) *Actor {
	s.t.Helper()
	if !validUsername(name) {
		s.t.Fatalf("aptest: actor name %q: use letters, digits, '_', '.' and '-'", name)
	}
	s.mu.Lock()
	_, taken := s.actors[name]
	i := s.nextKey
	s.nextKey++
	s.mu.Unlock()
	if taken {
		s.t.Fatalf("aptest: %s already has an actor named %q", s.Host(), name)
	}
	// Generating may take seconds; the Server keeps serving meanwhile.
	key, err := poolKey(i)
	if err != nil {
		s.t.Fatalf("aptest: key for actor %q: %v", name, err)
	}
	a := &Actor{srv: s, name: name, key: key, pem: publicKeyPEM(&key.PublicKey), displayName: name}
	s.mu.Lock()
	_, taken = s.actors[name]
	if !taken {
		s.actors[name] = a
	}
	s.mu.Unlock()
	if taken {
		s.t.Fatalf("aptest: %s already has an actor named %q", s.Host(), name)
	}
	return a
}

// RequireSignedFetch makes GETs of this Server's actor documents (and
// their outbox and followers) answer 401 unless they carry a valid HTTP
// signature, as Mastodon does in authorized-fetch mode and GoToSocial
// always. The signer's key is fetched by an unsigned GET of its keyId.
// WebFinger and avatars stay public, as on Mastodon.
//
// Keys are fetched unsigned, so an actor of a Server that requires signed
// fetches cannot sign what it sends to another Server (the receiver's key
// fetch is refused); an actor's signatures to its own Server work.
func (s *Server) RequireSignedFetch(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signedFetch = on
}

// Respond makes the next n verified inbox POSTs (to any inbox of this
// Server) answer status instead of 202; Respond(0, 0) cancels. A POST that
// fails verification is answered 401 regardless and does not count.
func (s *Server) Respond(n int, status int) {
	s.t.Helper()
	if n > 0 && (status < 200 || status > 599) {
		s.t.Fatalf("aptest: Respond(%d, %d): status must be 200-599", n, status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.respondLeft, s.respondStatus = n, status
}

// Gone makes every verified inbox POST answer 410 from now on, as an
// instance does for a deleted account. It takes precedence over Respond.
func (s *Server) Gone() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gone = true
}

// ForgetKeys empties the cache of fetched keys, so that the next
// signature from each keyId fetches its key again. (A signature that does
// not verify with a cached key is retried once with a fresh fetch anyway,
// as Mastodon does to follow key rotation.)
func (s *Server) ForgetKeys() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.keys)
}

// Deliveries returns copies of every POST to an inbox of this Server,
// verified or not, in the order they were answered.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Delivery, len(s.deliveries))
	for i, d := range s.deliveries {
		out[i] = d.clone()
	}
	return out
}

// Fetches returns every GET of an actor document, in order.
func (s *Server) Fetches() []Fetch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Fetch(nil), s.fetches...)
}

// WaitDeliveries waits until at least n verified deliveries have arrived
// and returns all the verified ones, in order. At the deadline it fails
// the test, listing what did arrive and why each unverified one failed.
func (s *Server) WaitDeliveries(t testing.TB, n int, timeout time.Duration) []Delivery {
	t.Helper()
	var got []Delivery
	s.wait(t, timeout, fmt.Sprintf("%d verified deliveries", n), func(deliveries []Delivery, _ []Fetch) bool {
		got = got[:0]
		for _, d := range deliveries {
			if d.Verified {
				got = append(got, d.clone())
			}
		}
		return len(got) >= n
	})
	return got
}

// WaitDelivery waits for the first verified delivery that match accepts
// and returns it; see OfType. At the deadline it fails the test.
func (s *Server) WaitDelivery(t testing.TB, match func(Delivery) bool, timeout time.Duration) Delivery {
	t.Helper()
	var found Delivery
	s.wait(t, timeout, "a matching verified delivery", func(deliveries []Delivery, _ []Fetch) bool {
		for _, d := range deliveries {
			if d.Verified && match(d.clone()) {
				found = d.clone()
				return true
			}
		}
		return false
	})
	return found
}

// OfType matches deliveries of the activity type typ, for WaitDelivery.
func OfType(typ string) func(Delivery) bool {
	return func(d Delivery) bool { return d.Type == typ }
}

// WaitFetches waits until at least n GETs of actor documents have been
// answered and returns them all. At the deadline it fails the test.
func (s *Server) WaitFetches(t testing.TB, n int, timeout time.Duration) []Fetch {
	t.Helper()
	var got []Fetch
	s.wait(t, timeout, fmt.Sprintf("%d fetches of actor documents", n), func(_ []Delivery, fetches []Fetch) bool {
		got = fetches
		return len(got) >= n
	})
	return got
}

// wait calls done with what has been received so far (copies of the
// slices, taken under mu, so done may call the Server), again each time a
// delivery or fetch is recorded, until done says so or timeout passes.
func (s *Server) wait(t testing.TB, timeout time.Duration, what string, done func([]Delivery, []Fetch) bool) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		deliveries := append([]Delivery(nil), s.deliveries...)
		fetches := append([]Fetch(nil), s.fetches...)
		changed := s.changed
		s.mu.Unlock()
		if done(deliveries, fetches) {
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("aptest %s: timed out after %s waiting for %s; received:\n%s", s.Host(), timeout, what, s.describe())
		}
	}
}

// describe lists what the Server received, for a failing test.
func (s *Server) describe() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	if len(s.deliveries) == 0 {
		b.WriteString("  no deliveries\n")
	}
	for i, d := range s.deliveries {
		fmt.Fprintf(&b, "  delivery %d: POST %s type=%q status=%d verified=%t", i, d.Inbox, d.Type, d.Status, d.Verified)
		if d.Err != "" {
			fmt.Fprintf(&b, " err=%q", d.Err)
		}
		body := d.Body
		if len(body) > 300 {
			body = body[:300]
		}
		fmt.Fprintf(&b, "\n    %s\n", body)
	}
	for i, f := range s.fetches {
		fmt.Fprintf(&b, "  fetch %d: GET %s status=%d signed=%t verified=%t", i, f.Path, f.Status, f.Signed, f.Verified)
		if f.Err != "" {
			fmt.Fprintf(&b, " err=%q", f.Err)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// recordedLocked wakes the waiters after a delivery or fetch is
// recorded; mu is held.
func (s *Server) recordedLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) actor(name string) *Actor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.actors[name]
}

// serveInbox receives a delivery, to an actor's inbox or the shared one,
// and records it whatever it is.
func (s *Server) serveInbox(w http.ResponseWriter, r *http.Request) {
	d := Delivery{Inbox: r.URL.Path, ContentType: r.Header.Get("Content-Type"), Header: r.Header.Clone()}
	status, err := s.check(w, r, &d)

	s.mu.Lock()
	if err != nil {
		d.Status, d.Err = status, err.Error()
	} else {
		d.Verified = true
		d.Status = http.StatusAccepted
		switch {
		case s.gone:
			d.Status = http.StatusGone
		case s.respondLeft > 0:
			s.respondLeft--
			d.Status = s.respondStatus
		}
	}
	s.deliveries = append(s.deliveries, d)
	s.recordedLocked()
	s.mu.Unlock()

	if d.Err != "" {
		http.Error(w, "aptest: "+d.Err, d.Status)
		return
	}
	w.WriteHeader(d.Status)
}

// check runs the checks of a delivery in order, filling d as it goes, and
// returns the first failure with the status that answers it.
func (s *Server) check(w http.ResponseWriter, r *http.Request, d *Delivery) (int, error) {
	if name := r.PathValue("name"); name != "" && s.actor(name) == nil {
		return http.StatusNotFound, fmt.Errorf("no actor %q on %s", name, s.Host())
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	d.Body = body
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return http.StatusRequestEntityTooLarge, fmt.Errorf("body is over %d bytes", maxBody)
		}
		return http.StatusBadRequest, fmt.Errorf("read body: %w", err)
	}
	if err := checkMediaType(d.ContentType); err != nil {
		return http.StatusUnsupportedMediaType, err
	}
	if err := json.Unmarshal(body, &d.Activity); err != nil || d.Activity == nil {
		d.Activity = nil
		return http.StatusBadRequest, fmt.Errorf("body is not a JSON object: %v", err)
	}
	d.Type, _ = d.Activity["type"].(string)

	keyID, owner, err := s.verify(r, body)
	d.KeyID = keyID
	if err != nil {
		return http.StatusUnauthorized, err
	}
	if actor := objectID(d.Activity["actor"]); owner != actor {
		return http.StatusUnauthorized, fmt.Errorf("%w: the key %s belongs to %s, the activity's actor is %q", ErrOwner, keyID, owner, actor)
	}
	return 0, nil
}

// checkMediaType accepts the two media types ActivityPub allows for
// activities (https://www.w3.org/TR/activitypub/#server-to-server-interactions).
func checkMediaType(ct string) error {
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil {
		switch mt {
		case "application/activity+json":
			return nil
		case "application/ld+json":
			for p := range strings.FieldsSeq(params["profile"]) {
				if p == "https://www.w3.org/ns/activitystreams" {
					return nil
				}
			}
		}
	}
	return fmt.Errorf("Content-Type %q: want application/activity+json or application/ld+json; profile=\"https://www.w3.org/ns/activitystreams\"", ct)
}

// verify is VerifyRequest with the Server's keys: its own actors', and
// others' fetched and cached. A signature that fails with a cached key is
// checked once more with the key fetched afresh, as the sender may have
// rotated it.
func (s *Server) verify(r *http.Request, body []byte) (keyID, owner string, err error) {
	cached := false
	fetch := func(id string) (*rsa.PublicKey, string, error) {
		k, c, err := s.publicKey(r.Context(), id)
		cached = c
		return k.pub, k.owner, err
	}
	keyID, owner, err = VerifyRequest(r, body, fetch)
	if errors.Is(err, ErrSignature) && cached {
		s.mu.Lock()
		delete(s.keys, keyID)
		s.mu.Unlock()
		keyID, owner, err = VerifyRequest(r, body, fetch)
	}
	return keyID, owner, err
}

// publicKey returns the key named keyID, and whether it came from the
// cache.
func (s *Server) publicKey(ctx context.Context, keyID string) (remoteKey, bool, error) {
	s.mu.Lock()
	if k, ok := s.keys[keyID]; ok {
		s.mu.Unlock()
		return k, true, nil
	}
	// One of our own actors: no need to ask ourselves over HTTP (and
	// RequireSignedFetch would refuse the unsigned GET).
	for _, a := range s.actors {
		if a.KeyID() == keyID {
			s.mu.Unlock()
			return remoteKey{pub: &a.key.PublicKey, owner: a.ID()}, false, nil
		}
	}
	s.mu.Unlock()

	k, err := s.fetchKey(ctx, keyID)
	if err != nil {
		return remoteKey{}, false, err
	}
	s.mu.Lock()
	s.keys[keyID] = k
	s.mu.Unlock()
	return k, false, nil
}

// fetchKey GETs the key named keyID, as Mastodon's FetchRemoteKeyService
// does: keyID is either a key inside an actor document (Mastodon's
// "ACTOR#main-key"), or a key document of its own whose owner's document
// must list it back.
func (s *Server) fetchKey(ctx context.Context, keyID string) (remoteKey, error) {
	doc, err := s.getJSON(ctx, keyID)
	if err != nil {
		return remoteKey{}, err
	}
	docID, _ := doc["id"].(string)

	if pk, ok := doc["publicKey"]; ok {
		if docID != withoutFragment(keyID) {
			return remoteKey{}, fmt.Errorf("GET %s answered a document whose id is %q", withoutFragment(keyID), docID)
		}
		key, err := findKey(pk, keyID)
		if err != nil {
			return remoteKey{}, fmt.Errorf("actor %s: %w", docID, err)
		}
		if owner, _ := key["owner"].(string); owner != docID {
			return remoteKey{}, fmt.Errorf("actor %s lists the key %s with owner %q, not itself", docID, keyID, owner)
		}
		pem, _ := key["publicKeyPem"].(string)
		pub, err := parsePublicKeyPEM(pem)
		if err != nil {
			return remoteKey{}, fmt.Errorf("actor %s: %w", docID, err)
		}
		return remoteKey{pub: pub, owner: docID}, nil
	}

	if pem, ok := doc["publicKeyPem"].(string); ok {
		if docID != keyID {
			return remoteKey{}, fmt.Errorf("GET %s answered a key whose id is %q", keyID, docID)
		}
		owner, _ := doc["owner"].(string)
		if owner == "" {
			return remoteKey{}, fmt.Errorf("key %s has no owner", keyID)
		}
		ownerDoc, err := s.getJSON(ctx, owner)
		if err != nil {
			return remoteKey{}, fmt.Errorf("owner of key %s: %w", keyID, err)
		}
		if id, _ := ownerDoc["id"].(string); id != owner {
			return remoteKey{}, fmt.Errorf("GET %s (owner of key %s) answered a document whose id is %q", owner, keyID, id)
		}
		if _, err := findKey(ownerDoc["publicKey"], keyID); err != nil {
			return remoteKey{}, fmt.Errorf("owner %s does not confirm key %s: %w", owner, keyID, err)
		}
		pub, err := parsePublicKeyPEM(pem)
		if err != nil {
			return remoteKey{}, fmt.Errorf("key %s: %w", keyID, err)
		}
		return remoteKey{pub: pub, owner: owner}, nil
	}
	return remoteKey{}, fmt.Errorf("GET %s answered neither an actor with a publicKey nor a key", keyID)
}

// findKey picks the key with id keyID from a publicKey value, an object or
// (for actors with several keys) an array of them.
func findKey(v any, keyID string) (map[string]any, error) {
	var candidates []any
	switch v := v.(type) {
	case map[string]any:
		candidates = []any{v}
	case []any:
		candidates = v
	}
	var ids []string
	for _, c := range candidates {
		if k, ok := c.(map[string]any); ok {
			id, _ := k["id"].(string)
			if id == keyID {
				return k, nil
			}
			ids = append(ids, id)
		}
	}
	return nil, fmt.Errorf("no publicKey with id %s (there are %q)", keyID, ids)
}

// getJSON GETs an ActivityPub document, unsigned.
func (s *Server) getJSON(ctx context.Context, rawURL string) (map[string]any, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL", rawURL)
	}
	u.Fragment = ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/activity+json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s answered %s", u, resp.Status)
	}
	ct := resp.Header.Get("Content-Type")
	if mt, _, _ := mime.ParseMediaType(ct); mt != "application/activity+json" && mt != "application/ld+json" {
		return nil, fmt.Errorf("GET %s answered Content-Type %q, want application/activity+json", u, ct)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("GET %s answered more than %d bytes", u, maxBody)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil || doc == nil {
		return nil, fmt.Errorf("GET %s answered something other than a JSON object: %v", u, err)
	}
	return doc, nil
}

// serveDocument serves what doc builds for the actor named in the path,
// recording the fetch and refusing it if RequireSignedFetch says so.
func (s *Server) serveDocument(doc func(a *Actor) map[string]any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f := Fetch{Path: r.URL.Path, Accept: r.Header.Get("Accept"), Signed: r.Header.Get("Signature") != ""}
		if f.Signed {
			keyID, _, err := s.verify(r, nil)
			f.KeyID = keyID
			if err != nil {
				f.Err = err.Error()
			} else {
				f.Verified = true
			}
		}
		a := s.actor(r.PathValue("name"))

		s.mu.Lock()
		switch {
		case a == nil:
			f.Status = http.StatusNotFound
		case s.signedFetch && !f.Verified:
			f.Status = http.StatusUnauthorized
		default:
			f.Status = http.StatusOK
		}
		s.fetches = append(s.fetches, f)
		s.recordedLocked()
		s.mu.Unlock()

		switch f.Status {
		case http.StatusNotFound:
			http.Error(w, "aptest: no such actor", f.Status)
		case http.StatusUnauthorized:
			msg := "aptest: this server requires signed fetches (authorized fetch)"
			if f.Err != "" {
				msg += ": " + f.Err
			}
			http.Error(w, msg, f.Status)
		default:
			writeJSON(w, "application/activity+json; charset=utf-8", doc(a))
		}
	}
}

// serveWebfinger answers acct:NAME@HOST, or an actor's id, with a JRD
// (RFC 7033) linking to the actor.
func (s *Server) serveWebfinger(w http.ResponseWriter, r *http.Request) {
	resource := r.URL.Query().Get("resource")
	var a *Actor
	if acct, ok := strings.CutPrefix(resource, "acct:"); ok {
		if name, host, _ := strings.Cut(acct, "@"); host == s.Host() {
			a = s.actor(name)
		}
	} else {
		s.mu.Lock()
		for _, c := range s.actors {
			if c.ID() == resource {
				a = c
			}
		}
		s.mu.Unlock()
	}
	if a == nil {
		http.Error(w, "aptest: no such account", http.StatusNotFound)
		return
	}
	writeJSON(w, "application/jrd+json; charset=utf-8", map[string]any{
		"subject": "acct:" + a.name + "@" + s.Host(),
		"aliases": []any{a.ID(), a.ProfileURL()},
		"links": []any{
			map[string]any{"rel": "self", "type": "application/activity+json", "href": a.ID()},
			map[string]any{"rel": "http://webfinger.net/rel/profile-page", "type": "text/html", "href": a.ProfileURL()},
			map[string]any{"rel": "http://ostatus.org/schema/1.0/subscribe", "template": s.URL() + "/authorize_interaction?uri={uri}"},
		},
	})
}

// serveAvatar serves a one-pixel PNG for each actor's icon.
func (s *Server) serveAvatar(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutSuffix(r.PathValue("file"), ".png")
	if !ok || s.actor(name) == nil {
		http.NotFound(w, r)
		return
	}
	img := image.NewRGBA(image.Rect(0, 0, 1, 1))
	img.Set(0, 0, color.RGBA{R: 0x63, G: 0x64, B: 0xff, A: 0xff})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Write(b.Bytes())
}

func writeJSON(w http.ResponseWriter, contentType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Write(b)
}

func emptyCollection(id string) map[string]any {
	return map[string]any{
		"@context":     asContext,
		"id":           id,
		"type":         "OrderedCollection",
		"totalItems":   0,
		"orderedItems": []any{},
	}
}

// objectID is the id of an ActivityStreams reference: the string itself,
// or the "id" of an embedded object.
func objectID(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case map[string]any:
		id, _ := v["id"].(string)
		return id
	}
	return ""
}

func withoutFragment(u string) string {
	base, _, _ := strings.Cut(u, "#")
	return base
}

func validUsername(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

// clone copies a Delivery deeply enough that callers may change it.
func (d Delivery) clone() Delivery {
	d.Body = bytes.Clone(d.Body)
	d.Header = d.Header.Clone()
	if d.Activity != nil {
		var m map[string]any
		if json.Unmarshal(d.Body, &m) == nil {
			d.Activity = m
		}
	}
	return d
}
