// Package format turns the Markdown-lite body of a chat message into the
// HTML that the server stores and sends to every viewer (docs/chat.md).
//
// A chat body is typed by one viewer and shown in the page of every other
// viewer: it is the path by which a stranger's input becomes markup in
// someone else's browser. A viewer must never be able to run script in
// another viewer's page, point a link at script, or make other viewers'
// browsers fetch anything (an image is a tracking pixel that reveals the
// address of everyone watching). So the body is rendered and sanitised here,
// once, on the server, and only the sanitised HTML is stored and sent. The
// web page, Owncast bots and overlays then all receive HTML that is already
// safe, whatever they do with it, and none of them has to get sanitising
// right on its own.
//
// Rendering and sanitising are two separate stages on purpose. goldmark
// decides what the Markdown means, and is configured so that a chat line
// stays a line of inline text (no headings, lists, quotes, tables or
// images). It is not a sanitiser, though: its safe mode only omits raw HTML
// and a few URL schemes it knows to be dangerous. bluemonday is the single
// gate: it re-parses goldmark's output the way a browser would and keeps
// only an allowlist of elements and attributes, so a mistake or a new
// feature in the Markdown stage cannot open a hole.
package format

import (
	"bytes"
	"net/url"
	"regexp"
	"strings"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	emoji "github.com/yuin/goldmark-emoji"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/renderer"
	gmhtml "github.com/yuin/goldmark/renderer/html"
	"github.com/yuin/goldmark/util"
	"golang.org/x/net/html"
)

// formatter is built once because building the parser and the policy costs
// far more than rendering one line. It is never changed after init, and both
// halves are then safe for concurrent use, so Message may run on every
// connection's goroutine at once: goldmark keeps per-call state in a
// parser.Context and initialises itself under a sync.Once (its author in
// gohugoio/hugo#6484: "Parsers and renderers are designed as stateless"),
// and a finished bluemonday policy is documented as safe to share.
var formatter = newFormatter()

type bodyFormatter struct {
	md     goldmark.Markdown
	policy *bluemonday.Policy
}

func newFormatter() bodyFormatter {
	return bodyFormatter{md: newMarkdown(), policy: newPolicy()}
}

// Message renders a chat body written in Markdown-lite into sanitised HTML.
//
// It returns "" when nothing visible is left (blank input, or input that was
// only markup such as "<b></b>"), so the caller can refuse the message as
// empty instead of storing an invisible one.
//
// Enforce the body length limit before calling it, not after: goldmark's
// emphasis parsing is quadratic (yuin/goldmark#555), so a crafted body costs
// about 2 ms at 500 characters but 0.3 s at 8 KiB
// (BenchmarkMessageDelimiters).
func Message(raw string) string {
	if strings.TrimSpace(raw) == "" {
		return ""
	}
	var buf bytes.Buffer
	if err := formatter.md.Convert([]byte(raw), &buf); err != nil {
		// Convert fails only when its writer does, and a bytes.Buffer never
		// does; should that change, dropping the message is the safe answer.
		return ""
	}
	out := strings.TrimSpace(string(formatter.policy.SanitizeBytes(buf.Bytes())))
	if !hasText(out) {
		return ""
	}
	return out
}

func newMarkdown() goldmark.Markdown {
	// A chat line is inline text, so only paragraphs and fenced code are
	// block syntax: "# 1 fan", "- me too", "> quote" and "1. first" come out
	// as typed instead of as headings, lists and quotes. Indented code and
	// HTML blocks are left out for the same reason (the HTML is then parsed
	// inline and omitted). There are no paragraph transformers, because the
	// only default one reads "[1]: http://x" as a link reference definition
	// and makes that line vanish from the message.
	p := parser.NewParser(
		parser.WithBlockParsers(
			util.Prioritized(parser.NewFencedCodeBlockParser(), 700),
			util.Prioritized(indentedParagraphParser{parser.NewParagraphParser()}, 1000),
		),
		parser.WithInlineParsers(parser.DefaultInlineParsers()...),
	)
	return goldmark.New(
		goldmark.WithParser(p),
		goldmark.WithExtensions(
			extension.Strikethrough,
			extension.NewLinkify(
				extension.WithLinkifyAllowedProtocols([]string{"http:", "https:"}),
				// Only http and https become links (docs/chat.md); a bare
				// address would otherwise become a mailto: link.
				extension.WithLinkifyEmailRegexp(matchNothing),
			),
			// The character itself: the other methods give an entity or a
			// Twemoji <img>, which would fetch from a CDN in every viewer's
			// browser (and the policy strips it).
			emoji.New(emoji.WithRenderingMethod(emoji.Unicode)),
		),
		goldmark.WithRendererOptions(
			// People press Enter in chat meaning a new line, not a space.
			gmhtml.WithHardWraps(),
			renderer.WithNodeRenderers(util.Prioritized(imageAsAltText{}, 100)),
		),
	)
}

// indentedParagraphParser also opens a paragraph on a line indented by four
// spaces or more. Without the indented code parser nothing else claims such
// a line, and goldmark would silently drop it from the message.
type indentedParagraphParser struct{ parser.BlockParser }

func (indentedParagraphParser) CanAcceptIndentedLine() bool { return true }

// matchNothing is an empty character class, so it never matches.
var matchNothing = regexp.MustCompile(`[^\x00-\x{10FFFF}]`)

// imageAsAltText renders "![alt](src)" as its alt text. The policy would drop
// an <img> anyway (no fetches from other viewers' browsers), but with its alt
// text; this keeps the words the sender typed.
type imageAsAltText struct{}

func (imageAsAltText) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
	reg.Register(ast.KindImage, func(util.BufWriter, []byte, ast.Node, bool) (ast.WalkStatus, error) {
		// Write no tag; the alt text is the image's children, rendered as usual.
		return ast.WalkContinue, nil
	})
}

func newPolicy() *bluemonday.Policy {
	// Exactly what Markdown-lite produces; any other element is removed and
	// keeps only its text.
	p := bluemonday.NewPolicy()
	p.AllowElements("p", "br", "strong", "em", "del", "code", "pre")
	p.AllowAttrs("href").OnElements("a")
	p.RequireParseableURLs(true)
	p.AllowRelativeURLs(false)
	p.AllowURLSchemeWithCustomPolicy("http", isWebLink)
	p.AllowURLSchemeWithCustomPolicy("https", isWebLink)
	// Posting links to raise a page's search rank, learning which stream a
	// viewer came from, and the opened page scripting this one through
	// window.opener are all things a chat link must not allow.
	p.RequireNoFollowOnLinks(true)
	p.RequireNoReferrerOnLinks(true)
	// Following a link must not navigate away from the stream.
	p.AddTargetBlankToFullyQualifiedLinks(true)
	return p
}

// isWebLink refuses http(s) URLs that are not an ordinary address of a
// host: "https:javascript:..." parses with an https scheme but has no host,
// and "https://twitch.tv@evil.example" shows one host and opens another.
func isWebLink(u *url.URL) bool {
	return u.Host != "" && u.Opaque == "" && u.User == nil
}

// hasText reports whether sanitised HTML shows any non-blank text.
func hasText(s string) bool {
	z := html.NewTokenizer(strings.NewReader(s))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return false
		case html.TextToken:
			if strings.TrimSpace(string(z.Text())) != "" {
				return true
			}
		}
	}
}
