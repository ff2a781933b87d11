package controllers

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/starling-live/starling/core"
)

// Metrics serves Prometheus metrics. Every value is read when scraped; the
// registry is this server's own, not the library's global one.
func (h *Handlers) Metrics() http.Handler {
	reg := prometheus.NewRegistry()
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	counter := func(name, help string, labels prometheus.Labels, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, f))
	}
	playback := func(f func(core.PlaybackStats) float64) func() float64 {
		return func() float64 { return f(h.deps.Playback.Stats(time.Now())) }
	}
	boolean := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}

	gauge("starling_stream_online", "1 while a broadcast is live.", func() float64 { return boolean(h.deps.Stream.Status().Online) })
	gauge("starling_tracker_connections", "Open tracker WebSockets.", func() float64 { return float64(h.deps.Tracker.Stats().Connections) })
	gauge("starling_tracker_swarms", "Swarms (one per rendition being watched with P2P).", func() float64 { return float64(h.deps.Tracker.Stats().Swarms) })
	gauge("starling_tracker_peers", "Peers in all swarms.", func() float64 { return float64(h.deps.Tracker.Stats().Peers) })
	counter("starling_tracker_announces_total", "Announces served.", nil, func() float64 { return float64(h.deps.Tracker.Stats().Announces) })
	counter("starling_tracker_offers_relayed_total", "WebRTC offers relayed between viewers.", nil, func() float64 { return float64(h.deps.Tracker.Stats().OffersRelayed) })
	counter("starling_tracker_answers_relayed_total", "WebRTC answers relayed back to the offering viewer.", nil, func() float64 { return float64(h.deps.Tracker.Stats().AnswersRelayed) })
	counter("starling_tracker_answers_dropped_total", "Answers to offers never relayed to their sender.", nil, func() float64 { return float64(h.deps.Tracker.Stats().AnswersDropped) })
	counter("starling_tracker_refused_total", "Requests refused by the tracker's limits or allowlist.", nil, func() float64 { return float64(h.deps.Tracker.Stats().Refused) })
	gauge("starling_viewers", "Viewers whose page reported in the last 30 s.", playback(func(s core.PlaybackStats) float64 { return float64(s.Viewers) }))
	gauge("starling_p2p_viewers", "Of those, viewers with P2P on.", playback(func(s core.PlaybackStats) float64 { return float64(s.P2PViewers) }))
	counter("starling_segment_bytes_total", "Segment bytes viewers received, by source.", prometheus.Labels{"source": "http"}, playback(func(s core.PlaybackStats) float64 { return float64(s.HTTPBytes) }))
	counter("starling_segment_bytes_total", "Segment bytes viewers received, by source.", prometheus.Labels{"source": "p2p"}, playback(func(s core.PlaybackStats) float64 { return float64(s.P2PBytes) }))
	counter("starling_p2p_uploaded_bytes_total", "Bytes viewers sent to each other.", nil, playback(func(s core.PlaybackStats) float64 { return float64(s.P2PUploadedBytes) }))
	counter("starling_p2p_rejected_segments_total", "Segments from peers that failed the SHA-256 check.", nil, playback(func(s core.PlaybackStats) float64 { return float64(s.P2PRejectedSegments) }))
	gauge("starling_p2p_offload_ratio", "Share of segment bytes viewers got from each other over the last minute.", playback(func(s core.PlaybackStats) float64 { return s.OffloadRatio }))
	gauge("starling_chat_clients", "Open chat connections.", func() float64 { return float64(h.deps.Chat.Stats().Clients) })
	gauge("starling_chat_users", "Distinct users behind the chat connections.", func() float64 { return float64(h.deps.Chat.Stats().Users) })
	counter("starling_chat_messages_total", "Chat messages sent since the server started.", nil, func() float64 { return float64(h.deps.Chat.Stats().Messages) })
	counter("starling_chat_dropped_slow_clients_total", "Chat clients dropped for not keeping up.", nil, func() float64 { return float64(h.deps.Chat.Stats().Dropped) })
	gauge("starling_viewers_session_peak", "Peak viewers of the current or last broadcast.", func() float64 { s, _ := h.deps.Viewers.Peaks(); return float64(s) })
	gauge("starling_viewers_overall_peak", "Peak viewers ever.", func() float64 { _, o := h.deps.Viewers.Peaks(); return float64(o) })
	health := func(f func(core.StreamHealth) float64) func() float64 {
		return func() float64 { return f(h.deps.Health.Health()) }
	}
	gauge("starling_ingest_bitrate_kbps", "What the publisher sends, over the last 5 s.", health(func(s core.StreamHealth) float64 { return s.IngestBitrateKbps }))
	gauge("starling_ingest_framerate", "Frames a second the publisher sends, over the last 5 s.", health(func(s core.StreamHealth) float64 { return s.IngestFramerate }))
	gauge("starling_ingest_keyframe_interval_seconds", "Time between the publisher's last two key frames.", health(func(s core.StreamHealth) float64 { return s.KeyframeIntervalSeconds }))
	gauge("starling_transcoder_speed", "ffmpeg's speed over the last 5 s; below 1 it cannot keep up.", health(func(s core.StreamHealth) float64 { return s.TranscoderSpeed }))
	gauge("starling_transcoder_dropped_frames", "Frames ffmpeg dropped in this broadcast.", health(func(s core.StreamHealth) float64 { return float64(s.DroppedFrames) }))
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
