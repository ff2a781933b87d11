// Package chromium is the headless Debian Chromium that the browser tests
// and the benchmarks drive over the DevTools protocol.
package chromium

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/chromedp/chromedp"
)

// Allocator returns an allocator context for a headless Chromium with a
// fresh profile under dir, set up to play video as a viewer would
// (autoplay allowed, sound muted), and extra options after those. A
// browser starts on the first chromedp.Run of a context made from it;
// cancel kills it.
func Allocator(dir string, extra ...chromedp.ExecAllocatorOption) (ctx context.Context, cancel context.CancelFunc, err error) {
	path, err := exec.LookPath("chromium")
	if err != nil {
		return nil, nil, fmt.Errorf("chromium is needed: %w", err)
	}
	profile, err := os.MkdirTemp(dir, "chromium-")
	if err != nil {
		return nil, nil, err
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(profile))
	ctx, cancel = chromedp.NewExecAllocator(context.Background(), append(opts, extra...)...)
	return ctx, cancel, nil
}

// Close closes the browser of ctx, a context of chromedp.NewContext, and
// waits up to 10 s for it to exit, so that it has stopped writing its
// profile before the profile is removed (a browser killed instead leaves
// files being written: "directory not empty").
func Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return chromedp.Cancel(ctx)
}
