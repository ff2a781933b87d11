package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// ErrConfig is wrapped by New's error when the settings are unusable, so
// that the admin API can answer 400 rather than 502.
var ErrConfig = errors.New("invalid S3 settings")

// Error is a failed S3 request, explained for the admin. Its text never
// contains the secret.
type Error struct {
	// Op is what was being done, such as `write "0/seg-1.ts"`.
	Op string
	// Code is the S3 error code, such as "NoSuchBucket"; empty when no
	// answer came (unreachable, timeout).
	Code string
	// Advice says what went wrong and what to do, in plain words.
	Advice string
	// Err is the SDK's error.
	Err error

	text string // rendered once, with the secret removed
}

func (e *Error) Error() string { return e.text }
func (e *Error) Unwrap() error { return e.Err }

// op describes a request for the error text: what it did and the
// permission it needed.
type op struct {
	what string // `write "0/seg-1.ts"`
	perm string // "s3:PutObject"
	acl  bool   // the request set the configured ACL
}

// explain turns an SDK error into an *Error. Only the cause's code and
// message go into the text, never the request (whose Authorization
// header is derived from the secret); the text is scrubbed of the secret
// anyway, in case a server echoes it.
//
// ctx is the request's (see request): when its deadline passed while the
// SDK waited to retry, the last attempt's error is the one explained.
func (s *Storage) explain(ctx context.Context, o op, err error) error {
	if err == nil {
		return nil
	}
	gaveUp, classify := "", err
	if last := lastAttemptErr(ctx); last != nil && ctx.Err() != nil && !errors.Is(last, context.DeadlineExceeded) && !errors.Is(last, context.Canceled) {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			gaveUp = "; gave up retrying at the deadline"
		} else {
			gaveUp = "; canceled while retrying"
		}
		classify, err = last, errors.Join(err, last)
	}
	e := &Error{Op: o.what, Err: err}
	var cause string
	var apiErr smithy.APIError
	if errors.As(classify, &apiErr) {
		e.Code = apiErr.ErrorCode()
		status := 0
		var re *awshttp.ResponseError
		if errors.As(classify, &re) {
			status = re.HTTPStatusCode()
		}
		e.Advice = s.adviceForCode(o, e.Code, apiErr.ErrorMessage(), status)
		cause = e.Code
		if m := apiErr.ErrorMessage(); m != "" {
			cause += ": " + m
		}
		if status != 0 {
			cause = fmt.Sprintf("HTTP %d, %s", status, cause)
		}
	} else {
		e.Advice, cause = s.adviceForNetwork(classify)
	}
	text := fmt.Sprintf("S3 %s: %s", e.Op, e.Advice)
	if cause != "" {
		text += " (" + cause + gaveUp + ")"
	}
	e.text = s.redact(text)
	return e
}

// where names the server for error texts.
func (s *Storage) where() string {
	if s.cfg.Endpoint == "" {
		return fmt.Sprintf("AWS S3 in %s", s.cfg.Region)
	}
	return s.cfg.Endpoint
}

var expectingRegion = regexp.MustCompile(`expecting '([a-z0-9-]+)'`)

func (s *Storage) adviceForCode(o op, code, msg string, status int) string {
	c := s.cfg
	switch code {
	case "InvalidAccessKeyId", "XAdminUserNotFound": // the latter is versitygw's
		return fmt.Sprintf("wrong access key or secret: %s does not know access key %q; check the access key and secret in the S3 settings", s.where(), c.AccessKey)
	case "SignatureDoesNotMatch":
		return fmt.Sprintf("wrong access key or secret: the secret does not match access key %q; check the access key and secret in the S3 settings (or a proxy in between alters requests)", c.AccessKey)
	case "NoSuchBucket":
		return fmt.Sprintf("there is no bucket %q at %s: check the bucket name and the endpoint, or create the bucket", c.Bucket, s.where())
	case "RequestTimeTooSkewed", "RequestExpired", "RequestInTheFuture":
		return "this machine's clock is off from the S3 server's, so it refuses the signed request: enable NTP (for example timedatectl set-ntp true) and try again"
	case "AccessControlListNotSupported", "InvalidBucketAclWithObjectOwnership":
		return fmt.Sprintf("the bucket refuses ACLs: clear the ACL setting (now %q), or allow ACLs on bucket %q", c.ACL, c.Bucket)
	case "AccessDenied", "AllAccessDisabled", "Forbidden":
		under := ""
		if c.PathPrefix != "" {
			under = fmt.Sprintf(" under %q", c.PathPrefix)
		}
		if o.acl && c.ACL != "" {
			return fmt.Sprintf("access denied writing with ACL %q: the bucket refuses ACLs, or the key may not set them (s3:PutObjectAcl); clear the ACL setting or allow ACLs, and check that access key %q has %s on bucket %q%s", c.ACL, c.AccessKey, o.perm, c.Bucket, under)
		}
		return fmt.Sprintf("access denied: access key %q lacks %s on bucket %q%s; grant it in the key's or the bucket's policy", c.AccessKey, o.perm, c.Bucket, under)
	case "AuthorizationHeaderMalformed", "IllegalLocationConstraintException", "AuthorizationQueryParametersError":
		if m := expectingRegion.FindStringSubmatch(msg); m != nil {
			return fmt.Sprintf("the bucket is in region %q, not %q: set the region to %s", m[1], c.Region, m[1])
		}
		return fmt.Sprintf("the server refuses region %q: set the region the bucket is in", c.Region)
	case "PermanentRedirect", "TemporaryRedirect":
		return fmt.Sprintf("bucket %q must be reached through another endpoint: set the region the bucket is in, or the endpoint of that region", c.Bucket)
	case "InvalidBucketName":
		return fmt.Sprintf("%s refuses the bucket name %q: check the bucket name", s.where(), c.Bucket)
	case "NoSuchKey", "NotFound":
		return "the object does not exist"
	case "BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidArgument", "InvalidRequest", "NotImplemented", "MissingContentLength":
		return fmt.Sprintf("%s refuses the request as the SDK sends it: it may not be fully S3-compatible", s.where())
	case "SlowDown", "ServiceUnavailable", "InternalError", "Throttling", "RequestTimeout":
		return fmt.Sprintf("%s is overloaded or failing: try again later, and check the provider's status page if it persists", s.where())
	}
	if status >= 500 {
		return fmt.Sprintf("%s answered with a server error (HTTP %d %s): try again later, and check the provider's status page if it persists", s.where(), status, http.StatusText(status))
	}
	if status != 0 {
		return fmt.Sprintf("%s refused the request (HTTP %d %s)", s.where(), status, http.StatusText(status))
	}
	return fmt.Sprintf("%s refused the request", s.where())
}

// adviceForNetwork explains a request that got no S3 answer, and returns
// the innermost cause (the dial, DNS or TLS error) for the text.
func (s *Storage) adviceForNetwork(err error) (advice, cause string) {
	where := s.where()
	cause = innermost(err)
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var netErr net.Error
	var certInvalid x509.CertificateInvalidError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var verifyErr *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled", ""
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("cannot find the endpoint's host %q: check the endpoint, and this machine's DNS", dnsErr.Name), cause
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing accepts connections at %s (connection refused): check the endpoint's host and port, and that the S3 server is running", where), cause
	case errors.As(err, &hostErr), errors.As(err, &unknownCA), errors.As(err, &certInvalid), errors.As(err, &verifyErr):
		return fmt.Sprintf("the TLS certificate of %s is not trusted here (an unknown issuer, or made for another host name): check the endpoint's host name, or install the CA that signed the certificate on this machine", where), cause
	case errors.As(err, &recordErr), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Sprintf("%s does not speak TLS: use http:// if the server serves plain HTTP, or its HTTPS port", where), cause
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Sprintf("%s did not answer in time: check the endpoint, and that this machine can reach it (firewall, proxy)", where), cause
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return fmt.Sprintf("%s closed the connection without an answer: check that the endpoint (and its port) is an S3 server, and any proxy or firewall in between", where), cause
	case errors.As(err, &opErr):
		return fmt.Sprintf("cannot reach %s: check the endpoint, and this machine's network", where), cause
	}
	return fmt.Sprintf("the request to %s failed", where), cause
}

// innermost is the text of the deepest error in err's chain that still
// says something: the SDK's wrappers repeat the operation and the retry
// count, which the Op already tells.
func innermost(err error) string {
	for {
		var next error
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			next = u.Unwrap()
		case interface{ Unwrap() []error }:
			if es := u.Unwrap(); len(es) > 0 {
				next = es[0]
			}
		}
		if next == nil {
			return err.Error()
		}
		if _, isOp := err.(*net.OpError); isOp {
			return err.Error() // "dial tcp 127.0.0.1:1: connect: connection refused"
		}
		if _, isDNS := next.(*net.DNSError); isDNS {
			return next.Error()
		}
		err = next
	}
}

// redactor returns a function that removes secret from a text.
func redactor(secret string) func(string) string {
	return func(s string) string {
		if secret == "" {
			return s
		}
		return strings.ReplaceAll(s, secret, redacted)
	}
}
