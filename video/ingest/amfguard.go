package ingest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	rtmp "github.com/yutopp/go-rtmp"
)

// amfGuard reads a connection's bytes as go-rtmp v0.0.7 will, ahead of
// it, and refuses the AMF0 commands and data messages that go-amf0 v0.1.0
// cannot decode without taking the process down, before go-rtmp has them:
//   - a strict array declaring more elements than its message has bytes
//     left: go-amf0 allocates them all first (2^31 elements are 32 GiB, a
//     fatal out-of-memory error, not a panic go-rtmp could recover);
//   - values nested deeper than maxAMFDepth: each level is a recursion,
//     and a message of nested objects overflows the stack, fatally too.
//
// The messages it reads are capped at maxAMFMessage (an encoder's are a
// few hundred bytes). It frames the chunk stream exactly as go-rtmp does
// (chunk_streamer.go): basic and message headers, an extended timestamp
// only on chunks of type 0 to 2, the peer's chunk size from its Set Chunk
// Size messages, a message's type and length as the last header of type
// 0 or 1 set them.
type amfGuard struct {
	// handshake is what is left of the client's handshake, C0 to C2.
	handshake int
	// header holds the chunk header being read; body counts the payload
	// bytes of the current chunk still to come.
	header    []byte
	body      int
	cur       *guardedStream
	chunkSize uint32
	streams   map[int]*guardedStream
	// maxStreams is go-rtmp's limit on chunk streams: beyond it, it closes
	// the connection, and the guard keeps no more state than it does.
	maxStreams int
}

// guardedStream is one chunk stream's message in progress.
type guardedStream struct {
	length uint32
	typeID byte
	got    uint32
	// msg is the message so far, kept for the types the guard reads.
	msg  []byte
	kept bool
}

const (
	handshakeBytes = 1 + 1536 + 1536
	// maxAMFMessage caps a command or data message.
	maxAMFMessage = 64 << 10
	// maxAMFDepth caps the nesting of AMF0 values; metadata has two levels.
	maxAMFDepth = 32
)

// Message types the guard reads (RTMP 5.4, 7.1).
const (
	typeSetChunkSize = 1
	typeDataAMF0     = 18
	typeCommandAMF0  = 20
)

func newAMFGuard(maxStreams int) *amfGuard {
	return &amfGuard{handshake: handshakeBytes, chunkSize: rtmp.DefaultChunkSize,
		streams: map[int]*guardedStream{}, maxStreams: maxStreams}
}

// guardedConn is a connection whose bytes reach go-rtmp through the guard.
type guardedConn struct {
	*deadlineConn
	guard *amfGuard
	log   *slog.Logger
}

func (c *guardedConn) Read(p []byte) (int, error) {
	n, err := c.deadlineConn.Read(p)
	if gerr := c.guard.feed(p[:n]); gerr != nil {
		c.log.Warn("closing the RTMP connection: it sent what would crash the server's decoder (a broken or hostile encoder)", "err", gerr)
		return 0, gerr
	}
	return n, err
}

// errAMF is the class of the guard's refusals.
var errAMF = errors.New("RTMP message refused")

// feed takes the next bytes the client sent, returning an error for the
// first message go-rtmp must not see.
func (g *amfGuard) feed(p []byte) error {
	if g.handshake > 0 {
		n := min(g.handshake, len(p))
		g.handshake -= n
		p = p[n:]
	}
	for len(p) > 0 {
		if g.body > 0 {
			n := min(g.body, len(p))
			if err := g.payload(p[:n]); err != nil {
				return err
			}
			g.body -= n
			p = p[n:]
			continue
		}
		want := chunkHeaderLen(g.header)
		n := min(want-len(g.header), len(p))
		g.header = append(g.header, p[:n]...)
		p = p[n:]
		if len(g.header) == chunkHeaderLen(g.header) {
			if err := g.chunk(); err != nil {
				return err
			}
			g.header = g.header[:0]
		}
	}
	return nil
}

// chunkHeaderLen is the length of the chunk header that starts with h, as
// far as h tells: more bytes may tell a longer one.
func chunkHeaderLen(h []byte) int {
	if len(h) == 0 {
		return 1
	}
	basic := 1
	switch h[0] & 0x3f {
	case 0:
		basic = 2
	case 1:
		basic = 3
	}
	fmtTy := h[0] >> 6
	n := basic + [...]int{11, 7, 3, 0}[fmtTy]
	if fmtTy == 3 || len(h) < basic+3 {
		return n
	}
	if h[basic] == 0xff && h[basic+1] == 0xff && h[basic+2] == 0xff {
		n += 4 // extended timestamp
	}
	return n
}

// chunk takes the complete header in g.header.
func (g *amfGuard) chunk() error {
	h := g.header
	csid, basic := int(h[0]&0x3f), 1
	switch csid {
	case 0:
		csid, basic = int(h[1])+64, 2
	case 1:
		csid, basic = int(h[2])*256+int(h[1])+64, 3
	}
	s := g.streams[csid]
	if s == nil {
		if len(g.streams) >= g.maxStreams {
			return fmt.Errorf("%w: more than %d chunk streams", errAMF, g.maxStreams)
		}
		s = &guardedStream{}
		g.streams[csid] = s
	}
	if s.got == s.length {
		s.got, s.msg = 0, s.msg[:0]
	}
	if fmtTy := h[0] >> 6; fmtTy <= 1 {
		mh := h[basic:]
		s.length = uint32(mh[3])<<16 | uint32(mh[4])<<8 | uint32(mh[5])
		s.typeID = mh[6]
	}
	if s.length <= s.got {
		// go-rtmp panics here, and recovers by closing the connection.
		return fmt.Errorf("%w: a chunk of a message already complete", errAMF)
	}
	kept := s.typeID == typeSetChunkSize || s.typeID == typeDataAMF0 || s.typeID == typeCommandAMF0
	switch {
	case kept && s.got > 0 && !s.kept:
		return fmt.Errorf("%w: a message whose type changed to %d part way", errAMF, s.typeID)
	case kept && s.length > maxAMFMessage:
		return fmt.Errorf("%w: a command, data or control message of %d bytes, more than %d", errAMF, s.length, maxAMFMessage)
	}
	s.kept = kept
	g.cur = s
	g.body = int(min(s.length-s.got, g.chunkSize))
	return nil
}

// payload takes bytes of the current chunk's payload.
func (g *amfGuard) payload(p []byte) error {
	s := g.cur
	if s.kept {
		s.msg = append(s.msg, p...)
	}
	s.got += uint32(len(p))
	if s.got < s.length || !s.kept {
		return nil
	}
	switch s.typeID {
	case typeSetChunkSize:
		// As go-rtmp takes it; one it refuses closes the connection.
		if len(s.msg) >= 4 {
			if v := binary.BigEndian.Uint32(s.msg) & 0x7fffffff; v > 0 {
				g.chunkSize = min(v, rtmp.MaxChunkSize)
			}
		}
		return nil
	default:
		if err := checkAMF0(s.msg); err != nil {
			return fmt.Errorf("%w: %w", errAMF, err)
		}
		return nil
	}
}

// AMF0 markers (AMF0 specification 2.1) that go-amf0 v0.1.0 decodes; it
// stops at any other.
const (
	amfNumber      = 0x00
	amfBoolean     = 0x01
	amfString      = 0x02
	amfObject      = 0x03
	amfNull        = 0x05
	amfECMAArray   = 0x08
	amfObjectEnd   = 0x09
	amfStrictArray = 0x0a
	amfDate        = 0x0b
)

// errAMFEnd is where go-amf0 stops decoding, and so the walk.
var errAMFEnd = errors.New("end of what go-amf0 decodes")

// checkAMF0 walks the AMF0 values of msg and reports the first that
// go-amf0 could not decode safely: a strict array longer than the bytes
// after it, or nesting deeper than maxAMFDepth.
func checkAMF0(msg []byte) error {
	w := amfWalker{b: msg}
	for len(w.b) > 0 {
		if err := w.value(0); err != nil {
			if errors.Is(err, errAMFEnd) {
				return nil
			}
			return err
		}
	}
	return nil
}

type amfWalker struct{ b []byte }

func (w *amfWalker) take(n int) ([]byte, error) {
	if len(w.b) < n {
		return nil, errAMFEnd
	}
	v := w.b[:n]
	w.b = w.b[n:]
	return v, nil
}

func (w *amfWalker) value(depth int) error {
	if depth > maxAMFDepth {
		return fmt.Errorf("AMF0 values nested more than %d deep", maxAMFDepth)
	}
	m, err := w.take(1)
	if err != nil {
		return err
	}
	switch m[0] {
	case amfNumber:
		_, err = w.take(8)
	case amfBoolean:
		_, err = w.take(1)
	case amfString:
		err = w.str()
	case amfNull:
	case amfDate:
		_, err = w.take(10)
	case amfObject:
		err = w.properties(depth)
	case amfECMAArray:
		if _, err = w.take(4); err == nil {
			err = w.properties(depth)
		}
	case amfStrictArray:
		var n []byte
		if n, err = w.take(4); err != nil {
			return err
		}
		count := binary.BigEndian.Uint32(n)
		// Each element takes at least its marker's byte.
		if uint64(count) > uint64(len(w.b)) {
			return fmt.Errorf("an AMF0 strict array of %d elements in %d bytes", count, len(w.b))
		}
		for range count {
			if err = w.value(depth + 1); err != nil {
				return err
			}
		}
	default:
		return errAMFEnd
	}
	return err
}

// str skips a UTF-8 string of up to 65535 bytes, its length first.
func (w *amfWalker) str() error {
	n, err := w.take(2)
	if err == nil {
		_, err = w.take(int(binary.BigEndian.Uint16(n)))
	}
	return err
}

// properties skips an object's properties up to its end marker.
func (w *amfWalker) properties(depth int) error {
	for {
		n, err := w.take(2)
		if err != nil {
			return err
		}
		if binary.BigEndian.Uint16(n) == 0 {
			// go-amf0 wants the end marker; anything else ends its decode.
			end, err := w.take(1)
			if err != nil || end[0] != amfObjectEnd {
				return errAMFEnd
			}
			return nil
		}
		if _, err := w.take(int(binary.BigEndian.Uint16(n))); err != nil {
			return err
		}
		if err := w.value(depth + 1); err != nil {
			return err
		}
	}
}
