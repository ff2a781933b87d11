//go:build !linux

package hls

import (
	"log/slog"
	"net"
)

// newOwnerListener returns ln: only Linux says who owns a socket, so
// elsewhere the token alone keeps other local users out.
func newOwnerListener(ln net.Listener, log *slog.Logger) net.Listener {
	log.Warn("cannot check who connects to the packager on this system; other local users who read ffmpeg's command line could write to the stream")
	return ln
}
