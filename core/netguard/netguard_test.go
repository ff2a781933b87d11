package netguard

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
)

func TestGuardClassifiesAddresses(t *testing.T) {
	g := New(nil, "allow it")
	for _, tc := range []struct {
		addr string
		want string // "" for allowed
	}{
		{"93.184.216.34", ""},
		{"2606:2800:220:1:248:1893:25c8:1946", ""},
		{"8.8.8.8", ""},
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"64:ff9b::7f00:1", "loopback"},
		{"10.1.2.3", "private"},
		{"172.31.255.255", "private"},
		{"192.168.0.1", "private"},
		{"fd12:3456::1", "private"},
		{"169.254.169.254", "link-local"},
		{"fe80::1", "link-local"},
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"0.1.2.3", "this network"},
		{"224.0.0.251", "multicast"},
		{"ff02::1", "multicast"},
		{"100.64.1.1", "carrier-grade NAT"},
		{"198.18.0.1", "benchmarking"},
		{"255.255.255.255", "reserved"},
	} {
		got := g.Why(netip.MustParseAddr(tc.addr))
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.addr, got, tc.want)
		}
	}
	allowed := New([]netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}, "allow it")
	if w := allowed.Why(netip.MustParseAddr("192.168.1.20")); w != "" {
		t.Errorf("an allowed network is refused: %s", w)
	}
	if w := allowed.Why(netip.MustParseAddr("192.168.2.20")); w == "" {
		t.Error("the rest of the private range is allowed along with one network")
	}
}

// TestGuardRefusesANameWithAnyPrivateAddress: a name that resolves to a
// public and a private address is refused before any connection, so DNS
// rebinding has no address to offer.
func TestGuardRefusesANameWithAnyPrivateAddress(t *testing.T) {
	g := New(nil, "allow it")
	dialled := false
	g.dialer.Control = func(string, string, syscall.RawConn) error {
		dialled = true
		return errors.New("no dialling in this test")
	}
	g.lookup = func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("10.0.0.1")}, nil
	}
	_, err := g.DialContext(context.Background(), "tcp", "rebind.example:443")
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "refused to connect to 10.0.0.1, a private address") || !strings.Contains(err.Error(), "rebind.example") {
		t.Errorf("a name with a private address: %v", err)
	}
	if dialled {
		t.Error("a connection was attempted")
	}
}

// TestGuardChecksTheAddressDialled: whatever the name resolved to, the
// socket is refused if the address it connects to is refused.
func TestGuardChecksTheAddressDialled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	g := New(nil, "allow it")
	// The check of the name is passed (a lookup answering a public
	// address would do this); the dialler still sees 127.0.0.1.
	if err := g.control("tcp4", ln.Addr().String(), nil); !errors.Is(err, ErrRefused) {
		t.Errorf("control on %s: %v", ln.Addr(), err)
	}
	d := g.dialer
	if c, err := d.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("the guard's dialer connected to loopback")
	} else if !errors.Is(err, ErrRefused) {
		t.Errorf("dialling loopback: %v, want a refusal", err)
	}
	allowed := New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "allow it")
	c, err := allowed.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("an allowed loopback: %v", err)
	}
	c.Close()
}
