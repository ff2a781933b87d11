package transcode

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

const out = "http://127.0.0.1:9/T/1-1/"

// The golden command lines below are what ffmpeg runs; each was checked
// by hand against ffmpeg 5.1 (and the default one end to end).
func TestArgsGolden(t *testing.T) {
	// core's default variant, and its 2 s segments.
	def := []Variant{{Name: "720p", AudioPassthrough: true, VideoBitrate: 2500, AudioBitrate: 128, ScaledHeight: 720, Framerate: 30, CPUUsageLevel: 2}}
	tests := []struct {
		name string
		job  Job
		want string
	}{
		{
			name: "default transcode with audio passthrough",
			job:  Job{Variants: def, SegmentSeconds: 2, HasAudio: true, OutputURL: out},
			want: "-hide_banner -loglevel warning -nostats -progress pipe:1 -fflags +genpts -fpsprobesize 0 -f flv -i pipe:0" +
				" -filter_complex [0:v:0]scale=-2:'trunc(min(720,ih)/2)*2',fps=30,format=yuv420p[v0]" +
				" -map [v0] -c:v:0 libx264 -preset:v:0 veryfast -tune:v:0 zerolatency -profile:v:0 high" +
				" -b:v:0 2500k -maxrate:v:0 2750k -bufsize:v:0 5000k -g:v:0 60 -keyint_min:v:0 60 -force_key_frames:v:0 expr:if(lt(n_forced,5),gte(t,n_forced*0.1),gte(t,0.4+(n_forced-4)*2)) -sc_threshold:v:0 0" +
				" -map 0:a:0 -c:a:0 copy -b:a:0 160k" +
				" -max_muxing_queue_size 1024 -f hls -hls_time 2 -hls_init_time 0.1 -hls_list_size 4 -hls_segment_type mpegts" +
				" -hls_flags program_date_time+independent_segments -master_pl_name stream.m3u8 -var_stream_map v:0,a:0" +
				" -method PUT -hls_segment_filename " + out + "%v/seg-%d.ts " + out + "%v/stream.m3u8",
		},
		{
			name: "passthrough",
			job: Job{
				Variants:       []Variant{{Name: "source", VideoPassthrough: true, AudioPassthrough: true}},
				SegmentSeconds: 4, HasAudio: true, OutputURL: out, SourceVideoKbps: 4500, SourceAudioKbps: 128,
			},
			want: "-hide_banner -loglevel warning -nostats -progress pipe:1 -fflags +genpts -fpsprobesize 0 -f flv -i pipe:0" +
				" -map 0:v:0 -c:v:0 copy -b:v:0 4500k -map 0:a:0 -c:a:0 copy -b:a:0 128k" +
				" -max_muxing_queue_size 1024 -f hls -hls_time 4 -hls_init_time 0.1 -hls_list_size 4 -hls_segment_type mpegts" +
				" -hls_flags program_date_time+independent_segments -master_pl_name stream.m3u8 -var_stream_map v:0,a:0" +
				" -method PUT -hls_segment_filename " + out + "%v/seg-%d.ts " + out + "%v/stream.m3u8",
		},
		{
			name: "three variants, no audio",
			job: Job{
				Variants: []Variant{
					{Name: "1080p", ScaledWidth: 1920, ScaledHeight: 1080, VideoBitrate: 6000, Framerate: 60, CPUUsageLevel: 4},
					{Name: "480p", ScaledWidth: 854, VideoBitrate: 1200, Framerate: 30, CPUUsageLevel: 0},
					{Name: "source", VideoPassthrough: true},
				},
				SegmentSeconds: 3, OutputURL: out,
			},
			want: "-hide_banner -loglevel warning -nostats -progress pipe:1 -fflags +genpts -fpsprobesize 0 -f flv -i pipe:0" +
				" -filter_complex [0:v:0]split=2[s0][s1];[s0]scale=1920:1080,fps=60,format=yuv420p[v0];" +
				"[s1]scale='trunc(min(854,iw)/2)*2':-2,fps=30,format=yuv420p[v1]" +
				" -map [v0] -c:v:0 libx264 -preset:v:0 fast -tune:v:0 zerolatency -profile:v:0 high" +
				" -b:v:0 6000k -maxrate:v:0 6600k -bufsize:v:0 12000k -g:v:0 180 -keyint_min:v:0 180 -force_key_frames:v:0 expr:if(lt(n_forced,5),gte(t,n_forced*0.1),gte(t,0.4+(n_forced-4)*3)) -sc_threshold:v:0 0" +
				" -map [v1] -c:v:1 libx264 -preset:v:1 ultrafast -tune:v:1 zerolatency -profile:v:1 high" +
				" -b:v:1 1200k -maxrate:v:1 1320k -bufsize:v:1 2400k -g:v:1 90 -keyint_min:v:1 90 -force_key_frames:v:1 expr:if(lt(n_forced,5),gte(t,n_forced*0.1),gte(t,0.4+(n_forced-4)*3)) -sc_threshold:v:1 0" +
				" -map 0:v:0 -c:v:2 copy -b:v:2 6000k" +
				" -max_muxing_queue_size 1024 -f hls -hls_time 3 -hls_init_time 0.1 -hls_list_size 4 -hls_segment_type mpegts" +
				" -hls_flags program_date_time+independent_segments -master_pl_name stream.m3u8 -var_stream_map v:0 v:1 v:2" +
				" -method PUT -hls_segment_filename " + out + "%v/seg-%d.ts " + out + "%v/stream.m3u8",
		},
		{
			name: "audio re-encoded",
			job: Job{
				Variants:       []Variant{{Name: "360p", ScaledHeight: 360, VideoBitrate: 800, AudioBitrate: 96, Framerate: 25, CPUUsageLevel: 1}},
				SegmentSeconds: 2, HasAudio: true, OutputURL: out,
			},
			want: "-hide_banner -loglevel warning -nostats -progress pipe:1 -fflags +genpts -fpsprobesize 0 -f flv -i pipe:0" +
				" -filter_complex [0:v:0]scale=-2:'trunc(min(360,ih)/2)*2',fps=25,format=yuv420p[v0]" +
				" -map [v0] -c:v:0 libx264 -preset:v:0 superfast -tune:v:0 zerolatency -profile:v:0 high" +
				" -b:v:0 800k -maxrate:v:0 880k -bufsize:v:0 1600k -g:v:0 50 -keyint_min:v:0 50 -force_key_frames:v:0 expr:if(lt(n_forced,5),gte(t,n_forced*0.1),gte(t,0.4+(n_forced-4)*2)) -sc_threshold:v:0 0" +
				" -map 0:a:0 -c:a:0 aac -b:a:0 96k -ac:a:0 2" +
				" -max_muxing_queue_size 1024 -f hls -hls_time 2 -hls_init_time 0.1 -hls_list_size 4 -hls_segment_type mpegts" +
				" -hls_flags program_date_time+independent_segments -master_pl_name stream.m3u8 -var_stream_map v:0,a:0" +
				" -method PUT -hls_segment_filename " + out + "%v/seg-%d.ts " + out + "%v/stream.m3u8",
		},
		{
			name: "default transcode with a thumbnail every 5 s",
			job:  Job{Variants: def, SegmentSeconds: 2, HasAudio: true, OutputURL: out, ThumbnailSeconds: 5},
			want: "-hide_banner -loglevel warning -nostats -progress pipe:1 -fflags +genpts -fpsprobesize 0 -f flv -i pipe:0" +
				" -filter_complex [0:v:0]split=2[s0][s1];[s0]scale=-2:'trunc(min(720,ih)/2)*2',fps=30,format=yuv420p[v0];" +
				"[s1]select='isnan(prev_selected_t)+gte(t-prev_selected_t,5)',scale=-2:'trunc(min(720,ih)/2)*2':out_range=full[thumb]" +
				" -map [v0] -c:v:0 libx264 -preset:v:0 veryfast -tune:v:0 zerolatency -profile:v:0 high" +
				" -b:v:0 2500k -maxrate:v:0 2750k -bufsize:v:0 5000k -g:v:0 60 -keyint_min:v:0 60 -force_key_frames:v:0 expr:if(lt(n_forced,5),gte(t,n_forced*0.1),gte(t,0.4+(n_forced-4)*2)) -sc_threshold:v:0 0" +
				" -map 0:a:0 -c:a:0 copy -b:a:0 160k" +
				" -max_muxing_queue_size 1024 -f hls -hls_time 2 -hls_init_time 0.1 -hls_list_size 4 -hls_segment_type mpegts" +
				" -hls_flags program_date_time+independent_segments -master_pl_name stream.m3u8 -var_stream_map v:0,a:0" +
				" -method PUT -hls_segment_filename " + out + "%v/seg-%d.ts " + out + "%v/stream.m3u8" +
				" -map [thumb] -fps_mode passthrough -c:v mjpeg -pix_fmt yuv420p -strict -1 -threads 1 -q:v 4" +
				" -f image2 -update 1 " + out + "thumbnail.jpg",
		},
		{
			name: "passthrough with a thumbnail: key frames only are decoded",
			job: Job{
				Variants:       []Variant{{Name: "source", VideoPassthrough: true, AudioPassthrough: true}},
				SegmentSeconds: 4, HasAudio: true, OutputURL: out, SourceVideoKbps: 4500, SourceAudioKbps: 128, ThumbnailSeconds: 5,
			},
			want: "-hide_banner -loglevel warning -nostats -progress pipe:1 -fflags +genpts -skip_frame nokey -fpsprobesize 0 -f flv -i pipe:0" +
				" -filter_complex [0:v:0]select='isnan(prev_selected_t)+gte(t-prev_selected_t,5)',scale=-2:'trunc(min(720,ih)/2)*2':out_range=full[thumb]" +
				" -map 0:v:0 -c:v:0 copy -b:v:0 4500k -map 0:a:0 -c:a:0 copy -b:a:0 128k" +
				" -max_muxing_queue_size 1024 -f hls -hls_time 4 -hls_init_time 0.1 -hls_list_size 4 -hls_segment_type mpegts" +
				" -hls_flags program_date_time+independent_segments -master_pl_name stream.m3u8 -var_stream_map v:0,a:0" +
				" -method PUT -hls_segment_filename " + out + "%v/seg-%d.ts " + out + "%v/stream.m3u8" +
				" -map [thumb] -fps_mode passthrough -c:v mjpeg -pix_fmt yuv420p -strict -1 -threads 1 -q:v 4" +
				" -f image2 -update 1 " + out + "thumbnail.jpg",
		},
		{
			name: "a transcode and a passthrough with a thumbnail: every frame is decoded anyway",
			job: Job{
				Variants: []Variant{
					{Name: "480p", ScaledWidth: 854, VideoBitrate: 1200, Framerate: 30, CPUUsageLevel: 0},
					{Name: "source", VideoPassthrough: true},
				},
				SegmentSeconds: 2, OutputURL: out, SourceVideoKbps: 3000, ThumbnailSeconds: 10,
			},
			want: "-hide_banner -loglevel warning -nostats -progress pipe:1 -fflags +genpts -fpsprobesize 0 -f flv -i pipe:0" +
				" -filter_complex [0:v:0]split=2[s0][s1];[s0]scale='trunc(min(854,iw)/2)*2':-2,fps=30,format=yuv420p[v0];" +
				"[s1]select='isnan(prev_selected_t)+gte(t-prev_selected_t,10)',scale=-2:'trunc(min(720,ih)/2)*2':out_range=full[thumb]" +
				" -map [v0] -c:v:0 libx264 -preset:v:0 ultrafast -tune:v:0 zerolatency -profile:v:0 high" +
				" -b:v:0 1200k -maxrate:v:0 1320k -bufsize:v:0 2400k -g:v:0 60 -keyint_min:v:0 60 -force_key_frames:v:0 expr:if(lt(n_forced,5),gte(t,n_forced*0.1),gte(t,0.4+(n_forced-4)*2)) -sc_threshold:v:0 0" +
				" -map 0:v:0 -c:v:1 copy -b:v:1 3000k" +
				" -max_muxing_queue_size 1024 -f hls -hls_time 2 -hls_init_time 0.1 -hls_list_size 4 -hls_segment_type mpegts" +
				" -hls_flags program_date_time+independent_segments -master_pl_name stream.m3u8 -var_stream_map v:0 v:1" +
				" -method PUT -hls_segment_filename " + out + "%v/seg-%d.ts " + out + "%v/stream.m3u8" +
				" -map [thumb] -fps_mode passthrough -c:v mjpeg -pix_fmt yuv420p -strict -1 -threads 1 -q:v 4" +
				" -f image2 -update 1 " + out + "thumbnail.jpg",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(Args(tt.job), " "); got != tt.want {
				t.Errorf("Args:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestEffectiveMergesWhatComesOutTheSame: from a 1280x720 source, 1080p
// and 720p both come out 720p at the same rate: one rendition; 480p stays,
// and so does a second 720p at another bit rate.
func TestEffectiveMergesWhatComesOutTheSame(t *testing.T) {
	v := func(name string, h, kbps int) Variant {
		return Variant{Name: name, ScaledHeight: h, VideoBitrate: kbps, Framerate: 30, AudioPassthrough: true, CPUUsageLevel: 2}
	}
	in := []Variant{v("1080p", 1080, 2500), v("720p", 720, 2500), v("480p", 480, 1000), v("720p hq", 720, 4000)}
	got := Effective(in, 1280, 720)
	var names []string
	for _, g := range got {
		names = append(names, fmt.Sprintf("%s:%d", g.Name, g.ScaledHeight))
	}
	if want := "1080p:0 480p:480 720p hq:0"; strings.Join(names, " ") != want {
		t.Errorf("effective variants %v, want %s", names, want)
	}
	if got := Effective(in, 0, 0); len(got) != 4 {
		t.Errorf("with the source unknown, %d variants, want all 4", len(got))
	}
}

// TestArgsHardwareEncoders: each hardware H.264 encoder gets its own
// options (checked against ffmpeg 5.1's help; no hardware here to run
// them), and VA-API its device and the upload to it.
func TestArgsHardwareEncoders(t *testing.T) {
	v := []Variant{{Name: "720p", ScaledHeight: 720, VideoBitrate: 2500, Framerate: 30, CPUUsageLevel: 1, AudioPassthrough: true}}
	for _, tc := range []struct {
		codec string
		want  []string
	}{
		{"h264_nvenc", []string{" -c:v:0 h264_nvenc -preset:v:0 p2 -tune:v:0 ll -profile:v:0 high -rc:v:0 cbr -no-scenecut:v:0 1 -forced-idr:v:0 1 -b:v:0 2500k", ",format=yuv420p[v0]"}},
		{"h264_vaapi", []string{"-fflags +genpts -vaapi_device /dev/dri/renderD128 -fpsprobesize 0 -f flv", ",format=nv12,hwupload[v0]", " -c:v:0 h264_vaapi -profile:v:0 high -b:v:0 2500k"}},
		{"h264_qsv", []string{",format=nv12[v0]", " -c:v:0 h264_qsv -preset:v:0 veryfast -profile:v:0 high"}},
		{"h264_videotoolbox", []string{" -c:v:0 h264_videotoolbox -realtime:v:0 1"}},
		{"h264_v4l2m2m", []string{" -c:v:0 h264_v4l2m2m -b:v:0 2500k"}},
	} {
		got := strings.Join(Args(Job{Codec: tc.codec, Variants: v, SegmentSeconds: 2, HasAudio: true, OutputURL: out}), " ")
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", tc.codec, got, w)
			}
		}
		if strings.Contains(got, "sc_threshold") || strings.Contains(got, "zerolatency") {
			t.Errorf("%s gets x264's options: %s", tc.codec, got)
		}
	}
}

// TestProbeArgs runs the probe on the real ffmpeg: the software encoder
// passes it, and an encoder whose hardware is missing fails it, so it is
// not offered to the admin.
func TestProbeArgs(t *testing.T) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal("ffmpeg is not installed: build/test.sh installs it")
	}
	if out, err := exec.Command(ffmpeg, ProbeArgs("libx264")...).CombinedOutput(); err != nil {
		t.Fatalf("probe of libx264: %v\n%s", err, out)
	}
	// The probe is the broadcast's own encoder options, on a tiny input.
	args := strings.Join(ProbeArgs("h264_vaapi"), " ")
	for _, want := range []string{"-vaapi_device /dev/dri/renderD128", "format=nv12,hwupload", "-c:v:0 h264_vaapi", "-f null -"} {
		if !strings.Contains(args, want) {
			t.Errorf("vaapi probe lacks %q: %s", want, args)
		}
	}
	if _, err := os.Stat("/dev/dri/renderD128"); os.IsNotExist(err) {
		if out, err := exec.Command(ffmpeg, ProbeArgs("h264_vaapi")...).CombinedOutput(); err == nil {
			t.Errorf("probe of h264_vaapi passed without a render node:\n%s", out)
		}
	}
}
