package flv

import (
	"bytes"
	"testing"
)

func TestWriteTag(t *testing.T) {
	var b bytes.Buffer
	tag := Tag{Type: TagVideo, Timestamp: 0x01020304, Data: []byte{0x17, 0x01, 0xaa}}
	if err := WriteTag(&b, tag); err != nil {
		t.Fatal(err)
	}
	want := []byte{
		9,       // video
		0, 0, 3, // data size
		0x02, 0x03, 0x04, 0x01, // timestamp, then its extension byte (bits 24-31)
		0, 0, 0, // stream id
		0x17, 0x01, 0xaa,
		0, 0, 0, 14, // PreviousTagSize = 11 + 3
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("got  % x\nwant % x", b.Bytes(), want)
	}
	if err := WriteTag(&b, Tag{Type: TagVideo, Data: make([]byte, 1<<24)}); err == nil {
		t.Error("a tag too large for the format was written")
	}
}

// Tags appended one after another are what WriteTag writes of each, in
// order; a tag too large leaves the buffer as it was.
func TestAppendTag(t *testing.T) {
	tags := []Tag{
		{Type: TagVideo, Timestamp: 40, Data: []byte{0x17, 0x01, 0xaa}},
		{Type: TagAudio, Timestamp: 42, Data: []byte{0xaf, 0x01}},
	}
	var want bytes.Buffer
	var buf []byte
	for _, tag := range tags {
		WriteTag(&want, tag)
		var err error
		if buf, err = AppendTag(buf, tag); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(buf, want.Bytes()) {
		t.Errorf("appended % x\nwritten  % x", buf, want.Bytes())
	}
	if got, err := AppendTag(buf, Tag{Type: TagVideo, Data: make([]byte, 1<<24)}); err == nil || len(got) != len(buf) {
		t.Errorf("a tag too large: %d bytes, %v", len(got), err)
	}
}

func TestHeaderAnnouncesOnlyTheTracksThereAre(t *testing.T) {
	for _, tt := range []struct {
		audio, video bool
		flags        byte
	}{{true, true, 0x05}, {false, true, 0x01}, {true, false, 0x04}} {
		h := Header(tt.audio, tt.video)
		if len(h) != 13 || string(h[:3]) != "FLV" || h[4] != tt.flags {
			t.Errorf("Header(%v, %v) = % x", tt.audio, tt.video, h)
		}
	}
}

func TestTagKinds(t *testing.T) {
	tests := []struct {
		tag            Tag
		key, seqHeader bool
	}{
		{Tag{Type: TagVideo, Data: []byte{0x17, 0x00}}, true, true},  // AVC sequence header
		{Tag{Type: TagVideo, Data: []byte{0x17, 0x01}}, true, false}, // AVC key frame
		{Tag{Type: TagVideo, Data: []byte{0x27, 0x01}}, false, false},
		{Tag{Type: TagAudio, Data: []byte{0xaf, 0x00}}, false, true}, // AAC config
		{Tag{Type: TagAudio, Data: []byte{0xaf, 0x01}}, false, false},
		{Tag{Type: TagAudio, Data: []byte{0x2f, 0x00}}, false, false}, // MP3
		{Tag{Type: TagVideo}, false, false},
	}
	for _, tt := range tests {
		if got := tt.tag.IsKeyframe(); got != tt.key {
			t.Errorf("% x IsKeyframe = %v", tt.tag.Data, got)
		}
		if got := tt.tag.IsSequenceHeader(); got != tt.seqHeader {
			t.Errorf("% x IsSequenceHeader = %v", tt.tag.Data, got)
		}
	}
}
