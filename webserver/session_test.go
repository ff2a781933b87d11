package webserver

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-live/starling/static"
)

const testPassword = "the-admin-password"

// fakeAdmin is the admin password, changeable as config/adminpass does.
type fakeAdmin struct {
	mu      sync.Mutex
	pw      string
	version int
}

func (a *fakeAdmin) CheckAdminPassword(s string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return s == a.pw
}

func (a *fakeAdmin) AdminPasswordVersion() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strconv.Itoa(a.version)
}

func (a *fakeAdmin) set(pw string) {
	a.mu.Lock()
	a.pw, a.version = pw, a.version+1
	a.mu.Unlock()
}

// syncBuffer is a log destination handlers write to from the server's
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// gateServer is the admin gate in front of a small admin API, on a real
// HTTP server, with a clock the test moves.
type gateServer struct {
	t     *testing.T
	URL   string
	admin *fakeAdmin
	gate  *adminGate
	logs  *syncBuffer
	// clock is how far the sessions' clock is ahead of the real one.
	clock atomic.Int64
	// name is what POST /api/admin/config/name set last.
	mu   sync.Mutex
	name string
	// client follows no redirects and keeps no cookies.
	client *http.Client
}

func newGateServer(t *testing.T, trusted []netip.Prefix, tls bool) *gateServer {
	t.Helper()
	s := &gateServer{t: t, admin: &fakeAdmin{pw: testPassword}, logs: &syncBuffer{}, name: "Starling"}
	log := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s.gate = newAdminGate(log, s.admin)
	s.gate.sessions.now = func() time.Time { return time.Now().Add(time.Duration(s.clock.Load())) }
	api := http.NewServeMux()
	api.HandleFunc("POST /api/admin/config/name", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Value string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.mu.Lock()
		s.name = in.Value
		s.mu.Unlock()
		w.Write([]byte(`{"success":true}`))
	})
	api.HandleFunc("GET /api/admin/status", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"online":false}`)) })
	api.HandleFunc("/", apiNotFound)
	h := requestID(clientIP(trustedBy(trusted), s.gate.wrap(api)))
	var ts *httptest.Server
	if tls {
		ts = httptest.NewTLSServer(h)
	} else {
		ts = httptest.NewServer(h)
	}
	t.Cleanup(ts.Close)
	s.URL = ts.URL
	s.client = ts.Client()
	s.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", s.logs)
		}
	})
	return s
}

func (s *gateServer) advance(d time.Duration) { s.clock.Add(int64(d)) }

func (s *gateServer) currentName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.name
}

// do sends a request; headers are pairs of name and value.
func (s *gateServer) do(method, path, contentType, body string, cookie *http.Cookie, headers ...string) (*http.Response, string) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// login posts the form and returns the response.
func (s *gateServer) login(password, next string, headers ...string) *http.Response {
	s.t.Helper()
	form := url.Values{"user": {AdminUser}, "password": {password}, "next": {next}}
	resp, _ := s.do(http.MethodPost, loginPath, "application/x-www-form-urlencoded", form.Encode(), nil, headers...)
	return resp
}

// session logs in and returns the cookie and the CSRF token.
func (s *gateServer) session() (*http.Cookie, string) {
	s.t.Helper()
	resp := s.login(testPassword, "")
	c := sessionCookieOf(resp)
	if resp.StatusCode != http.StatusSeeOther || c == nil {
		s.t.Fatalf("login: %d, cookie %v", resp.StatusCode, c)
	}
	code, info := s.sessionInfo(c)
	if code != http.StatusOK || info.CSRFToken == "" {
		s.t.Fatalf("GET %s: %d %+v", sessionPath, code, info)
	}
	return c, info.CSRFToken
}

type sessionJSON struct {
	User      string    `json:"user"`
	CSRFToken string    `json:"csrfToken"`
	ExpiresAt time.Time `json:"expiresAt"`
}

func (s *gateServer) sessionInfo(c *http.Cookie) (int, sessionJSON) {
	s.t.Helper()
	resp, body := s.do(http.MethodGet, sessionPath, "", "", c)
	var info sessionJSON
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &info); err != nil {
			s.t.Fatalf("GET %s: %v: %s", sessionPath, err, body)
		}
	}
	return resp.StatusCode, info
}

func sessionCookieOf(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			return c
		}
	}
	return nil
}

// noSecretsLogged fails if the log holds any of the secrets.
func (s *gateServer) noSecretsLogged(secrets ...string) {
	s.t.Helper()
	logs := s.logs.String()
	for _, sec := range append(secrets, testPassword) {
		if sec != "" && strings.Contains(logs, sec) {
			s.t.Errorf("the log holds a secret %.6s...:\n%s", sec, logs)
		}
	}
}

// TestLoginSetsTheSessionCookie: the form's login answers with a redirect
// and a cookie that scripts cannot read, that no other site's request
// carries, for the whole server, kept for the session's lifetime, Secure
// when the browser came over https (directly or through a trusted proxy
// saying so) and only then. The JSON login answers the session itself.
func TestLoginSetsTheSessionCookie(t *testing.T) {
	proxy := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		tls     bool
		headers []string
		secure  bool
	}{
		{"plain http", nil, false, nil, false},
		{"https", nil, true, nil, true},
		{"a trusted proxy over https", proxy, false, []string{"X-Forwarded-Proto", "https"}, true},
		{"a trusted proxy over http", proxy, false, []string{"X-Forwarded-Proto", "http"}, false},
		{"an untrusted client claiming https", nil, false, []string{"X-Forwarded-Proto", "https"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newGateServer(t, tc.trusted, tc.tls)
			resp := s.login(testPassword, "/admin/config/video", tc.headers...)
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/config/video" {
				t.Fatalf("login: %d to %q, want 303 to the deep link", resp.StatusCode, resp.Header.Get("Location"))
			}
			c := sessionCookieOf(resp)
			if c == nil {
				t.Fatalf("no session cookie: %v", resp.Header["Set-Cookie"])
			}
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" ||
				c.MaxAge != int(sessionLifetime/time.Second) || c.Secure != tc.secure {
				t.Errorf("cookie %q, want HttpOnly, SameSite=Strict, Path=/, no Domain, Max-Age %d, Secure %v",
					resp.Header.Get("Set-Cookie"), int(sessionLifetime/time.Second), tc.secure)
			}
			if n := len(c.Value); n != 43 {
				t.Errorf("the token is %d characters, want 43 (256 bits in base64url)", n)
			}
			code, info := s.sessionInfo(c)
			want := time.Now().Add(sessionIdle)
			if code != http.StatusOK || info.User != AdminUser || len(info.CSRFToken) != 43 || info.CSRFToken == c.Value ||
				info.ExpiresAt.Before(want.Add(-time.Minute)) || info.ExpiresAt.After(want.Add(time.Minute)) {
				t.Errorf("GET %s: %d %+v, want the admin, a token and expiry in %v", sessionPath, code, info, sessionIdle)
			}

			jresp, body := s.do(http.MethodPost, loginPath, "application/json", `{"user":"admin","password":"`+testPassword+`"}`, nil, tc.headers...)
			var j sessionJSON
			json.Unmarshal([]byte(body), &j)
			jc := sessionCookieOf(jresp)
			if jresp.StatusCode != http.StatusOK || len(j.CSRFToken) != 43 || jc == nil || jc.Value == c.Value || jc.Secure != tc.secure {
				t.Errorf("JSON login: %d %s, cookie %v", jresp.StatusCode, body, jc)
			}
			s.noSecretsLogged(c.Value, info.CSRFToken, jc.Value, j.CSRFToken)
		})
	}
}

// TestLoginWrongPasswordIsRefusedAndThrottled: a wrong password gets the form
// again with 401 and sets no cookie; after ten from one address, that
// address waits, whether it logs in by the form, JSON or Basic, even with
// the right password; another address is not affected.
func TestLoginWrongPasswordIsRefusedAndThrottled(t *testing.T) {
	s := newGateServer(t, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, false)
	guesser := []string{"X-Forwarded-For", "203.0.113.7"}
	for i := range loginBurst {
		resp := s.login("wrong-password-"+strconv.Itoa(i), "/admin/", guesser...)
		if resp.StatusCode != http.StatusUnauthorized || sessionCookieOf(resp) != nil {
			t.Fatalf("wrong password %d: %d, cookie %v", i, resp.StatusCode, sessionCookieOf(resp))
		}
	}
	resp, body := s.do(http.MethodPost, loginPath, "application/x-www-form-urlencoded",
		url.Values{"user": {AdminUser}, "password": {testPassword}}.Encode(), nil, guesser...)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || sessionCookieOf(resp) != nil ||
		!strings.Contains(body, "Too many failed logins") || !strings.Contains(body, "<form") {
		t.Errorf("the right password after ten wrong ones: %d, Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	resp, _ = s.do(http.MethodPost, loginPath, "application/json", `{"password":"`+testPassword+`"}`, nil, guesser...)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a JSON login after ten wrong ones: %d", resp.StatusCode)
	}
	resp, _ = s.do(http.MethodGet, "/api/admin/status", "", "", nil, append(guesser, "Authorization", basic(testPassword))...)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("Basic after ten wrong ones: %d", resp.StatusCode)
	}
	if resp := s.login(testPassword, "", "X-Forwarded-For", "198.51.100.1"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the admin from another address: %d", resp.StatusCode)
	}
	if resp := s.login("", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("an empty password: %d", resp.StatusCode)
	}
	resp, _ = s.do(http.MethodPost, loginPath, "text/plain", "password="+testPassword, nil)
	if resp.StatusCode != http.StatusUnsupportedMediaType || sessionCookieOf(resp) != nil {
		t.Errorf("a text/plain login: %d", resp.StatusCode)
	}
	if !strings.Contains(s.logs.String(), "admin login failed") {
		t.Error("failed logins are not logged")
	}
	s.noSecretsLogged("wrong-password-")
}

func basic(pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(AdminUser+":"+pw))
}

// TestSessionNeedsItsCSRFToken: a state-changing request with the session
// cookie is refused with 403, and changes nothing, without the session's
// CSRF token, with a wrong one or with another session's; with its own it
// passes. Reading needs no token, and Basic (scripts) needs none.
func TestSessionNeedsItsCSRFToken(t *testing.T) {
	s := newGateServer(t, nil, false)
	c, csrf := s.session()
	_, other := s.session()
	set := func(value string, headers ...string) int {
		resp, _ := s.do(http.MethodPost, "/api/admin/config/name", "application/json", `{"value":"`+value+`"}`, c, headers...)
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name    string
		headers []string
	}{
		{"no token", nil},
		{"an empty token", []string{csrfHeader, ""}},
		{"a wrong token", []string{csrfHeader, strings.Repeat("A", 43)}},
		{"another session's token", []string{csrfHeader, other}},
		{"the token cut short", []string{csrfHeader, csrf[:42]}},
		{"the session token as CSRF token", []string{csrfHeader, c.Value}},
	} {
		if code := set("changed with "+tc.name, tc.headers...); code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", tc.name, code)
		}
	}
	if n := s.currentName(); n != "Starling" {
		t.Fatalf("a refused request changed the name to %q", n)
	}
	for _, m := range []string{http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if resp, _ := s.do(m, "/api/admin/config/name", "application/json", `{}`, c); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s without the token: %d, want 403", m, resp.StatusCode)
		}
	}
	if code := set("Set with the token", csrfHeader, csrf); code != http.StatusOK || s.currentName() != "Set with the token" {
		t.Errorf("with the token: %d, name %q", code, s.currentName())
	}
	if resp, body := s.do(http.MethodGet, "/api/admin/status", "", "", c); resp.StatusCode != http.StatusOK {
		t.Errorf("GET with the cookie: %d %s", resp.StatusCode, body)
	}
	resp, _ := s.do(http.MethodPost, "/api/admin/config/name", "application/json", `{"value":"From a script"}`, nil, "Authorization", basic(testPassword))
	if resp.StatusCode != http.StatusOK || s.currentName() != "From a script" {
		t.Errorf("Basic without a token: %d, name %q", resp.StatusCode, s.currentName())
	}
	if !strings.Contains(s.logs.String(), "CSRF token refused") {
		t.Error("refusals are not logged")
	}
	s.noSecretsLogged(c.Value, csrf, other)
}

// TestLogoutAndPasswordChangeEndSessions: logging out needs the token
// (or a logout page on another site could end the admin's session), and
// ends the session; a password change ends every session at once.
func TestLogoutAndPasswordChangeEndSessions(t *testing.T) {
	s := newGateServer(t, nil, false)
	c, csrf := s.session()
	if resp, _ := s.do(http.MethodPost, logoutPath, "", "", c); resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout without the token: %d, want 403", resp.StatusCode)
	}
	if code, _ := s.sessionInfo(c); code != http.StatusOK {
		t.Fatalf("a refused logout ended the session: %d", code)
	}
	resp, body := s.do(http.MethodPost, logoutPath, "", "", c, csrfHeader, csrf)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"success":true`) {
		t.Errorf("logout: %d %s", resp.StatusCode, body)
	}
	if cleared := sessionCookieOf(resp); cleared == nil || cleared.MaxAge >= 0 {
		t.Errorf("logout does not clear the cookie: %v", resp.Header["Set-Cookie"])
	}
	if code, _ := s.sessionInfo(c); code != http.StatusUnauthorized {
		t.Errorf("after logout the cookie still logs in: %d", code)
	}

	// The logout form, which works without JavaScript.
	c, csrf = s.session()
	resp, _ = s.do(http.MethodPost, logoutPath, "application/x-www-form-urlencoded", url.Values{"csrf_token": {csrf}}.Encode(), c)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != loginPath {
		t.Errorf("the logout form: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if code, _ := s.sessionInfo(c); code != http.StatusUnauthorized {
		t.Errorf("after the logout form the cookie still logs in: %d", code)
	}

	a, _ := s.session()
	b, _ := s.session()
	s.admin.set("a-new-admin-password")
	for _, c := range []*http.Cookie{a, b} {
		resp, _ := s.do(http.MethodGet, "/admin/", "", "", c)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("a session from before the password change: %d, want 401", resp.StatusCode)
		}
		if code, _ := s.sessionInfo(c); code != http.StatusUnauthorized {
			t.Errorf("a session from before the password change, again: %d", code)
		}
	}
	if resp := s.login(testPassword, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the old password after the change: %d", resp.StatusCode)
	}
	if resp := s.login("a-new-admin-password", ""); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the new password: %d", resp.StatusCode)
	}
}

// TestSessionsExpire: a session ends after sessionIdle without a request,
// and sessionLifetime after the login however busy.
func TestSessionsExpire(t *testing.T) {
	s := newGateServer(t, nil, false)
	idle, _ := s.session()
	busy, _ := s.session()
	s.advance(sessionIdle - time.Minute)
	if code, _ := s.sessionInfo(busy); code != http.StatusOK {
		t.Fatalf("a session used within %v: %d", sessionIdle, code)
	}
	s.advance(2 * time.Minute)
	if code, _ := s.sessionInfo(idle); code != http.StatusUnauthorized {
		t.Errorf("a session idle for %v: %d, want 401", sessionIdle+time.Minute, code)
	}
	resp, body := s.do(http.MethodGet, "/admin/", "", "", idle)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Your session has ended") {
		t.Errorf("an expired session on a page: %d %s", resp.StatusCode, body)
	}
	for elapsed := sessionIdle + time.Minute; elapsed < sessionLifetime-sessionIdle; elapsed += sessionIdle - time.Minute {
		if code, _ := s.sessionInfo(busy); code != http.StatusOK {
			t.Fatalf("a session used every %v, %v after login: %d", sessionIdle-time.Minute, elapsed, code)
		}
		s.advance(sessionIdle - time.Minute)
	}
	s.advance(sessionIdle)
	if code, _ := s.sessionInfo(busy); code != http.StatusUnauthorized {
		t.Errorf("a session past its lifetime of %v: %d, want 401", sessionLifetime, code)
	}
}

// TestLoginRefusesOpenRedirects: a login returns only to a path on this
// server; anything a browser could read as another host sends the admin
// to the panel instead.
func TestLoginRefusesOpenRedirects(t *testing.T) {
	s := newGateServer(t, nil, false)
	for next, want := range map[string]string{
		"":                                       panelPath,
		"/admin/config/video":                    "/admin/config/video",
		"/admin/chat?tab=users#x":                "/admin/chat?tab=users#x",
		"//evil.example/":                        panelPath,
		"///evil.example/":                       panelPath,
		"https://evil.example/admin":             panelPath,
		"http:evil.example":                      panelPath,
		`/\evil.example`:                         panelPath,
		`\/evil.example`:                         panelPath,
		"/\t/evil.example":                       panelPath,
		"/\n/evil.example":                       panelPath,
		"javascript:alert(1)":                    panelPath,
		"admin/":                                 panelPath,
		"/" + strings.Repeat("a", maxNextLength): panelPath,
	} {
		resp := s.login(testPassword, next)
		if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || got != want {
			t.Errorf("next %q: %d to %q, want %q", next, resp.StatusCode, got, want)
		}
	}
	_, body := s.do(http.MethodGet, loginPath+"?next="+url.QueryEscape("//evil.example/"), "", "", nil)
	if strings.Contains(body, "evil.example") || !strings.Contains(body, `value="/admin/"`) {
		t.Errorf("the login page carries a foreign next: %s", body)
	}
}

// TestDeepLinkWithoutSessionGetsTheLoginPage: any admin page asked for
// without credentials answers 401 with the login form, which returns
// there; the API answers its JSON error with a Basic challenge. /admin
// leads to /admin/, and Basic opens the pages as on Owncast.
func TestDeepLinkWithoutSessionGetsTheLoginPage(t *testing.T) {
	s := newGateServer(t, nil, false)
	for path, next := range map[string]string{
		"/admin/config/video":         "/admin/config/video",
		"/admin/chat?tab=users":       "/admin/chat?tab=users",
		"/admin":                      "/admin/",
		"/admin/":                     "/admin/",
		`/admin/"><script>x</script>`: `/admin/&#34;&gt;&lt;script&gt;x&lt;/script&gt;`,
	} {
		resp, body := s.do(http.MethodGet, strings.ReplaceAll(path, `"><script>x</script>`, url.PathEscape(`"><script>x</script>`)), "", "", nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("GET %s: %d %s, want 401 with the login page", path, resp.StatusCode, resp.Header.Get("Content-Type"))
			continue
		}
		if !strings.Contains(body, `<form method="post" action="/admin/login">`) {
			t.Errorf("GET %s: no login form: %s", path, body)
		}
		if strings.Contains(path, "script") {
			if strings.Contains(body, "<script") {
				t.Errorf("GET %s: the path is not escaped: %s", path, body)
			}
		} else if !strings.Contains(body, `name="next" value="`+next+`"`) {
			t.Errorf("GET %s: the form does not return to %s: %s", path, next, body)
		}
		if strings.Contains(resp.Header.Get("WWW-Authenticate"), "Basic") || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s: WWW-Authenticate %q: a page asks for the form, not the browser's Basic dialog", path, resp.Header.Get("WWW-Authenticate"))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
	}
	resp, body := s.do(http.MethodGet, "/api/admin/status", "", "", nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"success":false`) || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("the API without credentials: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
	// A panel's fetch, or a request with an ended session, gets no Basic
	// challenge, which would open the browser's dialog over the panel; a
	// browser opening the API as a page still does.
	for _, tc := range []struct {
		name    string
		cookie  *http.Cookie
		headers []string
		basic   bool
	}{
		{"a fetch", nil, []string{"Sec-Fetch-Mode", "cors"}, false},
		{"an ended session", &http.Cookie{Name: sessionCookie, Value: strings.Repeat("x", 43)}, nil, false},
		{"a page", nil, []string{"Sec-Fetch-Mode", "navigate"}, true},
	} {
		resp, body := s.do(http.MethodGet, "/api/admin/status", "", "", tc.cookie, tc.headers...)
		if got := strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic"); resp.StatusCode != http.StatusUnauthorized || got != tc.basic {
			t.Errorf("the API for %s: %d, WWW-Authenticate %q, want Basic %v: %s", tc.name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), tc.basic, body)
		}
	}
	if resp, body := s.do(http.MethodGet, loginPath, "", "", nil); resp.StatusCode != http.StatusOK || !strings.Contains(body, "<form") {
		t.Errorf("GET %s: %d", loginPath, resp.StatusCode)
	}

	c, _ := s.session()
	if resp, _ := s.do(http.MethodGet, "/admin", "", "", c); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/admin/" {
		t.Errorf("GET /admin with a session: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := s.do(http.MethodGet, "/admin/config/video", "", "", c); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a deep link with a session: %d, want what the panel answers (404 until it exists)", resp.StatusCode)
	}
	if resp, _ := s.do(http.MethodGet, loginPath+"?next=/admin/chat", "", "", c); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/chat" {
		t.Errorf("the login page with a session: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, path := range []string{"/admin", "/admin/config/video"} {
		resp, _ := s.do(http.MethodGet, path, "", "", nil, "Authorization", basic(testPassword))
		if resp.StatusCode == http.StatusUnauthorized {
			t.Errorf("GET %s with Basic: 401", path)
		}
		resp, body = s.do(http.MethodGet, path, "", "", nil, "Authorization", basic("wrong-password"))
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong user or password") {
			t.Errorf("GET %s with a wrong Basic password: %d %s", path, resp.StatusCode, body)
		}
	}
	resp, body = s.do(http.MethodGet, sessionPath, "", "", nil, "Authorization", basic(testPassword))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"user":"admin"`) || strings.Contains(body, "csrfToken") {
		t.Errorf("GET %s with Basic: %d %s", sessionPath, resp.StatusCode, body)
	}
}

// TestLoginPage: the page parses, has no script, labels its fields, fits
// a phone, and its CSP allows its style by hash and nothing inline else.
func TestLoginPage(t *testing.T) {
	page := static.AdminLogin()
	g := newAdminGate(slog.New(slog.DiscardHandler), &fakeAdmin{})
	for _, want := range []string{`<label for="user">`, `<label for="password">`, `name="viewport"`, `autocomplete="current-password"`, `lang="en"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the login page lacks %s", want)
		}
	}
	if strings.Contains(page, "<script") || regexp.MustCompile(`\son[a-z]+=`).MatchString(page) {
		t.Error("the login page has a script: a strict CSP would block it")
	}
	_, style, _ := strings.Cut(page, "<style>")
	style, _, _ = strings.Cut(style, "</style>")
	sum := sha256.Sum256([]byte(style))
	if !strings.Contains(g.loginCSP, "style-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") ||
		!strings.Contains(g.loginCSP, "frame-ancestors 'none'") || !strings.Contains(g.loginCSP, "form-action 'self'") {
		t.Errorf("CSP %q", g.loginCSP)
	}
}

// TestSessionsAreBounded: past maxSessions the least recently used ends.
func TestSessionsAreBounded(t *testing.T) {
	s := newSessions()
	now := time.Now()
	s.now = func() time.Time { now = now.Add(time.Second); return now }
	first, _ := s.open("v1")
	second, _ := s.open("v1")
	for range maxSessions - 2 {
		s.open("v1")
	}
	s.check(first, "v1") // the first is used again, the second is not
	s.open("v1")
	if _, ok := s.check(first, "v1"); !ok {
		t.Error("the recently used session ended")
	}
	if _, ok := s.check(second, "v1"); ok {
		t.Error("the least recently used session is still open past the bound")
	}
	if len(s.byHash) != maxSessions {
		t.Errorf("%d sessions, want %d", len(s.byHash), maxSessions)
	}
}
