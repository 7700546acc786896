package netmgr

// macvlan and ipvlan networks (issue 19): sandboxes sit directly on a parent link of the
// host, each with a macvlan or ipvlan child of it that has its own address on the parent's
// LAN. There is no bridge, no veth and no firewall rule: the LAN's own router is the
// gateway. This file holds their options, the parent rules, the kernel work of the network
// (parent, host shim) and of its endpoints (the sandboxes' sub-interfaces); the rest of
// netmgr branches here where a bridge network would have a bridge or a veth.

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"berth/store"
)

// Options of the macvlan and ipvlan drivers (Docker's names, and berth's shim).
const (
	OptParent      = "parent"
	OptMacvlanMode = "macvlan_mode"
	OptIpvlanMode  = "ipvlan_mode"
	OptIpvlanFlag  = "ipvlan_flag"
	// OptHostShim adds a macvlan of the host's own on the parent, through which the host
	// reaches the sandboxes: the kernel never passes frames between a macvlan child and
	// its parent's own address.
	OptHostShim = "berth.host_shim"
)

// Docker's modes, default first (moby libnetwork/drivers/macvlan and ipvlan).
var (
	macvlanModes = []string{"bridge", "private", "vepa", "passthru"}
	ipvlanModes  = []string{"l2", "l3", "l3s"}
	ipvlanFlags  = []string{"bridge", "private", "vepa"}
)

// SubIfOptions are the checked options of a macvlan or ipvlan network.
type SubIfOptions struct {
	Driver   string       // store.DriverMacvlan or store.DriverIpvlan
	Parent   store.Parent // Name "": none given, berth makes an internal parent
	Mode     string       // always set: the driver's default unless given
	Flag     string       // ipvlan only: always set
	HostShim bool         // macvlan only
}

// parseSubIfOptions checks the -o options of a macvlan or ipvlan network, in key order so
// that a request with two faults always gets the same error. Every key is checked: a typo
// (macvlan_mod=private) would otherwise give a network in another mode than asked.
func (s *NetworkSpec) parseSubIfOptions(driver string, opts map[string]string) error {
	const field = "opt"
	o := &SubIfOptions{Driver: driver}
	for _, k := range slices.Sorted(maps.Keys(opts)) {
		v := opts[k]
		kv := k + "=" + v
		switch {
		case k == "":
			return invalid(field, kv, "empty key")
		case k == OptParent:
			p, err := parseParent(v)
			if err != nil {
				return err
			}
			o.Parent = p
		case k == OptMacvlanMode && driver == store.DriverMacvlan:
			if !slices.Contains(macvlanModes, v) {
				// dockerd's words (20.10, asked): the mode is case-sensitive.
				return invalid(field, kv, "requested macvlan mode '%s' is not valid, 'bridge' mode is the macvlan driver default", v)
			}
			o.Mode = v
		case k == OptIpvlanMode && driver == store.DriverIpvlan:
			if !slices.Contains(ipvlanModes, v) {
				// dockerd's words (20.10, asked).
				return invalid(field, kv, "requested ipvlan mode '%s' is not valid, 'l2' mode is the ipvlan driver default", v)
			}
			o.Mode = v
		case k == OptIpvlanFlag && driver == store.DriverIpvlan:
			if !slices.Contains(ipvlanFlags, v) {
				// moby's words (drivers/ipvlan, since 23.0; dockerd 20.10 had no flags and
				// took any value without a word).
				return invalid(field, kv, "requested ipvlan flag '%s' is not valid, 'bridge' is the ipvlan driver default", v)
			}
			o.Flag = v
		case k == OptHostShim && driver == store.DriverMacvlan:
			b, err := parseBool(field, v)
			if err != nil {
				return invalid(field, kv, "want true or false")
			}
			o.HostShim = b
		case k == OptHostShim:
			return invalid(field, kv, "the host shim is a macvlan: an ipvlan child shares the parent's MAC, use a macvlan network")
		case k == OptMTU:
			mtu, err := parseMTU(field, k, v)
			if err != nil {
				return err
			}
			s.MTU = mtu
		default:
			return invalid(field, kv, "not an option of the %s driver", driver)
		}
		s.Options[k] = v
	}
	if o.Mode == "" {
		o.Mode = map[string]string{store.DriverMacvlan: macvlanModes[0], store.DriverIpvlan: ipvlanModes[0]}[driver]
	}
	if driver == store.DriverIpvlan && o.Flag == "" {
		o.Flag = ipvlanFlags[0]
	}
	if o.HostShim && o.Mode != "bridge" {
		// The shim is a macvlan child of the parent in mode bridge: private children talk
		// to no sibling, vepa ones only through a hairpinning switch, and passthru takes
		// the parent for itself.
		return invalid(field, OptHostShim+"="+opts[OptHostShim], "the host shim reaches sandboxes in macvlan mode bridge only, not %s", o.Mode)
	}
	s.Sub = o
	return nil
}

// parseParent reads -o parent=NAME: a link name, where NAME.ID with a numeric ID is the
// 802.1Q sub-interface ID of link NAME (made if missing, as Docker does). A dotted name
// whose suffix is not a number is a plain link name.
func parseParent(v string) (store.Parent, error) {
	kv := OptParent + "=" + v
	if err := checkIfName("opt", v); err != nil {
		return store.Parent{}, invalid("opt", kv, "%s", err.(*InvalidError).Reason)
	}
	p := store.Parent{Name: v}
	i := strings.LastIndexByte(v, '.')
	if i <= 0 || i == len(v)-1 || strings.Trim(v[i+1:], "0123456789") != "" {
		return p, nil
	}
	id, err := strconv.Atoi(v[i+1:])
	if err != nil || id < 1 || id > 4094 {
		// dockerd's words (moby libnetwork/drivers/macvlan/macvlan_setup.go, parseVlan).
		return p, invalid("opt", kv, "vlan id must be between 1-4094, received: %s", v[i+1:])
	}
	p.Link, p.VLAN = v[:i], id
	return p, nil
}

// isSubIfDevName reports whether l is named like a device berth makes in the daemon's
// netns for these networks (kernel.go's names): an internal parent or its veth peer, a
// shim, or a sandbox interface under its temporary name (kernel.Linux makes those in the
// sandbox's netns; one in the daemon's is a leftover all the same).
func isSubIfDevName(l string) bool {
	for _, x := range []struct {
		prefix string
		hex    int
	}{{InternalParentPrefix, 10}, {InternalPeerPrefix, 10}, {ShimPrefix, 11}, {SubIfTempPrefix, 11}} {
		if strings.HasPrefix(l, x.prefix) && len(l) == len(x.prefix)+x.hex && isHex(l[len(x.prefix):]) {
			return true
		}
	}
	return false
}

// shimMAC is a shim's fixed MAC, derived from the network ID as the bridges' are, so the
// LAN's neighbour tables keep one entry for it across restarts.
func shimMAC(netID string) net.HardwareAddr {
	h := sha256.Sum256([]byte("shim/" + netID))
	return net.HardwareAddr{0x02, 0x42, h[0], h[1], h[2], h[3]}
}

// applySubIf makes n (being built from spec) a macvlan or ipvlan network and checks its
// parent against the kernel and the other networks; nothing is changed yet.
func (m *Manager) applySubIf(snap *store.Snapshot, n *store.Network, o *SubIfOptions) error {
	n.Driver, n.Bridge = o.Driver, ""
	n.Mode, n.Flag, n.HostShim = o.Mode, o.Flag, o.HostShim
	n.Parent = o.Parent
	if n.Parent.Name == "" {
		// Docker's rule: no parent means an internal network, on a parent of its own.
		n.Parent = store.Parent{Name: InternalParentName(n.ID), Internal: true}
		n.Internal, n.ParentCreated = true, true
		return nil
	}
	kv := OptParent + "=" + n.Parent.Name
	// The parent, and the lower link of a VLAN parent (which berth would make on it).
	for _, l := range []string{n.Parent.Name, n.Parent.Link} {
		switch {
		case l == "lo":
			// dockerd's words (moby drivers/macvlan and ipvlan): the kernel refuses a child
			// of loopback (and a VLAN on it), which would otherwise surface only later.
			return invalid("opt", kv, "loopback interface is not a valid %s parent link", n.Driver)
		case l != "" && berthDevice(snap, l):
			return invalid("opt", kv, "%s is a device berth made for its own networks, not a parent interface", l)
		}
	}
	if err := checkParentFree(snap, n); err != nil {
		return err
	}
	links, err := m.cfg.Kernel.LinkNames()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	switch {
	case slices.Contains(links, n.Parent.Name): // there: used as it is
	case n.Parent.VLAN > 0 && slices.Contains(links, n.Parent.Link):
		n.ParentCreated = true // network rm deletes the VLAN device it made, as Docker does
	case n.Parent.VLAN > 0:
		return invalid("opt", kv, "parent interface %s of VLAN %d not found", n.Parent.Link, n.Parent.VLAN)
	default:
		return invalid("opt", kv, "parent interface %s not found", n.Parent.Name)
	}
	return nil
}

// berthDevice reports whether link l is one berth made for a network: a bridge, VXLAN
// device, veth, internal parent or shim. None of them is a parent for a macvlan network.
func berthDevice(snap *store.Snapshot, l string) bool {
	if _, err := snap.NetworkByBridge(l); err == nil {
		return true
	}
	return ownedName(l)
}

// checkParentFree applies the parent rules between networks: macvlan networks may share a
// plain parent in one mode (the kernel takes macvlan children of several modes on one
// parent, but a network's isolation would then depend on the other's); everything else
// (an ipvlan next to anything, a VLAN sub-interface, whose network owns it, another mode)
// is one network per parent, as dockerd 20.10 has it for every parent ("network dm-... is
// already using parent interface eth0", asked).
func checkParentFree(snap *store.Snapshot, n *store.Network) error {
	kv := OptParent + "=" + n.Parent.Name
	for _, o := range snap.Networks() {
		if !o.OnParent() || o.Parent.Name != n.Parent.Name {
			continue
		}
		share := n.Driver == store.DriverMacvlan && o.Driver == store.DriverMacvlan && n.Parent.VLAN == 0 &&
			n.Mode == o.Mode && n.Mode != "passthru" // passthru: one child per parent, the kernel's rule
		if share {
			continue
		}
		if o.Driver == n.Driver && o.Mode != n.Mode {
			return invalid("opt", kv, "network %s is already using parent interface %s in %s mode %s", o.Name, n.Parent.Name, o.Driver, o.Mode)
		}
		return invalid("opt", kv, "network %s is already using parent interface %s", o.Name, n.Parent.Name)
	}
	return nil
}

// parentSpec is the kernel's view of n's parent.
func parentSpec(n *store.Network) ParentSpec {
	return ParentSpec{Name: n.Parent.Name, Link: n.Parent.Link, VLAN: n.Parent.VLAN, Internal: n.Parent.Internal}
}

// reserveShim picks the host shim's address: the highest free one of the IP range (the
// part of the LAN berth may hand out, so no other LAN host has it), one per network, of
// its first family. Dynamic addresses are handed out from the bottom, so the two meet
// last.
func reserveShim(n *store.Network) error {
	if !n.HostShim || len(n.Subnets) == 0 {
		return nil
	}
	sub := n.Subnets[0]
	rng := sub.IPRange
	if !rng.IsValid() {
		rng = sub.Subnet
	}
	for a := lastAddr(rng); rng.Contains(a); a = a.Prev() {
		if _, aux := auxName(n, a); !aux && !reserved(sub, a) {
			n.ShimAddrs = []netip.Addr{a}
			return nil
		}
	}
	return invalid("opt", OptHostShim+"=true", "no free address left in %s for the host shim", rng)
}

// shimAddr returns the address n's shim takes, if n has one.
func shimAddr(n *store.Network, a netip.Addr) bool {
	return n.HostShim && slices.Contains(n.ShimAddrs, a)
}

// createSubIfNetworkLocked records n and makes its parent (if berth makes it) and its shim,
// or undoes what it made.
func (m *Manager) createSubIfNetworkLocked(n *store.Network) error {
	if err := m.cfg.Store.Update(func(tx *store.Tx) error { return tx.PutNetwork(n) }); err != nil {
		return err
	}
	crashPoint("network-create:recorded")
	_, err := m.ensureParent(n)
	if err == nil && n.HostShim {
		err = m.cfg.Kernel.EnsureShim(m.shimSpec(m.cfg.Store.Snapshot(), n))
	}
	if err != nil {
		// Undo: the record must not outlive a failed create, nor a device berth made.
		uerr := m.deleteSubIfDevices(n)
		if serr := m.cfg.Store.Update(func(tx *store.Tx) error { return tx.DeleteNetwork(n) }); serr != nil {
			uerr = errors.Join(uerr, serr)
		}
		return errors.Join(err, uerr)
	}
	return nil
}

// ensureParent makes n's parent exist and be up, and reports whether it had to make it. A
// parent the kernel had to make although the record says it was there (the user's VLAN
// device gone after a reboot) is berth's from then on, and the record says so.
func (m *Manager) ensureParent(n *store.Network) (created bool, err error) {
	created, err = m.cfg.Kernel.EnsureParent(parentSpec(n))
	if err != nil {
		return false, err // the kernel's errors name the parent
	}
	if created && !n.ParentCreated {
		c := n.Copy()
		c.ParentCreated = true
		return true, m.cfg.Store.Update(func(tx *store.Tx) error { return tx.PutNetwork(c) })
	}
	return created, nil
}

// deleteSubIfDevices deletes n's shim and, if berth made it, its parent (with the
// children left on it: the kernel takes them along).
func (m *Manager) deleteSubIfDevices(n *store.Network) error {
	var errs []error
	if n.HostShim {
		errs = append(errs, m.cfg.Kernel.DeleteLink(ShimName(n.ID)))
	}
	if n.ParentCreated {
		errs = append(errs, m.cfg.Kernel.DeleteLink(n.Parent.Name))
	}
	return errors.Join(errs...)
}

// shimSpec is n's shim with a host route to each of its sandboxes' addresses (of the
// shim's family) in snap.
func (m *Manager) shimSpec(snap *store.Snapshot, n *store.Network) ShimSpec {
	spec := ShimSpec{Name: ShimName(n.ID), Parent: n.Parent.Name, MAC: shimMAC(n.ID)}
	if len(n.ShimAddrs) == 0 {
		return spec
	}
	a := n.ShimAddrs[0]
	spec.Addr = netip.PrefixFrom(a, a.BitLen())
	for _, ep := range snap.NetworkEndpoints(n.ID) {
		for _, x := range []netip.Addr{ep.IPv4, ep.IPv6} {
			if x.IsValid() && x.Is4() == a.Is4() {
				spec.Routes = append(spec.Routes, netip.PrefixFrom(x, x.BitLen()))
			}
		}
	}
	return spec
}

// syncShims makes the shim routes of the networks of eps (with a shim) those of the
// records. A failure costs the host its way to some sandboxes, not the sandboxes
// anything, so it is logged; the next change to the network, or a restart, tries again.
func (m *Manager) syncShims(eps []*store.Endpoint) {
	snap := m.cfg.Store.Snapshot()
	done := map[string]bool{}
	for _, ep := range eps {
		if done[ep.NetworkID] {
			continue
		}
		done[ep.NetworkID] = true
		n, err := snap.Network(ep.NetworkID)
		if err != nil || !n.OnParent() || !n.HostShim {
			continue
		}
		if err := m.cfg.Kernel.EnsureShim(m.shimSpec(snap, n)); err != nil {
			m.cfg.Log.Warn("host shim routes", "network", n.Name, "shim", ShimName(n.ID), "err", err)
		}
	}
}

// attachSubIf makes ep's macvlan or ipvlan child of n's parent inside sb's netns.
func (m *Manager) attachSubIf(sb *store.Sandbox, n *store.Network, ep *store.Endpoint, addrs []netip.Prefix) error {
	spec := SubIfSpec{NetNSPath: sb.NetNSPath, Parent: n.Parent.Name, Kind: n.Driver, Mode: n.Mode, Flag: n.Flag,
		IfName: ep.IfName, MTU: n.MTU, Addrs: addrs}
	if n.Driver == store.DriverMacvlan {
		spec.MAC, _ = net.ParseMAC(ep.MAC)
	}
	return m.cfg.Kernel.AddSubIf(spec)
}

// onParent reports whether ep (one of this host's) is on a macvlan or ipvlan network:
// the only endpoints without a host veth.
func onParent(ep *store.Endpoint) bool { return ep.HostVeth == "" && !ep.Remote() }
