package tracker

import (
	"crypto/sha1" //nolint:gosec // the protocol's hash, not a security boundary
	"encoding/base64"
	"errors"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
)

// Swarm identity as p2p-media-loader-core 2.3.1 derives it. Peers meet only
// if they compute the same info hash, so these mirror the JS exactly,
// including its number and string conversions:
//   - src/utils/stream.ts: getStreamSwarmId, generateStreamShortId;
//   - src/utils/peer.ts: getStreamHash;
//   - src/utils/hash.ts: a SHA-1 of the UTF-8 bytes (checked against
//     crypto/sha1 in the tests).

// StreamType is the type part of a stream's swarm id.
type StreamType string

const (
	// StreamMain is a variant (an hls.js level), or a media playlist alone.
	StreamMain StreamType = "main"
	// StreamSecondary is an alternative audio rendition (an hls.js audio track).
	StreamSecondary StreamType = "secondary"
)

// SwarmInfoHash is the info hash a p2p-media-loader 2.3.1 viewer announces
// for a stream: "v2-" + swarmID + "-" + type + "-" + index is hashed with SHA-1,
// and the first 15 bytes of the hash are written in base64, which gives 20
// ASCII characters (getStreamHash(getStreamSwarmId(...))).
//
// swarmID is the engine's swarmId setting, or else the master playlist URL
// without its query; index is the StreamShortID of the stream.
func SwarmInfoHash(swarmID string, typ StreamType, index string) string {
	sum := sha1.Sum([]byte("v2-" + swarmID + "-" + string(typ) + "-" + index)) //nolint:gosec // protocol hash
	return base64.StdEncoding.EncodeToString(sum[:15])
}

// StreamProps are the properties of a stream that name it in its swarm id
// (GenerateStreamShortIdProps). Empty strings and zero numbers stand for
// JS null/undefined, which is how the hls.js engine passes a missing
// attribute; a RESOLUTION of 0x0 cannot be told from none.
//
// The hls.js engine (p2p-media-loader-hlsjs src/segment-manager.ts) fills
// them like this:
//   - a level (StreamMain): Bitrate = the BANDWIDTH (hls.js maxBitrate, else
//     bitrate), Codecs = hls.js's videoCodec of the level (the video codec
//     alone, not the whole CODECS attribute), Width and Height from
//     RESOLUTION, FrameRate = the FRAME-RATE attribute text, VideoRange =
//     the VIDEO-RANGE attribute. When the bitrate is 0 (a media playlist
//     without a master) everything but Bitrate is left out, which gives
//     the string "0--------".
//   - an audio track (StreamSecondary): Bitrate 0, Codecs = its audioCodec,
//     Language = LANGUAGE, Channels = CHANNELS, Name = NAME.
type StreamProps struct {
	Bitrate    int64
	Codecs     string // comma-separated
	Width      int
	Height     int
	Language   string
	Channels   string // e.g. "2" or "16/JOC"
	Name       string
	FrameRate  string // the attribute text, e.g. "30.000"; a JS Number() conversion applies
	VideoRange string
}

// StreamShortID is generateStreamShortId of p2p-media-loader-core 2.3.1:
// the base64 of the SHA-1 of
// "bitrate-codecs-width-height-language-channels-name-frameRate-videoRange",
// each part normalised as the JS does (codecs trimmed, lower-cased, decimal
// avc1 profiles written in hex, sorted; language cut to 2 letters and
// lower-cased unless "und"; channels up to "/"; name lower-cased and
// trimmed; frame rate through Number(); video range upper-cased and trimmed).
//
// Case mapping is Unicode's, with the multi-character mappings JS applies
// to İ, final Σ and ß; other SpecialCasing.txt mappings are left out
// (playlist attributes are ASCII in practice).
func StreamShortID(p StreamProps) string {
	var frameRate string
	if p.FrameRate != "" {
		if f := jsToNumber(p.FrameRate); !math.IsNaN(f) {
			frameRate = jsNumberString(f)
		}
	}
	var language string
	if p.Language != "" && p.Language != "und" {
		language = jsLower(jsSlice(p.Language, 2))
	}
	channels, _, _ := strings.Cut(p.Channels, "/")
	s := strconv.FormatInt(p.Bitrate, 10) + "-" +
		normalizeCodecs(p.Codecs) + "-" +
		optionalInt(p.Width) + "-" +
		optionalInt(p.Height) + "-" +
		language + "-" +
		channels + "-" +
		jsTrim(jsLower(p.Name)) + "-" +
		frameRate + "-" +
		jsTrim(jsUpper(p.VideoRange))
	sum := sha1.Sum([]byte(s)) //nolint:gosec // protocol hash
	return base64.StdEncoding.EncodeToString(sum[:])
}

func optionalInt(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

var jsCanonicalInt = regexp.MustCompile(`^(0|-?[1-9][0-9]*)$`)

// normalizeCodecs is the codecs part of generateStreamShortId.
func normalizeCodecs(codecs string) string {
	if codecs == "" {
		return ""
	}
	list := strings.Split(codecs, ",")
	for i, c := range list {
		c = jsLower(jsTrim(c))
		// RFC 6381 lets avc1 say its profile and level in decimal
		// ("avc1.66.30"); JS rewrites that to hex ("avc1.42001e"), but
		// only when both numbers read back as written (parseInt + toString).
		if parts := strings.Split(c, "."); len(parts) == 3 && (parts[0] == "avc1" || parts[0] == "avc") {
			profile, okP := jsIntHex(parts[1])
			level, okL := jsIntHex(parts[2])
			if okP && okL {
				c = parts[0] + "." + profile + "00" + level
			}
		}
		list[i] = c
	}
	// Array.prototype.sort compares UTF-16 code units.
	slices.SortStableFunc(list, func(a, b string) int {
		return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
	})
	return strings.Join(list, ",")
}

// jsIntHex returns n.toString(16).padStart(2, "0") for n = parseInt(s, 10),
// if n.toString() === s.
func jsIntHex(s string) (string, bool) {
	if !jsCanonicalInt.MatchString(s) {
		return "", false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || jsNumberString(f) != s {
		return "", false // lost precision, or JS would print it with an exponent
	}
	i, _ := new(big.Float).SetFloat64(f).Int(nil) // f is an integer here
	h := i.Text(16)
	for len(h) < 2 {
		h = "0" + h
	}
	return h, true
}

// jsNumberString is Number.prototype.toString() (ECMA-262
// Number::toString): the shortest digits that read back to f, in plain
// notation for 1e-6 <= |f| < 1e21 and exponent notation ("1.5e-7",
// "1e+21") outside.
func jsNumberString(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		return "0" // also -0
	}
	if a := math.Abs(f); a >= 1e-6 && a < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // "1.5e-07"
	mant, exp, _ := strings.Cut(s, "e")
	sign, digits := exp[:1], strings.TrimLeft(exp[1:], "0")
	return mant + "e" + sign + digits
}

var jsDecimal = regexp.MustCompile(`^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$`)

// jsToNumber is Number(s) for a string (ECMA-262 StringToNumber): NaN
// unless the trimmed text is empty (0), a decimal literal, Infinity, or a
// 0x / 0o / 0b integer.
func jsToNumber(s string) float64 {
	s = jsTrim(s)
	switch s {
	case "":
		return 0
	case "Infinity", "+Infinity":
		return math.Inf(1)
	case "-Infinity":
		return math.Inf(-1)
	}
	if len(s) > 2 && s[0] == '0' {
		base := map[byte]int{'x': 16, 'X': 16, 'o': 8, 'O': 8, 'b': 2, 'B': 2}[s[1]]
		if base != 0 {
			i, ok := new(big.Int).SetString(s[2:], base)
			if !ok || strings.ContainsAny(s[2:], "+-_") {
				return math.NaN()
			}
			f, _ := new(big.Float).SetInt(i).Float64()
			return f
		}
	}
	if !jsDecimal.MatchString(s) {
		return math.NaN()
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) { // out of range is ±Infinity or 0 in JS too
		return math.NaN()
	}
	return f
}

// jsIsSpace reports whether r is WhiteSpace or LineTerminator for
// String.prototype.trim: unlike unicode.IsSpace it counts U+FEFF and not
// U+0085.
func jsIsSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0xa0, 0xfeff, 0x2028, 0x2029:
		return true
	}
	return unicode.Is(unicode.Zs, r)
}

func jsTrim(s string) string { return strings.TrimFunc(s, jsIsSpace) }

// jsSlice is s.slice(0, n): the first n UTF-16 code units. A surrogate cut
// in half becomes U+FFFD, which is what TextEncoder makes of it before
// hashing.
func jsSlice(s string, n int) string {
	u := utf16.Encode([]rune(s))
	if len(u) <= n {
		return s
	}
	return string(utf16.Decode(u[:n]))
}

// jsLower is String.prototype.toLowerCase: Unicode's simple mappings, plus
// the full ones of SpecialCasing.txt that apply to lower case: İ becomes
// i + combining dot, and Σ at the end of a word becomes ς.
func jsLower(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		switch {
		case r == 'İ':
			b.WriteString("i\u0307")
		case r == 'Σ' && finalSigma(rs, i):
			b.WriteRune('ς')
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma is the Final_Sigma condition of the Unicode standard (3.13):
// a cased letter before (skipping case-ignorable characters) and none after.
func finalSigma(rs []rune, i int) bool {
	before := false
	for j := i - 1; j >= 0; j-- {
		if caseIgnorable(rs[j]) {
			continue
		}
		before = cased(rs[j])
		break
	}
	if !before {
		return false
	}
	for j := i + 1; j < len(rs); j++ {
		if caseIgnorable(rs[j]) {
			continue
		}
		return !cased(rs[j])
	}
	return true
}

func cased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.Is(unicode.Other_Lowercase, r) || unicode.Is(unicode.Other_Uppercase, r)
}

func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', '^', '`', 0xb7, 0x2018, 0x2019, 0x2024, 0x2027:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// jsUpper is String.prototype.toUpperCase with the one multi-character
// mapping likely in a playlist attribute, ß to SS.
func jsUpper(s string) string {
	return strings.ToUpper(strings.ReplaceAll(s, "ß", "SS"))
}
