package main

// Attacks on the web server and the admin API, each of which worked
// before the limits: slow bodies holding every descriptor, login guessing,
// and setting bodies that cleared what they did not name.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starling-live/starling/chat"
	"github.com/starling-live/starling/core/testrig"
	"github.com/starling-live/starling/webserver"
)

// clientFrom is an HTTP client whose connections come from one loopback
// address.
func clientFrom(from string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

// TestSlowBodiesCannotHoldTheServer: one address opening many POSTs and
// sending their bodies a byte at a time gets its share of connections and
// no more, each for a bounded time, while others are served.
func TestSlowBodiesCannotHoldTheServer(t *testing.T) {
	const (
		perIP = 16
		slow  = 40
	)
	s := startServer(t, func(c *config) {
		c.TrustedProxies = nil // loopback clients are clients here
		c.HTTPLimits = webserver.Limits{MaxConnsPerIP: perIP, BodyTimeout: 2 * time.Second}
	})
	addr := s.app.httpLn.Addr().String()

	type answer struct {
		status string
		closed bool
	}
	answers := make([]answer, slow)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range slow {
		c := testrig.DialFrom(t, "127.0.0.2", addr)
		fmt.Fprintf(c, "POST /api/metrics/playback HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", addr)
		wg.Add(2)
		go func() { // a byte every half second
			defer wg.Done()
			tick := time.NewTicker(500 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := c.Write([]byte(" ")); err != nil {
						return
					}
				}
			}
		}()
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(60 * time.Second))
			r := bufio.NewReader(c)
			line, _ := r.ReadString('\n')
			io.Copy(io.Discard, r)
			var ne net.Error
			_, err := c.Read(make([]byte, 1))
			answers[i] = answer{status: strings.TrimSpace(line), closed: !(errorAs(err, &ne) && ne.Timeout())}
		}()
	}

	// Meanwhile another address is served.
	resp, err := clientFrom("127.0.0.3").Get(s.URL + "/api/status")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("another address during the attack: %v %v", resp, err)
	}
	resp.Body.Close()

	wg.Wait()
	close(stop)
	refused, cut := 0, 0
	for i, a := range answers {
		switch {
		case strings.Contains(a.status, "503"):
			refused++
		case a.closed && a.status != "":
			cut++ // answered (the body never came in time) and closed
		default:
			t.Errorf("slow POST %d: %+v, want a refusal or an answer and a closed connection", i, a)
		}
	}
	if refused != slow-perIP || cut != perIP {
		t.Errorf("%d slow POSTs refused and %d cut off, want %d and %d", refused, cut, slow-perIP, perIP)
	}
	// Once they are gone, the address is served again.
	resp, err = clientFrom("127.0.0.2").Get(s.URL + "/api/status")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the address after its connections closed: %v %v", resp, err)
	}
	resp.Body.Close()

	// Headers have a size limit too.
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/status", nil)
	req.Header.Set("X-Padding", strings.Repeat("x", 64<<10))
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB of headers: %v %v, want 431", resp, err)
	} else {
		resp.Body.Close()
	}
}

// errorAs is errors.As for a one-off use in a goroutine above.
func errorAs(err error, target *net.Error) bool {
	ne, ok := err.(net.Error)
	if ok {
		*target = ne
	}
	return ok
}

// adminFrom calls an admin path as a client at a forwarded address (the
// test's loopback is a trusted proxy).
func (s *testServer) adminFrom(forwardedFor, password string) *http.Response {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/admin/status", nil)
	req.SetBasicAuth("admin", password)
	req.Header.Set("X-Forwarded-For", forwardedFor)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestAdminLoginsAreThrottled: failed logins from one address are slowed
// with 429 and Retry-After, without locking the admin out from elsewhere;
// every byte of a long password counts.
func TestAdminLoginsAreThrottled(t *testing.T) {
	long := strings.Repeat("correct horse battery staple ", 3) // 87 bytes
	s := startServer(t, func(c *config) {
		c.AdminPassword = long
		c.TrustedProxies, _ = webserver.ParseTrustedProxies("127.0.0.0/8")
	})

	const guesser, admin = "198.51.100.7", "203.0.113.20"
	checked, throttled := 0, 0
	start := time.Now()
	for i := range 20 {
		resp := s.adminFrom(guesser, fmt.Sprintf("guess-%d", i))
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			checked++
		case http.StatusTooManyRequests:
			throttled++
			if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || secs < 1 {
				t.Errorf("429 with Retry-After %q", resp.Header.Get("Retry-After"))
			}
		default:
			t.Fatalf("guess %d: %d", i, resp.StatusCode)
		}
	}
	// Ten at once, then one more every six seconds.
	if allowed := 10 + int(time.Since(start)/(6*time.Second)); checked < 10 || checked > allowed || throttled == 0 {
		t.Errorf("%d guesses checked and %d throttled, want 10 checked at once and one more per 6 s (%d)", checked, throttled, allowed)
	}
	if resp := s.adminFrom(guesser, long); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("the right password from the throttled address: %d, want 429 until it waits", resp.StatusCode)
	}
	// The admin elsewhere is let in, however often (a panel polls).
	for i := range 20 {
		if resp := s.adminFrom(admin, long); resp.StatusCode != http.StatusOK {
			t.Fatalf("the admin elsewhere, request %d: %d, want 200", i, resp.StatusCode)
		}
	}
	// bcrypt reads 72 bytes; the password is longer, and all of it counts.
	if resp := s.adminFrom("203.0.113.21", long[:72]+"anything"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the first 72 bytes of the password and more: %d, want 401", resp.StatusCode)
	}
}

// TestSettingBodiesMustNameTheirValue: a setting body without "value",
// with null, or not sent as JSON, changes nothing and says why.
func TestSettingBodiesMustNameTheirValue(t *testing.T) {
	s := startServer(t)
	if code, b := s.admin(http.MethodPost, "/api/admin/config/streamtitle", map[string]any{"value": "Hello"}); code != http.StatusOK {
		t.Fatalf("set the title: %d %s", code, b)
	}
	post := func(path, contentType, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(body))
		req.SetBasicAuth("admin", testAdminPassword)
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		path, contentType, body string
		code                    int
		says                    string
	}{
		{"/api/admin/config/streamtitle", "application/json", `{"vaule": "typo"}`, 400, `no \"value\"`},
		{"/api/admin/config/streamtitle", "application/json", `{}`, 400, `no \"value\"`},
		{"/api/admin/config/streamtitle", "application/json", `{"value": null}`, 400, `\"value\" is null`},
		{"/api/admin/config/chat/forbiddenusernames", "application/json", `{"value": null}`, 400, `\"value\" is null`},
		{"/api/admin/config/chat/forbiddenusernames", "application/json", `{"names": []}`, 400, `no \"value\"`},
		{"/api/admin/config/streamtitle", "text/plain", `{"value": "x"}`, 415, "Content-Type: application/json"},
		{"/api/admin/config/streamtitle", "application/x-www-form-urlencoded", `{"value": "x"}`, 415, "Content-Type: application/json"},
	} {
		code, body := post(tc.path, tc.contentType, tc.body)
		if code != tc.code || !strings.Contains(body, tc.says) {
			t.Errorf("%s %s %s: %d %s, want %d saying %s", tc.path, tc.contentType, tc.body, code, body, tc.code, tc.says)
		}
	}
	if st := s.status(); st.StreamTitle != "Hello" {
		t.Errorf("the title became %q", st.StreamTitle)
	}
	// The forbidden names still hold: "admin" cannot be taken.
	reg := s.registerChat("")
	c := s.joinChat(reg)
	c.send(map[string]string{"type": "NAME_CHANGE", "newName": "admin"})
	c.waitFor("the forbidden name refused", isError(chat.ErrCodeNameForbidden))
}

// TestInternalErrorsStayInternal: a failure of the database is a generic
// 500 that says where to look; the cause goes to the log, with the
// request id the response carries, and not to the client.
func TestInternalErrorsStayInternal(t *testing.T) {
	s := startServer(t)
	s.app.store.Close() // every query fails from now on
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/admin/config/streamtitle", strings.NewReader(`{"value": "x"}`))
	req.SetBasicAuth("admin", testAdminPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	id := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), "internal error; the server log has details") ||
		strings.Contains(string(body), "sql") || strings.Contains(string(body), "closed") {
		t.Errorf("a database failure answered %d %s", resp.StatusCode, body)
	}
	testrig.Eventually(t, 5*time.Second, "the cause in the log with the request id", func() (bool, string) {
		for _, line := range strings.Split(s.logs.String(), "\n") {
			if strings.Contains(line, "request failed") && strings.Contains(line, "request_id="+id) && strings.Contains(line, "closed") {
				return true, ""
			}
		}
		return false, s.logs.String()
	})
}
