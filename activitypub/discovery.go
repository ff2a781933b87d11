package activitypub

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// routes are the fediverse's paths. Each answers 404 while federation is
// off.
func (f *Federation) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/webfinger", f.webfinger)
	mux.HandleFunc("GET /.well-known/host-meta", f.whenOn(f.hostMeta))
	mux.HandleFunc("GET /.well-known/nodeinfo", f.whenOn(f.nodeinfoLinks))
	mux.HandleFunc("GET /nodeinfo/2.0", f.whenOn(f.nodeinfo))
	mux.HandleFunc("GET /.well-known/x-nodeinfo2", f.whenOn(f.xNodeinfo2))
	mux.HandleFunc("GET /api/v1/instance", f.whenOn(f.instance))
	mux.HandleFunc("GET /federation/user/{user}", f.serveActor)
	mux.HandleFunc("GET /federation/user/{user}/followers", f.serveFollowers)
	mux.HandleFunc("GET /federation/user/{user}/following", f.serveFollowing)
	mux.HandleFunc("GET /federation/user/{user}/outbox", f.serveOutbox)
	mux.HandleFunc("POST /federation/user/{user}/inbox", f.serveInbox)
	mux.HandleFunc("POST /federation/inbox", f.serveInbox)
	mux.HandleFunc("GET /federation/posts/{id}", f.serveObject)
	mux.HandleFunc("GET /federation/posts/{id}/activity", f.serveObject)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such fediverse endpoint")
	})
	return mux
}

// whenOn serves h while federation is on, and 404 while it is off.
func (f *Federation) whenOn(h func(http.ResponseWriter, *http.Request, site)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st, ok := f.site()
		if !ok {
			writeError(w, http.StatusNotFound, "this server has no fediverse accounts")
			return
		}
		h(w, r, st)
	}
}

// jrd is a WebFinger answer (RFC 7033).
type jrd struct {
	Subject string    `json:"subject"`
	Aliases []string  `json:"aliases,omitempty"`
	Links   []jrdLink `json:"links"`
}

type jrdLink struct {
	Rel      string `json:"rel"`
	Type     string `json:"type,omitempty"`
	Href     string `json:"href,omitempty"`
	Template string `json:"template,omitempty"`
}

// webfinger answers acct:USER@HOST with the actor's links.
func (f *Federation) webfinger(w http.ResponseWriter, r *http.Request) {
	resource := r.URL.Query().Get("resource")
	if resource == "" {
		writeError(w, http.StatusBadRequest, "resource is missing: ask for ?resource=acct:user@host")
		return
	}
	user, host, err := parseAcct(resource)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	st, ok := f.site()
	if !ok {
		writeError(w, http.StatusNotFound, "this server has no fediverse accounts")
		return
	}
	if !strings.EqualFold(user, st.s.Federation.Username) || !strings.EqualFold(host, st.host) {
		writeError(w, http.StatusNotFound, "no such account here")
		return
	}
	writeJSON(w, http.StatusOK, "application/jrd+json; charset=utf-8", jrd{
		Subject: "acct:" + st.handle(),
		Aliases: []string{st.actor()},
		Links: []jrdLink{
			{Rel: "self", Type: activityJSON, Href: st.actor()},
			{Rel: "http://webfinger.net/rel/profile-page", Type: "text/html", Href: st.base + "/"},
			{Rel: "http://webfinger.net/rel/avatar", Href: st.base + "/logo"},
		},
	})
}

// parseAcct reads acct:user@host, @user@host, user@host, or the actor's
// URL.
func parseAcct(resource string) (user, host string, err error) {
	if u, perr := url.Parse(resource); perr == nil && (u.Scheme == "https" || u.Scheme == "http") {
		name, ok := strings.CutPrefix(u.Path, "/federation/user/")
		if !ok || name == "" || strings.Contains(name, "/") {
			return "", "", fmt.Errorf("resource %q is not an account here", resource)
		}
		return name, u.Host, nil
	}
	acct := strings.TrimPrefix(strings.TrimPrefix(resource, "acct:"), "@")
	user, host, ok := strings.Cut(acct, "@")
	if !ok || user == "" || host == "" || strings.ContainsAny(acct, " /?#") || strings.Count(acct, "@") != 1 {
		return "", "", fmt.Errorf("resource %q is not acct:user@host", resource)
	}
	return user, host, nil
}

func (f *Federation) hostMeta(w http.ResponseWriter, r *http.Request, st site) {
	type link struct {
		Rel      string `xml:"rel,attr"`
		Type     string `xml:"type,attr"`
		Template string `xml:"template,attr"`
	}
	type xrd struct {
		XMLName xml.Name `xml:"http://docs.oasis-open.org/ns/xri/xrd-1.0 XRD"`
		Links   []link   `xml:"Link"`
	}
	b, _ := xml.Marshal(xrd{Links: []link{{Rel: "lrdd", Type: "application/jrd+json", Template: st.base + "/.well-known/webfinger?resource={uri}"}}})
	w.Header().Set("Content-Type", "application/xrd+xml; charset=utf-8")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	io.WriteString(w, xml.Header)
	w.Write(b)
}

const nodeinfoSchema = "http://nodeinfo.diaspora.software/ns/schema/2.0"

func (f *Federation) nodeinfoLinks(w http.ResponseWriter, r *http.Request, st site) {
	writeJSON(w, http.StatusOK, "application/json; charset=utf-8", map[string]any{
		"links": []jrdLink{{Rel: nodeinfoSchema, Href: st.base + "/nodeinfo/2.0"}},
	})
}

// counts are what NodeInfo and the instance API say of usage.
func (f *Federation) counts(r *http.Request) (posts, followers int) {
	posts, _ = f.store.CountPosts(r.Context(), publicKinds)
	followers, _ = f.store.CountFollowers(r.Context(), "approved")
	return posts, followers
}

// softwareName is how NodeInfo names us: lower case, as its schema wants.
const softwareName = "starling"

// nodeinfo answers NodeInfo 2.0.
func (f *Federation) nodeinfo(w http.ResponseWriter, r *http.Request, st site) {
	posts, _ := f.counts(r)
	writeJSON(w, http.StatusOK, `application/json; profile="`+nodeinfoSchema+`#"`, map[string]any{
		"version":           "2.0",
		"software":          map[string]any{"name": softwareName, "version": f.version},
		"protocols":         []string{"activitypub"},
		"services":          map[string]any{"inbound": []string{}, "outbound": []string{}},
		"openRegistrations": false,
		"usage": map[string]any{
			"users":      map[string]int{"total": 1, "activeMonth": 1, "activeHalfyear": 1},
			"localPosts": posts,
		},
		"metadata": map[string]any{"nodeName": st.s.Name},
	})
}

func (f *Federation) xNodeinfo2(w http.ResponseWriter, r *http.Request, st site) {
	posts, _ := f.counts(r)
	writeJSON(w, http.StatusOK, "application/json; charset=utf-8", map[string]any{
		"version": "1.0",
		"server": map[string]any{
			"baseUrl": st.base, "name": st.s.Name, "software": softwareName, "version": f.version,
		},
		"protocols":         []string{"activitypub"},
		"openRegistrations": false,
		"usage": map[string]any{
			"users":      map[string]int{"total": 1, "activeWeek": 1, "activeMonth": 1, "activeHalfyear": 1},
			"localPosts": posts,
		},
	})
}

// instance answers Mastodon's /api/v1/instance, which some clients and
// crawlers read.
func (f *Federation) instance(w http.ResponseWriter, r *http.Request, st site) {
	posts, _ := f.counts(r)
	writeJSON(w, http.StatusOK, "application/json; charset=utf-8", map[string]any{
		"uri":               st.host,
		"title":             st.s.Name,
		"short_description": st.s.Summary,
		"description":       st.s.Summary,
		"email":             "",
		"version":           "4.0.0 (compatible; Starling " + f.version + ")",
		"thumbnail":         st.base + "/logo",
		"registrations":     false,
		"approval_required": false,
		"invites_enabled":   false,
		"languages":         []string{},
		"urls":              map[string]string{},
		"stats":             map[string]int{"user_count": 1, "status_count": posts, "domain_count": 0},
		"contact_account":   nil,
	})
}

// Follower is a follower as the APIs show it (Owncast's shape).
type Follower struct {
	Link      string     `json:"link"`
	Name      string     `json:"name"`
	Username  string     `json:"username"`
	Image     string     `json:"image"`
	Timestamp time.Time  `json:"timestamp"`
	Approved  *time.Time `json:"approved,omitempty"`
}

// PublicFollowers answers GET /api/followers: the approved followers,
// with ?offset= and ?limit= (at most 100), and how many there are.
func (f *Federation) PublicFollowers(w http.ResponseWriter, r *http.Request) {
	if _, ok := f.site(); !ok {
		writeJSON(w, http.StatusOK, "application/json; charset=utf-8", map[string]any{"results": []Follower{}, "total": 0})
		return
	}
	offset, limit, err := paging(r, 50, 100)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	list, err := f.Followers(r.Context(), "approved", limit, offset)
	total, err2 := f.store.CountFollowers(r.Context(), "approved")
	if err := errors.Join(err, err2); err != nil {
		writeError(w, http.StatusInternalServerError, "the followers are not available right now")
		return
	}
	writeJSON(w, http.StatusOK, "application/json; charset=utf-8", map[string]any{"results": list, "total": total})
}

// paging reads ?offset= and ?limit=.
func paging(r *http.Request, def, most int) (offset, limit int, err error) {
	limit = def
	q := r.URL.Query()
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > most {
			return 0, 0, fmt.Errorf("limit must be 1 to %d", most)
		}
	}
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			return 0, 0, errors.New("offset must be 0 or more")
		}
	}
	return offset, limit, nil
}

// RemoteFollow answers POST /api/remotefollow {"account": "me@my.server"}:
// where the viewer's own server lets them follow the stream.
func (f *Federation) RemoteFollow(w http.ResponseWriter, r *http.Request) {
	st, ok := f.site()
	if !ok {
		writeError(w, http.StatusNotFound, "the fediverse is off on this server")
		return
	}
	if !f.limits.Allow("remotefollow:"+f.clientIP(r), time.Now()) {
		writeError(w, http.StatusTooManyRequests, "too many requests from your address: slow down")
		return
	}
	var req struct {
		Account string `json:"account"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, `send {"account": "you@your.server"}`)
		return
	}
	user, host, err := parseAcct(strings.TrimSpace(req.Account))
	if err != nil {
		writeError(w, http.StatusBadRequest, "account must be like you@your.server")
		return
	}
	if blocked(st.s, host) {
		writeError(w, http.StatusForbidden, "that server is blocked here")
		return
	}
	u := url.URL{Scheme: "https", Host: host, Path: "/.well-known/webfinger", RawQuery: "resource=" + url.QueryEscape("acct:"+user+"@"+host)}
	if strings.HasPrefix(st.base, "http://") {
		// A server on plain http (tests, a LAN) finds its peers on http.
		u.Scheme = "http"
	}
	req2, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
	req2.Header.Set("Accept", "application/jrd+json")
	resp, err := f.client.Do(req2)
	if err != nil {
		writeError(w, http.StatusBadGateway, "cannot reach "+host+": check the account")
		return
	}
	defer resp.Body.Close()
	var j jrd
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&j) != nil {
		writeError(w, http.StatusBadGateway, host+" did not say where to follow from: check the account")
		return
	}
	for _, l := range j.Links {
		if l.Rel == "http://ostatus.org/schema/1.0/subscribe" && strings.Contains(l.Template, "{uri}") {
			redirect := strings.ReplaceAll(l.Template, "{uri}", url.QueryEscape("acct:"+st.handle()))
			if ru, err := url.Parse(redirect); err == nil && (ru.Scheme == "https" || ru.Scheme == "http") {
				writeJSON(w, http.StatusOK, "application/json; charset=utf-8", map[string]string{"redirectUrl": redirect})
				return
			}
		}
	}
	writeError(w, http.StatusBadGateway, host+" has no remote follow page: search for @"+st.handle()+" there instead")
}
