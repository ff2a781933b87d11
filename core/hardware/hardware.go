// Package hardware samples the machine's CPU, memory and disk use for the
// admin (Owncast's GET /api/admin/hardwarestats), from /proc and statfs.
package hardware

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Sample is one reading, in percent of the whole.
type Sample struct {
	Time  time.Time `json:"time"`
	Value float64   `json:"value"`
}

// Stats are the readings of the last Window, oldest first.
type Stats struct {
	CPU    []Sample `json:"cpu"`
	Memory []Sample `json:"memory"`
	Disk   []Sample `json:"disk"`
}

// Sampling: a reading every Interval, kept for Window.
const (
	Interval = 10 * time.Second
	Window   = 30 * time.Minute
)

// Monitor samples until closed.
type Monitor struct {
	// dir is the directory whose file system counts as the disk.
	dir    string
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards stats.
	mu    sync.Mutex
	stats Stats

	// The sampling goroutine alone touches these.
	lastBusy, lastTotal uint64
}

// New returns a Monitor of the file system holding dir.
func New(dir string) *Monitor { return &Monitor{dir: dir} }

// Start samples at once, then every Interval.
func (m *Monitor) Start(ctx context.Context) {
	ctx, m.cancel = context.WithCancel(ctx)
	m.sample(time.Now())
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				m.sample(now)
			}
		}
	}()
}

// Close stops sampling.
func (m *Monitor) Close() error {
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	return nil
}

// Stats returns a copy of the readings.
func (m *Monitor) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Stats{CPU: append([]Sample{}, m.stats.CPU...), Memory: append([]Sample{}, m.stats.Memory...),
		Disk: append([]Sample{}, m.stats.Disk...)}
}

func (m *Monitor) sample(now time.Time) {
	cpu, cpuOK := m.cpu()
	mem, memOK := memory()
	disk, diskOK := diskUse(m.dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	add := func(s *[]Sample, v float64, ok bool) {
		if !ok {
			return
		}
		*s = append(*s, Sample{Time: now, Value: v})
		for len(*s) > 0 && now.Sub((*s)[0].Time) > Window {
			*s = (*s)[1:]
		}
	}
	add(&m.stats.CPU, cpu, cpuOK)
	add(&m.stats.Memory, mem, memOK)
	add(&m.stats.Disk, disk, diskOK)
}

// cpu is the share of the machine's CPU time spent busy since the last
// sample (none on the first).
func (m *Monitor) cpu() (float64, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, false
	}
	var total, idle uint64
	for i, s := range f[1:] {
		n, _ := strconv.ParseUint(s, 10, 64)
		if i >= 8 { // guest time is in user already
			break
		}
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	busy := total - idle
	defer func() { m.lastBusy, m.lastTotal = busy, total }()
	if m.lastTotal == 0 || total <= m.lastTotal {
		return 0, false
	}
	return 100 * float64(busy-m.lastBusy) / float64(total-m.lastTotal), true
}

// memory is the share of memory in use (not available).
func memory() (float64, bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var total, avail float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		n, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		switch k {
		case "MemTotal":
			total = n
		case "MemAvailable":
			avail = n
		}
	}
	if total == 0 {
		return 0, false
	}
	return 100 * (total - avail) / total, true
}

// diskUse is the share of the file system holding dir in use.
func diskUse(dir string) (float64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Blocks == 0 {
		return 0, false
	}
	return 100 * float64(st.Blocks-st.Bavail) / float64(st.Blocks), true
}
