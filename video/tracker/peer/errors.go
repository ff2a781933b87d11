package peer

import "errors"

// Errors that callers branch on. Request wraps them with the details.
var (
	// ErrClosed: the Peer was closed.
	ErrClosed = errors.New("peer closed")
	// ErrNotConnected: no data channel is open to that peer id; see Connected.
	ErrNotConnected = errors.New("no open data channel to that peer")
	// ErrSegmentAbsent: the remote peer answered SegmentAbsent.
	ErrSegmentAbsent = errors.New("the remote peer does not have the segment")
	// ErrConnClosed: the connection to the remote peer closed during the request.
	ErrConnClosed = errors.New("connection to the remote peer closed")
	// ErrProtocol: the remote peer broke the command protocol, e.g. sent
	// more or fewer bytes than it announced; the connection is closed, as
	// p2p-media-loader does.
	ErrProtocol = errors.New("remote peer broke the protocol")
)
