package netmgr

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/api"
	"berth/store"
)

// TestFilesUserModified: a file the user edited is left alone by later changes, logged
// once, shown as modified, and stays so across a restart; putting back exactly what berth
// wrote makes it berth's again.
func TestFilesUserModified(t *testing.T) {
	r := newFilesRig(t)
	for _, n := range []string{"app", "back", "third"} {
		mustNetwork(t, r.m, api.NetworkCreate{Name: n})
	}
	mustSandbox(t, r.m, api.SandboxCreate{Name: "web", Networks: []string{"app"}})
	hosts := r.etc("web", "hosts")
	orig := readString(t, hosts)
	edited := orig + "10.9.9.9\tmine\n"
	writeString(t, hosts, edited)
	resolvBefore := readString(t, r.etc("web", "resolv.conf"))
	if got := r.modified("web"); !got["hosts"] || got["resolv.conf"] {
		t.Errorf("after the edit: modified = %v, want hosts only", got)
	}

	r.connect("back", "web")
	if got := readString(t, hosts); got != edited {
		t.Errorf("edited hosts rewritten by connect:\n%s", got)
	}
	if n := r.log.count("was changed by the user"); n != 1 {
		t.Errorf("%d log lines about the edit after one connect, want 1", n)
	}
	r.connect("third", "web")
	if n := r.log.count("was changed by the user"); n != 1 {
		t.Errorf("%d log lines about the edit after two connects, want 1", n)
	}
	if got := readString(t, r.etc("web", "resolv.conf")); got != resolvBefore {
		t.Logf("resolv.conf changed with the networks (fine): %q", got)
	}

	r.restart()
	if got := readString(t, hosts); got != edited {
		t.Errorf("edited hosts rewritten by the restart:\n%s", got)
	}
	if got := r.modified("web"); !got["hosts"] || got["resolv.conf"] {
		t.Errorf("after restart: modified = %v, want hosts only", got)
	}
	if err := r.m.Disconnect(t.Context(), api.NetworkDisconnect{Network: "third", Sandbox: "web"}); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, hosts); got != edited {
		t.Errorf("edited hosts rewritten by disconnect after restart:\n%s", got)
	}

	// Undo the edit: what berth wrote last was the create's content.
	writeString(t, hosts, orig)
	if got := r.modified("web"); got["hosts"] {
		t.Errorf("after undoing the edit: modified = %v, want none", got)
	}
	r.connect("third", "web")
	got := readString(t, hosts)
	if got == orig || !strings.Contains(got, "web") {
		t.Errorf("hosts of berth's not rewritten by connect:\n%s", got)
	}
	if m := r.modified("web"); m["hosts"] {
		t.Errorf("after connect: modified = %v, want none", m)
	}
}

// TestFilesCrashBetweenRecordAndWrite: the record of a write reaches the disk before the
// file changes. A file still holding the content before it (Prev), or already the new one,
// is berth's; anything else is the user's.
func TestFilesCrashBetweenRecordAndWrite(t *testing.T) {
	rec := &store.File{Hash: "new", Prev: "old"}
	for _, tc := range []struct {
		rec  *store.File
		disk diskState
		want bool
	}{
		{nil, "anything", true}, // no record: a new sandbox, or a state from before records
		{rec, "", true},         // missing: berth writes it again
		{rec, "new", true},
		{rec, "old", true}, // crash after the record, before the write
		{rec, "edited", false},
		{&store.File{Hash: "new"}, "old", false},
	} {
		if got := managed(tc.rec, tc.disk); got != tc.want {
			t.Errorf("managed(%+v, %q) = %v, want %v", tc.rec, tc.disk, got, tc.want)
		}
	}
}

// TestFilesRecordedAhead: overwriting berth's own content records the new hash, with the
// old one as Prev, before the write, durably; rm drops the records with the sandbox.
func TestFilesRecordedAhead(t *testing.T) {
	r := newFilesRig(t)
	mustNetwork(t, r.m, api.NetworkCreate{Name: "app"})
	mustNetwork(t, r.m, api.NetworkCreate{Name: "back"})
	sb, _ := mustSandbox(t, r.m, api.SandboxCreate{Name: "web", Networks: []string{"app"}})
	before := hashOf([]byte(readString(t, r.etc("web", "hosts"))))
	r.connect("back", "web")
	after := hashOf([]byte(readString(t, r.etc("web", "hosts"))))
	r.restart() // only what reached the disk
	f, err := r.m.cfg.Store.Snapshot().File(sb.ID, "etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	if f.Hash != after || f.Prev != before {
		t.Errorf("record = %+v, want Hash %s Prev %s", f, after, before)
	}
	if got := len(r.m.cfg.Store.Snapshot().SandboxFiles(sb.ID)); got != 4 {
		t.Errorf("%d file records, want 4 (two files, two copies)", got)
	}
	if err := r.m.RemoveSandbox(t.Context(), api.SandboxRemove{Sandbox: "web", Force: true}); err != nil {
		t.Fatal(err)
	}
	if got := r.m.cfg.Store.Snapshot().SandboxFiles(sb.ID); len(got) != 0 {
		t.Errorf("file records after rm: %v", got)
	}
}

// TestFilesRenameKeepsEdit: the /etc/netns directory moves with a rename, edits and all.
func TestFilesRenameKeepsEdit(t *testing.T) {
	r := newFilesRig(t)
	mustNetwork(t, r.m, api.NetworkCreate{Name: "app"})
	mustSandbox(t, r.m, api.SandboxCreate{Name: "web", Networks: []string{"app"}})
	edited := "nameserver 9.9.9.9\n"
	writeString(t, r.etc("web", "resolv.conf"), edited)
	if err := r.m.RenameSandbox(t.Context(), api.SandboxRename{Sandbox: "web", Name: "www"}); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, r.etc("www", "resolv.conf")); got != edited {
		t.Errorf("resolv.conf after rename: %q", got)
	}
	if got := readString(t, r.etc("www", "hosts")); !strings.Contains(got, "www") {
		t.Errorf("hosts of berth's not rewritten for the new name:\n%s", got)
	}
	if _, err := os.Lstat(filepath.Join(r.dir, "etc", "web")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old dir left: %v", err)
	}
	// A rename onto a symlinked directory is refused like a create.
	mustSandbox(t, r.m, api.SandboxCreate{Name: "db", Networks: []string{"app"}})
	if err := os.Symlink(t.TempDir(), filepath.Join(r.dir, "etc", "cache")); err != nil {
		t.Fatal(err)
	}
	err := r.m.RenameSandbox(t.Context(), api.SandboxRename{Sandbox: "db", Name: "cache"})
	if err == nil || !strings.Contains(err.Error(), "is a symlink: refusing to write through it") {
		t.Errorf("rename onto a symlink: err = %v", err)
	}
}

// TestFilesCreateOverwritesLeftover: a regular file left in /etc/netns/NAME before any
// sandbox of that name is overwritten by the create (berth has no record of it), and the
// file is berth's from then on.
func TestFilesCreateOverwritesLeftover(t *testing.T) {
	r := newFilesRig(t)
	mustNetwork(t, r.m, api.NetworkCreate{Name: "app"})
	if err := os.MkdirAll(filepath.Join(r.dir, "etc", "web"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeString(t, r.etc("web", "resolv.conf"), "nameserver 192.0.2.1\n")
	mustSandbox(t, r.m, api.SandboxCreate{Name: "web", Networks: []string{"app"}})
	if got := readString(t, r.etc("web", "resolv.conf")); !strings.Contains(got, "127.0.0.11") {
		t.Errorf("leftover resolv.conf not overwritten:\n%s", got)
	}
	if got := r.modified("web"); got["resolv.conf"] || got["hosts"] {
		t.Errorf("modified = %v, want none", got)
	}
	mustNetwork(t, r.m, api.NetworkCreate{Name: "back"})
	before := readString(t, r.etc("web", "hosts"))
	r.connect("back", "web")
	if got := readString(t, r.etc("web", "hosts")); got == before {
		t.Errorf("hosts not rewritten by connect")
	}
}

// TestFilesUndoneConnect: a connect records the files' new hashes in its own commit, before
// its kernel work. When that work fails the connect is undone: the files still hold the
// content before it, and their records are those before it again: berth's, rewritten by
// the next change.
func TestFilesUndoneConnect(t *testing.T) {
	r := newFilesRig(t)
	for _, n := range []string{"app", "back", "third"} {
		mustNetwork(t, r.m, api.NetworkCreate{Name: n})
	}
	sb, _ := mustSandbox(t, r.m, api.SandboxCreate{Name: "web", Networks: []string{"app"}})
	before := readString(t, r.etc("web", "hosts"))
	r.k.failOn = "AddVeth"
	if err := r.m.Connect(t.Context(), api.NetworkConnect{Network: "back", Sandbox: "web"}); err == nil {
		t.Fatal("connect succeeded despite a kernel failure")
	}
	if got := readString(t, r.etc("web", "hosts")); got != before {
		t.Errorf("hosts changed by an undone connect:\n%s", got)
	}
	if f, _ := r.m.cfg.Store.Snapshot().File(sb.ID, "etc/hosts"); f == nil || f.Hash != hashOf([]byte(before)) {
		t.Errorf("record after the undone connect = %+v, want Hash = the content before it", f)
	}
	if got := r.modified("web"); got["hosts"] {
		t.Errorf("modified = %v after an undone connect, want none", got)
	}
	r.restart()
	r.connect("third", "web")
	if got := readString(t, r.etc("web", "hosts")); got == before {
		t.Errorf("hosts not rewritten by the next connect")
	}
	if got := r.modified("web"); got["hosts"] {
		t.Errorf("modified = %v, want none", got)
	}
}
