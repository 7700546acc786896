package netmgr

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"berth/api"
	"berth/internal/nsutil"
	"berth/netmgr/store"
)

// sandboxPlan is a validated create request.
type sandboxPlan struct {
	sb       *store.Sandbox
	networks []*store.Network // bridge networks to join, first one gets ep
	ep       endpointReq      // per-network flags, for the first network
	shared   *store.Sandbox   // ModeContainer: whose netns
}

// CreateSandbox makes a named netns, joins it to its networks and writes its files. On any
// failure everything made so far is undone.
func (m *Manager) CreateSandbox(ctx context.Context, req api.SandboxCreate) (*store.Sandbox, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	snap := m.cfg.Store.Snapshot()
	p, err := m.planSandbox(snap, req)
	if err != nil {
		return nil, err
	}
	sb := p.sb
	sb.UTSPath = m.utsPath(p)
	// 0. Host ports: their sockets are bound before anything is made, so a port another
	// process has is refused with nothing changed (ports.go).
	if err := m.holdPorts(snap, p, req.Publish); err != nil {
		return nil, err
	}
	created := false
	defer func() {
		if !created {
			m.releasePorts(sb.ID)
		}
	}()
	// 1. Records, held uncommitted while the kernel work runs, and an intent file naming
	// them, so that a crash during the kernel work leaves the restore pass something to
	// undo (intent.go). One disk commit per create: they become durable and visible at 3.
	var eps []*store.Endpoint
	pend, err := m.cfg.Store.Begin(func(tx *store.Tx) error {
		seq, err := tx.NextCounter("sandbox_seq")
		if err != nil {
			return err
		}
		sb.Seq = seq
		if err := tx.PutSandbox(sb); err != nil {
			return err
		}
		for i, n := range p.networks {
			r := endpointReq{}
			if i == 0 {
				r = p.ep
			}
			ep, err := addEndpointTx(tx, sb, n, r, m.reap)
			if err != nil {
				return err
			}
			eps = append(eps, ep)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", sb.Name, err)
	}
	defer pend.Abort() // a no-op once committed
	if err := m.writeIntent(sb.ID, pend); err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", sb.Name, err)
	}
	crashPoint("sandbox-create:recorded")
	// 2. Kernel.
	undo := func(err error) (*store.Sandbox, error) {
		pend.Abort()
		uerr := m.unmake(sb, eps)
		if uerr == nil {
			m.dropIntent(sb.ID) // otherwise the next restore retries the undo
		}
		return nil, errors.Join(fmt.Errorf("create sandbox %s: %w", sb.Name, err), uerr)
	}
	if err := m.buildSandbox(p, eps, &pend.Tx.Snapshot); err != nil {
		return undo(err)
	}
	// 3. Ready: the records become durable and visible together, while what StartSandbox
	// started (the embedded DNS) gets going.
	ready := sb.Copy()
	ready.State = store.StateReady
	finish := func(bool) error { return nil }
	if m.cfg.StartSandbox != nil {
		if f := m.cfg.StartSandbox(&pend.Tx.Snapshot, ready); f != nil {
			finish = f
		}
	}
	if err := pend.Commit(func(tx *store.Tx) error {
		if err := tx.PutSandbox(ready); err != nil {
			return err
		}
		return m.recordNewFiles(tx, ready) // in this commit: none of their own on the create's path
	}); err != nil {
		finish(false)
		return undo(err)
	}
	m.dropIntent(sb.ID)
	crashPoint("sandbox-create:ready")
	snap = m.cfg.Store.Snapshot()
	m.refreshFiles(snap, ready)
	crashPoint("sandbox-create:files")
	err = m.syncFirewall()
	if err != nil {
		finish(false)
	} else {
		err = finish(true)
	}
	if err != nil {
		err = errors.Join(fmt.Errorf("create sandbox %s: %w", sb.Name, err), m.teardown(ready, false))
		m.syncFirewallOrWarn("failed sandbox create")
		return nil, err
	}
	m.cfg.Log.Info("sandbox created", "sandbox", sb.Name, "mode", sb.Mode, "networks", len(eps))
	created = true
	return ready, nil
}

// buildSandbox does the kernel work of a sandbox whose records snap holds.
func (m *Manager) buildSandbox(p *sandboxPlan, eps []*store.Endpoint, snap *store.Snapshot) error {
	sb := p.sb
	var err error
	switch sb.Mode {
	case store.ModeHost:
		err = m.cfg.Kernel.PinNetNS(sb.NetNSPath, "/proc/self/ns/net")
	case store.ModeContainer:
		err = m.cfg.Kernel.PinNetNS(sb.NetNSPath, p.shared.NetNSPath)
	default:
		if sb.Adopted != "" {
			if ownsPin(sb) {
				err = m.cfg.Kernel.PinNetNS(sb.NetNSPath, sb.Adopted)
			}
		} else {
			err = m.cfg.Kernel.CreateNetNS(sb.NetNSPath)
		}
	}
	if err != nil {
		return err
	}
	crashPoint("sandbox-create:netns")
	if ownsUTS(sb) {
		if err := m.cfg.Kernel.CreateUTSNS(sb.UTSPath, hostnameOf(sb), sb.Domainname); err != nil {
			return err
		}
	}
	for i, ep := range eps {
		if err := m.attach(sb, p.networks[i], ep); err != nil {
			return err
		}
		crashPoint("sandbox-create:veth")
	}
	return m.setRoutes(snap, sb)
}

// planSandbox validates every field of req before anything changes.
func (m *Manager) planSandbox(snap *store.Snapshot, req api.SandboxCreate) (*sandboxPlan, error) {
	sb := &store.Sandbox{ID: newID(), Name: req.Name, Hostname: req.Hostname, Mode: store.ModeBridge,
		State: store.StateCreating, Created: time.Now().UTC(),
		DNS: req.DNS, DNSSearch: req.DNSSearch, DNSOptions: req.DNSOptions, ExtraHosts: req.ExtraHosts}
	if sb.Name == "" {
		sb.Name = generateName(snap)
	}
	if err := checkName("name", sb.Name); err != nil {
		return nil, err
	}
	if _, err := snap.SandboxByName(sb.Name); err == nil {
		return nil, fmt.Errorf("sandbox name %q is already in use: %w", sb.Name, store.ErrConflict)
	}
	sb.NetNSPath = filepath.Join(m.cfg.NetNSDir, sb.Name)
	// Here, not when the files are written after the commit: a refused name changes nothing.
	if err := m.checkFilesDir(sb.Name); err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", sb.Name, err)
	}
	// A netns already named like the sandbox (`ip netns add X`, then CNI ADD for container
	// X with CNI_NETNS=/run/netns/X, as cnitool does) is adopted in place when it is the
	// netns being adopted; any other file there is someone else's.
	inPlace := false
	if _, err := os.Lstat(sb.NetNSPath); err == nil {
		if same, _ := nsutil.Same(sb.NetNSPath, req.NetNS); req.NetNS == "" || !same {
			return nil, invalid("name", sb.Name, "%s exists and is not a berth sandbox", sb.NetNSPath)
		}
		inPlace = true
	}
	sb.Domainname = req.Domainname
	for _, f := range []struct{ field, v string }{{"hostname", sb.Hostname}, {"domainname", sb.Domainname}} {
		if f.v == "" {
			continue
		}
		if err := checkDNSName(f.field, f.v); err != nil {
			return nil, err
		}
		if len(f.v) > maxUTSName {
			return nil, invalid(f.field, f.v, "longer than %d characters (the kernel's limit)", maxUTSName)
		}
	}
	if err := checkDNSSettings(req); err != nil {
		return nil, err
	}
	ep, err := parseEndpointReq(req.Aliases, req.IPv4, req.IPv6, req.MAC, req.Links)
	if err != nil {
		return nil, err
	}
	if err := planPorts(snap, sb, req); err != nil {
		return nil, err
	}
	for k, v := range req.Labels {
		if k == "" || strings.ContainsAny(k, "\n=") || strings.Contains(v, "\n") {
			return nil, invalid("label", k+"="+v, "want KEY=VALUE on one line")
		}
		if sb.Labels == nil {
			sb.Labels = map[string]string{}
		}
		sb.Labels[k] = v
	}
	if req.NetNS != "" {
		if err := m.checkAdopt(snap, req.NetNS); err != nil {
			return nil, err
		}
		sb.Adopted = req.NetNS
		if inPlace {
			sb.Adopted = sb.NetNSPath // the named file outlives a /proc/PID path to it
		}
	}
	p := &sandboxPlan{sb: sb, ep: ep}
	nets := req.Networks
	if len(nets) == 0 {
		nets = []string{DefaultNetwork}
	}
	if mode, arg, special := specialMode(nets[0]); special {
		return p, m.planSpecial(snap, p, nets, mode, arg)
	}
	for _, ref := range nets {
		if _, _, special := specialMode(ref); special {
			return nil, invalid("network", ref, "cannot be combined with other networks")
		}
		n, err := NetworkByRef(snap, ref)
		if err != nil {
			return nil, err
		}
		for _, o := range p.networks {
			if o.ID == n.ID {
				return nil, invalid("network", ref, "given twice")
			}
		}
		p.networks = append(p.networks, n)
	}
	if err := checkEndpointReq(snap, p.networks[0], sb, ep); err != nil {
		return nil, err
	}
	return p, nil
}

// specialMode recognises none, host and container:NAME.
func specialMode(ref string) (mode, arg string, ok bool) {
	switch {
	case ref == NoneNetwork:
		return store.ModeNone, "", true
	case ref == HostNetwork:
		return store.ModeHost, "", true
	case strings.HasPrefix(ref, "container:"):
		return store.ModeContainer, strings.TrimPrefix(ref, "container:"), true
	}
	return "", "", false
}

func (m *Manager) planSpecial(snap *store.Snapshot, p *sandboxPlan, nets []string, mode, arg string) error {
	if len(nets) > 1 {
		return invalid("network", nets[0], "cannot be combined with other networks")
	}
	e := p.ep
	if len(e.aliases) > 0 || e.ip4.IsValid() || e.ip6.IsValid() || e.mac != nil || len(e.links) > 0 {
		return invalid("network", nets[0], "--network-alias, --ip, --ip6, --mac-address and --link need a bridge network")
	}
	if len(p.sb.Ports) > 0 {
		return invalid("publish", nets[0], "port publishing needs a bridge network")
	}
	if p.sb.Adopted != "" {
		return invalid("netns", p.sb.Adopted, "an adopted netns joins bridge networks only")
	}
	p.sb.Mode = mode
	if mode == store.ModeContainer && (p.sb.Hostname != "" || p.sb.Domainname != "") {
		// As Docker: the names are the other sandbox's, whose UTS namespace is shared.
		return invalid("network", nets[0], "conflicting options: --hostname and --domainname cannot be used with container: networking")
	}
	if mode == store.ModeContainer {
		target, err := SandboxByRef(snap, arg)
		if err != nil {
			return invalid("network", nets[0], "no such sandbox %q", arg)
		}
		if target.Mode == store.ModeContainer {
			target, err = snap.Sandbox(target.Container)
			if err != nil {
				return invalid("network", nets[0], "sandbox %q shares a netns that is gone", arg)
			}
		}
		p.sb.Container = target.ID
		p.shared = target
	}
	return nil
}

// planPorts parses --publish and --expose and checks the host ports asked for against the
// other sandboxes' (holdPorts picks the rest). Published ports are also exposed, as in Docker.
func planPorts(snap *store.Snapshot, sb *store.Sandbox, req api.SandboxCreate) error {
	var pub []store.Port
	for _, s := range req.Publish {
		p, err := parsePublish(s)
		if err != nil {
			return err
		}
		pub = append(pub, p)
	}
	if err := checkHostPorts(snap, pub); err != nil {
		return err
	}
	sb.Ports = pub
	ports := pub
	seen := map[store.Port]bool{}
	add := func(p store.Port) {
		p = store.Port{Proto: p.Proto, Port: p.Port}
		if !seen[p] {
			seen[p] = true
			sb.Expose = append(sb.Expose, p)
		}
	}
	for _, s := range req.Expose {
		p, err := parseExpose(s)
		if err != nil {
			return err
		}
		add(p)
	}
	for _, p := range ports {
		add(p)
	}
	return nil
}

func checkDNSSettings(req api.SandboxCreate) error {
	for _, d := range req.DNS {
		if _, err := parseAddr("dns", d); err != nil {
			return err
		}
	}
	for _, s := range req.DNSSearch {
		if err := checkSearch(s); err != nil {
			return err
		}
	}
	for _, o := range req.DNSOptions {
		if err := checkDNSOption(o); err != nil {
			return err
		}
	}
	for _, h := range req.ExtraHosts {
		if err := checkExtraHost(h); err != nil {
			return err
		}
	}
	return nil
}

var (
	adjectives = []string{"admiring", "bold", "brave", "calm", "clever", "eager", "gentle", "happy", "jolly", "keen",
		"lucid", "merry", "nimble", "quiet", "serene", "sharp", "swift", "tender", "vivid", "witty"}
	nouns = []string{"albatross", "beacon", "buoy", "capstan", "cutter", "dinghy", "ferry", "galley", "harbor", "jetty",
		"keel", "lighthouse", "mooring", "pier", "quay", "rudder", "schooner", "skiff", "tugboat", "wharf"}
)

// generateName returns an unused readable name such as "swift_jetty" (then "swift_jetty2").
func generateName(snap *store.Snapshot) string {
	for i := 0; ; i++ {
		name := adjectives[rand.IntN(len(adjectives))] + "_" + nouns[rand.IntN(len(nouns))]
		if i > 20 {
			name += fmt.Sprint(rand.IntN(10000))
		}
		if _, err := snap.SandboxByName(name); errors.Is(err, store.ErrNotFound) {
			return name
		}
	}
}

// RemoveSandbox deletes a sandbox: veths, netns pin, files, records and addresses.
// Without force a sandbox that still has processes in its netns is refused.
func (m *Manager) RemoveSandbox(ctx context.Context, ref string, force bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	snap := m.cfg.Store.Snapshot()
	sb, err := SandboxByRef(snap, ref)
	if err != nil {
		return err
	}
	if sharers := snap.SandboxesSharing(sb.ID); len(sharers) > 0 {
		o := slices.MinFunc(sharers, func(a, b *store.Sandbox) int { return cmp.Compare(a.Seq, b.Seq) })
		return fmt.Errorf("sandbox %s shares its netns with sandbox %s: remove that first: %w", sb.Name, o.Name, store.ErrConflict)
	}
	// An adopted netns is someone else's and always has their processes in it.
	if !force && sb.Adopted == "" && (sb.Mode == store.ModeBridge || sb.Mode == store.ModeNone) {
		if n := netnsUsers(sb.NetNSPath); n > 0 {
			return fmt.Errorf("sandbox %s is in use by %d process(es): stop them or use -f: %w", sb.Name, n, store.ErrConflict)
		}
	}
	if err := m.teardown(sb, true); err != nil {
		return fmt.Errorf("remove sandbox %s: %w", sb.Name, err)
	}
	crashPoint("sandbox-rm:recorded")
	m.refreshDependents(m.cfg.Store.Snapshot(), sb.Name)
	m.syncFirewallOrWarn("sandbox removal")
	m.cfg.Log.Info("sandbox removed", "sandbox", sb.Name)
	return nil
}

// teardown removes the kernel objects, files and records of sb. Kernel first, records
// last: a crash in between leaves a record whose netns is gone, which restore drops. With
// reap (sandbox rm), the veths are deleted in the background once the records are gone
// (see reaper); undo and restore delete them here.
func (m *Manager) teardown(sb *store.Sandbox, reap bool) error {
	snap := m.cfg.Store.Snapshot()
	eps := snap.SandboxEndpoints(sb.ID)
	var errs []error
	if !reap {
		errs = append(errs, m.deleteVeths(eps))
	}
	if ownsPin(sb) {
		errs = append(errs, m.cfg.Kernel.DeleteNetNS(sb.NetNSPath))
	}
	if ownsUTS(sb) {
		errs = append(errs, m.cfg.Kernel.DeleteUTSNS(sb.UTSPath))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	crashPoint("sandbox-rm:kernel")
	m.removeFiles(sb)
	crashPoint("sandbox-rm:files")
	// The netns pin is gone now, so records that a crash brings back are dropped again by
	// restore: they may reach the disk after this returns (UpdateLater). Not a host-mode
	// sandbox's: restore pins the daemon's netns for it again, nor one adopted in place,
	// whose netns stays.
	update := m.cfg.Store.UpdateLater
	if sb.Mode == store.ModeHost || !ownsPin(sb) {
		update = m.cfg.Store.Update
	}
	err := update(func(tx *store.Tx) error {
		for _, ep := range eps {
			if err := deleteEndpointTx(tx, ep); err != nil {
				return err
			}
		}
		return tx.DeleteSandbox(sb)
	})
	if err == nil {
		m.releasePorts(sb.ID) // the host ports are free once the records are gone
	}
	if !reap {
		return err
	}
	if err != nil {
		return errors.Join(err, m.deleteVeths(eps))
	}
	var veths []string
	var held []heldAddr
	for _, ep := range eps {
		veths = append(veths, ep.HostVeth)
		for _, a := range []netip.Addr{ep.IPv4, ep.IPv6} {
			if a.IsValid() {
				held = append(held, heldAddr{ep.NetworkID, a})
			}
		}
	}
	m.reap.reap(veths, held)
	return nil
}

// unmake undoes the kernel objects and files of a sandbox that has no records (a create
// that failed before its commit).
func (m *Manager) unmake(sb *store.Sandbox, eps []*store.Endpoint) error {
	err := m.deleteVeths(eps)
	if ownsPin(sb) {
		err = errors.Join(err, m.cfg.Kernel.DeleteNetNS(sb.NetNSPath))
	}
	if ownsUTS(sb) {
		err = errors.Join(err, m.cfg.Kernel.DeleteUTSNS(sb.UTSPath))
	}
	m.removeFiles(sb)
	return err
}

// maxUTSName is the kernel's limit on a hostname or domain name (HOST_NAME_MAX).
const maxUTSName = 64

// utsPath is where the sandbox of p finds its UTS namespace: one of its own under RunDir
// (bridge and none modes), the shared sandbox's (container mode), or none: host mode uses
// the daemon's, and an adopted netns comes with the runtime's own UTS namespace.
func (m *Manager) utsPath(p *sandboxPlan) string {
	switch {
	case m.cfg.RunDir == "", p.sb.Mode == store.ModeHost, p.sb.Adopted != "":
		return ""
	case p.sb.Mode == store.ModeContainer:
		return p.shared.UTSPath
	}
	return filepath.Join(m.cfg.RunDir, "uts", p.sb.ID)
}

// ownsUTS reports whether sb's UTS namespace is its own, made and removed with it.
func ownsUTS(sb *store.Sandbox) bool {
	return sb.UTSPath != "" && sb.Mode != store.ModeContainer
}

// hostnameOf is the hostname a sandbox's UTS namespace gets: --hostname, else its name
// (the name its files and DNS give it too).
func hostnameOf(sb *store.Sandbox) string {
	if sb.Hostname != "" {
		return sb.Hostname
	}
	return sb.Name
}

// ownsPin reports whether sb's netns path is a pin berth made, which it removes with the
// sandbox. A netns adopted in place (its own file under NetNSDir, named like the
// sandbox) is the adopter's: removing the sandbox leaves it where it was.
func ownsPin(sb *store.Sandbox) bool {
	return sb.Adopted == "" || sb.Adopted != sb.NetNSPath
}

// deleteVeths deletes the host ends of eps (which takes the sandbox ends with them).
func (m *Manager) deleteVeths(eps []*store.Endpoint) error {
	var errs []error
	for _, ep := range eps {
		errs = append(errs, m.cfg.Kernel.DeleteLink(ep.HostVeth))
	}
	return errors.Join(errs...)
}

// RenameSandbox changes a sandbox's name: its DNS names, netns pin and files follow.
func (m *Manager) RenameSandbox(ctx context.Context, ref, newName string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	snap := m.cfg.Store.Snapshot()
	sb, err := SandboxByRef(snap, ref)
	if err != nil {
		return err
	}
	if err := checkName("name", newName); err != nil {
		return err
	}
	if o, err := snap.SandboxByName(newName); err == nil && o.ID != sb.ID {
		return fmt.Errorf("sandbox name %q is already in use: %w", newName, store.ErrConflict)
	}
	if !strings.EqualFold(newName, sb.Name) {
		if err := m.checkFilesDir(newName); err != nil {
			return fmt.Errorf("rename sandbox %s: %w", sb.Name, err)
		}
	}
	newPath := filepath.Join(m.cfg.NetNSDir, newName)
	// Back to the name of a netns adopted in place: its own file is the path again.
	pin := newPath != sb.NetNSPath && newPath != sb.Adopted
	if pin {
		if _, err := os.Lstat(newPath); err == nil && !strings.EqualFold(newName, sb.Name) {
			return invalid("name", newName, "%s exists and is not a berth sandbox", newPath)
		}
		// Pin the new name before the record changes, unpin the old one after: at every
		// moment the record's path is a live netns.
		if err := m.cfg.Kernel.PinNetNS(newPath, sb.NetNSPath); err != nil {
			return fmt.Errorf("rename sandbox %s: %w", sb.Name, err)
		}
		crashPoint("rename:pinned")
	}
	renamed := sb.Copy()
	renamed.Name, renamed.NetNSPath = newName, newPath
	err = m.cfg.Store.Update(func(tx *store.Tx) error {
		if err := tx.PutSandbox(renamed); err != nil {
			return err
		}
		for _, ep := range tx.SandboxEndpoints(sb.ID) {
			c := ep.Copy()
			c.DNSNames = dnsNames(renamed, c.Aliases)
			if err := tx.PutEndpoint(c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if pin {
			_ = m.cfg.Kernel.DeleteNetNS(newPath)
		}
		return fmt.Errorf("rename sandbox %s: %w", sb.Name, err)
	}
	crashPoint("rename:recorded")
	if newPath != sb.NetNSPath && ownsPin(sb) {
		if err := m.cfg.Kernel.DeleteNetNS(sb.NetNSPath); err != nil {
			m.cfg.Log.Warn("unpin old netns", "sandbox", newName, "path", sb.NetNSPath, "err", err)
		}
	}
	// The /etc/netns directory moves with the name, keeping the user's edits; the copy under
	// the exec root is keyed by ID and stays where runtimes bind-mount it.
	if newName != sb.Name && !m.moveFilesDir(sb, newName) {
		m.removeLoc(sb.Name, m.fileLocs(sb)[0])
	}
	snap = m.cfg.Store.Snapshot()
	m.refreshFiles(snap, renamed)
	m.refreshDependents(snap, sb.Name)
	m.refreshDependents(snap, newName)
	m.syncFirewallOrWarn("rename") // legacy links name their target
	m.cfg.Log.Info("sandbox renamed", "sandbox", newName, "old", sb.Name)
	return nil
}

// checkAdopt validates --netns: an existing network namespace that is neither the
// daemon's own nor already a sandbox's.
func (m *Manager) checkAdopt(snap *store.Snapshot, path string) error {
	if !filepath.IsAbs(path) {
		return invalid("netns", path, "must be an absolute path")
	}
	if !m.cfg.Kernel.NetNSExists(path) {
		return invalid("netns", path, "not a network namespace")
	}
	id, err := nsutil.IDOf(path)
	if err != nil {
		return invalid("netns", path, "cannot stat")
	}
	if self, ok := ownNetNS(); ok && self == id {
		return invalid("netns", path, "is the daemon's own network namespace (use --network host)")
	}
	for _, o := range snap.Sandboxes() {
		if oid, err := nsutil.IDOf(o.NetNSPath); err == nil && oid == id {
			return invalid("netns", path, "already sandbox %s", o.Name)
		}
	}
	return nil
}

// ownNetNS is the ID of the calling thread's netns, which is the daemon's: netmgr never
// switches namespaces on its own goroutines.
func ownNetNS() (nsutil.ID, bool) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	id, err := nsutil.IDOf("/proc/thread-self/ns/net")
	return id, err == nil
}
