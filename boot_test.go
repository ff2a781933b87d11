package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/starling-live/starling/core/testrig"
)

func TestParseConfig(t *testing.T) {
	env := map[string]string{"STARLING_HTTP": "127.0.0.1:9000", "STARLING_DATA": "/env/data", "STARLING_LOG_LEVEL": "debug"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	c, err := parseConfig([]string{"--data", "/flag/data", "--stream-key", "k"}, lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:9000" || c.DataDir != "/flag/data" || c.RTMPAddr != ":1935" || c.StreamKey != "k" || c.LogLevel.String() != "DEBUG" {
		t.Errorf("config %+v: environment must fill in, flags must win, defaults must stay", c)
	}
	for _, args := range [][]string{{"--log-level", "loud"}, {"extra"}, {"--nope"}} {
		if _, err := parseConfig(args, lookup, io.Discard); err == nil {
			t.Errorf("%v was accepted", args)
		}
	}
}

// starlingProcess is the real command, run from the test binary.
type starlingProcess struct {
	cmd    *exec.Cmd
	stderr *testrig.LogBuffer
	banner string
	url    string
}

var watchLine = regexp.MustCompile(`Watch:\s+(\S+)/`)

func startProcess(t *testing.T, env []string, args ...string) *starlingProcess {
	t.Helper()
	requireTools(t, "ffmpeg")
	p := &starlingProcess{cmd: exec.Command(os.Args[0], args...), stderr: &testrig.LogBuffer{}}
	p.cmd.Env = append(append(os.Environ(), "STARLING_TEST_RUN_MAIN=1"), env...)
	p.cmd.Stderr = p.stderr
	stdout, _ := p.cmd.StdoutPipe()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	var b strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "Press Ctrl+C") {
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	p.banner = b.String()
	m := watchLine.FindStringSubmatch(p.banner)
	if m == nil {
		t.Fatalf("no viewer URL in the welcome text:\n%s\nlog:\n%s", p.banner, p.stderr)
	}
	p.url = m[1]
	return p
}

// stop sends SIGTERM and returns the exit error.
func (p *starlingProcess) stop(t *testing.T) error {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("starling did not exit within 30 s of SIGTERM")
		return nil
	}
}

func httpGet(t *testing.T, url, user, pass string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var (
	keyLine  = regexp.MustCompile(`Stream key:\s+(\S+)\s+\(generated`)
	passLine = regexp.MustCompile(`password (\S+)\s+\(generated`)
)

// TestBootContract runs the starling command as a user would: first run
// generates and prints the secrets once, they never reach the logs or the
// public API, SIGTERM exits 0, and a second run keeps them.
func TestBootContract(t *testing.T) {
	data := t.TempDir()
	env := []string{"STARLING_DATA=" + data, "STARLING_HTTP=127.0.0.1:0", "STARLING_LOG_LEVEL=debug"}
	p := startProcess(t, env, "--rtmp", "127.0.0.1:0")
	km, pm := keyLine.FindStringSubmatch(p.banner), passLine.FindStringSubmatch(p.banner)
	if km == nil || pm == nil {
		t.Fatalf("first run did not print the generated secrets:\n%s", p.banner)
	}
	key, pass := km[1], pm[1]
	if !strings.Contains(p.banner, "Publish to:   rtmp://127.0.0.1:") {
		t.Errorf("no publish URL in:\n%s", p.banner)
	}

	for _, path := range []string{"/api/status", "/api/config", "/", "/api/admin/status"} {
		code, body := httpGet(t, p.url+path, "", "")
		if strings.Contains(body, key) || strings.Contains(body, pass) {
			t.Errorf("%s reveals a secret", path)
		}
		if path == "/api/admin/status" && code != http.StatusUnauthorized {
			t.Errorf("admin API without a password: %d", code)
		} else if path != "/api/admin/status" && code != http.StatusOK {
			t.Errorf("%s: %d", path, code)
		}
	}
	if code, _ := httpGet(t, p.url+"/api/admin/status", "admin", "wrong-password"); code != http.StatusUnauthorized {
		t.Errorf("admin API with a wrong password: %d", code)
	}
	code, body := httpGet(t, p.url+"/api/admin/serverconfig", "admin", pass)
	var sc struct {
		StreamKeys []struct{ Key string } `json:"streamKeys"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &sc) != nil || len(sc.StreamKeys) != 1 || sc.StreamKeys[0].Key != key {
		t.Errorf("admin serverconfig: %d %s", code, body)
	}
	if strings.Contains(body, pass) {
		t.Error("serverconfig reveals the admin password")
	}
	if err := p.stop(t); err != nil {
		t.Errorf("exit after SIGTERM: %v, want status 0", err)
	}
	logs := p.stderr.String()
	if strings.Contains(logs, key) || strings.Contains(logs, pass) {
		t.Error("a secret appears in the log")
	}
	if !strings.Contains(logs, "msg=stopped") {
		t.Errorf("no orderly shutdown in the log:\n%s", logs)
	}

	// Second run: nothing generated, nothing printed, the password holds.
	p2 := startProcess(t, env, "--rtmp", "127.0.0.1:0")
	if strings.Contains(p2.banner, key) || strings.Contains(p2.banner, pass) || !strings.Contains(p2.banner, "as set before") {
		t.Errorf("second run's welcome text:\n%s", p2.banner)
	}
	if code, _ := httpGet(t, p2.url+"/api/admin/status", "admin", pass); code != http.StatusOK {
		t.Errorf("the first run's admin password no longer works: %d", code)
	}
	if err := p2.stop(t); err != nil {
		t.Errorf("second exit: %v", err)
	}

	// A bad flag exits 2 with a message, before touching anything.
	bad := exec.Command(os.Args[0], "--log-level", "loud")
	bad.Env = append(os.Environ(), "STARLING_TEST_RUN_MAIN=1")
	out, err := bad.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "use debug, info, warn or error") {
		t.Errorf("bad flag: %v, %s", err, out)
	}
}
