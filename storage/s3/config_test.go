package s3_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/starling-live/starling/storage/s3"
)

func good() s3.Config {
	return s3.Config{AccessKey: "AKIAEXAMPLE", Secret: "very-secret-value", Bucket: "media", Region: "eu-west-3"}
}

func TestConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*s3.Config)
		want string
	}{
		{"no bucket", func(c *s3.Config) { c.Bucket = "" }, "the bucket is empty"},
		{"bucket with a path", func(c *s3.Config) { c.Bucket = "media/live" }, `bucket "media/live" contains a slash`},
		{"bucket with a space", func(c *s3.Config) { c.Bucket = "my media" }, `bucket "my media" is not a bucket name`},
		{"no access key", func(c *s3.Config) { c.AccessKey = "" }, "the access key is empty"},
		{"no secret", func(c *s3.Config) { c.Secret = "" }, `the secret is empty: set the secret of access key "AKIAEXAMPLE"`},
		{"secret pasted with a newline", func(c *s3.Config) { c.Secret += "\n" }, "contains spaces or control characters"},
		{"AWS without region", func(c *s3.Config) { c.Region = "" }, "the region is empty"},
		{"odd region", func(c *s3.Config) { c.Region = "eu west" }, `region "eu west"`},
		{"endpoint without scheme", func(c *s3.Config) { c.Endpoint = "s3.wasabisys.com" }, `endpoint "s3.wasabisys.com": must start with https://`},
		{"endpoint ftp", func(c *s3.Config) { c.Endpoint = "ftp://s3.example.com" }, "must start with https://"},
		{"endpoint with keys", func(c *s3.Config) { c.Endpoint = "https://key:pw@s3.example.com" }, "must not contain a user name or password"},
		{"endpoint with query", func(c *s3.Config) { c.Endpoint = "https://s3.example.com/?x=1" }, "must not contain a query"},
		{"endpoint without host", func(c *s3.Config) { c.Endpoint = "https:///bucket" }, "has no host name"},
		{"serving endpoint without scheme", func(c *s3.Config) { c.ServingEndpoint = "cdn.example.com" }, `serving endpoint "cdn.example.com": must start with https://`},
		{"unknown ACL", func(c *s3.Config) { c.ACL = "public" }, `ACL "public" is not a canned ACL`},
		{"prefix escaping", func(c *s3.Config) { c.PathPrefix = "live/../../x" }, `path prefix "live/../../x"`},
		{"prefix with backslash", func(c *s3.Config) { c.PathPrefix = `live\x` }, `path prefix "live\\x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good()
			tc.edit(&cfg)
			_, err := s3.New(cfg, s3.Deps{})
			if !errors.Is(err, s3.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v; want ErrConfig saying %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "very-secret-value") {
				t.Errorf("the error holds the secret: %v", err)
			}
		})
	}
}

func TestConfigNormalized(t *testing.T) {
	cfg := good()
	cfg.Endpoint = "https://s3.example.com/"
	cfg.Region = ""
	cfg.PathPrefix = "/live"
	st, err := s3.New(cfg, s3.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	got := st.Config()
	if got.Endpoint != "https://s3.example.com" || got.Region != "us-east-1" || got.PathPrefix != "live/" || got.Secret != "" {
		t.Errorf("normalized %+v; want endpoint without slash, region us-east-1, prefix live/, secret dropped", got)
	}
}

func TestURL(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*s3.Config)
		file string
		want string
	}{
		{"AWS virtual host", func(*s3.Config) {}, "0/seg-1.ts", "https://media.s3.eu-west-3.amazonaws.com/0/seg-1.ts"},
		{"AWS path style", func(c *s3.Config) { c.ForcePathStyle = true }, "0/seg-1.ts", "https://s3.eu-west-3.amazonaws.com/media/0/seg-1.ts"},
		{"AWS dotted bucket", func(c *s3.Config) { c.Bucket = "media.example.com" }, "stream.m3u8", "https://s3.eu-west-3.amazonaws.com/media.example.com/stream.m3u8"},
		{"AWS with prefix", func(c *s3.Config) { c.PathPrefix = "live" }, "stream.m3u8", "https://media.s3.eu-west-3.amazonaws.com/live/stream.m3u8"},
		{"custom virtual host", func(c *s3.Config) { c.Endpoint = "https://s3.wasabisys.com" }, "0/seg-1.ts", "https://media.s3.wasabisys.com/0/seg-1.ts"},
		{"custom path style", func(c *s3.Config) { c.Endpoint = "http://minio.lan:9000/"; c.ForcePathStyle = true }, "0/seg-1.ts", "http://minio.lan:9000/media/0/seg-1.ts"},
		{"custom IP", func(c *s3.Config) { c.Endpoint = "http://10.0.0.5:9000" }, "0/seg-1.ts", "http://10.0.0.5:9000/media/0/seg-1.ts"},
		{"custom, bucket not a DNS label", func(c *s3.Config) { c.Endpoint = "https://s3.example.com"; c.Bucket = "Media_Old" }, "a.ts", "https://s3.example.com/Media_Old/a.ts"},
		{"serving endpoint", func(c *s3.Config) { c.ServingEndpoint = "https://cdn.example.com/" }, "0/seg-1.ts", "https://cdn.example.com/0/seg-1.ts"},
		{"serving endpoint with path and prefix", func(c *s3.Config) { c.ServingEndpoint = "https://cdn.example.com/hls"; c.PathPrefix = "/live/" }, "0/seg-1.ts", "https://cdn.example.com/hls/live/0/seg-1.ts"},
		{"escaped segments", func(c *s3.Config) { c.ServingEndpoint = "https://cdn.example.com" }, "0/a b+c?d#e%f.ts", "https://cdn.example.com/0/a%20b%2Bc%3Fd%23e%25f.ts"},
		{"unicode", func(c *s3.Config) { c.ServingEndpoint = "https://cdn.example.com" }, "ü.ts", "https://cdn.example.com/%C3%BC.ts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good()
			tc.edit(&cfg)
			st, err := s3.New(cfg, s3.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			if got := st.URL(tc.file); got != tc.want {
				t.Errorf("URL(%q) = %s; want %s", tc.file, got, tc.want)
			}
		})
	}
}

// TestSecretNeverPrinted: however a Config or a Storage is printed or
// logged, the secret stays out.
func TestSecretNeverPrinted(t *testing.T) {
	cfg := good()
	st, err := s3.New(cfg, s3.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		texts = append(texts, fmt.Sprintf(format, cfg), fmt.Sprintf(format, &cfg), fmt.Sprintf(format, st), fmt.Sprintf(format, []any{cfg}))
	}
	texts = append(texts, cfg.String(), cfg.GoString(), fmt.Sprint(struct{ C s3.Config }{cfg}))
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
		slog.New(h).Info("settings", "s3", cfg, "storage", st)
	}
	texts = append(texts, buf.String())
	for _, text := range texts {
		if strings.Contains(text, cfg.Secret) {
			t.Errorf("printed the secret: %s", text)
		}
	}
	if !strings.Contains(fmt.Sprint(cfg), "AKIAEXAMPLE") || !strings.Contains(buf.String(), "[redacted]") {
		t.Errorf("the masked forms lost the rest: %v / %s", cfg, buf.String())
	}
}
