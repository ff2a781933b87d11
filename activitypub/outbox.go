package activitypub

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-fed/activity/streams"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/data"
	"github.com/starling-live/starling/core/jobs"
	"github.com/starling-live/starling/core/netguard"
)

// Job kinds in the queue.
const (
	jobDeliver = "activitypub"
	// jobAccept delivers Accepts: a post to a server waits for its
	// Accepts, since a post from an account the reader does not follow
	// yet is dropped.
	jobAccept = "activitypub-accept"
	jobGoLive = "activitypub-golive"
	jobUpdate = "activitypub-update"
)

// Kinds of our posts.
const (
	kindGoLive = "golive"
	kindManual = "manual"
	kindUpdate = "update"
)

// deliveryRetry retries a delivery for about a day: 5 s doubling to 6 h,
// sixteen attempts.
var deliveryRetry = jobs.Retry{MaxAttempts: 16, MaxBackoff: 6 * time.Hour}

// delivery is a delivery as it waits in the queue: a post's (read from
// the store when it runs) or one activity's, such as an Accept.
type delivery struct {
	Inbox    string          `json:"inbox"`
	Post     string          `json:"post,omitempty"`
	Activity json.RawMessage `json:"activity,omitempty"`
}

func newID() string { return strings.ToLower(rand.Text()[:16]) }

// queueDeliveries queues an activity of the kind of job for each inbox.
func (f *Federation) queueDeliveries(ctx context.Context, kind string, activity []byte, inboxes []string) error {
	var js []data.NewJob
	for _, inbox := range inboxes {
		p, _ := json.Marshal(delivery{Inbox: inbox, Activity: activity})
		js = append(js, data.NewJob{Kind: kind, Destination: hostOf(inbox), Payload: p})
	}
	return f.queue.EnqueueAll(ctx, js)
}

// errAcceptFirst delays a post to a server until its Accepts are
// delivered.
var errAcceptFirst = errors.New("an Accept to this server is not delivered yet: the post waits for it")

// accept queues the Accept of a follower's Follow, to their own inbox.
func (f *Federation) accept(ctx context.Context, st site, fl data.Follower) error {
	a := streams.NewActivityStreamsAccept()
	a.SetJSONLDId(idProperty(st.base + "/federation/accept/" + newID()))
	a.SetActivityStreamsActor(actorProperty(st.actor()))
	to := streams.NewActivityStreamsToProperty()
	to.AppendIRI(iri(fl.Actor))
	a.SetActivityStreamsTo(to)
	follow := streams.NewActivityStreamsFollow()
	follow.SetJSONLDId(idProperty(fl.FollowID))
	follow.SetActivityStreamsActor(actorProperty(fl.Actor))
	fo := streams.NewActivityStreamsObjectProperty()
	fo.AppendIRI(iri(st.actor()))
	follow.SetActivityStreamsObject(fo)
	obj := streams.NewActivityStreamsObjectProperty()
	obj.AppendActivityStreamsFollow(follow)
	a.SetActivityStreamsObject(obj)
	m, err := serialize(a, nil)
	if err != nil {
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return f.queueDeliveries(ctx, jobAccept, b, []string{fl.Inbox})
}

// post is one post to make.
type post struct {
	kind string
	// content is the Note's HTML; tags its hashtags; image an attachment.
	content   string
	tags      []string
	image     string
	sensitive bool
}

// goLivePost is the go-live Note of a broadcast: Owncast's layout.
func goLivePost(st site, title string) post {
	s := st.s
	var b strings.Builder
	if m := strings.TrimSpace(s.Federation.GoLiveMessage); m != "" {
		b.WriteString("<p>" + html.EscapeString(m) + "</p>")
	}
	if title != "" {
		b.WriteString("<p>" + html.EscapeString(title) + "</p>")
	}
	var tags []string
	var links []string
	for _, t := range s.Tags {
		if h := hashtag(t); h != "" && !slices.Contains(tags, h) {
			tags = append(tags, h)
			links = append(links, `<a class="mention hashtag" href="`+html.EscapeString(st.base+"/?tag="+url.QueryEscape(h))+`" rel="tag">#<span>`+html.EscapeString(h)+`</span></a>`)
		}
	}
	if len(links) > 0 {
		b.WriteString("<p>" + strings.Join(links, " ") + "</p>")
	}
	b.WriteString(`<p><a href="` + html.EscapeString(st.base+"/") + `">` + html.EscapeString(st.base) + `</a></p>`)
	return post{
		kind: kindGoLive, content: b.String(), tags: tags, sensitive: s.NSFW,
		// A name of its own per post: servers cache the image by URL.
		image: st.base + "/thumbnail.jpg?post=" + newID(),
	}
}

// note builds a post's Create{Note}, addressed to the public and the
// followers, or to the followers alone when the account is private.
func (p post) note(st site, id string, now time.Time) (map[string]any, error) {
	to := streams.NewActivityStreamsToProperty()
	cc := streams.NewActivityStreamsCcProperty()
	if st.s.Federation.Private {
		to.AppendIRI(iri(st.followers()))
	} else {
		to.AppendIRI(iri(publicIRI))
		cc.AppendIRI(iri(st.followers()))
	}
	published := streams.NewActivityStreamsPublishedProperty()
	published.Set(now.UTC())

	n := streams.NewActivityStreamsNote()
	n.SetJSONLDId(idProperty(st.object(id)))
	attributed := streams.NewActivityStreamsAttributedToProperty()
	attributed.AppendIRI(iri(st.actor()))
	n.SetActivityStreamsAttributedTo(attributed)
	content := streams.NewActivityStreamsContentProperty()
	content.AppendXMLSchemaString(p.content)
	n.SetActivityStreamsContent(content)
	n.SetActivityStreamsTo(to)
	n.SetActivityStreamsCc(cc)
	n.SetActivityStreamsPublished(published)
	u := streams.NewActivityStreamsUrlProperty()
	u.AppendIRI(iri(st.object(id)))
	n.SetActivityStreamsUrl(u)
	if p.image != "" {
		att := streams.NewActivityStreamsAttachmentProperty()
		img := streams.NewActivityStreamsDocument()
		iu := streams.NewActivityStreamsUrlProperty()
		iu.AppendIRI(iri(p.image))
		img.SetActivityStreamsUrl(iu)
		mt := streams.NewActivityStreamsMediaTypeProperty()
		mt.Set("image/jpeg")
		img.SetActivityStreamsMediaType(mt)
		name := streams.NewActivityStreamsNameProperty()
		name.AppendXMLSchemaString("A picture of the stream")
		img.SetActivityStreamsName(name)
		att.AppendActivityStreamsDocument(img)
		n.SetActivityStreamsAttachment(att)
	}
	noteMap, err := serialize(n, nil)
	if err != nil {
		return nil, err
	}
	var tags []any
	for _, t := range p.tags {
		tags = append(tags, map[string]any{"type": "Hashtag", "href": st.base + "/?tag=" + url.QueryEscape(t), "name": "#" + t})
	}
	if tags != nil {
		noteMap["tag"] = tags
	}
	noteMap["sensitive"] = p.sensitive
	delete(noteMap, "@context")

	c := streams.NewActivityStreamsCreate()
	c.SetJSONLDId(idProperty(st.object(id) + "/activity"))
	c.SetActivityStreamsActor(actorProperty(st.actor()))
	c.SetActivityStreamsTo(to)
	c.SetActivityStreamsCc(cc)
	c.SetActivityStreamsPublished(published)
	return serialize(c, map[string]any{"object": noteMap})
}

// publish stores a post and queues it for every follower's inbox, once
// per shared inbox, in one transaction.
func (f *Federation) publish(ctx context.Context, st site, p post) (string, error) {
	id := newID()
	now := time.Now()
	var m map[string]any
	var err error
	switch p.kind {
	case kindUpdate:
		m, err = f.updateActivity(ctx, st, id, now)
	default:
		m, err = p.note(st, id, now)
	}
	if err != nil {
		return "", err
	}
	activity, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	inboxes, err := f.store.FollowerInboxes(ctx)
	if err != nil {
		return "", err
	}
	var deliveries []data.NewJob
	for _, inbox := range interleave(inboxes) {
		if blocked(st.s, hostOf(inbox)) {
			continue
		}
		payload, _ := json.Marshal(delivery{Inbox: inbox, Post: id})
		deliveries = append(deliveries, data.NewJob{Kind: jobDeliver, Destination: hostOf(inbox), Payload: payload})
	}
	if err := f.store.AddPost(ctx, data.Post{ID: id, Kind: p.kind, Activity: activity, CreatedAt: now}, deliveries, now); err != nil {
		return "", err
	}
	f.queue.Wake()
	f.log.Info("sent a fediverse post to the followers", "kind", p.kind, "post", id, "inboxes", len(deliveries))
	return id, nil
}

// interleave orders inboxes a host at a time, round robin: the queue
// takes due jobs oldest first, and a run of one host's would leave the
// workers its per-destination share alone.
func interleave(inboxes []string) []string {
	byHost := map[string][]string{}
	var hosts []string
	for _, in := range inboxes {
		h := hostOf(in)
		if _, ok := byHost[h]; !ok {
			hosts = append(hosts, h)
		}
		byHost[h] = append(byHost[h], in)
	}
	out := make([]string, 0, len(inboxes))
	for len(out) < len(inboxes) {
		for _, h := range hosts {
			if q := byHost[h]; len(q) > 0 {
				out = append(out, q[0])
				byHost[h] = q[1:]
			}
		}
	}
	return out
}

// updateActivity is the Update of our actor, after a profile change.
func (f *Federation) updateActivity(ctx context.Context, st site, id string, now time.Time) (map[string]any, error) {
	doc, err := f.actorDocument(ctx, st)
	if err != nil {
		return nil, err
	}
	delete(doc, "@context")
	u := streams.NewActivityStreamsUpdate()
	u.SetJSONLDId(idProperty(st.object(id) + "/activity"))
	u.SetActivityStreamsActor(actorProperty(st.actor()))
	to := streams.NewActivityStreamsToProperty()
	to.AppendIRI(iri(publicIRI))
	u.SetActivityStreamsTo(to)
	published := streams.NewActivityStreamsPublishedProperty()
	published.Set(now.UTC())
	u.SetActivityStreamsPublished(published)
	m, err := serialize(u, map[string]any{"object": doc})
	if err != nil {
		return nil, err
	}
	// The actor's own terms come with it.
	m["@context"] = []any{"https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1", extensionTerms}
	return m, nil
}

// goLiveJob is a go-live post as it waits out its debounce.
type goLiveJob struct {
	Broadcast string `json:"broadcast"`
	Title     string `json:"title"`
}

// queueGoLive queues the go-live post of a broadcast, due after the
// debounce: a publisher whose connection flaps posts once.
func (f *Federation) queueGoLive(st site, b core.Broadcast) {
	payload, _ := json.Marshal(goLiveJob{Broadcast: b.ID, Title: b.Title})
	due := time.Now().Add(time.Duration(st.s.Federation.GoLiveDelay) * time.Second)
	if err := f.queue.EnqueueAll(context.Background(), []data.NewJob{{Kind: jobGoLive, Destination: "golive", Payload: payload, DueAt: due}}); err != nil {
		f.log.Error("could not queue the go-live post for the fediverse", "err", err)
	}
}

// goLive sends the go-live post if its broadcast is still on air and no
// go-live post went out within the interval.
func (f *Federation) goLive(ctx context.Context, j jobs.Job) error {
	var g goLiveJob
	if err := json.Unmarshal(j.Payload, &g); err != nil {
		return jobs.Permanent(fmt.Errorf("a stored go-live post is not JSON: %w", err))
	}
	if live := f.live.Load(); live == nil || *live != g.Broadcast {
		f.log.Info("the broadcast ended before its go-live post was due: not posting", "broadcast", g.Broadcast)
		return nil
	}
	st, ok := f.site()
	if !ok {
		return nil
	}
	last, err := f.store.LastPostAt(ctx, kindGoLive)
	if err != nil {
		return err
	}
	if since := time.Since(last); since < f.cfg.GoLiveInterval {
		f.log.Info("a go-live post went out recently: not posting again", "ago", since.Round(time.Second), "at most every", f.cfg.GoLiveInterval)
		return nil
	}
	_, err = f.publish(ctx, st, goLivePost(st, g.Title))
	return err
}

// deliver runs one delivery from the queue.
func (f *Federation) deliver(ctx context.Context, j jobs.Job) error {
	var d delivery
	if err := json.Unmarshal(j.Payload, &d); err != nil {
		return jobs.Permanent(fmt.Errorf("a stored delivery is not JSON: %w", err))
	}
	activity := []byte(d.Activity)
	if d.Post != "" {
		if n, err := f.store.UnfinishedJobs(ctx, jobAccept, j.Destination); err != nil || n > 0 {
			return errors.Join(errAcceptFirst, err)
		}
		p, err := f.store.Post(ctx, d.Post)
		if err != nil {
			return jobs.Permanent(fmt.Errorf("post %s: %w", d.Post, err))
		}
		activity = p.Activity
	}
	t, err := f.transport(ctx)
	if err != nil {
		return jobs.Permanent(err)
	}
	if blocked(t.st.s, hostOf(d.Inbox)) {
		return jobs.Permanent(errors.New("the inbox's server is blocked"))
	}
	to, err := url.Parse(d.Inbox)
	if err != nil {
		return jobs.Permanent(err)
	}
	err = t.Deliver(ctx, activity, to)
	var st errStatus
	switch {
	case err == nil:
		f.countDelivery(ctx, d.Post, true)
		return nil
	case errors.As(err, &st) && (st.code == http.StatusGone || st.code == http.StatusNotFound):
		// The inbox is gone for good: so are its followers.
		n, derr := f.store.DeleteFollowersByInbox(ctx, d.Inbox)
		if derr == nil && n > 0 {
			f.log.Info("a follower's inbox is gone; dropped its followers", "inbox", d.Inbox, "followers", n)
		}
		f.countDelivery(ctx, d.Post, false)
		return jobs.Permanent(err)
	case errors.Is(err, netguard.ErrRefused),
		errors.As(err, &st) && st.code >= 400 && st.code < 500 && st.code != http.StatusTooManyRequests && st.code != http.StatusUnauthorized && st.code != http.StatusRequestTimeout:
		f.countDelivery(ctx, d.Post, false)
		return jobs.Permanent(err)
	}
	if j.Last {
		f.countDelivery(ctx, d.Post, false)
	}
	return err
}

func (f *Federation) countDelivery(ctx context.Context, post string, ok bool) {
	if post == "" {
		return
	}
	if err := f.store.CountDelivery(context.WithoutCancel(ctx), post, ok); err != nil {
		f.log.Warn("cannot count a delivery", "post", post, "err", err)
	}
}

// profileChanged reports whether what the actor document shows changed.
func profileChanged(old, new *core.Settings) bool {
	return old.Name != new.Name || old.Summary != new.Summary || old.Logo != new.Logo ||
		!slices.Equal(old.SocialHandles, new.SocialHandles) || old.Federation.Private != new.Federation.Private ||
		old.DisableSearchIndexing != new.DisableSearchIndexing
}

// SettingsChanged queues an Update of the actor for the followers when
// the profile changed; the queue makes the post, off the settings lock.
func (f *Federation) SettingsChanged(old, new *core.Settings) {
	if old == nil || !new.Federation.Enabled || !old.Federation.Enabled || !profileChanged(old, new) {
		return
	}
	if err := f.queue.EnqueueAll(context.Background(), []data.NewJob{{Kind: jobUpdate, Destination: "update"}}); err != nil {
		f.log.Error("could not queue the profile update for the fediverse", "err", err)
	}
}

// sendUpdate sends the Update of the actor as it is now.
func (f *Federation) sendUpdate(ctx context.Context, _ jobs.Job) error {
	st, ok := f.site()
	if !ok {
		return nil
	}
	_, err := f.publish(ctx, st, post{kind: kindUpdate})
	return err
}

var _ core.SettingsListener = (*Federation)(nil)
