package aptest

// HTTP signatures as the fediverse uses them: draft-cavage-http-signatures-12
// (https://datatracker.ietf.org/doc/html/draft-cavage-http-signatures-12)
// with the profile Mastodon implements and expects
// (https://docs.joinmastodon.org/spec/security/#http): RSASSA-PKCS1-v1_5
// over SHA-256, keyId naming the actor's key by URL, and
// "(request-target) host date" signed, with "digest" too when there is a
// body.

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// maxClockSkew is how far a request's Date may be from now, either way.
const maxClockSkew = time.Hour

// SignOptions override what Sign would otherwise use, to build requests
// that a careful server must refuse. The zero value signs as the actor,
// now, with the usual headers.
type SignOptions struct {
	// KeyID replaces the actor's KeyID in the Signature header.
	KeyID string
	// Date replaces now as the Date header (and so what is signed).
	Date time.Time
	// Headers replaces the list of signed headers, in order. The default
	// is "(request-target) host date", with "digest" after them when
	// there is a body.
	Headers []string
	// Key signs instead of the actor's own key.
	Key *rsa.PrivateKey
	// Algorithm replaces "rsa-sha256" in the Signature header's algorithm
	// parameter; the signature itself is always RSA-SHA256.
	Algorithm string
}

// SetBody makes body the body of req, with its length, so that it can be
// sent (and resent on a redirect). Use it to swap a signed request's body
// for another.
func SetBody(req *http.Request, body []byte) {
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(body)), nil
	}
}

// Sign sets req's Date, Digest (when body is not nil) and Signature
// headers, and its Host if unset, signing them with the actor's key
// unless opts say otherwise. It does not touch req.Body: body is what the
// Digest is computed over, so a test may sign one body and send another.
// It fails if a header to sign is missing, if opts.Key is the actor's own
// key (which would not make the forgery it is meant for), or if the key
// cannot sign.
func (a *Actor) Sign(req *http.Request, body []byte, opts SignOptions) error {
	key := a.key
	if opts.Key != nil {
		if opts.Key.Equal(a.key) {
			// Actors of different Servers share keys (see keyPool): this
			// "other" key would sign a request that verifies.
			return fmt.Errorf("SignOptions.Key is %s's own key: actors of different Servers may share keys, so take the other key from an actor of the same Server", a.ID())
		}
		key = opts.Key
	}
	keyID := a.KeyID()
	if opts.KeyID != "" {
		keyID = opts.KeyID
	}
	date := time.Now()
	if !opts.Date.IsZero() {
		date = opts.Date
	}
	algorithm := "rsa-sha256"
	if opts.Algorithm != "" {
		algorithm = opts.Algorithm
	}
	headers := opts.Headers
	if headers == nil {
		headers = []string{"(request-target)", "host", "date"}
		if body != nil {
			headers = append(headers, "digest")
		}
	}

	if req.Host == "" {
		req.Host = req.URL.Host
	}
	req.Header.Set("Date", date.UTC().Format(http.TimeFormat))
	if body != nil {
		req.Header.Set("Digest", digestHeader(body))
	}
	s, err := signingString(req, headers)
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(s))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		return fmt.Errorf("sign as %s: %w", keyID, err)
	}
	req.Header.Set("Signature", fmt.Sprintf(`keyId=%s,algorithm=%s,headers=%s,signature=%s`,
		quote(keyID), quote(algorithm), quote(strings.Join(headers, " ")),
		quote(base64.StdEncoding.EncodeToString(sig))))
	return nil
}

// VerifyRequest checks the HTTP signature of r, whose body (already read)
// is body, as Mastodon checks what it receives:
//
//   - the Signature header's algorithm is rsa-sha256 or hs2019, or absent;
//   - its headers list "(request-target)", "host" and "date", and "digest"
//     for a POST or any request with a body;
//   - the Date is within an hour of now;
//   - the Digest ("SHA-256=base64") is the SHA-256 of body;
//   - the signature verifies, with RSASSA-PKCS1-v1_5 over SHA-256, with
//     the key fetchKey returns for the keyId.
//
// fetchKey returns the key named by keyID and the id of the actor owning
// it. VerifyRequest returns the keyId and that owner (as far as it got),
// and an error wrapping one of ErrUnsigned, ErrSignatureHeader, ErrDate,
// ErrDigest, ErrKey or ErrSignature. Checking that the owner is the actor
// of what is signed is left to the caller, who knows the activity.
func VerifyRequest(r *http.Request, body []byte, fetchKey func(keyID string) (*rsa.PublicKey, string, error)) (keyID, owner string, err error) {
	return verifyRequest(r, body, fetchKey, time.Now())
}

// verifyRequest is VerifyRequest at a given now, for the draft's test
// vectors.
func verifyRequest(r *http.Request, body []byte, fetchKey func(keyID string) (*rsa.PublicKey, string, error), now time.Time) (keyID, owner string, err error) {
	values := r.Header.Values("Signature")
	switch len(values) {
	case 0:
		return "", "", fmt.Errorf("%w: no Signature header", ErrUnsigned)
	case 1:
	default:
		return "", "", fmt.Errorf("%w: %d Signature headers, want one", ErrSignatureHeader, len(values))
	}
	p, err := parseSignature(values[0])
	if err != nil {
		return "", "", err
	}
	keyID = p.keyID

	required := []string{"(request-target)", "host", "date"}
	if r.Method == http.MethodPost || len(body) > 0 {
		required = append(required, "digest")
	}
	for _, h := range required {
		if !slices.Contains(p.headers, h) {
			return keyID, "", fmt.Errorf("%w: headers=%q does not include %q, which must be signed", ErrSignatureHeader, strings.Join(p.headers, " "), h)
		}
	}

	date, err := http.ParseTime(r.Header.Get("Date"))
	if err != nil {
		return keyID, "", fmt.Errorf("%w: %q is not an HTTP date", ErrDate, r.Header.Get("Date"))
	}
	if skew := now.Sub(date); skew > maxClockSkew {
		return keyID, "", fmt.Errorf("%w: %s is %s in the past, more than %s", ErrDate, r.Header.Get("Date"), skew.Round(time.Second), maxClockSkew)
	} else if skew < -maxClockSkew {
		return keyID, "", fmt.Errorf("%w: %s is %s in the future, more than %s", ErrDate, r.Header.Get("Date"), -skew.Round(time.Second), maxClockSkew)
	}

	if slices.Contains(p.headers, "digest") {
		if err := checkDigest(r.Header.Values("Digest"), body); err != nil {
			return keyID, "", err
		}
	}

	s, err := signingString(r, p.headers)
	if err != nil {
		return keyID, "", err
	}

	pub, owner, err := fetchKey(keyID)
	if err != nil {
		return keyID, "", fmt.Errorf("%w %s: %w", ErrKey, keyID, err)
	}
	sum := sha256.Sum256([]byte(s))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], p.signature); err != nil {
		return keyID, owner, fmt.Errorf("%w with the key %s; the signed string was:\n%s", ErrSignature, keyID, s)
	}
	return keyID, owner, nil
}

// signatureParams are the parameters of a Signature header
// (draft-cavage-http-signatures-12 section 2.1).
type signatureParams struct {
	keyID     string
	algorithm string
	headers   []string // lowercased, in order
	signature []byte
}

// parseSignature reads a Signature header: comma-separated name=value
// parameters, values quoted (or bare tokens, which Mastodon also reads).
// Parameter names are case-sensitive; unknown ones are ignored.
func parseSignature(v string) (signatureParams, error) {
	params, err := parseParams(v)
	if err != nil {
		return signatureParams{}, err
	}
	p := signatureParams{keyID: params["keyId"], algorithm: params["algorithm"]}
	if p.keyID == "" {
		return p, fmt.Errorf("%w: no keyId in %q", ErrSignatureHeader, v)
	}
	switch p.algorithm {
	case "", "rsa-sha256", "hs2019":
	default:
		return p, fmt.Errorf("%w: algorithm %q, want rsa-sha256 or hs2019", ErrSignatureHeader, p.algorithm)
	}
	if _, ok := params["headers"]; !ok {
		// The draft's default ("(created)") signs nothing a server can
		// trust to bind the request; Mastodon's ("date") neither.
		return p, fmt.Errorf("%w: no headers parameter; it must list (request-target) host date digest", ErrSignatureHeader)
	}
	p.headers = strings.Fields(strings.ToLower(params["headers"]))
	sig, ok := params["signature"]
	if !ok || sig == "" {
		return p, fmt.Errorf("%w: no signature parameter", ErrSignatureHeader)
	}
	p.signature, err = base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return p, fmt.Errorf("%w: signature is not base64: %w", ErrSignatureHeader, err)
	}
	return p, nil
}

// parseParams splits `a="x", b="y\"z"` into its parameters.
func parseParams(v string) (map[string]string, error) {
	params := map[string]string{}
	rest := v
	for {
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			return params, nil
		}
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("%w: expected name=value at %q", ErrSignatureHeader, rest)
		}
		name := strings.TrimSpace(rest[:eq])
		rest = rest[eq+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			// A quoted-string, with backslash escapes (RFC 9110 section 5.6.4).
			var b strings.Builder
			i, closed := 1, false
			for ; i < len(rest); i++ {
				c := rest[i]
				if c == '\\' && i+1 < len(rest) {
					i++
					b.WriteByte(rest[i])
					continue
				}
				if c == '"' {
					closed = true
					break
				}
				b.WriteByte(c)
			}
			if !closed {
				return nil, fmt.Errorf("%w: unterminated quoted value of %s", ErrSignatureHeader, name)
			}
			val = b.String()
			rest = rest[i+1:]
		} else {
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			val = strings.TrimSpace(rest[:end])
			rest = rest[end:]
		}
		if _, dup := params[name]; dup {
			return nil, fmt.Errorf("%w: parameter %s given twice", ErrSignatureHeader, name)
		}
		params[name] = val
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			return params, nil
		}
		if rest[0] != ',' {
			return nil, fmt.Errorf("%w: expected a comma at %q", ErrSignatureHeader, rest)
		}
		rest = rest[1:]
	}
}

// signingString builds the string that is signed
// (draft-cavage-http-signatures-12 section 2.3): one "name: value" line
// per signed header, in the order given, joined by newlines.
func signingString(r *http.Request, headers []string) (string, error) {
	lines := make([]string, 0, len(headers))
	for _, h := range headers {
		h = strings.ToLower(h)
		switch h {
		case "(request-target)":
			lines = append(lines, h+": "+strings.ToLower(r.Method)+" "+requestTarget(r))
		case "host":
			host := r.Host
			if host == "" {
				host = r.URL.Host
			}
			lines = append(lines, "host: "+host)
		case "(created)", "(expires)":
			return "", fmt.Errorf("%w: %s is not supported (nor sent by Mastodon)", ErrSignatureHeader, h)
		default:
			vs := r.Header.Values(h)
			if len(vs) == 0 {
				return "", fmt.Errorf("%w: header %q is signed but missing from the request", ErrSignatureHeader, h)
			}
			trimmed := make([]string, len(vs))
			for i, v := range vs {
				trimmed[i] = strings.TrimSpace(v)
			}
			lines = append(lines, h+": "+strings.Join(trimmed, ", "))
		}
	}
	return strings.Join(lines, "\n"), nil
}

// requestTarget is the path and query as sent on the wire: what a server
// received, or what a client will send.
func requestTarget(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// digestHeader is the Digest header of body (RFC 3230), as Mastodon sends
// it.
func digestHeader(body []byte) string {
	sum := sha256.Sum256(body)
	return "SHA-256=" + base64.StdEncoding.EncodeToString(sum[:])
}

// checkDigest checks that the Digest header holds the SHA-256 of body.
// The header may list several digests; the SHA-256 one must be there and
// right.
func checkDigest(values []string, body []byte) error {
	if len(values) == 0 {
		return fmt.Errorf("%w: digest is signed but there is no Digest header", ErrDigest)
	}
	want := sha256.Sum256(body)
	for _, v := range values {
		for d := range strings.SplitSeq(v, ",") {
			alg, b64, ok := strings.Cut(strings.TrimSpace(d), "=")
			if !ok || !strings.EqualFold(alg, "SHA-256") {
				continue
			}
			got, err := base64.StdEncoding.DecodeString(b64)
			if err != nil {
				return fmt.Errorf("%w: %q is not base64: %w", ErrDigest, b64, err)
			}
			if !bytes.Equal(got, want[:]) {
				return fmt.Errorf("%w: %s does not match the body, whose digest is %s", ErrDigest, d, digestHeader(body))
			}
			return nil
		}
	}
	return fmt.Errorf("%w: %q has no SHA-256 digest", ErrDigest, strings.Join(values, ", "))
}

// quote makes s a quoted-string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
