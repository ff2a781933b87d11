package activitypub

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-fed/httpsig"

	"github.com/starling-live/starling/core/data"
)

// errUnsigned and the others are why a request's signature is refused;
// each is a 401.
var (
	errUnsigned = errors.New("the request is not signed: sign it with HTTP Signatures (rsa-sha256 over (request-target) host date digest)")
	errReplayed = errors.New("this signature was seen before: sign each request anew")
	// errBusy is a 429: too many keys of one host to fetch.
	errBusy = errors.New("too many new keys from your server to fetch: send again later")
)

// signature are the parameters of a Signature header that we check
// ourselves; httpsig checks the signature.
type signature struct {
	keyID, algorithm string
	headers          []string
}

// parseSignature reads the Signature header's parameters.
func parseSignature(h string) (signature, error) {
	var sig signature
	if h == "" {
		return sig, errUnsigned
	}
	for part := range strings.SplitSeq(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"`)
		switch strings.ToLower(k) {
		case "keyid":
			sig.keyID = v
		case "algorithm":
			sig.algorithm = strings.ToLower(v)
		case "headers":
			sig.headers = strings.Fields(strings.ToLower(v))
		}
	}
	if sig.keyID == "" {
		return sig, errors.New("the signature has no keyId")
	}
	if sig.headers == nil {
		// The default is (created) alone: it covers nothing we can check.
		sig.headers = []string{"(created)"}
	}
	if sig.algorithm != "" && sig.algorithm != "rsa-sha256" && sig.algorithm != "hs2019" {
		return sig, fmt.Errorf("signature algorithm %q: use rsa-sha256", sig.algorithm)
	}
	return sig, nil
}

// covers checks the signature covers what it must.
func (sig signature) covers(withBody bool) error {
	need := []string{"(request-target)", "host", "date"}
	if withBody {
		need = append(need, "digest")
	}
	for _, h := range need {
		if !slices.Contains(sig.headers, h) {
			return fmt.Errorf("the signature does not cover %s: sign (request-target) host date digest", h)
		}
	}
	return nil
}

// checkDigest checks the Digest header against the body: httpsig signs
// the header but does not read the body.
func checkDigest(header string, body []byte) error {
	if header == "" {
		return errors.New("the request has no Digest header: send SHA-256=base64 of the body")
	}
	sum := sha256.Sum256(body)
	want := base64.StdEncoding.EncodeToString(sum[:])
	for d := range strings.SplitSeq(header, ",") {
		algo, value, ok := strings.Cut(strings.TrimSpace(d), "=")
		if ok && strings.EqualFold(algo, "SHA-256") {
			if value != want {
				return errors.New("the Digest does not match the body")
			}
			return nil
		}
	}
	return errors.New("the Digest header has no SHA-256: send SHA-256=base64 of the body")
}

// checkDate checks the Date header is within the allowed skew.
func (f *Federation) checkDate(header string, now time.Time) error {
	t, err := http.ParseTime(header)
	if err != nil {
		return fmt.Errorf("the Date header %q is not an HTTP date", header)
	}
	if d := now.Sub(t); d > f.cfg.ClockSkew || d < -f.cfg.ClockSkew {
		return fmt.Errorf("the Date header is %s from now: check the clock (at most %s either way)", d.Round(time.Second), f.cfg.ClockSkew)
	}
	return nil
}

// remoteActor is what we read of a remote actor's document.
type remoteActor struct {
	ID                string `json:"id"`
	Type              string `json:"type"`
	PreferredUsername string `json:"preferredUsername"`
	Name              string `json:"name"`
	Inbox             string `json:"inbox"`
	URL               any    `json:"url"`
	Endpoints         struct {
		SharedInbox string `json:"sharedInbox"`
	} `json:"endpoints"`
	Icon      any `json:"icon"`
	PublicKey struct {
		ID           string `json:"id"`
		Owner        string `json:"owner"`
		PublicKeyPem string `json:"publicKeyPem"`
	} `json:"publicKey"`
	// Owner and PublicKeyPem are set when the document is a key alone.
	Owner        string `json:"owner"`
	PublicKeyPem string `json:"publicKeyPem"`
}

// imageURL is the URL of an icon: a link, an Image, or a list of them.
func imageURL(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		if u, ok := x["url"].(string); ok {
			return u
		}
		if u, ok := x["href"].(string); ok {
			return u
		}
	case []any:
		if len(x) > 0 {
			return imageURL(x[0])
		}
	}
	return ""
}

// maxField bounds the text kept of a remote actor's fields.
const maxField = 500

func clip(s string) string {
	if len(s) > maxField {
		return s[:maxField]
	}
	return s
}

// fetchActor fetches a remote actor (or its key, which Mastodon answers
// with the actor) with a signed GET, checks it, and caches it.
func (f *Federation) fetchActor(ctx context.Context, iri string) (data.RemoteActor, error) {
	return f.fetch(ctx, iri, false)
}

// fetch is fetchActor; owner is set when iri is a key's owner.
func (f *Federation) fetch(ctx context.Context, iri string, owner bool) (data.RemoteActor, error) {
	t, err := f.transport(ctx)
	if err != nil {
		return data.RemoteActor{}, err
	}
	u, err := url.Parse(iri)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return data.RemoteActor{}, fmt.Errorf("%q is not an http(s) URL", iri)
	}
	b, err := t.Dereference(ctx, u)
	if err != nil {
		return data.RemoteActor{}, err
	}
	var doc remoteActor
	if err := json.Unmarshal(b, &doc); err != nil {
		return data.RemoteActor{}, fmt.Errorf("the actor document at %s is not JSON: %w", iri, err)
	}
	// Some servers answer a key's id with the key alone, naming its
	// owner, whose document holds the rest.
	if doc.Owner != "" && doc.PublicKeyPem != "" && doc.Inbox == "" && !owner {
		if hostOf(doc.Owner) != u.Host {
			return data.RemoteActor{}, fmt.Errorf("the key %s is owned by an actor on another host (%q)", iri, doc.Owner)
		}
		return f.fetch(ctx, doc.Owner, true)
	}
	if doc.ID == "" || hostOf(doc.ID) != u.Host {
		return data.RemoteActor{}, fmt.Errorf("the document at %s names an actor on another host (%q)", iri, doc.ID)
	}
	if doc.PublicKey.Owner != doc.ID || hostOf(doc.PublicKey.ID) != u.Host {
		return data.RemoteActor{}, fmt.Errorf("the key of %s is owned by %q, not by the actor", doc.ID, doc.PublicKey.Owner)
	}
	if _, err := parsePublicKey(doc.PublicKey.PublicKeyPem); err != nil {
		return data.RemoteActor{}, fmt.Errorf("the key of %s: %w", doc.ID, err)
	}
	if doc.Inbox == "" || hostOf(doc.Inbox) == "" {
		return data.RemoteActor{}, fmt.Errorf("%s has no inbox", doc.ID)
	}
	a := data.RemoteActor{
		ID: doc.ID, KeyID: doc.PublicKey.ID, PublicKey: doc.PublicKey.PublicKeyPem,
		Inbox: doc.Inbox, SharedInbox: doc.Endpoints.SharedInbox,
		Username: clip(doc.PreferredUsername + "@" + hostOnly(u.Host)), Name: clip(doc.Name), Image: clip(imageURL(doc.Icon)),
		FetchedAt: time.Now(),
	}
	if a.SharedInbox != "" && hostOf(a.SharedInbox) == "" {
		a.SharedInbox = ""
	}
	if err := f.store.PutRemoteActor(ctx, a); err != nil {
		return data.RemoteActor{}, err
	}
	return a, nil
}

func parsePublicKey(p string) (*rsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return nil, errors.New("publicKeyPem is not PEM")
	}
	var k any
	var err error
	switch block.Type {
	case "RSA PUBLIC KEY":
		k, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		k, err = x509.ParsePKIXPublicKey(block.Bytes)
	}
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("the key is not RSA")
	}
	return rk, nil
}

// keyTTL is how long a cached key is used before it is fetched again.
const keyTTL = 24 * time.Hour

// refetchEvery bounds how often a key that failed to verify is fetched
// again (the remote may have rotated it).
const refetchEvery = 10 * time.Minute

// verified is who signed a request.
type verified struct {
	actor data.RemoteActor
}

// verify checks a request's HTTP Signature, fetching and caching the
// signer's key. actorID, if set, is who the body says it is from: the key
// must be theirs. Nothing is stored but the signer's actor document.
func (f *Federation) verify(ctx context.Context, r *http.Request, body []byte, actorID string) (verified, error) {
	withBody := r.Method == http.MethodPost
	sig, err := parseSignature(r.Header.Get("Signature"))
	if err != nil {
		return verified{}, err
	}
	if err := sig.covers(withBody); err != nil {
		return verified{}, err
	}
	if err := f.checkDate(r.Header.Get("Date"), time.Now()); err != nil {
		return verified{}, err
	}
	if withBody {
		if err := checkDigest(r.Header.Get("Digest"), body); err != nil {
			return verified{}, err
		}
	}
	keyHost := hostOf(sig.keyID)
	if keyHost == "" {
		return verified{}, fmt.Errorf("keyId %q is not a URL", sig.keyID)
	}
	if actorID != "" && hostOf(actorID) != keyHost {
		return verified{}, fmt.Errorf("keyId %q is on another host than the actor %q", sig.keyID, actorID)
	}
	if f.replays.seen(r.Header.Get("Signature")) {
		return verified{}, errReplayed
	}
	// The host the signer addressed: behind a proxy, what it forwarded.
	vr := r.Clone(ctx)
	vr.Host = f.host(r)
	vr.Header.Del("Host")
	v, err := httpsig.NewVerifier(vr)
	if err != nil {
		return verified{}, fmt.Errorf("the Signature header cannot be read: %w", err)
	}

	actor, err := f.store.RemoteActorByKey(ctx, sig.keyID)
	cached := err == nil && time.Since(actor.FetchedAt) < keyTTL
	if err != nil && !errors.Is(err, data.ErrNotFound) {
		return verified{}, err
	}
	if !cached {
		// Each fetch is a request to the key's host on a stranger's word:
		// a host's fetches are limited, so we cannot be made to flood it.
		if !f.limits.Allow("fetch:"+keyHost, time.Now()) {
			return verified{}, errBusy
		}
		if actor, err = f.fetchActor(ctx, sig.keyID); err != nil {
			return verified{}, fmt.Errorf("cannot fetch the signer's key %s: %w", sig.keyID, err)
		}
	}
	check := func(a data.RemoteActor) error {
		if a.KeyID != sig.keyID {
			return fmt.Errorf("the actor %s has no key %s", a.ID, sig.keyID)
		}
		key, err := parsePublicKey(a.PublicKey)
		if err != nil {
			return err
		}
		if err := v.Verify(key, httpsig.RSA_SHA256); err != nil {
			return fmt.Errorf("the signature does not verify with %s's key: %w", a.ID, err)
		}
		return nil
	}
	err = check(actor)
	if err != nil && cached && f.mayRefetch(sig.keyID) {
		// The key may have changed since it was cached.
		if fresh, ferr := f.fetchActor(ctx, sig.keyID); ferr == nil {
			actor, err = fresh, check(fresh)
		}
	}
	if err != nil {
		return verified{}, err
	}
	if actorID != "" && actor.ID != actorID {
		return verified{}, fmt.Errorf("the request is signed by %s, but says it is from %s", actor.ID, actorID)
	}
	if !f.replays.add(r.Header.Get("Signature")) {
		return verified{}, errReplayed
	}
	return verified{actor: actor}, nil
}

func (f *Federation) mayRefetch(keyID string) bool {
	f.keyMu.Lock()
	defer f.keyMu.Unlock()
	if t, ok := f.keyFetches[keyID]; ok && time.Since(t) < refetchEvery {
		return false
	}
	if len(f.keyFetches) > 10_000 {
		clear(f.keyFetches)
	}
	f.keyFetches[keyID] = time.Now()
	return true
}

// replayCache remembers the signatures of verified requests for as long
// as their Date is acceptable, so none is accepted twice.
type replayCache struct {
	ttl time.Duration
	max int
	mu  sync.Mutex
	at  map[[32]byte]time.Time
}

func newReplayCache(ttl time.Duration, max int) *replayCache {
	return &replayCache{ttl: ttl, max: max, at: map[[32]byte]time.Time{}}
}

func (c *replayCache) seen(sig string) bool {
	sum := sha256.Sum256([]byte(sig))
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.at[sum]
	return ok && time.Since(t) < c.ttl
}

// add remembers sig, reporting false if it was there already.
func (c *replayCache) add(sig string) bool {
	sum := sha256.Sum256([]byte(sig))
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.at[sum]; ok && now.Sub(t) < c.ttl {
		return false
	}
	if len(c.at) >= c.max {
		for k, t := range c.at {
			if now.Sub(t) >= c.ttl {
				delete(c.at, k)
			}
		}
		if len(c.at) >= c.max {
			// Still full of live entries: a flood. Refusing every new
			// sender would be worse than forgetting the oldest.
			var oldest [32]byte
			var ot time.Time
			for k, t := range c.at {
				if ot.IsZero() || t.Before(ot) {
					oldest, ot = k, t
				}
			}
			delete(c.at, oldest)
		}
	}
	c.at[sum] = now
	return true
}

// readBody reads at most limit bytes of a body, reporting whether there
// was more.
func readBody(r *http.Request, limit int64) ([]byte, bool, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(http.MaxBytesReader(nil, r.Body, limit+1))
	if n > limit {
		return nil, true, nil
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, true, nil
	}
	return buf.Bytes(), false, err
}
