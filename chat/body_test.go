package chat

import "testing"

func TestCleanBody(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"hello", "hello"},
		{"two\nlines", "two\nlines"},
		{"a\tb", "a b"},
		{"bell\a and null\x00 and escape\x1b[31m", "bell and null and escape[31m"},
		{"invoice_\u202egnp.exe", "invoice_gnp.exe"},                                                               // right-to-left override
		{"\u2066isolate\u2069 \u200fmark\u200e \u061calm", "isolate mark alm"},                                     // isolates, marks, Arabic letter mark
		{"family \U0001F468\u200D\U0001F469\u200D\U0001F467", "family \U0001F468\u200D\U0001F469\u200D\U0001F467"}, // joiners stay
		{"del\x7f c1\u0085", "del c1"},
	} {
		if got := cleanBody(tt.in); got != tt.want {
			t.Errorf("cleanBody(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
