package benchkit

import (
	"context"
	"fmt"
	"os"
	"os/exec"

	"github.com/chromedp/chromedp"
)

// Chromium returns an allocator context for a headless Debian Chromium with
// a fresh profile under dir, set up to play video as a viewer would
// (autoplay allowed, sound muted); cancel stops the browser. Browsers
// start on the first chromedp.Run of a context made from it.
func Chromium(dir string) (ctx context.Context, cancel func(), err error) {
	path, err := exec.LookPath("chromium")
	if err != nil {
		return nil, nil, fmt.Errorf("chromium is needed: %w", err)
	}
	userDir, err := os.MkdirTemp(dir, "chromium-")
	if err != nil {
		return nil, nil, err
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(userDir))
	ctx, cancel = chromedp.NewExecAllocator(context.Background(), opts...)
	return ctx, cancel, nil
}
