package webserver

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"
)

// An admin session ends after sessionIdle without a request, and in any
// case sessionLifetime after the login: a panel left open on a shared
// machine overnight asks for the password again the next day, and a
// stolen cookie is worth a week at most. The browser keeps the cookie for
// sessionLifetime; the server decides.
const (
	sessionIdle     = 12 * time.Hour
	sessionLifetime = 7 * 24 * time.Hour
)

// maxSessions bounds the sessions kept: only the admin opens them, and
// one who logs in from every device they own stays far below it. Beyond
// it the least recently used one ends.
const maxSessions = 64

// sessionCookie is the cookie holding an admin session's token.
const sessionCookie = "starling_admin"

// tokenBytes is the size of session and CSRF tokens: 256 bits.
const tokenBytes = 32

// session is an admin login the server keeps.
type session struct {
	// csrf is the token state-changing requests of the session must
	// carry; the panel reads it from GET /api/admin/session.
	csrf    string
	created time.Time
	seen    time.Time
	// password is the AdminPasswordVersion the session was opened under:
	// a session outlives no password change.
	password string
}

// expires is when the session ends if no request comes before.
func (s session) expires() time.Time {
	idle, end := s.seen.Add(sessionIdle), s.created.Add(sessionLifetime)
	if idle.Before(end) {
		return idle
	}
	return end
}

// sessions are the admin's open sessions, in memory: a restart logs the
// admin out. Only a SHA-256 of each token is kept, so what a memory dump
// or a debugger shows does not log anyone in.
type sessions struct {
	now func() time.Time

	// mu guards byHash.
	mu     sync.Mutex
	byHash map[[sha256.Size]byte]*session
}

func newSessions() *sessions {
	return &sessions{now: time.Now, byHash: map[[sha256.Size]byte]*session{}}
}

// newToken is tokenBytes of crypto/rand, in base64url without padding.
func newToken() string {
	b := make([]byte, tokenBytes)
	rand.Read(b) // never returns an error (crypto/rand's doc)
	return base64.RawURLEncoding.EncodeToString(b)
}

// open starts a session under the password version given, returning its
// token (for the cookie only) and the session.
func (s *sessions) open(password string) (string, session) {
	token := newToken()
	now := s.now()
	sess := &session{csrf: newToken(), created: now, seen: now, password: password}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byHash) >= maxSessions {
		s.pruneLocked(now)
	}
	for len(s.byHash) >= maxSessions {
		var oldest [sha256.Size]byte
		var seen time.Time
		for h, o := range s.byHash {
			if seen.IsZero() || o.seen.Before(seen) {
				oldest, seen = h, o.seen
			}
		}
		delete(s.byHash, oldest)
	}
	s.byHash[sha256.Sum256([]byte(token))] = sess
	return token, *sess
}

// check returns the session of token if it is open, unexpired and opened
// under the password version given, and counts the request as activity.
// A session that fails for expiry or the password ends.
func (s *sessions) check(token, password string) (session, bool) {
	if len(token) != base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return session{}, false
	}
	h := sha256.Sum256([]byte(token))
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.byHash[h]
	if sess == nil {
		return session{}, false
	}
	if !now.Before(sess.expires()) || subtle.ConstantTimeCompare([]byte(sess.password), []byte(password)) != 1 {
		delete(s.byHash, h)
		return session{}, false
	}
	sess.seen = now
	return *sess, true
}

// end closes the session of token, if open.
func (s *sessions) end(token string) {
	h := sha256.Sum256([]byte(token))
	s.mu.Lock()
	delete(s.byHash, h)
	s.mu.Unlock()
}

// pruneLocked drops expired sessions; s.mu is held.
func (s *sessions) pruneLocked(now time.Time) {
	for h, o := range s.byHash {
		if !now.Before(o.expires()) {
			delete(s.byHash, h)
		}
	}
}

// validCSRF reports, in time that does not depend on how much matched,
// whether got is the session's CSRF token.
func (s session) validCSRF(got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}
