package netmgr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"berth/internal/nsutil"
	"berth/resolver"
	"berth/store"
)

// Restore reconciles the kernel with the store after a start, a graceful stop or a kill -9:
//   - predefined networks exist; every bridge exists with its addresses;
//   - a sandbox caught half-created (its records in state creating, or an intent file) is
//     undone; a ready sandbox whose netns is gone is dropped
//     (its addresses released); a ready sandbox whose netns lives gets any missing veth back;
//   - an overlay network gets its VXLAN device back too, with its remote endpoints as peers;
//   - a macvlan or ipvlan network gets the parent berth makes and its host shim back, and
//     its sandboxes their interfaces where the parent was remade or the interface is gone;
//     a missing parent of the user's (a NIC unplugged) is logged and the network left as
//     it is, so the others come up;
//   - berth-named veths, bridges, VXLAN devices, internal parents and shims with no record
//     are deleted (nothing else is touched).
func (m *Manager) Restore(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := m.ensurePredefined(); err != nil {
		return fmt.Errorf("restore: predefined networks: %w", err)
	}
	m.recoverIntents()
	snap := m.cfg.Store.Snapshot()
	parents := parentStates{}
	for _, n := range snap.Networks() {
		ensure := m.ensureBridge
		switch {
		case n.Global():
			ensure = func(n *store.Network) error { return m.restoreOverlay(snap, n) }
		case n.OnParent():
			ensure = func(n *store.Network) error { parents[n.ID] = m.restoreParent(n); return nil }
		}
		if err := ensure(n); err != nil {
			return fmt.Errorf("restore: network %s: %w", n.Name, err)
		}
	}
	links, err := m.cfg.Kernel.LinkNames()
	if err != nil {
		return fmt.Errorf("restore: list links: %w", err)
	}
	have := make(map[string]bool, len(links))
	for _, l := range links {
		have[l] = true
	}
	for _, sb := range snap.Sandboxes() {
		if err := m.restoreSandbox(snap, sb, have, parents); err != nil {
			return fmt.Errorf("restore: sandbox %s: %w", sb.Name, err)
		}
	}
	m.restoreShims(parents)
	if err := m.sweepOrphans(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	m.sweepStale()
	m.restorePorts(m.cfg.Store.Snapshot())
	if err := m.syncFirewall(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	snap = m.cfg.Store.Snapshot()
	m.restoreFiles(snap)
	m.cfg.Log.Info("state restored", "networks", len(snap.Networks()), "sandboxes", len(snap.Sandboxes()))
	return nil
}

func (m *Manager) restoreSandbox(snap *store.Snapshot, sb *store.Sandbox, links map[string]bool, parents parentStates) error {
	if sb.State != store.StateReady {
		m.cfg.Log.Warn("undoing half-created sandbox", "sandbox", sb.Name)
		return m.teardown(sb, false)
	}
	if !m.cfg.Kernel.NetNSExists(sb.NetNSPath) {
		if sb.Mode == store.ModeHost {
			return m.cfg.Kernel.PinNetNS(sb.NetNSPath, "/proc/self/ns/net")
		}
		m.cfg.Log.Warn("netns gone, dropping sandbox", "sandbox", sb.Name, "path", sb.NetNSPath)
		return m.teardown(sb, false)
	}
	if ownsUTS(sb) && !m.cfg.Kernel.NetNSExists(sb.UTSPath) {
		m.cfg.Log.Warn("recreating missing uts namespace", "sandbox", sb.Name, "path", sb.UTSPath)
		if err := m.cfg.Kernel.CreateUTSNS(sb.UTSPath, hostnameOf(sb), sb.Domainname); err != nil {
			return err
		}
	}
	repaired := false
	for _, ep := range snap.SandboxEndpoints(sb.ID) {
		if onParent(ep) {
			ok, err := m.restoreSubIf(snap, sb, ep, parents)
			if err != nil {
				return err
			}
			repaired = repaired || ok
			continue
		}
		if links[ep.HostVeth] {
			continue
		}
		n, err := snap.Network(ep.NetworkID)
		if err != nil {
			return fmt.Errorf("endpoint %s: %w", store.ShortID(ep.ID), err)
		}
		m.cfg.Log.Warn("recreating missing veth", "sandbox", sb.Name, "network", n.Name, "veth", ep.HostVeth)
		if err := m.attach(sb, n, ep); err != nil {
			return err
		}
		repaired = true
	}
	if repaired {
		return m.setRoutes(snap, sb)
	}
	return nil
}

// sweepOrphans deletes veths and bridges that carry berth's names but have no record.
func (m *Manager) sweepOrphans() error {
	snap := m.cfg.Store.Snapshot()
	links, err := m.cfg.Kernel.LinkNames()
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, n := range snap.Networks() {
		known[n.Bridge] = true
		if n.OnParent() {
			known[n.Parent.Name] = true
			if n.Parent.Internal {
				known[PeerName(n.Parent.Name)] = true
			}
			if n.HostShim {
				known[ShimName(n.ID)] = true
			}
		}
		if n.Global() {
			known[vxlanDev(n)] = true
		}
		for _, ep := range snap.NetworkEndpoints(n.ID) {
			known[ep.HostVeth] = true
		}
	}
	var errs []error
	for _, l := range links {
		if ownedName(l) && !known[l] {
			m.cfg.Log.Warn("removing orphaned device", "link", l)
			errs = append(errs, m.cfg.Kernel.DeleteLink(l))
		}
	}
	return errors.Join(errs...)
}

// sweepStale removes what a crash in the middle of a rename or removal can leave outside
// the records: a second pin of a sandbox's own netns under another name, the /etc/netns dir
// of a name no sandbox has any more (only if berth generated it and no netns of that name
// exists) and state-dir copies of sandboxes that are gone.
func (m *Manager) sweepStale() {
	snap := m.cfg.Store.Snapshot()
	paths := map[string]bool{}
	owned := map[nsutil.ID]bool{} // netns that only berth sandboxes pin
	ids := map[string]bool{}
	for _, sb := range snap.Sandboxes() {
		paths[sb.NetNSPath] = true
		ids[sb.ID] = true
		if (sb.Mode == store.ModeBridge || sb.Mode == store.ModeNone) && sb.Adopted == "" {
			if id, err := nsutil.IDOf(sb.NetNSPath); err == nil {
				owned[id] = true
			}
		}
	}
	entries, _ := os.ReadDir(m.cfg.NetNSDir)
	for _, e := range entries {
		p := filepath.Join(m.cfg.NetNSDir, e.Name())
		if id, err := nsutil.IDOf(p); err == nil && !paths[p] && owned[id] {
			m.cfg.Log.Warn("removing stale netns pin", "path", p)
			if err := m.cfg.Kernel.DeleteNetNS(p); err != nil {
				m.cfg.Log.Warn("remove stale netns pin", "path", p, "err", err)
			}
		}
	}
	entries, _ = os.ReadDir(m.cfg.FilesDir)
	for _, e := range entries {
		if _, err := snap.SandboxByName(e.Name()); err == nil {
			continue
		}
		if _, err := os.Lstat(filepath.Join(m.cfg.NetNSDir, e.Name())); err == nil {
			continue // someone else's netns keeps its files
		}
		loc := fileLoc{key: "etc", base: m.cfg.FilesDir, sub: []string{e.Name()}}
		if generatedByBerth(loc) {
			m.cfg.Log.Warn("removing stale sandbox files", "dir", loc.dir())
			m.removeLoc(e.Name(), loc)
		}
	}
	entries, _ = os.ReadDir(filepath.Join(m.cfg.RunDir, "sandboxes"))
	for _, e := range entries {
		if !ids[e.Name()] {
			m.removeLoc(e.Name(), fileLoc{key: "run", base: m.cfg.RunDir, sub: []string{"sandboxes", e.Name()}})
		}
	}
	// UTS namespaces of sandboxes that are gone (a crash between unpinning the netns and
	// the rest of a removal, or an undone create).
	entries, _ = os.ReadDir(filepath.Join(m.cfg.RunDir, "uts"))
	for _, e := range entries {
		if !ids[e.Name()] && isHex(e.Name()) {
			p := filepath.Join(m.cfg.RunDir, "uts", e.Name())
			m.cfg.Log.Warn("removing stale uts namespace", "path", p)
			if err := m.cfg.Kernel.DeleteUTSNS(p); err != nil {
				m.cfg.Log.Warn("remove stale uts namespace", "path", p, "err", err)
			}
		}
	}
}

// generatedByBerth reports whether loc is a real directory whose resolv.conf starts with
// berth's header (read without following a symlink).
func generatedByBerth(loc fileLoc) bool {
	fd, err := openDir(loc, false)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	f, err := openFile(fd, filepath.Join(loc.dir(), "resolv.conf"), "resolv.conf", unix.O_RDONLY)
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := readLimited(f)
	return err == nil && bytes.HasPrefix(b, []byte(resolver.Header))
}

// restoreFileWorkers is how many sandboxes' files restoreFiles reads and writes at once.
const restoreFileWorkers = 4

// restoreFiles brings every sandbox's files up to date with the records: the daemon's DNS
// view is read once, files that already have the content are left alone (after a plain
// restart that is all of them), and a few sandboxes are done at once.
func (m *Manager) restoreFiles(snap *store.Snapshot) {
	m.syncFiles(snap, snap.Sandboxes(), m.cfg.HostDNS(), restoreFileWorkers)
}

// ownedName reports whether link name l is one berth gives its own devices: host veth
// ends, bridges named after their network, the default bridge, VXLAN devices and the
// macvlan/ipvlan parents, shims and temporary names.
func ownedName(l string) bool {
	return strings.HasPrefix(l, store.VethPrefix) && len(l) == len(store.VethPrefix)+8 && isHex(l[len(store.VethPrefix):]) ||
		strings.HasPrefix(l, bridgePrefix) && len(l) == len(bridgePrefix)+12 && isHex(l[len(bridgePrefix):]) ||
		l == DefaultBridge || isVxlanName(l) || isSubIfDevName(l)
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
