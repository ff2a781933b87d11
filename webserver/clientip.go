package webserver

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP is the address of the client behind a request: the direct peer,
// or, when that is a trusted reverse proxy, the nearest address in
// X-Forwarded-For that is not one. Limits and bans apply to it.
func ClientIP(r *http.Request) string {
	if info := infoOf(r.Context()); info != nil && info.clientIP != "" {
		return info.clientIP
	}
	return peerIP(r)
}

func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// clientIP resolves ClientIP once per request, into the requestInfo of
// requestID, which runs before it.
func clientIP(trusted func(netip.Addr) bool, next http.Handler) http.Handler {
	isTrusted := func(s string) bool {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		return err == nil && trusted(a.Unmap())
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := infoOf(r.Context())
		if info == nil {
			info = &requestInfo{}
			r = r.WithContext(context.WithValue(r.Context(), requestInfoKey, info))
		}
		ip := peerIP(r)
		if isTrusted(ip) {
			info.viaProxy = true
			// Walk from the nearest hop back: the first untrusted address
			// is the client; anything before it could be forged.
			hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
			for i := len(hops) - 1; i >= 0; i-- {
				h := strings.TrimSpace(hops[i])
				if _, err := netip.ParseAddr(h); err != nil {
					break
				}
				ip = h
				if !isTrusted(h) {
					break
				}
			}
		}
		info.clientIP = ip
		next.ServeHTTP(w, r)
	})
}

// ForwardedUser is the X-Forwarded-User a trusted reverse proxy set (one
// that signs users in), or "" if the request did not come through one.
func ForwardedUser(r *http.Request) string {
	if info := infoOf(r.Context()); info == nil || !info.viaProxy {
		return ""
	}
	return strings.TrimSpace(r.Header.Get("X-Forwarded-User"))
}

// ForwardedHost is the host the client asked for: a trusted reverse
// proxy's X-Forwarded-Host (its first, the client's), else the request's
// Host. A signature over the host covers what the client sent.
func ForwardedHost(r *http.Request) string {
	if info := infoOf(r.Context()); info != nil && info.viaProxy {
		if h := r.Header.Get("X-Forwarded-Host"); h != "" {
			first, _, _ := strings.Cut(h, ",")
			return strings.TrimSpace(first)
		}
	}
	return r.Host
}

// ForwardedProto is the scheme the client used: "https" when the request
// came over TLS directly, or through a trusted reverse proxy whose
// X-Forwarded-Proto (its first, the client's) says so; else "http".
func ForwardedProto(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	if info := infoOf(r.Context()); info != nil && info.viaProxy {
		first, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
		if strings.EqualFold(strings.TrimSpace(first), "https") {
			return "https"
		}
	}
	return "http"
}

// trustedBy reports whether an address is in one of the networks.
func trustedBy(networks []netip.Prefix) func(netip.Addr) bool {
	return func(a netip.Addr) bool {
		for _, p := range networks {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
}

// ParseTrustedProxies parses a comma-separated list of addresses and
// networks (CIDR).
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, err
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
