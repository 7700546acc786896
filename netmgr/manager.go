// Package netmgr owns networks, IPAM, sandboxes and endpoints: it is the only writer of the
// store and the only package that changes kernel objects (bridges, veths, netns).
package netmgr

import (
	"context"
	"errors"
	"log/slog"

	"berth/api"
	"berth/netmgr/store"
)

// Config configures a Manager.
type Config struct {
	Store    *store.Store // always non-nil
	Kernel   Kernel       // always non-nil
	Log      *slog.Logger // always non-nil
	NetNSDir string       // where named netns are pinned: /run/netns
	FilesDir string       // per-sandbox resolv.conf/hosts for `ip netns exec`: /etc/netns
	StateDir string       // --root; per-sandbox copies of the files live under it
}

// Manager serialises every change to networks and sandboxes.
type Manager struct {
	cfg Config
}

var errTODO = errors.New("not implemented yet")

func New(cfg Config) *Manager { return &Manager{cfg: cfg} }

// Restore reconciles the store with the kernel after a (re)start.
func (m *Manager) Restore(ctx context.Context) error { return errTODO }

func (m *Manager) CreateNetwork(ctx context.Context, req api.NetworkCreate) (*store.Network, error) {
	return nil, errTODO
}
func (m *Manager) RemoveNetwork(ctx context.Context, ref string) error { return errTODO }
func (m *Manager) PruneNetworks(ctx context.Context) ([]string, error) { return nil, errTODO }
func (m *Manager) Connect(ctx context.Context, netRef string, req api.NetworkConnect) error {
	return errTODO
}
func (m *Manager) Disconnect(ctx context.Context, netRef string, req api.NetworkDisconnect) error {
	return errTODO
}
func (m *Manager) CreateSandbox(ctx context.Context, req api.SandboxCreate) (*store.Sandbox, error) {
	return nil, errTODO
}
func (m *Manager) RemoveSandbox(ctx context.Context, ref string, force bool) error { return errTODO }
func (m *Manager) RenameSandbox(ctx context.Context, ref, newName string) error    { return errTODO }
