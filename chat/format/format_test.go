package format

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// rel is what every link must carry; see newPolicy for why.
const rel = `rel="nofollow noreferrer noopener" target="_blank"`

var formatCases = []struct {
	name, in, want string
}{
	{"plain", "hello", `<p>hello</p>`},
	{"trimmed", "  hello \n", `<p>hello</p>`},
	{"empty", "", ""},
	{"blank", " \t\n \n", ""},
	{"bold", "**bold**", `<p><strong>bold</strong></p>`},
	{"bold underscores", "__bold__", `<p><strong>bold</strong></p>`},
	{"emphasis", "*em* and _em_", `<p><em>em</em> and <em>em</em></p>`},
	{"code", "`x := 1`", `<p><code>x := 1</code></p>`},
	{"code keeps html as text", "`<b>`", `<p><code>&lt;b&gt;</code></p>`},
	{"strike", "~~gone~~", `<p><del>gone</del></p>`},
	{"mixed", "hello **world** :smile:", `<p>hello <strong>world</strong> 😄</p>`},
	{"emoji", ":smile: :heart:", `<p>😄 ❤️</p>`},
	{"unknown shortcode stays", ":not_an_emoji:", `<p>:not_an_emoji:</p>`},
	{"link", "[docs](https://example.com/docs)",
		`<p><a href="https://example.com/docs" ` + rel + `>docs</a></p>`},
	{"link title dropped", `[docs](https://example.com "the docs")`,
		`<p><a href="https://example.com" ` + rel + `>docs</a></p>`},
	{"bare url", "see https://example.com/a?b=1&c=2 now",
		`<p>see <a href="https://example.com/a?b=1&amp;c=2" ` + rel + `>https://example.com/a?b=1&amp;c=2</a> now</p>`},
	{"bare www", "www.example.com",
		`<p><a href="http://www.example.com" ` + rel + `>www.example.com</a></p>`},
	{"angle autolink", "<https://example.com>",
		`<p><a href="https://example.com" ` + rel + `>https://example.com</a></p>`},
	{"bare ftp not linked", "ftp://example.com/f", `<p>ftp://example.com/f</p>`},
	{"bare email not linked", "me@example.com", `<p>me@example.com</p>`},
	{"mailto link dropped", "<me@example.com>", `<p>me@example.com</p>`},
	{"relative link dropped", "[admin](/admin)", `<p>admin</p>`},
	{"protocol-relative link dropped", "[x](//evil.example/)", `<p>x</p>`},
	{"userinfo link dropped", "[twitch](https://twitch.tv@evil.example/)", `<p>twitch</p>`},
	{"heading marker is text", "# big news", `<p># big news</p>`},
	{"setext heading is text", "title\n===", "<p>title<br>\n===</p>"},
	{"list markers are text", "- one\n- two", "<p>- one<br>\n- two</p>"},
	{"ordered list marker is text", "1. first", `<p>1. first</p>`},
	{"quote marker is text", "> quoted", `<p>&gt; quoted</p>`},
	{"table is text", "| a | b |\n|---|---|", "<p>| a | b |<br>\n|---|---|</p>"},
	{"rule is text", "---", `<p>---</p>`},
	{"indented line is text", "    four spaces", `<p>four spaces</p>`},
	{"link reference definition is text", "[1]: https://example.com",
		`<p>[1]: <a href="https://example.com" ` + rel + `>https://example.com</a></p>`},
	{"image becomes alt text", "look ![a *cat*](https://example.com/cat.png)", `<p>look a <em>cat</em></p>`},
	{"image without alt is empty", "![](https://example.com/pixel.gif)", ""},
	{"raw html removed", "<b>hi</b> <u>there</u>", `<p>hi there</p>`},
	{"only markup is empty", "<b></b><i></i>", ""},
	{"entity stays escaped", "&lt;b&gt;bold&lt;/b&gt;", `<p>&lt;b&gt;bold&lt;/b&gt;</p>`},
	{"ampersand", "AT&T &amp; co", `<p>AT&amp;T &amp; co</p>`},
	{"less-than is text", "I <3 it, a < b > c", `<p>I &lt;3 it, a &lt; b &gt; c</p>`},
	{"quotes", `she said "hi" it's`, `<p>she said &#34;hi&#34; it&#39;s</p>`},
	{"newline is a line break", "one\ntwo", "<p>one<br>\ntwo</p>"},
	{"blank line is a paragraph", "one\n\ntwo", "<p>one</p>\n<p>two</p>"},
	{"fenced code", "```go\nx := <-ch\n```", "<pre><code>x := &lt;-ch\n</code></pre>"},
}

func TestMessage(t *testing.T) {
	for _, tc := range formatCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Message(tc.in); got != tc.want {
				t.Errorf("Message(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestMessageConcurrent backs the claim that the shared formatter is safe
// for every connection's goroutine at once; it finds something under -race.
func TestMessageConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for _, tc := range formatCases {
				if got := Message(tc.in); got != tc.want {
					t.Errorf("Message(%q) = %q, want %q", tc.in, got, tc.want)
				}
			}
		})
	}
	wg.Wait()
}

type xssRow struct {
	Name  string `json:"name"`
	Input string `json:"input"`
}

// loadXSS reads the hostile inputs shared with the browser test, which
// renders each one in a real page and checks window.__xss stays undefined.
func loadXSS(t testing.TB) []xssRow {
	t.Helper()
	b, err := os.ReadFile("testdata/xss.json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []xssRow
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatalf("testdata/xss.json: %v", err)
	}
	return rows
}

func TestXSSTableShape(t *testing.T) {
	rows := loadXSS(t)
	if len(rows) < 30 {
		t.Errorf("testdata/xss.json has %d rows, want at least 30", len(rows))
	}
	seen := map[string]bool{}
	for _, r := range rows {
		if r.Name == "" || r.Input == "" {
			t.Errorf("row %+v: name and input are both required", r)
		}
		if seen[r.Name] {
			t.Errorf("row name %q is used twice; subtests and browser reports need unique names", r.Name)
		}
		seen[r.Name] = true
	}
}

func TestMessageXSS(t *testing.T) {
	for _, r := range loadXSS(t) {
		t.Run(r.Name, func(t *testing.T) {
			out := Message(r.Input)
			for _, p := range inertProblems(out) {
				t.Errorf("%s\n input %q\noutput %q", p, r.Input, out)
			}
			for _, p := range markerProblems(out) {
				t.Errorf("%s\n input %q\noutput %q", p, r.Input, out)
			}
		})
	}
}

// fuzzMaxChars is the longest body a viewer can have rendered: the chat
// hub refuses longer ones before calling Message (chat.Config's
// MaxMessageChars, 500 by default).
const fuzzMaxChars = 500

// FuzzMessage checks the inertness rules on inputs nobody thought of; the
// seeds run with every go test, and `go test -fuzz=FuzzMessage` explores.
//
// Inputs longer than the hub lets a viewer send are skipped. Unbounded,
// the fuzzer grows inputs to kilobytes, where goldmark is slow (Message's
// doc), and each one that reaches new code is then minimized: rendered
// again for every shorter candidate, a pass quadratic in the length. The
// run showed 0 execs/s from its 12th second until the minimizing budget
// (-fuzzminimizetime, 60 s by default) ran out. make fuzz and build/test.sh
// also pass a small -fuzzminimizetime.
func FuzzMessage(f *testing.F) {
	for _, tc := range formatCases {
		f.Add(tc.in)
	}
	for _, r := range loadXSS(f) {
		f.Add(r.Input)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if utf8.RuneCountInString(in) > fuzzMaxChars {
			t.Skip("longer than the chat hub lets a viewer send")
		}
		out := Message(in)
		for _, p := range inertProblems(out) {
			t.Errorf("%s\n input %q\noutput %q", p, in, out)
		}
	})
}

var allowedElements = map[string]bool{
	"p": true, "br": true, "strong": true, "em": true, "del": true,
	"code": true, "pre": true, "a": true,
}

var (
	// tagStart matches what may follow a literal '<' in the output. Text
	// never holds a bare '<' (it is escaped), so every other '<' would be
	// markup that slipped through, whatever a parser makes of it.
	tagStart = regexp.MustCompile(`^</?(p|br|strong|em|del|code|pre|a)[\s/>]`)
	// tagSpan is one tag: '>' inside an attribute value is escaped too.
	tagSpan = regexp.MustCompile(`<[^>]*>`)
	onAttr  = regexp.MustCompile(`(?i)[\s/"']on[a-z]*\s*=`)
	// canonicalTag is a tag as the sanitiser writes one: a name, then
	// attributes each with a double-quoted value in which quotes and angle
	// brackets are escaped. How a tag of any other shape reads depends on
	// the parser, which is a problem in itself.
	canonicalTag = regexp.MustCompile(`^</?[a-zA-Z]+(?:\s+[a-zA-Z-]+="[^"<>]*")*\s*/?>$`)
	attrValue    = regexp.MustCompile(`(\s[a-zA-Z-]+)="([^"<>]*)"`)
)

// inertProblems lists the ways sanitised HTML could run script, fetch
// something or escape the allowlist. It checks twice: on the raw string,
// which does not depend on how any parser reads it, and on the tree an
// HTML5 parser (as a browser) builds from it.
func inertProblems(out string) []string {
	var probs []string
	lower := strings.ToLower(out)
	for i := strings.IndexByte(lower, '<'); i >= 0; i = next(lower, i) {
		if !tagStart.MatchString(lower[i:]) {
			probs = append(probs, "raw output has markup outside the allowlist at "+quoteAt(lower, i))
		}
	}
	for _, bad := range []string{"<script", "<img", "<svg", "<math", "<iframe", "<style", "<!--", "<![cdata"} {
		if strings.Contains(lower, bad) {
			probs = append(probs, "raw output contains "+bad)
		}
	}
	for _, tag := range tagSpan.FindAllString(out, -1) {
		probs = append(probs, tagProblems(tag)...)
	}

	nodes, err := parse(out)
	if err != nil {
		return append(probs, err.Error())
	}
	for _, n := range nodes {
		probs = append(probs, nodeProblems(n)...)
	}
	return probs
}

// badInTag are what make a tag a link to script, a fetch or a handler. A
// scheme in text is what the sender typed and is inert; inside a tag it is
// a link or a handler.
var badInTag = []string{"javascript:", "vbscript:", "data:", "srcdoc", "xlink", "style="}

// tagProblems checks one tag of the raw output. The names in the tag and
// every attribute value but href's must hold none of badInTag. An href is
// held to more: after decoding, as a browser does, it must begin with
// http:// or https://. (A whole-tag search for badInTag would also flag
// an inert address such as http://example.com/#javascript:0 or
// https://shop.example/?style=blue, and entity-encoded schemes slip past
// it.)
func tagProblems(tag string) []string {
	lower := strings.ToLower(tag)
	if !canonicalTag.MatchString(tag) {
		return []string{"tag " + lower + " is not in the form the sanitiser writes"}
	}
	var probs []string
	// With every value emptied, what is left is what a parser reads as
	// markup: the element and attribute names.
	names := attrValue.ReplaceAllString(lower, `$1=""`)
	for _, bad := range badInTag {
		if strings.Contains(names, bad) {
			probs = append(probs, "tag "+lower+" contains "+bad)
		}
	}
	if onAttr.MatchString(names) {
		probs = append(probs, "tag "+lower+" has an event handler")
	}
	for _, m := range attrValue.FindAllStringSubmatch(tag, -1) {
		name, val := strings.ToLower(strings.TrimSpace(m[1])), m[2]
		if name == "href" {
			if p := hrefProblem(val); p != "" {
				probs = append(probs, "tag "+lower+": "+p)
			}
			continue
		}
		for _, bad := range badInTag {
			if strings.Contains(strings.ToLower(val), bad) {
				probs = append(probs, "tag "+lower+" contains "+bad)
			}
		}
	}
	return probs
}

// hrefProblem reads an href value as a browser does before it looks at
// the scheme: entities decoded, tabs and newlines removed wherever they
// are, and control characters and spaces trimmed at the ends (WHATWG URL,
// basic URL parser).
func hrefProblem(val string) string {
	u := strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, html.UnescapeString(val))
	u = strings.ToLower(strings.TrimFunc(u, func(r rune) bool { return r <= ' ' }))
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return "href " + val + " does not begin with http:// or https://"
	}
	return ""
}

// TestInertProblems checks the checker: it must flag every kind of output
// that could run script or fetch, and pass inert links.
func TestInertProblems(t *testing.T) {
	const a = `<a href="%s" ` + rel + `>x</a>`
	hostile := []string{
		`<script>x</script>`,
		`<img src="http://a/p.gif">`,
		fmt.Sprintf(a, "javascript:x"),
		fmt.Sprintf(a, "JavaScript:x"),
		fmt.Sprintf(a, "jav&#x61;script:x"),
		fmt.Sprintf(a, "java&#x09;script:x"),
		fmt.Sprintf(a, " &#x0a;javascript:x"),
		fmt.Sprintf(a, "data:text/html,x"),
		fmt.Sprintf(a, "//evil.example/"),
		fmt.Sprintf(a, "http:x"),
		`<a href=javascript:x>x</a>`,
		`<a href='javascript:x'>x</a>`,
		`<a href="http://a" onclick="x" ` + rel + `>x</a>`,
		`<a href="http://a" rel="javascript:x" target="_blank">x</a>`,
		`<a href="http://a" target="_blank">x</a>`,
		`<p style="color:red">x</p>`,
		`<p/onclick="x">x</p>`,
		`<p x="1"y="2">x</p>`,
		`<!-- x -->`,
	}
	for _, out := range hostile {
		if len(inertProblems(out)) == 0 {
			t.Errorf("inertProblems(%q) found nothing", out)
		}
	}
	inert := []string{
		`<p>javascript:x, data:x and style=x as text</p>`,
		`<p>` + fmt.Sprintf(a, "http://0.a#jAvAsCript:0") + `</p>`,
		`<p>` + fmt.Sprintf(a, "https://shop.example/?style=blue&amp;data:1") + `</p>`,
		`<p>` + fmt.Sprintf(a, "https://example.com/onload=1") + `</p>`,
		"<p>one<br>\ntwo</p>",
	}
	for _, out := range inert {
		if p := inertProblems(out); len(p) != 0 {
			t.Errorf("inertProblems(%q) = %q, want none", out, p)
		}
	}
}

// parse returns every node of out as a browser would build it inside <body>.
func parse(out string) ([]*html.Node, error) {
	body := &html.Node{Type: html.ElementNode, Data: "body", DataAtom: atom.Body}
	top, err := html.ParseFragment(strings.NewReader(out), body)
	if err != nil {
		return nil, fmt.Errorf("output does not parse: %w", err)
	}
	var all []*html.Node
	for _, n := range top {
		all = append(all, n)
		for d := range n.Descendants() {
			all = append(all, d)
		}
	}
	return all, nil
}

func next(s string, i int) int {
	j := strings.IndexByte(s[i+1:], '<')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

func quoteAt(s string, i int) string {
	end := min(len(s), i+40)
	return `"` + s[i:end] + `"`
}

func nodeProblems(n *html.Node) []string {
	switch n.Type {
	case html.TextNode:
		return nil
	case html.ElementNode:
	default:
		// Comments are where old conditional-comment tricks live.
		return []string{"non-element node in output: " + n.Data}
	}
	var probs []string
	if !allowedElements[n.Data] || n.Namespace != "" {
		probs = append(probs, "element <"+n.Data+"> is not allowed")
	}
	for _, a := range n.Attr {
		if strings.HasPrefix(strings.ToLower(a.Key), "on") {
			probs = append(probs, "<"+n.Data+"> has event handler "+a.Key)
		}
		if a.Namespace != "" || n.Data != "a" || !slices.Contains([]string{"href", "rel", "target"}, a.Key) {
			probs = append(probs, "<"+n.Data+"> has attribute "+a.Key+" outside the allowlist")
		}
	}
	if n.Data == "a" {
		probs = append(probs, linkProblems(n)...)
	}
	return probs
}

func linkProblems(n *html.Node) []string {
	var probs []string
	attr := map[string]string{}
	for _, a := range n.Attr {
		attr[a.Key] = a.Val
	}
	href, ok := attr["href"]
	if !ok {
		probs = append(probs, "<a> without href")
	}
	u, err := url.Parse(href)
	switch {
	case err != nil:
		probs = append(probs, "href "+href+" does not parse: "+err.Error())
	case u.Scheme != "http" && u.Scheme != "https":
		probs = append(probs, "href "+href+" is not http or https")
	case u.Host == "":
		probs = append(probs, "href "+href+" has no host")
	}
	rels := strings.Fields(attr["rel"])
	for _, want := range []string{"nofollow", "noreferrer", "noopener"} {
		if !slices.Contains(rels, want) {
			probs = append(probs, "<a> rel "+attr["rel"]+" lacks "+want)
		}
	}
	if attr["target"] != "_blank" {
		probs = append(probs, "<a> target is "+attr["target"]+", want _blank")
	}
	return probs
}

// markerProblems finds the browser test's marker in an attribute. Every
// executable payload in xss.json sets window.__xss, so finding it in a
// value means a payload reached a place a browser may run it from. (Fuzz
// inputs could legitimately put it in an http URL, so only the table uses
// this.)
func markerProblems(out string) []string {
	nodes, err := parse(out)
	if err != nil {
		return []string{err.Error()}
	}
	var probs []string
	for _, n := range nodes {
		for _, a := range n.Attr {
			if strings.Contains(a.Val, "window.__xss") {
				probs = append(probs, "<"+n.Data+"> attribute "+a.Key+" holds the payload: "+a.Val)
			}
		}
	}
	return probs
}

// benchBody is a typical message: 80 characters with bold and a link.
const benchBody = "**GG** that clutch was unreal, clip it: https://clips.example.com/a1b2c3 :smile:"

func BenchmarkMessage(b *testing.B) {
	if len(benchBody) != 80 {
		b.Fatalf("benchBody is %d bytes, keep it at 80 so figures compare", len(benchBody))
	}
	for b.Loop() {
		Message(benchBody)
	}
}

// BenchmarkMessageDelimiters is the worst case known (yuin/goldmark#555):
// emphasis delimiters are quadratic, which is why callers cap body length
// before rendering.
func BenchmarkMessageDelimiters(b *testing.B) {
	for _, n := range []int{500, 8192} {
		body := strings.Repeat("*a", n/2)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				Message(body)
			}
		})
	}
}

func TestPage(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"# Schedule\n\n- Mon 18:00\n- *Thu* 20:00", "<h1>Schedule</h1>\n<ul>\n<li>Mon 18:00</li>\n<li><em>Thu</em> 20:00</li>\n</ul>"},
		{"![me](https://example.com/me.png)", `<p><img src="https://example.com/me.png" alt="me"></p>`},
		{"[site](https://example.com)", `<p><a href="https://example.com" rel="nofollow noreferrer noopener" target="_blank">site</a></p>`},
		{"<script>alert(1)</script>hi", ""}, // an HTML block is left out whole
		{"[x](javascript:alert(1))", "<p>x</p>"},
		{"![x](javascript:alert(1))", `<p><img alt="x"></p>`},
		{"<img src=x onerror=alert(1)>", ""},
		{"   ", ""},
	} {
		if got := Page(tt.in); got != tt.want {
			t.Errorf("Page(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// Every hostile chat input stays inert as page content too: only the
	// page's elements, no handlers or styles, links and images to http(s).
	allowed := map[string]bool{"p": true, "br": true, "strong": true, "em": true, "del": true, "s": true, "code": true,
		"pre": true, "a": true, "img": true, "h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true,
		"ul": true, "ol": true, "li": true, "blockquote": true, "hr": true, "table": true, "thead": true, "tbody": true,
		"tr": true, "th": true, "td": true}
	attrs := map[string]bool{"href": true, "src": true, "alt": true, "title": true, "rel": true, "target": true, "align": true, "start": true}
	for _, r := range loadXSS(t) {
		out := Page(r.Input)
		z := html.NewTokenizer(strings.NewReader(out))
		for tt := z.Next(); tt != html.ErrorToken; tt = z.Next() {
			if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
				continue
			}
			tok := z.Token()
			if !allowed[tok.Data] {
				t.Errorf("Page(%q) has <%s>: %s", r.Input, tok.Data, out)
			}
			for _, a := range tok.Attr {
				if !attrs[a.Key] {
					t.Errorf("Page(%q) has attribute %s: %s", r.Input, a.Key, out)
				}
				if (a.Key == "href" || a.Key == "src") && !strings.HasPrefix(a.Val, "http://") && !strings.HasPrefix(a.Val, "https://") {
					t.Errorf("Page(%q) has %s=%q: %s", r.Input, a.Key, a.Val, out)
				}
			}
		}
	}
}
