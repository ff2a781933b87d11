// Package transcode runs ffmpeg on a publisher's FLV stream and supervises
// it: the argument list is built by a pure function (Args), the child
// process is restarted if it dies while the publisher is still sending, and
// it is stopped with SIGINT so that it writes its last segment.
package transcode

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/starling-live/starling/core"
)

// Job describes one ffmpeg run.
type Job struct {
	Variants       []core.Variant
	SegmentSeconds int
	// HasAudio is whether the publisher sends audio; ffmpeg's HLS muxer
	// needs to know, because var_stream_map names every stream.
	HasAudio bool
	// SourceVideoKbps and SourceAudioKbps are the publisher's bit rates as
	// its encoder announced them, 0 if it did not. Passthrough variants
	// tell them to ffmpeg: without a bit rate its HLS muxer leaves a
	// variant out of the master playlist.
	SourceVideoKbps, SourceAudioKbps int
	// OutputURL is where ffmpeg PUTs its output, ending in "/": the master
	// playlist at OutputURL+"stream.m3u8", variant i's media playlist at
	// OutputURL+"i/stream.m3u8" and its segments beside it.
	OutputURL string
}

// ffmpegPlaylistSize is how many segments ffmpeg lists in the playlists it
// PUTs. Starling writes the playlists viewers get; ffmpeg's only need to
// announce each new segment once.
const ffmpegPlaylistSize = 4

// Args returns ffmpeg's arguments for j, program name excluded. ffmpeg reads
// FLV on standard input and writes its progress report to standard output
// (the output goes over HTTP, so nothing else does): -nostats silences the
// human-readable line on stderr, -progress does not depend on it.
func Args(j Job) []string {
	a := []string{
		"-hide_banner", "-loglevel", "warning", "-nostats", "-progress", "pipe:1",
		"-fflags", "+genpts",
		"-f", "flv", "-i", "pipe:0",
	}
	if fc := filterComplex(j); fc != "" {
		a = append(a, "-filter_complex", fc)
	}
	var streamMap []string
	for i, v := range j.Variants {
		a = append(a, videoArgs(i, v, j)...)
		if j.HasAudio {
			a = append(a, audioArgs(i, v, j)...)
			streamMap = append(streamMap, fmt.Sprintf("v:%d,a:%d", i, i))
		} else {
			streamMap = append(streamMap, fmt.Sprintf("v:%d", i))
		}
	}
	return append(a,
		"-max_muxing_queue_size", "1024",
		"-f", "hls",
		"-hls_time", strconv.Itoa(j.SegmentSeconds),
		"-hls_list_size", strconv.Itoa(ffmpegPlaylistSize),
		"-hls_segment_type", "mpegts",
		"-hls_flags", "program_date_time+independent_segments",
		"-master_pl_name", "stream.m3u8",
		"-var_stream_map", strings.Join(streamMap, " "),
		"-method", "PUT",
		"-hls_segment_filename", j.OutputURL+"%v/seg-%d.ts",
		j.OutputURL+"%v/stream.m3u8",
	)
}

// filterComplex splits the publisher's video once per transcoded variant
// and scales each copy: "[0:v:0]split=2[s0][s1];[s0]...[v0];[s1]...[v1]".
func filterComplex(j Job) string {
	var chains []string
	for i, v := range j.Variants {
		if !v.VideoPassthrough {
			chains = append(chains, fmt.Sprintf("%s[v%d]", videoFilter(v), i))
		}
	}
	switch len(chains) {
	case 0:
		return ""
	case 1:
		return "[0:v:0]" + chains[0]
	}
	var split strings.Builder
	fmt.Fprintf(&split, "[0:v:0]split=%d", len(chains))
	for i := range chains {
		fmt.Fprintf(&split, "[s%d]", i)
		chains[i] = fmt.Sprintf("[s%d]%s", i, chains[i])
	}
	return split.String() + ";" + strings.Join(chains, ";")
}

// videoFilter scales (never up, and to even sizes, as 4:2:0 needs), sets
// the frame rate, and converts to the pixel format every H.264 decoder plays.
func videoFilter(v core.Variant) string {
	var f []string
	switch {
	case v.ScaledWidth > 0 && v.ScaledHeight > 0:
		f = append(f, fmt.Sprintf("scale=%d:%d", v.ScaledWidth, v.ScaledHeight))
	case v.ScaledHeight > 0:
		f = append(f, fmt.Sprintf("scale=-2:'trunc(min(%d,ih)/2)*2'", v.ScaledHeight))
	case v.ScaledWidth > 0:
		f = append(f, fmt.Sprintf("scale='trunc(min(%d,iw)/2)*2':-2", v.ScaledWidth))
	}
	f = append(f, fmt.Sprintf("fps=%d", v.Framerate), "format=yuv420p")
	return strings.Join(f, ",")
}

// Bit rates assumed for a passthrough whose encoder did not announce its
// own: high, because the master playlist's BANDWIDTH is a peak.
const (
	unknownVideoKbps = 6000
	unknownAudioKbps = 160
)

func orDefault(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}

func videoArgs(i int, v core.Variant, j Job) []string {
	s := ":v:" + strconv.Itoa(i)
	if v.VideoPassthrough {
		return []string{"-map", "0:v:0", "-c" + s, "copy", "-b" + s, kbps(orDefault(j.SourceVideoKbps, unknownVideoKbps))}
	}
	// One key frame per segment, at its start: segments cut exactly at
	// SegmentSeconds and every one can be decoded on its own.
	gop := strconv.Itoa(v.Framerate * j.SegmentSeconds)
	return []string{
		"-map", fmt.Sprintf("[v%d]", i),
		"-c" + s, "libx264",
		"-preset" + s, v.Preset(),
		"-tune" + s, "zerolatency",
		"-profile" + s, "high",
		"-b" + s, kbps(v.VideoBitrate),
		"-maxrate" + s, kbps(v.VideoBitrate * 11 / 10),
		"-bufsize" + s, kbps(v.VideoBitrate * 2),
		"-g" + s, gop,
		"-keyint_min" + s, gop,
		"-sc_threshold" + s, "0",
	}
}

func audioArgs(i int, v core.Variant, j Job) []string {
	s := ":a:" + strconv.Itoa(i)
	if v.AudioPassthrough {
		return []string{"-map", "0:a:0", "-c" + s, "copy", "-b" + s, kbps(orDefault(j.SourceAudioKbps, unknownAudioKbps))}
	}
	return []string{"-map", "0:a:0", "-c" + s, "aac", "-b" + s, kbps(v.AudioBitrate), "-ac" + s, "2"}
}

func kbps(n int) string { return strconv.Itoa(n) + "k" }
