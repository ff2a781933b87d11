package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/starling-live/starling/storage/s3"
)

// gateway is a versitygw on loopback with its posix backend, started as
// storage/s3/s3test does for the tests (which need a testing.TB this tool
// does not have).
type gateway struct {
	endpoint, bucket, key, secret string
	cmd                           *exec.Cmd
	exited                        chan error
	dir                           string
}

// findVersitygw looks where s3test does: $STARLING_VERSITYGW, PATH, then
// .bin under the module root (build/deps.sh test installs it there).
func findVersitygw() (string, error) {
	if p := os.Getenv("STARLING_VERSITYGW"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, ".bin", "versitygw")
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(p); err != nil {
				break
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("versitygw is not installed: run build/deps.sh test, which installs it into .bin, or set STARLING_VERSITYGW")
}

func startGateway() (*gateway, error) {
	bin, err := findVersitygw()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "starling-bench-s3-")
	if err != nil {
		return nil, err
	}
	g := &gateway{key: "STARLING" + strings.ToUpper(rand.Text()[:12]), secret: rand.Text() + rand.Text()[:14], dir: dir}
	// A port picked by listening then closing can be taken before
	// versitygw binds it; try again on another.
	for range 3 {
		if err = g.run(bin); err == nil {
			break
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	client := awss3.New(awss3.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider(g.key, g.secret, ""),
		BaseEndpoint: &g.endpoint,
		UsePathStyle: true,
	})
	g.bucket = "starling-bench"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: &g.bucket}); err != nil {
		g.stop()
		return nil, fmt.Errorf("create bucket: %w", err)
	}
	return g, nil
}

func (g *gateway) run(bin string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	l.Close()
	data, err := os.MkdirTemp(g.dir, "posix-")
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "--port", addr, "--cors-allow-origin", "*", "posix", data)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+g.key, "ROOT_SECRET_KEY="+g.secret)
	var out bytes.Buffer // read only once the process has exited
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	g.cmd, g.exited = cmd, make(chan error, 1)
	go func() { g.exited <- cmd.Wait() }()
	g.endpoint = "http://" + addr
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-g.exited:
			return fmt.Errorf("versitygw exited before it answered: %v; its output:\n%s", err, out.String())
		default:
		}
		if resp, err := client.Get(g.endpoint + "/"); err == nil {
			resp.Body.Close()
			return nil
		}
	}
	g.stopProcess()
	return errors.New("versitygw did not answer within 20 s")
}

func (g *gateway) stopProcess() {
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(5 * time.Second):
		g.cmd.Process.Kill()
		<-g.exited
	}
}

func (g *gateway) stop() {
	g.stopProcess()
	os.RemoveAll(g.dir)
}

// storage is an s3.Storage on the gateway's bucket through endpoint (the
// gateway's own, or a proxy's in front of it), under its own prefix, so
// that each run starts from an empty folder.
func (g *gateway) storage(endpoint, prefix string) (*s3.Storage, error) {
	return s3.New(s3.Config{Endpoint: endpoint, AccessKey: g.key, Secret: g.secret, Bucket: g.bucket,
		Region: "us-east-1", ForcePathStyle: true, PathPrefix: prefix}, s3.Deps{})
}

// delayProxy is a reverse proxy in front of the gateway that can hold
// every request for a while, as a slow or hanging bucket does (s3test's
// FaultProxy does the same for tests). It keeps the Host header, so that
// signed requests still verify.
type delayProxy struct {
	url   string
	delay atomic.Int64 // nanoseconds each request waits; 0 passes at once
	srv   *http.Server
	quit  chan struct{}
}

func newDelayProxy(target string) (*delayProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &delayProxy{url: "http://" + ln.Addr().String(), quit: make(chan struct{})}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		r.Out.Host = r.In.Host
	}}
	p.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := time.Duration(p.delay.Load()); d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			case <-p.quit:
				return
			}
		}
		rp.ServeHTTP(w, r)
	})}
	go p.srv.Serve(ln)
	return p, nil
}

func (p *delayProxy) close() {
	close(p.quit)
	p.srv.Close()
}
