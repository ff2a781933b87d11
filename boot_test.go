package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
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

// TestStartupErrorsExitWithAMessage: what goes wrong after the database
// opens is reported in words, with exit status 1, and undone; no panic.
func TestStartupErrorsExitWithAMessage(t *testing.T) {
	requireTools(t, "ffmpeg")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"short stream key", []string{"--stream-key", "abcde"}, "the stream key is 5 characters long"},
		{"HTTP port in use", []string{"--http", busy.Addr().String()}, "listen for HTTP on " + busy.Addr().String()},
		{"RTMP port in use", []string{"--rtmp", busy.Addr().String()}, "listen for RTMP on " + busy.Addr().String()},
		{"over-long password", []string{"--admin-password", strings.Repeat("p", 1025)}, "the admin password is 1025 bytes long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--data", t.TempDir(), "--http", "127.0.0.1:0", "--rtmp", "127.0.0.1:0"}, tc.args...)
			cmd := exec.Command(os.Args[0], args...)
			cmd.Env = append(os.Environ(), "STARLING_TEST_RUN_MAIN=1")
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("exit: %v, want status 1", err)
			}
			if !strings.Contains(string(out), tc.says) || strings.Contains(string(out), "panic") {
				t.Errorf("output does not say %q, or panics:\n%s", tc.says, out)
			}
		})
	}
}

// TestSecretsFromFilesOrEnvironment: secrets can stay off the command
// line, which every local user can read.
func TestSecretsFromFilesOrEnvironment(t *testing.T) {
	dir := t.TempDir()
	keyFile, passFile := dir+"/key", dir+"/password"
	os.WriteFile(keyFile, []byte("key-from-a-file-123\n"), 0o600)
	os.WriteFile(passFile, []byte("password-from-a-file\n"), 0o600)
	c, err := parseConfig([]string{"--stream-key-file", keyFile, "--admin-password-file", passFile}, func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil || c.StreamKey != "key-from-a-file-123" || c.AdminPassword != "password-from-a-file" || len(c.SecretFlags) != 0 {
		t.Errorf("secrets from files: %+v %v", c, err)
	}
	env := map[string]string{"STARLING_STREAM_KEY": "key-from-the-env-1"}
	c, err = parseConfig(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, io.Discard)
	if err != nil || c.StreamKey != "key-from-the-env-1" || len(c.SecretFlags) != 0 {
		t.Errorf("the stream key from the environment: %+v %v", c, err)
	}
	c, err = parseConfig([]string{"--stream-key", "on-the-command-line"}, func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil || len(c.SecretFlags) != 1 || c.SecretFlags[0] != "stream-key" {
		t.Errorf("a secret flag is not noted for a warning: %+v %v", c.SecretFlags, err)
	}
	if _, err := parseConfig([]string{"--stream-key", "x", "--stream-key-file", keyFile}, func(string) (string, bool) { return "", false }, io.Discard); err == nil {
		t.Error("both --stream-key and --stream-key-file were accepted")
	}
}
