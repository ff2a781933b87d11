package hls

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkServe is the handler's own cost for a playlist from memory and
// a segment from disk (build/bench/serving measures the whole server).
func BenchmarkServe(b *testing.B) {
	dir := b.TempDir()
	os.Mkdir(filepath.Join(dir, "0"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "0", "seg-1.ts"), bytes.Repeat([]byte{0x47}, 750<<10), 0o644); err != nil {
		b.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer root.Close()
	p := New(Deps{Logger: slog.New(slog.DiscardHandler), Files: root.FS()})
	p.mu.Lock()
	p.publishFile("0/stream.m3u8", bytes.Repeat([]byte("#EXTINF:2.000,\nseg-1.ts\n"), 40), nil)
	p.mu.Unlock()
	for _, name := range []string{"0/stream.m3u8", "0/seg-1.ts"} {
		r := httptest.NewRequest(http.MethodGet, "/"+name, nil)
		r.URL.Path = name
		w := &discardWriter{h: http.Header{}}
		b.Run(filepath.Ext(name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				p.ServeHTTP(w, r)
			}
		})
	}
}

type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header { return w.h }
func (*discardWriter) WriteHeader(int)       {}
func (*discardWriter) Write(p []byte) (int, error) {
	return len(p), nil
}

// ReadFrom discards without reading, as sendfile(2) costs the handler
// nothing per byte.
func (*discardWriter) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		return lr.N, nil
	}
	return 0, nil
}
