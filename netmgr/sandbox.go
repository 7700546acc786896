package netmgr

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"berth/api"
	"berth/store"
)

// sandboxPlan is a validated create request.
type sandboxPlan struct {
	sb       *store.Sandbox
	networks []*store.Network // bridge networks to join, first one gets ep
	ep       EndpointSpec     // per-network flags, for the first network
	shared   *store.Sandbox   // ModeContainer: whose netns
	publish  []PublishSpec    // the bindings asked for, in the order of sb.Ports
}

// CreateSandbox makes a named netns, joins it to its networks and writes its files. On any
// failure everything made so far is undone.
//
// The records are planned from a snapshot, the kernel work done, and only then are the
// records committed, in one store transaction (one disk commit per create, its main cost)
// that checks the plan still holds. The store is not held across the kernel work; m.mu
// keeps other changes out meanwhile.
func (m *Manager) CreateSandbox(ctx context.Context, req api.SandboxCreate) (*store.Sandbox, error) {
	var changes []Change
	m.mu.Lock()
	defer m.unlock(&changes)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", req.Name, err)
	}
	snap := m.cfg.Store.Snapshot()
	p, err := m.planSandbox(snap, req)
	if err != nil {
		return nil, err
	}
	sb := p.sb
	sb.UTSPath = m.utsPath(p)
	eps, err := m.planEndpoints(snap, p)
	if err != nil {
		return nil, err
	}
	// 0. Host ports: their sockets are bound before anything is made, so a port another
	// process has is refused with nothing changed (ports.go).
	if err := m.holdPorts(snap, p); err != nil {
		return nil, err
	}
	created := false
	var claims []claim // the addresses claimed in the cluster store, until the records hold them
	defer func() {
		if !created {
			m.releasePorts(sb.ID)
			m.releaseClaims(ctx, claims)
		}
	}()
	// 0b. Addresses of global networks: claimed in the cluster store, so no other host
	// hands them out (claims.go).
	for i, ep := range eps {
		r := EndpointSpec{}
		if i == 0 {
			r = p.ep
		}
		cs, err := m.claimAddrs(ctx, snap, p.networks[i], ep, r)
		claims = append(claims, cs...)
		var inv *InvalidError
		if errors.As(err, &inv) {
			return nil, err // a refused --ip is the caller's, as a locally taken one is
		}
		if err != nil {
			return nil, fmt.Errorf("create sandbox %s: %w", sb.Name, err)
		}
	}
	// 1. An intent file naming the records, so that a crash during the kernel work leaves
	// the restore pass something to undo (intent.go).
	if err := m.writeIntent(sb, eps); err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", sb.Name, err)
	}
	crashPoint("sandbox-create:recorded")
	// 2. Kernel.
	undo := func(err error) (*store.Sandbox, error) {
		uerr := m.unmake(sb, eps)
		if uerr == nil {
			m.dropIntent(sb.ID) // otherwise the next restore retries the undo
		}
		return nil, errors.Join(fmt.Errorf("create sandbox %s: %w", sb.Name, err), uerr)
	}
	if err := m.buildSandbox(ctx, p, eps); err != nil {
		return undo(err)
	}
	// 3. Ready: the records become visible at once, and durable while the files and the
	// firewall follow them: the disk write, most of a commit, waits on the disk, not on
	// the CPUs. The create is acknowledged only once they are durable; until then the
	// intent file still names them, so a crash undoes the create.
	ready := sb.Copy()
	ready.State = store.StateReady
	if err := m.cfg.Store.UpdateLater(func(tx *store.Tx) error { return m.commitSandboxTx(tx, p, ready, eps) }); err != nil {
		return undo(err)
	}
	m.refreshFiles(m.cfg.Store.Snapshot(), ready)
	m.syncShims(eps)
	crashPoint("sandbox-create:files")
	err = m.syncFirewall()
	if err == nil {
		if err = m.cfg.Store.Flush(); err != nil {
			err = fmt.Errorf("persist state: %w", err)
		}
	}
	if err != nil {
		claims = nil // the records hold them now: teardown releases them
		uerr := m.teardown(ready, false)
		if uerr == nil {
			m.dropIntent(sb.ID)
		}
		m.syncShims(eps)
		m.syncFirewallOrWarn("failed sandbox create")
		return nil, errors.Join(fmt.Errorf("create sandbox %s: %w", sb.Name, err), uerr)
	}
	m.dropIntent(sb.ID)
	crashPoint("sandbox-create:ready")
	m.cfg.Log.Info("sandbox created", "sandbox", sb.Name, "mode", sb.Mode, "networks", len(eps))
	created = true
	changes = append(changes, Change{Kind: SandboxCreated, Sandbox: ready})
	return ready, nil
}

// planEndpoints plans the endpoints of a new sandbox, one per network of p in order.
func (m *Manager) planEndpoints(snap *store.Snapshot, p *sandboxPlan) ([]*store.Endpoint, error) {
	var eps []*store.Endpoint
	for i, n := range p.networks {
		r := EndpointSpec{}
		if i == 0 {
			r = p.ep
		}
		ep, err := planEndpoint(snap, p.sb, n, eps, r, m.reap)
		if err != nil {
			return nil, err
		}
		eps = append(eps, ep)
	}
	return eps, nil
}

// commitSandboxTx records a new sandbox sb (ready, its kernel work done) with its planned
// endpoints and the files its create writes next. The plan must still hold: the sandbox
// whose netns it shares is there, its name is free (a unique index) and so is the rest
// (putEndpointTx).
func (m *Manager) commitSandboxTx(tx *store.Tx, p *sandboxPlan, sb *store.Sandbox, eps []*store.Endpoint) error {
	if p.shared != nil {
		if _, err := tx.Sandbox(p.shared.ID); err != nil {
			return fmt.Errorf("sandbox %s: %w", p.shared.Name, err)
		}
	}
	seq, err := tx.NextCounter("sandbox_seq")
	if err != nil {
		return err
	}
	sb.Seq = seq
	if err := tx.PutSandbox(sb); err != nil {
		return err
	}
	for _, ep := range eps {
		if err := putEndpointTx(tx, ep); err != nil {
			return err
		}
	}
	return m.recordNewFiles(tx, sb) // in this commit: none of their own on the create's path
}

// buildSandbox does the kernel work of a sandbox about to be committed with endpoints eps
// (one per network of p, in order). It stops with ctx's error after the step during which
// ctx is done.
func (m *Manager) buildSandbox(ctx context.Context, p *sandboxPlan, eps []*store.Endpoint) error {
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
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return err
	}
	crashPoint("sandbox-create:netns")
	if ownsUTS(sb) {
		if err := m.cfg.Kernel.CreateUTSNS(sb.UTSPath, hostnameOf(sb), sb.Domainname); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	for i, ep := range eps {
		if err := m.attach(sb, p.networks[i], ep); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		crashPoint("sandbox-create:veth")
	}
	err = m.setRoutesOf(sb, eps, func(id string) (*store.Network, error) {
		for _, n := range p.networks {
			if n.ID == id {
				return n, nil
			}
		}
		return nil, store.ErrNotFound
	})
	if err != nil {
		return err
	}
	return ctx.Err() // the last chance to undo instead of committing
}

var (
	adjectives = []string{"admiring", "bold", "brave", "calm", "clever", "eager", "gentle", "happy", "jolly", "keen",
		"lucid", "merry", "nimble", "quiet", "serene", "sharp", "swift", "tender", "vivid", "witty"}
	nouns = []string{"albatross", "beacon", "buoy", "capstan", "cutter", "dinghy", "ferry", "galley", "harbor", "jetty",
		"keel", "lighthouse", "mooring", "pier", "quay", "rudder", "schooner", "skiff", "tugboat", "wharf"}
)

// RemoveSandbox deletes a sandbox: veths, netns pin, files, records and addresses.
// Without force a sandbox that still has processes in its netns is refused.
func (m *Manager) RemoveSandbox(ctx context.Context, req api.SandboxRemove) error {
	var changes []Change
	m.mu.Lock()
	defer m.unlock(&changes)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remove sandbox %s: %w", req.Sandbox, err)
	}
	snap := m.cfg.Store.Snapshot()
	sb, err := SandboxByRef(snap, req.Sandbox)
	if err != nil {
		return err
	}
	if sharers := snap.SandboxesSharing(sb.ID); len(sharers) > 0 {
		o := slices.MinFunc(sharers, func(a, b *store.Sandbox) int { return cmp.Compare(a.Seq, b.Seq) })
		return fmt.Errorf("sandbox %s shares its netns with sandbox %s: remove that first: %w", sb.Name, o.Name, store.ErrConflict)
	}
	// An adopted netns is someone else's and always has their processes in it.
	if !req.Force && sb.Adopted == "" && (sb.Mode == store.ModeBridge || sb.Mode == store.ModeNone) {
		if n := netnsUsers(sb.NetNSPath); n > 0 {
			return fmt.Errorf("sandbox %s is in use by %d process(es): stop them or use -f: %w", sb.Name, n, store.ErrConflict)
		}
	}
	eps := snap.SandboxEndpoints(sb.ID)
	if err := m.teardown(sb, true); err != nil {
		return fmt.Errorf("remove sandbox %s: %w", sb.Name, err)
	}
	crashPoint("sandbox-rm:recorded")
	m.syncShims(eps)
	m.refreshDependents(m.cfg.Store.Snapshot(), sb.Name)
	m.syncFirewallOrWarn("sandbox removal")
	m.cfg.Log.Info("sandbox removed", "sandbox", sb.Name)
	changes = append(changes, Change{Kind: SandboxRemoved, Sandbox: sb})
	return nil
}

// teardown removes the kernel objects, files and records of sb, then releases its
// endpoints' address claims in the cluster store. Kernel first, records last: a crash in between leaves a record whose netns is gone, which restore drops. With
// reap (sandbox rm), the veths are deleted in the background once the records are gone
// (see reaper); undo and restore delete them here.
func (m *Manager) teardown(sb *store.Sandbox, reap bool) error {
	snap := m.cfg.Store.Snapshot()
	eps := snap.SandboxEndpoints(sb.ID)
	var errs []error
	if !reap {
		errs = append(errs, m.detachAll(sb, eps))
	} else {
		// A macvlan or ipvlan interface lives in the netns, which must still be pinned to
		// be found; and it must go now: a netns kept alive by a process would keep the
		// interface, and its address, on the LAN.
		errs = append(errs, m.detachAll(sb, slices.DeleteFunc(slices.Clone(eps), func(ep *store.Endpoint) bool { return !onParent(ep) })))
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
		m.releaseClaims(context.Background(), claimsOf(snap, eps))
	}
	if !reap {
		return err
	}
	if err != nil {
		return errors.Join(err, m.detachAll(sb, eps))
	}
	var veths []string
	var held []heldAddr
	for _, ep := range eps {
		if onParent(ep) {
			continue // deleted above
		}
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
	err := m.detachAll(sb, eps)
	if ownsPin(sb) {
		err = errors.Join(err, m.cfg.Kernel.DeleteNetNS(sb.NetNSPath))
	}
	if ownsUTS(sb) {
		err = errors.Join(err, m.cfg.Kernel.DeleteUTSNS(sb.UTSPath))
	}
	m.removeFiles(sb)
	return err
}

// detachAll deletes the veths and interfaces of eps, endpoints of sb.
func (m *Manager) detachAll(sb *store.Sandbox, eps []*store.Endpoint) error {
	var errs []error
	for _, ep := range eps {
		errs = append(errs, m.detach(sb, ep))
	}
	return errors.Join(errs...)
}
