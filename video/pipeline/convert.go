package pipeline

import (
	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/video/ingest"
	"github.com/starling-live/starling/video/transcode"
)

// ingest and transcode declare their own values, so that they link no
// core (and with it no sqlite or bcrypt); these convert between them and
// core's. convert_test.go fails if a field is left behind.

// streamDetails is what the publisher's encoder announced, as core keeps it.
func streamDetails(d ingest.Details) core.StreamDetails {
	return core.StreamDetails{
		Width:        d.Width,
		Height:       d.Height,
		FrameRate:    d.FrameRate,
		VideoBitrate: d.VideoBitrate,
		VideoCodec:   d.VideoCodec,
		AudioBitrate: d.AudioBitrate,
		AudioCodec:   d.AudioCodec,
		Encoder:      d.Encoder,
	}
}

// transcodeVariants are the admin's variants, as transcode makes them.
func transcodeVariants(vs []core.Variant) []transcode.Variant {
	if vs == nil {
		return nil
	}
	out := make([]transcode.Variant, len(vs))
	for i, v := range vs {
		out[i] = transcode.Variant{
			Name:             v.Name,
			VideoPassthrough: v.VideoPassthrough,
			AudioPassthrough: v.AudioPassthrough,
			VideoBitrate:     v.VideoBitrate,
			AudioBitrate:     v.AudioBitrate,
			ScaledWidth:      v.ScaledWidth,
			ScaledHeight:     v.ScaledHeight,
			Framerate:        v.Framerate,
			CPUUsageLevel:    v.CPUUsageLevel,
		}
	}
	return out
}
