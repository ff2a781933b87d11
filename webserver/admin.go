package webserver

import (
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/time/rate"
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

// adminGate guards the admin API and pages. A request passes if it can
// be the admin's own (not a form or script on another site riding on
// credentials the browser cached) and carries the admin's credentials;
// failed logins are throttled per address.
type adminGate struct {
	log      *slog.Logger
	auth     adminAuth
	sameSite *http.CrossOriginProtection
	failures ipLimiter
}

func newAdminGate(log *slog.Logger, auth adminAuth) *adminGate {
	g := &adminGate{log: log, auth: auth, sameSite: http.NewCrossOriginProtection(),
		failures: newIPLimiter(rate.Every(loginInterval), loginBurst)}
	// Browsers say where a request comes from (Sec-Fetch-Site, Origin);
	// scripts with Basic auth send neither and pass.
	g.sameSite.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Warn("cross-site admin request refused", "remote", ClientIP(r), "path", r.URL.Path, "origin", r.Header.Get("Origin"))
		writeError(w, http.StatusForbidden, "cross-site request refused: change settings from the admin panel on this server, or from a script without a browser")
	}))
	return g
}

func (g *adminGate) wrap(next http.Handler) http.Handler {
	return g.sameSite.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok {
			g.challenge(w)
			return
		}
		ip := ClientIP(r)
		// The token is spent before the check, so that guesses sent at
		// once cannot all slip in before the first one fails.
		give, wait := g.failures.Take(ip, time.Now())
		if wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			writeError(w, http.StatusTooManyRequests, "too many failed admin logins from your address: wait before trying again")
			return
		}
		if subtle.ConstantTimeCompare([]byte(user), []byte(AdminUser)) == 1 && g.auth.CheckAdminPassword(pass) {
			give()
			next.ServeHTTP(w, r)
			return
		}
		g.log.Warn("admin login failed", "remote", ip, "path", r.URL.Path)
		g.challenge(w)
	}))
}

func (g *adminGate) challenge(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="Starling admin", charset="UTF-8"`)
	writeError(w, http.StatusUnauthorized, "admin login required: user admin and the admin password")
}

// writeError answers with the API's error shape.
func writeError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"success": false, "message": message})
}
