package controllers

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/starling-live/starling/core"
)

type uploads interface {
	Put(ctx context.Context, name string, data []byte) error
	Get(ctx context.Context, name string) ([]byte, error)
	Delete(ctx context.Context, names ...string) error
	// List names the files of a directory; none if it does not exist.
	List(dir string) ([]string, error)
}

// logoPath is where the logo is served.
const logoPath = "/logo"

// maxLogoBytes bounds an uploaded logo.
const maxLogoBytes = 2 << 20

// logoTypes are the images a logo may be, by the type its bytes show (not
// what the upload claims): no SVG, which can hold script.
var logoTypes = map[string]string{"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp"}

// SetLogo answers POST /api/admin/config/logo with {"value": a data URL
// of the image}, as Owncast's admin sends it.
func (h *Handlers) SetLogo(w http.ResponseWriter, r *http.Request) {
	v, err := readValue[string](w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	_, b64, found := strings.Cut(v, ";base64,")
	if !found || !strings.HasPrefix(v, "data:") {
		h.writeError(w, r, invalid(`the logo must be a data URL such as "data:image/png;base64,..."`))
		return
	}
	img, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(img) == 0 {
		h.writeError(w, r, invalid("the logo is not valid base64"))
		return
	}
	if len(img) > maxLogoBytes {
		h.writeError(w, r, invalid("the logo is %d bytes: the limit is %d (2 MiB)", len(img), maxLogoBytes))
		return
	}
	ext, known := logoTypes[http.DetectContentType(img)]
	if !known {
		h.writeError(w, r, invalid("the logo must be a PNG, JPEG, GIF or WebP image"))
		return
	}
	name := "logo/logo" + ext
	old := h.deps.Settings.Get().Logo
	if err := h.deps.Uploads.Put(r.Context(), name, img); err != nil {
		h.writeError(w, r, err)
		return
	}
	if _, err := h.deps.Settings.Update(r.Context(), func(s *core.Settings) error { s.Logo = name; return nil }); err != nil {
		h.writeError(w, r, err)
		return
	}
	if old != "" && old != name {
		h.deps.Uploads.Delete(r.Context(), old)
	}
	ok(w)
}

// Logo answers GET /logo: the uploaded logo, or the built-in one.
func (h *Handlers) Logo(w http.ResponseWriter, r *http.Request) {
	img := h.deps.DefaultLogo
	if name := h.deps.Settings.Get().Logo; name != "" {
		b, err := h.deps.Uploads.Get(r.Context(), name)
		switch {
		case err == nil:
			img = b
		case !errors.Is(err, fs.ErrNotExist):
			h.writeError(w, r, err)
			return
		}
	}
	w.Header().Set("Cache-Control", "no-cache")
	// The built-in logo is SVG; its type comes from here, uploads' from
	// their bytes.
	if bytes.HasPrefix(bytes.TrimSpace(img), []byte("<svg")) || bytes.HasPrefix(bytes.TrimSpace(img), []byte("<?xml")) {
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
	}
	http.ServeContent(w, r, "logo", time.Time{}, bytes.NewReader(img))
}

// CustomJavaScript answers GET /customjavascript: the admin's script for
// the viewer page.
func (h *Handlers) CustomJavaScript(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write([]byte(h.deps.Settings.Get().CustomJavaScript))
}

// CustomStyles answers GET /customstyles.css: the admin's CSS for the
// viewer page, as a stylesheet of this origin, so that the page's CSP
// needs no 'unsafe-inline' for it.
func (h *Handlers) CustomStyles(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write([]byte(h.deps.Settings.Get().CustomStyles))
}

// Robots answers GET /robots.txt: search engines are welcome unless the
// admin asked them to stay away.
func (h *Handlers) Robots(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if h.deps.Settings.Get().DisableSearchIndexing {
		w.Write([]byte("User-agent: *\nDisallow: /\n"))
		return
	}
	w.Write([]byte("User-agent: *\nDisallow: /api/\nDisallow: /admin\n"))
}
