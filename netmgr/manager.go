// Package netmgr owns networks, IPAM, sandboxes and endpoints: it is the only writer of the
// store and the only package that changes kernel objects (bridges, veths, netns). Reads by
// others go through store snapshots; nothing here serves DNS.
package netmgr

import (
	"log/slog"
	"sync"

	"berth/netmgr/firewall"
	"berth/resolver"
	"berth/store"
)

// Config configures a Manager.
type Config struct {
	Store    *store.Store // always non-nil
	Kernel   Kernel       // always non-nil
	Log      *slog.Logger // always non-nil
	NetNSDir string       // where named netns are pinned: /run/netns
	FilesDir string       // per-sandbox resolv.conf/hosts for `ip netns exec`: /etc/netns
	// RunDir (the daemon's --exec-root, a tmpfs: /run/berth) holds what lives exactly as
	// long as the kernel objects, which a reboot takes: copies of the sandbox files for
	// runtimes to bind-mount (RunDir/sandboxes/ID, stable across renames) and the intent
	// files of creates in progress (intent.go).
	RunDir string

	// HostDNS returns the daemon's resolv.conf and DNS flags, for rendering sandbox files.
	HostDNS func() resolver.HostConfig // or nil: an empty host file

	// Firewall replaces berth's nftables rules with those of a state (firewall.Apply); nil
	// in unit tests: no data plane.
	Firewall func(firewall.State) error
	// Ports holds the host sockets of published ports (portmap.Map); nil in unit tests:
	// nothing is bound.
	Ports PortHolder
	// IPForward turns on the kernel's IP forwarding when a non-internal network exists.
	IPForward bool
	// Cluster is the cluster store of global (overlay) networks (the daemon's
	// --cluster-store); nil: there are none, and -d overlay is refused.
	Cluster Cluster
	// Observer, if set, is told of every change once it is made (see Observer).
	Observer Observer
	// NoDefaultICC is the daemon's --icc=false: sandboxes on the default bridge reach each
	// other only through legacy links. (Negative so the zero Config keeps Docker's default.)
	NoDefaultICC bool
	// DefaultBridge is the daemon's configuration of the default bridge network (--bip,
	// --fixed-cidr, --fixed-cidr-v6, --ipv6, --mtu, --ip-masq), applied at each start
	// (defaultbridge.go). The zero value is Docker's default.
	DefaultBridge BridgeDefaults
	// Pools are --default-address-pool: where networks without --subnet, and the default
	// bridge without --bip, get their IPv4 subnet; nil: Docker's default pools.
	Pools []Pool
	// NoIPTables is --iptables=false: berth installs no firewall rules (the daemon passes
	// no Firewall), so every published port is carried by the userland proxy instead of
	// DNAT. (Negative so the zero Config keeps Docker's default.)
	NoIPTables bool
}

// Manager serialises every change to networks and sandboxes. Reads never take its lock.
//
// Every exported change refuses to start once its ctx is done. A create (sandbox, network)
// and a connect check ctx again between their kernel steps and, once it is done, undo what
// they made exactly as a failed step is undone, so a client that goes away mid-create
// leaves nothing behind; the error wraps ctx.Err(). A removal, disconnect or rename that has
// started finishes whatever ctx does: half of one (a netns unpinned, its records kept) is
// worse than all of it, and each is short.
type Manager struct {
	cfg  Config
	reap *reaper // always non-nil: deletes removed sandboxes' veths in the background

	// notifyMu is held from the end of a change until the Observer has been told of it.
	// Taken before mu is released (unlock), it keeps the reports in commit order while
	// the next change already runs, and the Observer is never called under mu.
	notifyMu sync.Mutex

	mu sync.Mutex // guards every mutation (one change at a time keeps IPAM and undo simple), and following
	// applied is the firewall state last applied without error, or nil: an unchanged
	// state is not applied again (see syncFirewall).
	applied *firewall.State

	notedMu sync.Mutex        // guards following
	noted   map[string]string // sandbox ID/file -> why berth last left it alone (files.go), so each reason is logged once
}

// New returns a Manager; call Restore before serving requests.
func New(cfg Config) *Manager {
	if cfg.HostDNS == nil {
		cfg.HostDNS = func() resolver.HostConfig { return resolver.HostConfig{} }
	}
	return &Manager{cfg: cfg, reap: newReaper(cfg.Kernel, cfg.Log), noted: map[string]string{}}
}

// unlock releases mu, then tells the Observer of changes (what the change that held mu
// made), after it has been told of those of every change before.
func (m *Manager) unlock(changes *[]Change) {
	if m.cfg.Observer == nil || len(*changes) == 0 {
		m.mu.Unlock()
		return
	}
	m.notifyMu.Lock()
	defer m.notifyMu.Unlock()
	m.mu.Unlock()
	for _, c := range *changes {
		m.cfg.Observer.Changed(c)
	}
}
