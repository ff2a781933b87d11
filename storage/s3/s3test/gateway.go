// Package s3test runs a real S3 server for tests: versitygw with its
// posix backend, one process per Start, on a random loopback port. Tests
// of any package use it, up to the root package's end-to-end tests where
// browsers play the stream straight from the bucket. FaultProxy stands
// in front of it for the failures a healthy server does not produce.
package s3test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/starling-live/starling/core/testrig"
	"github.com/starling-live/starling/storage/s3"
)

// Region is the region the gateway's buckets are addressed with.
const Region = "us-east-1"

// Gateway is a running versitygw. Its fields are fixed after Start; the
// process stops in the test's cleanup.
type Gateway struct {
	// Endpoint is the S3 API's URL, "http://127.0.0.1:PORT".
	Endpoint string
	// Bucket is a publicly readable bucket made by Start.
	Bucket string
	// AccessKey and Secret are the root account's, random per Start.
	AccessKey, Secret string

	client    *awss3.Client
	transport *http.Transport
}

// Start runs versitygw and makes a public bucket in it. Without the
// binary the test is skipped, or fails if STARLING_REQUIRE_TOOLS is set
// (as build/test.sh sets it): there a missing tool must not pass
// silently.
func Start(t testing.TB) *Gateway {
	t.Helper()
	bin := findBinary(t)
	g := &Gateway{
		AccessKey: "STARLING" + strings.ToUpper(rand.Text()[:12]),
		Secret:    rand.Text() + rand.Text()[:14],
	}
	// A port picked by listening then closing can be taken before
	// versitygw binds it; try again on another.
	var err error
	for range 3 {
		if err = g.run(t, bin); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	g.transport = http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(g.transport.CloseIdleConnections)
	g.client = awss3.New(awss3.Options{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider(g.AccessKey, g.Secret, ""),
		BaseEndpoint: &g.Endpoint,
		UsePathStyle: true,
		HTTPClient:   &http.Client{Transport: g.transport, Timeout: 30 * time.Second},
	})
	g.Bucket = g.NewBucket(t, true)
	return g
}

// Config is settings for the gateway's public bucket.
func (g *Gateway) Config() s3.Config {
	return s3.Config{
		Endpoint:       g.Endpoint,
		AccessKey:      g.AccessKey,
		Secret:         g.Secret,
		Bucket:         g.Bucket,
		Region:         Region,
		ForcePathStyle: true,
	}
}

// Client is an S3 client with the root keys, for a test to look behind
// the storage's back.
func (g *Gateway) Client() *awss3.Client { return g.client }

// NewBucket makes another bucket, with a random name; public makes it
// readable by anyone (objects only, as a bucket serving HLS is).
func (g *Gateway) NewBucket(t testing.TB, public bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := "starling-" + strings.ToLower(rand.Text()[:16])
	if _, err := g.client.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	if public {
		policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::%s/*"]}]}`, name)
		if _, err := g.client.PutBucketPolicy(ctx, &awss3.PutBucketPolicyInput{Bucket: &name, Policy: aws.String(policy)}); err != nil {
			t.Fatalf("make bucket %s public: %v", name, err)
		}
	}
	return name
}

// run starts versitygw on a free port and waits until it answers.
func (g *Gateway) run(t testing.TB, bin string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	l.Close()

	dir := t.TempDir()
	cmd := exec.Command(bin, "--port", addr, "--cors-allow-origin", "*", "posix", dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+g.AccessKey, "ROOT_SECRET_KEY="+g.Secret)
	out := &testrig.LogBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}

	endpoint := "http://" + addr
	if err := waitReady(endpoint, exited); err != nil {
		stop()
		return fmt.Errorf("%w; its output:\n%s", err, out.String())
	}
	g.Endpoint = endpoint
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("versitygw output:\n%s", out.String())
		}
	})
	return nil
}

// waitReady polls endpoint until it answers at all (an anonymous request
// gets an S3 error, which is an answer), the process exits, or a deadline
// passes.
func waitReady(endpoint string, exited <-chan error) error {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Second}
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("versitygw exited before it answered: %v", err)
		case <-deadline:
			return errors.New("versitygw did not answer within 20s")
		case <-tick.C:
		}
	}
}

// findBinary looks for versitygw in $STARLING_VERSITYGW, then PATH, then
// the module's .bin, where build/deps.sh test installs it.
func findBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("STARLING_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("STARLING_VERSITYGW=%s: %v", p, err)
		}
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	if root, ok := moduleRoot(); ok {
		p := filepath.Join(root, ".bin", "versitygw")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	if os.Getenv("STARLING_REQUIRE_TOOLS") != "" {
		t.Fatalf("versitygw is not installed: run build/deps.sh test, which installs it into .bin")
	}
	t.Skipf("versitygw is not installed (build/deps.sh test installs it into .bin)")
	return ""
}

// moduleRoot walks up from the working directory (a test's package
// directory) to the directory holding go.mod.
func moduleRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}
