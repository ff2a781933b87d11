package peer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// The expected bytes come from p2p-media-loader-core 2.3.1 itself
// (build/web/node_modules/p2p-media-loader-core/lib, the compiled
// src/p2p/commands), printed by this node script:
//
//	const { serializePeerCommand } = await import(lib + "/p2p/commands/index.js");
//	for (const [c, max] of cmds)
//	  console.log(JSON.stringify(c), max,
//	    JSON.stringify(serializePeerCommand(c, max).map(b => Buffer.from(b).toString("hex"))));
var jsCommands = []struct {
	js    string // the command as given to serializePeerCommand
	cmd   command
	max   int
	parts []string
}{
	{`{"c":1,"i":8,"r":123}`, command{Type: cmdSegmentRequest, SegmentID: 8, RequestID: 123}, 65535,
		[]string{"637374720169010872017b63656e64"}}, // shared/notes/p2p.md 2.3
	{`{"c":0,"l":[5,6,7,300]}`, command{Type: cmdSegmentsAnnouncement, Loaded: []int64{5, 6, 7, 300}}, 65535,
		[]string{"63737472006c100201030506070201012c63656e64"}}, // shared/notes/p2p.md 2.3
	{`{"c":0}`, command{Type: cmdSegmentsAnnouncement}, 65535,
		[]string{"637374720063656e64"}},
	{`{"c":0,"l":[],"p":[1]}`, command{Type: cmdSegmentsAnnouncement, HTTPLoading: []int64{1}}, 65535,
		[]string{"637374720070100101010163656e64"}},
	{`{"c":0,"l":[300,5,301,6,-1,-2,-300],"p":[18000000000,18000000001,17999999999]}`,
		command{Type: cmdSegmentsAnnouncement, Loaded: []int64{300, 5, 301, 6, -1, -2, -300}, HTTPLoading: []int64{18000000000, 18000000001, 17999999999}}, 65535,
		[]string{"63737472006c10040201022c2d010205060280fefffe0281ffd4701002050430e234020001050430e23301ff63656e64"}},
	{`{"c":1,"i":0,"r":0}`, command{Type: cmdSegmentRequest}, 65535,
		[]string{"637374720169010072010063656e64"}},
	{`{"c":1,"i":18000000000,"r":999,"b":65535}`, command{Type: cmdSegmentRequest, SegmentID: 18000000000, RequestID: 999, ByteFrom: 65535}, 65535,
		[]string{"637374720169050430e23400720203e7620300ffff63656e64"}},
	{`{"c":1,"i":-1,"r":1,"b":0}`, command{Type: cmdSegmentRequest, SegmentID: -1, RequestID: 1}, 65535,
		[]string{"637374720169018172010163656e64"}},
	{`{"c":2,"i":127,"r":128,"s":1048576}`, command{Type: cmdSegmentData, SegmentID: 127, RequestID: 128, Size: 1048576}, 65535,
		[]string{"637374720269017f73031000007202008063656e64"}},
	{`{"c":2,"i":-128,"r":255,"s":0}`, command{Type: cmdSegmentData, SegmentID: -128, RequestID: 255}, 65535,
		[]string{"637374720269028080730100720200ff63656e64"}},
	{`{"c":3,"i":32767,"r":32768}`, command{Type: cmdSegmentDataSendingCompleted, SegmentID: 32767, RequestID: 32768}, 65535,
		[]string{"637374720369027fff720300800063656e64"}},
	{`{"c":4,"i":-32768,"r":-32769}`, command{Type: cmdSegmentAbsent, SegmentID: -32768, RequestID: -32769}, 65535,
		[]string{"63737472046903808000720380800163656e64"}},
	{`{"c":5,"i":9007199254740991,"r":-9007199254740991}`, command{Type: cmdCancelSegmentRequest, SegmentID: 1<<53 - 1, RequestID: -(1<<53 - 1)}, 65535,
		[]string{"637374720569071fffffffffffff72079fffffffffffff63656e64"}},
	{`{"c":5,"i":1099511627776,"r":549755813887}`, command{Type: cmdCancelSegmentRequest, SegmentID: 1 << 40, RequestID: 1<<39 - 1}, 65535,
		[]string{"6373747205690601000000000072057fffffffff63656e64"}},
	{`{"c":0,"l":[1..20]}`, command{Type: cmdSegmentsAnnouncement, Loaded: seq(1, 20)}, 16,
		[]string{"63737472006c1001011401020364656e64", "647374720405060708090a0b0c64656e64", "647374720d0e0f101112131463656e64"}},
	{`{"c":0,"l":[1..21]}`, command{Type: cmdSegmentsAnnouncement, Loaded: seq(1, 21)}, 17,
		[]string{"63737472006c1001011501020364656e64", "647374720405060708090a0b0c64656e64", "647374720d0e0f10111213141563656e64"}},
}

// sameCommand compares commands; an announcement's ids come back grouped
// by their 256-block, so they are compared sorted.
func sameCommand(a, b command) bool {
	a.Loaded, b.Loaded = slices.Sorted(slices.Values(a.Loaded)), slices.Sorted(slices.Values(b.Loaded))
	a.HTTPLoading, b.HTTPLoading = slices.Sorted(slices.Values(a.HTTPLoading)), slices.Sorted(slices.Values(b.HTTPLoading))
	return reflect.DeepEqual(a, b)
}

func seq(from, to int64) []int64 {
	var s []int64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func TestCommandsMatchJS(t *testing.T) {
	for _, tc := range jsCommands {
		t.Run(tc.js, func(t *testing.T) {
			parts := tc.cmd.encode(tc.max)
			var got []string
			for _, p := range parts {
				got = append(got, hex.EncodeToString(p))
			}
			if !reflect.DeepEqual(got, tc.parts) {
				t.Fatalf("encode:\n got %q\nwant %q", got, tc.parts)
			}
			// And the JS bytes decode to the command.
			back := decodeParts(t, tc.parts)
			if !sameCommand(back, tc.cmd) {
				t.Fatalf("decode: got %+v, want %+v", back, tc.cmd)
			}
		})
	}
}

// decodeParts joins and decodes the hex messages of one command.
func decodeParts(t *testing.T, parts []string) command {
	t.Helper()
	var j joiner
	for i, h := range parts {
		m, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		if !isCommandChunk(m) {
			t.Fatalf("part %d is not a command chunk", i)
		}
		body, complete, err := j.add(m)
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if complete != (i == len(parts)-1) {
			t.Fatalf("part %d: complete = %v", i, complete)
		}
		if complete {
			c, err := decodeCommand(body)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
	t.Fatal("no complete command")
	return command{}
}

// TestBigAnnouncementMatchesJS: a live announcement as large as the format
// allows (255 groups of 255 ids around media sequence 1.8e10) is split in
// two messages, which JS makes of 33288 and 33287 bytes with these SHA-256:
//
//	const start = Math.floor(18000000000 / 256) * 256; const big = [];
//	for (let g = 0; g < 255; g++) for (let j = 0; j < 255; j++) big.push(start + g * 256 + j);
//	const parts = serializePeerCommand({c:0, l: big}, 65535);
//	console.log(parts.map(p => p.length), parts.map(p => createHash("sha256").update(p).digest("hex")));
func TestBigAnnouncementMatchesJS(t *testing.T) {
	start := int64(18000000000) / 256 * 256
	var ids []int64
	for g := range int64(255) {
		for j := range int64(255) {
			ids = append(ids, start+g*256+j)
		}
	}
	parts := command{Type: cmdSegmentsAnnouncement, Loaded: ids}.encode(maxMessageSize)
	want := []struct {
		n   int
		sum string
	}{
		{33288, "7042dddaeb9c35b3f974c24985c3373b4b6c82b412cfdfe4b58b84e6698ab980"},
		{33287, "774d1ea81378c6e877e16b8a149819c2ae81d622c633c6f55238a0614f7369ab"},
	}
	if len(parts) != len(want) {
		t.Fatalf("%d parts, want %d", len(parts), len(want))
	}
	var hexParts []string
	for i, p := range parts {
		sum := sha256.Sum256(p)
		if len(p) != want[i].n || hex.EncodeToString(sum[:]) != want[i].sum {
			t.Errorf("part %d: %d bytes, sha256 %x; want %d, %s", i, len(p), sum, want[i].n, want[i].sum)
		}
		hexParts = append(hexParts, hex.EncodeToString(p))
	}
	if got := decodeParts(t, hexParts).Loaded; !reflect.DeepEqual(got, ids) {
		t.Fatalf("round trip lost ids: %d of %d", len(got), len(ids))
	}
}

// TestAnnouncementLimits: where the JS encoder writes a count modulo 256
// (a group of 256 ids, more than 255 groups), ours stays decodable.
func TestAnnouncementLimits(t *testing.T) {
	t.Run("a whole block of 256", func(t *testing.T) {
		ids := seq(512, 767)
		got := roundTrip(t, command{Type: cmdSegmentsAnnouncement, Loaded: ids})
		if !reflect.DeepEqual(got.Loaded, ids) {
			t.Fatalf("got %d ids, want 256", len(got.Loaded))
		}
	})
	t.Run("300 groups keep the last 255", func(t *testing.T) {
		var ids []int64
		for g := range int64(300) {
			ids = append(ids, g*256)
		}
		got := roundTrip(t, command{Type: cmdSegmentsAnnouncement, Loaded: ids})
		if !reflect.DeepEqual(got.Loaded, ids[45:]) {
			t.Fatalf("got %d ids from %d, want the last 255", len(got.Loaded), got.Loaded[0])
		}
	})
}

func roundTrip(t *testing.T, c command) command {
	t.Helper()
	var hexParts []string
	for _, p := range c.encode(maxMessageSize) {
		if len(p) > maxMessageSize {
			t.Fatalf("message of %d bytes", len(p))
		}
		hexParts = append(hexParts, hex.EncodeToString(p))
	}
	return decodeParts(t, hexParts)
}

func TestIntEncoding(t *testing.T) {
	for _, tc := range []struct {
		v    int64
		want string
	}{
		{0, "0100"},
		{1, "0101"},
		{-1, "0181"},
		{127, "017f"},
		{128, "020080"},
		{-127, "01ff"},
		{-128, "028080"},
		{18000000000, "050430e23400"}, // a live media sequence number: 5 bytes
		{1<<39 - 1, "057fffffffff"},
		{1 << 39, "06008000000000"},
		{math.MaxInt64, "087fffffffffffffff"},
		{math.MinInt64 + 1, "08ffffffffffffffff"},
		{math.MinInt64, "09808000000000000000"},
	} {
		got := hex.EncodeToString(appendInt(nil, tc.v))
		if got != tc.want {
			t.Errorf("appendInt(%d) = %s, want %s", tc.v, got, tc.want)
		}
		v, n, err := readInt(appendInt(nil, tc.v))
		if err != nil || v != tc.v || n != len(got)/2 {
			t.Errorf("readInt(%s) = %d, %d, %v", got, v, n, err)
		}
	}
}

func TestCommandRoundTrips(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	anyInt := func() int64 {
		switch r.IntN(4) {
		case 0:
			return r.Int64N(2000) - 1000
		case 1:
			return 18_000_000_000 + r.Int64N(1000)
		case 2:
			return -r.Int64()
		}
		return r.Int64()
	}
	ids := func() []int64 {
		n := r.IntN(40)
		if n == 0 {
			return nil
		}
		s := make([]int64, n)
		for i := range s {
			s[i] = anyInt()
		}
		return s
	}
	for i := range 2000 {
		c := command{Type: commandType(r.IntN(6))}
		switch c.Type {
		case cmdSegmentsAnnouncement:
			c.Loaded, c.HTTPLoading = ids(), ids()
		case cmdSegmentRequest:
			c.SegmentID, c.RequestID = anyInt(), anyInt()
			if r.IntN(2) == 0 {
				c.ByteFrom = anyInt()
			}
		case cmdSegmentData:
			c.SegmentID, c.RequestID, c.Size = anyInt(), anyInt(), anyInt()
		default:
			c.SegmentID, c.RequestID = anyInt(), anyInt()
		}
		// Small limits make many parts. The JS splitting goes over a limit
		// that is not much larger than its 8 frame bytes times the parts
		// (it adds at most one part); at 65535 it never does.
		maxChunk := maxMessageSize
		if i%3 == 0 {
			maxChunk = 9 + r.IntN(30)
		}
		var hexParts []string
		for _, p := range c.encode(maxChunk) {
			if maxChunk == maxMessageSize && len(p) > maxChunk {
				t.Fatalf("%+v: part of %d bytes > %d", c, len(p), maxChunk)
			}
			hexParts = append(hexParts, hex.EncodeToString(p))
		}
		if got := decodeParts(t, hexParts); !sameCommand(got, c) {
			t.Fatalf("max %d: got %+v, want %+v", maxChunk, got, c)
		}
	}
}

func TestDecodeHostile(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string // hex
	}{
		{"empty", ""},
		{"unknown command", "06"},
		{"name without value", "0169"},
		{"truncated int", "016903"},
		{"int longer than 64 bits", "01690affffffffffffffffffff7201007301"},
		{"unknown type", "016930"},
		{"array where an int goes", "0169100101000172010173"},
		{"int where an array goes", "006c0101"},
		{"truncated array count", "006c10"},
		{"truncated array", "006c10020101"},
		{"truncated string", "0178200561"},
		{"request without r", "01690101"},
		{"data without s", "0269010172010a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := hex.DecodeString(tc.body)
			if c, err := decodeCommand(b); !errors.Is(err, errBadCommand) {
				t.Fatalf("decodeCommand(%s) = %+v, %v; want errBadCommand", tc.body, c, err)
			}
		})
	}
	t.Run("unknown fields are skipped", func(t *testing.T) {
		body := []byte{byte(cmdSegmentAbsent)}
		body = appendIntField(body, 'i', 7)
		body, _ = appendString(append(body, 'x'), "hello")
		body = append(body, 'y')
		body = appendSimilarIntArray(body, []int64{1, 2})
		body = appendIntField(body, 'r', 3)
		c, err := decodeCommand(body)
		if err != nil || c.SegmentID != 7 || c.RequestID != 3 {
			t.Fatalf("got %+v, %v", c, err)
		}
	})
	t.Run("zero-length int is 0 as in JS", func(t *testing.T) {
		c, err := decodeCommand([]byte{1, 'i', 0x00, 'r', 0x01, 5})
		if err != nil || c.SegmentID != 0 || c.RequestID != 5 {
			t.Fatalf("got %+v, %v", c, err)
		}
	})
}

func TestIsCommandChunk(t *testing.T) {
	for _, tc := range []struct {
		m    string
		want bool
	}{
		{"cstrcend", true},
		{"cstr\x01dend", true},
		{"dstr\x01dend", true},
		{"dstr\x01cend", true},
		{"cstr", false},
		{"cend", false},
		{"cstrXcen", false},
		{"xstr\x01cend", false},
		{"", false},
		{"\x47\x40\x11\x10", false}, // the start of a TS segment
	} {
		if got := isCommandChunk([]byte(tc.m)); got != tc.want {
			t.Errorf("isCommandChunk(%q) = %v", tc.m, got)
		}
	}
}

func TestJoinerOutOfOrder(t *testing.T) {
	var j joiner
	if _, _, err := j.add([]byte("dstr\x01cend")); err == nil {
		t.Fatal("a dstr part without a first part was accepted")
	}
	// A cstr part in the middle of a join starts a new command.
	if _, complete, _ := j.add([]byte("cstr\x04dend")); complete {
		t.Fatal("complete after a dend part")
	}
	first := command{Type: cmdSegmentAbsent, SegmentID: 1, RequestID: 2}.encode(maxMessageSize)[0]
	body, complete, err := j.add(first)
	if err == nil || !complete {
		t.Fatalf("complete = %v, err = %v; want a complete command and an error for the dropped one", complete, err)
	}
	if c, err := decodeCommand(body); err != nil || c.SegmentID != 1 || c.RequestID != 2 {
		t.Fatalf("got %+v, %v", c, err)
	}
}
