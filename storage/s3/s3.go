// Package s3 publishes the HLS stream to an S3-compatible bucket (AWS S3,
// Backblaze B2, Wasabi, DigitalOcean Spaces, MinIO, versitygw...), from
// which viewers fetch it directly or through a CDN. It satisfies
// video/hls's Storage and Remote interfaces.
//
// Every request has a deadline, so a stalled bucket fails a segment
// rather than the stream; the SDK retries a failed attempt (3 attempts)
// within that deadline.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/starling-live/starling/storage"
)

// Deps are what a Storage needs.
type Deps struct {
	Logger *slog.Logger
	// HTTPClient, if set, carries the requests (a proxy, custom CAs);
	// the Storage then leaves its connections to its owner. If nil, the
	// Storage builds one with connect, TLS and response timeouts.
	HTTPClient *http.Client
}

// Storage stores objects under Config.PathPrefix in one bucket. It is
// safe for concurrent use.
type Storage struct {
	log    *slog.Logger
	cfg    Config // normalized, with Secret emptied: it is printable
	client *awss3.Client
	http   *http.Client // for the anonymous reads of Check
	owned  *http.Transport
	redact func(string) string // removes the secret from texts

	// Per-request deadlines, and the DeleteObjects batch size (S3's
	// maximum). Fixed after New; tests lower them.
	putTimeout, getTimeout, listTimeout, deleteTimeout, checkTimeout time.Duration
	batchSize                                                        int
}

// New checks the settings and builds the client. It does not contact the
// server: Check does.
func New(cfg Config, d Deps) (*Storage, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	s := &Storage{
		log:           d.Logger,
		redact:        redactor(cfg.Secret),
		putTimeout:    20 * time.Second,
		getTimeout:    20 * time.Second,
		listTimeout:   20 * time.Second,
		deleteTimeout: 20 * time.Second,
		checkTimeout:  10 * time.Second,
		batchSize:     1000,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.http = d.HTTPClient
	if s.http == nil {
		s.owned = newTransport()
		s.http = &http.Client{Transport: s.owned}
	}
	creds := credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.Secret, "")
	s.client = awss3.New(awss3.Options{
		Region:       cfg.Region,
		Credentials:  aws.NewCredentialsCache(creds),
		HTTPClient:   s.http,
		UsePathStyle: cfg.ForcePathStyle,
		BaseEndpoint: optional(cfg.Endpoint),
		APIOptions:   []func(*middleware.Stack) error{recordAttempts},
	})
	cfg.Secret = ""
	s.cfg = cfg
	return s, nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// newTransport bounds each phase of a request: the per-request deadlines
// bound the whole, these let the SDK retry a dead attempt in time.
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 15 * time.Second
	t.ExpectContinueTimeout = time.Second
	t.IdleConnTimeout = 90 * time.Second
	t.MaxIdleConnsPerHost = 16 // renditions upload side by side
	return t
}

// Close releases idle connections of the client the Storage built.
func (s *Storage) Close() error {
	if s.owned != nil {
		s.owned.CloseIdleConnections()
	}
	return nil
}

// Config is the normalized settings, with the secret emptied.
func (s *Storage) Config() Config { return s.cfg }

func (s *Storage) key(name string) (string, error) {
	if err := storage.CheckName(name); err != nil {
		return "", err
	}
	return s.cfg.PathPrefix + name, nil
}

// contentType gives each kind of HLS file its Content-Type and
// Cache-Control. Segments never change once written (a new one gets a
// new name), so CDNs and browsers may keep them; playlists change every
// segment, and the rest may be replaced, so they are revalidated.
func contentType(name string) (ctype, cache string) {
	const (
		immutable = "public, max-age=31536000, immutable"
		noCache   = "no-cache"
	)
	switch strings.ToLower(path.Ext(name)) {
	case ".ts":
		return "video/mp2t", immutable
	case ".m4s", ".mp4":
		return "video/mp4", immutable
	case ".m3u8":
		return "application/vnd.apple.mpegurl", noCache // RFC 8216 section 4
	case ".json":
		return "application/json", noCache
	case ".jpg", ".jpeg":
		return "image/jpeg", noCache
	}
	return "application/octet-stream", noCache
}

// Put stores data under PathPrefix+name. The body is a bytes.Reader, so
// the SDK can compute its checksum and rewind it for a retry.
func (s *Storage) Put(ctx context.Context, name string, data []byte) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	ctx, cancel := request(ctx, s.putTimeout)
	defer cancel()
	ctype, cache := contentType(name)
	in := &awss3.PutObjectInput{
		Bucket:        &s.cfg.Bucket,
		Key:           &key,
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   &ctype,
		CacheControl:  &cache,
	}
	if s.cfg.ACL != "" {
		in.ACL = types.ObjectCannedACL(s.cfg.ACL)
	}
	_, err = s.client.PutObject(ctx, in)
	return s.explain(ctx, op{what: fmt.Sprintf("write %q", key), perm: "s3:PutObject", acl: s.cfg.ACL != ""}, err)
}

// Get reads name back; a missing object is an error wrapping
// fs.ErrNotExist.
func (s *Storage) Get(ctx context.Context, name string) ([]byte, error) {
	key, err := s.key(name)
	if err != nil {
		return nil, err
	}
	return s.get(ctx, key)
}

func (s *Storage) get(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := request(ctx, s.getTimeout)
	defer cancel()
	o := op{what: fmt.Sprintf("read %q", key), perm: "s3:GetObject"}
	out, err := s.client.GetObject(ctx, &awss3.GetObjectInput{Bucket: &s.cfg.Bucket, Key: &key})
	if err != nil {
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode() == "NoSuchKey" || apiErr.ErrorCode() == "NotFound") {
			return nil, fmt.Errorf("S3 object %q: %w", key, fs.ErrNotExist)
		}
		return nil, s.explain(ctx, o, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, s.explain(ctx, o, err)
	}
	return data, nil
}

// Delete removes the named objects with DeleteObjects, up to 1000 keys a
// request; a missing one is not an error. It checks every name before
// it removes any, so a bad name removes nothing.
func (s *Storage) Delete(ctx context.Context, names ...string) error {
	keys := make([]string, 0, len(names))
	for _, name := range names {
		key, err := s.key(name)
		if err != nil {
			return err
		}
		keys = append(keys, key)
	}
	slices.Sort(keys)
	return s.deleteKeys(ctx, slices.Compact(keys))
}

// deleteKeys deletes in batches and reports the keys S3 could not delete.
func (s *Storage) deleteKeys(ctx context.Context, keys []string) error {
	var errs []error
	for batch := range slices.Chunk(keys, s.batchSize) {
		if err := s.deleteBatch(ctx, batch); err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
	}
	return errors.Join(errs...)
}

func (s *Storage) deleteBatch(ctx context.Context, keys []string) error {
	ctx, cancel := request(ctx, s.deleteTimeout)
	defer cancel()
	objs := make([]types.ObjectIdentifier, len(keys))
	for i := range keys {
		objs[i].Key = &keys[i]
	}
	o := op{what: fmt.Sprintf("delete %d objects (%q...)", len(keys), keys[0]), perm: "s3:DeleteObject"}
	if len(keys) == 1 {
		o.what = fmt.Sprintf("delete %q", keys[0])
	}
	out, err := s.client.DeleteObjects(ctx, &awss3.DeleteObjectsInput{
		Bucket: &s.cfg.Bucket,
		Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)},
	})
	if err != nil {
		return s.explain(ctx, o, err)
	}
	// In quiet mode the answer lists only the keys that failed. Deleting a
	// missing key succeeds on AWS; some servers report NoSuchKey instead.
	var failed []types.Error
	for _, e := range out.Errors {
		if aws.ToString(e.Code) != "NoSuchKey" {
			failed = append(failed, e)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	first := failed[0]
	code := aws.ToString(first.Code)
	text := fmt.Sprintf("S3 delete %q", aws.ToString(first.Key))
	if len(failed) > 1 {
		text += fmt.Sprintf(" and %d more objects", len(failed)-1)
	}
	advice := s.adviceForCode(op{perm: "s3:DeleteObject"}, code, aws.ToString(first.Message), 0)
	text = fmt.Sprintf("%s: %s (%s: %s)", text, advice, code, aws.ToString(first.Message))
	return &Error{Op: o.what, Code: code, Advice: advice, Err: errors.New(code), text: s.redact(text)}
}

// topLevel are the names the stream writes beside its rendition folders
// (video/hls's master playlist, Owncast's thumbnail and preview).
var topLevel = []string{"stream.m3u8", "segments.json", "thumbnail.jpg", "preview.gif"}

// checkPrefix starts the names of Check's probe objects.
const checkPrefix = ".starling-check-"

// ours reports whether a key (relative to the path prefix) is one the
// stream writes: a top-level name, anything in a rendition folder ("0/",
// "1/"...), or a probe a Check left behind.
func ours(rel string) bool {
	if slices.Contains(topLevel, rel) || strings.HasPrefix(rel, checkPrefix) {
		return true
	}
	dir, _, ok := strings.Cut(rel, "/")
	return ok && isRendition(dir)
}

func isRendition(dir string) bool {
	return dir != "" && len(dir) <= 3 && strings.Trim(dir, "0123456789") == ""
}

// Clear deletes what a previous broadcast left: under the path prefix,
// the objects the stream writes (see ours), and nothing else. A bucket
// may hold other things beside the stream, even under an empty prefix,
// so Clear lists the prefix's top level with a delimiter and descends
// only into rendition folders, never through the whole bucket.
func (s *Storage) Clear(ctx context.Context) error {
	var keys []string
	var dirs []string
	err := s.list(ctx, s.cfg.PathPrefix, "/", func(page *awss3.ListObjectsV2Output) {
		for _, obj := range page.Contents {
			if k := aws.ToString(obj.Key); ours(strings.TrimPrefix(k, s.cfg.PathPrefix)) {
				keys = append(keys, k)
			}
		}
		for _, p := range page.CommonPrefixes {
			p := aws.ToString(p.Prefix)
			if isRendition(strings.TrimSuffix(strings.TrimPrefix(p, s.cfg.PathPrefix), "/")) {
				dirs = append(dirs, p)
			}
		}
	})
	if err != nil {
		return err
	}
	for _, dir := range dirs {
		err := s.list(ctx, dir, "", func(page *awss3.ListObjectsV2Output) {
			for _, obj := range page.Contents {
				keys = append(keys, aws.ToString(obj.Key))
			}
		})
		if err != nil {
			return err
		}
	}
	if len(keys) > 0 {
		s.log.Debug("clearing the bucket", "bucket", s.cfg.Bucket, "prefix", s.cfg.PathPrefix, "objects", len(keys))
	}
	return s.deleteKeys(ctx, keys)
}

// list calls page for each page of the listing of prefix, each page
// request with its own deadline.
func (s *Storage) list(ctx context.Context, prefix, delimiter string, page func(*awss3.ListObjectsV2Output)) error {
	in := &awss3.ListObjectsV2Input{Bucket: &s.cfg.Bucket, Prefix: &prefix}
	if delimiter != "" {
		in.Delimiter = &delimiter
	}
	o := op{what: fmt.Sprintf("list bucket %q under %q", s.cfg.Bucket, prefix), perm: "s3:ListBucket"}
	p := awss3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		pctx, cancel := request(ctx, s.listTimeout)
		out, err := p.NextPage(pctx)
		if err != nil {
			err = s.explain(pctx, o, err)
		}
		cancel()
		if err != nil {
			return err
		}
		page(out)
	}
	return nil
}

// URL is the absolute URL viewers fetch name from: the serving endpoint
// (a CDN) if set, else the bucket's own URL, addressed as the SDK
// addresses it. Each path segment is escaped.
func (s *Storage) URL(name string) string {
	key := escapeKey(s.cfg.PathPrefix + name)
	c := s.cfg
	if c.ServingEndpoint != "" {
		return c.ServingEndpoint + "/" + key
	}
	if c.Endpoint == "" {
		if c.ForcePathStyle || !virtualHostable(c.Bucket, false) {
			return fmt.Sprintf("https://s3.%s.amazonaws.com/%s/%s", c.Region, url.PathEscape(c.Bucket), key)
		}
		return fmt.Sprintf("https://%s.s3.%s.amazonaws.com/%s", c.Bucket, c.Region, key)
	}
	u, _ := url.Parse(c.Endpoint) // checked by normalize
	if !c.ForcePathStyle && !isIP(u.Hostname()) && virtualHostable(c.Bucket, u.Scheme == "http") {
		u.Host = c.Bucket + "." + u.Host
		return strings.TrimRight(u.String(), "/") + "/" + key
	}
	return c.Endpoint + "/" + url.PathEscape(c.Bucket) + "/" + key
}

// escapeKey escapes each segment of a key, keeping only RFC 3986's
// unreserved characters: "+" and the like mean different things to
// different S3 front ends.
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		var b strings.Builder
		for _, c := range []byte(seg) {
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
		segs[i] = b.String()
	}
	return strings.Join(segs, "/")
}
