package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// TestAdminSessionLoginInChromium: a deep link to the panel without a
// session gets the login page with status 401; a wrong password gets it
// again; the right one lands on the deep link with an HttpOnly,
// SameSite=Strict cookie. From the page, a POST with the cookie but
// without the CSRF token is refused and changes nothing; with the token
// from GET /api/admin/session it sets the server name, which the public
// config then shows. Logging out ends the session. Nothing secret is
// logged, and the login page breaks no CSP rule.
func TestAdminSessionLoginInChromium(t *testing.T) {
	s := startServer(t)
	b := newBrowser(t)
	deepLink := s.URL + "/admin/config/video"

	resp := b.response(chromedp.Navigate(deepLink))
	if resp.Status != http.StatusUnauthorized {
		t.Fatalf("the deep link without a session: %d, want 401", resp.Status)
	}
	var next string
	b.eval(`document.querySelector('form[action="/admin/login"] input[name=next]').value`, &next)
	if next != "/admin/config/video" {
		t.Errorf("the login form returns to %q, want the deep link", next)
	}
	// The page's one style applies under its CSP (allowed by hash).
	var button string
	b.eval(`getComputedStyle(document.querySelector('button[type=submit]')).backgroundColor`, &button)
	if button != "rgb(91, 60, 196)" {
		t.Errorf("the login button's colour is %q: the page's style is blocked", button)
	}

	b.run(chromedp.SendKeys("#password", "not-the-password", chromedp.ByID))
	resp = b.response(chromedp.Click(`button[type=submit]`, chromedp.ByQuery))
	var text string
	b.eval(`document.body.innerText`, &text)
	if resp.Status != http.StatusUnauthorized || !strings.Contains(text, "Wrong user or password") {
		t.Fatalf("a wrong password: %d %s", resp.Status, text)
	}

	b.run(chromedp.SendKeys("#password", testAdminPassword, chromedp.ByID))
	resp = b.response(chromedp.Click(`button[type=submit]`, chromedp.ByQuery))
	var href string
	b.eval(`location.href`, &href)
	// The panel answers 404 until it exists; what matters is that the
	// login passed and returned to the deep link.
	if href != deepLink || resp.Status == http.StatusUnauthorized || resp.Status >= 500 {
		t.Fatalf("after login: %d at %s, want the deep link %s", resp.Status, href, deepLink)
	}
	var cookies []*network.Cookie
	b.run(chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		cookies, err = network.GetCookies().Do(ctx)
		return err
	}))
	var session *network.Cookie
	for _, c := range cookies {
		if c.Name == "starling_admin" {
			session = c
		}
	}
	if session == nil || !session.HTTPOnly || session.SameSite != network.CookieSameSiteStrict || session.Path != "/" || session.Secure {
		t.Fatalf("the session cookie in Chromium: %+v", session)
	}
	var jsCookies string
	b.eval(`document.cookie`, &jsCookies)
	if strings.Contains(jsCookies, session.Value) {
		t.Error("the page's scripts can read the session cookie")
	}

	await := func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }
	var status int
	b.run(chromedp.Evaluate(`fetch("/api/admin/config/name", {method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify({value: "Set without the token"})}).then(r => r.status)`, &status, await))
	if status != http.StatusForbidden {
		t.Errorf("a POST with the cookie and no CSRF token: %d, want 403", status)
	}
	if name := s.configName(); name == "Set without the token" {
		t.Fatal("a POST without the CSRF token changed the name")
	}

	var csrf string
	b.run(chromedp.Evaluate(`fetch("/api/admin/session").then(r => r.json()).then(s => s.csrfToken)`, &csrf, await))
	if len(csrf) != 43 {
		t.Fatalf("GET /api/admin/session gave the CSRF token %q", csrf)
	}
	b.run(chromedp.Evaluate(`fetch("/api/admin/config/name", {method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": "`+csrf+`"},
		body: JSON.stringify({value: "Named from the panel"})}).then(r => r.status)`, &status, await))
	if status != http.StatusOK {
		t.Errorf("a POST with the cookie and the CSRF token: %d, want 200", status)
	}
	if name := s.configName(); name != "Named from the panel" {
		t.Errorf("GET /api/config says the name is %q", name)
	}

	b.run(chromedp.Evaluate(`fetch("/admin/logout", {method: "POST", headers: {"X-CSRF-Token": "`+csrf+`"}}).then(r => r.status)`, &status, await))
	if status != http.StatusOK {
		t.Errorf("logout: %d", status)
	}
	if resp := b.response(chromedp.Navigate(s.URL + "/admin/")); resp.Status != http.StatusUnauthorized {
		t.Errorf("the panel after logout: %d, want 401", resp.Status)
	}

	logs := s.logs.String()
	for what, secret := range map[string]string{"the admin password": testAdminPassword, "the session token": session.Value, "the CSRF token": csrf} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %s", what)
		}
	}
	if !strings.Contains(logs, "admin login failed") || !strings.Contains(logs, "admin logged in") {
		t.Error("the failed and the good login are not both logged")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		if strings.Contains(p, "Content Security Policy") || strings.Contains(p, "exception") {
			t.Errorf("the page reported: %s", p)
		}
	}
}

// response runs actions that navigate and returns the response to the
// document they lead to, after redirects.
func (b *browser) response(actions ...chromedp.Action) *network.Response {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, actions...)
	if err != nil {
		b.t.Fatalf("browser: %v", err)
	}
	return resp
}

// configName is the server name the public config shows.
func (s *testServer) configName() string {
	s.t.Helper()
	var cfg struct {
		Name string `json:"name"`
	}
	s.getJSON("/api/config", &cfg)
	return cfg.Name
}
