// Package benchkit is what the benchmarks and load tools under build/
// share: a Starling process built from this checkout and started on
// loopback, and readings of a process's CPU time and memory.
package benchkit

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Secrets of the servers benchmarks start.
const (
	StreamKey     = "bench-stream-key"
	AdminPassword = "bench-admin-password"
)

// Server is a Starling process on loopback ports.
type Server struct {
	Web  string // http://127.0.0.1:PORT
	RTMP string // rtmp://127.0.0.1:PORT/live
	cmd  *exec.Cmd
	dir  string
}

// Build compiles Starling from the checkout in the working directory into
// a new temporary directory named after prefix, which also holds the data
// of the servers started from it. The caller removes dir when done.
func Build(prefix string) (dir, bin string, err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", "", err
	}
	bin = filepath.Join(dir, "starling")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("build: %v\n%s", err, out)
	}
	return dir, bin, nil
}

var addrLine = regexp.MustCompile(`(Watch|Publish to):\s+(\S+)`)

// Start runs bin with a fresh data directory under dir and the given extra
// flags, and waits until it prints its addresses.
func Start(bin, dir string, flags ...string) (*Server, error) {
	data, err := os.MkdirTemp(dir, "data-")
	if err != nil {
		return nil, err
	}
	args := append([]string{"--http", "127.0.0.1:0", "--rtmp", "127.0.0.1:0", "--data", data, "--log-level", "warn"}, flags...)
	s := &Server{cmd: exec.Command(bin, args...), dir: data}
	// Secrets go in the environment, not on the command line.
	s.cmd.Env = append(os.Environ(), "STARLING_STREAM_KEY="+StreamKey, "STARLING_ADMIN_PASSWORD="+AdminPassword)
	stdout, _ := s.cmd.StdoutPipe()
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && (s.Web == "" || s.RTMP == "") {
		if m := addrLine.FindStringSubmatch(sc.Text()); m != nil {
			if m[1] == "Watch" {
				s.Web = strings.TrimSuffix(m[2], "/")
			} else {
				s.RTMP = m[2]
			}
		}
	}
	go io.Copy(io.Discard, stdout)
	if s.Web == "" || s.RTMP == "" {
		s.Stop()
		return nil, fmt.Errorf("the server printed no addresses")
	}
	return s, nil
}

// PID is the server's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Stop sends SIGTERM and waits for the server to exit.
func (s *Server) Stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
	os.RemoveAll(s.dir)
}

// Get fetches a path, as the admin if asAdmin.
func (s *Server) Get(path string, asAdmin bool) ([]byte, bool) {
	req, _ := http.NewRequest(http.MethodGet, s.Web+path, nil)
	if asAdmin {
		req.SetBasicAuth("admin", AdminPassword)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, err == nil && resp.StatusCode == http.StatusOK
}

// Admin POSTs a JSON body to an admin API path.
func (s *Server) Admin(path, body string) error {
	req, _ := http.NewRequest(http.MethodPost, s.Web+path, strings.NewReader(body))
	req.SetBasicAuth("admin", AdminPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %d %s", path, resp.StatusCode, b)
	}
	return nil
}

// CPUSeconds is the user and system CPU time of the process itself (its
// children, such as ffmpeg, are not counted).
func CPUSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
}

// RSS is the process's resident memory in bytes.
func RSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// Median of vs (0 if empty).
func Median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// MB converts bytes to mebibytes.
func MB(b int64) float64 { return float64(b) / (1 << 20) }

// MachineCPU is how long the machine's CPUs have been busy, and how long
// they have run in all, in CPU-seconds since boot (from /proc/stat). The
// difference of two readings shows how much of the machine other
// processes took during a measurement: this one is shared and noisy.
func MachineCPU() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	// user nice system idle iowait irq softirq steal; guest time is
	// already in user.
	var v [8]float64
	for i := range v {
		v[i], _ = strconv.ParseFloat(f[i+1], 64)
		total += v[i]
	}
	busy = total - v[3] - v[4]
	return busy / 100, total / 100 // USER_HZ is 100 on Linux
}

// TaskCPU is the CPU time of every thread of the process, summed from
// /proc/PID/task/*/schedstat, in nanoseconds. Unlike CPUSeconds it is not
// rounded to the 10 ms clock tick, so a load of a fraction of a second can
// be measured; a thread that has exited is no longer counted (Go's seldom
// do).
func TaskCPU(pid int) time.Duration {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			sum += time.Duration(ns)
		}
	}
	return sum
}

// ReapedChildrenCPUSeconds is the user and system CPU time of the
// process's children that have exited and been waited for (cutime and
// cstime in /proc/PID/stat): short-lived helpers, such as an ffmpeg that
// runs for a moment, whose own readings are gone by the time anyone looks.
func ReapedChildrenCPUSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	cutime, _ := strconv.ParseFloat(f[13], 64)
	cstime, _ := strconv.ParseFloat(f[14], 64)
	return (cutime + cstime) / 100
}

// Children are the process ids whose parent is pid, with their command
// lines (arguments joined by spaces).
func Children(pid int) map[int]string {
	out := map[int]string{}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		child, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		if ppid, _ := strconv.Atoi(f[1]); ppid != pid {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", child))
		out[child] = strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
	}
	return out
}

// Publish starts ffmpeg sending a synthetic stream of the given size
// (such as 1280x720) at 30 fps to url, as OBS does with the README's
// settings: x264 veryfast with OBS's default tuning (none: B-frames and
// look-ahead, so frames leave the encoder about 13 frames late, where
// -tune zerolatency would send each at once), 3 Mbit/s, a key frame every
// second, AAC 128k.
func Publish(url, size string) (*exec.Cmd, error) {
	pub := exec.Command("nice", "-n", "15", "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
		"-f", "lavfi", "-i", "testsrc2=size="+size+":rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-b:v", "3000k", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "128k", "-f", "flv", url)
	pub.Stderr = os.Stderr
	return pub, pub.Start()
}
