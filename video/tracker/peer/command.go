package peer

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// The binary command protocol that p2p-media-loader-core 2.3.1 peers speak
// on their data channel. It mirrors, byte for byte:
//   - src/p2p/commands/types.ts: command codes and fields;
//   - src/p2p/commands/commands.ts: which fields each command carries, in
//     which order;
//   - src/p2p/commands/binary-serialization.ts: the typed field values;
//   - src/p2p/commands/binary-command-creator.ts: framing and splitting;
//   - src/p2p/peer-protocol.ts: a message is a command part iff it is framed,
//     any other message is raw segment bytes.
//
// (https://github.com/Novage/p2p-media-loader, packages/p2p-media-loader-core)

// maxMessageSize is webRtcMaxMessageSize of core.ts (64 KiB - 1): the
// largest message a JS peer sends, for command parts and segment chunks.
const maxMessageSize = 64*1024 - 1

// commandType is the first byte of a command body (PeerCommandType).
type commandType byte

const (
	cmdSegmentsAnnouncement        commandType = 0
	cmdSegmentRequest              commandType = 1
	cmdSegmentData                 commandType = 2
	cmdSegmentDataSendingCompleted commandType = 3
	cmdSegmentAbsent               commandType = 4
	cmdCancelSegmentRequest        commandType = 5
)

func (t commandType) String() string {
	switch t {
	case cmdSegmentsAnnouncement:
		return "SegmentsAnnouncement"
	case cmdSegmentRequest:
		return "SegmentRequest"
	case cmdSegmentData:
		return "SegmentData"
	case cmdSegmentDataSendingCompleted:
		return "SegmentDataSendingCompleted"
	case cmdSegmentAbsent:
		return "SegmentAbsent"
	case cmdCancelSegmentRequest:
		return "CancelSegmentRequest"
	}
	return fmt.Sprintf("command(%d)", byte(t))
}

// command is one peer command. The fields carry the one-letter names they
// have on the wire; which ones a command uses is in encode.
type command struct {
	Type      commandType
	SegmentID int64 // i: the segment's externalId (media sequence number for live)
	RequestID int64 // r: random 0-999, chosen by the requester
	Size      int64 // s: bytes that follow a SegmentData
	ByteFrom  int64 // b: SegmentRequest resumes from this byte; 0 = whole segment

	Loaded      []int64 // l: SegmentsAnnouncement, segments in storage
	HTTPLoading []int64 // p: SegmentsAnnouncement, segments being loaded over HTTP
}

// Field value types: the high nibble of a value's first byte
// (binary-serialization.ts SerializedItem).
const (
	itemInt             = 0
	itemSimilarIntArray = 1
	itemString          = 2
)

// Frame markers around every command part (binary-command-creator.ts).
var (
	frameStart    = []byte("cstr") // first part of a command
	frameEnd      = []byte("cend") // last part
	frameDivStart = []byte("dstr") // any later part
	frameDivEnd   = []byte("dend") // any earlier part
)

const framesLen = 8

var errBadCommand = errors.New("malformed peer command")

// isCommandChunk reports whether a data channel message is a command part:
// it starts with cstr or dstr and ends with cend or dend (isCommandChunk).
// Anything else is raw segment data.
func isCommandChunk(m []byte) bool {
	if len(m) < 4 {
		return false
	}
	head, tail := m[:4], m[len(m)-4:]
	return (bytes.Equal(head, frameStart) || bytes.Equal(head, frameDivStart)) &&
		(bytes.Equal(tail, frameEnd) || bytes.Equal(tail, frameDivEnd))
}

// encode serialises c into data channel messages of at most maxChunk bytes
// each, exactly as serializePeerCommand does.
func (c command) encode(maxChunk int) [][]byte {
	b := []byte{byte(c.Type)}
	switch c.Type {
	case cmdSegmentsAnnouncement:
		if len(c.Loaded) > 0 {
			b = append(b, 'l')
			b = appendSimilarIntArray(b, c.Loaded)
		}
		if len(c.HTTPLoading) > 0 {
			b = append(b, 'p')
			b = appendSimilarIntArray(b, c.HTTPLoading)
		}
	case cmdSegmentRequest:
		b = appendIntField(b, 'i', c.SegmentID)
		b = appendIntField(b, 'r', c.RequestID)
		if c.ByteFrom != 0 { // JS: if (command.b)
			b = appendIntField(b, 'b', c.ByteFrom)
		}
	case cmdSegmentData: // the JS order is i, s, r
		b = appendIntField(b, 'i', c.SegmentID)
		b = appendIntField(b, 's', c.Size)
		b = appendIntField(b, 'r', c.RequestID)
	default: // SegmentDataSendingCompleted, SegmentAbsent, CancelSegmentRequest
		b = appendIntField(b, 'i', c.SegmentID)
		b = appendIntField(b, 'r', c.RequestID)
	}
	return frame(b, maxChunk)
}

// frame wraps a command body in cstr...cend, or, when it does not fit in
// maxChunk, splits it into equal parts framed cstr...dend, dstr...dend, ...,
// dstr...cend (BinaryCommandCreator.complete).
func frame(body []byte, maxChunk int) [][]byte {
	if len(body)+framesLen <= maxChunk {
		return [][]byte{framed(body, frameStart, frameEnd)}
	}
	n := ceilDiv(len(body), maxChunk)
	if ceilDiv(len(body), n)+framesLen > maxChunk {
		n++
	}
	size := ceilDiv(len(body), n) // splitBufferToEqualChunks
	out := make([][]byte, 0, n)
	for i := range n {
		lo, hi := min(i*size, len(body)), min((i+1)*size, len(body))
		start, end := frameDivStart, frameDivEnd
		if i == 0 {
			start = frameStart
		}
		if i == n-1 {
			end = frameEnd
		}
		out = append(out, framed(body[lo:hi], start, end))
	}
	return out
}

func framed(body, start, end []byte) []byte {
	m := make([]byte, 0, len(body)+framesLen)
	m = append(m, start...)
	m = append(m, body...)
	return append(m, end...)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func appendIntField(b []byte, name byte, v int64) []byte {
	return appendInt(append(b, name), v)
}

// appendInt writes an Int item: 0x0N, then N big-endian bytes of the
// magnitude, N the fewest bytes that hold the magnitude plus a sign bit; a
// negative number sets the top bit of the first byte (serializeInt). A live
// media sequence number around 1.8e10 takes 5 bytes; N can go to 15, so
// every int64 fits.
func appendInt(b []byte, v int64) []byte {
	mag := uint64(v)
	if v < 0 {
		mag = -mag // two's complement: also right for math.MinInt64
	}
	n := (max(bits.Len64(mag), 1) + 1 + 7) / 8 // getRequiredBytesForInt
	b = append(b, itemInt<<4|byte(n))
	first := len(b)
	for i := n - 1; i >= 0; i-- {
		if i >= 8 {
			b = append(b, 0)
			continue
		}
		b = append(b, byte(mag>>(8*i)))
	}
	if v < 0 {
		b[first] |= 0x80
	}
	return b
}

// maxGroups is the most groups a SimilarIntArray can say it has: the count
// is one byte.
const maxGroups = 255

// appendSimilarIntArray writes a SimilarIntArray item
// (serializeSimilarIntArray): the numbers are grouped by their value with
// the low byte cleared, groups in order of first appearance; each group is
// an Int of (common part | count) followed by the low byte of each member.
//
// The JS encoder writes the group count and each group's size modulo 256,
// so it corrupts a group of 256 members or an array of more than 255
// groups. Here a group is closed at 255 members (a decoder takes repeated
// groups with the same common part), and only the last 255 groups are
// kept: callers pass ids in ascending order, so the newest survive.
// Every other input gives the same bytes as the JS encoder.
func appendSimilarIntArray(b []byte, nums []int64) []byte {
	type group struct {
		common int64
		low    []byte
	}
	var groups []*group
	open := map[int64]*group{} // common part -> group still taking members
	for _, n := range nums {
		common := n &^ 0xff // BigInt `n & ~0xffn` is two's complement too
		g := open[common]
		if g == nil || len(g.low) == 255 {
			g = &group{common: common}
			open[common] = g
			groups = append(groups, g)
		}
		g.low = append(g.low, byte(n))
	}
	if len(groups) > maxGroups {
		groups = groups[len(groups)-maxGroups:]
	}
	b = append(b, itemSimilarIntArray<<4, byte(len(groups)))
	for _, g := range groups {
		b = appendInt(b, g.common|int64(len(g.low)))
		b = append(b, g.low...)
	}
	return b
}

// appendString writes a String item: 0x2L, then the low byte of a 12-bit
// length, then UTF-8. JS writes the UTF-16 length there, which equals the
// byte length only for ASCII; no command of 2.3.1 carries a string.
func appendString(b []byte, s string) ([]byte, error) {
	if len(s) > 0xfff {
		return b, fmt.Errorf("string of %d bytes is longer than the 4095 a command field holds", len(s))
	}
	b = append(b, itemString<<4|byte(len(s)>>8), byte(len(s)))
	return append(b, s...), nil
}

// decodeCommand parses a command body, the frames already removed
// (deserializeCommand). Unknown field names are skipped, as JS keeps but
// never reads them; a field of the wrong type or a truncated value is an
// error, where JS would go on with garbage.
func decodeCommand(body []byte) (command, error) {
	if len(body) == 0 {
		return command{}, fmt.Errorf("%w: empty", errBadCommand)
	}
	c := command{Type: commandType(body[0])}
	if c.Type > cmdCancelSegmentRequest {
		return c, fmt.Errorf("%w: unknown command code %d", errBadCommand, body[0])
	}
	var seen [256]bool
	for off := 1; off < len(body); {
		name := body[off]
		off++
		if off >= len(body) {
			return c, fmt.Errorf("%w: field %q has no value", errBadCommand, name)
		}
		seen[name] = true
		switch typ := body[off] >> 4; typ {
		case itemInt:
			v, n, err := readInt(body[off:])
			if err != nil {
				return c, fmt.Errorf("%w: field %q: %w", errBadCommand, name, err)
			}
			off += n
			switch name {
			case 'i':
				c.SegmentID = v
			case 'r':
				c.RequestID = v
			case 's':
				c.Size = v
			case 'b':
				c.ByteFrom = v
			case 'l', 'p':
				return c, fmt.Errorf("%w: field %q is an int, want an array", errBadCommand, name)
			}
		case itemSimilarIntArray:
			v, n, err := readSimilarIntArray(body[off:])
			if err != nil {
				return c, fmt.Errorf("%w: field %q: %w", errBadCommand, name, err)
			}
			off += n
			switch name {
			case 'l':
				c.Loaded = v
			case 'p':
				c.HTTPLoading = v
			case 'i', 'r', 's', 'b':
				return c, fmt.Errorf("%w: field %q is an array, want an int", errBadCommand, name)
			}
		case itemString:
			if len(body)-off < 2 {
				return c, fmt.Errorf("%w: field %q: truncated string", errBadCommand, name)
			}
			l := int(body[off]&0x0f)<<8 | int(body[off+1])
			if len(body)-off-2 < l {
				return c, fmt.Errorf("%w: field %q: truncated string", errBadCommand, name)
			}
			off += 2 + l
			switch name {
			case 'i', 'r', 's', 'b', 'l', 'p':
				return c, fmt.Errorf("%w: field %q is a string", errBadCommand, name)
			}
		default:
			return c, fmt.Errorf("%w: field %q has unknown type %d", errBadCommand, name, typ)
		}
	}
	// A command without the fields it needs is useless: JS would compare
	// undefined and drop it; so do we, but with an error to log.
	for _, f := range requiredFields(c.Type) {
		if !seen[f] {
			return c, fmt.Errorf("%w: %v without field %q", errBadCommand, c.Type, f)
		}
	}
	return c, nil
}

func requiredFields(t commandType) string {
	switch t {
	case cmdSegmentsAnnouncement:
		return ""
	case cmdSegmentData:
		return "isr"
	}
	return "ir"
}

// readInt parses an Int item and returns its value and length
// (deserializeInt). A zero length decodes as 0, as in JS.
func readInt(b []byte) (int64, int, error) {
	if len(b) == 0 || b[0]>>4 != itemInt {
		return 0, 0, errors.New("not an int")
	}
	n := int(b[0] & 0x0f)
	if len(b) < 1+n {
		return 0, 0, errors.New("truncated int")
	}
	if n == 0 {
		return 0, 1, nil
	}
	mag := b[1 : 1+n]
	neg := mag[0]&0x80 != 0
	var v uint64
	for i, x := range mag {
		if i == 0 {
			x &= 0x7f
		}
		if v > math.MaxUint64>>8 {
			return 0, 0, errors.New("int does not fit in 64 bits")
		}
		v = v<<8 | uint64(x)
	}
	switch {
	case neg && v <= 1<<63:
		return int64(-v), 1 + n, nil //nolint:gosec // -v wraps to the right negative value
	case !neg && v <= math.MaxInt64:
		return int64(v), 1 + n, nil
	}
	return 0, 0, errors.New("int does not fit in 64 bits")
}

// readSimilarIntArray parses a SimilarIntArray item and returns its
// numbers and length (deserializeSimilarIntArray).
func readSimilarIntArray(b []byte) ([]int64, int, error) {
	if len(b) < 2 || b[0]>>4 != itemSimilarIntArray {
		return nil, 0, errors.New("truncated array")
	}
	groups := int(b[1])
	off := 2
	var out []int64
	for range groups {
		v, n, err := readInt(b[off:])
		if err != nil {
			return nil, 0, err
		}
		off += n
		count, common := int(v&0xff), v&^0xff
		if len(b)-off < count {
			return nil, 0, errors.New("truncated array")
		}
		for _, low := range b[off : off+count] {
			out = append(out, common|int64(low))
		}
		off += count
	}
	return out, off, nil
}

// joiner reassembles a command sent in several parts
// (BinaryCommandChunksJoiner). The zero value is ready.
type joiner struct {
	buf     []byte
	joining bool
}

// add takes one command part and returns the command body once the last
// part arrived. A part out of order drops what was joined so far: JS does
// the same, except that it also drops a cstr part that interrupts a join,
// where this starts the new command with it.
func (j *joiner) add(part []byte) (body []byte, complete bool, err error) {
	first := bytes.HasPrefix(part, frameStart)
	switch {
	case first && j.joining:
		err = errors.New("command part cstr before the previous command ended")
		j.buf = j.buf[:0]
	case !first && !j.joining:
		j.buf = j.buf[:0]
		return nil, false, errors.New("command part dstr without a first part")
	}
	j.joining = true
	j.buf = append(j.buf, part[4:len(part)-4]...)
	if !bytes.HasSuffix(part, frameEnd) {
		return nil, false, err
	}
	body = j.buf
	j.buf, j.joining = nil, false
	return body, true, err
}
