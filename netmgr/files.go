package netmgr

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"berth/internal/nsutil"
	"berth/resolver"
	"berth/store"
)

// Generated files: resolv.conf and hosts for each sandbox, in two places:
//   - /etc/netns/NAME/, which `ip netns exec NAME` and `berth exec` bind-mount over /etc;
//   - RunDir/sandboxes/ID/ (the daemon's --exec-root), a stable path for runtimes to
//     bind-mount into containers.
// They are rewritten in place (truncate + write), never replaced by rename: a file that is
// bind-mounted somewhere must keep its inode or the mount keeps showing the old content.
// Each is reached without following symlinks (safefile.go).
// Which files are still berth's to write, and the records that tell: files_edits.go.

var fileNames = []string{"resolv.conf", "hosts"}

// fileLocs are the directories of sb's files.
func (m *Manager) fileLocs(sb *store.Sandbox) []fileLoc {
	return []fileLoc{
		{key: "etc", base: m.cfg.FilesDir, sub: []string{sb.Name}},
		{key: "run", base: m.cfg.RunDir, sub: []string{"sandboxes", sb.ID}},
	}
}

// fileJob is one file to bring up to date.
type fileJob struct {
	sb   *store.Sandbox
	loc  fileLoc
	name string    // resolv.conf or hosts
	data []byte    // what the records say it should hold
	hash string    // hashOf(data)
	disk diskState // what it held when planned
	// ahead: record hash (with disk as Prev) durably before writing, because a crash after
	// the write would otherwise leave content that matches no record. later: record hash
	// after the write; losing that record in a crash is harmless (no record: berth's file).
	ahead, later bool
	write        bool
}

func (j *fileJob) key() string  { return j.loc.key + "/" + j.name }
func (j *fileJob) path() string { return filepath.Join(j.loc.dir(), j.name) }

// render is what sb's files should hold according to snap.
func render(snap *store.Snapshot, sb *store.Sandbox, host resolver.HostConfig) map[string][]byte {
	return map[string][]byte{
		"resolv.conf": resolver.ResolvConf(snap, sb.ID, host),
		"hosts":       resolver.Hosts(snap, sb.ID),
	}
}

// planFiles renders sb's files and decides what to do with each. Files that are not
// berth's are noted (logged once) and skipped.
func (m *Manager) planFiles(snap, recs *store.Snapshot, sb *store.Sandbox, host resolver.HostConfig) []fileJob {
	content := render(snap, sb, host)
	var jobs []fileJob
	for _, loc := range m.fileLocs(sb) {
		fd, err := openDir(loc, false)
		if errors.Is(err, fs.ErrNotExist) {
			fd = -1
		} else if err != nil {
			m.noteFile(sb, loc.key, "", err)
			continue
		}
		for _, name := range fileNames {
			j := fileJob{sb: sb, loc: loc, name: name, data: content[name], hash: hashOf(content[name])}
			j.disk, err = readState(fd, j.path(), name)
			if err != nil {
				m.noteFile(sb, j.key(), "", err)
				continue
			}
			rec, _ := recs.File(sb.ID, j.key())
			if !managed(rec, j.disk) {
				m.noteFile(sb, j.key(), j.disk, &UnsafePathError{Path: j.path(), Reason: "was changed by the user: leaving it alone"})
				continue
			}
			m.noteFile(sb, j.key(), "", nil)
			j.write = j.disk != j.hash
			j.ahead = j.write && rec != nil && rec.Hash != j.hash
			j.later = rec == nil || !j.write && rec.Hash != j.hash
			if j.write || j.ahead || j.later {
				jobs = append(jobs, j)
			}
		}
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	return jobs
}

// syncFiles brings the files of sbs up to date with snap, workers sandboxes at a time:
// plan every file, record durably the hashes about to be written over berth's own earlier
// content (one commit for all), write, then record the rest in the background. Failures are
// logged, not returned: the files are a fallback view of state that is already durable,
// and the next change (or restart) writes them again.
func (m *Manager) syncFiles(snap *store.Snapshot, sbs []*store.Sandbox, host resolver.HostConfig, workers int) {
	recs := m.cfg.Store.Snapshot()
	plans := make([][]fileJob, len(sbs))
	parallel(len(sbs), workers, func(i int) { plans[i] = m.planFiles(snap, recs, sbs[i], host) })
	var ahead, later []*store.File
	for _, jobs := range plans {
		for _, j := range jobs {
			switch {
			case j.ahead:
				ahead = append(ahead, &store.File{SandboxID: j.sb.ID, Name: j.key(), Hash: j.hash, Prev: j.disk})
			case j.later:
				later = append(later, &store.File{SandboxID: j.sb.ID, Name: j.key(), Hash: j.hash})
			}
		}
	}
	if len(ahead) > 0 {
		if err := m.cfg.Store.Update(putFiles(ahead)); err != nil {
			// Written without its record, a file would look like a user's edit next time.
			m.cfg.Log.Warn("record sandbox files", "err", err)
			return
		}
	}
	parallel(len(sbs), workers, func(i int) { m.writeJobs(plans[i]) })
	if len(later) > 0 {
		if err := m.cfg.Store.UpdateLater(putFiles(later)); err != nil {
			m.cfg.Log.Warn("record sandbox files", "err", err)
		}
	}
}

func putFiles(fs []*store.File) func(tx *store.Tx) error {
	return func(tx *store.Tx) error {
		for _, f := range fs {
			if _, err := tx.Sandbox(f.SandboxID); err != nil {
				continue // removed meanwhile: a record would outlive it
			}
			if err := tx.PutFile(f); err != nil {
				return fmt.Errorf("file %s of sandbox %s: %w", f.Name, store.ShortID(f.SandboxID), err)
			}
		}
		return nil
	}
}

// writeJobs writes the planned files of one sandbox (jobs share their sandbox).
func (m *Manager) writeJobs(jobs []fileJob) {
	fds := map[string]int{}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, j := range jobs {
		if !j.write {
			continue
		}
		fd, ok := fds[j.loc.key]
		if !ok {
			var err error
			if fd, err = openDir(j.loc, true); err != nil {
				m.noteFile(j.sb, j.loc.key, "", err)
				fds[j.loc.key] = -1
				continue
			}
			fds[j.loc.key] = fd
		}
		if fd < 0 {
			continue
		}
		ok, err := rewriteAt(fd, j.path(), j.name, j.disk, j.data)
		switch {
		case err != nil:
			m.noteFile(j.sb, j.key(), "", err)
		case !ok:
			m.noteFile(j.sb, j.key(), "changed", &UnsafePathError{Path: j.path(), Reason: "was changed by the user: leaving it alone"})
		}
	}
}

// parallel calls fn(0..n-1), at most workers at once.
func parallel(n, workers int, fn func(i int)) {
	if workers <= 1 || n <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// removeFiles deletes sb's files and their directories, never through a symlink, and
// forgets what was logged about them.
func (m *Manager) removeFiles(sb *store.Sandbox) {
	for _, loc := range m.fileLocs(sb) {
		m.removeLoc(sb.Name, loc)
	}
	m.notedMu.Lock()
	for k := range m.noted {
		if strings.HasPrefix(k, sb.ID+"/") {
			delete(m.noted, k)
		}
	}
	m.notedMu.Unlock()
}

func (m *Manager) removeLoc(name string, loc fileLoc) {
	if err := removeLoc(loc, fileNames); err != nil {
		m.cfg.Log.Warn("remove sandbox files", "sandbox", name, "dir", loc.dir(), "err", err)
	}
}

// checkFilesDir refuses a sandbox name whose /etc/netns directory berth would have to write
// through: a symlink or a non-directory there, or a symlink or non-file where resolv.conf
// or hosts go (or a symlink for EXEC_ROOT/sandboxes). A regular file there is overwritten:
// before a sandbox of that name existed, berth could not have recorded what it holds.
func (m *Manager) checkFilesDir(name string) error {
	// The exec root's sandboxes directory is berth's own: a symlink there is refused alike.
	if fd, err := openDir(fileLoc{base: m.cfg.RunDir, sub: []string{"sandboxes"}}, false); err == nil {
		unix.Close(fd)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	loc := fileLoc{key: "etc", base: m.cfg.FilesDir, sub: []string{name}}
	fd, err := openDir(loc, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for _, f := range fileNames {
		if _, err := readState(fd, filepath.Join(loc.dir(), f), f); err != nil {
			return err
		}
	}
	return nil
}

// moveFilesDir renames sb's /etc/netns directory to newName's, so that files the user
// changed keep their changes across a rename (Docker's files follow a renamed container).
// It reports false when it did not move it (a directory of the new name exists, or the old
// one is missing or not a real directory): the caller then removes the old one.
func (m *Manager) moveFilesDir(sb *store.Sandbox, newName string) bool {
	fd, err := openDir(fileLoc{base: m.cfg.FilesDir}, false)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	old, err := openSub(fd, filepath.Join(m.cfg.FilesDir, sb.Name), sb.Name, false)
	if err != nil {
		return false
	}
	unix.Close(old)
	// RENAME_NOREPLACE: never over a directory (or symlink) that appeared meanwhile.
	return unix.Renameat2(fd, sb.Name, fd, newName, unix.RENAME_NOREPLACE) == nil
}

// refreshFiles rewrites the files of sb and of the sandboxes that share its netns, and of
// those whose legacy links name it.
func (m *Manager) refreshFiles(snap *store.Snapshot, sb *store.Sandbox) {
	if sbs := filesOf(snap, sb); len(sbs) > 0 {
		m.syncFiles(snap, sbs, m.cfg.HostDNS(), 1)
	}
}

// filesOf are the sandboxes whose files follow sb's records: sb as snap has it, those
// sharing its netns and those whose legacy links name it. None if sb is not in snap.
func filesOf(snap *store.Snapshot, sb *store.Sandbox) []*store.Sandbox {
	cur, err := snap.Sandbox(sb.ID)
	if err != nil {
		return nil
	}
	sbs := append([]*store.Sandbox{cur}, snap.SandboxesSharing(sb.ID)...)
	return append(sbs, dependents(snap, sb.Name, sbs)...)
}

// refreshDependents rewrites the files of sandboxes whose legacy links name target, so
// their hosts files follow the target's address.
func (m *Manager) refreshDependents(snap *store.Snapshot, target string) {
	if sbs := dependents(snap, target, nil); len(sbs) > 0 {
		m.syncFiles(snap, sbs, m.cfg.HostDNS(), 1)
	}
}

// dependents are the sandboxes whose legacy links name target, but for those in skip. An
// index finds them: no scan.
func dependents(snap *store.Snapshot, target string, skip []*store.Sandbox) []*store.Sandbox {
	done := map[string]bool{}
	for _, sb := range skip {
		done[sb.ID] = true
	}
	var out []*store.Sandbox
	for _, ep := range snap.EndpointsLinkingTo(target) {
		if done[ep.SandboxID] {
			continue
		}
		done[ep.SandboxID] = true
		if o, err := snap.Sandbox(ep.SandboxID); err == nil {
			out = append(out, o)
		}
	}
	return out
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
