package main

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/starling-live/starling/activitypub/aptest"
)

// maxBody caps what a receiver reads of one delivery.
const maxBody = 1 << 20

// actorKey is our server's public key as its actor document serves it,
// which the receivers check signatures against.
type actorKey struct {
	id, owner string
	key       *rsa.PublicKey
}

// fleet is the remote hosts of a run: HTTP servers on 127.0.0.1, each
// answering 202 at its inboxes, and what they received.
type fleet struct {
	key       actorKey
	latency   time.Duration
	verifyAll bool
	hosts     []*host

	// mu guards everything below, written by the receivers' handlers.
	mu sync.Mutex
	// want is every inbox URL a delivery is due at, filled in before
	// the post is sent.
	want map[string]bool
	// start is when Send was called; zero until then.
	start time.Time
	got   map[string]int // deliveries by inbox URL
	// complete is closed when every inbox in want got its first
	// delivery, at completeAt after start.
	complete             chan struct{}
	firstAt, completeAt  time.Duration
	dupes, unexpected    int
	badBody, badSig      int
	verified             int
	errs                 []error // the first few failures, to show
	inFlight, peakFlight int
	hostFlight           map[string]int
	peakHostFlight       int
}

// host is one remote server.
type host struct {
	url  string // http://127.0.0.1:port
	srv  *http.Server
	done chan struct{} // closed when Serve returned
	// checked is whether a delivery to this host had its signature
	// verified yet; guarded by the fleet's mu.
	checked bool
}

func newFleet(n int, key actorKey, latency time.Duration, verifyAll bool) (*fleet, error) {
	f := &fleet{
		key: key, latency: latency, verifyAll: verifyAll,
		want: map[string]bool{}, got: map[string]int{},
		complete: make(chan struct{}), hostFlight: map[string]int{},
	}
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			f.close()
			return nil, err
		}
		h := &host{url: "http://" + ln.Addr().String(), done: make(chan struct{})}
		h.srv = &http.Server{
			Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.serve(h, w, r) }),
			ReadHeaderTimeout: 10 * time.Second,
		}
		go func() {
			defer close(h.done)
			h.srv.Serve(ln)
		}()
		f.hosts = append(f.hosts, h)
	}
	return f, nil
}

// expect adds an inbox a delivery is due at. Call it before arm.
func (f *fleet) expect(inbox string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.want[inbox] = true
}

// expected is how many inboxes a delivery is due at.
func (f *fleet) expected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.want)
}

// arm starts the clock: deliveries are timed from now.
func (f *fleet) arm() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.start = time.Now()
	return f.start
}

// close stops the servers and waits for them; a handler still waiting out
// its latency is cut short by its connection closing.
func (f *fleet) close() {
	for _, h := range f.hosts {
		h.srv.Close()
		<-h.done
	}
}

func (f *fleet) fail(counter *int, err error) {
	*counter++
	if len(f.errs) < 5 {
		f.errs = append(f.errs, err)
	}
}

// serve is a remote inbox: it reads the delivery, checks the signature
// of the first one to this host (or of each, with -verify-all) with
// aptest's verifier, which was written apart from our signing code, waits
// out the latency, and answers 202 as Mastodon does.
func (f *fleet) serve(h *host, w http.ResponseWriter, r *http.Request) {
	inbox := h.url + r.URL.Path
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/inbox") {
		http.Error(w, "not an inbox", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		// Cut short: our side gave up, or the fleet is closing.
		return
	}
	f.mu.Lock()
	f.inFlight++
	f.peakFlight = max(f.peakFlight, f.inFlight)
	f.hostFlight[h.url]++
	f.peakHostFlight = max(f.peakHostFlight, f.hostFlight[h.url])
	check := f.verifyAll || !h.checked
	h.checked = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.hostFlight[h.url]--
		f.mu.Unlock()
	}()

	var sigErr error
	if check {
		sigErr = f.verify(r, body)
	}
	bodyErr := checkBody(body)

	if f.latency > 0 {
		t := time.NewTimer(f.latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case check && sigErr != nil:
		f.fail(&f.badSig, fmt.Errorf("%s: %w", inbox, sigErr))
	case check:
		f.verified++
	}
	if bodyErr != nil {
		f.fail(&f.badBody, fmt.Errorf("%s: %w", inbox, bodyErr))
	}
	if !f.want[inbox] {
		f.fail(&f.unexpected, fmt.Errorf("a delivery to %s, which no follower has as inbox", inbox))
	} else {
		f.got[inbox]++
		switch n := f.got[inbox]; {
		case n > 1:
			f.dupes++
		case !f.start.IsZero():
			at := time.Since(f.start)
			if len(f.got) == 1 {
				f.firstAt = at
			}
			if len(f.got) == len(f.want) {
				f.completeAt = at
				close(f.complete)
			}
		}
	}
	w.WriteHeader(http.StatusAccepted)
}

// verify checks a delivery's signature against our actor's key.
func (f *fleet) verify(r *http.Request, body []byte) error {
	_, owner, err := aptest.VerifyRequest(r, body, func(keyID string) (*rsa.PublicKey, string, error) {
		if keyID != f.key.id {
			return nil, "", fmt.Errorf("keyId %q is not our actor's key %q", keyID, f.key.id)
		}
		return f.key.key, f.key.owner, nil
	})
	if err != nil {
		return err
	}
	if owner != f.key.owner {
		return fmt.Errorf("signed by a key of %q, not of our actor %q", owner, f.key.owner)
	}
	return nil
}

// checkBody checks that a delivery is the Create of the post.
func checkBody(body []byte) error {
	var a struct {
		Type   string `json:"type"`
		Object struct {
			Type    string `json:"type"`
			Content string `json:"content"`
		} `json:"object"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return fmt.Errorf("the delivery is not JSON: %w", err)
	}
	if a.Type != "Create" || a.Object.Type != "Note" || !strings.Contains(a.Object.Content, postText) {
		return fmt.Errorf("the delivery is a %s of a %s saying %q, not the Create of the Note %q", a.Type, a.Object.Type, a.Object.Content, postText)
	}
	return nil
}

// snapshot is what the fleet received so far.
type snapshot struct {
	received, dupes, unexpected, badBody, badSig, verified int
	peakFlight, peakHostFlight                             int
	firstAt, completeAt                                    time.Duration
	errs                                                   []error
}

func (f *fleet) snapshot() snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return snapshot{
		received: len(f.got), dupes: f.dupes, unexpected: f.unexpected, badBody: f.badBody, badSig: f.badSig,
		verified: f.verified, peakFlight: f.peakFlight, peakHostFlight: f.peakHostFlight,
		firstAt: f.firstAt, completeAt: f.completeAt, errs: append([]error(nil), f.errs...),
	}
}

// fetchKey reads our actor's public key from its document, as a remote
// server does on the first delivery it gets.
func fetchKey(ctx context.Context, actor string) (actorKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, actor, nil)
	if err != nil {
		return actorKey{}, err
	}
	req.Header.Set("Accept", "application/activity+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return actorKey{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return actorKey{}, fmt.Errorf("GET %s answered %s", actor, resp.Status)
	}
	var doc struct {
		ID        string `json:"id"`
		PublicKey struct {
			ID           string `json:"id"`
			Owner        string `json:"owner"`
			PublicKeyPem string `json:"publicKeyPem"`
		} `json:"publicKey"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&doc); err != nil {
		return actorKey{}, fmt.Errorf("the actor document %s: %w", actor, err)
	}
	k, err := parsePublicKey(doc.PublicKey.PublicKeyPem)
	if err != nil {
		return actorKey{}, fmt.Errorf("the actor document %s: %w", actor, err)
	}
	if doc.PublicKey.Owner != doc.ID || doc.ID != actor {
		return actorKey{}, fmt.Errorf("the actor document %s is of %q, its key of %q", actor, doc.ID, doc.PublicKey.Owner)
	}
	return actorKey{id: doc.PublicKey.ID, owner: doc.PublicKey.Owner, key: k}, nil
}

var errNoKey = errors.New("publicKeyPem holds no PKIX RSA public key")

// parsePublicKey reads a publicKeyPem as our server writes it: PKIX.
func parsePublicKey(s string) (*rsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errNoKey
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoKey, err)
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, errNoKey
	}
	return rk, nil
}
