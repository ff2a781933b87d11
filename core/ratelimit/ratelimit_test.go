package ratelimit

import (
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// TestTakeAndGive: a token given back is there again, so an address that
// only succeeds is never throttled; tokens kept run out after the burst,
// and the wait until the next one is said.
func TestTakeAndGive(t *testing.T) {
	l := New(rate.Every(6*time.Second), 10)
	// As the admin gate does: take now, check the password, give back.
	for i := range 100 {
		give, wait := l.Take("192.0.2.1", time.Now())
		if wait > 0 {
			t.Fatalf("take %d after giving every token back: wait %v", i, wait)
		}
		give()
	}
	now := time.Now()
	for i := range 10 {
		if _, wait := l.Take("192.0.2.2", now); wait > 0 {
			t.Fatalf("take %d of the burst: wait %v", i, wait)
		}
	}
	_, wait := l.Take("192.0.2.2", now)
	if wait <= 0 || wait > 6*time.Second {
		t.Errorf("the 11th take waits %v, want up to 6 s", wait)
	}
	if _, wait := l.Take("192.0.2.2", now.Add(6*time.Second)); wait > 0 {
		t.Errorf("a token 6 s later: wait %v", wait)
	}
}
