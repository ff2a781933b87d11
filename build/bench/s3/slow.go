package main

// This file is shared with the driver of the old design (before_main.go):
// it must build against the tree at the commit before the seam too.

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/starling-live/starling/video/hls"
)

// slowStorage is a storage whose every Put takes delay more once slow is
// set: a disk or bucket that has become slow. The other methods, whatever
// their signatures in the tree it is built in, go straight through.
type slowStorage struct {
	hls.Storage
	delay time.Duration
	slow  atomic.Bool
	// quit ends the waits, so that the bench can shut the packager down.
	quit chan struct{}
}

func newSlowStorage(s hls.Storage, delay time.Duration) *slowStorage {
	return &slowStorage{Storage: s, delay: delay, quit: make(chan struct{})}
}

func (s *slowStorage) Put(ctx context.Context, name string, data []byte) error {
	if s.slow.Load() {
		t := time.NewTimer(s.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.quit:
		}
	}
	return s.Storage.Put(ctx, name, data)
}
