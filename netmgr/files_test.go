package netmgr

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"berth/api"
	"berth/store"
)

// syncBuffer is a log sink the restore workers may write to at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), sub)
}

// filesRig is a Manager over a store on disk, so a test can restart it (a new Manager on
// the same state file, files and fake kernel).
type filesRig struct {
	t   *testing.T
	dir string
	k   *fakeKernel
	log *syncBuffer
	st  *store.Store
	m   *Manager
}

func newFilesRig(t *testing.T) *filesRig {
	r := &filesRig{t: t, dir: t.TempDir(), k: newFakeKernel(), log: &syncBuffer{}}
	r.start()
	t.Cleanup(func() { r.st.Close() })
	return r
}

// start opens the state and restores a Manager over it, as a daemon start does.
func (r *filesRig) start() {
	r.t.Helper()
	st, err := store.Open(filepath.Join(r.dir, "state.db"))
	if err != nil {
		r.t.Fatal(err)
	}
	r.st = st
	r.m = New(Config{Store: st, Kernel: r.k, Log: slog.New(slog.NewTextHandler(r.log, nil)),
		NetNSDir: r.dir + "/netns", FilesDir: r.dir + "/etc", RunDir: r.dir + "/state"})
	if err := r.m.Restore(r.t.Context()); err != nil {
		r.t.Fatalf("Restore: %v", err)
	}
}

func (r *filesRig) restart() {
	r.t.Helper()
	if err := r.st.Close(); err != nil {
		r.t.Fatal(err)
	}
	r.start()
}

func (r *filesRig) etc(sandbox, file string) string {
	return filepath.Join(r.dir, "etc", sandbox, file)
}

func (r *filesRig) connect(network, sandbox string) {
	r.t.Helper()
	if err := r.m.Connect(r.t.Context(), api.NetworkConnect{Network: network, Sandbox: sandbox}); err != nil {
		r.t.Fatalf("connect %s to %s: %v", sandbox, network, err)
	}
}

// modified is SandboxFileStatus as a map: file -> Modified.
func (r *filesRig) modified(sandbox string) map[string]bool {
	r.t.Helper()
	snap := r.m.cfg.Store.Snapshot()
	sb, err := snap.SandboxByName(sandbox)
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[string]bool{}
	for _, f := range SandboxFileStatus(snap, r.m.cfg.FilesDir, sb) {
		if f.Path != r.etc(sandbox, f.Name) {
			r.t.Errorf("status of %s: path %s, want %s", f.Name, f.Path, r.etc(sandbox, f.Name))
		}
		out[f.Name] = f.Modified
	}
	return out
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeString(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFilesSymlinkedDirRefused: /etc/netns/NAME is a symlink to another directory. The
// create fails with one line naming the path and the reason, and changes nothing: no
// record, no netns, nothing written in the link's target.
func TestFilesSymlinkedDirRefused(t *testing.T) {
	for _, tc := range []struct{ name, link, reason string }{
		{"dir", "", "/etc/x is a symlink: refusing to write through it"},
		{"resolv.conf", "resolv.conf", "/etc/x/resolv.conf is a symlink: refusing to write through it"},
		{"hosts", "hosts", "/etc/x/hosts is a symlink: refusing to write through it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, k := newTestManager(t)
			target := t.TempDir()
			if tc.link == "" {
				if err := os.MkdirAll(m.cfg.FilesDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, filepath.Join(m.cfg.FilesDir, "x")); err != nil {
					t.Fatal(err)
				}
			} else {
				if err := os.MkdirAll(filepath.Join(m.cfg.FilesDir, "x"), 0o755); err != nil {
					t.Fatal(err)
				}
				writeString(t, filepath.Join(target, "keep"), "keep me\n")
				if err := os.Symlink(filepath.Join(target, "keep"), filepath.Join(m.cfg.FilesDir, "x", tc.link)); err != nil {
					t.Fatal(err)
				}
			}
			_, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "x"})
			if err == nil {
				t.Fatal("create through a symlink succeeded")
			}
			want := "create sandbox x: " + filepath.Dir(m.cfg.FilesDir) + tc.reason
			if err.Error() != want || !errors.Is(err, store.ErrConflict) {
				t.Errorf("err = %q (conflict %v), want %q, a conflict", err, errors.Is(err, store.ErrConflict), want)
			}
			if got := m.cfg.Store.Snapshot().Sandboxes(); len(got) != 0 {
				t.Errorf("sandboxes after a refused create: %v", got)
			}
			if len(k.netns) != 0 {
				t.Errorf("netns after a refused create: %v", k.netns)
			}
			entries, _ := os.ReadDir(target)
			if tc.link == "" && len(entries) != 0 {
				t.Errorf("written in the symlink's target: %v", entries)
			}
			if tc.link != "" {
				if got := readString(t, filepath.Join(target, "keep")); got != "keep me\n" {
					t.Errorf("link target now holds %q", got)
				}
			}
		})
	}
}

// TestFilesSymlinkedFileUntouched: after the create, the user replaces both files with
// symlinks to files of theirs. A change that rewrites both (a first user network: the
// embedded DNS in resolv.conf, a new address in hosts) writes neither target nor replaces
// the links; inspect calls them modified; rm removes the links, not the targets.
func TestFilesSymlinkedFileUntouched(t *testing.T) {
	r := newFilesRig(t)
	mustNetwork(t, r.m, api.NetworkCreate{Name: "app"})
	sb, _ := mustSandbox(t, r.m, api.SandboxCreate{Name: "web"})
	target := t.TempDir()
	for _, f := range fileNames {
		writeString(t, filepath.Join(target, f), "theirs "+f+"\n")
		os.Remove(r.etc("web", f))
		if err := os.Symlink(filepath.Join(target, f), r.etc("web", f)); err != nil {
			t.Fatal(err)
		}
	}
	r.connect("app", "web")
	for _, f := range fileNames {
		if got := readString(t, filepath.Join(target, f)); got != "theirs "+f+"\n" {
			t.Errorf("%s: target now holds %q", f, got)
		}
		if fi, err := os.Lstat(r.etc("web", f)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s: symlink replaced: %v %v", f, fi.Mode(), err)
		}
		// The copy under the exec root is a file of its own, and still berth's.
		if got := readString(t, filepath.Join(r.dir, "state", "sandboxes", sb.ID, f)); strings.HasPrefix(got, "theirs") {
			t.Errorf("%s: copy under the exec root holds %q", f, got)
		}
	}
	if got := readString(t, filepath.Join(r.dir, "state", "sandboxes", sb.ID, "resolv.conf")); !strings.Contains(got, "127.0.0.11") {
		t.Errorf("resolv.conf copy not rewritten for the user network:\n%s", got)
	}
	if got := r.modified("web"); !got["resolv.conf"] || !got["hosts"] {
		t.Errorf("modified = %v, want both", got)
	}
	if n := r.log.count("is a symlink: refusing to write through it"); n != 2 {
		t.Errorf("%d log lines about the symlinks, want 2 (one per file)", n)
	}
	if err := r.m.RemoveSandbox(t.Context(), api.SandboxRemove{Sandbox: "web", Force: true}); err != nil {
		t.Fatal(err)
	}
	for _, f := range fileNames {
		if got := readString(t, filepath.Join(target, f)); got != "theirs "+f+"\n" {
			t.Errorf("%s: target after rm holds %q", f, got)
		}
	}
	if _, err := os.Lstat(filepath.Join(r.dir, "etc", "web")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("sandbox dir after rm: %v", err)
	}
}

// TestFilesRemoveSymlinkedDir: the user swapped the whole directory for a symlink after
// the create. Writes are refused, and rm neither deletes through the link nor the link.
func TestFilesRemoveSymlinkedDir(t *testing.T) {
	r := newFilesRig(t)
	mustNetwork(t, r.m, api.NetworkCreate{Name: "app"})
	mustSandbox(t, r.m, api.SandboxCreate{Name: "web", Networks: []string{"app"}})
	target := t.TempDir()
	writeString(t, filepath.Join(target, "hosts"), "theirs\n")
	dir := filepath.Join(r.dir, "etc", "web")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, dir); err != nil {
		t.Fatal(err)
	}
	mustNetwork(t, r.m, api.NetworkCreate{Name: "back"})
	r.connect("back", "web")
	if got := r.modified("web"); !got["resolv.conf"] || !got["hosts"] {
		t.Errorf("modified = %v, want both", got)
	}
	if err := r.m.RemoveSandbox(t.Context(), api.SandboxRemove{Sandbox: "web", Force: true}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(target)
	if len(entries) != 1 || readString(t, filepath.Join(target, "hosts")) != "theirs\n" {
		t.Errorf("target dir after connect and rm: %v", entries)
	}
	if fi, err := os.Lstat(dir); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the user's symlink was removed: %v", err)
	}
}

// TestFilesHardLinkRefused: a generated file with a second name is not written: that would
// change the other file too.
func TestFilesHardLinkRefused(t *testing.T) {
	r := newFilesRig(t)
	mustNetwork(t, r.m, api.NetworkCreate{Name: "app"})
	mustSandbox(t, r.m, api.SandboxCreate{Name: "web", Networks: []string{"app"}})
	other := filepath.Join(t.TempDir(), "other")
	writeString(t, other, "other\n")
	os.Remove(r.etc("web", "hosts"))
	if err := os.Link(other, r.etc("web", "hosts")); err != nil {
		t.Fatal(err)
	}
	mustNetwork(t, r.m, api.NetworkCreate{Name: "back"})
	r.connect("back", "web")
	if got := readString(t, other); got != "other\n" {
		t.Errorf("hard-linked file now holds %q", got)
	}
	if got := r.modified("web"); !got["hosts"] || got["resolv.conf"] {
		t.Errorf("modified = %v, want hosts only", got)
	}
}

// TestFilesSymlinkedExecRoot: EXEC_ROOT/sandboxes replaced by a symlink. A create is refused
// with one line and writes nothing through it; a sandbox made before is not written or
// removed through it either.
func TestFilesSymlinkedExecRoot(t *testing.T) {
	r := newFilesRig(t)
	mustNetwork(t, r.m, api.NetworkCreate{Name: "app"})
	mustSandbox(t, r.m, api.SandboxCreate{Name: "old", Networks: []string{"app"}})
	target := t.TempDir()
	dir := filepath.Join(r.dir, "state", "sandboxes")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, dir); err != nil {
		t.Fatal(err)
	}
	_, err := r.m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "web", Networks: []string{"app"}})
	if want := "create sandbox web: " + dir + " is a symlink: refusing to write through it"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
	mustNetwork(t, r.m, api.NetworkCreate{Name: "back"})
	r.connect("back", "old")
	if err := r.m.RemoveSandbox(t.Context(), api.SandboxRemove{Sandbox: "old", Force: true}); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Errorf("written through the symlink: %v", entries)
	}
	if got := r.m.cfg.Store.Snapshot().Sandboxes(); len(got) != 0 {
		t.Errorf("sandboxes left: %v", got)
	}
}
