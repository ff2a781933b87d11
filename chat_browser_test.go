package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/starling-live/starling/chat"
	"github.com/starling-live/starling/core/testrig"
)

// The viewer page's chat panel (build/web/src/chat.js) in headless
// Chromium, against a fully wired server. Each page runs in its own
// Chromium process with its own profile, so each is a different chat user.
// The Go chat clients are chat_test.go's.

// chatSnapshot is what the page reports of its chat (window.starling.chat).
type chatSnapshot struct {
	State string `json:"state"`
	User  *struct {
		ID           string `json:"id"`
		DisplayName  string `json:"displayName"`
		DisplayColor int    `json:"displayColor"`
		Moderator    bool   `json:"moderator"`
	} `json:"user"`
	Moderator bool   `json:"moderator"`
	Enabled   bool   `json:"enabled"`
	Reason    string `json:"reason"`
	Messages  int    `json:"messages"`
}

func (b *browser) chat() chatSnapshot {
	b.t.Helper()
	var s chatSnapshot
	b.eval(`window.starling.chat`, &s)
	return s
}

// waitChat waits until the page's chat is in state want and returns it.
func (b *browser) waitChat(want string) chatSnapshot {
	b.t.Helper()
	var s chatSnapshot
	testrig.Eventually(b.t, 30*time.Second, "chat state "+want, func() (bool, string) {
		s = b.chat()
		return s.State == want && (want != "open" || s.User != nil), fmt.Sprintf("%+v", s)
	})
	return s
}

// openChatPage opens the viewer page in a new Chromium and waits until its
// chat is open.
func openChatPage(t *testing.T, s *testServer) (*browser, chatSnapshot) {
	t.Helper()
	b := newBrowser(t)
	b.run(chromedp.Navigate(s.URL + "/"))
	return b, b.waitChat("open")
}

// makeModerator gives a chat user the MODERATOR scope through the admin API.
func makeModerator(t *testing.T, s *testServer, userID string) {
	t.Helper()
	code, b := s.admin(http.MethodPost, "/api/admin/chat/users/setmoderator", map[string]any{"userId": userID, "isModerator": true})
	if code != http.StatusOK {
		t.Fatalf("setmoderator: %d %s", code, b)
	}
}

// TestChatPanelTwoPages: a message typed in one page shows in another
// page with the sender's name, and so does a name change.
func TestChatPanelTwoPages(t *testing.T) {
	s := startServer(t)
	p1, me1 := openChatPage(t, s)
	p2, me2 := openChatPage(t, s)
	if me1.User.ID == me2.User.ID {
		t.Fatalf("both pages are the same chat user %q", me1.User.ID)
	}
	if me1.Moderator || me2.Moderator {
		t.Error("a new viewer is a moderator")
	}

	const text = "Hello from page one <3"
	p1.run(chromedp.SendKeys("#chat-input", text+kb.Enter, chromedp.ByQuery))

	// msgIn finds the first message in a page whose body has the text, and
	// returns its author as shown.
	msgIn := func(b *browser, text string) (author string, count int) {
		var r struct {
			Author string `json:"author"`
			Count  int    `json:"count"`
		}
		b.eval(fmt.Sprintf(`(() => {
			const rows = [...document.querySelectorAll('#chat-log .chat-msg:not([hidden])')]
				.filter((r) => r.querySelector('.chat-body').textContent === %q);
			return {author: rows.length ? rows[0].querySelector('.chat-author').textContent : '', count: rows.length};
		})()`, text), &r)
		return r.Author, r.Count
	}
	testrig.Eventually(t, 10*time.Second, "the message in page 2", func() (bool, string) {
		author, n := msgIn(p2, text)
		return n == 1 && author == me1.User.DisplayName, fmt.Sprintf("%d rows, author %q", n, author)
	})
	if author, n := msgIn(p1, text); n != 1 || author != me1.User.DisplayName {
		t.Errorf("page 1 shows its own message %d times, by %q", n, author)
	}
	var typed string
	p1.eval(`document.getElementById('chat-input').value`, &typed)
	if typed != "" {
		t.Errorf("the input still holds %q after sending", typed)
	}

	// Page 1 renames itself through the name form, which opens with the
	// current name selected: typing replaces it.
	const newName = "Renamed Heron"
	p1.run(
		chromedp.Click("#chat-name-button", chromedp.ByQuery),
		chromedp.WaitVisible("#chat-name-input", chromedp.ByQuery),
	)
	testrig.Eventually(t, 5*time.Second, "the name field focused with the name selected", func() (bool, string) {
		var sel string
		p1.eval(`(() => { const i = document.activeElement; return i && i.id === 'chat-name-input' ? i.value.slice(i.selectionStart, i.selectionEnd) : 'focus on ' + (i && i.id); })()`, &sel)
		return sel == me1.User.DisplayName, sel
	})
	p1.run(chromedp.KeyEvent(newName + kb.Enter))
	want := me1.User.DisplayName + " is now " + newName
	testrig.Eventually(t, 10*time.Second, "the name change in page 2", func() (bool, string) {
		var lines []string
		p2.eval(`[...document.querySelectorAll('#chat-log .chat-line-rename')].map((r) => r.textContent)`, &lines)
		for _, l := range lines {
			if l == want {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%q", lines)
	})
	testrig.Eventually(t, 10*time.Second, "page 1 to know its new name", func() (bool, string) {
		var shown string
		p1.eval(`document.getElementById('chat-me-name').textContent`, &shown)
		st := p1.chat()
		return st.User.DisplayName == newName && shown == newName, fmt.Sprintf("%+v, shown %q", st.User, shown)
	})

	// The next message carries the new name.
	const text2 = "Same heron, new name"
	p1.run(chromedp.SendKeys("#chat-input", text2+kb.Enter, chromedp.ByQuery))
	testrig.Eventually(t, 10*time.Second, "the second message in page 2", func() (bool, string) {
		author, n := msgIn(p2, text2)
		return n == 1 && author == newName, fmt.Sprintf("%d rows, author %q", n, author)
	})
	p1.checkProblems()
	p2.checkProblems()
}

// TestChatXSSRenderedInert sends every payload of the XSS table as a chat
// message and checks that the page renders all of them as inert markup.
func TestChatXSSRenderedInert(t *testing.T) {
	raw, err := os.ReadFile("chat/format/testdata/xss.json")
	if err != nil {
		t.Fatalf("the XSS table: %v", err)
	}
	var rows []struct{ Name, Input string }
	if err := json.Unmarshal(raw, &rows); err != nil || len(rows) == 0 {
		t.Fatalf("chat/format/testdata/xss.json: %v (%d rows)", err, len(rows))
	}

	s := startServer(t)
	// The sender moderates, so the rate limit does not pace the table.
	sender := s.registerChat("XSS Table")
	makeModerator(t, s, sender.ID)
	c := s.joinChat(sender)

	b, _ := openChatPage(t, s)

	// Each row is either published (its CHAT comes back to the sender) or
	// refused (a CHAT_ACTION error, such as EMPTY_MESSAGE for a body that
	// was nothing but markup).
	for _, row := range rows {
		c.say(row.Input)
	}
	published := 0
	for range rows {
		ev := c.waitFor("the answer to every row", func(ev chatEvent) bool {
			return (ev.Type == chat.TypeChat && ev.User != nil && ev.User.ID == sender.ID) || (ev.Type == chat.TypeChatAction && ev.Error != "")
		})
		if ev.Type == chat.TypeChat {
			published++
		} else if ev.Error != chat.ErrCodeEmpty {
			t.Errorf("a row was refused with %s (%s)", ev.Error, ev.Body)
		}
	}
	t.Logf("%d of %d rows published", published, len(rows))
	if published == 0 {
		t.Fatal("no row was published")
	}

	check := func(want int) {
		t.Helper()
		testrig.Eventually(t, 20*time.Second, fmt.Sprintf("%d messages in the page", want), func() (bool, string) {
			n := b.chat().Messages
			return n == want, fmt.Sprint(n)
		})
		var r struct {
			XSS      string   `json:"xss"`
			Problems []string `json:"problems"`
		}
		const inspect = `(() => {
			const log = document.getElementById('chat-log');
			const problems = [];
			for (const tag of ['script', 'iframe', 'svg', 'img', 'object', 'embed', 'style', 'form',
					'math', 'link', 'meta', 'base', 'input', 'video', 'audio', 'source', 'details', 'frame']) {
				for (const el of log.querySelectorAll(tag)) problems.push('<' + tag + '> in ' + el.parentElement.outerHTML);
			}
			for (const el of log.querySelectorAll('*')) {
				for (const a of el.attributes) {
					if (a.name.toLowerCase().startsWith('on')) problems.push(a.name + ' on ' + el.outerHTML);
				}
			}
			for (const a of log.querySelectorAll('a[href]')) {
				if (!/^https?:\/\//i.test(a.getAttribute('href'))) problems.push('link to ' + a.getAttribute('href'));
			}
			return {xss: typeof window.__xss, problems};
		})()`
		b.eval(inspect, &r)
		for _, p := range r.Problems {
			t.Errorf("the chat list holds %s", p)
		}
		if r.XSS != "undefined" {
			t.Errorf("window.__xss is %s: a payload ran", r.XSS)
		}
		// A handler that slipped through would run on hover.
		var hovered int
		b.eval(`(() => {
			const all = document.querySelectorAll('#chat-log *');
			for (const el of all) el.dispatchEvent(new MouseEvent('mouseover', {bubbles: true, cancelable: true, view: window}));
			return all.length;
		})()`, &hovered)
		b.eval(inspect, &r)
		if r.XSS != "undefined" {
			t.Errorf("window.__xss is %s after hovering %d elements: a payload ran", r.XSS, hovered)
		}
	}

	// Live: the page was open while the rows came in.
	check(published)
	// History: a reload gets the most recent 50 messages on connect.
	b.run(chromedp.Reload())
	b.waitChat("open")
	check(min(published, 50))
	b.checkProblems()
}

// TestChatModeratorHides: a moderator's page hides another user's message
// with its Hide button; every client is told and the page drops it.
func TestChatModeratorHides(t *testing.T) {
	s := startServer(t)
	mod := s.registerChat("Mod Heron")
	makeModerator(t, s, mod.ID)

	// The moderator's token goes into the page's storage before the page
	// runs: set it from a document of the same origin that runs no chat
	// (else the page would register a user of its own meanwhile).
	b := newBrowser(t)
	b.run(
		chromedp.Navigate(s.URL+"/third-party-licenses.txt"),
		chromedp.Evaluate(fmt.Sprintf(`localStorage.setItem('starling.chat.token', %q)`, mod.AccessToken), nil),
		chromedp.Navigate(s.URL+"/"),
	)
	st := b.waitChat("open")
	if st.User.ID != mod.ID || !st.Moderator {
		t.Fatalf("the page is %+v, want moderator %s", st.User, mod.ID)
	}

	viewer := s.registerChat("Chatty Owl")
	c := s.joinChat(viewer)
	c.say("please hide me")
	msg := c.waitFor("the message's echo", isChat("please hide me"))

	row := fmt.Sprintf(`#chat-log .chat-msg[data-id=%q]`, msg.ID)
	var tools []string
	b.run(
		chromedp.WaitVisible(row, chromedp.ByQuery),
		chromedp.Evaluate(fmt.Sprintf(`[...document.querySelectorAll('%s button')].map((b) => b.getAttribute('aria-label'))`, row), &tools),
	)
	if len(tools) != 2 {
		t.Errorf("a moderator sees the tools %q on another user's message, want Hide and Disable", tools)
	}
	b.run(chromedp.Click(row+` button[data-action="hide"]`, chromedp.ByQuery))

	ev := c.waitFor("VISIBILITY-UPDATE", func(ev chatEvent) bool { return ev.Type == chat.TypeVisibilityUpdate })
	if len(ev.IDs) != 1 || ev.IDs[0] != msg.ID || ev.Visible == nil || *ev.Visible {
		t.Errorf("VISIBILITY-UPDATE ids %q visible %v, want [%s] false", ev.IDs, ev.Visible, msg.ID)
	}
	testrig.Eventually(t, 10*time.Second, "the message to leave the moderator's page", func() (bool, string) {
		var shown bool
		b.eval(fmt.Sprintf(`(() => { const r = document.querySelector('%s'); return Boolean(r && !r.hidden && r.offsetParent); })()`, row), &shown)
		n := b.chat().Messages
		return !shown && n == 0, fmt.Sprintf("shown %v, %d messages", shown, n)
	})
	b.checkProblems()
}

// TestChatPageStates: the page re-registers when its token is unknown,
// tells a viewer who sends too fast, shows when chat is off, and stops for
// good when its user is disabled.
func TestChatPageStates(t *testing.T) {
	s := startServer(t)
	b := newBrowser(t)
	b.run(
		chromedp.Navigate(s.URL+"/third-party-licenses.txt"),
		chromedp.Evaluate(`localStorage.setItem('starling.chat.token', 'not-a-token-this-server-knows')`, nil),
		chromedp.Navigate(s.URL+"/"),
	)
	me := b.waitChat("open")
	var token string
	b.eval(`localStorage.getItem('starling.chat.token')`, &token)
	if token == "" || token == "not-a-token-this-server-knows" {
		t.Errorf("after ERROR_NEEDS_REGISTRATION the page keeps the token %q", token)
	}

	// Sent faster than 2 a second with bursts of 5: some are refused, and
	// the last one's text goes back into the input. The twelve go out in
	// one go, as a viewer's paste-and-Enter would, so that a slow machine
	// typing them key by key cannot stay under the limit.
	b.run(chromedp.Evaluate(`(() => {
		const form = document.getElementById('chat-form'), input = document.getElementById('chat-input');
		for (let i = 1; i <= 12; i++) { input.value = 'm' + i; form.requestSubmit(); }
	})()`, nil))
	testrig.Eventually(t, 10*time.Second, "the rate limit notice", func() (bool, string) {
		var r struct {
			Notice string `json:"notice"`
			Hidden bool   `json:"hidden"`
			Input  string `json:"input"`
		}
		b.eval(`(() => { const n = document.getElementById('chat-notice'); return {notice: n.textContent, hidden: n.hidden, input: document.getElementById('chat-input').value}; })()`, &r)
		return !r.Hidden && r.Notice == "You're sending messages too fast — wait a moment." && strings.HasPrefix(r.Input, "m"), fmt.Sprintf("%+v", r)
	})

	// The admin turns chat off, then on.
	if code, body := s.admin(http.MethodPost, "/api/admin/config/chat/disable", map[string]bool{"value": true}); code != http.StatusOK {
		t.Fatalf("disable chat: %d %s", code, body)
	}
	off := b.waitChat("off")
	var ui struct {
		Disabled bool   `json:"disabled"`
		Banner   string `json:"banner"`
	}
	b.eval(`({disabled: document.getElementById('chat-input').disabled, banner: document.getElementById('chat-banner').hidden ? '' : document.getElementById('chat-banner').textContent})`, &ui)
	if !ui.Disabled || !strings.Contains(ui.Banner, "Chat is off") || (off.Reason != "" && !strings.Contains(ui.Banner, off.Reason)) {
		t.Errorf("with chat off the input is disabled=%v and the banner says %q (reason %q)", ui.Disabled, ui.Banner, off.Reason)
	}
	if code, body := s.admin(http.MethodPost, "/api/admin/config/chat/disable", map[string]bool{"value": false}); code != http.StatusOK {
		t.Fatalf("enable chat: %d %s", code, body)
	}
	b.waitChat("open")

	// A moderator disables this viewer: the page says so and stays down,
	// also after a reload.
	if code, body := s.admin(http.MethodPost, "/api/admin/chat/users/setenabled", map[string]any{"userId": me.User.ID, "enabled": false}); code != http.StatusOK {
		t.Fatalf("disable user: %d %s", code, body)
	}
	for _, reload := range []bool{false, true} {
		if reload {
			b.run(chromedp.Reload())
		}
		b.waitChat("disabled")
		b.eval(`({disabled: document.getElementById('chat-input').disabled, banner: document.getElementById('chat-banner').hidden ? '' : document.getElementById('chat-banner').textContent})`, &ui)
		if !ui.Disabled || !strings.Contains(ui.Banner, "You can't chat here any more") {
			t.Errorf("disabled (reload %v): the input is disabled=%v and the banner says %q", reload, ui.Disabled, ui.Banner)
		}
	}
	b.eval(`localStorage.getItem('starling.chat.token')`, &token)
	if token == "" {
		t.Error("a disabled user's page dropped its token (and would come back as a new user)")
	}
	b.checkProblems()
}
