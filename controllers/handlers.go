// Package controllers holds the HTTP handlers of the public, admin and
// integrations APIs. Paths and JSON field names follow Owncast's API
// (owncast/owncast openapi.yaml) so that Owncast tools keep working.
package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/data"
)

type streamStatus interface{ Status() core.Status }

type settingsStore interface {
	Get() *core.Settings
	Update(context.Context, func(*core.Settings) error) (*core.Settings, error)
}

// Deps are what the handlers need.
type Deps struct {
	Logger   *slog.Logger
	Stream   streamStatus
	Settings settingsStore
	Keys     secrets
	// Version is reported as versionNumber.
	Version string
	// FFmpeg is the ffmpeg executable, shown to admins.
	FFmpeg   string
	Playback playbackStats
	Tracker  trackerStats
	// P2PDisabled turns P2P off for this run, whatever the settings say.
	P2PDisabled bool
	Chat        chatService
	Viewers     viewerHistory
	Health      broadcast
	// Bots are the integrations' access tokens (tokens.go).
	Bots botService
	// Webhooks are the outbound webhooks (core/webhooks).
	Webhooks webhookService
	// Federation is the fediverse actor (activitypub).
	Federation federation
	// Timeline is the last hour of the live figures; Output what each
	// rendition puts out now.
	Timeline liveTimeline
	Output   renditionOutput
	// ClientIP names the client behind any trusted proxy.
	ClientIP func(*http.Request) string
	// ForwardedUser is the user a trusted proxy signed in, or "".
	ForwardedUser func(*http.Request) string
	// RequestID is the id the web server gave the request, for the log.
	RequestID func(context.Context) string
	// Uploads hold what the admin uploads: the logo.
	Uploads uploads
	// RenderPage turns the page content's Markdown into safe HTML.
	RenderPage func(string) string
	// DefaultLogo is served while none is uploaded.
	DefaultLogo []byte
	// Codecs are the H.264 encoders this ffmpeg has.
	Codecs []string
	// Logs are the latest log lines; Hardware the machine's use.
	Logs     logRing
	Hardware hardwareStats
	// Storage is the current broadcast's storage; S3Test checks S3
	// settings before they are saved.
	Storage storageState
	S3Test  s3Tester
}

// broadcast is the live broadcast: its health, and the kick.
type broadcast interface {
	Health() core.StreamHealth
	Disconnect() bool
}

type viewerHistory interface {
	Peaks() (session, overall int)
	OverTime(ctx context.Context, since time.Time) ([]data.ViewerSample, error)
}

// Handlers are the API's handlers.
type Handlers struct {
	log  *slog.Logger
	deps Deps
}

// New returns the handlers.
func New(d Deps) *Handlers { return &Handlers{log: d.Logger, deps: d} }

// apiError is an error with a message safe to show the caller and the
// HTTP status to send; the cause is logged, never sent.
type apiError struct {
	status  int
	message string
	cause   error
}

func (e *apiError) Error() string { return fmt.Sprintf("%s: %v", e.message, e.cause) }
func (e *apiError) Unwrap() error { return e.cause }

// invalid is a 400 with a message the handler wrote about the request:
// only such messages, and validation errors of core, reach the client.
func invalid(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &apiError{status: http.StatusBadRequest, message: err.Error(), cause: err}
}

// writeError answers with Owncast's error shape, {"success":false,
// "message":...}. Errors that are not apiErrors are internal: the caller
// gets a generic message and the log gets the cause.
func (h *Handlers) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.Is(err, core.ErrInvalidSettings) {
		// The admin's to fix: say exactly what.
		ae = &apiError{status: http.StatusBadRequest, message: err.Error(), cause: err}
	} else if !errors.As(err, &ae) {
		ae = &apiError{status: http.StatusInternalServerError, message: "internal error; the server log has details", cause: err}
	}
	if ae.status >= 500 {
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", ae.cause, "request_id", h.requestID(r))
	}
	writeJSON(w, ae.status, map[string]any{"success": false, "message": ae.message})
}

func (h *Handlers) requestID(r *http.Request) string {
	if h.deps.RequestID == nil {
		return ""
	}
	return h.deps.RequestID(r.Context())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// readJSON decodes a JSON request body of at most 1 MiB into v. The
// content type must say JSON: a form on another site can send text/plain
// or form data without the browser asking this server first (CORS), but
// never application/json.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if !isJSON(r.Header.Get("Content-Type")) {
		return &apiError{status: http.StatusUnsupportedMediaType,
			message: `send the body as JSON, with the header "Content-Type: application/json"`,
			cause:   fmt.Errorf("content type %q", r.Header.Get("Content-Type"))}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(v); err != nil {
		return invalid("the request body is not the JSON expected (%v): see the API documentation", err)
	}
	return nil
}

func isJSON(contentType string) bool {
	t, _, err := mime.ParseMediaType(contentType)
	return err == nil && (t == "application/json" || strings.HasSuffix(t, "+json"))
}

// readValue decodes the body of Owncast's POST /api/admin/config/...
// calls, {"value": ...}. A body without "value" (a typo in the name) or
// with null is refused: either would otherwise clear the setting.
func readValue[T any](w http.ResponseWriter, r *http.Request) (T, error) {
	var (
		req struct {
			Value json.RawMessage `json:"value"`
		}
		v T
	)
	if err := readJSON(w, r, &req); err != nil {
		return v, err
	}
	switch string(req.Value) {
	case "":
		return v, invalid(`the body has no "value": send {"value": ...}`)
	case "null":
		return v, invalid(`"value" is null: send the new value ("" or [] to clear a setting)`)
	}
	// A field the setting does not have is refused by name: a typo must
	// not be dropped silently.
	dec := json.NewDecoder(bytes.NewReader(req.Value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, invalid(`"value" is not what this setting takes (%v): see the API documentation`, err)
	}
	return v, nil
}

// timePtr formats a time as RFC 3339 in UTC, or null.
func timePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := t.UTC().Format(time.RFC3339)
	return &s
}
