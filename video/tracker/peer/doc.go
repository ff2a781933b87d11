// Package peer is a Go peer of a p2p-media-loader 2.3.1 swarm, for
// conformance tests against real viewers and for load tools.
//
// Viewers' browsers run p2p-media-loader-core 2.3.1: they announce to a
// WebTorrent tracker over WebSocket (bittorrent-tracker 11's client) and
// exchange HLS segments over WebRTC data channels (simple-peer 10) with a
// binary command protocol. This package speaks the same three protocols,
// on github.com/pion/webrtc/v4 and github.com/gorilla/websocket, so that a
// Peer and a browser meet in one swarm and trade segments:
//
//	p, err := peer.Dial(ctx, peer.Config{
//		TrackerURL: "ws://127.0.0.1:8080/tracker",
//		Origin:     "http://127.0.0.1:8080",
//		InfoHash:   tracker.SwarmInfoHash(swarmID, tracker.StreamMain, tracker.StreamShortID(props)),
//	})
//	defer p.Close()
//	p.AddSegment(seq, data)              // serve it and announce it
//	for _, id := range p.Connected() {
//		if slices.Contains(p.Has(id), seq) {
//			b, err := p.Request(ctx, id, seq)
//		}
//	}
//
// The JS sources it mirrors, and the facts checked against browsers, are
// cited where they apply: tracker_client.go (tracker protocol), conn.go
// (peer connections), channel.go and command.go (data channel protocol),
// infohash.go (swarm identity). See also shared/notes/p2p.md, sections 2.2,
// 2.3 and 3.
package peer
