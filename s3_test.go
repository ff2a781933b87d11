package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/grafov/m3u8"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/testrig"
	"github.com/starling-live/starling/storage/s3/s3test"
)

// s3Rig is a server whose segments go to a real S3 server (versitygw)
// through a proxy that can fail; viewers read the bucket directly, as
// they would through a CDN.
type s3Rig struct {
	*testServer
	gw    *s3test.Gateway
	proxy *s3test.FaultProxy
}

func startS3Server(t *testing.T) *s3Rig {
	t.Helper()
	gw := s3test.Start(t)
	proxy := s3test.NewFaultProxy(t, gw.Endpoint)
	s := startServer(t)
	r := &s3Rig{testServer: s, gw: gw, proxy: proxy}
	if code, body := s.admin(http.MethodPost, "/api/admin/config/s3", map[string]any{"value": r.settings(gw.Secret)}); code != http.StatusOK {
		t.Fatalf("config/s3: %d %s", code, body)
	}
	return r
}

// settings are the S3 settings as the admin gives them.
func (r *s3Rig) settings(secret string) map[string]any {
	return map[string]any{
		"enabled": true, "endpoint": r.proxy.URL, "servingEndpoint": r.gw.Endpoint + "/" + r.gw.Bucket,
		"accessKey": r.gw.AccessKey, "secret": secret, "bucket": r.gw.Bucket, "region": s3test.Region,
		"acl": "", "pathPrefix": "live", "forcePathStyle": true,
	}
}

// objects lists the bucket's keys.
func (r *s3Rig) objects() []string {
	r.t.Helper()
	out, err := r.gw.Client().ListObjectsV2(context.Background(), &awss3.ListObjectsV2Input{Bucket: aws.String(r.gw.Bucket)})
	if err != nil {
		r.t.Fatalf("list the bucket: %v", err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, *o.Key)
	}
	return keys
}

// fetch GETs a URL as a viewer, anonymously.
func fetch(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

// segmentURL resolves a playlist's segment URI as a player does.
func (r *s3Rig) segmentURL(uri string) string {
	if strings.HasPrefix(uri, "http") {
		return uri
	}
	return r.URL + "/hls/0/" + uri
}

type adminStorage struct {
	Health struct {
		Warnings []string `json:"warnings"`
	} `json:"health"`
	Storage struct {
		Remote   bool   `json:"remote"`
		Down     bool   `json:"down"`
		Backlog  int    `json:"backlog"`
		Uploaded int    `json:"uploaded"`
		Deferred int    `json:"deferred"`
		Error    string `json:"lastError"`
	} `json:"storage"`
}

func (r *s3Rig) storage() adminStorage {
	r.t.Helper()
	var st adminStorage
	_, body := r.admin(http.MethodGet, "/api/admin/status", nil)
	if err := json.Unmarshal(body, &st); err != nil {
		r.t.Fatalf("admin status: %v: %s", err, body)
	}
	return st
}

// TestS3StorageEndToEnd: ffmpeg streams to Starling configured for S3;
// the segments land in the bucket with the right headers, the playlists
// name them there, a browser plays them from the bucket with P2P on, and
// old ones are removed.
func TestS3StorageEndToEnd(t *testing.T) {
	r := startS3Server(t)

	// The test of the settings: a wrong secret is refused in plain words,
	// the right one (the stored one, masked) passes every step.
	code, body := r.admin(http.MethodPost, "/api/admin/storage/test", map[string]any{"value": r.settings("not-the-secret")})
	if code != http.StatusBadRequest || !strings.Contains(strings.ToLower(string(body)), "secret") || strings.Contains(string(body), "not-the-secret") {
		t.Errorf("storage test with a wrong secret: %d %s", code, body)
	}
	code, body = r.admin(http.MethodPost, "/api/admin/storage/test", map[string]any{"value": r.settings("********")})
	var res storageTest
	json.Unmarshal(body, &res)
	if code != http.StatusOK || !res.Success || len(res.Passed) < 4 {
		t.Errorf("storage test of good settings: %d %s", code, body)
	}

	r.setVariants(lightVariant)
	publish(t, r.RTMPURL+"/"+testStreamKey)
	pl := r.waitSegments("/hls/0/stream.m3u8", 2)
	base := r.gw.Endpoint + "/" + r.gw.Bucket + "/live/0/"
	for _, s := range pl.GetAllSegments() {
		if !strings.HasPrefix(s.URI, base) {
			t.Fatalf("the playlist names %s, not an object of the bucket (%s...)", s.URI, base)
		}
		code, h, data := fetch(t, s.URI)
		if code != http.StatusOK || h.Get("Content-Type") != "video/mp2t" || !strings.Contains(h.Get("Cache-Control"), "immutable") {
			t.Fatalf("GET %s from the bucket: %d %v", s.URI, code, h)
		}
		if p := ffprobe(t, data); len(p.Streams) == 0 {
			t.Errorf("%s is not a video segment", s.URI)
		}
	}
	if st := r.storage(); !st.Storage.Remote || st.Storage.Down || st.Storage.Uploaded == 0 {
		t.Errorf("admin status of the storage: %+v", st.Storage)
	}

	// A browser plays it from the bucket, P2P on: the page's CSP lets it
	// fetch there, and the hash lists come from the server.
	br := newBrowser(t)
	v := openViewer(br, r.testServer, "")
	var fromBucket int
	v.eval(fmt.Sprintf(`performance.getEntriesByType('resource').filter(e => e.name.startsWith(%q)).length`, base), &fromBucket)
	if st := v.p2p(); !st.Enabled || fromBucket == 0 || st.P2PRejectedSegments != 0 {
		t.Errorf("the viewer: %+v, %d segments from the bucket", st, fromBucket)
	}

	// Segments that leave retention leave the bucket, in batches.
	first := "live/0/" + pathBase(pl.GetAllSegments()[0].URI)
	testrig.Eventually(t, 3*time.Minute, "the oldest segment removed from the bucket", func() (bool, string) {
		keys := r.objects()
		return !slices.Contains(keys, first), fmt.Sprintf("%d objects: %v", len(keys), keys)
	})
	if n := len(r.objects()); n > 40 {
		t.Errorf("%d objects in the bucket: old segments are not removed", n)
	}
	v.waitPlaying()
	if strings.Contains(r.logs.String(), r.gw.Secret) {
		t.Error("the S3 secret is in the log")
	}
}

type storageTest struct {
	Success bool     `json:"success"`
	Message string   `json:"message"`
	Passed  []string `json:"passed"`
}

func pathBase(u string) string { return u[strings.LastIndex(u, "/")+1:] }

// lightVariant passes the publisher's stream through: no transcoding, so
// the browser has the CPU.
var lightVariant = core.Variant{Name: "source", VideoPassthrough: true, AudioPassthrough: true}

// TestS3OutageLosesNothing: the bucket fails for 30 s mid-stream. The
// stream goes on from the server's disk, every segment is listed and can
// be fetched where its playlist says, the admin is told, and once the
// bucket is back the backlog is uploaded and new segments go there again.
// The secret is in no answer and no log line.
func TestS3OutageLosesNothing(t *testing.T) {
	r := startS3Server(t)
	r.setVariants(lightVariant)
	publish(t, r.RTMPURL+"/"+testStreamKey)
	r.waitSegments("/hls/0/stream.m3u8", 2)

	// A viewer that follows the playlist and fetches every new segment
	// where it is listed.
	seen := map[uint64]string{} // media sequence -> URI
	var problems []string
	follow := func() *m3u8.MediaPlaylist {
		pl := r.mediaPlaylist("/hls/0/stream.m3u8")
		for i, s := range pl.GetAllSegments() {
			seq := pl.SeqNo + uint64(i)
			if _, ok := seen[seq]; ok {
				continue
			}
			seen[seq] = s.URI
			if code, _, _ := fetch(t, r.segmentURL(s.URI)); code != http.StatusOK {
				problems = append(problems, fmt.Sprintf("segment %d at %s: %d", seq, s.URI, code))
			}
		}
		return pl
	}
	follow()

	r.proxy.Set(s3test.Status(http.StatusServiceUnavailable))
	outage := time.Now()
	testrig.Eventually(t, 60*time.Second, "the admin told that the bucket fails", func() (bool, string) {
		follow()
		st := r.storage()
		return st.Storage.Down && len(st.Health.Warnings) > 0, fmt.Sprintf("%+v", st)
	})
	local := 0
	testrig.Eventually(t, 90*time.Second, "30 s of outage, with segments served from the server", func() (bool, string) {
		pl := follow()
		local = 0
		for _, s := range pl.GetAllSegments() {
			if !strings.HasPrefix(s.URI, "http") {
				local++
			}
		}
		return time.Since(outage) > 30*time.Second && local > 0, fmt.Sprintf("%d local segments listed", local)
	})
	r.proxy.Set(s3test.Pass())
	testrig.Eventually(t, 90*time.Second, "the backlog uploaded and the bucket in use again", func() (bool, string) {
		pl := follow()
		st := r.storage()
		segs := pl.GetAllSegments()
		return !st.Storage.Down && st.Storage.Backlog == 0 && strings.HasPrefix(segs[len(segs)-1].URI, "http"), fmt.Sprintf("%+v", st.Storage)
	})
	for _, p := range problems {
		t.Error(p)
	}
	// No gap in what the viewer saw.
	var seqs []uint64
	for seq := range seen {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Errorf("segments %d to %d were never listed", seqs[i-1]+1, seqs[i]-1)
		}
	}
	// Every segment published during the outage ended up in the bucket
	// (or was removed from it past retention, after its upload).
	st := r.storage()
	if st.Storage.Deferred == 0 || st.Storage.Uploaded < st.Storage.Deferred {
		t.Errorf("after the outage: %+v", st.Storage)
	}
	t.Logf("%d segments seen, %d deferred to local disk during the outage", len(seqs), st.Storage.Deferred)

	// The secret is in no answer and no log line.
	for _, path := range []string{"/api/admin/serverconfig", "/api/admin/status", "/api/admin/logs", "/api/admin/logs/warnings", "/api/config"} {
		if _, body := r.admin(http.MethodGet, path, nil); strings.Contains(string(body), r.gw.Secret) {
			t.Errorf("%s shows the S3 secret", path)
		}
	}
	if strings.Contains(r.logs.String(), r.gw.Secret) {
		t.Error("the S3 secret is in the log")
	}
}
