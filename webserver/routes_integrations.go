package webserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/starling-live/starling/chat"
	"github.com/starling-live/starling/controllers"
)

// tokenRoutes are the admin API's access token routes, Owncast's paths.
// They are admin routes: behind the admin gate only.
func tokenRoutes(h *controllers.Handlers) []route {
	f := func(pattern string, hf http.HandlerFunc) route { return route{pattern, hf} }
	return []route{
		f("GET /api/admin/accesstokens", h.AccessTokens),
		f("POST /api/admin/accesstokens/create", h.CreateAccessToken),
		f("POST /api/admin/accesstokens/delete", h.DeleteAccessToken),
	}
}

// integrationsPrefix is the integrations API: bots calling with an
// access token. Every path under it passes the bearer gate.
const integrationsPrefix = "/api/integrations/"

// integrationRoute is a route of the integrations API and the scope its
// token needs.
type integrationRoute struct {
	pattern string
	scope   string
	handler http.HandlerFunc
}

// integrationRoutes are Owncast's integrations API (router/router.go),
// each with the scope Owncast asks of it.
func integrationRoutes(h *controllers.Handlers) []integrationRoute {
	return []integrationRoute{
		{"POST /api/integrations/chat/send", chat.ScopeCanSendMessages, h.SendIntegrationChatMessage},
		// Deprecated in Owncast; posts as the bot, like /chat/send.
		{"POST /api/integrations/chat/user", chat.ScopeCanSendMessages, h.SendIntegrationChatMessage},
		{"POST /api/integrations/chat/system", chat.ScopeCanSendSystemMessages, h.SendIntegrationSystemMessage},
		{"POST /api/integrations/chat/system/client/{clientId}", chat.ScopeCanSendSystemMessages, h.SendIntegrationSystemMessageToClient},
		{"POST /api/integrations/chat/action", chat.ScopeCanSendSystemMessages, h.SendIntegrationChatAction},
		{"POST /api/integrations/chat/messagevisibility", chat.ScopeHasAdminAccess, h.SetMessageVisibility},
		{"POST /api/integrations/streamtitle", chat.ScopeHasAdminAccess, h.IntegrationSetStreamTitle},
		{"GET /api/integrations/chat", chat.ScopeHasAdminAccess, h.IntegrationChatHistory},
		{"GET /api/integrations/clients", chat.ScopeHasAdminAccess, h.ChatClients},
	}
}

type botAuth interface {
	Authenticate(ctx context.Context, token string) (*chat.Bot, error)
}

// integrationsHandler serves the integrations API: one gate for every
// path under the prefix, known or not, so that an unknown path answers
// 401 before 404; then each route checks its scope (403).
func integrationsHandler(log *slog.Logger, auth botAuth, h *controllers.Handlers) http.Handler {
	mux := http.NewServeMux()
	for _, r := range integrationRoutes(h) {
		mux.Handle(r.pattern, requireScope(r.scope, r.handler))
	}
	mux.HandleFunc("/", apiNotFound)
	return &bearerGate{log: log, auth: auth, next: mux}
}

// bearerGate lets in requests with a bot's access token, sent as
// "Authorization: Bearer TOKEN" (RFC 6750 section 2.1; the scheme in any
// case, as Owncast takes it).
//
// Any origin may call (CORS "*"): overlays and bots run in browsers. That
// is safe here as it would not be on the admin API, because the token is
// a header the calling script must add itself; a browser never attaches
// it on its own, as it does cookies and cached Basic credentials, so a
// page elsewhere cannot act with a viewer's or the admin's rights.
type bearerGate struct {
	log  *slog.Logger
	auth botAuth
	next http.Handler
}

func (g *bearerGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "X-Request-Id, Retry-After")
	if r.Method == http.MethodOptions {
		// A preflight carries no token: it asks whether the real request
		// may be sent.
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	token, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok || g.auth == nil {
		g.refuse(w, r, "an access token is required: send the header \"Authorization: Bearer TOKEN\" with a token an admin created (POST /api/admin/accesstokens/create)")
		return
	}
	bot, err := g.auth.Authenticate(r.Context(), token)
	switch {
	case errors.Is(err, chat.ErrUnknownToken):
		g.refuse(w, r, "unknown access token: it may have been deleted; ask an admin for a new one")
		return
	case errors.Is(err, chat.ErrBotDisabled):
		writeError(w, http.StatusForbidden, err.Error())
		return
	case err != nil:
		g.log.Error("cannot check an access token", "path", r.URL.Path, "err", err, "request_id", RequestID(r.Context()))
		writeError(w, http.StatusInternalServerError, "internal error; the server log has details")
		return
	}
	// Bodies are JSON whatever the header says, as in Owncast, whose bots
	// often send none, and fetch() sends text/plain. The JSON content type
	// that controllers otherwise require keeps forms on other sites from
	// riding on a browser's credentials; a bearer token is none of those.
	if ct := r.Header.Get("Content-Type"); ct == "" || strings.HasPrefix(strings.ToLower(ct), "text/plain") {
		r = r.Clone(r.Context())
		r.Header.Set("Content-Type", "application/json")
	}
	g.next.ServeHTTP(w, r.WithContext(controllers.WithBot(r.Context(), bot)))
}

func (g *bearerGate) refuse(w http.ResponseWriter, r *http.Request, message string) {
	// The token is never logged: the path and the address say enough.
	g.log.Info("integration request refused", "remote", ClientIP(r), "path", r.URL.Path, "request_id", RequestID(r.Context()))
	w.Header().Set("WWW-Authenticate", `Bearer realm="Starling integrations"`)
	writeError(w, http.StatusUnauthorized, message)
}

// bearerToken returns the token of an Authorization header of the Bearer
// scheme.
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// requireScope lets through requests whose bot's token has the scope.
func requireScope(scope string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b := controllers.BotFrom(r.Context()); b == nil || !b.HasScope(scope) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("this access token lacks the %s scope that %s needs: an admin can create a token with it", scope, r.URL.Path))
			return
		}
		next.ServeHTTP(w, r)
	})
}
