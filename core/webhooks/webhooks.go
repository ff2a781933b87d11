// Package webhooks sends Owncast's outbound webhooks: a POST of
// {"type": ..., "eventData": ...} to each webhook subscribed to the event,
// for chat events, the stream starting and stopping, and its title
// changing. Unlike Owncast's, each delivery is signed with the webhook's
// own secret (sign.go), has a timeout, is retried through the persisted
// job queue (core/jobs) and never reaches the server's own networks
// (core/netguard).
//
// Events come from the stream and settings listeners and the chat hub's
// observer. Those must not wait, and queueing a delivery writes sqlite, so
// an event goes into a bounded buffer and one goroutine turns it into a
// job for each subscribed webhook. When the buffer is full the event is
// dropped, counted and logged: a flood of chat cannot make the chat wait
// for the disk.
package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/data"
	"github.com/starling-live/starling/core/jobs"
	"github.com/starling-live/starling/core/netguard"
)

// JobKind is the kind of the deliveries' jobs in the queue.
const JobKind = "webhook"

// guardHint says how to let webhooks reach a private address.
const guardHint = "webhooks reach only public addresses unless the server's --webhook-allowed-networks includes it"

// Config tunes the service. Zero fields take the defaults in parentheses.
type Config struct {
	// AllowedNetworks may be reached although they are private, loopback
	// or link-local (none): a receiver on the LAN, or a test's on
	// 127.0.0.1.
	AllowedNetworks []netip.Prefix
	// Timeout bounds one delivery, from dialling to the end of the
	// answer (10 s).
	Timeout time.Duration
	// Buffer is how many events may wait to be queued (1024); events
	// beyond it are dropped, counted in Stats and logged.
	Buffer int
}

func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Buffer == 0 {
		c.Buffer = 1024
	}
	return c
}

// store is the part of the database the service uses.
type store interface {
	CreateWebhook(ctx context.Context, w data.Webhook) (int64, error)
	Webhook(ctx context.Context, id int64) (data.Webhook, error)
	Webhooks(ctx context.Context) ([]data.Webhook, error)
	DeleteWebhook(ctx context.Context, id int64) error
	SetWebhookUsed(ctx context.Context, id int64, at time.Time) error
	SetWebhookError(ctx context.Context, id int64, msg string, at time.Time) error
}

// queue is the job queue deliveries go through.
type queue interface {
	Handle(kind string, h jobs.Handler)
	Enqueue(ctx context.Context, kind, destination string, payload []byte) (int64, error)
}

type settingsSource interface{ Get() *core.Settings }

// Deps are what the service needs.
type Deps struct {
	Logger *slog.Logger
	Store  store
	// Queue takes the deliveries; New registers the handler of JobKind
	// on it, so New must come before the queue's Start.
	Queue queue
	// Settings name the server in stream events; nil leaves them empty.
	Settings settingsSource
	Config   Config
}

// Webhook is a webhook as the admin sees it: never its secret.
type Webhook struct {
	ID        int64
	URL       string
	Events    []string
	CreatedAt time.Time
	// LastUsed is the last delivery the receiver accepted.
	LastUsed *time.Time
	// LastError is why the latest failed delivery failed, at LastErrorAt.
	LastError   string
	LastErrorAt *time.Time
}

// Created is a new webhook with its signing secret, which is shown this
// once and never again.
type Created struct {
	Webhook
	Secret string
}

// Stats are the service's counters since the start.
type Stats struct {
	// Dropped counts events lost because the buffer was full.
	Dropped uint64
	// Queued counts deliveries queued.
	Queued uint64
}

// sub is a webhook as the event path needs it.
type sub struct {
	id   int64
	mask uint16
}

// outbound is an event on its way to the queue.
type outbound struct {
	typ  string
	data any
}

// Service is the webhooks.
type Service struct {
	log      *slog.Logger
	store    store
	queue    queue
	settings settingsSource
	cfg      Config
	guard    *netguard.Guard
	client   *http.Client
	// transport is client's, kept to close its idle connections.
	transport *http.Transport

	// subs is the webhooks with what they are subscribed to, replaced
	// whole after each create and delete and read without a lock by the
	// event path. mu serialises the replacements, so that the last one
	// stored is from the latest read of the store.
	subs atomic.Pointer[[]sub]
	mu   sync.Mutex

	// events is the bounded buffer between the listeners and run.
	events chan outbound

	dropped, queued atomic.Uint64
	// lastDropWarn is when a drop was last logged, in unix nanoseconds.
	lastDropWarn atomic.Int64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns the service and registers its delivery handler on the
// queue. Start it before events come.
func New(d Deps) *Service {
	cfg := d.Config.withDefaults()
	s := &Service{
		log: d.Logger, store: d.Store, queue: d.Queue, settings: d.Settings, cfg: cfg,
		guard:  netguard.New(cfg.AllowedNetworks, guardHint),
		events: make(chan outbound, cfg.Buffer),
	}
	s.transport = s.guard.Transport(cfg.Timeout)
	s.client = &http.Client{
		Transport: s.transport,
		Timeout:   cfg.Timeout,
		// A redirect is not followed: the receiver is the URL the admin
		// gave, and a redirect is reported for them to fix.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	s.subs.Store(&[]sub{})
	d.Queue.Handle(JobKind, s.deliver)
	return s
}

// Start loads the webhooks and starts queueing events.
func (s *Service) Start(ctx context.Context) error {
	if err := s.reload(ctx); err != nil {
		return err
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.run(ctx)
	}()
	return nil
}

// Close queues the events still buffered, stops, and closes idle
// connections. Deliveries are the queue's: close it first, so that none
// runs after this.
func (s *Service) Close() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	s.wg.Wait()
	s.transport.CloseIdleConnections()
	return nil
}

// Stats returns the counters.
func (s *Service) Stats() Stats {
	return Stats{Dropped: s.dropped.Load(), Queued: s.queued.Load()}
}

// reload reads the subscriptions from the store.
func (s *Service) reload(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	hooks, err := s.store.Webhooks(ctx)
	if err != nil {
		return err
	}
	subs := make([]sub, 0, len(hooks))
	for _, h := range hooks {
		var m uint16
		for _, e := range h.Events {
			m |= eventBit(e)
		}
		subs = append(subs, sub{id: h.ID, mask: m})
	}
	s.subs.Store(&subs)
	return nil
}

// submit buffers an event for the webhooks subscribed to it. It never
// blocks: when the buffer is full the event is dropped.
func (s *Service) submit(typ string, data any) {
	bit := eventBit(typ)
	wanted := false
	for _, sb := range *s.subs.Load() {
		if sb.mask&bit != 0 {
			wanted = true
			break
		}
	}
	if !wanted {
		return
	}
	select {
	case s.events <- outbound{typ, data}:
	default:
		n := s.dropped.Add(1)
		now := time.Now().UnixNano()
		last := s.lastDropWarn.Load()
		if now-last > int64(time.Minute) && s.lastDropWarn.CompareAndSwap(last, now) {
			s.log.Warn("webhook events are coming faster than they can be queued: dropping some", "event", typ, "dropped since start", n, "buffer", s.cfg.Buffer)
		}
	}
}

func (s *Service) run(ctx context.Context) {
	for {
		select {
		case ev := <-s.events:
			s.enqueue(ctx, ev)
		case <-ctx.Done():
			// What the listeners handed over before the stop is queued
			// still, for the next start if not this one.
			for {
				select {
				case ev := <-s.events:
					s.enqueue(ctx, ev)
				default:
					return
				}
			}
		}
	}
}

// enqueue makes one job for each webhook subscribed to ev, with the body
// it will be sent.
func (s *Service) enqueue(ctx context.Context, ev outbound) {
	// A stop must not lose an event halfway: the writes are bounded by
	// time, not by the service's context.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	body, err := json.Marshal(payload{Type: ev.typ, EventData: ev.data})
	if err != nil {
		s.log.Error("cannot encode a webhook event", "event", ev.typ, "err", err)
		return
	}
	bit := eventBit(ev.typ)
	for _, sb := range *s.subs.Load() {
		if sb.mask&bit == 0 {
			continue
		}
		if _, err := s.queue.Enqueue(ctx, JobKind, destination(sb.id), body); err != nil {
			s.log.Error("cannot queue a webhook delivery", "webhook", sb.id, "event", ev.typ, "err", err)
			continue
		}
		s.queued.Add(1)
	}
}

// destination names a webhook's deliveries in the queue: the queue runs
// few at once per destination, and logs it, so it is the id, never the
// URL (which may hold a token).
func destination(id int64) string { return "webhook " + strconv.FormatInt(id, 10) }

func webhookID(dest string) (int64, error) {
	return strconv.ParseInt(strings.TrimPrefix(dest, "webhook "), 10, 64)
}

func fromData(w data.Webhook) Webhook {
	return Webhook{ID: w.ID, URL: w.URL, Events: w.Events, CreatedAt: w.CreatedAt,
		LastUsed: w.LastUsedAt, LastError: w.LastError, LastErrorAt: w.LastErrorAt}
}

// List returns every webhook, oldest first.
func (s *Service) List(ctx context.Context) ([]Webhook, error) {
	hooks, err := s.store.Webhooks(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Webhook, len(hooks))
	for i, h := range hooks {
		out[i] = fromData(h)
	}
	return out, nil
}

// maxURL is the longest webhook URL, in bytes.
const maxURL = 2048

// Create validates and stores a webhook, and returns it with its secret.
func (s *Service) Create(ctx context.Context, rawURL string, events []string) (Created, error) {
	u, err := s.checkURL(strings.TrimSpace(rawURL))
	if err != nil {
		return Created{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	evs, err := checkEvents(events)
	if err != nil {
		return Created{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	w := data.Webhook{URL: u, Events: evs, Secret: newSecret(), CreatedAt: time.Now().UTC().Truncate(time.Second)}
	if w.ID, err = s.store.CreateWebhook(ctx, w); err != nil {
		return Created{}, err
	}
	if err := s.reload(ctx); err != nil {
		return Created{}, err
	}
	s.log.Info("webhook created", "webhook", w.ID, "events", strings.Join(evs, ","))
	return Created{Webhook: fromData(w), Secret: w.Secret}, nil
}

// checkURL says what is wrong with a webhook URL, naming the field.
func (s *Service) checkURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New(`url is empty: give the receiver's address, such as "https://example.com/hook"`)
	}
	if len(raw) > maxURL {
		return "", fmt.Errorf("url is %d bytes long: use at most %d", len(raw), maxURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("url %q is not a URL: give one such as \"https://example.com/hook\"", raw)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("url %q must start with http:// or https://", u.Redacted())
	}
	if u.Host == "" || u.Hostname() == "" {
		return "", fmt.Errorf("url %q has no host: give an absolute URL such as \"https://example.com/hook\"", u.Redacted())
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("url %q has an invalid port %q", u.Redacted(), p)
		}
	}
	// A name is resolved at each delivery; an address is checked now.
	if a, ok := netguard.Literal(u.Hostname()); ok {
		if why := s.guard.Why(a); why != "" {
			return "", fmt.Errorf("url %q: %s is %s: %s", u.Redacted(), a.Unmap(), why, guardHint)
		}
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String(), nil
}

// checkEvents returns the events deduplicated in the API's order, or what
// is wrong with them, naming the field.
func checkEvents(events []string) ([]string, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("events is empty: subscribe to one or more of %s", strings.Join(Events, ", "))
	}
	var mask uint16
	var unknown []string
	for _, e := range events {
		b := eventBit(e)
		if b == 0 {
			unknown = append(unknown, strconv.Quote(e))
		}
		mask |= b
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("events has unknown event types %s: use %s", strings.Join(unknown, ", "), strings.Join(Events, ", "))
	}
	out := []string{}
	for _, e := range Events {
		if mask&eventBit(e) != 0 {
			out = append(out, e)
		}
	}
	return out, nil
}

// Delete deletes a webhook; deliveries already queued for it are dropped
// when their turn comes.
func (s *Service) Delete(ctx context.Context, id int64) error {
	if err := s.store.DeleteWebhook(ctx, id); errors.Is(err, data.ErrNotFound) {
		return ErrUnknownWebhook
	} else if err != nil {
		return err
	}
	s.log.Info("webhook deleted", "webhook", id)
	return s.reload(ctx)
}

// newSecret returns a signing secret: 128 random bits, prefixed so that
// secret scanners recognise it.
func newSecret() string { return "whsec_" + rand.Text() }
