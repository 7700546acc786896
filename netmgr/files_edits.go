package netmgr

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"berth/store"
)

// Files the user changed are theirs, as in Docker (libnetwork records a hash of what it
// wrote and skips the update when the file differs): store.File records the hash of what
// berth last wrote to each file, and a file holding anything else is left alone, logged
// once, and shown as modified by `sandbox inspect`. Putting back exactly what berth wrote
// hands it back. A symlink, directory or other non-file where a file goes counts as such an
// edit: berth refuses to write through it and does not replace it either (the link may be
// the user's way of pointing the sandbox at another resolver), so the target is never
// touched. A create refuses such a path with an error before it changes anything.

// managed reports whether a file in state disk is still berth's: missing, never recorded
// (a new sandbox, or a state file from before records), or holding what berth last wrote
// or was about to overwrite.
func managed(rec *store.File, disk diskState) bool {
	return disk == "" || rec == nil || disk == rec.Hash || disk == rec.Prev
}

// recordNewFiles records, in the transaction that makes a new sandbox ready, the files its
// create writes right after the commit, so that recording them costs no commit of its own.
// A file already there (left in /etc/netns/NAME by someone else: a create overwrites it, as
// berth has no record of it) is recorded as Prev, which makes it berth's to replace. A
// crash before the write leaves that content or none, both berth's.
func (m *Manager) recordNewFiles(tx *store.Tx, sb *store.Sandbox) error {
	content := render(&tx.Snapshot, sb, m.cfg.HostDNS())
	for _, loc := range m.fileLocs(sb) {
		fd, err := openDir(loc, false)
		if errors.Is(err, fs.ErrNotExist) {
			fd = -1
		} else if err != nil {
			continue // not written either (syncFiles logs why)
		}
		for _, name := range fileNames {
			disk, err := readState(fd, filepath.Join(loc.dir(), name), name)
			if err != nil {
				continue
			}
			f := &store.File{SandboxID: sb.ID, Name: loc.key + "/" + name, Hash: hashOf(content[name]), Prev: disk}
			if err := tx.PutFile(f); err != nil {
				if fd >= 0 {
					unix.Close(fd)
				}
				return fmt.Errorf("file %s of sandbox %s: %w", f.Name, sb.Name, err)
			}
		}
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	return nil
}

// recordAhead records, in the transaction of a change to sb (connect, disconnect), the
// hashes that the files of sb and of the sandboxes sharing or linking to it are about to
// get, so that the write after the commit needs no commit of its own. Should the change be
// undone, the files still hold Prev: berth's; the undo puts back the records replaced,
// which it returns.
func (m *Manager) recordAhead(tx *store.Tx, sb *store.Sandbox) ([]*store.File, error) {
	snap := &tx.Snapshot
	host := m.cfg.HostDNS()
	var replaced []*store.File
	for _, o := range filesOf(snap, sb) {
		for _, j := range m.planFiles(snap, snap, o, host) {
			if !j.ahead {
				continue
			}
			if old, err := tx.File(o.ID, j.key()); err == nil {
				replaced = append(replaced, old)
			}
			if err := tx.PutFile(&store.File{SandboxID: o.ID, Name: j.key(), Hash: j.hash, Prev: j.disk}); err != nil {
				return nil, fmt.Errorf("file %s of sandbox %s: %w", j.key(), o.Name, err)
			}
		}
	}
	return replaced, nil
}

// noteFile logs once what keeps berth from writing file key of sb (err), and forgets it once
// the file is berth's again (err nil). state tells one edit from the next, so each is logged.
func (m *Manager) noteFile(sb *store.Sandbox, key string, state diskState, err error) {
	id := sb.ID + "/" + key
	m.notedMu.Lock()
	defer m.notedMu.Unlock()
	if err == nil {
		delete(m.noted, id)
		if key != "etc" && key != "run" {
			delete(m.noted, sb.ID+"/"+strings.SplitN(key, "/", 2)[0])
		}
		return
	}
	msg := err.Error() + "\x00" + state
	if m.noted[id] == msg {
		return
	}
	m.noted[id] = msg
	var ue *UnsafePathError
	if errors.As(err, &ue) {
		m.cfg.Log.Info("sandbox file left alone", "sandbox", sb.Name, "path", ue.Path, "reason", ue.Reason)
		return
	}
	m.cfg.Log.Warn("write sandbox files", "sandbox", sb.Name, "err", err)
}

// FileStatus is one generated file of a sandbox, as `sandbox inspect` shows it.
type FileStatus struct {
	Name     string // resolv.conf or hosts
	Path     string
	Modified bool // changed by someone else, or not a regular file: berth leaves it alone
}

// SandboxFileStatus reports whether each of sb's files under filesDir (/etc/netns) still
// holds what berth last wrote, from the records in snap and the files themselves (read
// without following symlinks). A missing file is berth's: the next change writes it.
func SandboxFileStatus(snap *store.Snapshot, filesDir string, sb *store.Sandbox) []FileStatus {
	loc := fileLoc{key: "etc", base: filesDir, sub: []string{sb.Name}}
	fd, err := openDir(loc, false)
	dirErr := err
	if errors.Is(err, fs.ErrNotExist) {
		fd, dirErr = -1, nil
	}
	var out []FileStatus
	for _, name := range fileNames {
		st := FileStatus{Name: name, Path: filepath.Join(loc.dir(), name)}
		if dirErr != nil {
			var ue *UnsafePathError
			st.Modified = errors.As(dirErr, &ue)
		} else {
			disk, err := readState(fd, st.Path, name)
			var ue *UnsafePathError
			rec, _ := snap.File(sb.ID, loc.key+"/"+name)
			st.Modified = errors.As(err, &ue) || err == nil && !managed(rec, disk)
		}
		out = append(out, st)
	}
	if fd >= 0 {
		unix.Close(fd)
	}
	return out
}
