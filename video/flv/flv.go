// Package flv writes the FLV container around RTMP message bodies.
//
// RTMP audio, video and data messages carry exactly the bodies of FLV tags, so
// a publisher's stream becomes an FLV file by adding the file header and the
// 11-byte tag headers (Adobe Flash Video File Format Specification 10.1,
// annex E). ffmpeg reads that file from its standard input.
package flv

import (
	"encoding/binary"
	"fmt"
	"io"
)

// TagType is the FLV tag type, which is also the RTMP message type id.
type TagType uint8

// Tag types (FLV spec E.4.1).
const (
	TagAudio  TagType = 8
	TagVideo  TagType = 9
	TagScript TagType = 18
)

func (t TagType) String() string {
	switch t {
	case TagAudio:
		return "audio"
	case TagVideo:
		return "video"
	case TagScript:
		return "script"
	}
	return fmt.Sprintf("tag(%d)", uint8(t))
}

// Tag is one audio, video or script-data message of a publisher.
type Tag struct {
	Type TagType
	// Timestamp is the absolute presentation time in milliseconds, as
	// go-rtmp accumulates it from the chunk stream.
	Timestamp uint32
	// Data is the tag body. It is owned by the Tag: callers copy the RTMP
	// payload before they build one.
	Data []byte
}

// Codec ids of the tag bodies we accept (FLV spec E.4.2.1 and E.4.3.1).
const (
	SoundFormatAAC = 10
	CodecIDAVC     = 7
)

// IsKeyframe reports whether t is a video tag carrying a key frame, the only
// place a decoder (or a restarted ffmpeg) can start.
func (t Tag) IsKeyframe() bool {
	return t.Type == TagVideo && len(t.Data) > 0 && t.Data[0]>>4 == 1
}

// IsSequenceHeader reports whether t is an AVC or AAC sequence header: the
// decoder configuration every decoder needs before the first frame.
func (t Tag) IsSequenceHeader() bool {
	if len(t.Data) < 2 || t.Data[1] != 0 {
		return false
	}
	switch t.Type {
	case TagVideo:
		return t.Data[0]&0x0f == CodecIDAVC
	case TagAudio:
		return t.Data[0]>>4 == SoundFormatAAC
	}
	return false
}

// Header returns the FLV file header, followed by the zero
// PreviousTagSize that precedes the first tag. It must announce only the
// tracks there are: ffmpeg waits a long time for a track the header
// promises.
func Header(audio, video bool) []byte {
	var flags byte
	if audio {
		flags |= 0x04
	}
	if video {
		flags |= 0x01
	}
	return []byte{'F', 'L', 'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0}
}

// maxDataSize is the largest body a tag header can describe (24 bits).
const maxDataSize = 1<<24 - 1

// WriteTag writes t to w as one FLV tag followed by its PreviousTagSize.
// The whole tag goes out in a single Write so that a pipe reader never sees
// half a header.
func WriteTag(w io.Writer, t Tag) error {
	buf, err := AppendTag(nil, t)
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}

// AppendTag appends t to buf as WriteTag writes it, so that several tags
// can go out in one Write.
func AppendTag(buf []byte, t Tag) ([]byte, error) {
	n := len(t.Data)
	if n > maxDataSize {
		return buf, fmt.Errorf("flv: %s tag of %d bytes exceeds the 16 MiB limit of the format", t.Type, n)
	}
	ts := t.Timestamp
	// StreamID (3 bytes) is always 0.
	buf = append(buf, byte(t.Type), byte(n>>16), byte(n>>8), byte(n),
		byte(ts>>16), byte(ts>>8), byte(ts), byte(ts>>24), 0, 0, 0)
	buf = append(buf, t.Data...)
	return binary.BigEndian.AppendUint32(buf, uint32(11+n)), nil
}
