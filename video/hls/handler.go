package hls

import (
	"bytes"
	"io"
	"maps"
	"net/http"
	"path"
	"strconv"
	"time"

	"github.com/starling-live/starling/storage"
)

// memFile is a published playlist or hash list. It never changes: a new
// version is a new memFile.
type memFile struct {
	data     []byte
	etag     string
	modified time.Time
}

// publishFile replaces the published file name. p.mu is held, which
// orders the replacements.
func (p *Packager) publishFile(name string, data []byte) {
	p.version++
	files := maps.Clone(*p.published.Load())
	files[name] = &memFile{data: data, etag: `"` + strconv.FormatUint(p.version, 36) + `"`, modified: p.now()}
	p.published.Store(&files)
}

// unpublish withdraws the published file name. p.mu is held.
func (p *Packager) unpublish(name string) {
	files := maps.Clone(*p.published.Load())
	delete(files, name)
	p.published.Store(&files)
}

// fileTypes are the files /hls/ serves, with their content types and
// caching: playlists change with every segment, segments never change
// (their names are never reused).
var fileTypes = map[string]struct{ contentType, cacheControl string }{
	".m3u8": {"application/vnd.apple.mpegurl", "no-cache"},
	".ts":   {"video/mp2t", "public, max-age=31536000, immutable"},
	".json": {"application/json", "no-cache"}, // segment hashes
}

// ServeHTTP serves the stream under /hls/ (mounted with the prefix
// stripped): playlists and hash lists from memory, without a lock;
// segments from local disk. Only stream files, never a listing, never
// outside the stream's directory (Files is expected to refuse "..",
// absolute paths and symlinks that leave it, as os.Root's does).
func (p *Packager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Players on other sites may embed the stream.
	h.Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Range")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := r.URL.Path
	typ, ok := fileTypes[path.Ext(name)]
	if !ok || storage.CheckName(name) != nil {
		http.NotFound(w, r)
		return
	}
	if path.Ext(name) != ".ts" {
		f := (*p.published.Load())[name]
		if f == nil {
			if name == MasterPlaylist {
				http.Error(w, "the stream is offline", http.StatusNotFound)
				return
			}
			http.NotFound(w, r)
			return
		}
		h.Set("Content-Type", typ.contentType)
		h.Set("Cache-Control", typ.cacheControl)
		h.Set("Etag", f.etag)
		http.ServeContent(w, r, "", f.modified, bytes.NewReader(f.data))
		return
	}
	f, err := p.files.Open(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	rs, seekable := f.(io.ReadSeeker)
	if err != nil || !st.Mode().IsRegular() || !seekable {
		http.NotFound(w, r)
		return
	}
	h.Set("Content-Type", typ.contentType)
	h.Set("Cache-Control", typ.cacheControl)
	h.Set("Access-Control-Expose-Headers", "Content-Length, Content-Range")
	http.ServeContent(w, r, "", st.ModTime(), rs)
}
