package netmgr

import (
	"path/filepath"

	"berth/internal/nsutil"
	"berth/store"
)

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

// maxUTSName is the kernel's limit on a hostname or domain name (HOST_NAME_MAX).
const maxUTSName = 64

// ownsPin reports whether sb's netns path is a pin berth made, which it removes with the
// sandbox. A netns adopted in place (its own file under NetNSDir, named like the
// sandbox) is the adopter's: removing the sandbox leaves it where it was.
func ownsPin(sb *store.Sandbox) bool {
	return sb.Adopted == "" || sb.Adopted != sb.NetNSPath
}

// checkAdopt checks --netns (an absolute path, ValidateSandboxCreate): an existing network
// namespace that is neither the daemon's own nor already a sandbox's.
func (m *Manager) checkAdopt(snap *store.Snapshot, path string) error {
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
	h, err := nsutil.Current()
	if err != nil {
		return nsutil.ID{}, false
	}
	defer h.Close()
	id, err := h.ID()
	return id, err == nil
}
