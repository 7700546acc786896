package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// filesJSON is the Files part of `berth sandbox inspect`.
func (d *daemon) files(name string) map[string]struct {
	Path     string
	Modified bool
} {
	d.t.Helper()
	var out []struct {
		Files map[string]struct {
			Path     string
			Modified bool
		}
	}
	if err := json.Unmarshal([]byte(d.must("sandbox", "inspect", name)), &out); err != nil || len(out) != 1 {
		d.t.Fatalf("sandbox inspect %s: %v", name, err)
	}
	return out[0].Files
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFilesSymlinkedDir: /etc/netns/x is a symlink to another directory. Creating sandbox x
// fails with one line naming the path and the reason, writes nothing where the link points,
// and leaves no sandbox and no netns.
func TestFilesSymlinkedDir(t *testing.T) {
	d := newDaemon(t)
	d.start()
	target := t.TempDir()
	if err := os.MkdirAll("/etc/netns", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, "/etc/netns/x"); err != nil {
		t.Fatal(err)
	}
	d.fails("create sandbox x: /etc/netns/x is a symlink: refusing to write through it", "sandbox", "create", "--name", "x")
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Errorf("written through the symlink: %v", entries)
	}
	if got := d.must("sandbox", "ls", "-q"); got != "" {
		t.Errorf("sandboxes after the refused create: %q", got)
	}
	if _, err := os.Lstat("/run/netns/x"); err == nil {
		t.Errorf("/run/netns/x left behind")
	}
	if entries, _ := os.ReadDir(filepath.Join(d.root, "sandboxes")); len(entries) != 0 {
		t.Errorf("exec-root copies left behind: %v", entries)
	}
	if fi, err := os.Lstat("/etc/netns/x"); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink itself was changed: %v", err)
	}
}

// TestFilesSymlinkedResolvConf: a sandbox's resolv.conf replaced by a symlink to a file of
// the user's. A change that rewrites resolv.conf (a first user network brings the embedded
// DNS) neither writes the target nor replaces the link; inspect says modified; rm removes
// the link, never the target.
func TestFilesSymlinkedResolvConf(t *testing.T) {
	d := newDaemon(t)
	d.start()
	d.must("network", "create", "--subnet", "10.81.0.0/24", "app")
	d.must("sandbox", "create", "--name", "web")
	target := filepath.Join(t.TempDir(), "resolv.conf")
	const theirs = "nameserver 192.0.2.53\n"
	if err := os.WriteFile(target, []byte(theirs), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove("/etc/netns/web/resolv.conf"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, "/etc/netns/web/resolv.conf"); err != nil {
		t.Fatal(err)
	}
	d.must("network", "connect", "app", "web")
	if got := readFile(t, target); got != theirs {
		t.Errorf("symlink target rewritten:\n%s", got)
	}
	if fi, err := os.Lstat("/etc/netns/web/resolv.conf"); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("symlink replaced: %v", err)
	}
	if f := d.files("web"); !f["resolv.conf"].Modified || f["hosts"].Modified || f["resolv.conf"].Path != "/etc/netns/web/resolv.conf" {
		t.Errorf("inspect Files = %+v, want resolv.conf modified only", f)
	}
	// The copy under the exec root is berth's and did get the embedded DNS.
	id := d.inspectSandbox("web").ID
	if got := readFile(t, filepath.Join(d.root, "sandboxes", id, "resolv.conf")); !strings.Contains(got, "nameserver 127.0.0.11") {
		t.Errorf("exec-root copy not rewritten:\n%s", got)
	}
	d.must("sandbox", "rm", "-f", "web")
	if got := readFile(t, target); got != theirs {
		t.Errorf("symlink target changed by rm:\n%s", got)
	}
	if _, err := os.Lstat("/etc/netns/web"); err == nil {
		t.Errorf("/etc/netns/web left after rm")
	}
}

// TestFilesUserEdit: the user edits a sandbox's hosts. Connecting another network keeps
// the edit (Docker keeps a file the user modified) while the exec-root copy, still berth's,
// gets the new address; inspect says modified, and so it stays across a restart. Putting
// back what berth wrote makes the file berth's again.
func TestFilesUserEdit(t *testing.T) {
	d := newDaemon(t)
	d.start()
	d.must("network", "create", "--subnet", "10.82.0.0/24", "app")
	d.must("network", "create", "--subnet", "10.83.0.0/24", "back")
	d.must("network", "create", "--subnet", "10.84.0.0/24", "third")
	d.must("sandbox", "create", "--name", "web", "--network", "app")
	const hosts = "/etc/netns/web/hosts"
	orig := readFile(t, hosts)
	edited := orig + "192.0.2.7\tmine\n"
	if err := os.WriteFile(hosts, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	d.must("network", "connect", "back", "web")
	if got := readFile(t, hosts); got != edited {
		t.Errorf("edited hosts rewritten by connect:\n%s", got)
	}
	if got, _ := inNS(t, "web", "getent", "hosts", "mine"); !strings.Contains(got, "192.0.2.7") {
		t.Errorf("the edit is not what the sandbox sees: %q", got)
	}
	id := d.inspectSandbox("web").ID
	backIP := d.ip("web", "back")
	if got := readFile(t, filepath.Join(d.root, "sandboxes", id, "hosts")); !strings.Contains(got, backIP) {
		t.Errorf("exec-root copy of hosts lacks %s:\n%s", backIP, got)
	}
	if f := d.files("web"); !f["hosts"].Modified || f["resolv.conf"].Modified {
		t.Errorf("inspect Files = %+v, want hosts modified only", f)
	}
	if n := strings.Count(d.log.String(), "was changed by the user"); n != 1 {
		t.Errorf("%d log lines about the edit, want 1", n)
	}

	d.stop()
	d.start()
	if got := readFile(t, hosts); got != edited {
		t.Errorf("edited hosts rewritten by the restart:\n%s", got)
	}
	if f := d.files("web"); !f["hosts"].Modified {
		t.Errorf("after restart: inspect Files = %+v, want hosts modified", f)
	}
	d.must("network", "connect", "third", "web")
	if got := readFile(t, hosts); got != edited {
		t.Errorf("edited hosts rewritten by a connect after the restart:\n%s", got)
	}

	// Back to exactly what berth last wrote (the create's file): berth's again, and the next
	// change rewrites it.
	if err := os.WriteFile(hosts, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	if f := d.files("web"); f["hosts"].Modified {
		t.Errorf("after undoing the edit: inspect Files = %+v, want none modified", f)
	}
	d.must("network", "disconnect", "third", "web")
	if got := readFile(t, hosts); !strings.Contains(got, backIP) {
		t.Errorf("hosts not rewritten once berth's again:\n%s", got)
	}
}
