package benchkit

import (
	"fmt"
	"syscall"
)

// RaiseFileLimit raises this process's soft limit on open files to the
// hard limit and checks that it allows at least need descriptors, so that
// a load tool fails at the start with a clear message rather than halfway
// with "too many open files". Processes it starts afterwards inherit the
// raised limit.
func RaiseFileLimit(need uint64) (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, fmt.Errorf("reading the open-file limit: %w", err)
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, fmt.Errorf("raising the open-file limit to %d: %w", l.Max, err)
		}
	}
	if l.Cur < need {
		return l.Cur, fmt.Errorf("the open-file limit is %d, below the %d needed: raise the hard limit (ulimit -Hn, or LimitNOFILE in systemd)", l.Cur, need)
	}
	return l.Cur, nil
}
