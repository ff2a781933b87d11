package webhooks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/starling-live/starling/core/data"
	"github.com/starling-live/starling/core/jobs"
	"github.com/starling-live/starling/core/netguard"
)

// The headers of a delivery. README.md ("Webhooks") tells receivers how
// to check them.
const (
	// HeaderTimestamp is when the delivery was sent, in Unix seconds. It
	// is signed, so a receiver that refuses old timestamps (five minutes
	// is usual) refuses a recorded delivery played back later.
	HeaderTimestamp = "X-Starling-Timestamp"
	// HeaderSignature is "sha256=" and the lowercase hex of
	// HMAC-SHA256(secret, timestamp + "." + body), the body being the
	// exact bytes sent and the secret the string shown when the webhook
	// was created.
	HeaderSignature = "X-Starling-Signature"
	// HeaderDelivery names the delivery, the same in each of its retries.
	HeaderDelivery = "X-Starling-Delivery"
)

// Sign returns the HeaderSignature of body sent at unix time ts.
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// deliver is the queue's handler of JobKind: one attempt to POST the
// job's body to its webhook. A webhook deleted since is done with; a
// refused address or a 4xx answer other than 408 and 429 is given up; any
// other failure is retried by the queue.
func (s *Service) deliver(ctx context.Context, j jobs.Job) error {
	id, err := webhookID(j.Destination)
	if err != nil {
		return jobs.Permanent(fmt.Errorf("%q is not a webhook", j.Destination))
	}
	hook, err := s.store.Webhook(ctx, id)
	if errors.Is(err, data.ErrNotFound) {
		s.log.Debug("dropping a delivery to a deleted webhook", "webhook", id, "job", j.ID)
		return nil
	}
	if err != nil {
		return err
	}
	err = s.post(ctx, hook, j)
	if errors.Is(ctx.Err(), context.Canceled) {
		// The queue is stopping: the attempt runs again at the next
		// start, and is no error of the receiver's.
		return err
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	now := time.Now().UTC()
	if err == nil {
		if serr := s.store.SetWebhookUsed(rctx, id, now); serr != nil {
			s.log.Warn("cannot record a webhook delivery", "webhook", id, "err", serr)
		}
		return nil
	}
	if serr := s.store.SetWebhookError(rctx, id, err.Error(), now); serr != nil {
		s.log.Warn("cannot record a webhook's failure", "webhook", id, "err", serr)
	}
	return err
}

// post sends the delivery once, signed now.
func (s *Service) post(ctx context.Context, hook data.Webhook, j jobs.Job) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(j.Payload))
	if err != nil {
		return jobs.Permanent(fmt.Errorf("the webhook's URL cannot be used (%v): delete it and create it again", err))
	}
	ts := time.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Starling-Webhooks/1")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(hook.Secret, ts, j.Payload))
	req.Header.Set(HeaderDelivery, strconv.FormatInt(j.ID, 10))
	resp, err := s.client.Do(req)
	if err != nil {
		// The URL may hold a token: the error does not repeat it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		var ne net.Error
		switch {
		case errors.Is(err, netguard.ErrRefused):
			return jobs.Permanent(err)
		case errors.As(err, &ne) && ne.Timeout():
			return fmt.Errorf("the receiver did not answer within %s: %w", s.cfg.Timeout, err)
		}
		return fmt.Errorf("cannot reach the receiver: %w", err)
	}
	// Reading the rest lets the connection serve the next delivery.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests:
		return fmt.Errorf("the receiver answered %s: retrying later", resp.Status)
	case code >= 300 && code < 400:
		return jobs.Permanent(fmt.Errorf("the receiver answered %s, a redirect: webhooks do not follow redirects, so give the final URL", resp.Status))
	case code >= 400 && code < 500:
		return jobs.Permanent(fmt.Errorf("the receiver answered %s: not retried, since the same request would be refused again", resp.Status))
	}
	return fmt.Errorf("the receiver answered %s: retrying later", resp.Status)
}
