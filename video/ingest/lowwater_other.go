//go:build !linux

package ingest

import (
	"errors"
	"net"
)

var errNoSocket = errors.New("not a socket")

// setLowWater is Linux's only (see lowwater_linux.go): elsewhere the reader
// is woken for every arrival, as it was.
func setLowWater(net.Conn, int) error { return errNoSocket }

func queued(net.Conn) (int, error) { return 0, errNoSocket }
