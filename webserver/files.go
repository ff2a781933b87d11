package webserver

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"github.com/starling-live/starling/storage"
)

// thumbnail serves the latest still of the stream.
type thumbnail struct {
	root *os.Root
}

func (t *thumbnail) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, err := t.root.Open("thumbnail.jpg")
	if err != nil {
		http.Error(w, "no thumbnail yet: it appears a few seconds into the first broadcast", http.StatusNotFound)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	http.ServeContent(w, r, "", st.ModTime(), f)
}

// pageCSP allows the page only its own scripts, styles and connections,
// and the fetches of segments from where they are served (a bucket or CDN,
// given as origins). hls.js needs blob: for MediaSource and its worker.
func pageCSP(mediaOrigins []string) string {
	connect := "'self'"
	for _, o := range mediaOrigins {
		connect += " " + o
	}
	return "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
		"media-src 'self' blob:; worker-src 'self' blob:; connect-src " + connect + "; object-src 'none'; " +
		"base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
}

// staticFiles serves the embedded viewer page from memory. Bundles under
// /assets/ carry a content hash in their names and are cached for good; the
// rest is revalidated with an ETag. Text is gzipped once, at start.
type staticFiles struct {
	// mediaOrigins are where the page fetches segments from besides this
	// server; nil means nowhere else.
	mediaOrigins func() []string
	// csp, if set, is the pages' Content-Security-Policy instead of the
	// viewer page's.
	csp string
	// app serves index.html for any path that is no file outside
	// /assets/: the admin panel's pages are its own routes.
	app   bool
	files map[string]staticFile
	// modTime is the server's start: embedded files have none.
	modTime time.Time
}

type staticFile struct {
	data, gzipped []byte // gzipped is nil where it would not pay
	etag          string
}

// compressible are the extensions worth gzipping.
var compressible = map[string]bool{".html": true, ".js": true, ".css": true, ".svg": true, ".txt": true, ".json": true}

func newStaticFiles(fsys fs.FS, mediaOrigins func() []string) (*staticFiles, error) {
	s := &staticFiles{mediaOrigins: mediaOrigins, files: map[string]staticFile{}, modTime: time.Now()}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		f := staticFile{data: b, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		if compressible[path.Ext(p)] {
			var z bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
			zw.Write(b)
			zw.Close()
			if z.Len() < len(b)*9/10 {
				f.gzipped = z.Bytes()
			}
		}
		s.files[p] = f
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the embedded web page: %w", err)
	}
	if _, ok := s.files["index.html"]; !ok {
		return nil, fmt.Errorf("the embedded web page has no index.html: run the web build (make web)")
	}
	return s, nil
}

func (s *staticFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/")
	if name == "" {
		name = "index.html"
	}
	f, ok := s.files[name]
	if !ok && s.app && !strings.HasPrefix(name, "assets/") {
		name, f, ok = "index.html", s.files["index.html"], true
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	body, etag := f.data, f.etag
	if f.gzipped != nil {
		h.Set("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			body, etag = f.gzipped, strings.TrimSuffix(etag, `"`)+`-gz"`
			h.Set("Content-Encoding", "gzip")
		}
	}
	if ct := mime.TypeByExtension(path.Ext(name)); ct != "" {
		h.Set("Content-Type", ct)
	}
	h.Set("ETag", etag)
	if strings.HasPrefix(name, "assets/") {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	if path.Ext(name) == ".html" {
		if s.csp != "" {
			h.Set("Content-Security-Policy", s.csp)
		} else {
			var origins []string
			if s.mediaOrigins != nil {
				origins = s.mediaOrigins()
			}
			h.Set("Content-Security-Policy", pageCSP(origins))
		}
	}
	http.ServeContent(w, r, name, s.modTime, bytes.NewReader(body))
}

// panelCSP allows the admin panel its own scripts, styles and API, and
// nothing else: no other origin, no frame around it.
const panelCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// newPanelFiles serves the embedded admin panel, its pages' paths all
// answered with its index.html.
func newPanelFiles(fsys fs.FS) (*staticFiles, error) {
	s, err := newStaticFiles(fsys, nil)
	if err != nil {
		return nil, err
	}
	s.csp, s.app = panelCSP, true
	return s, nil
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// publicFiles serves the admin's own files (Owncast's /public/): files
// only, never a listing, never outside the directory. A page among them
// runs sandboxed, without this origin's rights, so that a file dropped
// there cannot act as the admin panel.
type publicFiles struct {
	root *os.Root
}

func (p *publicFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Path
	if storage.CheckName(name) != nil {
		http.NotFound(w, r)
		return
	}
	f, err := p.root.Open(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Security-Policy", "sandbox")
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}
