// Package transcode runs ffmpeg on a publisher's FLV stream and supervises
// it: the argument list is built by a pure function (Args), the child
// process is restarted if it dies while the publisher is still sending, and
// it is stopped with SIGINT so that it writes its last segment.
package transcode

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Variant is one output rendition, as ffmpeg is to make it.
type Variant struct {
	// Name is the admin's name for it; ffmpeg does not see it.
	Name string
	// VideoPassthrough copies the publisher's video untouched,
	// AudioPassthrough its AAC audio.
	VideoPassthrough, AudioPassthrough bool
	// VideoBitrate and AudioBitrate are in kbit/s.
	VideoBitrate, AudioBitrate int
	// ScaledWidth and ScaledHeight scale the picture, never up; 0 keeps
	// the aspect ratio from the other one, both 0 keep the source's size.
	ScaledWidth, ScaledHeight int
	// Framerate is the output frame rate.
	Framerate int
	// CPUUsageLevel picks the encoder preset, 0 (least CPU) to 4 (best
	// picture per bit).
	CPUUsageLevel int
}

// Job describes one ffmpeg run.
type Job struct {
	Variants       []Variant
	SegmentSeconds int
	// HasAudio is whether the publisher sends audio; ffmpeg's HLS muxer
	// needs to know, because var_stream_map names every stream.
	HasAudio bool
	// SourceVideoKbps and SourceAudioKbps are the publisher's bit rates as
	// its encoder announced them, 0 if it did not. Passthrough variants
	// tell them to ffmpeg: without a bit rate its HLS muxer leaves a
	// variant out of the master playlist.
	SourceVideoKbps, SourceAudioKbps int
	// Codec is the H.264 encoder of transcoded variants (libx264).
	Codec string
	// OutputURL is where ffmpeg PUTs its output, ending in "/": the master
	// playlist at OutputURL+"stream.m3u8", variant i's media playlist at
	// OutputURL+"i/stream.m3u8" and its segments beside it.
	OutputURL string
	// ThumbnailSeconds, if not 0, makes the same ffmpeg also POST a JPEG
	// still of the stream to OutputURL+ThumbnailName: the first frame at
	// once, then one at least this many seconds after the last, at most
	// 720 lines high. A run that transcodes takes it from the frames it
	// decodes anyway; a run that only passes video through decodes
	// nothing else, so it decodes only key frames (-skip_frame nokey),
	// one a segment, and the still is the first key frame that many
	// seconds after the last.
	ThumbnailSeconds int
}

// ThumbnailName is where, below OutputURL, ffmpeg sends its stills.
const ThumbnailName = "thumbnail.jpg"

// ffmpegPlaylistSize is how many segments ffmpeg lists in the playlists it
// PUTs. Starling writes the playlists viewers get; ffmpeg's only need to
// announce each new segment once.
const ffmpegPlaylistSize = 4

// firstSegmentSeconds is the length of the first ffmpegPlaylistSize
// segments of a run (ffmpeg's -hls_init_time): a viewer waiting for the
// stream sees a picture once the first of them is out, three frames in,
// not a whole segment length after the first frame. Transcoded variants
// get their key frames there (keyFrames); a passthrough variant is cut at
// the publisher's.
const firstSegmentSeconds = 0.1

// keyFrames is the -force_key_frames expression for segments of seconds:
// a key frame at the start of every segment, the short first ones
// included. ffmpeg counts forced key frames in n_forced, the first at 0.
func keyFrames(seconds int) string {
	short := float64(ffmpegPlaylistSize) * firstSegmentSeconds
	return fmt.Sprintf("expr:if(lt(n_forced,%d),gte(t,n_forced*%g),gte(t,%g+(n_forced-%d)*%d))",
		ffmpegPlaylistSize+1, firstSegmentSeconds, short, ffmpegPlaylistSize, seconds)
}

// Args returns ffmpeg's arguments for j, program name excluded. ffmpeg reads
// FLV on standard input and writes its progress report to standard output
// (the output goes over HTTP, so nothing else does): -nostats silences the
// human-readable line on stderr, -progress does not depend on it.
func Args(j Job) []string {
	a := []string{
		"-hide_banner", "-loglevel", "warning", "-nostats", "-progress", "pipe:1",
		"-fflags", "+genpts",
	}
	if j.codec() == "h264_vaapi" {
		a = append(a, "-vaapi_device", vaapiDevice)
	}
	if j.ThumbnailSeconds > 0 && !j.transcodes() {
		// Only the still is decoded: key frames are enough.
		a = append(a, "-skip_frame", "nokey")
	}
	// ffmpeg would read frames for most of a second of a live input to
	// estimate its frame rate before starting; transcoded variants set
	// their own (the fps filter) and passthrough copies the timestamps.
	a = append(a, "-fpsprobesize", "0", "-f", "flv", "-i", "pipe:0")
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
	a = append(a,
		"-max_muxing_queue_size", "1024",
		"-f", "hls",
		"-hls_time", strconv.Itoa(j.SegmentSeconds),
		"-hls_init_time", strconv.FormatFloat(firstSegmentSeconds, 'g', -1, 64),
		"-hls_list_size", strconv.Itoa(ffmpegPlaylistSize),
		"-hls_segment_type", "mpegts",
		"-hls_flags", "program_date_time+independent_segments",
		"-master_pl_name", "stream.m3u8",
		"-var_stream_map", strings.Join(streamMap, " "),
		"-method", "PUT",
		"-hls_segment_filename", j.OutputURL+"%v/seg-%d.ts",
		j.OutputURL+"%v/stream.m3u8",
	)
	if j.ThumbnailSeconds > 0 {
		// A second output of the same run. The image2 muxer POSTs each
		// still on a connection of its own. mjpeg's frame threads
		// would hold a still back until the next one: one thread. Full
		// range yuv420p is what JPEG is, without swscale's warning
		// about the deprecated yuvj420p; mjpeg accepts it only below
		// strict compliance. Passthrough timestamps: the still goes out
		// when selected, not on a constant frame rate.
		a = append(a,
			"-map", "[thumb]", "-fps_mode", "passthrough",
			"-c:v", "mjpeg", "-pix_fmt", "yuv420p", "-strict", "-1", "-threads", "1", "-q:v", "4",
			"-f", "image2", "-update", "1", j.OutputURL+ThumbnailName,
		)
	}
	return a
}

// transcodes reports whether some variant decodes and encodes the video.
func (j Job) transcodes() bool {
	return slices.ContainsFunc(j.Variants, func(v Variant) bool { return !v.VideoPassthrough })
}

// thumbnailFilter picks the first frame, then the first at least
// ThumbnailSeconds after the last picked, and scales it to at most 720
// lines in the full range a JPEG holds.
func thumbnailFilter(j Job) string {
	return fmt.Sprintf("select='isnan(prev_selected_t)+gte(t-prev_selected_t,%d)',scale=-2:'trunc(min(720,ih)/2)*2':out_range=full", j.ThumbnailSeconds)
}

// filterComplex splits the publisher's video once per transcoded variant
// and for the thumbnail, and scales each copy:
// "[0:v:0]split=2[s0][s1];[s0]...[v0];[s1]...[v1]", the thumbnail's copy
// last, labelled [thumb].
func filterComplex(j Job) string {
	var chains []string
	for i, v := range j.Variants {
		if !v.VideoPassthrough {
			chains = append(chains, fmt.Sprintf("%s[v%d]", videoFilter(v, j.codec()), i))
		}
	}
	if j.ThumbnailSeconds > 0 {
		chains = append(chains, thumbnailFilter(j)+"[thumb]")
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
// the frame rate, and converts to the pixel format every H.264 decoder
// plays, in the memory the encoder takes it from.
func videoFilter(v Variant, codec string) string {
	var f []string
	switch {
	case v.ScaledWidth > 0 && v.ScaledHeight > 0:
		f = append(f, fmt.Sprintf("scale=%d:%d", v.ScaledWidth, v.ScaledHeight))
	case v.ScaledHeight > 0:
		f = append(f, fmt.Sprintf("scale=-2:'trunc(min(%d,ih)/2)*2'", v.ScaledHeight))
	case v.ScaledWidth > 0:
		f = append(f, fmt.Sprintf("scale='trunc(min(%d,iw)/2)*2':-2", v.ScaledWidth))
	}
	f = append(f, fmt.Sprintf("fps=%d", v.Framerate))
	switch codec {
	case "h264_vaapi":
		f = append(f, "format=nv12", "hwupload")
	case "h264_qsv":
		f = append(f, "format=nv12")
	default:
		f = append(f, "format=yuv420p")
	}
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

func videoArgs(i int, v Variant, j Job) []string {
	s := ":v:" + strconv.Itoa(i)
	if v.VideoPassthrough {
		return []string{"-map", "0:v:0", "-c" + s, "copy", "-b" + s, kbps(orDefault(j.SourceVideoKbps, unknownVideoKbps))}
	}
	// One key frame per segment, at its start: segments cut exactly at
	// SegmentSeconds (the first ones shorter, keyFrames) and every one can
	// be decoded on its own.
	gop := strconv.Itoa(v.Framerate * j.SegmentSeconds)
	codec := j.codec()
	a := []string{"-map", fmt.Sprintf("[v%d]", i), "-c" + s, codec}
	level := min(max(v.CPUUsageLevel, 0), 4)
	switch codec {
	case "libx264":
		// The presets Owncast maps its CPU usage levels to.
		a = append(a, "-preset"+s, []string{"ultrafast", "superfast", "veryfast", "faster", "fast"}[level], "-tune"+s, "zerolatency", "-profile"+s, "high")
	case "h264_nvenc":
		// p1 is the fastest preset, p7 the best; "ll" tunes for latency.
		a = append(a, "-preset"+s, []string{"p1", "p2", "p4", "p5", "p7"}[level], "-tune"+s, "ll",
			"-profile"+s, "high", "-rc"+s, "cbr", "-no-scenecut"+s, "1", "-forced-idr"+s, "1")
	case "h264_qsv":
		a = append(a, "-preset"+s, []string{"veryfast", "veryfast", "faster", "fast", "medium"}[level], "-profile"+s, "high")
	case "h264_vaapi":
		a = append(a, "-profile"+s, "high")
	case "h264_videotoolbox":
		a = append(a, "-realtime"+s, "1", "-profile"+s, "high")
	}
	a = append(a,
		"-b"+s, kbps(v.VideoBitrate),
		"-maxrate"+s, kbps(v.VideoBitrate*11/10),
		"-bufsize"+s, kbps(v.VideoBitrate*2),
		"-g"+s, gop,
		"-keyint_min"+s, gop,
		"-force_key_frames"+s, keyFrames(j.SegmentSeconds),
	)
	if codec == "libx264" {
		a = append(a, "-sc_threshold"+s, "0")
	}
	return a
}

// ProbeArgs returns ffmpeg's arguments to encode a few small frames with
// codec as a broadcast would, with the same filters and encoder options,
// and throw them away. ffmpeg lists the hardware encoders it was built
// with whether or not the machine has the hardware; this run fails where
// it does not.
func ProbeArgs(codec string) []string {
	j := Job{Codec: codec, SegmentSeconds: 1}
	v := Variant{ScaledHeight: 144, Framerate: 30, VideoBitrate: 300, CPUUsageLevel: 0}
	a := []string{"-hide_banner", "-loglevel", "error", "-nostdin"}
	if codec == "h264_vaapi" {
		a = append(a, "-vaapi_device", vaapiDevice)
	}
	a = append(a, "-f", "lavfi", "-i", "color=size=256x144:rate=30",
		"-filter_complex", "[0:v:0]"+videoFilter(v, codec)+"[v0]")
	a = append(a, videoArgs(0, v, j)...)
	return append(a, "-frames:v", "3", "-f", "null", "-")
}

// vaapiDevice is the render node VA-API encodes on.
const vaapiDevice = "/dev/dri/renderD128"

func (j Job) codec() string {
	if j.Codec == "" {
		return "libx264"
	}
	return j.Codec
}

func audioArgs(i int, v Variant, j Job) []string {
	s := ":a:" + strconv.Itoa(i)
	if v.AudioPassthrough {
		return []string{"-map", "0:a:0", "-c" + s, "copy", "-b" + s, kbps(orDefault(j.SourceAudioKbps, unknownAudioKbps))}
	}
	return []string{"-map", "0:a:0", "-c" + s, "aac", "-b" + s, kbps(v.AudioBitrate), "-ac" + s, "2"}
}

func kbps(n int) string { return strconv.Itoa(n) + "k" }

// Effective returns the variants as they come out of a source of width w
// and height h (0 if unknown): a small source is never scaled up, so a
// variant asking for more keeps the source's size, and variants that then
// come out the same are one (the first is kept).
func Effective(vs []Variant, w, h int) []Variant {
	var out []Variant
	for _, v := range vs {
		if !v.VideoPassthrough && h > 0 && w > 0 {
			switch {
			case v.ScaledHeight >= h && (v.ScaledWidth == 0 || v.ScaledWidth >= w):
				v.ScaledWidth, v.ScaledHeight = 0, 0
			case v.ScaledHeight == 0 && v.ScaledWidth >= w:
				v.ScaledWidth = 0
			}
		}
		if !slices.ContainsFunc(out, func(o Variant) bool { return sameOutput(o, v) }) {
			out = append(out, v)
		}
	}
	return out
}

// sameOutput reports whether two variants make the same rendition,
// whatever they are called.
func sameOutput(a, b Variant) bool {
	a.Name, b.Name = "", ""
	if a.AudioPassthrough {
		a.AudioBitrate = 0
	}
	if b.AudioPassthrough {
		b.AudioBitrate = 0
	}
	return a == b
}
