// Package logring keeps the latest log lines in memory, for the admin
// (Owncast's GET /api/admin/logs and /logs/warnings): what the server
// said lately, without a shell on the machine. Only what is logged is
// kept, and nothing secret is ever logged.
package logring

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Entry is one log line.
type Entry struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
}

// Ring holds the latest entries at or above a level.
type Ring struct {
	min slog.Level

	// mu guards entries and next: a ring, next the slot to write.
	mu      sync.Mutex
	entries []Entry
	next    int
	full    bool
}

// New returns a ring of size entries of level min and above.
func New(size int, min slog.Level) *Ring {
	return &Ring{min: min, entries: make([]Entry, size)}
}

// Entries returns the kept entries of level min and above, oldest first.
func (r *Ring) Entries(min slog.Level) []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []Entry
	if r.full {
		all = append(all, r.entries[r.next:]...)
	}
	all = append(all, r.entries[:r.next]...)
	out := []Entry{}
	for _, e := range all {
		var l slog.Level
		if l.UnmarshalText([]byte(e.Level)) == nil && l >= min {
			out = append(out, e)
		}
	}
	return out
}

func (r *Ring) add(e Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries[r.next] = e
	r.next = (r.next + 1) % len(r.entries)
	if r.next == 0 {
		r.full = true
	}
}

// Handler returns a handler that passes every record to next and keeps
// those of the ring's level.
func (r *Ring) Handler(next slog.Handler) slog.Handler { return &handler{ring: r, next: next} }

type handler struct {
	ring  *Ring
	next  slog.Handler
	attrs string // the With attributes, formatted
	group string
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.ring.min || h.next.Enabled(ctx, l)
}

func (h *handler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= h.ring.min {
		var b strings.Builder
		b.WriteString(rec.Message)
		b.WriteString(h.attrs)
		rec.Attrs(func(a slog.Attr) bool {
			writeAttr(&b, h.group, a)
			return true
		})
		h.ring.add(Entry{Time: rec.Time, Level: rec.Level.String(), Message: b.String()})
	}
	if h.next.Enabled(ctx, rec.Level) {
		return h.next.Handle(ctx, rec)
	}
	return nil
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range attrs {
		writeAttr(&b, h.group, a)
	}
	return &handler{ring: h.ring, next: h.next.WithAttrs(attrs), attrs: b.String(), group: h.group}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{ring: h.ring, next: h.next.WithGroup(name), attrs: h.attrs, group: h.group + name + "."}
}

func writeAttr(b *strings.Builder, group string, a slog.Attr) {
	if a.Equal(slog.Attr{}) {
		return
	}
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		for _, g := range v.Group() {
			writeAttr(b, group+a.Key+".", g)
		}
		return
	}
	s := v.String()
	if strings.ContainsAny(s, " \"=") {
		s = fmt.Sprintf("%q", s)
	}
	fmt.Fprintf(b, " %s%s=%s", group, a.Key, s)
}
