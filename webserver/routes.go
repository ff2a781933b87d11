package webserver

import (
	"net/http"

	"github.com/starling-live/starling/controllers"
)

// route is one path of the API, as http.ServeMux takes it.
type route struct {
	pattern string // "METHOD /path"
	handler http.Handler
}

// adminPrefixes are the paths behind the admin gate, everything under
// them included: the admin API, the admin panel and the metrics.
var adminPrefixes = []string{"/api/admin/", "/admin", "/admin/", "/metrics"}

// adminRoutes are the admin API's routes (Owncast's paths, HTTP Basic
// with user admin). They are served behind the admin gate only.
func adminRoutes(h *controllers.Handlers) []route {
	f := func(pattern string, hf http.HandlerFunc) route { return route{pattern, hf} }
	return []route{
		f("GET /api/admin/status", h.AdminStatus),
		f("GET /api/admin/serverconfig", h.ServerConfig),
		f("GET /api/admin/viewersOverTime", h.ViewersOverTime),
		{"GET /metrics", h.Metrics()},

		f("POST /api/admin/config/streamtitle", h.SetStreamTitle()),
		f("POST /api/admin/config/name", h.SetName()),
		f("POST /api/admin/config/serversummary", h.SetSummary()),
		f("POST /api/admin/config/offlinemessage", h.SetOfflineMessage()),
		f("POST /api/admin/config/video/streamoutputvariants", h.SetVideoVariants),
		f("POST /api/admin/config/streamkeys", h.SetStreamKeys),
		f("POST /api/admin/config/video/segments", h.SetSegments),
		f("POST /api/admin/config/p2p", h.SetP2P),

		f("GET /api/admin/chat/messages", h.ChatMessages),
		f("GET /api/admin/chat/clients", h.ChatClients),
		f("POST /api/admin/chat/messagevisibility", h.SetMessageVisibility),
		f("POST /api/admin/chat/send", h.SendChatSystemMessage),
		f("POST /api/admin/chat/users/setenabled", h.SetChatUserEnabled),
		f("POST /api/admin/chat/users/setmoderator", h.SetChatModerator),
		f("GET /api/admin/chat/users/disabled", h.DisabledChatUsers),
		f("GET /api/admin/chat/users/moderators", h.ChatModerators),
		f("GET /api/admin/chat/users/ipbans", h.IPBans),
		f("POST /api/admin/chat/users/ipbans/create", h.BanIP),
		f("POST /api/admin/chat/users/ipbans/remove", h.UnbanIP),
		f("POST /api/admin/config/chat/disable", h.SetChatDisabled()),
		f("POST /api/admin/config/chat/liveonly", h.SetChatLiveOnly()),
		f("POST /api/admin/config/chat/joinmessagesenabled", h.SetChatJoinMessages()),
		f("POST /api/admin/config/chat/forbiddenusernames", h.SetForbiddenNames()),
		f("POST /api/admin/config/chat/suggestedusernames", h.SetSuggestedNames()),
	}
}
