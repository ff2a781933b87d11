package s3_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/goleak"

	"github.com/starling-live/starling/storage"
	"github.com/starling-live/starling/storage/s3"
	"github.com/starling-live/starling/storage/s3/s3test"
	"github.com/starling-live/starling/storage/storagetest"
)

// TestMain checks that the tests leave no goroutine behind: a Storage's
// connections close with Close, the gateway's process and the proxies
// with the tests' cleanups.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// open builds a Storage for cfg, closed in the test's cleanup.
func open(t testing.TB, cfg s3.Config) *s3.Storage {
	t.Helper()
	st, err := s3.New(cfg, s3.Deps{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestConformance(t *testing.T) {
	g := s3test.Start(t)
	t.Run("OwnBucket", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storagetest.Store {
			cfg := g.Config()
			cfg.Bucket = g.NewBucket(t, false)
			return open(t, cfg)
		})
	})
	t.Run("PathPrefix", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storagetest.Store {
			cfg := g.Config()
			cfg.PathPrefix = "/live/" + strings.ToLower(rand.Text()[:8]) + "/"
			return open(t, cfg)
		})
	})
}

// get fetches u as a viewer would: anonymous, over a connection of its own.
func get(t *testing.T, u string) (*http.Response, []byte) {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// TestViewerHeaders: a viewer fetching the bucket directly gets the type
// and caching each kind of HLS file needs.
func TestViewerHeaders(t *testing.T) {
	g := s3test.Start(t)
	cfg := g.Config()
	cfg.PathPrefix = "live"
	st := open(t, cfg)
	const immutable = "public, max-age=31536000, immutable"
	for _, tc := range []struct{ name, ctype, cache string }{
		{"0/seg-17.ts", "video/mp2t", immutable},
		{"0/seg-3.m4s", "video/mp4", immutable},
		{"0/init.mp4", "video/mp4", immutable},
		{"stream.m3u8", "application/vnd.apple.mpegurl", "no-cache"},
		{"0/stream.m3u8", "application/vnd.apple.mpegurl", "no-cache"},
		{"0/segments.json", "application/json", "no-cache"},
		{"thumbnail.jpg", "image/jpeg", "no-cache"},
		{"preview.gif", "application/octet-stream", "no-cache"},
		{"weird name+1.ts", "video/mp2t", immutable},
	} {
		data := []byte("body of " + tc.name)
		if err := st.Put(t.Context(), tc.name, data); err != nil {
			t.Fatal(err)
		}
		u := st.URL(tc.name)
		if !strings.HasPrefix(u, g.Endpoint+"/"+g.Bucket+"/live/") {
			t.Errorf("URL(%q) = %s; want it under %s/%s/live/", tc.name, u, g.Endpoint, g.Bucket)
		}
		resp, body := get(t, u)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
			t.Errorf("GET %s: %s %q", u, resp.Status, body)
			continue
		}
		if got := resp.Header.Get("Content-Type"); got != tc.ctype {
			t.Errorf("%s: Content-Type %q; want %q", tc.name, got, tc.ctype)
		}
		if got := resp.Header.Get("Cache-Control"); got != tc.cache {
			t.Errorf("%s: Cache-Control %q; want %q", tc.name, got, tc.cache)
		}
	}
}

func TestCheck(t *testing.T) {
	g := s3test.Start(t)
	cfg := g.Config()
	cfg.PathPrefix = "live/"
	res, err := open(t, cfg).Check(t.Context())
	if err != nil {
		t.Fatalf("Check of a good config: %v", err)
	}
	if len(res.Passed) != 5 || len(res.Warnings) != 0 {
		t.Errorf("Check passed %q, warned %q; want 5 steps passed and no warning", res.Passed, res.Warnings)
	}
	// The probe is gone.
	out, err := g.Client().ListObjectsV2(t.Context(), &awss3.ListObjectsV2Input{Bucket: &cfg.Bucket})
	if err != nil || len(out.Contents) != 0 {
		t.Errorf("bucket after Check: %d objects, %v", len(out.Contents), err)
	}
}

// TestCheckPrivateBucket: viewers unable to read the bucket is a warning,
// not a failure: a CDN with its own access can still serve them.
func TestCheckPrivateBucket(t *testing.T) {
	g := s3test.Start(t)
	cfg := g.Config()
	cfg.Bucket = g.NewBucket(t, false)
	res, err := open(t, cfg).Check(t.Context())
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "publicly readable") {
		t.Errorf("warnings %q; want one saying to make the bucket publicly readable", res.Warnings)
	}
	if len(res.Passed) != 4 {
		t.Errorf("passed %q; want the 4 other steps", res.Passed)
	}
}

// checkFails runs Check on cfg and returns its error text, which must
// name the failed step and never hold the secrets or a signature.
func checkFails(t *testing.T, cfg s3.Config, secrets ...string) (string, *s3.Error) {
	t.Helper()
	_, err := open(t, cfg).Check(t.Context())
	if err == nil {
		t.Fatal("Check passed; want an error")
	}
	text := err.Error()
	t.Logf("Check: %s", text)
	for _, s := range append(secrets, cfg.Secret) {
		if strings.Contains(text, s) {
			t.Errorf("the error text holds the secret %q", s)
		}
	}
	for _, leak := range []string{"Signature=", "AWS4-HMAC-SHA256", "Credential="} {
		if strings.Contains(text, leak) {
			t.Errorf("the error text holds %q", leak)
		}
	}
	if !strings.Contains(text, "step ") {
		t.Errorf("the error does not name the step: %s", text)
	}
	var e *s3.Error
	errors.As(err, &e)
	return text, e
}

func TestCheckErrors(t *testing.T) {
	g := s3test.Start(t)

	t.Run("WrongSecret", func(t *testing.T) {
		cfg := g.Config()
		cfg.Secret = "WRONG" + rand.Text()
		text, e := checkFails(t, cfg, g.Secret)
		if !strings.Contains(text, "wrong access key or secret") || !strings.Contains(text, g.AccessKey) {
			t.Errorf("want it to say the access key %s or secret is wrong", g.AccessKey)
		}
		if e == nil || e.Code != "SignatureDoesNotMatch" {
			t.Errorf("error %#v; want an *s3.Error with code SignatureDoesNotMatch", e)
		}
	})
	t.Run("WrongAccessKey", func(t *testing.T) {
		cfg := g.Config()
		cfg.AccessKey = "NOSUCHKEY" + rand.Text()[:11]
		text, e := checkFails(t, cfg, g.Secret)
		if !strings.Contains(text, "wrong access key or secret") || !strings.Contains(text, cfg.AccessKey) {
			t.Error("want it to say the access key is wrong, naming it")
		}
		// versitygw answers 404 XAdminUserNotFound where AWS answers 403
		// InvalidAccessKeyId.
		if e == nil || e.Code != "InvalidAccessKeyId" && e.Code != "XAdminUserNotFound" {
			t.Errorf("error %#v; want code InvalidAccessKeyId", e)
		}
	})
	t.Run("NoSuchBucket", func(t *testing.T) {
		cfg := g.Config()
		cfg.Bucket = "no-such-bucket-" + strings.ToLower(rand.Text()[:8])
		text, e := checkFails(t, cfg)
		if !strings.Contains(text, fmt.Sprintf("no bucket %q at %s", cfg.Bucket, g.Endpoint)) {
			t.Error("want it to name the missing bucket and the endpoint")
		}
		if e == nil || e.Code != "NoSuchBucket" {
			t.Errorf("error %#v; want code NoSuchBucket", e)
		}
	})
	t.Run("Unreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := "http://" + l.Addr().String()
		l.Close()
		cfg := g.Config()
		cfg.Endpoint = closed
		text, _ := checkFails(t, cfg)
		if !strings.Contains(text, "nothing accepts connections at "+closed) || !strings.Contains(text, "connection refused") {
			t.Error("want it to say nothing listens at the endpoint")
		}
	})
	t.Run("NotTLS", func(t *testing.T) {
		cfg := g.Config()
		cfg.Endpoint = strings.Replace(g.Endpoint, "http://", "https://", 1)
		text, _ := checkFails(t, cfg)
		if !strings.Contains(text, "does not speak TLS") {
			t.Error("want it to say the endpoint is not TLS")
		}
	})
	t.Run("UntrustedCertificate", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(http.NotFoundHandler())
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
		srv.StartTLS()
		t.Cleanup(srv.Close)
		cfg := g.Config()
		cfg.Endpoint = srv.URL
		text, _ := checkFails(t, cfg)
		if !strings.Contains(text, "TLS certificate") {
			t.Error("want it to say the certificate is not trusted")
		}
	})
	t.Run("Stalled", func(t *testing.T) {
		p := s3test.NewFaultProxy(t, g.Endpoint)
		p.Set(s3test.Delay(time.Hour))
		cfg := g.Config()
		cfg.Endpoint = p.URL
		st := open(t, cfg)
		s3.SetTimeouts(st, 500*time.Millisecond)
		_, err := st.Check(t.Context())
		if err == nil || !strings.Contains(err.Error(), "did not answer in time") {
			t.Errorf("Check through a stalled proxy: %v; want it to say the endpoint did not answer in time", err)
		}
	})
}

// TestCheckInjected covers answers a healthy versitygw does not give,
// from a proxy in front of it.
func TestCheckInjected(t *testing.T) {
	g := s3test.Start(t)
	hasACL := func(r *http.Request) bool { return r.Header.Get("X-Amz-Acl") != "" }
	isPut := func(r *http.Request) bool { return r.Method == http.MethodPut }
	isGet := func(r *http.Request) bool {
		return r.Method == http.MethodGet && !strings.Contains(r.URL.RawQuery, "list-type")
	}
	for _, tc := range []struct {
		name string
		mode s3test.Mode
		acl  string
		step string
		want []string
	}{
		{"ClockSkew", s3test.S3Error(403, "RequestTimeTooSkewed", "The difference between the request time and the current time is too large."), "", "step 1 of 5",
			[]string{"clock is off", "enable NTP"}},
		{"ACLNotSupported", s3test.S3Error(400, "AccessControlListNotSupported", "The bucket does not allow ACLs").When(hasACL), "public-read", "step 2 of 5",
			[]string{"the bucket refuses ACLs", "clear the ACL setting", `"public-read"`}},
		{"ACLAccessDenied", s3test.S3Error(403, "AccessDenied", "Access Denied").When(hasACL), "public-read", "step 2 of 5",
			[]string{`access denied writing with ACL "public-read"`, "clear the ACL setting"}},
		{"PutDenied", s3test.S3Error(403, "AccessDenied", "Access Denied").When(isPut), "", "step 2 of 5",
			[]string{"lacks s3:PutObject", g.AccessKey}},
		{"GetDenied", s3test.S3Error(403, "AccessDenied", "Access Denied").When(isGet), "", "step 3 of 5",
			[]string{"lacks s3:GetObject"}},
		{"DeleteDenied", s3test.S3Error(403, "AccessDenied", "Access Denied").When(func(r *http.Request) bool { return r.Method == http.MethodPost }), "", "step 5 of 5",
			[]string{"lacks s3:DeleteObject"}},
		{"ListDenied", s3test.S3Error(403, "AccessDenied", "Access Denied"), "", "step 1 of 5",
			[]string{"lacks s3:ListBucket"}},
		{"WrongRegion", s3test.S3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-3'"), "", "step 1 of 5",
			[]string{`region "eu-west-3"`, "set the region to eu-west-3"}},
		{"Overloaded", s3test.Status(503), "", "step 1 of 5",
			[]string{"overloaded", "try again later"}},
		{"NotS3", s3test.Drop(), "", "step 1 of 5",
			[]string{"closed the connection without an answer"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := s3test.NewFaultProxy(t, g.Endpoint)
			p.Set(tc.mode)
			cfg := g.Config()
			cfg.Endpoint = p.URL
			cfg.ACL = tc.acl
			text, _ := checkFails(t, cfg)
			for _, want := range append(tc.want, tc.step) {
				if !strings.Contains(text, want) {
					t.Errorf("want it to say %q", want)
				}
			}
			if p.Faulted() == 0 {
				t.Error("no request met the fault")
			}
		})
	}
}

// TestPutThroughFaults: a Put fails while the bucket fails, within its
// deadline however the bucket fails, and works again once it recovers.
func TestPutThroughFaults(t *testing.T) {
	g := s3test.Start(t)
	p := s3test.NewFaultProxy(t, g.Endpoint)
	cfg := g.Config()
	cfg.Endpoint = p.URL
	st := open(t, cfg)
	// Short enough that the 503s outlast it: the error must still say
	// what the server answered.
	s3.SetTimeouts(st, 2*time.Second)
	ctx := t.Context()

	put := func(name string) error {
		done := make(chan error, 1)
		go func() { done <- st.Put(ctx, name, []byte(name)) }()
		select {
		case err := <-done:
			t.Logf("Put(%s): %v", name, err)
			return err
		case <-time.After(time.Minute): // far past the 2 s deadline
			t.Fatalf("Put(%s) has not returned after a minute", name)
			return nil
		}
	}

	p.Set(s3test.Status(503))
	err := put("0/seg-1.ts")
	if err == nil || !strings.Contains(err.Error(), "overloaded") || !strings.Contains(err.Error(), "SlowDown") {
		t.Errorf("Put against 503: %v; want an error saying the server is overloaded", err)
	}
	if n := p.Faulted(); n < 2 {
		t.Errorf("the SDK tried %d times; want it to retry a 503", n)
	}

	p.Set(s3test.Drop())
	if err := put("0/seg-2.ts"); err == nil {
		t.Error("Put through dropped connections succeeded")
	}

	p.Set(s3test.Delay(time.Hour))
	if err := put("0/seg-3.ts"); err == nil || !strings.Contains(err.Error(), "did not answer in time") {
		t.Errorf("Put through a stall: %v; want it to say the endpoint did not answer in time", err)
	}

	p.Set(s3test.Pass())
	if err := put("0/seg-4.ts"); err != nil {
		t.Fatalf("Put after the bucket recovered: %v", err)
	}
	if got, err := st.Get(ctx, "0/seg-4.ts"); err != nil || string(got) != "0/seg-4.ts" {
		t.Errorf("Get after recovery = %q, %v", got, err)
	}
}

// putMany writes n small objects under dir, a few at a time.
func putMany(t *testing.T, st *s3.Storage, dir string, n int) []string {
	t.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s/seg-%d.ts", dir, i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan string)
	for range 16 {
		wg.Go(func() {
			for name := range work {
				errs <- st.Put(t.Context(), name, []byte("x"))
			}
		})
	}
	for _, name := range names {
		work <- name
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return names
}

// deleteRequests counts the DeleteObjects requests a proxy saw.
func deleteRequests(p *s3test.FaultProxy) int {
	n := 0
	for _, r := range p.Seen() {
		if r.Method == http.MethodPost && strings.Contains(r.RawQuery, "delete") {
			n++
		}
	}
	return n
}

// countObjects lists the bucket behind the storage's back.
func countObjects(t *testing.T, g *s3test.Gateway, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	pg := awss3.NewListObjectsV2Paginator(g.Client(), &awss3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for pg.HasMorePages() {
		out, err := pg.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// TestDeleteBatches: S3 takes at most 1000 keys a DeleteObjects.
func TestDeleteBatches(t *testing.T) {
	g := s3test.Start(t)
	p := s3test.NewFaultProxy(t, g.Endpoint)
	cfg := g.Config()
	cfg.Endpoint = p.URL
	st := open(t, cfg)

	names := putMany(t, st, "0", 1200)
	if err := st.Delete(t.Context(), append(names, "0/seg-missing.ts")...); err != nil {
		t.Fatal(err)
	}
	if n := deleteRequests(p); n != 2 {
		t.Errorf("deleting 1201 keys took %d DeleteObjects requests; want 2", n)
	}
	if left := countObjects(t, g, cfg.Bucket, ""); len(left) != 0 {
		t.Errorf("%d objects left after Delete", len(left))
	}

	// Clear batches the same way.
	putMany(t, st, "1", 1200)
	before := deleteRequests(p)
	if err := st.Clear(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := deleteRequests(p) - before; n != 2 {
		t.Errorf("clearing 1200 keys took %d DeleteObjects requests; want 2", n)
	}
	if left := countObjects(t, g, cfg.Bucket, ""); len(left) != 0 {
		t.Errorf("%d objects left after Clear", len(left))
	}
}

// TestDeleteReportsKeys: keys S3 could not delete come back in the error.
func TestDeleteReportsKeys(t *testing.T) {
	g := s3test.Start(t)
	p := s3test.NewFaultProxy(t, g.Endpoint)
	cfg := g.Config()
	cfg.Endpoint = p.URL
	st := open(t, cfg)
	s3.SetBatchSize(st, 2)
	names := putMany(t, st, "0", 5)
	// A DeleteObjects answer listing per-key errors, as AWS sends when a
	// policy denies some keys.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><DeleteResult><Error><Key>0/seg-1.ts</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error><Error><Key>0/seg-0.ts</Key><Code>NoSuchKey</Code><Message>gone</Message></Error></DeleteResult>`)
	}))
	t.Cleanup(srv.Close)
	cfg.Endpoint = srv.URL
	fake := open(t, cfg)
	err := fake.Delete(t.Context(), names[:2]...)
	if err == nil || !strings.Contains(err.Error(), `"0/seg-1.ts"`) || !strings.Contains(err.Error(), "s3:DeleteObject") || strings.Contains(err.Error(), "seg-0") {
		t.Errorf("Delete with a per-key AccessDenied: %v; want it to name 0/seg-1.ts and s3:DeleteObject, and not the NoSuchKey one", err)
	}
	if err := st.Delete(t.Context(), names...); err != nil {
		t.Fatal(err)
	}
	if n := deleteRequests(p); n != 3 {
		t.Errorf("5 keys in batches of 2 took %d requests; want 3", n)
	}
}

// TestClearLeavesOthers: Clear deletes what the stream writes under the
// prefix, and nothing else the bucket holds, even with an empty prefix.
func TestClearLeavesOthers(t *testing.T) {
	g := s3test.Start(t)
	for _, prefix := range []string{"", "live/"} {
		t.Run(fmt.Sprintf("prefix %q", prefix), func(t *testing.T) {
			cfg := g.Config()
			cfg.Bucket = g.NewBucket(t, false)
			cfg.PathPrefix = prefix
			st := open(t, cfg)
			ours := []string{"stream.m3u8", "0/stream.m3u8", "0/seg-1.ts", "0/segments.json", "3/sub/x.ts", "thumbnail.jpg", ".starling-check-LEFTOVER"}
			for _, name := range ours {
				if err := st.Put(t.Context(), name, []byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			others := []string{prefix + "notes.txt", prefix + "archive/0/seg-1.ts", prefix + "0a/seg-1.ts", prefix + "index.html", "other/0/seg-1.ts"}
			if prefix != "" {
				others = append(others, "stream.m3u8", "0/seg-1.ts", "livestream.m3u8")
			}
			for _, key := range others {
				if _, err := g.Client().PutObject(t.Context(), &awss3.PutObjectInput{Bucket: &cfg.Bucket, Key: &key, Body: strings.NewReader("keep")}); err != nil {
					t.Fatal(err)
				}
			}
			if err := st.Clear(t.Context()); err != nil {
				t.Fatal(err)
			}
			left := countObjects(t, g, cfg.Bucket, "")
			slices.Sort(left)
			slices.Sort(others)
			if !slices.Equal(left, others) {
				t.Errorf("after Clear the bucket holds %q; want only the others, %q", left, others)
			}
		})
	}
}

func TestGetMissing(t *testing.T) {
	g := s3test.Start(t)
	st := open(t, g.Config())
	if _, err := st.Get(t.Context(), "0/seg-1.ts"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get of a missing object: %v; want fs.ErrNotExist", err)
	}
	if _, err := st.Get(t.Context(), "../etc/passwd"); !errors.Is(err, storage.ErrInvalidName) {
		t.Errorf("Get of a hostile name: %v; want storage.ErrInvalidName", err)
	}
}

// TestCanceled: the caller's context ends a request.
func TestCanceled(t *testing.T) {
	g := s3test.Start(t)
	p := s3test.NewFaultProxy(t, g.Endpoint)
	ctx, cancel := context.WithCancel(t.Context())
	// The request reaching the proxy cancels it, then stalls there.
	p.Set(s3test.Delay(time.Hour).When(func(*http.Request) bool { cancel(); return true }))
	cfg := g.Config()
	cfg.Endpoint = p.URL
	st := open(t, cfg)
	if err := st.Put(ctx, "0/seg-1.ts", []byte("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put canceled: %v; want context.Canceled", err)
	}
}
