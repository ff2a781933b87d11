package peer

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

// newAPI is the pion API every peer connection of a Peer comes from.
func newAPI(log *slog.Logger) *webrtc.API {
	var se webrtc.SettingEngine
	se.LoggerFactory = pionLoggerFactory{log: log}
	// Peers on one host (tests, load tools) reach each other over
	// loopback, which pion leaves out by default. Browsers offer no
	// loopback candidates of their own but reach ours.
	se.SetIncludeLoopbackCandidate(true)
	// mDNS stays in query mode (pion's default), which resolves the
	// "<uuid>.local" host candidates Chromium writes in place of its IP
	// addresses.
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

// pionLoggerFactory sends pion's logs to slog: its errors as warnings (a
// peer going away makes pion log errors), the rest as debug; trace is
// dropped.
type pionLoggerFactory struct{ log *slog.Logger }

func (f pionLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) at(level slog.Level, msg string) {
	l.log.Log(context.Background(), level, msg)
}

func (l pionLogger) atf(level slog.Level, format string, args ...any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (pionLogger) Trace(string)          {}
func (pionLogger) Tracef(string, ...any) {}

func (l pionLogger) Debug(msg string)                  { l.at(slog.LevelDebug, msg) }
func (l pionLogger) Debugf(format string, args ...any) { l.atf(slog.LevelDebug, format, args...) }
func (l pionLogger) Info(msg string)                   { l.at(slog.LevelDebug, msg) }
func (l pionLogger) Infof(format string, args ...any)  { l.atf(slog.LevelDebug, format, args...) }
func (l pionLogger) Warn(msg string)                   { l.at(slog.LevelDebug, msg) }
func (l pionLogger) Warnf(format string, args ...any)  { l.atf(slog.LevelDebug, format, args...) }
func (l pionLogger) Error(msg string)                  { l.at(slog.LevelWarn, msg) }
func (l pionLogger) Errorf(format string, args ...any) { l.atf(slog.LevelWarn, format, args...) }
