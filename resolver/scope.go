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
// order is total. Docker's --gw-priority and gateway-kind keys do not exist in berth, and
// neither does Docker 28's gateway count (dual-stack before single-family networks): an
// IPv6-only network sorts by name among the others, as every network did in Docker 20.10.
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

// visible returns the sandbox of a local endpoint found by name or address if the endpoint
// may be answered, else nil. The record must belong to an existing sandbox that is not in
// StateCreating: the restore pass puts a create cut short by a crash back in that state
// (and state files of earlier versions hold such records) until it undoes it, so half-made
// sandboxes are not announced. An endpoint added by `network connect` to a ready sandbox is
// answered as soon as its record exists, like Docker, which adds the records when the
// endpoint joins.
//
// A remote endpoint (another host's, mirrored from the cluster store) has no sandbox record
// here: callers check ep.Remote() first and answer it as soon as it is mirrored (its host
// publishes only endpoints of ready sandboxes), named by ep.SandboxName. Two calls rather
// than one returning a name: the local path, every lookup's, stays a pointer return.
func visible(snap *store.Snapshot, ep *store.Endpoint) *store.Sandbox {
	if sb, err := snap.Sandbox(ep.SandboxID); err == nil && sb.State != store.StateCreating {
		return sb
	}
	return nil
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
