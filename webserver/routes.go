package webserver

import (
	"net/http"
	"slices"

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
	var config []route
	for _, st := range h.ConfigSetters() {
		config = append(config, f("POST /api/admin/config/"+st.Path, st.Handler))
	}
	return slices.Concat(config, []route{
		f("GET /api/admin/status", h.AdminStatus),
		f("GET /api/admin/serverconfig", h.ServerConfig),
		f("GET /api/admin/viewersOverTime", h.ViewersOverTime),
		f("GET /api/admin/timeline", h.Timeline),
		f("POST /api/admin/preview/markdown", h.PreviewMarkdown),
		f("POST /api/admin/disconnect", h.Disconnect),
		f("POST /api/admin/storage/test", h.TestS3),
		f("GET /api/admin/update/options", h.UpdateOptions),
		f("POST /api/admin/update/start", h.NoSelfUpdate),
		f("POST /api/admin/update/forcequit", h.NoSelfUpdate),
		f("GET /api/admin/logs", h.Logs),
		f("GET /api/admin/logs/warnings", h.LogWarnings),
		f("GET /api/admin/hardwarestats", h.HardwareStats),
		f("GET /api/admin/viewers", h.ActiveViewers),
		{"GET /api/admin/prometheus", h.Metrics()},
		f("POST /api/admin/emoji/upload", h.UploadEmoji),
		f("POST /api/admin/emoji/delete", h.DeleteEmoji),
		{"GET /metrics", h.Metrics()},

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

		{"GET /api/admin/followers", h.Followers()},
		{"GET /api/admin/followers/pending", h.FollowRequests()},
		{"GET /api/admin/followers/blocked", h.BlockedFollowers()},
		f("POST /api/admin/followers/approve", h.ApproveFollower),
		f("POST /api/admin/federation/send", h.SendFederatedPost),
		f("GET /api/admin/federation/actions", h.FederatedActions),
		f("GET /api/admin/federation/posts", h.FederatedPosts),
	}, webhookRoutes(h), tokenRoutes(h))
}
