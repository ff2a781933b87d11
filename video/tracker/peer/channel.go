package peer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/pion/webrtc/v4"
)

// The command protocol on one data channel, as p2p-media-loader-core
// 2.3.1 runs it: src/p2p/peer.ts (receiving rules), src/p2p/peer-protocol.ts
// (framing, chunked upload with backpressure) and src/p2p/loader.ts
// (serving requests from storage).

var errUploadStopped = errors.New("upload stopped")

// onMessage handles one data channel message (PeerProtocol.onDataReceived):
// a framed command part, or else raw bytes of the segment being received.
// pion calls it from the channel's read loop, one message at a time.
func (c *conn) onMessage(msg webrtc.DataChannelMessage) {
	if !isCommandChunk(msg.Data) {
		c.onChunk(msg.Data)
		return
	}
	body, complete, err := c.joiner.add(msg.Data)
	if err != nil {
		c.log().Debug("command part dropped", "error", err)
	}
	if !complete {
		return
	}
	cmd, err := decodeCommand(body)
	if err != nil {
		c.log().Debug("invalid command ignored", "error", err)
		return
	}
	switch cmd.Type {
	case cmdSegmentsAnnouncement:
		c.p.mu.Lock()
		// Each announcement replaces the last. Its "p" list (segments the
		// remote is loading over HTTP) only steers the JS scheduler.
		c.loaded = setOf(cmd.Loaded)
		c.p.mu.Unlock()
	case cmdSegmentRequest:
		c.serve(cmd)
	case cmdSegmentData:
		c.onSegmentData(cmd)
	case cmdSegmentDataSendingCompleted:
		c.onSendingCompleted(cmd)
	case cmdSegmentAbsent:
		c.onSegmentAbsent(cmd)
	case cmdCancelSegmentRequest:
		c.onCancel(cmd)
	}
}

func setOf(ids []int64) map[int64]struct{} {
	m := make(map[int64]struct{}, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	return m
}

// request fetches one segment over c (Peer.downloadSegment).
func (c *conn) request(ctx context.Context, id int64) ([]byte, error) {
	select {
	case c.slot <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, ErrConnClosed
	}
	defer func() { <-c.slot }()

	// JS: requestId = Math.floor(Math.random() * 1000).
	d := &download{segmentID: id, requestID: int64(rand.IntN(1000)), result: make(chan error, 1)}
	p := c.p
	p.mu.Lock()
	if c.state == connClosed {
		p.mu.Unlock()
		return nil, ErrConnClosed
	}
	c.download = d
	p.mu.Unlock()
	c.sendCommand(command{Type: cmdSegmentRequest, SegmentID: id, RequestID: d.requestID})

	select {
	case err := <-d.result:
		if err != nil {
			return nil, fmt.Errorf("segment %d: %w", id, err)
		}
		return d.buf, nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	mine := c.download == d
	if mine {
		c.download = nil
	}
	p.mu.Unlock()
	if !mine { // the result was decided just now
		if err := <-d.result; err == nil {
			return d.buf, nil
		}
		return nil, ctx.Err()
	}
	// As the JS abort does: tell the remote peer to stop sending.
	c.sendCommand(command{Type: cmdCancelSegmentRequest, SegmentID: id, RequestID: d.requestID})
	return nil, ctx.Err()
}

// finishDownload ends d with err, if d is still the download in flight.
// Exactly one caller takes d out of c.download, and it alone sends the
// result.
func (c *conn) finishDownload(d *download, err error) {
	c.p.mu.Lock()
	mine := c.download == d
	if mine {
		c.download = nil
	}
	c.p.mu.Unlock()
	if mine {
		d.result <- err
	}
}

// protocolError fails d and closes c, as peer.ts destroys a peer that
// sends the wrong bytes.
func (c *conn) protocolError(d *download, format string, args ...any) {
	err := fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
	c.finishDownload(d, err)
	c.close(err)
}

// onSegmentData: the remote peer starts sending the segment we asked for.
func (c *conn) onSegmentData(cmd command) {
	c.p.mu.Lock()
	d := c.download
	if d == nil || d.gotData || d.segmentID != cmd.SegmentID || d.requestID != cmd.RequestID {
		c.p.mu.Unlock()
		return // JS ignores it too
	}
	if cmd.Size < 0 || cmd.Size > maxSegmentSize {
		c.p.mu.Unlock()
		c.protocolError(d, "SegmentData announces %d bytes", cmd.Size)
		return
	}
	d.gotData = true
	d.size = cmd.Size
	d.buf = make([]byte, 0, min(cmd.Size, 16<<20))
	c.p.mu.Unlock()
}

// onChunk takes raw segment bytes (Peer.onSegmentChunkReceived): ignored
// unless SegmentData came first; more bytes than announced is a protocol
// error.
func (c *conn) onChunk(b []byte) {
	c.p.mu.Lock()
	d := c.download
	if d == nil || !d.gotData {
		c.p.mu.Unlock()
		return
	}
	if int64(len(d.buf))+int64(len(b)) > d.size {
		c.p.mu.Unlock()
		c.protocolError(d, "more than the %d bytes announced", d.size)
		return
	}
	d.buf = append(d.buf, b...)
	c.p.mu.Unlock()
}

// onSendingCompleted: the remote peer says it sent the whole segment.
func (c *conn) onSendingCompleted(cmd command) {
	c.p.mu.Lock()
	d := c.download
	if d == nil || !d.gotData {
		c.p.mu.Unlock()
		return
	}
	got := int64(len(d.buf))
	c.p.mu.Unlock()
	switch {
	case d.segmentID != cmd.SegmentID || d.requestID != cmd.RequestID:
		c.protocolError(d, "SegmentDataSendingCompleted for segment %d request %d, want %d request %d",
			cmd.SegmentID, cmd.RequestID, d.segmentID, d.requestID)
	case got != d.size:
		c.protocolError(d, "got %d bytes, %d announced", got, d.size)
	default:
		c.finishDownload(d, nil)
	}
}

// onSegmentAbsent: the remote peer does not have what we asked for; it
// no longer counts as having it.
func (c *conn) onSegmentAbsent(cmd command) {
	c.p.mu.Lock()
	d := c.download
	if d == nil || d.segmentID != cmd.SegmentID || d.requestID != cmd.RequestID {
		c.p.mu.Unlock()
		return
	}
	delete(c.loaded, cmd.SegmentID)
	c.p.mu.Unlock()
	c.finishDownload(d, ErrSegmentAbsent)
}

// onCancel stops the upload of that request id (the JS compares only r).
func (c *conn) onCancel(cmd command) {
	c.p.mu.Lock()
	u := c.upload
	if u == nil || u.requestID != cmd.RequestID {
		c.p.mu.Unlock()
		return
	}
	c.upload = nil
	c.p.mu.Unlock()
	close(u.stop)
}

// serve answers a SegmentRequest from our store (loader.ts
// onSegmentRequested). A new request stops the upload in progress
// (peer.ts), whose goroutine ends before the new one sends anything.
func (c *conn) serve(cmd command) {
	p := c.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.state == connClosed {
		return
	}
	prev := c.upload
	if prev != nil {
		close(prev.stop)
	}
	data, ok := p.segments[cmd.SegmentID]
	u := &upload{
		segmentID: cmd.SegmentID,
		requestID: cmd.RequestID,
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	c.upload = u
	if !p.goLocked(func() { c.runUpload(u, prev, data, ok, cmd.ByteFrom) }) {
		c.upload = nil
	}
}

// runUpload sends SegmentData, the segment in chunks of at most
// maxMessageSize, then SegmentDataSendingCompleted
// (Peer.uploadSegmentData). Like simple-peer it waits for
// bufferedamountlow whenever more than maxBufferedAmount is queued.
func (c *conn) runUpload(u *upload, prev *upload, data []byte, ok bool, from int64) {
	defer close(u.done)
	defer func() {
		c.p.mu.Lock()
		if c.upload == u {
			c.upload = nil
		}
		c.p.mu.Unlock()
	}()
	if prev != nil {
		select {
		case <-prev.done:
		case <-c.done:
			return
		}
	}
	if !ok {
		// JS sends nothing at all for a segment that is not in its
		// playlist, and SegmentAbsent for one not in storage.
		c.sendCommand(command{Type: cmdSegmentAbsent, SegmentID: u.segmentID, RequestID: u.requestID})
		return
	}
	data = sliceFrom(data, from)
	c.sendCommand(command{Type: cmdSegmentData, SegmentID: u.segmentID, RequestID: u.requestID, Size: int64(len(data))})
	for off := 0; off < len(data); {
		select {
		case <-u.stop:
			return
		case <-c.done:
			return
		default:
		}
		end := min(off+maxMessageSize, len(data))
		if err := c.sendChunk(data[off:end]); err != nil {
			c.log().Debug("upload failed", "segment", u.segmentID, "error", err)
			return
		}
		c.p.uploaded.Add(int64(end - off))
		off = end
		if err := c.waitDrain(u); err != nil {
			return
		}
	}
	c.sendCommand(command{Type: cmdSegmentDataSendingCompleted, SegmentID: u.segmentID, RequestID: u.requestID})
}

// sliceFrom is data.slice(from) of an ArrayBuffer: a negative start counts
// from the end, and a start past the end gives nothing.
func sliceFrom(data []byte, from int64) []byte {
	n := int64(len(data))
	if from < 0 {
		from = max(n+from, 0)
	}
	return data[min(from, n):]
}

// sendChunk sends raw segment bytes. The receiver takes any message that
// starts with cstr/dstr and ends with cend/dend for a command part
// (isCommandChunk), which raw bytes may happen to do; such a chunk goes
// out as two messages that cannot.
func (c *conn) sendChunk(b []byte) error {
	c.p.mu.Lock()
	dc := c.dc
	c.p.mu.Unlock()
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if isCommandChunk(b) {
		if err := dc.Send(b[:1]); err != nil {
			return err
		}
		b = b[1:]
	}
	return dc.Send(b)
}

// waitDrain waits until the channel has no more than maxBufferedAmount
// queued.
func (c *conn) waitDrain(u *upload) error {
	c.p.mu.Lock()
	dc := c.dc
	c.p.mu.Unlock()
	for dc.BufferedAmount() > maxBufferedAmount {
		select {
		case <-c.lowCh:
		case <-u.stop:
			return errUploadStopped
		case <-c.done:
			return ErrConnClosed
		}
	}
	return nil
}
