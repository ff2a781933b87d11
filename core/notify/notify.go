// Package notify tells others when the stream goes live: a Discord
// channel, through its webhook, once per broadcast. Deliveries go through
// the persisted job queue, so a Discord outage delays the post instead of
// losing it.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/jobs"
)

// jobKind names Discord posts in the job queue.
const jobKind = "discord"

type queue interface {
	Handle(kind string, h jobs.Handler)
	Enqueue(ctx context.Context, kind, destination string, payload []byte) (int64, error)
}

type settingsSource interface{ Get() *core.Settings }

// Deps are what a Notifier needs.
type Deps struct {
	Logger   *slog.Logger
	Queue    queue
	Settings settingsSource
	// Client posts; its timeout bounds a post (10 s by default).
	Client *http.Client
}

// Notifier posts go-live messages. It is a core.Listener.
type Notifier struct {
	log      *slog.Logger
	queue    queue
	settings settingsSource
	client   *http.Client
}

// New returns a Notifier and registers its deliveries with the queue;
// call it before the queue starts.
func New(d Deps) *Notifier {
	if d.Client == nil {
		d.Client = &http.Client{Timeout: 10 * time.Second}
	}
	n := &Notifier{log: d.Logger, queue: d.Queue, settings: d.Settings, client: d.Client}
	d.Queue.Handle(jobKind, n.post)
	return n
}

// post is a Discord webhook call as it waits in the queue.
type post struct {
	URL         string `json:"url"`
	BroadcastID string `json:"broadcastId"`
	Content     string `json:"content"`
}

// BroadcastStarted queues the go-live message.
func (n *Notifier) BroadcastStarted(b core.Broadcast) {
	s := n.settings.Get()
	d := s.Notifications.Discord
	if !d.Enabled || d.Webhook == "" {
		return
	}
	lines := []string{d.GoLiveMessage}
	if b.Title != "" {
		lines = append(lines, b.Title)
	}
	if s.ServerURL != "" {
		lines = append(lines, s.ServerURL)
	}
	payload, _ := json.Marshal(post{URL: d.Webhook, BroadcastID: b.ID, Content: strings.Join(lines, "\n")})
	dest := "discord"
	if u, err := url.Parse(d.Webhook); err == nil {
		dest = u.Host
	}
	if _, err := n.queue.Enqueue(context.Background(), jobKind, dest, payload); err != nil {
		n.log.Error("could not queue the go-live message for Discord", "err", err)
	}
}

// BroadcastEnded does nothing: Discord hears only of the start.
func (n *Notifier) BroadcastEnded(core.Broadcast) {}

var _ core.Listener = (*Notifier)(nil)

// maxContent is Discord's limit on a message.
const maxContent = 2000

func (n *Notifier) post(ctx context.Context, j jobs.Job) error {
	var p post
	if err := json.Unmarshal(j.Payload, &p); err != nil {
		return jobs.Permanent(fmt.Errorf("a stored Discord post is not JSON: %w", err))
	}
	content := p.Content
	if r := []rune(content); len(r) > maxContent {
		content = string(r[:maxContent])
	}
	body, _ := json.Marshal(map[string]string{"content": content})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		return jobs.Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode < 300:
		n.log.Info("posted the go-live message to Discord", "broadcast", p.BroadcastID)
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("the Discord webhook answered %s", resp.Status)
	default:
		// A wrong or deleted webhook: no retry will mend it.
		return jobs.Permanent(fmt.Errorf("the Discord webhook answered %s: check the webhook URL in the notification settings", resp.Status))
	}
}
