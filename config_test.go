package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/testrig"
)

// configCase sets one setting through the admin API and finds it again
// in /api/config or /api/admin/serverconfig.
type configCase struct {
	path  string
	value any
	// where is "config" or "serverconfig", and want is a JSON fragment
	// that must be in its answer.
	where, want string
}

// TestEverySettingRoundTrips: each config setter saves what it is given,
// and the read side shows it; a bad value is refused, naming the field.
func TestEverySettingRoundTrips(t *testing.T) {
	s := startServer(t)
	for _, tc := range []configCase{
		{"name", "My Stream", "config", `"name":"My Stream"`},
		{"serversummary", "About me", "config", `"summary":"About me"`},
		{"streamtitle", "Today: Go", "config", `"streamTitle":"Today: Go"`},
		{"offlinemessage", "Back soon", "config", `"offlineMessage":"Back soon"`},
		{"welcomemessage", "Hello chat", "serverconfig", `"welcomeMessage":"Hello chat"`},
		{"pagecontent", "# Schedule\n\n*Mondays*", "config", `"extraPageContent":"\u003ch1\u003eSchedule\u003c/h1\u003e\n\u003cp\u003e\u003cem\u003eMondays\u003c/em\u003e\u003c/p\u003e"`},
		{"pagecontent", "# Schedule\n\n*Mondays*", "serverconfig", `"extraPageContent":"# Schedule\n\n*Mondays*"`},
		{"tags", []string{"#go", "music", "go"}, "config", `"tags":["go","music"]`},
		{"nsfw", true, "config", `"nsfw":true`},
		{"socialhandles", []map[string]string{{"platform": "github", "url": "https://github.com/me"}}, "config", `"socialHandles":[{"platform":"github","url":"https://github.com/me"}]`},
		{"serverurl", "https://live.example.com/", "serverconfig", `"serverURL":"https://live.example.com"`},
		{"hideviewercount", true, "config", `"hideViewerCount":true`},
		{"appearance", map[string]string{"--theme-color-background-main": "#101010"}, "config", `"appearanceVariables":{"--theme-color-background-main":"#101010"}`},
		{"customstyles", "body { color: red }", "config", `"customStyles":"body { color: red }"`},
		{"customjavascript", "console.log(1)", "serverconfig", `"customJavascript":"console.log(1)"`},
		{"externalactions", []map[string]any{{"url": "https://example.com/donate", "title": "Donate", "openExternally": true}}, "config", `"externalActions":[{"url":"https://example.com/donate","title":"Donate","openExternally":true}]`},
		{"disablesearchindexing", true, "serverconfig", `"disableSearchIndexing":true`},
		{"directoryenabled", true, "serverconfig", `"yp":{"enabled":true`},
		{"sockethostoverride", "wss://chat.example.com", "config", `"socketHostOverride":"wss://chat.example.com"`},
		{"videoservingendpoint", "https://cdn.example.com", "serverconfig", `"videoServingEndpoint":"https://cdn.example.com"`},
		{"chat/establishedusermode", true, "serverconfig", `"chatEstablishedUserMode":true`},
		{"chat/joinmessagesenabled", false, "serverconfig", `"chatJoinMessagesEnabled":false`},
		{"chat/suggestedusernames", []string{"Otter", "Heron"}, "serverconfig", `"suggestedUsernames":["Otter","Heron"]`},
		{"federation/username", "@Live", "serverconfig", `"username":"live"`},
		{"federation/livemessage", "On now", "serverconfig", `"goLiveMessage":"On now"`},
		{"federation/enable", true, "config", `"federation":{"enabled":true,"account":"@live@live.example.com"`},
		{"federation/private", true, "serverconfig", `"isPrivate":true`},
		{"federation/showengagement", false, "serverconfig", `"showEngagement":false`},
		{"federation/blockdomains", []string{"Spam.Example"}, "serverconfig", `"blockedDomains":["spam.example"]`},
		{"notifications/discord", map[string]any{"enabled": true, "webhook": "https://discord.com/api/webhooks/1/x", "goLiveMessage": "Live!"}, "serverconfig", `"discord":{"enabled":true,"webhook":"https://discord.com/api/webhooks/1/x","goLiveMessage":"Live!"}`},
	} {
		t.Run(tc.path, func(t *testing.T) {
			if code, b := s.admin(http.MethodPost, "/api/admin/config/"+tc.path, map[string]any{"value": tc.value}); code != http.StatusOK {
				t.Fatalf("set: %d %s", code, b)
			}
			path := "/api/config"
			var body []byte
			if tc.where == "serverconfig" {
				_, body = s.admin(http.MethodGet, "/api/admin/serverconfig", nil)
			} else {
				_, body = s.get(path)
			}
			if !bytes.Contains(body, []byte(tc.want)) {
				t.Errorf("%s does not show %s:\n%s", tc.where, tc.want, body)
			}
		})
	}

	// A bad value is refused with a message that names the field, and
	// changes nothing.
	for _, tc := range []struct {
		path  string
		value any
		says  string
	}{
		{"serverurl", "ftp://x", "serverURL"},
		{"sockethostoverride", "chat.example.com", "socketHostOverride"},
		{"tags", []string{"two words"}, "tag \"two words\""},
		{"socialhandles", []map[string]string{{"platform": "github", "url": "javascript:alert(1)"}}, "socialHandles github url"},
		{"socialhandles", []map[string]string{{"platform": "github", "url": "https://x", "icon": "y"}}, `unknown field "icon"`},
		{"appearance", map[string]string{"--x": "red; background: url(evil)"}, "appearanceVariables --x"},
		{"externalactions", []map[string]any{{"title": "Nothing"}}, `externalActions "Nothing": give a url`},
		{"federation/username", "no spaces", "federation username"},
		{"federation/blockdomains", []string{"not a domain"}, "blockedDomains"},
		{"notifications/discord", map[string]any{"enabled": true, "webhook": "http://discord.com/x"}, "discord webhook must be an https address"},
		{"name", strings.Repeat("n", 101), "name is 101 characters long"},
		{"nsfw", "yes", `"value" is not what this setting takes`},
	} {
		code, b := s.admin(http.MethodPost, "/api/admin/config/"+tc.path, map[string]any{"value": tc.value})
		var answer struct {
			Success bool
			Message string
		}
		json.Unmarshal(b, &answer)
		if code != http.StatusBadRequest || answer.Success || !strings.Contains(answer.Message, tc.says) {
			t.Errorf("%s %v: %d %s, want 400 saying %s", tc.path, tc.value, code, b, tc.says)
		}
	}
	if _, b := s.admin(http.MethodGet, "/api/admin/serverconfig", nil); !bytes.Contains(b, []byte(`"serverURL":"https://live.example.com"`)) {
		t.Errorf("a refused value changed the settings:\n%s", b)
	}

	// What the settings serve.
	if _, b := s.get("/customjavascript"); string(b) != "console.log(1)" {
		t.Errorf("/customjavascript: %q", b)
	}
	if _, b := s.get("/robots.txt"); !strings.Contains(string(b), "Disallow: /\n") {
		t.Errorf("/robots.txt with search indexing off: %q", b)
	}
	var st map[string]any
	s.getJSON("/api/status", &st)
	if _, shown := st["viewerCount"]; shown {
		t.Errorf("/api/status shows the viewer count the admin hid: %v", st)
	}
}

// TestAdminPasswordChangesAtOnce: after adminpass, the old password no
// longer logs in and the new one does.
func TestAdminPasswordChangesAtOnce(t *testing.T) {
	s := startServer(t)
	const next = "a-new-admin-password-42"
	if code, b := s.admin(http.MethodPost, "/api/admin/config/adminpass", map[string]any{"value": next}); code != http.StatusOK {
		t.Fatalf("adminpass: %d %s", code, b)
	}
	if code, _ := s.admin(http.MethodGet, "/api/admin/status", nil); code != http.StatusUnauthorized {
		t.Errorf("the old password still logs in: %d", code)
	}
	code, _ := httpGet(t, s.URL+"/api/admin/status", "admin", next)
	if code != http.StatusOK {
		t.Errorf("the new password: %d", code)
	}
	if strings.Contains(s.logs.String(), next) {
		t.Error("the new password is in the log")
	}
}

// TestS3SecretIsNeverShown: the S3 secret is stored, shown only masked,
// and kept when the mask comes back.
func TestS3SecretIsNeverShown(t *testing.T) {
	s := startServer(t)
	s3 := map[string]any{"enabled": true, "endpoint": "https://s3.example.com", "accessKey": "AKIAEXAMPLE",
		"secret": "the-real-s3-secret", "bucket": "my-stream", "region": "eu-west-1", "acl": "public-read"}
	if code, b := s.admin(http.MethodPost, "/api/admin/config/s3", map[string]any{"value": s3}); code != http.StatusOK {
		t.Fatalf("s3: %d %s", code, b)
	}
	_, b := s.admin(http.MethodGet, "/api/admin/serverconfig", nil)
	if bytes.Contains(b, []byte("the-real-s3-secret")) || !bytes.Contains(b, []byte(`"secret":"********"`)) || !bytes.Contains(b, []byte(`"bucket":"my-stream"`)) {
		t.Errorf("serverconfig's s3: %s", b)
	}
	s3["secret"], s3["bucket"] = "********", "other-bucket"
	if code, b := s.admin(http.MethodPost, "/api/admin/config/s3", map[string]any{"value": s3}); code != http.StatusOK {
		t.Fatalf("s3 with the mask: %d %s", code, b)
	}
	if secret, err := s.app.store.Secret(t.Context(), "s3_secret_key"); err != nil || secret != "the-real-s3-secret" {
		t.Errorf("the stored secret became %q (%v)", secret, err)
	}
	s3["bucket"] = "Bad_Bucket"
	if code, b := s.admin(http.MethodPost, "/api/admin/config/s3", map[string]any{"value": s3}); code != http.StatusBadRequest || !bytes.Contains(b, []byte("s3 bucket")) {
		t.Errorf("a bad bucket: %d %s", code, b)
	}
	if strings.Contains(s.logs.String(), "the-real-s3-secret") {
		t.Error("the S3 secret is in the log")
	}
}

// TestLogoUpload: an uploaded image is served at /logo, by what its bytes
// are; other content is refused.
func TestLogoUpload(t *testing.T) {
	s := startServer(t)
	if _, b := s.get("/logo"); !bytes.Contains(b, []byte("<svg")) {
		t.Errorf("the built-in logo: %.40q", b)
	}
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	img.Set(1, 1, color.RGBA{255, 0, 0, 255})
	var buf bytes.Buffer
	png.Encode(&buf, img)
	value := "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
	if code, b := s.admin(http.MethodPost, "/api/admin/config/logo", map[string]any{"value": value}); code != http.StatusOK {
		t.Fatalf("logo: %d %s", code, b)
	}
	resp, err := http.Get(s.URL + "/logo")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got bytes.Buffer
	got.ReadFrom(resp.Body)
	if resp.Header.Get("Content-Type") != "image/png" || !bytes.Equal(got.Bytes(), buf.Bytes()) {
		t.Errorf("/logo: %s, %d bytes", resp.Header.Get("Content-Type"), got.Len())
	}
	svg := "data:image/png;base64," + base64.StdEncoding.EncodeToString([]byte(`<svg onload="alert(1)"/>`))
	if code, b := s.admin(http.MethodPost, "/api/admin/config/logo", map[string]any{"value": svg}); code != http.StatusBadRequest || !bytes.Contains(b, []byte("PNG, JPEG, GIF or WebP")) {
		t.Errorf("an SVG dressed as PNG: %d %s", code, b)
	}
}

// TestStreamKeys: several keys publish; revoking the one in use ends its
// broadcast; disconnect kicks the publisher.
func TestStreamKeys(t *testing.T) {
	s := startServer(t)
	const second = "second-stream-key-77"
	keys := []map[string]string{{"key": testStreamKey, "comment": "OBS at home"}, {"key": second, "comment": "laptop"}}
	if code, b := s.admin(http.MethodPost, "/api/admin/config/streamkeys", map[string]any{"value": keys}); code != http.StatusOK {
		t.Fatalf("streamkeys: %d %s", code, b)
	}
	_, b := s.admin(http.MethodGet, "/api/admin/serverconfig", nil)
	if !bytes.Contains(b, []byte(`{"key":"second-stream-key-77","comment":"laptop"}`)) {
		t.Errorf("serverconfig's keys: %s", b)
	}
	for _, bad := range []any{[]map[string]string{}, []map[string]string{{"key": "short"}}, []map[string]string{{"key": second}, {"key": second}}} {
		if code, b := s.admin(http.MethodPost, "/api/admin/config/streamkeys", map[string]any{"value": bad}); code != http.StatusBadRequest {
			t.Errorf("stream keys %v: %d %s", bad, code, b)
		}
	}

	pub := publish(t, s.RTMPURL+"/"+second)
	testrig.Eventually(t, 30*time.Second, "online with the second key", func() (bool, string) { return s.status().Online, "" })
	// Revoke the second key: its broadcast ends, the first key still works.
	if code, b := s.admin(http.MethodPost, "/api/admin/config/streamkeys", map[string]any{"value": keys[:1]}); code != http.StatusOK {
		t.Fatalf("revoke: %d %s", code, b)
	}
	if _, done := pub.exited(30 * time.Second); !done {
		t.Fatal("the publisher with the revoked key is still connected")
	}
	testrig.Eventually(t, 30*time.Second, "offline after the revoke", func() (bool, string) { return !s.status().Online, "" })

	publish(t, s.RTMPURL+"/"+testStreamKey)
	testrig.Eventually(t, 30*time.Second, "online with the first key", func() (bool, string) { return s.status().Online, "" })
	if code, b := s.admin(http.MethodPost, "/api/admin/disconnect", nil); code != http.StatusOK {
		t.Fatalf("disconnect: %d %s", code, b)
	}
	testrig.Eventually(t, 30*time.Second, "offline after disconnect", func() (bool, string) { return !s.status().Online, "" })
	if code, b := s.admin(http.MethodPost, "/api/admin/disconnect", nil); code != http.StatusBadRequest {
		t.Errorf("disconnect while offline: %d %s", code, b)
	}
	if strings.Contains(s.logs.String(), second) {
		t.Error("a stream key is in the log")
	}
}

// TestVideoSettings: variants in Owncast's shapes with only what the
// admin chose, unknown fields refused by name, the codec among what this
// ffmpeg has, and the latency level deciding the next broadcast's
// segments.
func TestVideoSettings(t *testing.T) {
	s := startServer(t)
	if code, b := s.admin(http.MethodPost, "/api/admin/config/video/streamoutputvariants",
		map[string]any{"value": []map[string]any{{"scaledHeight": 180, "videoBitrate": 300}, {"videoPassthrough": true}}}); code != http.StatusOK {
		t.Fatalf("variants: %d %s", code, b)
	}
	_, b := s.admin(http.MethodGet, "/api/admin/serverconfig", nil)
	for _, want := range []string{
		`{"name":"180p","videoPassthrough":false,"audioPassthrough":true,"videoBitrate":300,"audioBitrate":128,"scaledWidth":0,"scaledHeight":180,"framerate":30,"cpuUsageLevel":2}`,
		`{"name":"source","videoPassthrough":true,"audioPassthrough":true,"videoBitrate":0`,
		`"videoCodec":"libx264"`, `"supportedCodecs":["libx264"`,
	} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("serverconfig lacks %s:\n%s", want, b)
		}
	}
	for _, tc := range []struct {
		path  string
		value any
		says  string
	}{
		{"video/streamoutputvariants", []map[string]any{{"scaledHeight": 180, "bitrate": 300}}, `unknown field "bitrate"`},
		{"video/codec", "h264_madeup", `video codec "h264_madeup" does not work`},
		{"video/streamlatencylevel", 7, "latency level must be 0"},
	} {
		code, b := s.admin(http.MethodPost, "/api/admin/config/"+tc.path, map[string]any{"value": tc.value})
		var answer struct{ Message string }
		json.Unmarshal(b, &answer)
		if code != http.StatusBadRequest || !strings.Contains(answer.Message, tc.says) {
			t.Errorf("%s %v: %d %s, want 400 saying %s", tc.path, tc.value, code, b, tc.says)
		}
	}
	if code, b := s.admin(http.MethodPost, "/api/admin/config/video/codec", map[string]any{"value": "libx264"}); code != http.StatusOK {
		t.Errorf("libx264: %d %s", code, b)
	}

	// Level 3: two-second segments from the next broadcast on, and pages
	// told to stay four behind live.
	s.setVariants(testVariant)
	if code, b := s.admin(http.MethodPost, "/api/admin/config/video/streamlatencylevel", map[string]any{"value": 3}); code != http.StatusOK {
		t.Fatalf("latency level: %d %s", code, b)
	}
	if _, b := s.admin(http.MethodGet, "/api/admin/serverconfig", nil); !bytes.Contains(b, []byte(`"latencyLevel":3,"segmentSeconds":2,"playlistSegments":10`)) {
		t.Errorf("serverconfig after level 3: %s", b)
	}
	if _, b := s.get("/api/config"); !bytes.Contains(b, []byte(`"highDemandTimeWindow":3,"liveSyncDurationCount":4`)) {
		t.Errorf("/api/config after level 3: %s", b)
	}
	// A run's first four segments are short, for a quick first picture.
	publish(t, s.RTMPURL+"/"+testStreamKey)
	pl := s.waitSegments("/hls/0/stream.m3u8", 6)
	for i, seg := range pl.GetAllSegments() {
		if short := i < 4; short && (seg.Duration < 0.05 || seg.Duration > 0.25) || !short && (seg.Duration < 1.5 || seg.Duration > 2.5) {
			t.Errorf("segment %d lasts %.2f s at latency level 3 (2 s segments, the first four 0.1 s)", i, seg.Duration)
		}
	}
}

// testVariant is one small rendition a busy machine transcodes in real
// time.
var testVariant = core.Variant{Name: "180p", ScaledHeight: 180, VideoBitrate: 300, AudioPassthrough: true, Framerate: 30, CPUUsageLevel: 0}
