package activitypub

import (
	"bytes"
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/go-fed/activity/pub"
	"github.com/go-fed/httpsig"
)

// Media types of ActivityPub.
const (
	activityJSON = "application/activity+json"
	ldJSON       = `application/ld+json; profile="https://www.w3.org/ns/activitystreams"`
)

// maxFetched bounds what a remote server's answer may hold.
const maxFetched = 1 << 20

// transport makes our signed requests: GETs of remote actors (some
// servers answer 401 to unsigned ones) and POSTs to inboxes. It is
// go-fed's pub.Transport, with batch delivery through the job queue.
type transport struct {
	f   *Federation
	key *rsa.PrivateKey
	st  site
}

var _ pub.Transport = (*transport)(nil)

// transport returns a transport signing as the current actor.
func (f *Federation) transport(ctx context.Context) (*transport, error) {
	st, ok := f.site()
	if !ok {
		return nil, errors.New("federation is off: enable it and set the server URL")
	}
	key, err := f.keys.ActorKey(ctx)
	if err != nil {
		return nil, err
	}
	return &transport{f: f, key: key, st: st}, nil
}

// sign signs r with the actor's key over (request-target), host, date
// and, for a body, digest.
func (t *transport) sign(r *http.Request, body []byte) error {
	headers := []string{httpsig.RequestTarget, "host", "date"}
	if body != nil {
		headers = append(headers, "digest")
	}
	r.Header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	r.Header.Set("Host", r.URL.Host)
	// A Signer keeps state between calls: one per request.
	signer, _, err := httpsig.NewSigner([]httpsig.Algorithm{httpsig.RSA_SHA256}, httpsig.DigestSha256, headers, httpsig.Signature, 0)
	if err != nil {
		return err
	}
	return signer.SignRequest(t.key, t.st.keyID(), r, body)
}

// errStatus is a remote server's answer that was not a success.
type errStatus struct {
	code int
	url  string
}

func (e errStatus) Error() string {
	return fmt.Sprintf("%s answered %d %s", e.url, e.code, http.StatusText(e.code))
}

// Dereference fetches iri with a signed GET.
func (t *transport) Dereference(ctx context.Context, iri *url.URL) ([]byte, error) {
	u := *iri
	u.Fragment = ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", activityJSON+", "+ldJSON)
	req.Header.Set("User-Agent", t.f.userAgent())
	if err := t.sign(req, nil); err != nil {
		return nil, err
	}
	resp, err := t.f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, errStatus{resp.StatusCode, u.String()}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxFetched+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFetched {
		return nil, fmt.Errorf("%s answered more than %d bytes", u.String(), maxFetched)
	}
	return b, nil
}

// Deliver POSTs an activity to an inbox, signed, now.
func (t *transport) Deliver(ctx context.Context, b []byte, to *url.URL) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, to.String(), bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", activityJSON)
	req.Header.Set("Accept", activityJSON)
	req.Header.Set("User-Agent", t.f.userAgent())
	if err := t.sign(req, b); err != nil {
		return err
	}
	resp, err := t.f.client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return errStatus{resp.StatusCode, to.String()}
	}
	return nil
}

// BatchDeliver queues an activity for each inbox: the queue delivers,
// retries and keeps them across restarts.
func (t *transport) BatchDeliver(ctx context.Context, b []byte, recipients []*url.URL) error {
	inboxes := make([]string, len(recipients))
	for i, r := range recipients {
		inboxes[i] = r.String()
	}
	return t.f.queueDeliveries(ctx, jobDeliver, b, inboxes)
}

func (f *Federation) userAgent() string {
	ua := "Starling/" + f.version
	if st, ok := f.site(); ok {
		ua += " (+" + st.base + ")"
	}
	return ua
}
