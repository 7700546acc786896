package netmgr

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"berth/api"
	"berth/internal/nsutil"
	"berth/store"
)

// planSandbox checks req, then checks it against the store and the kernel, before
// anything changes.
func (m *Manager) planSandbox(snap *store.Snapshot, req api.SandboxCreate) (*sandboxPlan, error) {
	spec, err := ValidateSandboxCreate(req)
	if err != nil {
		return nil, err
	}
	sb := &store.Sandbox{ID: newID(), Name: spec.Name, Hostname: spec.Hostname, Domainname: spec.Domainname,
		Mode: spec.Mode, State: store.StateCreating, Created: time.Now().UTC(), DNS: spec.DNS,
		DNSSearch: spec.DNSSearch, DNSOptions: spec.DNSOptions, ExtraHosts: spec.ExtraHosts, Labels: spec.Labels}
	if sb.Name == "" {
		sb.Name = generateName(snap)
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
		if same, _ := nsutil.Same(sb.NetNSPath, spec.NetNS); spec.NetNS == "" || !same {
			return nil, invalid("name", sb.Name, "%s exists and is not a berth sandbox", sb.NetNSPath)
		}
		inPlace = true
	}
	if err := planPorts(snap, sb, spec); err != nil {
		return nil, err
	}
	if spec.NetNS != "" {
		if err := m.checkAdopt(snap, spec.NetNS); err != nil {
			return nil, err
		}
		sb.Adopted = spec.NetNS
		if inPlace {
			sb.Adopted = sb.NetNSPath // the named file outlives a /proc/PID path to it
		}
	}
	p := &sandboxPlan{sb: sb, ep: spec.Endpoint, publish: spec.Publish}
	if sb.Mode != store.ModeBridge {
		return p, m.planSpecial(snap, p, spec)
	}
	for _, ref := range spec.Networks {
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
	if err := checkEndpointReq(snap, p.networks[0], sb, spec.Endpoint); err != nil {
		return nil, err
	}
	if len(spec.Publish) > 0 && !slices.ContainsFunc(p.networks, (*store.Network).Bridged) {
		// A published port is DNAT from the host to a bridge address; on a macvlan or
		// ipvlan network the sandbox's own LAN address is reachable as it is.
		pub := spec.Publish[0]
		return nil, invalid(pub.Field, pub.Value, "network %s (%s) has no bridge to publish from: the sandbox is reachable at its own address on the parent's LAN",
			p.networks[0].Name, p.networks[0].Driver)
	}
	return p, nil
}

// planSpecial finds the sandbox whose netns a container: sandbox shares.
func (m *Manager) planSpecial(snap *store.Snapshot, p *sandboxPlan, spec SandboxSpec) error {
	if spec.Mode != store.ModeContainer {
		return nil
	}
	ref := "container:" + spec.Container
	target, err := SandboxByRef(snap, spec.Container)
	if err != nil {
		return invalid("network", ref, "no such sandbox %q", spec.Container)
	}
	if target.Mode == store.ModeContainer {
		target, err = snap.Sandbox(target.Container)
		if err != nil {
			return invalid("network", ref, "sandbox %q shares a netns that is gone", spec.Container)
		}
	}
	p.sb.Container = target.ID
	p.shared = target
	return nil
}

// planPorts checks the host ports asked for against the other sandboxes' (holdPorts picks
// the rest).
func planPorts(snap *store.Snapshot, sb *store.Sandbox, spec SandboxSpec) error {
	if err := checkHostPorts(snap, spec.Publish); err != nil {
		return err
	}
	sb.Ports = make([]store.Port, len(spec.Publish))
	for i, p := range spec.Publish {
		sb.Ports[i] = p.Port
	}
	sb.Expose = spec.Expose
	return nil
}

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
