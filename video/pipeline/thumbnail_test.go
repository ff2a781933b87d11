package pipeline

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/testrig"
	"github.com/starling-live/starling/video/thumbnail"
)

// The transcoding ffmpeg sends the stills itself: the thumbnail appears
// soon after the publisher starts and is refreshed while it streams, from
// a rendition that transcodes and from one that only passes the video
// through (which decodes nothing but key frames for it).
func TestThumbnailComesFromTheTranscoder(t *testing.T) {
	passthrough := lightVideo
	passthrough.Variants = []core.Variant{{Name: "source", VideoPassthrough: true, AudioPassthrough: true}}
	for _, tc := range []struct {
		name  string
		video core.VideoSettings
	}{
		{"transcoded", lightVideo},
		{"passthrough", passthrough},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startRig(t, tc.video)
			start := time.Now()
			publish(t, r.rtmpURL, 60, 30)
			path := filepath.Join(r.thumbDir, thumbnail.Name)
			var first []byte
			testrig.Eventually(t, 30*time.Second, "a thumbnail", func() (bool, string) {
				b, err := os.ReadFile(path)
				first = b
				return err == nil && isJPEG(b), fmt.Sprint(err)
			})
			t.Logf("%s: first thumbnail %.1f s after the publisher started, %d bytes", tc.name, time.Since(start).Seconds(), len(first))
			// testsrc's picture changes every frame: a newer still differs.
			testrig.Eventually(t, 30*time.Second, "a newer thumbnail", func() (bool, string) {
				b, err := os.ReadFile(path)
				return err == nil && isJPEG(b) && !bytes.Equal(b, first), fmt.Sprint(err)
			})
			t.Logf("%s: refreshed %.1f s after the publisher started", tc.name, time.Since(start).Seconds())
		})
	}
}

func isJPEG(b []byte) bool {
	return len(b) > 4 && b[0] == 0xff && b[1] == 0xd8 && bytes.HasSuffix(b, []byte{0xff, 0xd9})
}
