package s3

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"unicode"

	"github.com/starling-live/starling/storage"
)

// Config is Owncast's S3 settings (its admin's "Storage" page).
//
// The Secret never leaves a Config through fmt or slog: String, GoString,
// Format and LogValue print it as "[redacted]". Code that copies the fields
// into its own structure takes that duty with it.
type Config struct {
	// Endpoint is the S3 API's base URL, such as
	// "https://s3.eu-central-003.backblazeb2.com". Empty means AWS S3 in
	// Region.
	Endpoint string
	// ServingEndpoint is where viewers fetch the objects, usually a CDN in
	// front of the bucket, such as "https://cdn.example.com/". Empty means
	// the bucket's own URL.
	ServingEndpoint string
	AccessKey       string
	Secret          string
	Bucket          string
	// Region is the bucket's region. Required for AWS; for another
	// endpoint empty means "us-east-1", which most of them accept.
	Region string
	// ACL is a canned ACL set on every object ("public-read"), or empty
	// for none: buckets that enforce object ownership refuse any ACL.
	ACL string
	// PathPrefix is prepended to every name ("live/" stores "live/0/seg-1.ts").
	// Leading and trailing slashes are optional.
	PathPrefix string
	// ForcePathStyle addresses the bucket as ENDPOINT/BUCKET/KEY rather
	// than BUCKET.HOST/KEY: needed by servers without wildcard DNS.
	ForcePathStyle bool
}

const redacted = "[redacted]"

// plain is Config without its methods, for printing a masked copy.
type plain Config

func (c Config) masked() plain {
	p := plain(c)
	if p.Secret != "" {
		p.Secret = redacted
	}
	return p
}

// String prints the settings with the secret masked.
func (c Config) String() string { return fmt.Sprintf("%+v", c.masked()) }

// GoString is %#v, with the secret masked.
func (c Config) GoString() string {
	return strings.Replace(fmt.Sprintf("%#v", c.masked()), "s3.plain", "s3.Config", 1)
}

// Format makes every verb print the masked settings, so that %v, %+v,
// %s and %#v all keep the secret out.
func (c Config) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, c.GoString())
		return
	}
	fmt.Fprint(f, c.String())
}

// LogValue logs the settings with the secret masked.
func (c Config) LogValue() slog.Value {
	m := c.masked()
	return slog.GroupValue(
		slog.String("endpoint", m.Endpoint),
		slog.String("serving_endpoint", m.ServingEndpoint),
		slog.String("access_key", m.AccessKey),
		slog.String("secret", m.Secret),
		slog.String("bucket", m.Bucket),
		slog.String("region", m.Region),
		slog.String("acl", m.ACL),
		slog.String("path_prefix", m.PathPrefix),
		slog.Bool("force_path_style", m.ForcePathStyle),
	)
}

// cannedACLs are the ACLs S3 accepts in x-amz-acl on an object.
var cannedACLs = []string{
	"private", "public-read", "public-read-write", "authenticated-read",
	"aws-exec-read", "bucket-owner-read", "bucket-owner-full-control",
}

// normalize checks the settings and returns them in the form the rest of
// the package relies on: endpoints without a trailing slash, a region, a
// path prefix that is empty or ends in one slash. Each error names the
// setting and says what to do.
func (c Config) normalize() (Config, error) {
	bad := func(format string, a ...any) (Config, error) {
		return Config{}, fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...))
	}
	endpoint, err := checkURL(c.Endpoint)
	if err != nil {
		return bad("endpoint %q: %v", c.Endpoint, err)
	}
	serving, err := checkURL(c.ServingEndpoint)
	if err != nil {
		return bad("serving endpoint %q: %v", c.ServingEndpoint, err)
	}
	c.Endpoint, c.ServingEndpoint = endpoint, serving
	switch {
	case c.Bucket == "":
		return bad("the bucket is empty: set the bucket's name")
	case strings.Contains(c.Bucket, "/"):
		return bad("bucket %q contains a slash: set the bucket's name only, and put the folder into the path prefix", c.Bucket)
	case len(c.Bucket) > 255 || strings.IndexFunc(c.Bucket, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return bad("bucket %q is not a bucket name: set the name exactly as the provider shows it", c.Bucket)
	}
	if c.AccessKey == "" {
		return bad("the access key is empty: set the access key ID of a key that may use the bucket")
	}
	if c.Secret == "" {
		return bad("the secret is empty: set the secret of access key %q", c.AccessKey)
	}
	if strings.IndexFunc(c.AccessKey+c.Secret, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return bad("the access key or the secret contains spaces or control characters: paste them again without the surrounding spaces")
	}
	c.Region = strings.TrimSpace(c.Region)
	if c.Region == "" {
		if c.Endpoint == "" {
			return bad("the region is empty: set the AWS region the bucket is in (such as eu-west-1), or set the endpoint of another S3 provider")
		}
		c.Region = "us-east-1"
	}
	if strings.ContainsFunc(c.Region, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) {
		return bad("region %q is not a region name: set it as the provider writes it, such as us-east-1", c.Region)
	}
	if c.ACL != "" && !slices.Contains(cannedACLs, c.ACL) {
		return bad("ACL %q is not a canned ACL: leave it empty, or set one of %s", c.ACL, strings.Join(cannedACLs, ", "))
	}
	if p := strings.Trim(c.PathPrefix, "/"); p == "" {
		c.PathPrefix = ""
	} else if err := storage.CheckName(p); err != nil {
		return bad("path prefix %q: %v: set a folder name such as live/", c.PathPrefix, err)
	} else {
		c.PathPrefix = p + "/"
	}
	return c, nil
}

// checkURL accepts empty or an absolute http(s) URL without a query,
// returned without its trailing slash.
func checkURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("not a URL: %v", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("must start with https:// (or http://)")
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("has no host name")
	case u.User != nil:
		return "", fmt.Errorf("must not contain a user name or password: put the keys into the access key and secret")
	case u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(s, "?"):
		return "", fmt.Errorf("must not contain a query (?) or fragment (#)")
	}
	return strings.TrimRight(s, "/"), nil
}

// isIP reports whether host (without port) is an IP address: a bucket
// cannot be a subdomain of one.
func isIP(host string) bool { return net.ParseIP(host) != nil }

// virtualHostable reports whether bucket can be a DNS label in front of
// the endpoint's host, as the SDK decides before addressing it that way:
// 3 to 63 lowercase letters, digits and hyphens (dots too when the
// connection is not TLS, where a dotted name cannot match a wildcard
// certificate).
func virtualHostable(bucket string, dots bool) bool {
	if len(bucket) < 3 || len(bucket) > 63 || isIP(bucket) {
		return false
	}
	for i, r := range bucket {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
		case (r == '-' || r == '.' && dots) && i > 0 && i < len(bucket)-1:
		default:
			return false
		}
	}
	return !strings.Contains(bucket, "..")
}
