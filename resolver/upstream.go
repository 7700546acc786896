package resolver

import (
	"net/netip"
	"strings"

	"berth/store"
)

// maxUpstreams is Docker's maxExtDNS: glibc reads at most three nameservers, so users
// expect a fourth to be ignored, and failover through more would only add latency.
const maxUpstreams = 3

// embeddedNS is the embedded resolver's own address. It is never an upstream: forwarding to
// it would loop (moby #47716).
var embeddedNS = netip.AddrFrom4([4]byte{127, 0, 0, 11})

// EmbeddedNS6 is the embedded resolver's IPv6 address, which dnsd adds to the lo of every
// sandbox with IPv6 and an IPv6-only sandbox's resolv.conf names: a ULA whose 40-bit global
// ID is "berth" in ASCII (fd 62 65 72 74 68), so it is stable and documented, and ::11 for
// 127.0.0.11. Never an upstream either, and no network's subnet may contain it
// (netmgr refuses one).
var EmbeddedNS6 = netip.MustParseAddr("fd62:6572:7468::11")

// Nameserver returns the address the resolv.conf of an embedded sandbox sandboxID names:
// EmbeddedNS6 if it has no IPv4 address on any of its networks (IPv6-only networks alone),
// else 127.0.0.11, as Docker's. The zero Addr if the sandbox does not exist.
func Nameserver(snap *store.Snapshot, sandboxID string) netip.Addr {
	sb, ok := effective(snap, sandboxID)
	if !ok {
		return netip.Addr{}
	}
	return nameserver(snap, sb)
}

func nameserver(snap *store.Snapshot, sb *store.Sandbox) netip.Addr {
	for _, ep := range snap.SandboxEndpoints(sb.ID) {
		if ep.IPv4.IsValid() {
			return embeddedNS
		}
	}
	return EmbeddedNS6
}

// Upstream is one nameserver the embedded DNS forwards to.
type Upstream struct {
	Addr   netip.AddrPort // port 53 unless given
	HostNS bool           // dial from the daemon's netns (nameserver from the host resolv.conf); else from inside the sandbox (--dns)
}

// String is "host(ADDR)" for a host-namespace upstream and ADDR otherwise, as Docker writes
// its ExtServers comment; ":PORT" is shown only when it is not 53.
func (u Upstream) String() string {
	s := u.Addr.Addr().String()
	if u.Addr.Port() != 53 {
		s = u.Addr.String()
	}
	if u.HostNS {
		return "host(" + s + ")"
	}
	return s
}

// HostConfig is the daemon's view of name resolution, built by package daemon at start.
type HostConfig struct {
	ResolvConfPath             string   // e.g. /etc/resolv.conf (used in comments)
	ResolvConf                 []byte   // its content
	DNS, DNSSearch, DNSOptions []string // daemon --dns, --dns-search, --dns-option (act like per-sandbox overrides)
}

// Upstreams returns where the embedded DNS of sandbox sandboxID forwards, in order: the
// sandbox's --dns, else the daemon's --dns (both dialled inside the sandbox), else the
// nameservers of the host file (dialled from the daemon's netns, so 127.0.0.53 works). The
// embedded resolver's own 127.0.0.11 and EmbeddedNS6 are dropped first, then the list is cut to three.
// Host-namespace upstreams are dropped when the sandbox has no external access
// (CVE-2024-29018), so a sandbox on internal networks only reaches its own --dns servers.
// Call it per query (or on every connect/disconnect): the answer changes with the networks.
// nil means none: dnsd answers SERVFAIL.
func Upstreams(snap *store.Snapshot, sandboxID string, host HostConfig) []Upstream {
	sb, ok := effective(snap, sandboxID)
	if !ok {
		return nil
	}
	ups := loadConfig(sb, host).upstreams()
	if ExternalAccess(snap, sandboxID) {
		return ups
	}
	kept := ups[:0]
	for _, u := range ups {
		if !u.HostNS {
			kept = append(kept, u)
		}
	}
	if len(kept) == 0 {
		return nil
	}
	return kept
}

// ExternalAccess reports whether sandbox sandboxID (or the sandbox it shares) can reach
// beyond its networks: an endpoint on a bridge network (user-defined or the default one),
// an overlay, or a macvlan/ipvlan network on the LAN, that is not internal and has a
// gateway. A host-mode sandbox is the daemon's own netns and
// always has. Docker's hasExternalAccess, re-evaluated on every call.
func ExternalAccess(snap *store.Snapshot, sandboxID string) bool {
	sb, ok := effective(snap, sandboxID)
	if !ok {
		return false
	}
	if sb.Mode == store.ModeHost {
		return true
	}
	for _, ep := range snap.SandboxEndpoints(sb.ID) {
		nw, err := snap.Network(ep.NetworkID)
		if err != nil || !(nw.Bridged() || nw.OnParent()) || nw.Internal {
			continue
		}
		for _, sn := range nw.Subnets {
			if sn.Gateway.IsValid() {
				return true
			}
		}
	}
	return false
}

// Embedded reports whether sandbox sandboxID (or the sandbox it shares in container mode)
// has an endpoint on a user-defined network, and so gets the embedded DNS and a resolv.conf
// pointing at 127.0.0.11. It says nothing about the past: Docker keeps a resolver running
// after the last user network is disconnected, and whether dnsd does too is dnsd's choice.
func Embedded(snap *store.Snapshot, sandboxID string) bool {
	sb, ok := effective(snap, sandboxID)
	return ok && embedded(snap, sb)
}

func embedded(snap *store.Snapshot, sb *store.Sandbox) bool {
	if sb.Mode == store.ModeHost || sb.Mode == store.ModeNone {
		return false
	}
	for _, ep := range snap.SandboxEndpoints(sb.ID) {
		if nw, err := snap.Network(ep.NetworkID); err == nil && nw.UserDefined() {
			return true
		}
	}
	return false
}

// NDotsSet reports whether the resolv.conf of sandbox sandboxID has an ndots option before
// berth adds ndots:0: from the host file, or from --dns-option or the daemon's
// --dns-option (even ndots:0, even an invalid one, as Docker's sb.ndotsSet), for NDots. It depends only on the sandbox record and host, so dnsd can compute it once
// per sandbox.
func NDotsSet(snap *store.Snapshot, sandboxID string, host HostConfig) bool {
	sb, ok := effective(snap, sandboxID)
	if !ok {
		return false
	}
	_, set := loadConfig(sb, host).rc.option("ndots")
	return set
}

// upstreams returns the nameservers of c without 127.0.0.11 and EmbeddedNS6, at most
// maxUpstreams.
func (c *config) upstreams() []Upstream {
	var out []Upstream
	for _, u := range c.servers {
		if a := u.Addr.Addr().Unmap().WithZone(""); a == embeddedNS || a == EmbeddedNS6 {
			continue
		}
		if len(out) == maxUpstreams {
			break
		}
		out = append(out, u)
	}
	return out
}

// parseServer parses a --dns value: an address ("1.2.3.4", "fe80::1%eth0") or an address
// and port ("1.2.3.4:5353", "[::1]:5353"). The port defaults to 53.
func parseServer(s string) (netip.AddrPort, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, 53), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Port() != 0 {
		return ap, true
	}
	return netip.AddrPort{}, false
}
