package netmgr

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"berth/api"
	"berth/store"
)

// RenameSandbox changes a sandbox's name: its DNS names, netns pin and files follow.
func (m *Manager) RenameSandbox(ctx context.Context, req api.SandboxRename) error {
	if err := ValidateSandboxRename(req); err != nil {
		return err
	}
	newName := req.Name
	var changes []Change
	m.mu.Lock()
	defer m.unlock(&changes)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("rename sandbox %s: %w", req.Sandbox, err)
	}
	snap := m.cfg.Store.Snapshot()
	sb, err := SandboxByRef(snap, req.Sandbox)
	if err != nil {
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
	changes = append(changes, Change{Kind: SandboxRenamed, Sandbox: renamed, OldName: sb.Name})
	return nil
}
