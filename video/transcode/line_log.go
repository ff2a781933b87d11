package transcode

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
)

// lineLog is ffmpeg's stderr: each line goes to the logger, and the last
// few are kept to explain an exit.
type lineLog struct {
	log *slog.Logger
	// redact hides secrets in a line (ffmpeg prints the URLs it fails on).
	redact func(string) string

	// mu guards the fields below; exec's copying goroutine writes while
	// the supervisor may read Last.
	mu      sync.Mutex
	partial []byte
	last    []string
}

const keptLines = 3

func newLineLog(log *slog.Logger, redact func(string) string) *lineLog {
	return &lineLog{log: log, redact: redact}
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexAny(l.partial, "\r\n")
		if i < 0 {
			break
		}
		l.line(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	// A runaway line without a newline must not grow without bound.
	if len(l.partial) > 4096 {
		l.line(string(l.partial))
		l.partial = l.partial[:0]
	}
	return len(p), nil
}

func (l *lineLog) line(s string) {
	s = strings.TrimSpace(l.redact(s))
	if s == "" {
		return
	}
	l.log.Warn(s)
	l.last = append(l.last, s)
	if len(l.last) > keptLines {
		l.last = l.last[1:]
	}
}

// Last returns the last lines ffmpeg wrote, joined.
func (l *lineLog) Last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.last, " | ")
}
