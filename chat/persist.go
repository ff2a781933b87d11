package chat

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/starling-live/starling/core/data"
)

// persister writes messages to the database in batches, off the hub's
// goroutine. Its queue has no bound: the hub must never wait for the disk,
// and a message is never dropped for lack of room.
type persister struct {
	log   *slog.Logger
	store store
	wake  chan struct{}

	// mu guards queue and waiters.
	mu      sync.Mutex
	queue   []data.ChatMessage
	waiters []chan struct{}
}

func newPersister(log *slog.Logger, s store) *persister {
	return &persister{log: log, store: s, wake: make(chan struct{}, 1)}
}

func (p *persister) add(m data.ChatMessage) {
	p.mu.Lock()
	p.queue = append(p.queue, m)
	p.mu.Unlock()
	p.poke()
}

func (p *persister) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// flush returns once every message added before it is stored.
func (p *persister) flush(ctx context.Context) error {
	done := make(chan struct{})
	p.mu.Lock()
	p.waiters = append(p.waiters, done)
	p.mu.Unlock()
	p.poke()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *persister) run(ctx context.Context) {
	for {
		select {
		case <-p.wake:
			p.save()
		case <-ctx.Done():
			p.save()
			return
		}
	}
}

func (p *persister) save() {
	p.mu.Lock()
	batch, waiters := p.queue, p.waiters
	p.queue, p.waiters = nil, nil
	p.mu.Unlock()
	if len(batch) > 0 {
		// Saving continues through shutdown: the context is not the hub's.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := p.store.SaveChatMessages(ctx, batch); err != nil {
			p.log.Error("cannot store chat messages; they were delivered but will be missing from the history", "messages", len(batch), "err", err)
		}
		cancel()
	}
	for _, w := range waiters {
		close(w)
	}
}
