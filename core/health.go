package core

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// StreamHealth is how the live broadcast is doing: what the publisher
// sends, measured over the last few seconds, and how ffmpeg keeps up with
// it. It is a copy, made when asked for. A number that cannot be measured
// yet (no key frame pair, ffmpeg not started) is 0.
type StreamHealth struct {
	// Online is whether a publisher is sending; every number below is 0
	// when it is not.
	Online bool `json:"online"`

	// IngestBitrateKbps counts the publisher's audio and video,
	// VideoBitrateKbps its video alone, in kbit/s.
	IngestBitrateKbps float64 `json:"ingestBitrateKbps"`
	VideoBitrateKbps  float64 `json:"videoBitrateKbps"`
	// IngestFramerate is the video frames per second that arrive.
	IngestFramerate float64 `json:"ingestFramerate"`
	// KeyframeIntervalSeconds is the media time between the publisher's
	// last two key frames.
	KeyframeIntervalSeconds float64 `json:"keyframeIntervalSeconds"`
	// LastFrameAgeSeconds is how long ago the newest video frame arrived
	// (or the publisher connected, if none has).
	LastFrameAgeSeconds float64 `json:"lastFrameAgeSeconds"`

	// TranscoderSpeed is the media time ffmpeg outputs per second: about 1
	// when it keeps up with the live stream, less when it falls behind.
	TranscoderSpeed float64 `json:"transcoderSpeed"`
	// TranscoderFramerate is the frames per second of ffmpeg's first
	// video output.
	TranscoderFramerate float64 `json:"transcoderFramerate"`
	// TranscoderOutTimeSeconds is how far into the stream ffmpeg's
	// current run has got.
	TranscoderOutTimeSeconds float64 `json:"transcoderOutTimeSeconds"`
	// TranscoderProgressAgeSeconds is how long ago ffmpeg last reported
	// progress (or the broadcast started, if it has not yet).
	TranscoderProgressAgeSeconds float64 `json:"transcoderProgressAgeSeconds"`
	// TranscoderRestarts counts the times ffmpeg had to be restarted
	// during this broadcast.
	TranscoderRestarts int `json:"transcoderRestarts"`
	// DroppedFrames and DuplicatedFrames are what ffmpeg dropped and
	// duplicated to keep its output's frame rate, during this broadcast.
	DroppedFrames    int64 `json:"droppedFrames"`
	DuplicatedFrames int64 `json:"duplicatedFrames"`
	// SkippedFrames are the publisher's video frames Starling dropped
	// before ffmpeg because ffmpeg had fallen too far behind.
	SkippedFrames int64 `json:"skippedFrames"`

	// Warnings say what is wrong and what to do about it, for the admin.
	// Never nil.
	Warnings []string `json:"warnings"`
	// UpdatedAt is when the numbers were taken.
	UpdatedAt time.Time `json:"updatedAt"`
}

// HealthTargets are what a broadcast's numbers are judged against.
type HealthTargets struct {
	// KeyframeIntervalSeconds is the longest a publisher should leave
	// between key frames: the segment length. Passthrough segments are
	// cut at the publisher's key frames, and ffmpeg (re)starts at one.
	KeyframeIntervalSeconds float64
	// Framerate is what the encoder announced; 0 if it did not, or while
	// the measurement has not yet covered a full window.
	Framerate float64
}

// Limits of a healthy stream.
const (
	// minSpeed: below it ffmpeg falls further behind every second, until
	// Starling has to drop frames.
	minSpeed = 0.95
	// maxFrameAge is a stall viewers notice.
	maxFrameAge = 2 * time.Second
	// keyframeSlack allows for encoders that count frames rather than time.
	keyframeSlack = 0.5
	// minFramerateShare of the announced frame rate: less means the
	// encoder skips frames.
	minFramerateShare = 0.9
	// maxProgressAge: ffmpeg reports twice a second once running, and
	// starts within a key-frame interval and a few seconds of probing.
	maxProgressAge = 15 * time.Second
)

// HealthWarnings says what is wrong with h, in words an admin can act on.
// The result is never nil, so that it encodes as a JSON array.
func HealthWarnings(h StreamHealth, want HealthTargets) []string {
	w := []string{}
	if !h.Online {
		return w
	}
	frameAge := seconds(h.LastFrameAgeSeconds)
	if frameAge > maxFrameAge {
		w = append(w, fmt.Sprintf("no video from the encoder for %s s: check that it is still streaming and that its network connection holds", decimal(h.LastFrameAgeSeconds)))
	}
	if want.Framerate > 0 && h.IngestFramerate < minFramerateShare*want.Framerate && frameAge <= maxFrameAge {
		w = append(w, fmt.Sprintf("the encoder sends %s frames/s of the %s it announced: it is overloaded or its upload is too slow; lower its resolution, frame rate or bitrate",
			decimal(h.IngestFramerate), decimal(want.Framerate)))
	}
	if target := want.KeyframeIntervalSeconds; target > 0 && h.KeyframeIntervalSeconds > target+keyframeSlack {
		w = append(w, fmt.Sprintf("key frames every %s s: set the encoder's keyframe interval to %s s (OBS: Settings > Output > Keyframe Interval)",
			decimal(h.KeyframeIntervalSeconds), decimal(target)))
	}
	if h.TranscoderSpeed > 0 && h.TranscoderSpeed < minSpeed {
		w = append(w, fmt.Sprintf("ffmpeg runs at %.2fx real time: lower the output resolution or bitrate, use a lower CPU usage level, or offer fewer variants", h.TranscoderSpeed))
	}
	// While the encoder sends nothing, ffmpeg has nothing to report: the
	// encoder is the problem then.
	if seconds(h.TranscoderProgressAgeSeconds) > maxProgressAge && frameAge <= maxFrameAge {
		w = append(w, fmt.Sprintf("ffmpeg has reported no progress for %s s: it is starting, restarting after a failure, or hung; see the server log",
			decimal(h.TranscoderProgressAgeSeconds)))
	}
	return w
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// decimal formats x with at most one decimal: "2", "8.3".
func decimal(x float64) string {
	return strconv.FormatFloat(math.Round(x*10)/10, 'f', -1, 64)
}
