package format

import (
	"bytes"
	"strings"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	emoji "github.com/yuin/goldmark-emoji"
	"github.com/yuin/goldmark/extension"
)

// page renders the admin's page content: full Markdown (headings, lists,
// quotes, tables, images), sanitised like chat but with the block
// elements a page has. The admin writes it, but it is shown in every
// viewer's browser, and an admin account taken over must not become script
// in those browsers; so raw HTML stays out and links stay links.
var page = bodyFormatter{md: newPageMarkdown(), policy: newPagePolicy()}

// Page renders Markdown page content into sanitised HTML.
func Page(raw string) string {
	if strings.TrimSpace(raw) == "" {
		return ""
	}
	var buf bytes.Buffer
	if err := page.md.Convert([]byte(raw), &buf); err != nil {
		return ""
	}
	return strings.TrimSpace(string(page.policy.SanitizeBytes(buf.Bytes())))
}

func newPageMarkdown() goldmark.Markdown {
	return goldmark.New(
		goldmark.WithExtensions(
			extension.GFM,
			emoji.New(emoji.WithRenderingMethod(emoji.Unicode)),
		),
	)
}

func newPagePolicy() *bluemonday.Policy {
	p := newPolicy()
	p.AllowElements("h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "hr",
		"table", "thead", "tbody", "tr", "th", "td", "s")
	p.AllowAttrs("src", "alt", "title").OnElements("img")
	p.AllowAttrs("align").Matching(bluemonday.CellAlign).OnElements("th", "td")
	p.AllowAttrs("start").Matching(bluemonday.Integer).OnElements("ol")
	return p
}
