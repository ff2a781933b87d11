package ingest

import (
	"bytes"
	"fmt"
	"math"

	"github.com/yutopp/go-amf0"
)

// Details is what the publisher's encoder announced in onMetaData; a field
// it did not announce is zero.
type Details struct {
	Width, Height int
	FrameRate     float64
	// VideoBitrate and AudioBitrate are in kbit/s.
	VideoBitrate, AudioBitrate int
	VideoCodec, AudioCodec     string
	Encoder                    string
}

// parseMetadata reads what an encoder announces in @setDataFrame: the
// string "onMetaData" and an AMF0 ECMA array (FLV spec E.5, "onMetaData").
func parseMetadata(payload []byte) (Details, error) {
	var d Details
	dec := amf0.NewDecoder(bytes.NewReader(payload))
	var name string
	if err := dec.Decode(&name); err != nil {
		return d, fmt.Errorf("metadata name: %w", err)
	}
	if name != "onMetaData" {
		return d, fmt.Errorf("data frame %q is not onMetaData", name)
	}
	var v any
	if err := dec.Decode(&v); err != nil {
		return d, fmt.Errorf("onMetaData: %w", err)
	}
	var m map[string]any
	switch t := v.(type) {
	case amf0.ECMAArray:
		m = t
	case map[string]any:
		m = t
	default:
		return d, fmt.Errorf("onMetaData is a %T, not an object", v)
	}
	d.Width = int(number(m["width"]))
	d.Height = int(number(m["height"]))
	d.FrameRate = number(m["framerate"])
	if d.FrameRate == 0 {
		d.FrameRate = number(m["videoframerate"])
	}
	d.FrameRate = math.Round(d.FrameRate*100) / 100
	d.VideoBitrate = int(number(m["videodatarate"]))
	d.AudioBitrate = int(number(m["audiodatarate"]))
	d.VideoCodec = codecName(m["videocodecid"], videoCodecs)
	d.AudioCodec = codecName(m["audiocodecid"], audioCodecs)
	if s, ok := m["encoder"].(string); ok {
		d.Encoder = s
	}
	return d, nil
}

func number(v any) float64 {
	switch n := v.(type) {
	case float64:
		if !math.IsNaN(n) && !math.IsInf(n, 0) {
			return n
		}
	case bool:
		if n {
			return 1
		}
	}
	return 0
}

// Codec ids of FLV (E.4.2.1, E.4.3.1); some encoders send FourCCs instead.
var (
	videoCodecs = map[float64]string{2: "H.263", 3: "Screen video", 4: "VP6", 5: "VP6 alpha", 6: "Screen video 2", 7: "H.264", 12: "HEVC", 13: "AV1"}
	audioCodecs = map[float64]string{0: "PCM", 1: "ADPCM", 2: "MP3", 3: "PCM", 4: "Nellymoser", 5: "Nellymoser", 6: "Nellymoser", 7: "G.711 A-law", 8: "G.711 mu-law", 10: "AAC", 11: "Speex", 14: "MP3", 15: "Device-specific"}
)

func codecName(v any, names map[float64]string) string {
	switch c := v.(type) {
	case float64:
		if n, ok := names[c]; ok {
			return n
		}
		return fmt.Sprintf("codec %v", c)
	case string:
		switch c {
		case "avc1":
			return "H.264"
		case "hvc1", "hev1":
			return "HEVC"
		case "av01":
			return "AV1"
		case "mp4a":
			return "AAC"
		case ".mp3":
			return "MP3"
		}
		return c
	}
	return ""
}
