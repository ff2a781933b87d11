package activitypub

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"github.com/go-fed/activity/streams"
	"github.com/go-fed/activity/streams/vocab"
)

func iri(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		return &url.URL{}
	}
	return u
}

func idProperty(s string) vocab.JSONLDIdProperty {
	p := streams.NewJSONLDIdProperty()
	p.Set(iri(s))
	return p
}

// actorProperty names one actor by its id.
func actorProperty(id string) vocab.ActivityStreamsActorProperty {
	p := streams.NewActivityStreamsActorProperty()
	p.AppendIRI(iri(id))
	return p
}

func image(u, mediaType string) vocab.ActivityStreamsImage {
	img := streams.NewActivityStreamsImage()
	up := streams.NewActivityStreamsUrlProperty()
	up.AppendIRI(iri(u))
	img.SetActivityStreamsUrl(up)
	if mediaType != "" {
		mt := streams.NewActivityStreamsMediaTypeProperty()
		mt.Set(mediaType)
		img.SetActivityStreamsMediaType(mt)
	}
	return img
}

// extensions are terms this go-fed version has no vocabulary for, added
// to a serialised object with their JSON-LD definitions: Mastodon's
// sensitive and Hashtag, schema.org's PropertyValue (profile links).
var extensionTerms = map[string]any{
	"sensitive":     "as:sensitive",
	"Hashtag":       "as:Hashtag",
	"schema":        "http://schema.org#",
	"PropertyValue": "schema:PropertyValue",
	"value":         "schema:value",
	"toot":          "http://joinmastodon.org/ns#",
	"discoverable":  "toot:discoverable",
}

// serialize returns t's JSON-LD with the extra fields and their terms.
func serialize(t vocab.Type, extra map[string]any) (map[string]any, error) {
	m, err := streams.Serialize(t)
	if err != nil {
		return nil, err
	}
	if len(extra) == 0 {
		return m, nil
	}
	for k, v := range extra {
		m[k] = v
	}
	var ctx []any
	switch c := m["@context"].(type) {
	case string:
		ctx = []any{c}
	case []any:
		ctx = c
	}
	m["@context"] = append(ctx, extensionTerms)
	return m, nil
}

func publicKeyPEM(k *rsa.PrivateKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

// actorDocument is the stream's actor: a Service.
func (f *Federation) actorDocument(ctx context.Context, st site) (map[string]any, error) {
	key, err := f.keys.ActorKey(ctx)
	if err != nil {
		return nil, err
	}
	pemKey, err := publicKeyPEM(key)
	if err != nil {
		return nil, err
	}
	s := st.s
	svc := streams.NewActivityStreamsService()
	svc.SetJSONLDId(idProperty(st.actor()))
	pu := streams.NewActivityStreamsPreferredUsernameProperty()
	pu.SetXMLSchemaString(s.Federation.Username)
	svc.SetActivityStreamsPreferredUsername(pu)
	name := streams.NewActivityStreamsNameProperty()
	name.AppendXMLSchemaString(s.Name)
	svc.SetActivityStreamsName(name)
	summary := streams.NewActivityStreamsSummaryProperty()
	summary.AppendXMLSchemaString(paragraphs(s.Summary))
	svc.SetActivityStreamsSummary(summary)
	inbox := streams.NewActivityStreamsInboxProperty()
	inbox.SetIRI(iri(st.inbox()))
	svc.SetActivityStreamsInbox(inbox)
	outbox := streams.NewActivityStreamsOutboxProperty()
	outbox.SetIRI(iri(st.outbox()))
	svc.SetActivityStreamsOutbox(outbox)
	followers := streams.NewActivityStreamsFollowersProperty()
	followers.SetIRI(iri(st.followers()))
	svc.SetActivityStreamsFollowers(followers)
	following := streams.NewActivityStreamsFollowingProperty()
	following.SetIRI(iri(st.following()))
	svc.SetActivityStreamsFollowing(following)
	icon := streams.NewActivityStreamsIconProperty()
	icon.AppendActivityStreamsImage(image(st.base+"/logo", ""))
	svc.SetActivityStreamsIcon(icon)
	header := streams.NewActivityStreamsImageProperty()
	header.AppendActivityStreamsImage(image(st.base+"/thumbnail.jpg", "image/jpeg"))
	svc.SetActivityStreamsImage(header)
	page := streams.NewActivityStreamsUrlProperty()
	page.AppendIRI(iri(st.base))
	svc.SetActivityStreamsUrl(page)
	approves := streams.NewActivityStreamsManuallyApprovesFollowersProperty()
	approves.Set(s.Federation.Private)
	svc.SetActivityStreamsManuallyApprovesFollowers(approves)

	pk := streams.NewW3IDSecurityV1PublicKey()
	pk.SetJSONLDId(idProperty(st.keyID()))
	owner := streams.NewW3IDSecurityV1OwnerProperty()
	owner.SetIRI(iri(st.actor()))
	pk.SetW3IDSecurityV1Owner(owner)
	pkPem := streams.NewW3IDSecurityV1PublicKeyPemProperty()
	pkPem.Set(pemKey)
	pk.SetW3IDSecurityV1PublicKeyPem(pkPem)
	pkProp := streams.NewW3IDSecurityV1PublicKeyProperty()
	pkProp.AppendW3IDSecurityV1PublicKey(pk)
	svc.SetW3IDSecurityV1PublicKey(pkProp)

	links := []any{}
	for _, h := range s.SocialHandles {
		links = append(links, map[string]any{
			"type": "PropertyValue", "name": h.Platform,
			"value": `<a href="` + html.EscapeString(h.URL) + `" rel="me nofollow noopener noreferrer" target="_blank">` + html.EscapeString(h.URL) + `</a>`,
		})
	}
	return serialize(svc, map[string]any{
		"endpoints":    map[string]any{"sharedInbox": st.sharedInbox()},
		"attachment":   links,
		"discoverable": !s.DisableSearchIndexing,
	})
}

// paragraphs turns plain text into HTML paragraphs.
func paragraphs(text string) string {
	var b strings.Builder
	for p := range strings.SplitSeq(strings.TrimSpace(text), "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			b.WriteString("<p>" + strings.ReplaceAll(html.EscapeString(p), "\n", "<br>") + "</p>")
		}
	}
	return b.String()
}

// hashtag is a tag as a hashtag: letters, digits and _ only.
func hashtag(tag string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' {
			return r
		}
		return -1
	}, tag)
}

// wantsHTML reports whether a request is a browser's, not a server's.
func wantsHTML(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return strings.Contains(a, "text/html") && !strings.Contains(a, "activity+json") && !strings.Contains(a, "ld+json")
}

func writeActivity(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "cannot encode the object", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", activityJSON)
	w.Header().Set("Cache-Control", "max-age=60")
	w.Header().Set("Vary", "Accept")
	w.WriteHeader(status)
	w.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, "application/json; charset=utf-8", map[string]string{"error": msg})
}

// serveActor answers GET /federation/user/NAME: the actor to servers,
// the viewer page to browsers.
func (f *Federation) serveActor(w http.ResponseWriter, r *http.Request) {
	st, ok := f.userSite(w, r)
	if !ok {
		return
	}
	if wantsHTML(r) {
		http.Redirect(w, r, st.base+"/", http.StatusFound)
		return
	}
	doc, err := f.actorDocument(r.Context(), st)
	if err != nil {
		f.log.Error("cannot build the actor document", "err", err)
		writeError(w, http.StatusInternalServerError, "the actor is not available right now")
		return
	}
	writeActivity(w, http.StatusOK, doc)
}

// userSite is the site if federation is on and the path names our actor;
// otherwise it answers 404.
func (f *Federation) userSite(w http.ResponseWriter, r *http.Request) (site, bool) {
	st, ok := f.site()
	if !ok || r.PathValue("user") != st.s.Federation.Username {
		writeError(w, http.StatusNotFound, "no such actor")
		return site{}, false
	}
	return st, true
}

// pageSize is how many items a collection page holds.
const pageSize = 20

// collection answers an OrderedCollection: its size and, with ?page=N,
// its N-th page of items from items(offset, limit).
func collection(w http.ResponseWriter, r *http.Request, id string, total int, items func(offset, limit int) ([]vocab.Type, []*url.URL, error)) {
	page := 0
	if p := r.URL.Query().Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 1_000_000 {
			writeError(w, http.StatusBadRequest, "page must be a number from 1")
			return
		}
		page = n
	}
	total2 := streams.NewActivityStreamsTotalItemsProperty()
	total2.Set(total)
	if page == 0 {
		c := streams.NewActivityStreamsOrderedCollection()
		c.SetJSONLDId(idProperty(id))
		c.SetActivityStreamsTotalItems(total2)
		first := streams.NewActivityStreamsFirstProperty()
		first.SetIRI(iri(id + "?page=1"))
		c.SetActivityStreamsFirst(first)
		m, err := serialize(c, nil)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "cannot encode the collection")
			return
		}
		writeActivity(w, http.StatusOK, m)
		return
	}
	objects, iris, err := items((page-1)*pageSize, pageSize)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "the collection is not available right now")
		return
	}
	c := streams.NewActivityStreamsOrderedCollectionPage()
	c.SetJSONLDId(idProperty(id + "?page=" + strconv.Itoa(page)))
	c.SetActivityStreamsTotalItems(total2)
	partOf := streams.NewActivityStreamsPartOfProperty()
	partOf.SetIRI(iri(id))
	c.SetActivityStreamsPartOf(partOf)
	ordered := streams.NewActivityStreamsOrderedItemsProperty()
	for _, o := range objects {
		ordered.AppendType(o)
	}
	for _, u := range iris {
		ordered.AppendIRI(u)
	}
	c.SetActivityStreamsOrderedItems(ordered)
	if page*pageSize < total {
		next := streams.NewActivityStreamsNextProperty()
		next.SetIRI(iri(id + "?page=" + strconv.Itoa(page+1)))
		c.SetActivityStreamsNext(next)
	}
	m, err := serialize(c, nil)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "cannot encode the collection")
		return
	}
	writeActivity(w, http.StatusOK, m)
}

func (f *Federation) serveFollowers(w http.ResponseWriter, r *http.Request) {
	st, ok := f.userSite(w, r)
	if !ok {
		return
	}
	total, err := f.store.CountFollowers(r.Context(), "approved")
	if err != nil {
		writeError(w, http.StatusInternalServerError, "the followers are not available right now")
		return
	}
	collection(w, r, st.followers(), total, func(offset, limit int) ([]vocab.Type, []*url.URL, error) {
		fs, err := f.store.Followers(r.Context(), "approved", limit, offset)
		var out []*url.URL
		for _, fl := range fs {
			out = append(out, iri(fl.Actor))
		}
		return nil, out, err
	})
}

func (f *Federation) serveFollowing(w http.ResponseWriter, r *http.Request) {
	st, ok := f.userSite(w, r)
	if !ok {
		return
	}
	collection(w, r, st.following(), 0, func(int, int) ([]vocab.Type, []*url.URL, error) { return nil, nil, nil })
}

// publicKinds are the posts listed in the outbox.
var publicKinds = []string{kindGoLive, kindManual}

func (f *Federation) serveOutbox(w http.ResponseWriter, r *http.Request) {
	st, ok := f.userSite(w, r)
	if !ok {
		return
	}
	total, err := f.store.CountPosts(r.Context(), publicKinds)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "the outbox is not available right now")
		return
	}
	private := st.s.Federation.Private
	collection(w, r, st.outbox(), total, func(offset, limit int) ([]vocab.Type, []*url.URL, error) {
		posts, err := f.store.Posts(r.Context(), publicKinds, limit, offset)
		var out []vocab.Type
		var iris []*url.URL
		for _, p := range posts {
			if private {
				// Followers-only posts are listed by id alone.
				iris = append(iris, iri(st.object(p.ID)+"/activity"))
				continue
			}
			var m map[string]any
			if json.Unmarshal(p.Activity, &m) != nil {
				continue
			}
			t, err := streams.ToType(context.Background(), m)
			if err != nil {
				continue
			}
			out = append(out, t)
		}
		return out, iris, err
	})
}

// serveObject answers GET /federation/posts/ID (a post's Note) and
// /federation/posts/ID/activity (its Create).
func (f *Federation) serveObject(w http.ResponseWriter, r *http.Request) {
	st, ok := f.site()
	if !ok {
		writeError(w, http.StatusNotFound, "no such object")
		return
	}
	p, err := f.store.Post(r.Context(), r.PathValue("id"))
	if err != nil || p.Kind == kindUpdate {
		writeError(w, http.StatusNotFound, "no such object")
		return
	}
	if wantsHTML(r) {
		http.Redirect(w, r, st.base+"/", http.StatusFound)
		return
	}
	var m map[string]any
	if err := json.Unmarshal(p.Activity, &m); err != nil {
		writeError(w, http.StatusInternalServerError, "the object cannot be read")
		return
	}
	if !isPublic(m) {
		// Followers only: shown to a signed request from a follower's
		// server.
		if _, err := f.verifyFollowerFetch(r); err != nil {
			writeError(w, http.StatusNotFound, "no such object")
			return
		}
	}
	if strings.HasSuffix(r.URL.Path, "/activity") {
		writeActivity(w, http.StatusOK, m)
		return
	}
	note, ok := m["object"].(map[string]any)
	if !ok {
		writeError(w, http.StatusNotFound, "no such object")
		return
	}
	note["@context"] = m["@context"]
	writeActivity(w, http.StatusOK, note)
}

// isPublic reports whether an activity is addressed to the public.
func isPublic(m map[string]any) bool {
	for _, field := range []string{"to", "cc"} {
		switch v := m[field].(type) {
		case string:
			if v == publicIRI {
				return true
			}
		case []any:
			for _, x := range v {
				if x == publicIRI {
					return true
				}
			}
		}
	}
	return false
}

// verifyFollowerFetch checks a GET is signed by an actor on a server one
// of our approved followers is on.
func (f *Federation) verifyFollowerFetch(r *http.Request) (verified, error) {
	v, err := f.verify(r.Context(), r, nil, "")
	if err != nil {
		return v, err
	}
	if fl, err := f.store.Follower(r.Context(), v.actor.ID); err == nil && fl.State == "approved" {
		return v, nil
	}
	fs, err := f.store.Followers(r.Context(), "approved", -1, 0)
	if err != nil {
		return v, err
	}
	for _, fl := range fs {
		if hostOf(fl.Actor) == hostOf(v.actor.ID) {
			return v, nil
		}
	}
	return v, errNotFollower
}

// publicIRI addresses everyone.
const publicIRI = "https://www.w3.org/ns/activitystreams#Public"

// errNotFollower refuses a signed fetch from a server none of our
// followers is on.
var errNotFollower = errors.New("the signer is not on a follower's server")
