package hls

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starling-live/starling/core/testrig"
)

const secret = "TOP SECRET: outside the HLS directory"

// newServedPackager serves a packager with one published segment, its
// directory next to a secret file and with symlinks pointing at it.
func newServedPackager(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	p, dir := newPackager(t)
	b := p.Begin(context.Background(), Options{PlaylistSegments: 3})
	f := &fakeFFmpeg{t: t, base: b.NextRunURL(), pdt: time.Now()}
	f.send(0, 0)
	f.master(1)
	uri := waitPlaylist(t, p, "0/stream.m3u8", hasSegments(1)).GetAllSegments()[0].URI

	top := filepath.Dir(dir)
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(top, "private"), 0o755)
	write(filepath.Join(top, "secret.ts"), secret)
	write(filepath.Join(top, "private", "secret.ts"), secret)
	write(filepath.Join(top, "secret.m3u8"), secret)
	os.Symlink(filepath.Join(top, "secret.ts"), filepath.Join(dir, "escape.ts"))
	os.Symlink(filepath.Join(top, "private"), filepath.Join(dir, "link"))

	ts := httptest.NewServer(http.StripPrefix("/hls/", p))
	t.Cleanup(ts.Close)
	return ts, "/hls/0/" + uri
}

func rawGet(t *testing.T, ts *httptest.Server, method, target string) (*http.Response, string) {
	t.Helper()
	return testrig.RawGet(t, ts.Listener.Addr().String(), method, target)
}

func TestHandlerRefusesHostilePaths(t *testing.T) {
	ts, seg := newServedPackager(t)
	for _, target := range []string{
		"/hls/../secret.ts",
		"/hls/%2e%2e/secret.ts",
		"/hls/%2E%2E%2Fsecret.ts",
		"/hls/..%2fsecret.ts",
		"/hls/0/..%2f..%2fsecret.ts",
		"/hls/0/%2e%2e/%2e%2e/secret.ts",
		"/hls/..%5csecret.ts",
		"/hls/0%5c..%5c..%5csecret.ts",
		"/hls//secret.ts",
		"/hls/%2fsecret.ts",
		"/hls/./../secret.m3u8",
		"/hls/escape.ts",      // symlink to a file outside
		"/hls/link/secret.ts", // symlink to a directory outside
		"/hls/%00.ts",         // NUL
		seg + "%00.m3u8",      // NUL to cut an extension check
		"/hls/stream.m3u8/",   // a file as a directory
		"/hls/",               // no listings
		"/hls/0/",
		"/hls/0",
		"/hls/0/seg-1.txt", // not a stream file
		"/hls/secret.ts",   // not there
	} {
		resp, body := rawGet(t, ts, http.MethodGet, target)
		if resp.StatusCode == http.StatusOK || strings.Contains(body, "TOP SECRET") {
			t.Errorf("GET %s: %d %q: must not be served", target, resp.StatusCode, body)
		}
		if resp.StatusCode >= 500 {
			t.Errorf("GET %s: %d: hostile input must not cause a server error", target, resp.StatusCode)
		}
	}
}

func TestHandlerServesStreamFiles(t *testing.T) {
	ts, seg := newServedPackager(t)
	tests := []struct {
		path, contentType, cacheControl, body string
	}{
		{"/hls/stream.m3u8", "application/vnd.apple.mpegurl", "no-cache", "#EXTM3U"},
		{"/hls/0/stream.m3u8", "application/vnd.apple.mpegurl", "no-cache", "#EXTM3U"},
		{"/hls/0/segments.json", "application/json", "no-cache", "{"},
		{seg, "video/mp2t", "public, max-age=31536000, immutable", string(segmentBody(0, 0))},
	}
	for _, tt := range tests {
		resp, err := http.Get(ts.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), tt.body) {
			t.Errorf("GET %s: %d %q", tt.path, resp.StatusCode, body)
		}
		for h, want := range map[string]string{
			"Content-Type":                tt.contentType,
			"Cache-Control":               tt.cacheControl,
			"Access-Control-Allow-Origin": "*",
		} {
			if got := resp.Header.Get(h); got != want {
				t.Errorf("GET %s: %s = %q, want %q", tt.path, h, got, want)
			}
		}
	}

	// A player that polls the playlist gets 304 until it changes.
	resp, err := http.Get(ts.URL + "/hls/0/stream.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/hls/0/stream.m3u8", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("Etag"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET of an unchanged playlist: %v %v, want 304", resp.Status, err)
	}

	// Players fetch byte ranges, and ask for CORS preflights.
	req, _ = http.NewRequest(http.MethodGet, ts.URL+seg, nil)
	req.Header.Set("Range", "bytes=2-4")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(body) != string(segmentBody(0, 0)[2:5]) {
		t.Errorf("range request: %d %q", resp.StatusCode, body)
	}
	if resp, _ := rawGet(t, ts, http.MethodOptions, seg); resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Methods") == "" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, _ := rawGet(t, ts, http.MethodPost, seg); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
}

// A segment is served with its size from Stat, not by seeking: whole,
// by ranges and by several ranges at once, over TCP (sendfile) as viewers
// get it.
func TestSizedFileServesRanges(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 300<<10)
	for i := range data {
		data[i] = byte(i * 7 % 251)
	}
	if err := os.WriteFile(filepath.Join(dir, "seg.ts"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(filepath.Join(dir, "seg.ts"))
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		st, _ := f.Stat()
		http.ServeContent(w, r, "", st.ModTime(), &sizedFile{f: f, size: st.Size()})
	}))
	defer ts.Close()
	tests := []struct {
		rng    string
		status int
		want   []byte // the body, or a part of a multipart one
	}{
		{"", http.StatusOK, data},
		{"bytes=0-0", http.StatusPartialContent, data[:1]},
		{"bytes=1000-", http.StatusPartialContent, data[1000:]},
		{"bytes=-500", http.StatusPartialContent, data[len(data)-500:]},
		{"bytes=70000-200000", http.StatusPartialContent, data[70000:200001]},
		{"bytes=10-19,100000-100009", http.StatusPartialContent, data[100000:100010]},
		{"bytes=400000-", http.StatusRequestedRangeNotSatisfiable, nil},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodGet, ts.URL, nil)
		if tt.rng != "" {
			req.Header.Set("Range", tt.rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("Range %q: %d, want %d", tt.rng, resp.StatusCode, tt.status)
			continue
		}
		multipart := strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/")
		if ok := bytes.Equal(body, tt.want) || multipart && bytes.Contains(body, tt.want) && bytes.Contains(body, data[10:20]); tt.want != nil && !ok {
			t.Errorf("Range %q: %d bytes, not the file's", tt.rng, len(body))
		}
	}
}

// After sendfile has moved the file's offset, reading and seeking go on
// from where it really is.
func TestSizedFileAfterSendfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg.ts")
	if err := os.WriteFile(path, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := &sizedFile{f: f, size: 10}
	if n, err := s.Seek(0, io.SeekEnd); n != 10 || err != nil {
		t.Fatalf("seek to the end: %d %v", n, err)
	}
	if n, _ := f.Seek(0, io.SeekCurrent); n != 0 {
		t.Fatalf("the size probe moved the file to %d", n)
	}
	s.Seek(3, io.SeekStart)
	if _, err := s.SyscallConn(); err != nil {
		t.Fatal(err)
	}
	f.Seek(7, io.SeekStart) // what a sendfile of 4 bytes would do
	b := make([]byte, 10)
	if n, _ := s.Read(b); string(b[:n]) != "789" {
		t.Errorf("read after sendfile: %q, want 789", b[:n])
	}
	if n, err := s.Seek(-2, io.SeekCurrent); n != 8 || err != nil {
		t.Errorf("seek back: %d %v, want 8", n, err)
	}
	if _, err := s.Seek(-20, io.SeekEnd); err == nil {
		t.Error("a seek before the start succeeded")
	}
}

// waitBlocked waits until n requests wait in p.await.
func waitBlocked(t *testing.T, p *Packager, n int32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.blocked.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests wait, want %d", p.blocked.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPlaylistsOfAStartingBroadcastAreWaitedFor(t *testing.T) {
	p, _ := newPackager(t)
	ts := httptest.NewServer(http.StripPrefix("/hls/", p))
	t.Cleanup(ts.Close)
	get := func() chan string {
		got := make(chan string, 1)
		go func() {
			resp, err := http.Get(ts.URL + "/hls/stream.m3u8")
			if err != nil {
				got <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got <- fmt.Sprint(resp.StatusCode, " ", string(b))
		}()
		return got
	}
	if code, _ := rawGet(t, ts, http.MethodGet, "/hls/stream.m3u8"); code.StatusCode != http.StatusNotFound {
		t.Errorf("offline: %d, want 404 at once", code.StatusCode)
	}

	b := p.Begin(context.Background(), Options{PlaylistSegments: 3})
	got := get()
	waitBlocked(t, p, 1)
	f := &fakeFFmpeg{t: t, base: b.NextRunURL(), pdt: time.Now()}
	f.send(0, 0)
	f.master(1)
	if body := <-got; !strings.HasPrefix(body, "200 #EXTM3U") || !strings.Contains(body, "0/stream.m3u8") {
		t.Errorf("the master playlist asked for while the broadcast started: %s", body)
	}
	b.End(context.Background())

	// A broadcast that ends before its first segment answers at once.
	p.Begin(context.Background(), Options{PlaylistSegments: 3}).End(context.Background())
	b = p.Begin(context.Background(), Options{PlaylistSegments: 3})
	got = get()
	waitBlocked(t, p, 1)
	b.End(context.Background())
	if body := <-got; !strings.HasPrefix(body, "404 the stream is offline") {
		t.Errorf("waiting when the broadcast ended: %s", body)
	}
}

func TestBlockingPlaylistReload(t *testing.T) {
	p, _ := newPackager(t)
	b := p.Begin(context.Background(), Options{PlaylistSegments: 3})
	f := &fakeFFmpeg{t: t, base: b.NextRunURL(), pdt: time.Now()}
	f.send(0, 0)
	f.master(1)
	pl := waitPlaylist(t, p, "0/stream.m3u8", hasSegments(1))
	last := pl.SeqNo
	ts := httptest.NewServer(http.StripPrefix("/hls/", p))
	t.Cleanup(ts.Close)

	_, body := get(t, p, "0/stream.m3u8")
	if !bytes.Contains(body, []byte("\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES\n")) {
		t.Errorf("a live playlist does not say players may block:\n%s", body)
	}

	reload := func(query string) (int, string) {
		resp, err := http.Get(ts.URL + "/hls/0/stream.m3u8?" + query)
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	msn := func(n uint64) string { return fmt.Sprintf("_HLS_msn=%d", n) }
	for _, tt := range []struct {
		query string
		code  int
	}{
		{msn(last), http.StatusOK}, // listed: at once
		{msn(last + 3), http.StatusBadRequest},
		{"_HLS_msn=next", http.StatusBadRequest},
		{"_HLS_msn=-1", http.StatusBadRequest},
		{"_HLS_part=0", http.StatusBadRequest},
	} {
		if code, body := reload(tt.query); code != tt.code {
			t.Errorf("?%s: %d %s, want %d", tt.query, code, body, tt.code)
		}
	}

	// The next segment: the answer waits for it, and lists it.
	got := make(chan string, 1)
	go func() { _, body := reload(msn(last + 1)); got <- body }()
	waitBlocked(t, p, 1)
	f.send(0, 1)
	if body := <-got; !strings.Contains(body, fmt.Sprintf("seg-%d.ts", last+1)) {
		t.Errorf("the blocked reload was answered without the segment it waited for:\n%s", body)
	}

	// Nothing comes: after three target durations, the playlist as it is.
	code, text := reload(msn(last + 2))
	if code != http.StatusOK || strings.Contains(text, fmt.Sprintf("seg-%d.ts", last+2)) || !strings.Contains(text, fmt.Sprintf("seg-%d.ts", last+1)) {
		t.Errorf("a reload that timed out: %d\n%s", code, text)
	}

	// The end of the broadcast answers a waiting reload with the closed playlist.
	go func() { _, body := reload(msn(last + 2)); got <- body }()
	waitBlocked(t, p, 1)
	b.End(context.Background())
	if body := <-got; !strings.Contains(body, "#EXT-X-ENDLIST") || strings.Contains(body, "SERVER-CONTROL") {
		t.Errorf("a reload waiting when the broadcast ended:\n%s", body)
	}
}
