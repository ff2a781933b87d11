package main

import (
	"fmt"
	"os"

	"github.com/starling-live/starling/build/benchkit"
)

// meter reads how busy the machine was over a part of the run, and how
// much of that was this tool, its versitygw and its children, so that a
// run on a shared machine says so.
type meter struct {
	gw                 *gateway
	busy, total, ours0 float64
}

func (g *gateway) pid() int {
	if g == nil {
		return 0
	}
	return g.cmd.Process.Pid
}

func newMeter(gw *gateway) *meter {
	m := &meter{gw: gw}
	m.busy, m.total = benchkit.MachineCPU()
	m.ours0 = m.ours()
	return m
}

func (m *meter) ours() float64 {
	self := os.Getpid()
	s := benchkit.CPUSeconds(self) + benchkit.ReapedChildrenCPUSeconds(self)
	if pid := m.gw.pid(); pid != 0 {
		s += benchkit.CPUSeconds(pid)
	}
	return s
}

// String is the machine's load since newMeter, in cores.
func (m *meter) String() string {
	busy, total := benchkit.MachineCPU()
	ours := m.ours() - m.ours0
	secs := (total - m.total) / float64(cpus())
	if secs <= 0 {
		return "machine load unknown"
	}
	return fmt.Sprintf("machine busy %.2f of %d cores over %.0f s: this tool, versitygw and children %.2f, other processes %.2f",
		(busy-m.busy)/secs, cpus(), secs, ours/secs, (busy-m.busy-ours)/secs)
}
