package hls

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// putAs PUTs a segment to the packager from a shell running as uid, with
// the real token (as a local user reads it from ffmpeg's command line in
// /proc), and returns what came back.
func putAs(t *testing.T, uid uint32, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	// bash's /dev/tcp: no program of ours needs to be readable by the
	// other user.
	script := `exec 3<>/dev/tcp/` + u.Hostname() + `/` + u.Port() + ` || exit 3
printf 'PUT %s0/seg-0.ts HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\nevil' "$1" >&3
timeout 10 cat <&3`
	cmd := exec.Command("/bin/bash", "-c", script, "bash", u.Path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	cmd.Dir = "/"
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// TestOtherUsersCannotWrite: a process of another local user that knows
// the packager's address and token still cannot write to it; the same
// request from this user's process is accepted.
func TestOtherUsersCannotWrite(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("STARLING_REQUIRE_TOOLS") != "" {
			t.Fatal("this test starts a process as another user and needs root (the test command runs as root)")
		}
		t.Skip("needs root to start a process as another user")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	p, dir := newPackager(t)
	b := p.Begin(context.Background(), Options{PlaylistSegments: 3})
	base := b.NextRunURL()

	if out := putAs(t, uint32(uid), base); strings.Contains(out, "HTTP/1.1") {
		t.Errorf("the packager answered a process of user nobody:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "0")); !os.IsNotExist(err) {
		t.Errorf("a write from user nobody reached the storage: %v", err)
	}
	// The same request as this user is the real ffmpeg's: accepted.
	if out := putAs(t, uint32(os.Geteuid()), base); !strings.Contains(out, "201 Created") {
		t.Errorf("the same request from this user was not accepted:\n%s", out)
	}
}
