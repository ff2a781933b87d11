package main

import (
	"encoding/json"
	"testing"
	"time"
)

func TestJSONString(t *testing.T) {
	for _, tc := range []struct {
		ev, key, want string
		ok            bool
	}{
		{`{"type":"CHAT","body":"x"}`, "type", "CHAT", true},
		{`{"type" : "CHAT"}`, "type", "CHAT", true},
		{`{"body":"say \"type\": no","type":"SYSTEM"}`, "type", "SYSTEM", true},
		{`{"body":"a\\"}`, "body", `a\\`, true},
		{`{"body":"a\"b"}`, "body", `a\"b`, true},
		{`{"type":5}`, "type", "", false},
		{`{"type":"CHA`, "type", "", false},
		{`{"type"`, "type", "", false},
		{`{"type":`, "type", "", false},
		{``, "type", "", false},
		{`{"user":{"id":"x"}}`, "body", "", false},
	} {
		got, ok := jsonString([]byte(tc.ev), tc.key)
		if string(got) != tc.want || ok != tc.ok {
			t.Errorf("jsonString(%s, %q) = %q, %v; want %q, %v", tc.ev, tc.key, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseLoad(t *testing.T) {
	// What Go's encoding/json makes of the server's HTML.
	escaped, _ := json.Marshal("<p>" + loadBody(12, 345*time.Microsecond) + "</p>")
	for _, tc := range []struct {
		body string
		seq  int
		sent time.Duration
		ok   bool
	}{
		{string(escaped[1 : len(escaped)-1]), 12, 345 * time.Microsecond, true},
		{"<p>load 0 1</p>", 0, 1, true},
		{"load 7 99", 7, 99, true},
		{"<p>load 7</p>", 0, 0, false},
		{"<p>load x 7</p>", 0, 0, false},
		{"<p>load 7 </p>", 0, 0, false},
		{"<p>hello</p>", 0, 0, false},
		{"", 0, 0, false},
		{"load 99999999999999999999999 1", 0, 0, false},
	} {
		seq, sent, ok := parseLoad([]byte(tc.body))
		if seq != tc.seq || sent != tc.sent || ok != tc.ok {
			t.Errorf("parseLoad(%q) = %d, %v, %v; want %d, %v, %v", tc.body, seq, sent, ok, tc.seq, tc.sent, tc.ok)
		}
	}
}

func TestFrame(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	c := &client{ready: make(chan struct{}), t0: t0}
	frame := `{"type":"CONNECTED_USER_INFO","user":{"id":"a","displayName":"load 3 4"}}` + "\n" +
		`{"type":"CHAT","timestamp":"2026-11-21T10:00:00.0000025Z","body":"\u003cp\u003eload 3 1000\u003c/p\u003e"}` + "\n\n" +
		`{"type":"CHAT","body":"\u003cp\u003eload 3 1000\u003c/p\u003e"}` + "\n" +
		`{"type":"CHAT","body":"\u003cp\u003eload 70 1500\u003c/p\u003e"}` + "\n" +
		`{"type":"CHAT_ACTION","error":"RATE_LIMITED","body":"slow down"}` + "\n" +
		`{"type":"USER_JOINED","user":{"id":"b"}}` + "\n" +
		`not json`
	c.frame([]byte(frame), 3000)
	select {
	case <-c.ready:
	default:
		t.Error("CONNECTED_USER_INFO did not make the client ready")
	}
	if c.got.Load() != 2 || c.dups != 1 || c.events.Load() != 7 {
		t.Errorf("got %d, dups %d, events %d; want 2, 1, 7", c.got.Load(), c.dups, c.events.Load())
	}
	if c.lat.Max() != 2000 || c.lat.Count() != 2 {
		t.Errorf("latency max %v count %d, want 2µs and 2", c.lat.Max(), c.lat.Count())
	}
	if c.toStamp.Count() != 1 || c.toStamp.Max() != 1500 || c.fromStamp.Max() != 500 {
		t.Errorf("split into %v (%d) and %v, want 1.5µs (1) and 0.5µs", c.toStamp.Max(), c.toStamp.Count(), c.fromStamp.Max())
	}
	if c.refusals["RATE_LIMITED"] != 1 {
		t.Errorf("refusals %v, want RATE_LIMITED 1", c.refusals)
	}
}
