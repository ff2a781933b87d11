package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// CheckResult is what a Check found besides a failure.
type CheckResult struct {
	// Passed lists the steps that succeeded, in order, in plain words.
	Passed []string
	// Warnings are problems that do not stop publishing but may stop
	// viewers, such as a bucket they cannot read.
	Warnings []string
}

// Check is the admin's "test connection": it lists the path prefix
// (endpoint reachable, keys right, bucket there, s3:ListBucket, which
// Clear needs), writes a probe object with the configured ACL, reads it
// back, fetches it anonymously from URL as a viewer would, and deletes
// it. A failed step is the error, which names the step and says what to
// do; viewers unable to read the probe is a warning, since a CDN with
// its own access to the bucket can still serve them.
func (s *Storage) Check(ctx context.Context) (CheckResult, error) {
	var res CheckResult
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, s.checkTimeout) }

	sctx, cancel := request(ctx, s.checkTimeout)
	_, err := s.client.ListObjectsV2(sctx, &awss3.ListObjectsV2Input{Bucket: &s.cfg.Bucket, Prefix: &s.cfg.PathPrefix, MaxKeys: aws.Int32(1)})
	if err != nil {
		err = fmt.Errorf("step 1 of 5, list the bucket: %w", s.explain(sctx, op{what: fmt.Sprintf("list bucket %q", s.cfg.Bucket), perm: "s3:ListBucket"}, err))
	}
	cancel()
	if err != nil {
		return res, err
	}
	res.Passed = append(res.Passed, fmt.Sprintf("reached %s and listed bucket %q with access key %q", s.where(), s.cfg.Bucket, s.cfg.AccessKey))

	name := checkPrefix + rand.Text()
	probe := []byte("Starling checks that it can publish here: " + name + "\n")
	sctx, cancel = step()
	err = s.Put(sctx, name, probe)
	cancel()
	if err != nil {
		return res, fmt.Errorf("step 2 of 5, write a test object: %w", err)
	}
	res.Passed = append(res.Passed, fmt.Sprintf("wrote test object %q", s.cfg.PathPrefix+name))
	defer func() {
		if err != nil { // a later step failed: do not leave the probe behind
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.checkTimeout)
			defer cancel()
			if derr := s.Delete(dctx, name); derr != nil {
				s.log.Warn("the S3 check could not delete its test object", "key", s.cfg.PathPrefix+name, "err", derr)
			}
		}
	}()

	sctx, cancel = step()
	got, err := s.Get(sctx, name)
	cancel()
	if err != nil {
		return res, fmt.Errorf("step 3 of 5, read the test object back: %w", err)
	}
	if !bytes.Equal(got, probe) {
		err = fmt.Errorf("step 3 of 5, read the test object back: S3 read %q: got %d bytes that differ from the %d written: check that the endpoint is an S3 server, and that no proxy alters objects", s.cfg.PathPrefix+name, len(got), len(probe))
		return res, err
	}
	res.Passed = append(res.Passed, "read the test object back")

	if w := s.viewerRead(ctx, name, probe); w != "" {
		res.Warnings = append(res.Warnings, w)
	} else {
		res.Passed = append(res.Passed, fmt.Sprintf("fetched the test object as a viewer would, from %s", s.URL(name)))
	}

	sctx, cancel = step()
	err = s.Delete(sctx, name)
	cancel()
	if err != nil {
		return res, fmt.Errorf("step 5 of 5, delete the test object: %w", err)
	}
	res.Passed = append(res.Passed, "deleted the test object")
	return res, nil
}

// viewerRead fetches name from URL without credentials, as a viewer's
// browser on another site would, and returns a warning if that fails or
// lacks the CORS header browsers need.
func (s *Storage) viewerRead(ctx context.Context, name string, want []byte) string {
	ctx, cancel := context.WithTimeout(ctx, s.checkTimeout)
	defer cancel()
	u := s.URL(name)
	warn := func(format string, a ...any) string {
		return s.redact(fmt.Sprintf("step 4 of 5, viewers may not be able to play: fetching the test object from %s without credentials ", u) + fmt.Sprintf(format, a...))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return warn("is impossible: %v", err)
	}
	req.Header.Set("Origin", "https://starling.invalid")
	resp, err := s.http.Do(req)
	if err != nil {
		return warn("failed: %s", innermost(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(len(want))+1))
	switch {
	case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized:
		return warn("was refused (HTTP %d): make the bucket (or the path prefix) publicly readable, with a bucket policy allowing s3:GetObject to everyone or the ACL public-read, or set a serving endpoint (CDN) that can read it", resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return warn("answered HTTP %d: check the serving endpoint", resp.StatusCode)
	case err != nil:
		return warn("broke off: %v", err)
	case !bytes.Equal(body, want):
		return warn("returned something else than the object: check the serving endpoint")
	case resp.Header.Get("Access-Control-Allow-Origin") == "":
		return warn("came without a CORS header (Access-Control-Allow-Origin): unless the bucket's CORS rules allow your site's origin, browsers on your site cannot play the stream; add a CORS rule allowing GET from it")
	}
	return ""
}
