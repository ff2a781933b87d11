package logring

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestRingKeepsTheLatest(t *testing.T) {
	var out bytes.Buffer
	r := New(3, slog.LevelInfo)
	log := slog.New(r.Handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))).With("component", "rtmp")
	log.Debug("not kept")
	for i := range 4 {
		log.Info(fmt.Sprintf("line %d", i), "remote", "192.0.2.1:5")
	}
	log.Warn("careful", "err", "disk is full")
	all := r.Entries(slog.LevelInfo)
	var got []string
	for _, e := range all {
		got = append(got, e.Level+" "+e.Message)
	}
	want := "INFO line 2 component=rtmp remote=192.0.2.1:5|INFO line 3 component=rtmp remote=192.0.2.1:5|WARN careful component=rtmp err=\"disk is full\""
	if strings.Join(got, "|") != want {
		t.Errorf("entries\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}
	if w := r.Entries(slog.LevelWarn); len(w) != 1 || w[0].Level != "WARN" {
		t.Errorf("warnings %+v", w)
	}
	if !strings.Contains(out.String(), "not kept") || !strings.Contains(out.String(), "line 0") {
		t.Errorf("the next handler lost lines:\n%s", out.String())
	}
}
