package limits

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// TrustedProxies is the reverse proxies and load balancers in front of the
// gateway, whose X-Forwarded-For header is believed. A nil
// *TrustedProxies believes no one: every client is its TCP peer.
type TrustedProxies struct {
	nets []netip.Prefix
}

// ParseTrustedProxies parses list, comma-separated CIDRs such as
// "10.0.0.0/8, 2001:db8::/32"; a bare address stands for itself alone.
// An empty list returns nil. A CIDR with bits set past its prefix length
// (10.0.0.1/8) is refused rather than guessed at, and so is an IPv4-mapped
// IPv6 one, which no address would fall in: peers are matched in their
// IPv4 form.
func ParseTrustedProxies(list string) (*TrustedProxies, error) {
	var nets []netip.Prefix
	for s := range strings.SplitSeq(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := parsePrefix(s)
		if err != nil {
			return nil, err
		}
		nets = append(nets, p)
	}
	if nets == nil {
		return nil, nil
	}
	return &TrustedProxies{nets: nets}, nil
}

// parsePrefix parses one entry of ParseTrustedProxies' list.
func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if a, aerr := netip.ParseAddr(s); aerr == nil && a.Zone() == "" {
		p, err = netip.PrefixFrom(a, a.BitLen()), nil
	}
	switch {
	case err != nil:
		return netip.Prefix{}, fmt.Errorf("limits: trusted proxy %q: want a CIDR such as 10.0.0.0/8 or 2001:db8::/32, or an address: %w", s, err)
	case p.Addr().Is4In6():
		return netip.Prefix{}, fmt.Errorf("limits: trusted proxy %q: an IPv4-mapped IPv6 address matches no peer; write it in IPv4 form", s)
	case p != p.Masked():
		return netip.Prefix{}, fmt.Errorf("limits: trusted proxy %q: bits set past the /%d; did you mean %s?", s, p.Bits(), p.Masked())
	}
	return p, nil
}

// Client returns the address of the client that made r, the one the
// per-IP limits count (ClientKey is its key). That is the TCP peer,
// r.RemoteAddr, unless the peer is one of t's proxies: then it is the
// rightmost address of X-Forwarded-For that is not one of t's proxies,
// every proxy having appended the address it was connected from (several
// X-Forwarded-For headers are one list, in order). The entries left of it
// are the client's own claims, and are not read. A header that is
// missing, that names only proxies, or whose entry at that point is not
// an address (an IP, or an IP and port) leaves the peer as the client. A
// peer outside t's proxies is never believed, whatever it sends.
//
// The answer is an IP address, printed anew from its parsed form, so it
// never carries what a client wrote around it; a peer that is not an
// address (a listener other than TCP's) is given as r.RemoteAddr, cut as
// Echo cuts.
func (t *TrustedProxies) Client(r *http.Request) string {
	if a, ok := t.client(r); ok {
		return a.String()
	}
	return Echo(r.RemoteAddr)
}

// ClientKey returns the rate-limit key (see AddrKey) of the client that
// made r, as Client finds it.
func (t *TrustedProxies) ClientKey(r *http.Request) string {
	if a, ok := t.client(r); ok {
		return addrKey(a)
	}
	return AddrKey(r.RemoteAddr)
}

// client is Client's address; false when r.RemoteAddr is not one.
func (t *TrustedProxies) client(r *http.Request) (netip.Addr, bool) {
	peer, ok := parseEntry(r.RemoteAddr)
	if !ok {
		return netip.Addr{}, false
	}
	if t.trusts(peer) {
		if client, ok := t.forwardedFor(r.Header.Values("X-Forwarded-For")); ok {
			return client, true
		}
	}
	return peer, true
}

// forwardedFor walks the X-Forwarded-For values from the right and
// returns the first address not trusted; false when the values run out
// first or an entry on the way is not an address.
func (t *TrustedProxies) forwardedFor(values []string) (netip.Addr, bool) {
	for i := len(values) - 1; i >= 0; i-- {
		rest := values[i]
		for more := true; more; {
			entry := rest
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				entry, rest = rest[j+1:], rest[:j]
			} else {
				more = false
			}
			a, ok := parseEntry(strings.TrimSpace(entry))
			if !ok {
				return netip.Addr{}, false
			}
			if !t.trusts(a) {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

// trusts reports whether a is one of t's proxies.
func (t *TrustedProxies) trusts(a netip.Addr) bool {
	if t == nil {
		return false
	}
	for _, p := range t.nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseEntry parses an address, or an address and port, into the form
// prefixes match: IPv4 unmapped, no zone.
func parseEntry(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone(""), true
}

// AddrKey is the rate-limit key of a client at remoteAddr (host:port, as
// in http.Request.RemoteAddr): its IPv4 address, or the /64 network of its
// IPv6 address, since one host commonly holds a whole /64.
func AddrKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	return addrKey(a)
}

// addrKey is AddrKey of a parsed address.
func addrKey(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64) // cannot fail: a is IPv6
	return p.String()
}
