package controllers

import "net/http"

// maxPreview bounds the Markdown a preview renders, as the page content's
// setting does.
const maxPreview = 64 << 10

// PreviewMarkdown answers POST /api/admin/preview/markdown {"value": md}
// (Starling's) with {"html": ...}: the page content as the viewer page
// will show it, rendered and sanitised by the same code, before it is
// saved.
func (h *Handlers) PreviewMarkdown(w http.ResponseWriter, r *http.Request) {
	md, err := readValue[string](w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if len(md) > maxPreview {
		h.writeError(w, r, invalid("value is %d bytes: the page content is at most %d", len(md), maxPreview))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"html": h.deps.RenderPage(md)})
}
