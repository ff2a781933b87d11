// Package netguard keeps the server's outbound requests off its own
// networks. Webhook URLs are chosen by an admin and fediverse inboxes by
// whoever runs a remote server; either, if it reached the loopback
// interface, the LAN or a cloud metadata address (169.254.169.254), would
// let them probe and poke services that trust the server (SSRF).
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Guard refuses connections to private and special addresses.
//
// The host is resolved at each delivery and every address it has is
// checked; the connection then goes to a checked address, dialled as a
// literal, and the dialer's Control function checks the address actually
// dialled once more, so DNS cannot answer one thing to the check and
// another to the connection.
type Guard struct {
	// allowed are networks the operator lets requests reach although
	// they are private. Never changed.
	allowed []netip.Prefix
	// hint says how to allow an address, for the refusal's message.
	hint   string
	dialer net.Dialer
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

// New returns a Guard that lets requests reach the allowed networks
// although they are private. hint ends each refusal's message, saying how
// to allow an address, such as "webhooks reach only public addresses
// unless the server's --webhook-allowed-networks includes it".
func New(allowed []netip.Prefix, hint string) *Guard {
	g := &Guard{allowed: allowed, hint: hint}
	g.dialer.Control = g.control
	g.lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}
	return g
}

// ErrRefused is wrapped by every refusal of an address.
var ErrRefused = errors.New("refused to connect to")

// special are the networks requests may not reach besides what netip's
// predicates name (loopback, private, link-local, multicast, unspecified):
// RFC 6890's special-purpose blocks that route nowhere public.
var special = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `a "this network" address`},
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT (shared) address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol assignment address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
}

// nat64 is the well-known NAT64 prefix (RFC 6052): its addresses carry an
// IPv4 address, which is checked instead.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Why says what kind of address a is if requests may not reach it, and
// "" if they may.
func (g *Guard) Why(a netip.Addr) string {
	a = a.Unmap()
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	for _, p := range g.allowed {
		if p.Contains(a) {
			return ""
		}
	}
	switch {
	case a.IsLoopback():
		return "a loopback address"
	case a.IsUnspecified():
		return "an unspecified address"
	case a.IsPrivate():
		return "a private address"
	case a.IsLinkLocalUnicast():
		return "a link-local address"
	case a.IsMulticast():
		return "a multicast address"
	}
	for _, s := range special {
		if s.prefix.Contains(a) {
			return s.what
		}
	}
	return ""
}

// Check refuses an address requests may not reach.
func (g *Guard) Check(a netip.Addr) error {
	if w := g.Why(a); w != "" {
		return fmt.Errorf("%w %s, %s: %s", ErrRefused, a.Unmap(), w, g.hint)
	}
	return nil
}

// DialContext resolves the host of addr, refuses it if any of its
// addresses is refused, and connects to the checked addresses in turn.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		addrs = []netip.Addr{a}
	} else if addrs, err = g.lookup(ctx, host); err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	// One refused address refuses the name: a name that mixes public and
	// private addresses is how DNS rebinding starts.
	for _, a := range addrs {
		if err := g.Check(a); err != nil {
			return nil, fmt.Errorf("%s: %w", host, err)
		}
	}
	var errs []error
	for _, a := range addrs {
		c, err := g.dialer.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// control checks the address the socket is about to connect to.
func (g *Guard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w %q: it cannot be checked (%v)", ErrRefused, address, err)
	}
	return g.Check(ap.Addr())
}

// Literal returns the address of a URL host that is an IP address.
func Literal(host string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return a, true
}

// Transport returns an HTTP transport whose connections the guard checks,
// with timeout bounding the TLS handshake and the wait for response
// headers. It never uses a proxy from the environment: the guard checks
// the address connected to, which must be the receiver's.
func (g *Guard) Transport(timeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           g.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       60 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
	}
}
