package resolver

import (
	"cmp"
	"net/netip"
	"slices"

	"berth/store"
)

// scoped is one endpoint of the querying sandbox together with its network.
type scoped struct {
	ep *store.Endpoint
	nw *store.Network
}

// maxScoped is how many endpoints fit in the on-stack buffer of the lookup path; a sandbox
// with more networks still works, it just allocates.
const maxScoped = 8

// effective returns the sandbox whose network view sbID has: itself, or for ModeContainer
// the sandbox whose netns it shares (one hop: netmgr refuses to share a sharer).
func effective(snap *store.Snapshot, sbID string) (*store.Sandbox, bool) {
	sb, err := snap.Sandbox(sbID)
	if err == nil && sb.Mode == store.ModeContainer {
		sb, err = snap.Sandbox(sb.Container)
	}
	return sb, err == nil
}

// querierScope is dnsScope of the sandbox whose view sbID resolves with (itself, or the one
// it shares a netns with); nothing if it does not exist.
func querierScope(snap *store.Snapshot, sbID string, buf []scoped) []scoped {
	sb, ok := effective(snap, sbID)
	if !ok {
		return buf
	}
	return dnsScope(snap, sb, buf)
}

// dnsScope appends to buf the endpoints of sb that take part in DNS (those on user-defined
// networks), in Docker's order (less). buf is the caller's stack buffer.
func dnsScope(snap *store.Snapshot, sb *store.Sandbox, buf []scoped) []scoped {
	for _, ep := range snap.SandboxEndpoints(sb.ID) {
		nw, err := snap.Network(ep.NetworkID)
		if err != nil || !nw.UserDefined() {
			continue
		}
		buf = append(buf, scoped{ep: ep, nw: nw})
	}
	slices.SortFunc(buf, less)
	return buf
}

// less is Docker's Endpoint.Less reduced to what berth has: endpoints on non-internal
// networks first, then by network name (byte order, as Docker compares), then by ID so the
// order is total. Docker's --gw-priority and gateway-kind keys do not exist in berth: every
// bridge network has an IPv4 gateway and internal ones are already sorted last.
func less(a, b scoped) int {
	if a.nw.Internal != b.nw.Internal {
		if b.nw.Internal {
			return -1
		}
		return 1
	}
	if c := cmp.Compare(a.nw.Name, b.nw.Name); c != 0 {
		return c
	}
	return cmp.Compare(a.nw.ID, b.nw.ID)
}

// owner is who holds an endpoint that may be answered: a local sandbox, or for a remote
// endpoint (another host's, mirrored from the cluster store, with no sandbox record here)
// what the endpoint itself carries. A value, so the lookup path allocates nothing.
type owner struct {
	name     string // sandbox name: PTR targets, and what makes a match a "name"
	id       string // sandbox ID: its short form is a name too
	hostname string // "" for a remote endpoint: its hostname is only among its DNSNames
}

// visible returns the owner of an endpoint found by name or address, and whether the
// endpoint may be answered. A local endpoint must belong to an existing sandbox that is
// not in StateCreating: the restore pass puts a create cut short by a crash back in that
// state (and state files of earlier versions hold such records) until it undoes it, so
// half-made sandboxes are not announced. An endpoint added by `network connect` to a ready
// sandbox is answered as soon as its record exists, like Docker, which adds the records
// when the endpoint joins. A remote endpoint is answered as soon as it is mirrored: its
// host publishes only endpoints of ready sandboxes.
func visible(snap *store.Snapshot, ep *store.Endpoint) (owner, bool) {
	if ep.Remote() {
		return owner{name: ep.SandboxName, id: ep.SandboxID}, true
	}
	if sb, err := snap.Sandbox(ep.SandboxID); err == nil && sb.State != store.StateCreating {
		return owner{name: sb.Name, id: sb.ID, hostname: sb.Hostname}, true
	}
	return owner{}, false
}

// hasIPv6 reports whether any endpoint of sb holds an IPv6 address.
func hasIPv6(snap *store.Snapshot, sb *store.Sandbox) bool {
	for _, ep := range snap.SandboxEndpoints(sb.ID) {
		if ep.IPv6.IsValid() {
			return true
		}
	}
	return false
}

// appendAddr appends a to list unless it is invalid or already present.
func appendAddr(list []netip.Addr, a netip.Addr) []netip.Addr {
	if !a.IsValid() || slices.Contains(list, a) {
		return list
	}
	return append(list, a)
}
