package webserver

import (
	"net/http"

	"github.com/starling-live/starling/controllers"
)

// webhookRoutes are the admin API's webhook routes, Owncast's paths. They
// are admin routes: behind the admin gate only.
func webhookRoutes(h *controllers.Handlers) []route {
	f := func(pattern string, hf http.HandlerFunc) route { return route{pattern, hf} }
	return []route{
		f("GET /api/admin/webhooks", h.Webhooks),
		f("POST /api/admin/webhooks/create", h.CreateWebhook),
		f("POST /api/admin/webhooks/delete", h.DeleteWebhook),
	}
}
