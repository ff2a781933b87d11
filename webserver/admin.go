package webserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/starling-live/starling/static"
)

// AdminUser is the user name of HTTP Basic authentication for the admin
// API, as in Owncast.
const AdminUser = "admin"

// Failed admin logins one address may make: a burst, then one more per
// interval. A person mistyping stays far below it; a guesser gets a few
// guesses a minute, and each guess is a bcrypt the server pays for.
const (
	loginBurst    = 10
	loginInterval = 6 * time.Second
)

// Paths of the admin login.
const (
	loginPath   = "/admin/login"
	logoutPath  = "/admin/logout"
	sessionPath = "/api/admin/session"
	// panelPath is where a login returns when no page was asked for.
	panelPath = "/admin/"
)

// csrfHeader carries the session's CSRF token on every state-changing
// request authenticated by the session cookie.
const csrfHeader = "X-CSRF-Token"

// maxLoginBody bounds a login request's body: a form with a password.
const maxLoginBody = 64 << 10

// adminGate guards the admin API and pages. A request passes if it can
// be the admin's own (not a form or script on another site riding on
// credentials the browser holds) and carries the admin's credentials:
// HTTP Basic (scripts, Owncast's tools) or a session cookie from the login
// form, with the session's CSRF token on anything that changes state.
// Failed logins, by either way, are throttled per address.
type adminGate struct {
	log      *slog.Logger
	auth     adminAuth
	sameSite *http.CrossOriginProtection
	failures ipLimiter
	sessions *sessions
	// login is the login page; loginCSP its Content-Security-Policy,
	// which allows its one inline style by hash and nothing else.
	login    *template.Template
	loginCSP string
}

func newAdminGate(log *slog.Logger, auth adminAuth) *adminGate {
	page := static.AdminLogin()
	g := &adminGate{log: log, auth: auth, sameSite: http.NewCrossOriginProtection(),
		failures: newIPLimiter(rate.Every(loginInterval), loginBurst),
		sessions: newSessions(),
		// A literal file of the static package; TestLoginPage parses it.
		login:    template.Must(template.New("login").Parse(page)),
		loginCSP: loginCSP(page),
	}
	// Browsers say where a request comes from (Sec-Fetch-Site, Origin);
	// scripts with Basic auth send neither and pass.
	g.sameSite.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Warn("cross-site admin request refused", "remote", ClientIP(r), "path", r.URL.Path, "origin", r.Header.Get("Origin"))
		writeError(w, http.StatusForbidden, "cross-site request refused: change settings from the admin panel on this server, or from a script without a browser")
	}))
	return g
}

// loginCSP allows the page's inline style by its hash (CSP Level 3,
// "hash-source"), forms to this server only, and nothing else: no script.
func loginCSP(page string) string {
	_, style, _ := strings.Cut(page, "<style>")
	style, _, _ = strings.Cut(style, "</style>")
	sum := sha256.Sum256([]byte(style))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}

func (g *adminGate) wrap(next http.Handler) http.Handler {
	// Behind the credentials: the session's own routes, then the admin's.
	authed := http.NewServeMux()
	authed.HandleFunc("POST "+logoutPath, g.logout)
	authed.HandleFunc("GET "+sessionPath, g.sessionInfo)
	authed.HandleFunc("GET /admin", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, panelPath, http.StatusMovedPermanently)
	})
	authed.Handle("/", next)

	mux := http.NewServeMux()
	mux.HandleFunc("GET "+loginPath, g.loginPage)
	mux.HandleFunc("POST "+loginPath, g.loginSubmit)
	mux.Handle("/", g.authenticate(authed))
	return g.sameSite.Handler(mux)
}

// sessionKey is the context key of the session a request came with.
type sessionKey struct{}

// sessionAuth is a request's session: its token (to end it) and state.
type sessionAuth struct {
	token string
	session
}

func sessionOf(r *http.Request) *sessionAuth {
	s, _ := r.Context().Value(sessionKey{}).(*sessionAuth)
	return s
}

// authenticate lets through a request with the admin's credentials:
// Basic first, as before sessions existed (a script's credentials are its
// own, whatever cookie jar it has), then the session cookie.
func (g *adminGate) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := r.BasicAuth(); ok {
			g.basic(next, w, r)
			return
		}
		c, err := r.Cookie(sessionCookie)
		if err != nil {
			g.challenge(w, r, "")
			return
		}
		sess, ok := g.sessions.check(c.Value, g.auth.AdminPasswordVersion())
		if !ok {
			clearSessionCookie(w, r)
			g.challenge(w, r, "Your session has ended: log in again.")
			return
		}
		// SameSite=Strict and the cross-origin check already keep other
		// sites out; the token also stops a same-site page (another app
		// on a sibling subdomain, an HTML file the admin uploaded) that
		// can send requests with the cookie but cannot read the token.
		if !safeMethod(r.Method) && !sess.validCSRF(csrfToken(r)) {
			g.log.Warn("admin request without the session's CSRF token refused", "remote", ClientIP(r), "path", r.URL.Path)
			writeError(w, http.StatusForbidden, "CSRF token missing or wrong: send the "+csrfHeader+" header with the csrfToken of GET "+sessionPath)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, &sessionAuth{c.Value, sess})))
	})
}

// safeMethod is a method that changes nothing, as CrossOriginProtection
// counts them.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// csrfToken is the CSRF token a request carries: the header, or for the
// logout form, which works without JavaScript, a form field.
func csrfToken(r *http.Request) string {
	if t := r.Header.Get(csrfHeader); t != "" {
		return t
	}
	if r.URL.Path == logoutPath && isForm(r) {
		r.Body = http.MaxBytesReader(nil, r.Body, maxLoginBody)
		return r.PostFormValue("csrf_token")
	}
	return ""
}

func isForm(r *http.Request) bool {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return ct == "application/x-www-form-urlencoded"
}

// basic checks HTTP Basic credentials, throttling failures per address.
func (g *adminGate) basic(next http.Handler, w http.ResponseWriter, r *http.Request) {
	user, pass, _ := r.BasicAuth()
	ip := ClientIP(r)
	give, ok := g.take(w, r, ip, r.URL.RequestURI())
	if !ok {
		return
	}
	if g.check(user, pass) {
		give()
		next.ServeHTTP(w, r)
		return
	}
	g.log.Warn("admin login failed", "remote", ip, "path", r.URL.Path)
	g.challenge(w, r, "Wrong user or password.")
}

// take spends one of the address's login attempts, or answers 429. The
// token is spent before the check, so that guesses sent at once cannot
// all slip in before the first one fails; give returns it on success.
func (g *adminGate) take(w http.ResponseWriter, r *http.Request, ip, next string) (give func(), ok bool) {
	give, wait := g.failures.Take(ip, time.Now())
	if wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		if isPage(r) && !isJSON(r) {
			g.page(w, http.StatusTooManyRequests, localPath(next), "Too many failed logins from your address: wait a minute before trying again.")
		} else {
			writeError(w, http.StatusTooManyRequests, "too many failed admin logins from your address: wait before trying again")
		}
		return nil, false
	}
	return give, true
}

func (g *adminGate) check(user, pass string) bool {
	return subtle.ConstantTimeCompare([]byte(user), []byte(AdminUser)) == 1 && g.auth.CheckAdminPassword(pass)
}

// isPage is a path of the admin panel, answered in HTML; the rest (the
// admin API, /metrics) is answered in JSON.
func isPage(r *http.Request) bool {
	return r.URL.Path == "/admin" || strings.HasPrefix(r.URL.Path, "/admin/")
}

// challenge answers 401. A page gets the login form, returning to it; the
// API gets its JSON error and a Basic challenge. Pages get no Basic
// challenge, or a browser would show its own password dialog over the
// form; scripts send Basic credentials without being asked.
func (g *adminGate) challenge(w http.ResponseWriter, r *http.Request, message string) {
	if isPage(r) {
		w.Header().Set("WWW-Authenticate", `Cookie realm="Starling admin", form-action="`+loginPath+`"`)
		next := r.URL.RequestURI()
		if r.URL.Path == "/admin" {
			next = panelPath
		}
		g.page(w, http.StatusUnauthorized, localPath(next), message)
		return
	}
	if fromPanel(r) {
		w.Header().Set("WWW-Authenticate", `Cookie realm="Starling admin", form-action="`+loginPath+`"`)
		writeError(w, http.StatusUnauthorized, "admin session missing or ended: log in again at "+loginPath)
		return
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="Starling admin", charset="UTF-8"`)
	writeError(w, http.StatusUnauthorized, "admin login required: user admin and the admin password")
}

// fromPanel is an API request a page's script sent (fetch), or one with a
// session cookie: a Basic challenge would put the browser's password
// dialog over the panel when its session ends. A script sends no
// Sec-Fetch-Mode, and a browser opening the API as a page sends
// "navigate": both get the challenge.
func fromPanel(r *http.Request) bool {
	if _, err := r.Cookie(sessionCookie); err == nil {
		return true
	}
	mode := r.Header.Get("Sec-Fetch-Mode")
	return mode != "" && mode != "navigate"
}

func isJSON(r *http.Request) bool {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return ct == "application/json"
}

type loginData struct {
	Next    string
	Message string
}

func (g *adminGate) page(w http.ResponseWriter, status int, next, message string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", g.loginCSP)
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	if err := g.login.Execute(w, loginData{Next: next, Message: message}); err != nil {
		g.log.Debug("write the login page", "err", err)
	}
}

// loginPage answers GET /admin/login: the form, or, for an admin already
// logged in, the page asked for.
func (g *adminGate) loginPage(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.URL.Query().Get("next"))
	if c, err := r.Cookie(sessionCookie); err == nil {
		if _, ok := g.sessions.check(c.Value, g.auth.AdminPasswordVersion()); ok {
			http.Redirect(w, r, next, http.StatusSeeOther)
			return
		}
	}
	g.page(w, http.StatusOK, next, "")
}

// loginSubmit answers POST /admin/login: a form (user, password, next),
// answered with a redirect, or JSON ({"user", "password"}) for scripts,
// answered with the session as GET /api/admin/session gives it.
func (g *adminGate) loginSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	var in struct {
		User     string `json:"user"`
		Password string `json:"password"`
		Next     string `json:"next"`
	}
	asJSON := isJSON(r)
	switch {
	case asJSON:
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			writeError(w, http.StatusBadRequest, "the login is not a JSON object: send {\"user\": \"admin\", \"password\": \"...\"}")
			return
		}
	case isForm(r):
		if err := r.ParseForm(); err != nil {
			g.page(w, http.StatusBadRequest, panelPath, "The form could not be read: try again.")
			return
		}
		in.User, in.Password, in.Next = r.PostFormValue("user"), r.PostFormValue("password"), r.PostFormValue("next")
	default:
		writeError(w, http.StatusUnsupportedMediaType, "send the login as a form (application/x-www-form-urlencoded) or as JSON (application/json)")
		return
	}
	if in.User == "" {
		in.User = AdminUser
	}
	next := localPath(in.Next)
	ip := ClientIP(r)
	give, ok := g.take(w, r, ip, next)
	if !ok {
		return
	}
	if !g.check(in.User, in.Password) {
		g.log.Warn("admin login failed", "remote", ip, "path", r.URL.Path)
		w.Header().Set("WWW-Authenticate", `Cookie realm="Starling admin", form-action="`+loginPath+`"`)
		if asJSON {
			writeError(w, http.StatusUnauthorized, "wrong user or password: the user is admin")
		} else {
			g.page(w, http.StatusUnauthorized, next, "Wrong user or password.")
		}
		return
	}
	give()
	token, sess := g.sessions.open(g.auth.AdminPasswordVersion())
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: token, Path: "/",
		MaxAge:   int(sessionLifetime / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: ForwardedProto(r) == "https",
	})
	g.log.Info("admin logged in", "remote", ip)
	if asJSON {
		writeSession(w, sess)
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout answers POST /admin/logout: the session ends. A form is sent to
// the login page; a script gets {"success": true}.
func (g *adminGate) logout(w http.ResponseWriter, r *http.Request) {
	if s := sessionOf(r); s != nil {
		g.sessions.end(s.token)
		g.log.Info("admin logged out", "remote", ClientIP(r))
	}
	clearSessionCookie(w, r)
	if isForm(r) {
		http.Redirect(w, r, loginPath, http.StatusSeeOther)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte(`{"success":true}` + "\n"))
}

// sessionInfo answers GET /api/admin/session: who is logged in and, for a
// session, its CSRF token and when it ends unless used.
func (g *adminGate) sessionInfo(w http.ResponseWriter, r *http.Request) {
	if s := sessionOf(r); s != nil {
		writeSession(w, s.session)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]string{"user": AdminUser})
}

func writeSession(w http.ResponseWriter, s session) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]string{
		"user": AdminUser, "csrfToken": s.csrf, "expiresAt": s.expires().UTC().Format(time.RFC3339),
	})
}

func clearSessionCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: ForwardedProto(r) == "https"})
}

// maxNextLength bounds the path a login returns to.
const maxNextLength = 2048

// localPath is next if it is a path on this server, else the panel: a
// login must not send the admin to another site ("open redirect"). A
// browser reads "//host" and "/\host" as another host, and drops tabs
// and newlines before it reads, so those are refused outright.
func localPath(next string) string {
	if next == "" || len(next) > maxNextLength || next[0] != '/' || strings.HasPrefix(next, "//") {
		return panelPath
	}
	if strings.ContainsFunc(next, func(c rune) bool { return c < 0x20 || c == 0x7f || c == '\\' }) {
		return panelPath
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") {
		return panelPath
	}
	return next
}

// writeError answers with the API's error shape.
func writeError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"success": false, "message": message})
}
