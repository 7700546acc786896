package resolver

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"

	"berth/store"
)

// defaultHosts starts every hosts file, as Docker's etchosts.Build writes it.
const defaultHosts = "127.0.0.1\tlocalhost\n" +
	"::1\tlocalhost ip6-localhost ip6-loopback\n" +
	"fe00::\tip6-localnet\n" +
	"ff00::\tip6-mcastprefix\n" +
	"ff02::1\tip6-allnodes\n" +
	"ff02::2\tip6-allrouters\n"

// Hosts renders the hosts file of sandbox sandboxID (a container-mode sandbox gets the file
// of the sandbox it shares); nil if the sandbox does not exist. Lines, in Docker's order:
//
//  1. localhost and the IPv6 loopback names (always: berth does not probe whether the
//     sandbox's lo has IPv6);
//  2. --add-host entries in order, "HOST:IP" (or "HOST=IP") written "IP<TAB>HOST"; an IPv6
//     IP may keep its colons ("h:::1") or brackets ("h:[::1]");
//  3. legacy --link entries on the default bridge: for each link of the sandbox's endpoint
//     there whose target is also on it, "IP<TAB>ALIAS HOSTNAME NAME" for the target's IPv4
//     and IPv6, repeated words dropped. Docker adds them as extra hosts, so they come before
//     the sandbox's own lines. netmgr re-renders a linker when its target's address changes;
//  4. the sandbox's own addresses, networks in join order, IPv4 then IPv6:
//     "IP<TAB>HOSTNAME", plus the first label when the hostname has dots ("a.b a").
//
// HOSTNAME is the sandbox's Hostname, or its name when unset (Docker's default is the
// 12-hex short ID; berth has names for every sandbox). Peers on user-defined networks are
// never written: they are found through the embedded DNS.
//
// A host-mode sandbox without --add-host should get a copy of the host's own hosts file
// instead, which Hosts cannot read: the caller decides (Docker does the same).
func Hosts(snap *store.Snapshot, sandboxID string) []byte {
	sb, ok := effective(snap, sandboxID)
	if !ok {
		return nil
	}
	var b bytes.Buffer
	b.WriteString(defaultHosts)
	for _, h := range sb.ExtraHosts {
		name, ip, ok := splitExtraHost(h)
		if ok && ip == "host-gateway" {
			ip, ok = hostGateway(snap)
		}
		if ok {
			b.WriteString(ip + "\t" + name + "\n")
		}
	}
	for _, l := range legacyLinks(snap, sb) {
		b.WriteString(l)
	}
	names := hostsNames(sb)
	for _, ep := range snap.SandboxEndpoints(sb.ID) {
		for _, a := range []netip.Addr{ep.IPv4, ep.IPv6} {
			if a.IsValid() {
				b.WriteString(a.String() + "\t" + names + "\n")
			}
		}
	}
	return b.Bytes()
}

// hostGateway is what --add-host NAME:host-gateway maps to: the default bridge's IPv4
// gateway, the daemon's address every bridge sandbox can reach (Docker's default too).
func hostGateway(snap *store.Snapshot) (string, bool) {
	for _, n := range snap.Networks() {
		if defaultBridge(n) {
			for _, s := range n.Subnets {
				if s.Subnet.Addr().Is4() {
					return s.Gateway.String(), true
				}
			}
		}
	}
	return "", false
}

// splitExtraHost splits an --add-host value at the first '=' or, without one, at the first
// ':' (so "h:fd00::1" keeps the IPv6 address whole).
func splitExtraHost(h string) (name, ip string, ok bool) {
	name, ip, ok = strings.Cut(h, "=")
	if !ok {
		name, ip, ok = strings.Cut(h, ":")
	}
	name, ip = strings.TrimSpace(name), strings.TrimSpace(ip)
	if strings.HasPrefix(ip, "[") && strings.HasSuffix(ip, "]") {
		ip = ip[1 : len(ip)-1]
	}
	if !ok || name == "" || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return "", "", false
	}
	// Only a plain address (or host-gateway) may reach the file: a zone could carry a line
	// break. netmgr refuses such values already; this keeps the renderer safe on its own.
	if ip == "host-gateway" {
		return name, ip, true
	}
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" {
		return "", "", false
	}
	return name, a.String(), true
}

// hostsNames is what the sandbox's own lines map to: the hostname, plus its first label
// when it has dots.
func hostsNames(sb *store.Sandbox) string {
	h := sb.Hostname
	if h == "" {
		h = sb.Name
	}
	if first, _, ok := strings.Cut(h, "."); ok && first != "" {
		return h + " " + first
	}
	return h
}

// legacyLinks returns the hosts lines for the --link entries of sb on the default bridge.
func legacyLinks(snap *store.Snapshot, sb *store.Sandbox) []string {
	var lines []string
	for _, ep := range snap.SandboxEndpoints(sb.ID) {
		nw, err := snap.Network(ep.NetworkID)
		if err != nil || !defaultBridge(nw) {
			continue
		}
		for _, l := range ep.Links {
			target, err := snap.SandboxByName(l.Target)
			if err != nil {
				continue
			}
			tep, err := snap.EndpointOf(nw.ID, target.ID)
			if err != nil {
				continue
			}
			names := linkNames(l, target)
			for _, a := range []netip.Addr{tep.IPv4, tep.IPv6} {
				if !a.IsValid() {
					continue
				}
				if line := a.String() + "\t" + names + "\n"; !slices.Contains(lines, line) {
					lines = append(lines, line)
				}
			}
		}
	}
	return lines
}

// linkNames is "ALIAS HOSTNAME NAME" for a legacy link, without repeated words.
func linkNames(l store.Link, target *store.Sandbox) string {
	alias := l.Alias
	if alias == "" {
		alias = target.Name
	}
	host := target.Hostname
	if host == "" {
		host = target.Name
	}
	words := []string{alias}
	for _, w := range []string{host, target.Name} {
		if !slices.Contains(words, w) {
			words = append(words, w)
		}
	}
	return strings.Join(words, " ")
}

// defaultBridge reports whether nw is the predefined "bridge" network, the only one where
// --link writes hosts entries.
func defaultBridge(nw *store.Network) bool {
	return nw.Predefined && nw.Driver == store.DriverBridge
}
