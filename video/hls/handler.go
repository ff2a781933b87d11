package hls

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"net/http"
	"path"
	"strconv"
	"syscall"
	"time"

	"github.com/starling-live/starling/storage"
)

// memFile is a published playlist or hash list. It never changes: a new
// version is a new memFile.
type memFile struct {
	data     []byte
	etag     []string // the Etag header's value, shared by every response
	modified time.Time
	// edge is set on a live media playlist: what a blocking reload of it
	// waits for.
	edge *liveEdge
}

// liveEdge is where a live media playlist ends.
type liveEdge struct {
	// next is the media sequence number of the segment it will list next.
	next uint64
	// hold is how long a reload may wait for that segment: three target
	// durations (RFC 8216bis 6.2.5.2).
	hold time.Duration
}

// publishFile replaces the published file name; edge is nil for a file
// that is not a live media playlist. p.mu is held, which orders the
// replacements.
func (p *Packager) publishFile(name string, data []byte, edge *liveEdge) {
	p.version++
	files := maps.Clone(*p.published.Load())
	files[name] = &memFile{data: data, etag: []string{`"` + strconv.FormatUint(p.version, 36) + `"`}, modified: p.now(), edge: edge}
	p.replacePublished(files)
}

// unpublish withdraws the published file name. p.mu is held.
func (p *Packager) unpublish(name string) {
	files := maps.Clone(*p.published.Load())
	delete(files, name)
	p.replacePublished(files)
}

// replacePublished publishes files and wakes the requests waiting for a
// change. p.mu is held.
func (p *Packager) replacePublished(files map[string]*memFile) {
	p.published.Store(&files)
	p.wake()
}

// wake wakes the requests waiting for a change. p.mu is held.
func (p *Packager) wake() {
	next := make(chan struct{})
	close(*p.changed.Swap(&next))
}

// startHold is how long a request for a playlist may wait while a
// broadcast has begun but the playlist is not out yet: ffmpeg's start and
// a first segment.
const startHold = 10 * time.Second

// fileType is how /hls/ serves the files of one extension: the values of its
// headers, built once and shared by every response. No one modifies them:
// Header.Set and Add replace or reallocate a value, never write into it.
type fileType struct {
	contentType, cacheControl []string
	segment                   bool // stored on disk, not in memory
}

// fileTypes are the files /hls/ serves, with their content types and
// caching: playlists change with every segment, segments never change
// (their names are never reused).
var fileTypes = map[string]fileType{
	".m3u8": {[]string{"application/vnd.apple.mpegurl"}, []string{"no-cache"}, false},
	".ts":   {[]string{"video/mp2t"}, []string{"public, max-age=31536000, immutable"}, true},
	".json": {[]string{"application/json"}, []string{"no-cache"}, false}, // segment hashes
}

// Shared header values (see fileType), set under canonical keys without
// Header.Set's canonicalisation.
var (
	anyOrigin       = []string{"*"}
	allowedMethods  = []string{"GET, HEAD, OPTIONS"}
	allowedHeaders  = []string{"Range"}
	preflightMaxAge = []string{"86400"}
	segmentExposed  = []string{"Content-Length, Content-Range"}
)

// ServeHTTP serves the stream under /hls/ (mounted with the prefix
// stripped): playlists and hash lists from memory, without a lock;
// segments from local disk. Only stream files, never a listing, never
// outside the stream's directory (Files is expected to refuse "..",
// absolute paths and symlinks that leave it, as os.Root's does).
func (p *Packager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.ServeFile(w, r, r.URL.Path)
}

// ServeFile serves the stream file name as ServeHTTP serves r.URL.Path: a
// web server that has already taken the prefix off the path calls it
// without copying the request.
func (p *Packager) ServeFile(w http.ResponseWriter, r *http.Request, name string) {
	h := w.Header()
	// Players on other sites may embed the stream.
	h["Access-Control-Allow-Origin"] = anyOrigin
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		h["Access-Control-Allow-Methods"] = allowedMethods
		h["Access-Control-Allow-Headers"] = allowedHeaders
		h["Access-Control-Max-Age"] = preflightMaxAge
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		h["Allow"] = allowedMethods
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	typ, ok := fileTypes[path.Ext(name)]
	if !ok || storage.CheckName(name) != nil {
		http.NotFound(w, r)
		return
	}
	if !typ.segment {
		f, status, msg := p.await(r, name)
		if f == nil {
			http.Error(w, msg, status)
			return
		}
		h["Content-Type"] = typ.contentType
		h["Cache-Control"] = typ.cacheControl
		h["Etag"] = f.etag
		http.ServeContent(bufferedWriter{w}, r, "", f.modified, bytes.NewReader(f.data))
		return
	}
	f, err := p.files.Open(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	content, seekable := f.(io.ReadSeeker)
	if err != nil || !st.Mode().IsRegular() || !seekable {
		http.NotFound(w, r)
		return
	}
	if sf, ok := f.(seekableFile); ok {
		content = &sizedFile{f: sf, size: st.Size()}
	}
	h["Content-Type"] = typ.contentType
	h["Cache-Control"] = typ.cacheControl
	h["Access-Control-Expose-Headers"] = segmentExposed
	http.ServeContent(w, r, "", st.ModTime(), content)
}

// await returns the published file name, or the status and message to
// answer with instead. A request for a playlist of a broadcast that has
// begun waits for the playlist to come out (for at most startHold): a
// player that opens as the stream goes live gets its first segment the
// moment it exists, not at its next retry. A request for a live media
// playlist with the blocking reload directive _HLS_msn=N (RFC 8216bis
// 6.2.5.2) is answered once the playlist lists segment N, which spares players polling for the
// next segment and lets every viewer hear of it the moment it is
// published. After three target durations without it, the request gets
// the playlist as it is. A segment more than two beyond the last is a
// mistake: 400.
func (p *Packager) await(r *http.Request, name string) (*memFile, int, string) {
	var want uint64
	blocking := false
	if q := r.URL.Query(); q.Has("_HLS_msn") {
		n, err := strconv.ParseUint(q.Get("_HLS_msn"), 10, 64)
		if err != nil {
			return nil, http.StatusBadRequest, "_HLS_msn must be a media sequence number"
		}
		want, blocking = n, true
	} else if q.Has("_HLS_part") {
		return nil, http.StatusBadRequest, "_HLS_part needs _HLS_msn"
	}
	var deadline <-chan time.Time
	for {
		changed := *p.changed.Load()
		f := (*p.published.Load())[name]
		switch {
		case f == nil && p.onAir.Load() && path.Ext(name) == ".m3u8":
			// Not out yet: wait below.
		case f == nil && name == MasterPlaylist:
			return nil, http.StatusNotFound, "the stream is offline"
		case f == nil:
			return nil, http.StatusNotFound, "404 page not found"
		case !blocking || f.edge == nil || want < f.edge.next:
			return f, 0, ""
		case want > f.edge.next+1:
			return nil, http.StatusBadRequest, "_HLS_msn is more than two segments beyond the playlist's last: reload without it"
		}
		if deadline == nil {
			hold := startHold
			if f != nil {
				hold = f.edge.hold
			}
			t := time.NewTimer(hold)
			defer t.Stop()
			deadline = t.C
			p.blocked.Add(1)
			defer p.blocked.Add(-1)
		}
		select {
		case <-changed:
		case <-deadline:
			if f == nil {
				return nil, http.StatusNotFound, "the stream is starting: try again"
			}
			return f, 0, ""
		case <-r.Context().Done():
			return nil, http.StatusServiceUnavailable, "gone"
		}
	}
}

// bufferedWriter writes a body from memory into the response's buffer in
// one piece. Through the bare ResponseWriter, net/http would send the
// first 512 bytes with the headers and then the rest with a write of its
// own: two system calls for a playlist of a kilobyte.
type bufferedWriter struct{ w http.ResponseWriter }

func (b bufferedWriter) Header() http.Header         { return b.w.Header() }
func (b bufferedWriter) Write(p []byte) (int, error) { return b.w.Write(p) }
func (b bufferedWriter) WriteHeader(code int)        { b.w.WriteHeader(code) }

// ReadFrom takes what ServeContent copies with io.CopyN: a whole
// bytes.Reader is written without a copy buffer; a range goes the usual
// way.
func (b bufferedWriter) ReadFrom(src io.Reader) (int64, error) {
	if lr, ok := src.(*io.LimitedReader); ok {
		if br, ok := lr.R.(*bytes.Reader); ok && int64(br.Len()) == lr.N {
			n, err := br.WriteTo(b.w)
			lr.N -= n
			return n, err
		}
	}
	return io.Copy(b.w, src)
}

// seekableFile is a segment file as os.Root's are: sendfile(2) takes its
// descriptor (syscall.Conn).
type seekableFile interface {
	io.ReadSeeker
	syscall.Conn
}

// sizedFile is a segment of known size. ServeContent learns a content's
// size by seeking to its end and back, two system calls per request that
// the size from Stat makes unnecessary: seeks only move where sizedFile
// will read from, and the file's own offset follows when it is read.
type sizedFile struct {
	f    seekableFile
	size int64
	off  int64 // where the next read starts
	at   int64 // the file's own offset; -1 if unknown (after a sendfile)
}

// learn reads the file's offset after a sendfile has moved it.
func (s *sizedFile) learn() error {
	if s.at != -1 {
		return nil
	}
	at, err := s.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	s.at, s.off = at, at
	return nil
}

func (s *sizedFile) Seek(offset int64, whence int) (int64, error) {
	if err := s.learn(); err != nil {
		return 0, err
	}
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += s.off
	case io.SeekEnd:
		offset += s.size
	default:
		return 0, errors.New("seek: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	s.off = offset
	return offset, nil
}

// sync moves the file's offset to where the next read starts.
func (s *sizedFile) sync() error {
	if s.at == s.off {
		return nil
	}
	if _, err := s.f.Seek(s.off, io.SeekStart); err != nil {
		return err
	}
	s.at = s.off
	return nil
}

func (s *sizedFile) Read(b []byte) (int, error) {
	if err := s.learn(); err != nil {
		return 0, err
	}
	if err := s.sync(); err != nil {
		return 0, err
	}
	n, err := s.f.Read(b)
	s.off += int64(n)
	s.at = s.off
	return n, err
}

// SyscallConn hands the descriptor to sendfile(2), which starts at the
// file's offset and moves it by what it sends.
func (s *sizedFile) SyscallConn() (syscall.RawConn, error) {
	if err := s.sync(); err != nil {
		return nil, err
	}
	s.at = -1
	return s.f.SyscallConn()
}
