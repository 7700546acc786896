package resolver

import (
	"net/netip"
	"strings"

	"berth/store"
)

// Reverse-lookup zones, compared case-insensitively and without the trailing dot.
const (
	arpaV4 = ".in-addr.arpa"
	arpaV6 = ".ip6.arpa"
)

// lookupPTR answers a reverse query for an address held by a visible sandbox (local, or
// another host's through a remote endpoint) on a network the querying sandbox shares. The target is the owner's sandbox name (never an alias or
// hostname) and the network name, as Docker writes it. Networks are tried in the querying
// sandbox's order, so an address present on two shared networks names the first.
func lookupPTR(snap *store.Snapshot, sbID, qname string) Result {
	addr, ok := parseReverse(qname)
	if !ok {
		return Result{}
	}
	var buf [maxScoped]scoped
	scope := querierScope(snap, sbID, buf[:0])
	if len(scope) == 0 {
		return Result{}
	}
	// The index answers for every network; the scope decides which holders may be named,
	// and in which order.
	holders := snap.EndpointsByIP(addr)
	for _, s := range scope {
		for _, ep := range holders {
			if ep.NetworkID != s.nw.ID {
				continue
			}
			name := ep.SandboxName
			if !ep.Remote() {
				owner := visible(snap, ep)
				if owner == nil {
					continue
				}
				name = owner.Name
			}
			return Result{Kind: Found, Target: name + "." + s.nw.Name + ".", Network: s.nw.Name, Source: srcPTR}
		}
	}
	return Result{}
}

// parseReverse turns a complete reverse name into the address it names:
// "4.3.2.1.in-addr.arpa." is 1.2.3.4 and 32 nibbles under ip6.arpa an IPv6 address.
// Partial names (a /24 zone, say) and malformed labels are not addresses.
func parseReverse(qname string) (netip.Addr, bool) {
	name := strings.TrimSuffix(qname, ".")
	switch {
	case hasSuffixFold(name, arpaV4):
		return parseReverse4(name[:len(name)-len(arpaV4)])
	case hasSuffixFold(name, arpaV6):
		return parseReverse6(name[:len(name)-len(arpaV6)])
	}
	return netip.Addr{}, false
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// parseReverse4 parses "d.c.b.a": four decimal octets without leading zeros. Docker matches
// the reversed text against its records, so "01" never named an address there either.
// It walks the labels by hand instead of strings.Split: no allocation per query.
func parseReverse4(s string) (netip.Addr, bool) {
	var b [4]byte
	// Labels come least significant first: the first label is b[3].
	for i := 3; i >= 0; i-- {
		label := s
		if i > 0 {
			dot := strings.IndexByte(s, '.')
			if dot < 0 {
				return netip.Addr{}, false
			}
			label, s = s[:dot], s[dot+1:]
		}
		if len(label) == 0 || len(label) > 3 || (len(label) > 1 && label[0] == '0') {
			return netip.Addr{}, false
		}
		v := 0
		for j := 0; j < len(label); j++ {
			c := label[j]
			if c < '0' || c > '9' {
				return netip.Addr{}, false
			}
			v = v*10 + int(c-'0')
		}
		if v > 255 {
			return netip.Addr{}, false
		}
		b[i] = byte(v)
	}
	return netip.AddrFrom4(b), true
}

// parseReverse6 parses 32 dot-separated hex nibbles, least significant first.
func parseReverse6(s string) (netip.Addr, bool) {
	const nibbles = 32
	if len(s) != 2*nibbles-1 {
		return netip.Addr{}, false
	}
	var b [16]byte
	for i := 0; i < nibbles; i++ {
		if i > 0 && s[2*i-1] != '.' {
			return netip.Addr{}, false
		}
		v, ok := unhex(s[2*i])
		if !ok {
			return netip.Addr{}, false
		}
		n := nibbles - 1 - i // position from the most significant nibble
		if n%2 == 0 {
			b[n/2] |= v << 4
		} else {
			b[n/2] |= v
		}
	}
	a := netip.AddrFrom16(b)
	if a.Is4In6() {
		return netip.Addr{}, false // the store unmaps, so this would name an IPv4 holder
	}
	return a, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
