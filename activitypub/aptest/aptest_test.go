package aptest

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain checks that the tests leave no HTTP connection goroutine
// behind: every Server closes its listener, its connections and its
// client's idle connections.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := waitNoHTTPGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left behind:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func waitNoHTTPGoroutines(timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "net/http.(*persistConn)") || strings.Contains(g, "net/http.(*conn).serve") ||
				strings.Contains(g, "net/http/httptest.(*Server)") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const waitTimeout = 10 * time.Second

// keyOf is a fetchKey for VerifyRequest that knows one actor.
func keyOf(a *Actor) func(string) (*rsa.PublicKey, string, error) {
	return func(keyID string) (*rsa.PublicKey, string, error) {
		if keyID != a.KeyID() {
			return nil, "", fmt.Errorf("unknown key %s", keyID)
		}
		return &a.key.PublicKey, a.ID(), nil
	}
}

func TestSignedRequestVerifies(t *testing.T) {
	s := New(t)
	alice := s.NewActor("alice")
	body := []byte(`{"type":"Like"}`)
	req, err := alice.SignedRequest(t.Context(), http.MethodPost, "http://example.test/users/bob/inbox?x=1", body)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"Date", "Digest", "Signature", "Content-Type"} {
		if req.Header.Get(h) == "" {
			t.Errorf("signed request has no %s header", h)
		}
	}
	if want := `headers="(request-target) host date digest"`; !strings.Contains(req.Header.Get("Signature"), want) {
		t.Errorf("Signature = %s, want it to contain %s", req.Header.Get("Signature"), want)
	}
	keyID, owner, err := VerifyRequest(req, body, keyOf(alice))
	if err != nil {
		t.Fatalf("VerifyRequest: %v", err)
	}
	if keyID != alice.KeyID() || owner != alice.ID() {
		t.Errorf("VerifyRequest = %s, %s; want %s, %s", keyID, owner, alice.KeyID(), alice.ID())
	}

	get, err := alice.SignedRequest(t.Context(), http.MethodGet, "http://example.test/users/bob", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := `headers="(request-target) host date"`; !strings.Contains(get.Header.Get("Signature"), want) {
		t.Errorf("GET Signature = %s, want it to contain %s", get.Header.Get("Signature"), want)
	}
	if get.Header.Get("Digest") != "" {
		t.Errorf("GET without a body has Digest %q", get.Header.Get("Digest"))
	}
	if _, _, err := VerifyRequest(get, nil, keyOf(alice)); err != nil {
		t.Fatalf("VerifyRequest of a GET: %v", err)
	}
}

// TestHostileRequests tampers with a signed POST in every way a careful
// server must notice, and checks each is refused for its own reason.
func TestHostileRequests(t *testing.T) {
	s := New(t)
	alice := s.NewActor("alice")
	mallory := s.NewActor("mallory")
	body := []byte(`{"type":"Follow","actor":"` + alice.ID() + `"}`)
	other := []byte(`{"type":"Follow","actor":"` + alice.ID() + `","object":"x"}`)

	tests := []struct {
		name string
		// tamper changes the signed request; it returns the body the
		// server would read.
		tamper func(t *testing.T, req *http.Request) []byte
		want   error // nil: verifies
	}{
		{"untouched", func(*testing.T, *http.Request) []byte { return body }, nil},
		{"hs2019", func(t *testing.T, req *http.Request) []byte {
			resign(t, alice, req, body, SignOptions{Algorithm: "hs2019"})
			return body
		}, nil},
		{"body changed", func(*testing.T, *http.Request) []byte { return other }, ErrDigest},
		{"body changed, digest recomputed", func(_ *testing.T, req *http.Request) []byte {
			req.Header.Set("Digest", digestHeader(other))
			return other
		}, ErrSignature},
		{"digest not base64", func(_ *testing.T, req *http.Request) []byte {
			req.Header.Set("Digest", "SHA-256=!!!")
			return body
		}, ErrDigest},
		{"digest SHA-512 only", func(_ *testing.T, req *http.Request) []byte {
			req.Header.Set("Digest", "SHA-512=AAAA")
			return body
		}, ErrDigest},
		{"no Digest header", func(_ *testing.T, req *http.Request) []byte {
			req.Header.Del("Digest")
			return body
		}, ErrDigest},
		{"digest not signed", func(t *testing.T, req *http.Request) []byte {
			resign(t, alice, req, body, SignOptions{Headers: []string{"(request-target)", "host", "date"}})
			return body
		}, ErrSignatureHeader},
		{"host not signed", func(t *testing.T, req *http.Request) []byte {
			resign(t, alice, req, body, SignOptions{Headers: []string{"(request-target)", "date", "digest"}})
			return body
		}, ErrSignatureHeader},
		{"date 2 h old", func(t *testing.T, req *http.Request) []byte {
			resign(t, alice, req, body, SignOptions{Date: time.Now().Add(-2 * time.Hour)})
			return body
		}, ErrDate},
		{"date 2 h ahead", func(t *testing.T, req *http.Request) []byte {
			resign(t, alice, req, body, SignOptions{Date: time.Now().Add(2 * time.Hour)})
			return body
		}, ErrDate},
		{"date changed after signing", func(_ *testing.T, req *http.Request) []byte {
			req.Header.Set("Date", time.Now().Add(time.Minute).UTC().Format(http.TimeFormat))
			return body
		}, ErrSignature},
		{"date unreadable", func(_ *testing.T, req *http.Request) []byte {
			req.Header.Set("Date", "yesterday")
			return body
		}, ErrDate},
		{"signed with another key", func(t *testing.T, req *http.Request) []byte {
			resign(t, alice, req, body, SignOptions{Key: mallory.Key()})
			return body
		}, ErrSignature},
		{"date 59 min old", func(t *testing.T, req *http.Request) []byte {
			resign(t, alice, req, body, SignOptions{Date: time.Now().Add(-59 * time.Minute)})
			return body
		}, nil},
		{"host changed", func(_ *testing.T, req *http.Request) []byte {
			req.Host = "evil.example"
			return body
		}, ErrSignature},
		{"path changed", func(_ *testing.T, req *http.Request) []byte {
			req.URL.Path = "/users/carol/inbox"
			return body
		}, ErrSignature},
		{"method changed", func(_ *testing.T, req *http.Request) []byte {
			req.Method = http.MethodPut
			return body
		}, ErrSignature},
		{"unknown keyId", func(t *testing.T, req *http.Request) []byte {
			resign(t, alice, req, body, SignOptions{KeyID: "http://127.0.0.1:1/users/nobody#main-key"})
			return body
		}, ErrKey},
		{"algorithm hmac-sha256", func(t *testing.T, req *http.Request) []byte {
			resign(t, alice, req, body, SignOptions{Algorithm: "hmac-sha256"})
			return body
		}, ErrSignatureHeader},
		{"unsigned", func(_ *testing.T, req *http.Request) []byte {
			req.Header.Del("Signature")
			return body
		}, ErrUnsigned},
		{"two Signature headers", func(_ *testing.T, req *http.Request) []byte {
			req.Header.Add("Signature", req.Header.Get("Signature"))
			return body
		}, ErrSignatureHeader},
		{"Signature not parameters", func(_ *testing.T, req *http.Request) []byte {
			req.Header.Set("Signature", "nonsense")
			return body
		}, ErrSignatureHeader},
		{"signature not base64", func(_ *testing.T, req *http.Request) []byte {
			req.Header.Set("Signature", `keyId="`+alice.KeyID()+`",headers="(request-target) host date digest",signature="%%%"`)
			return body
		}, ErrSignatureHeader},
		{"no headers parameter", func(_ *testing.T, req *http.Request) []byte {
			sig := req.Header.Get("Signature")
			req.Header.Set("Signature", strings.Replace(sig, `headers="(request-target) host date digest",`, "", 1))
			return body
		}, ErrSignatureHeader},
		{"unterminated quote", func(_ *testing.T, req *http.Request) []byte {
			req.Header.Set("Signature", `keyId="`+alice.KeyID())
			return body
		}, ErrSignatureHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := alice.SignedRequest(t.Context(), http.MethodPost, "http://example.test/users/bob/inbox", body)
			if err != nil {
				t.Fatal(err)
			}
			got := tt.tamper(t, req)
			_, _, err = VerifyRequest(req, got, keyOf(alice))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("VerifyRequest: %v, want it to verify", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("VerifyRequest: %v, want %v", err, tt.want)
			}
			t.Logf("refused: %v", err)
		})
	}
}

func resign(t *testing.T, a *Actor, req *http.Request, body []byte, opts SignOptions) {
	t.Helper()
	if err := a.Sign(req, body, opts); err != nil {
		t.Fatal(err)
	}
}

func TestParseSignature(t *testing.T) {
	p, err := parseSignature(` signature="c2ln" , headers="(request-target) Host date",keyId="http://x/\"a\\b\"#k", created=1402170695`)
	if err != nil {
		t.Fatal(err)
	}
	if p.keyID != `http://x/"a\b"#k` {
		t.Errorf("keyId = %q", p.keyID)
	}
	if got := strings.Join(p.headers, "|"); got != "(request-target)|host|date" {
		t.Errorf("headers = %q", got)
	}
	if string(p.signature) != "sig" {
		t.Errorf("signature = %q", p.signature)
	}
	for _, bad := range []string{
		``,
		`keyId="a",keyId="b",headers="date",signature="c2ln"`,
		`keyId="a",headers="date",signature="c2ln" junk`,
		`keyId="a",headers="date"`,
		`headers="date",signature="c2ln"`,
		`=x`,
	} {
		if _, err := parseSignature(bad); !errors.Is(err, ErrSignatureHeader) {
			t.Errorf("parseSignature(%q) = %v, want ErrSignatureHeader", bad, err)
		}
	}
}

// The test vectors of draft-cavage-http-signatures-12 appendix C (its
// key, request and signatures), checked both ways: Sign must produce the
// draft's signature, and verifyRequest must accept it.
const (
	specDate   = "Sun, 05 Jan 2014 21:31:40 GMT"
	specBody   = `{"hello": "world"}`
	specDigest = "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="
	specKeyPEM = `-----BEGIN RSA PRIVATE KEY-----
MIICXgIBAAKBgQDCFENGw33yGihy92pDjZQhl0C36rPJj+CvfSC8+q28hxA161QF
NUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6Z4UMR7EOcpfdUE9Hf3m/hs+F
UR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJwoYi+1hqp1fIekaxsyQIDAQAB
AoGBAJR8ZkCUvx5kzv+utdl7T5MnordT1TvoXXJGXK7ZZ+UuvMNUCdN2QPc4sBiA
QWvLw1cSKt5DsKZ8UETpYPy8pPYnnDEz2dDYiaew9+xEpubyeW2oH4Zx71wqBtOK
kqwrXa/pzdpiucRRjk6vE6YY7EBBs/g7uanVpGibOVAEsqH1AkEA7DkjVH28WDUg
f1nqvfn2Kj6CT7nIcE3jGJsZZ7zlZmBmHFDONMLUrXR/Zm3pR5m0tCmBqa5RK95u
412jt1dPIwJBANJT3v8pnkth48bQo/fKel6uEYyboRtA5/uHuHkZ6FQF7OUkGogc
mSJluOdc5t6hI1VsLn0QZEjQZMEOWr+wKSMCQQCC4kXJEsHAve77oP6HtG/IiEn7
kpyUXRNvFsDE0czpJJBvL/aRFUJxuRK91jhjC68sA7NsKMGg5OXb5I5Jj36xAkEA
gIT7aFOYBFwGgQAQkWNKLvySgKbAZRTeLBacpHMuQdl1DfdntvAyqpAZ0lY0RKmW
G6aFKaqQfOXKCyWoUiVknQJAXrlgySFci/2ueKlIE1QqIiLSZ8V8OlpFLRnb1pzI
7U1yQXnTAEFYM560yJlzUpOb1V4cScGd365tiSMvxLOvTA==
-----END RSA PRIVATE KEY-----`
	specPublicKeyPEM = `-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDCFENGw33yGihy92pDjZQhl0C3
6rPJj+CvfSC8+q28hxA161QFNUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6
Z4UMR7EOcpfdUE9Hf3m/hs+FUR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJw
oYi+1hqp1fIekaxsyQIDAQAB
-----END PUBLIC KEY-----`
)

func TestSpecVectors(t *testing.T) {
	block, _ := pem.Decode([]byte(specKeyPEM))
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := parsePublicKeyPEM(specPublicKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(&key.PublicKey) {
		t.Fatal("the draft's public key is not its private key's")
	}
	if got := digestHeader([]byte(specBody)); got != specDigest {
		t.Errorf("digest = %s, want the draft's %s", got, specDigest)
	}
	date, err := http.ParseTime(specDate)
	if err != nil {
		t.Fatal(err)
	}
	signer := New(t).NewActor("signer") // any actor: key and keyId are overridden

	tests := []struct {
		name      string
		headers   []string
		signature string
		verify    error // what verifyRequest says of the draft's header
	}{
		// A POST whose digest is not signed: a valid signature that a
		// fediverse server must refuse all the same.
		{"C.2 Basic Test", []string{"(request-target)", "host", "date"},
			"qdx+H7PHHDZgy4y/Ahn9Tny9V3GP6YgBPyUXMmoxWtLbHpUnXS2mg2+SbrQDMCJypxBLSPQR2aAjn7ndmw2iicw3HMbe8VfEdKFYRqzic+efkb3nndiv/x1xSHDJWeSWkx3ButlYSuBskLu6kd9Fswtemr3lgdDEmn04swr2Os0=",
			ErrSignatureHeader},
		{"C.3 All Headers Test", []string{"(request-target)", "host", "date", "content-type", "digest", "content-length"},
			"vSdrb+dS3EceC9bcwHSo4MlyKS59iFIrhgYkz8+oVLEEzmYZZvRs8rgOp+63LEM3v+MFHB32NfpB2bEKBIvB1q52LaEUHFv120V01IL+TAD48XaERZFukWgHoBTLMhYS2Gb51gWxpeIq8knRmPnYePbF5MOkR0Zkly4zKH7s1dE=",
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newRequest := func() *http.Request {
				req, err := http.NewRequest(http.MethodPost, "http://example.com/foo?param=value&pet=dog", strings.NewReader(specBody))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Content-Length", "18")
				return req
			}
			req := newRequest()
			if err := signer.Sign(req, []byte(specBody), SignOptions{KeyID: "Test", Key: key, Date: date, Headers: tt.headers}); err != nil {
				t.Fatal(err)
			}
			if want := `signature="` + tt.signature + `"`; !strings.Contains(req.Header.Get("Signature"), want) {
				t.Errorf("Sign: Signature = %s\nwant the draft's %s", req.Header.Get("Signature"), want)
			}

			// The draft's header, verbatim, on the draft's request.
			req = newRequest()
			req.Header.Set("Date", specDate)
			req.Header.Set("Digest", specDigest)
			req.Header.Set("Signature", `keyId="Test",algorithm="rsa-sha256",headers="`+strings.Join(tt.headers, " ")+`",signature="`+tt.signature+`"`)
			fetch := func(keyID string) (*rsa.PublicKey, string, error) { return pub, "test", nil }
			_, _, err := verifyRequest(req, []byte(specBody), fetch, date.Add(time.Minute))
			if tt.verify == nil && err != nil || tt.verify != nil && !errors.Is(err, tt.verify) {
				t.Errorf("verify the draft's signature: %v, want %v", err, tt.verify)
			}
		})
	}
}

// post sends a raw request and returns the status and body.
func post(t *testing.T, c *http.Client, req *http.Request) (int, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDeliveryAcrossInstances: an actor of one instance follows an actor
// of another, which fetches the signer's key over HTTP and accepts.
func TestDeliveryAcrossInstances(t *testing.T) {
	home, remote := New(t), New(t)
	alice := home.NewActor("alice")
	bob := remote.NewActor("bob")

	follow := bob.Follow(alice.ID())
	resp, err := bob.Post(t.Context(), alice.Inbox(), follow)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST Follow: %s %s", resp.Status, b)
	}
	got := home.WaitDeliveries(t, 1, waitTimeout)
	d := got[0]
	if d.Inbox != "/users/alice/inbox" || d.Type != "Follow" || d.KeyID != bob.KeyID() || d.Status != http.StatusAccepted {
		t.Errorf("delivery = %+v", d)
	}
	if d.Activity["id"] != follow["id"] || d.ContentType != "application/activity+json" {
		t.Errorf("delivery activity %v, Content-Type %q", d.Activity["id"], d.ContentType)
	}
	fetches := remote.Fetches()
	if len(fetches) != 1 || fetches[0].Path != "/users/bob" || fetches[0].Signed || fetches[0].Accept != "application/activity+json" {
		t.Errorf("key fetches = %+v, want one unsigned GET /users/bob", fetches)
	}

	// The key is cached until ForgetKeys.
	if _, err := bob.Post(t.Context(), alice.SharedInbox(), bob.Like(alice.ID())); err != nil {
		t.Fatal(err)
	}
	home.WaitDeliveries(t, 2, waitTimeout)
	if n := len(remote.Fetches()); n != 1 {
		t.Errorf("%d key fetches after a second delivery, want 1 (cached)", n)
	}
	home.ForgetKeys()
	if _, err := bob.Post(t.Context(), alice.SharedInbox(), bob.Undo(follow)); err != nil {
		t.Fatal(err)
	}
	home.WaitDeliveries(t, 3, waitTimeout)
	remote.WaitFetches(t, 2, waitTimeout)
}

func TestDeliveriesInOrder(t *testing.T) {
	s := New(t)
	alice := s.NewActor("alice")
	bob := s.NewActor("bob")
	like := alice.Like("http://127.0.0.1:1/notes/1")
	acts := []map[string]any{alice.Follow(bob.ID()), like, alice.Announce("http://127.0.0.1:1/notes/1"), alice.Undo(like), alice.Update(), alice.Delete()}
	for _, act := range acts {
		resp, err := alice.Post(t.Context(), bob.SharedInbox(), act)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST %s: %s", act["type"], resp.Status)
		}
	}
	got := s.WaitDeliveries(t, len(acts), waitTimeout)
	for i, d := range got {
		if d.Type != acts[i]["type"] || d.Activity["id"] != acts[i]["id"] || d.Inbox != "/inbox" {
			t.Errorf("delivery %d = %s %v to %s, want %s %v", i, d.Type, d.Activity["id"], d.Inbox, acts[i]["type"], acts[i]["id"])
		}
	}
	if got := s.WaitDelivery(t, OfType("Announce"), waitTimeout); got.Activity["object"] != "http://127.0.0.1:1/notes/1" {
		t.Errorf("Announce object = %v", got.Activity["object"])
	}
	// The copies are the caller's.
	got[0].Activity["type"] = "changed"
	if s.Deliveries()[0].Activity["type"] != "Follow" {
		t.Error("changing a returned delivery changed the Server's record")
	}
}

func TestActivities(t *testing.T) {
	s := New(t)
	alice := s.NewActor("alice")
	like := alice.Like("http://x/notes/1")
	follow := alice.Follow("http://x/users/stream")
	if like["id"] == follow["id"] {
		t.Error("two activities share an id")
	}
	for _, act := range []map[string]any{like, follow, alice.Announce("http://x/notes/1"), alice.Undo(like), alice.Delete(), alice.Update()} {
		id, _ := act["id"].(string)
		if !strings.HasPrefix(id, s.URL()+"/activities/") || len(id) <= len(s.URL()+"/activities/") {
			t.Errorf("%s id = %q", act["type"], id)
		}
		if act["@context"] != asContext || act["actor"] != alice.ID() {
			t.Errorf("%s: @context %v, actor %v", act["type"], act["@context"], act["actor"])
		}
	}
	undo := alice.Undo(like)
	inner, _ := undo["object"].(map[string]any)
	if inner["id"] != like["id"] || inner["type"] != "Like" || inner["@context"] != nil {
		t.Errorf("Undo object = %v", inner)
	}
	if _, ok := like["@context"]; !ok {
		t.Error("Undo took the @context out of the activity it was given")
	}
	if del := alice.Delete(); del["object"] != alice.ID() {
		t.Errorf("Delete object = %v", del["object"])
	}
	alice.SetName("Alice Renamed")
	upd, _ := alice.Update()["object"].(map[string]any)
	if upd["name"] != "Alice Renamed" || upd["id"] != alice.ID() || upd["type"] != "Person" {
		t.Errorf("Update object = %v", upd)
	}
}

func TestRespondThenAccept(t *testing.T) {
	s := New(t)
	alice := s.NewActor("alice")
	s.Respond(1, http.StatusInternalServerError)
	for _, want := range []int{http.StatusInternalServerError, http.StatusAccepted, http.StatusAccepted} {
		resp, err := alice.Post(t.Context(), alice.Inbox(), alice.Like("http://x/1"))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != want {
			t.Errorf("POST answered %s, want %d", resp.Status, want)
		}
	}
	got := s.WaitDeliveries(t, 3, waitTimeout)
	if got[0].Status != http.StatusInternalServerError || got[1].Status != http.StatusAccepted {
		t.Errorf("recorded statuses %d, %d", got[0].Status, got[1].Status)
	}

	s.Gone()
	s.Respond(5, http.StatusTooManyRequests)
	resp, err := alice.Post(t.Context(), alice.SharedInbox(), alice.Delete())
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusGone {
		t.Errorf("after Gone: %s, want 410", resp.Status)
	}
}

// TestRefusedDeliveries: what fails verification is answered, and
// recorded, with why.
func TestRefusedDeliveries(t *testing.T) {
	s := New(t)
	alice := s.NewActor("alice")
	carol := s.NewActor("carol")
	activity := []byte(`{"type":"Like","actor":"` + alice.ID() + `","object":"http://x/1"}`)

	tests := []struct {
		name       string
		req        func(t *testing.T) *http.Request
		wantStatus int
		wantErr    string
	}{
		{"unsigned", func(t *testing.T) *http.Request {
			req, _ := http.NewRequest(http.MethodPost, alice.Inbox(), bytes.NewReader(activity))
			req.Header.Set("Content-Type", "application/activity+json")
			return req
		}, http.StatusUnauthorized, "not signed"},
		{"signed by someone else than the actor", func(t *testing.T) *http.Request {
			req, err := carol.SignedRequest(t.Context(), http.MethodPost, alice.Inbox(), activity)
			if err != nil {
				t.Fatal(err)
			}
			return req
		}, http.StatusUnauthorized, ErrOwner.Error()},
		{"body swapped after signing", func(t *testing.T) *http.Request {
			req, err := alice.SignedRequest(t.Context(), http.MethodPost, alice.Inbox(), activity)
			if err != nil {
				t.Fatal(err)
			}
			SetBody(req, []byte(`{"type":"Delete","actor":"`+alice.ID()+`","object":"`+alice.ID()+`"}`))
			return req
		}, http.StatusUnauthorized, ErrDigest.Error()},
		{"text/plain", func(t *testing.T) *http.Request {
			req, err := alice.SignedRequest(t.Context(), http.MethodPost, alice.Inbox(), activity)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "text/plain")
			return req
		}, http.StatusUnsupportedMediaType, "Content-Type"},
		{"ld+json without the profile", func(t *testing.T) *http.Request {
			req, err := alice.SignedRequest(t.Context(), http.MethodPost, alice.Inbox(), activity)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/ld+json")
			return req
		}, http.StatusUnsupportedMediaType, "Content-Type"},
		{"not JSON", func(t *testing.T) *http.Request {
			req, err := alice.SignedRequest(t.Context(), http.MethodPost, alice.Inbox(), []byte(`[1,2]`))
			if err != nil {
				t.Fatal(err)
			}
			return req
		}, http.StatusBadRequest, "JSON object"},
		{"over 1 MiB", func(t *testing.T) *http.Request {
			big := append([]byte(`{"a":"`), bytes.Repeat([]byte("x"), maxBody)...)
			big = append(big, `"}`...)
			req, err := alice.SignedRequest(t.Context(), http.MethodPost, alice.Inbox(), big)
			if err != nil {
				t.Fatal(err)
			}
			return req
		}, http.StatusRequestEntityTooLarge, "over"},
		{"no such actor", func(t *testing.T) *http.Request {
			req, err := alice.SignedRequest(t.Context(), http.MethodPost, s.URL()+"/users/nobody/inbox", activity)
			if err != nil {
				t.Fatal(err)
			}
			return req
		}, http.StatusNotFound, "no actor"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, s.Client(), tt.req(t))
			if status != tt.wantStatus || !strings.Contains(body, tt.wantErr) {
				t.Errorf("answered %d %q, want %d with %q", status, body, tt.wantStatus, tt.wantErr)
			}
			all := s.Deliveries()
			if len(all) != i+1 {
				t.Fatalf("%d deliveries recorded, want %d", len(all), i+1)
			}
			d := all[i]
			if d.Verified || d.Status != tt.wantStatus || !strings.Contains(d.Err, tt.wantErr) {
				t.Errorf("recorded verified=%t status=%d err=%q", d.Verified, d.Status, d.Err)
			}
		})
	}

	// ld+json with the ActivityStreams profile is an ActivityPub type.
	req, err := alice.SignedRequest(t.Context(), http.MethodPost, alice.Inbox(), activity)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", `application/ld+json; profile="https://www.w3.org/ns/activitystreams"`)
	if status, body := post(t, s.Client(), req); status != http.StatusAccepted {
		t.Errorf("ld+json with profile: %d %s", status, body)
	}
}

func TestRequireSignedFetch(t *testing.T) {
	s, remote := New(t), New(t)
	alice := s.NewActor("alice")
	bob := remote.NewActor("bob")
	mallory := remote.NewActor("mallory")
	s.RequireSignedFetch(true)

	req, _ := http.NewRequest(http.MethodGet, alice.ID(), nil)
	req.Header.Set("Accept", "application/activity+json")
	if status, body := post(t, s.Client(), req); status != http.StatusUnauthorized {
		t.Errorf("unsigned GET: %d %s, want 401", status, body)
	}

	// Signed by an actor of another instance, whose key is fetched.
	resp, err := bob.Get(t.Context(), alice.ID())
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("signed GET: %s %s", resp.Status, b)
	}
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || doc["id"] != alice.ID() {
		t.Errorf("signed GET answered %v (%v)", doc, err)
	}

	// Signed, but not by the key it claims.
	forged, err := bob.SignedRequest(t.Context(), http.MethodGet, alice.ID(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resign(t, bob, forged, nil, SignOptions{Key: mallory.Key()})
	if status, body := post(t, s.Client(), forged); status != http.StatusUnauthorized || !strings.Contains(body, "does not verify") {
		t.Errorf("forged GET: %d %s, want 401", status, body)
	}

	fetches := s.WaitFetches(t, 3, waitTimeout)
	want := []Fetch{
		{Path: "/users/alice", Signed: false, Verified: false, Status: 401},
		{Path: "/users/alice", Signed: true, Verified: true, KeyID: bob.KeyID(), Status: 200},
		{Path: "/users/alice", Signed: true, Verified: false, KeyID: bob.KeyID(), Status: 401},
	}
	for i, f := range fetches {
		f.Accept, f.Err = "", ""
		if f != want[i] {
			t.Errorf("fetch %d = %+v, want %+v", i, f, want[i])
		}
	}

	s.RequireSignedFetch(false)
	if status, _ := post(t, s.Client(), req.Clone(t.Context())); status != http.StatusOK {
		t.Errorf("unsigned GET after RequireSignedFetch(false): %d", status)
	}
}

func TestActorDocument(t *testing.T) {
	s := New(t)
	alice := s.NewActor("alice")

	get := func(t *testing.T, url string) (*http.Response, map[string]any) {
		t.Helper()
		resp, err := s.Client().Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var doc map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		return resp, doc
	}

	resp, doc := get(t, alice.KeyID()) // the fragment stays with the client
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/activity+json") {
		t.Errorf("Content-Type %q", ct)
	}
	want := map[string]any{
		"id": alice.ID(), "type": "Person", "preferredUsername": "alice", "name": "alice",
		"inbox": alice.Inbox(), "outbox": alice.Outbox(), "followers": alice.Followers(),
		"url": s.URL() + "/@alice",
	}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("%s = %v, want %v", k, doc[k], v)
		}
	}
	if ep, _ := doc["endpoints"].(map[string]any); ep["sharedInbox"] != s.URL()+"/inbox" {
		t.Errorf("endpoints = %v", doc["endpoints"])
	}
	pk, _ := doc["publicKey"].(map[string]any)
	if pk["id"] != alice.KeyID() || pk["owner"] != alice.ID() {
		t.Errorf("publicKey = %v", pk)
	}
	pemText, _ := pk["publicKeyPem"].(string)
	pub, err := parsePublicKeyPEM(pemText)
	if err != nil || !pub.Equal(&alice.Key().PublicKey) {
		t.Errorf("publicKeyPem is not alice's key (%v)", err)
	}

	icon, _ := doc["icon"].(map[string]any)
	iconURL, _ := icon["url"].(string)
	ir, err := s.Client().Get(iconURL)
	if err != nil {
		t.Fatal(err)
	}
	ir.Body.Close()
	if ir.StatusCode != http.StatusOK || ir.Header.Get("Content-Type") != "image/png" {
		t.Errorf("GET icon: %s %s", ir.Status, ir.Header.Get("Content-Type"))
	}

	_, jrd := get(t, s.URL()+"/.well-known/webfinger?resource=acct:alice@"+s.Host())
	links, _ := jrd["links"].([]any)
	self, _ := links[0].(map[string]any)
	if jrd["subject"] != "acct:alice@"+s.Host() || self["rel"] != "self" || self["href"] != alice.ID() {
		t.Errorf("webfinger = %v", jrd)
	}
	wr, err := s.Client().Get(s.URL() + "/.well-known/webfinger?resource=acct:nobody@" + s.Host())
	if err != nil {
		t.Fatal(err)
	}
	wr.Body.Close()
	if wr.StatusCode != http.StatusNotFound {
		t.Errorf("webfinger of nobody: %s", wr.Status)
	}

	alice.SetName("Alice ✨")
	if _, doc := get(t, alice.ID()); doc["name"] != "Alice ✨" {
		t.Errorf("name after SetName = %v", doc["name"])
	}
}

// TestKeys: every actor of a Server has its own key; the k-th actors of
// two Servers share theirs.
func TestKeys(t *testing.T) {
	s1, s2 := New(t), New(t)
	a, b, c := s1.NewActor("a"), s1.NewActor("b"), s1.NewActor("c")
	if a.Key().Equal(b.Key()) || a.Key().Equal(c.Key()) || b.Key().Equal(c.Key()) {
		t.Error("two actors of one Server share a key")
	}
	if a.Key().N.BitLen() != keyBits {
		t.Errorf("key of %d bits", a.Key().N.BitLen())
	}
	if x := s2.NewActor("x"); !x.Key().Equal(a.Key()) {
		t.Error("the first actors of two Servers have different keys: the pool is not reused")
	}
}

// TestWaitFailsWithWhatArrived: at the deadline WaitDeliveries fails the
// test with the deliveries that did arrive and why they were refused.
func TestWaitFailsWithWhatArrived(t *testing.T) {
	s := New(t)
	alice := s.NewActor("alice")
	req, _ := http.NewRequest(http.MethodPost, alice.Inbox(), strings.NewReader(`{"type":"Like"}`))
	req.Header.Set("Content-Type", "application/activity+json")
	post(t, s.Client(), req)

	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.WaitDeliveries(ft, 1, 50*time.Millisecond)
	}()
	<-done
	msg := ft.message()
	if !strings.Contains(msg, "timed out") || !strings.Contains(msg, `type="Like"`) || !strings.Contains(msg, "not signed") {
		t.Errorf("failure message:\n%s", msg)
	}
}

// fatalRecorder is a testing.TB whose Fatalf records and ends the
// goroutine, as the real one does, without failing the test.
type fatalRecorder struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fatalRecorder) message() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.msg
}

// TestConcurrentDeliveries exercises the Server's locking under -race.
func TestConcurrentDeliveries(t *testing.T) {
	s := New(t)
	alice, bob := s.NewActor("alice"), s.NewActor("bob")
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			a := alice
			if i%2 == 1 {
				a = bob
			}
			resp, err := a.Post(ctx, s.URL()+"/inbox", a.Like(fmt.Sprintf("http://x/%d", i)))
			if err == nil && resp.StatusCode != http.StatusAccepted {
				err = fmt.Errorf("POST answered %s", resp.Status)
			}
			errs <- err
		})
		wg.Go(func() {
			if i%3 == 0 {
				alice.SetName(fmt.Sprint("alice ", i))
			}
			s.Deliveries()
			s.Fetches()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := s.WaitDeliveries(t, n, waitTimeout); len(got) != n {
		t.Errorf("%d deliveries, want %d", len(got), n)
	}
}

// TestSignRefusesOwnKeyAsOther: actors of two Servers share keys, so a
// test forging with "another" actor's key must not silently use its own.
func TestSignRefusesOwnKeyAsOther(t *testing.T) {
	alice, bob := New(t).NewActor("alice"), New(t).NewActor("bob")
	req, err := alice.SignedRequest(t.Context(), http.MethodGet, bob.ID(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Sign(req, nil, SignOptions{Key: bob.Key()}); err == nil || !strings.Contains(err.Error(), "same Server") {
		t.Errorf("Sign with a key equal to the actor's own: %v, want an error", err)
	}
}

// TestFetchKey: the shapes of key a sender may serve, and the ways its
// documents may be wrong.
func TestFetchKey(t *testing.T) {
	s := New(t)
	pub := &s.NewActor("alice").Key().PublicKey
	pkix := publicKeyPEM(pub)
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(pub)}))

	type answer struct {
		status      int
		contentType string
		body        string
	}
	var answers map[string]answer // by path; set before any request
	srv := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := answers[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", a.contentType)
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	u := srv.URL
	actor := func(id, keyID, owner, pemText string) string {
		b, _ := json.Marshal(map[string]any{"id": id, "type": "Service",
			"publicKey": map[string]any{"id": keyID, "owner": owner, "publicKeyPem": pemText}})
		return string(b)
	}
	const ap = "application/activity+json"
	twoKeys, _ := json.Marshal(map[string]any{"id": u + "/two", "type": "Person", "publicKey": []any{
		map[string]any{"id": u + "/two#old", "owner": u + "/two", "publicKeyPem": pkcs1},
		map[string]any{"id": u + "/two#new", "owner": u + "/two", "publicKeyPem": pkix},
	}})
	keyDoc := func(id, owner string) string {
		b, _ := json.Marshal(map[string]any{"id": id, "owner": owner, "publicKeyPem": pkix})
		return string(b)
	}
	answers = map[string]answer{
		"/pkix":         {200, ap + "; charset=utf-8", actor(u+"/pkix", u+"/pkix#main-key", u+"/pkix", pkix)},
		"/pkcs1":        {200, `application/ld+json; profile="https://www.w3.org/ns/activitystreams"`, actor(u+"/pkcs1", u+"/pkcs1#main-key", u+"/pkcs1", pkcs1)},
		"/two":          {200, ap, string(twoKeys)},
		"/key":          {200, ap, keyDoc(u+"/key", u+"/owner")},
		"/owner":        {200, ap, actor(u+"/owner", u+"/key", u+"/owner", pkix)},
		"/orphan-key":   {200, ap, keyDoc(u+"/orphan-key", u+"/owner")},
		"/moved":        {200, ap, actor(u+"/elsewhere", u+"/moved#main-key", u+"/elsewhere", pkix)},
		"/stolen":       {200, ap, actor(u+"/stolen", u+"/stolen#main-key", u+"/victim", pkix)},
		"/html":         {200, "text/html", actor(u+"/html", u+"/html#main-key", u+"/html", pkix)},
		"/gone":         {410, ap, `{}`},
		"/garbage":      {200, ap, `not json`},
		"/bad-pem":      {200, ap, actor(u+"/bad-pem", u+"/bad-pem#main-key", u+"/bad-pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")},
		"/no-key":       {200, ap, `{"id":"` + u + `/no-key","type":"Person"}`},
		"/wrong-key-id": {200, ap, actor(u+"/wrong-key-id", u+"/wrong-key-id#other", u+"/wrong-key-id", pkix)},
	}

	tests := []struct {
		keyID     string
		wantOwner string // "" : an error containing wantErr
		wantErr   string
	}{
		{u + "/pkix#main-key", u + "/pkix", ""},
		{u + "/pkcs1#main-key", u + "/pkcs1", ""},
		{u + "/two#new", u + "/two", ""},
		{u + "/two#old", u + "/two", ""},
		{u + "/key", u + "/owner", ""},
		{u + "/orphan-key", "", "does not confirm"},
		{u + "/moved#main-key", "", "whose id is"},
		{u + "/stolen#main-key", "", "not itself"},
		{u + "/html#main-key", "", "Content-Type"},
		{u + "/gone#main-key", "", "410"},
		{u + "/missing#main-key", "", "404"},
		{u + "/garbage#main-key", "", "JSON object"},
		{u + "/bad-pem#main-key", "", "CERTIFICATE"},
		{u + "/no-key#main-key", "", "neither"},
		{u + "/wrong-key-id#main-key", "", "no publicKey with id"},
		{"acct:alice@example.com", "", "not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(strings.TrimPrefix(tt.keyID, u), func(t *testing.T) {
			k, err := s.fetchKey(t.Context(), tt.keyID)
			if tt.wantOwner != "" {
				if err != nil {
					t.Fatalf("fetchKey: %v", err)
				}
				if k.owner != tt.wantOwner || !k.pub.Equal(pub) {
					t.Errorf("fetchKey = owner %s, key equal %t", k.owner, k.pub.Equal(pub))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("fetchKey: %v, want an error with %q", err, tt.wantErr)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// httptestServer serves h on 127.0.0.1:0 until the test ends: a sender
// of our own making, for the shapes of document aptest's actors never
// serve.
func httptestServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}
