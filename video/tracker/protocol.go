package tracker

import (
	"encoding/json"
	"unicode/utf8"
)

// The WebTorrent tracker protocol over WebSocket, as p2p-media-loader
// 2.3.1 speaks it through bittorrent-tracker 11's client
// (webtorrent/bittorrent-tracker lib/client/websocket-tracker.js; the
// server side in server.js and lib/server/parse-websocket.js). There is no
// written spec; ../../../shared/notes/p2p.md section 3 has the contract as
// checked against real browsers.

// request is a message from a client.
type request struct {
	Action string `json:"action"`
	// InfoHash is a string, or for scrape also an array of strings.
	InfoHash json.RawMessage `json:"info_hash"`
	PeerID   string          `json:"peer_id"`
	Event    string          `json:"event"`
	NumWant  *int            `json:"numwant"`
	Offers   []offer         `json:"offers"`
	Answer   json.RawMessage `json:"answer"`
	ToPeerID string          `json:"to_peer_id"`
	OfferID  string          `json:"offer_id"`
}

type offer struct {
	Offer   json.RawMessage `json:"offer"`
	OfferID string          `json:"offer_id"`
}

// announceReply answers an announce.
type announceReply struct {
	Action     string `json:"action"`
	Interval   int    `json:"interval"`
	InfoHash   string `json:"info_hash"`
	Complete   int    `json:"complete"`
	Incomplete int    `json:"incomplete"`
}

// relay carries an offer to the peer chosen for it, or an answer back to
// the peer that made the offer.
type relay struct {
	Action   string          `json:"action"`
	Offer    json.RawMessage `json:"offer,omitempty"`
	Answer   json.RawMessage `json:"answer,omitempty"`
	OfferID  string          `json:"offer_id"`
	PeerID   string          `json:"peer_id"`
	InfoHash string          `json:"info_hash"`
}

// failure tells a client what was wrong. Clients show it only when it
// names their info hash, and treat a message without "action" as a broken
// socket, so both are always set where known.
type failure struct {
	Action   string `json:"action"`
	InfoHash string `json:"info_hash,omitempty"`
	Reason   string `json:"failure reason"`
}

type scrapeReply struct {
	Action string                 `json:"action"`
	Files  map[string]scrapeStats `json:"files"`
}

type scrapeStats struct {
	Complete   int `json:"complete"`
	Incomplete int `json:"incomplete"`
	Downloaded int `json:"downloaded"`
}

// validID reports whether s is a BitTorrent id as the JS client sends it:
// a "binary string" of 20 characters, each a byte value (0-255).
func validID(s string) bool {
	if utf8.RuneCountInString(s) != 20 {
		return false
	}
	for _, r := range s {
		if r > 0xff {
			return false
		}
	}
	return true
}

// infoHashes decodes the info_hash field: one string, or a list (scrape).
func infoHashes(raw json.RawMessage) ([]string, bool) {
	if len(raw) == 0 {
		return nil, true
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, true
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil && len(many) <= 64 {
		return many, true
	}
	return nil, false
}

// isObject reports whether raw is a JSON object, as an offer or answer
// (an RTCSessionDescription) must be.
func isObject(raw json.RawMessage) bool {
	var m map[string]json.RawMessage
	return len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, &m) == nil
}
