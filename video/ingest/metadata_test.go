package ingest

import (
	"bytes"
	"testing"

	"github.com/yutopp/go-amf0"
)

func encode(t *testing.T, vs ...any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := amf0.NewEncoder(&b)
	for _, v := range vs {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func TestParseMetadata(t *testing.T) {
	tests := []struct {
		name    string
		payload []any
		want    Details
		wantErr bool
	}{
		{
			name: "OBS",
			payload: []any{"onMetaData", amf0.ECMAArray{
				"width": 1920.0, "height": 1080.0, "framerate": 29.97002997, "videodatarate": 6000.0,
				"videocodecid": 7.0, "audiodatarate": 160.0, "audiocodecid": 10.0,
				"encoder": "obs-output module (libobs version 29.0.2)",
			}},
			want: Details{Width: 1920, Height: 1080, FrameRate: 29.97, VideoBitrate: 6000, VideoCodec: "H.264",
				AudioBitrate: 160, AudioCodec: "AAC", Encoder: "obs-output module (libobs version 29.0.2)"},
		},
		{
			name: "FourCC codecs and videoframerate",
			payload: []any{"onMetaData", amf0.ECMAArray{
				"width": 1280.0, "height": 720.0, "videoframerate": 60.0, "videocodecid": "avc1", "audiocodecid": "mp4a",
			}},
			want: Details{Width: 1280, Height: 720, FrameRate: 60, VideoCodec: "H.264", AudioCodec: "AAC"},
		},
		{
			name:    "HEVC is named, not hidden",
			payload: []any{"onMetaData", amf0.ECMAArray{"videocodecid": 12.0}},
			want:    Details{VideoCodec: "HEVC"},
		},
		{name: "not onMetaData", payload: []any{"onCuePoint", amf0.ECMAArray{}}, wantErr: true},
		{name: "not an object", payload: []any{"onMetaData", 1.0}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMetadata(encode(t, tt.payload...))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	if _, err := parseMetadata([]byte{0x02, 0xff}); err == nil {
		t.Error("truncated AMF was accepted")
	}
}
