package tracker

import (
	"math"
	"testing"
)

// The expected values come from p2p-media-loader-core 2.3.1 itself
// (build/web/node_modules/p2p-media-loader-core/lib, compiled from
// src/utils/stream.ts and src/utils/peer.ts), printed by this node script:
//
//	const { getStreamHash } = await import(lib + "/utils/peer.js");
//	const { generateStreamShortId, getStreamSwarmId } = await import(lib + "/utils/stream.js");
//	for (const p of props) {
//	  const index = generateStreamShortId(p);
//	  console.log(JSON.stringify(p), index,
//	    getStreamHash(getStreamSwarmId("http://127.0.0.1:8090/live/index.m3u8", {type: "main", index})),
//	    getStreamHash(getStreamSwarmId("starling", {type: "secondary", index})));
//	}
//
// The same script checked that the SHA-1 of src/utils/hash.ts equals
// node's crypto SHA-1 of the UTF-8 bytes for 300 strings of 0-299
// characters mixing 1- to 4-byte characters; SwarmInfoHash uses crypto/sha1.
func TestStreamIdentityMatchesJS(t *testing.T) {
	for _, tc := range []struct {
		js                     string
		props                  StreamProps
		index, main, secondary string
	}{
		// shared/notes/p2p.md 2.1: a media playlist alone, as the browser sent.
		{`{"bitrate":0}`, StreamProps{},
			"UYnLxGhQilEV4D0HbCx+kRv0ZF0=", "XGUHNC+rjOQJsI5ORG2h", "OBdozKVL2np0RGawSw2J"},
		{`{"bitrate":2500000,"codecs":"avc1.64001f","width":1280,"height":720,"frameRate":"30.000","videoRange":"SDR"}`,
			StreamProps{Bitrate: 2500000, Codecs: "avc1.64001f", Width: 1280, Height: 720, FrameRate: "30.000", VideoRange: "SDR"},
			"HReZsXX4hl/xzM0wlvAY3BHzZrk=", "xZaKrXnK10/fZ6ARmRR4", "0JRiA7strSBY/ZwFJrbG"},
		{`{"bitrate":800000,"codecs":"AVC1.66.30, mp4a.40.2","width":640,"height":360,"frameRate":"29.970"}`,
			StreamProps{Bitrate: 800000, Codecs: "AVC1.66.30, mp4a.40.2", Width: 640, Height: 360, FrameRate: "29.970"},
			"1niPPptA+9E1ZAGRrTigKbWuvwM=", "8leokKm4pTvYcs3ugA7d", "EVk5fNn+P2/u63vQxLNz"},
		{`{"bitrate":0,"codecs":"mp4a.40.2","language":"en-US","channels":"2","name":" English "}`,
			StreamProps{Codecs: "mp4a.40.2", Language: "en-US", Channels: "2", Name: " English "},
			"bdjQ1B4N2yrcTDHyU5j7iDGV9sY=", "wnAdJpEuGbn+tfhsMwUi", "R9CEQxDhcFgJNe2jBTnZ"},
		{`{"bitrate":0,"codecs":"ec-3","language":"und","channels":"16/JOC","name":"ΟΔΟΣ ΕΝΑ"}`,
			StreamProps{Codecs: "ec-3", Language: "und", Channels: "16/JOC", Name: "ΟΔΟΣ ΕΝΑ"},
			"V5kVowddeUARZbFfxOImaJ9kW9Y=", "40yBFq1G3dysNpxHhQut", "QnsKl7C3Lxef6nzq+1Bw"},
		{`{"bitrate":0,"name":"İstanbul\uFEFF","language":"ΕΛ"}`,
			StreamProps{Name: "İstanbul\uFEFF", Language: "ΕΛ"},
			"yY5yV+DFdxHoxTmLTaw7Ly64KcI=", "P+lL6h0DhYBS40jr3m+i", "PTjCuOZ2gceMvzqTHY4o"},
		{`{"bitrate":1,"frameRate":"0x1e"}`, StreamProps{Bitrate: 1, FrameRate: "0x1e"},
			"Vc5qN8f8ELyEdFrCQvXYN2h5fwE=", "xNz00t2KQrE5O4GrvQ0V", "7FS1sYW9GvuRBaIXqdaP"},
		{`{"bitrate":1,"frameRate":" 25 "}`, StreamProps{Bitrate: 1, FrameRate: " 25 "},
			"hH+5utuDf7CLTYY3nhZn1ciceFM=", "yqam0SiTvcMrghb21oLR", "9SEhL8TwvTnDxwAhYRZn"},
		{`{"bitrate":1,"frameRate":"1e1"}`, StreamProps{Bitrate: 1, FrameRate: "1e1"},
			"bbe3qR12T4J5kecdwbw/aomGyA8=", "ydbz/H8TjP4TO6Ex0o5g", "z1wGaWyGw1pCdBDMnyxR"},
		{`{"bitrate":1,"frameRate":"abc"}`, StreamProps{Bitrate: 1, FrameRate: "abc"},
			"I+Z3Ih0ME7NzA+a4i2rHF8Q9Wq4=", "NtywSJkKck/BVCJMoV95", "F+ZjsnYETl47Kdck/quf"},
		{`{"bitrate":1,"frameRate":"0.00000015"}`, StreamProps{Bitrate: 1, FrameRate: "0.00000015"},
			"jO3k2QyKltmRKX7+aQe/QSVGTnM=", "zA/B+Nk/X8bnXUnT6Nf5", "iToCBkucVAmfaUVnbG9/"},
		{`{"bitrate":1,"frameRate":"1e21"}`, StreamProps{Bitrate: 1, FrameRate: "1e21"},
			"RdSw1MxiCUoPBst9tQR18+sh9Aw=", "/M3mfvW07Z5Es5yfAvHR", "VH6dlpqj1a2hG2pAPyPK"},
		{`{"bitrate":1,"codecs":"avc1.100.41,avc1.77.40,avc1.066.30"}`, StreamProps{Bitrate: 1, Codecs: "avc1.100.41,avc1.77.40,avc1.066.30"},
			"Ntn+WAHna+Lm6t9RaOKyZGc9ebk=", "zEr7HFxKDds+24UGiqMI", "recegnro4dQfiTlqoHvP"},
		{`{"bitrate":1,"codecs":"avc.-1.30,avc1.9007199254740993.1"}`, StreamProps{Bitrate: 1, Codecs: "avc.-1.30,avc1.9007199254740993.1"},
			"tueuQdlAQkXxoHGGR7aFl0Uc+Rg=", "cMZA4Q8v6/IAbmagXhcO", "MWbvnS1iT2GSAJ0SFTg9"},
		// UTF-16 order puts U+1F600 (a surrogate pair) before U+FF01; UTF-8 order would not.
		{`{"bitrate":1,"codecs":"x\u{1F600},x\uFF01"}`, StreamProps{Bitrate: 1, Codecs: "x\U0001F600,x\uFF01"},
			"iMjFWZyrzFRoLVRhNfcajbqXb6U=", "cgD86ESYQDIxdcKIb/7o", "6Ru68REDuFKETupOFfKq"},
		{`{"bitrate":12345678901,"videoRange":" pq ","channels":"6"}`, StreamProps{Bitrate: 12345678901, VideoRange: " pq ", Channels: "6"},
			"Na4SUq4+EKV3OmVE2vAjW3OYyDY=", "v19W6hGHWErGmgtoSeFb", "9MBhz/363K1VtGExtAuv"},
	} {
		t.Run(tc.js, func(t *testing.T) {
			index := StreamShortID(tc.props)
			if index != tc.index {
				t.Fatalf("StreamShortID = %s, want %s", index, tc.index)
			}
			if got := SwarmInfoHash("http://127.0.0.1:8090/live/index.m3u8", StreamMain, index); got != tc.main {
				t.Errorf("InfoHash main = %s, want %s", got, tc.main)
			}
			if got := SwarmInfoHash("starling", StreamSecondary, index); got != tc.secondary {
				t.Errorf("InfoHash secondary = %s, want %s", got, tc.secondary)
			}
		})
	}
}

func TestJSNumbers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"30.000", "30"}, {"29.970", "29.97"}, {"", "0"}, {"  ", "0"}, {"0x1E", "30"}, {"0b101", "5"},
		{"0o17", "15"}, {"-0x1", "NaN"}, {"0x", "NaN"}, {"1e400", "Infinity"}, {"-Infinity", "-Infinity"},
		{"inf", "NaN"}, {"1_000", "NaN"}, {".5", "0.5"}, {"5.", "5"}, {"1e-7", "1e-7"}, {"0.000001", "0.000001"},
		{"123456789012345678901", "123456789012345680000"}, {"1e21", "1e+21"}, {"-0", "0"}, {"\u00a030\ufeff", "30"},
		{"\u008530", "NaN"}, // U+0085 is not JS white space
	} {
		if got := jsNumberString(jsToNumber(tc.in)); got != tc.want {
			t.Errorf("String(Number(%q)) = %s, want %s", tc.in, got, tc.want)
		}
	}
	if !math.IsNaN(jsToNumber("12px")) {
		t.Error("Number(\"12px\") is not NaN")
	}
}
