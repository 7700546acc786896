package netmgr

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"berth/internal/nsutil"
	"berth/netmgr/store"
	"berth/resolver"
)

// Generated files: resolv.conf and hosts for each sandbox, in two places:
//   - /etc/netns/NAME/, which `ip netns exec NAME` and `berth exec` bind-mount over /etc;
//   - ROOT/sandboxes/ID/, a stable path for runtimes to bind-mount into containers.
// They are rewritten in place (truncate + write), never replaced by rename: a file that is
// bind-mounted somewhere must keep its inode or the mount keeps showing the old content.

var fileNames = []string{"resolv.conf", "hosts"}

func (m *Manager) fileDirs(sb *store.Sandbox) []string {
	return []string{
		filepath.Join(m.cfg.FilesDir, sb.Name),
		filepath.Join(m.cfg.RunDir, "sandboxes", sb.ID),
	}
}

// writeFiles renders and writes both files of sb.
func (m *Manager) writeFiles(snap *store.Snapshot, sb *store.Sandbox) error {
	return m.writeFilesHost(snap, sb, m.cfg.HostDNS())
}

// writeFilesHost is writeFiles with the daemon's DNS view already read (restore reads it
// once for every sandbox). A file that already has the content is left alone.
func (m *Manager) writeFilesHost(snap *store.Snapshot, sb *store.Sandbox, host resolver.HostConfig) error {
	content := map[string][]byte{
		"resolv.conf": resolver.ResolvConf(snap, sb.ID, host),
		"hosts":       resolver.Hosts(snap, sb.ID),
	}
	for _, dir := range m.fileDirs(sb) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for _, name := range fileNames {
			if err := writeInPlace(filepath.Join(dir, name), content[name]); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeInPlace makes the file at path hold data, keeping its inode. A file that already
// holds exactly data is not written (nor its mtime changed): a restart rewrites nothing.
func writeInPlace(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if sameContent(f, data) {
		return f.Close()
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return fmt.Errorf("truncate %s: %w", path, err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// sameContent reports whether f, read from its start, is exactly data.
func sameContent(f *os.File, data []byte) bool {
	buf := make([]byte, len(data)+1) // one more: a longer file differs
	n, err := io.ReadFull(f, buf)
	return (err == io.ErrUnexpectedEOF || err == io.EOF) && bytes.Equal(buf[:n], data)
}

func (m *Manager) removeFiles(sb *store.Sandbox) {
	for _, dir := range m.fileDirs(sb) {
		if err := os.RemoveAll(dir); err != nil {
			m.cfg.Log.Warn("remove sandbox files", "sandbox", sb.Name, "dir", dir, "err", err)
		}
	}
}

// refreshFiles rewrites the files of sb and of the sandboxes that share its netns. A failure
// is logged, not returned: the files are a fallback view of state that is already durable,
// and the next change (or restart) writes them again.
func (m *Manager) refreshFiles(snap *store.Snapshot, sb *store.Sandbox) {
	cur, err := snap.Sandbox(sb.ID)
	if err != nil {
		return
	}
	for _, o := range append([]*store.Sandbox{cur}, snap.SandboxesSharing(sb.ID)...) {
		if err := m.writeFiles(snap, o); err != nil {
			m.cfg.Log.Warn("write sandbox files", "sandbox", o.Name, "err", err)
		}
	}
	m.refreshDependents(snap, sb.Name)
}

// refreshDependents rewrites the files of sandboxes whose legacy links name target, so
// their hosts files follow the target's address. An index finds them: no scan.
func (m *Manager) refreshDependents(snap *store.Snapshot, target string) {
	done := map[string]bool{}
	for _, ep := range snap.EndpointsLinkingTo(target) {
		if done[ep.SandboxID] {
			continue
		}
		done[ep.SandboxID] = true
		o, err := snap.Sandbox(ep.SandboxID)
		if err != nil {
			continue
		}
		if err := m.writeFiles(snap, o); err != nil {
			m.cfg.Log.Warn("write sandbox files", "sandbox", o.Name, "err", err)
		}
	}
}

// netnsUsers counts processes whose network namespace is the one pinned at path.
func netnsUsers(path string) int {
	want, err := nsutil.IDOf(path)
	if err != nil {
		return 0
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/ns/net")
	self := fmt.Sprintf("/proc/%d/", os.Getpid())
	n := 0
	for _, p := range procs {
		if strings.HasPrefix(p, self) {
			continue
		}
		if id, err := nsutil.IDOf(p); err == nil && id == want {
			n++
		}
	}
	return n
}
