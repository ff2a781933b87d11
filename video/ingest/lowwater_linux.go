package ingest

import (
	"errors"
	"net"
	"syscall"
	"unsafe"
)

// errNoSocket: the connection is not a socket of this process (a test's
// pipe); the low-water mark is then left alone.
var errNoSocket = errors.New("not a socket")

// setLowWater asks the kernel to wake the connection's reader only once n
// bytes are queued (SO_RCVLOWAT, socket(7)); a read still returns what is
// there, and the end of the stream wakes it whatever n is.
func setLowWater(c net.Conn, n int) error {
	return control(c, func(fd int) error {
		return syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, n)
	})
}

// queued is how many bytes wait in the connection's receive queue
// (SIOCINQ, tcp(7)).
func queued(c net.Conn) (int, error) {
	var n int
	err := control(c, func(fd int) error {
		var err error
		n, err = ioctlInt(fd, syscall.TIOCINQ) // SIOCINQ, FIONREAD: the same request
		return err
	})
	return n, err
}

func ioctlInt(fd int, req uint) (int, error) {
	var v int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(&v))); e != 0 {
		return 0, e
	}
	return int(v), nil
}

// control runs f on the connection's descriptor, if it has one.
func control(c net.Conn, f func(fd int) error) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return errNoSocket
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
