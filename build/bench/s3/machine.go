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
	gw                      *gateway
	busy, total, self0, gw0 float64
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
	m.self0, m.gw0 = m.ours()
	return m
}

// ours is the CPU time of this process and the children it has waited
// for, and of versitygw.
func (m *meter) ours() (self, gw float64) {
	pid := os.Getpid()
	self = benchkit.CPUSeconds(pid) + benchkit.ReapedChildrenCPUSeconds(pid)
	if pid := m.gw.pid(); pid != 0 {
		gw = benchkit.CPUSeconds(pid)
	}
	return self, gw
}

// String is the machine's load since newMeter, in cores.
func (m *meter) String() string {
	busy, total := benchkit.MachineCPU()
	self, gw := m.ours()
	self, gw = self-m.self0, gw-m.gw0
	secs := (total - m.total) / float64(cpus())
	if secs <= 0 {
		return "machine load unknown"
	}
	return fmt.Sprintf("machine busy %.2f of %d cores over %.0f s: this tool and its children %.2f, versitygw %.2f, other processes %.2f",
		(busy-m.busy)/secs, cpus(), secs, self/secs, gw/secs, (busy-m.busy-self-gw)/secs)
}
