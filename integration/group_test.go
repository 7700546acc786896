package integration

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDaemonGroup: `berth daemon --group G` makes the API socket root:G 0660, so a user in
// G drives the daemon without root, and one outside it is refused (issue 20, as dockerd's
// docker group). The group exists only in this test's mount namespace: a file of its own
// is bind-mounted over /etc/group.
func TestDaemonGroup(t *testing.T) {
	d := newDaemon(t)
	groups, err := os.ReadFile("/etc/group")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	file := filepath.Join(tmp, "group")
	if err := os.WriteFile(file, append(groups, "berthtest:x:4242:\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(file, "/etc/group", "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s over /etc/group: %v", file, err)
	}
	t.Cleanup(func() { syscall.Unmount("/etc/group", 0) })

	// A non-root user must reach the socket and the binary: open up their directories
	// below the temp dir, never the temp dir itself (/tmp is 1777; this loop once went one
	// step too far and left the machine's /tmp 0755, which broke apt's _apt user).
	if before, err := os.Stat(os.TempDir()); err == nil {
		t.Cleanup(func() {
			if after, err := os.Stat(os.TempDir()); err != nil || after.Mode() != before.Mode() {
				t.Errorf("%s: mode %v, was %v: the test changed the machine's temp dir", os.TempDir(), after.Mode(), before.Mode())
			}
		})
	}
	for dir := d.root; dir != os.TempDir() && dir != "/"; dir = filepath.Dir(dir) {
		os.Chmod(dir, 0o755)
	}
	os.Chmod(tmp, 0o755)
	bin := filepath.Join(tmp, "berth")
	copyFile(t, d.bin, bin)

	d.start("--group", "berthtest")
	var st syscall.Stat_t
	if err := syscall.Stat(d.sock, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o777 != 0o660 || st.Uid != 0 || st.Gid != 4242 {
		t.Errorf("socket %o %d:%d, want 660 0:4242", st.Mode&0o777, st.Uid, st.Gid)
	}
	as := func(uid, gid uint32, args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"--host", "unix://" + d.sock}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{gid}}}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := as(4243, 4242, "network", "create", "--subnet", "10.62.0.0/24", "grp"); err != nil {
		t.Errorf("member of berthtest: network create: %v: %s", err, out)
	}
	if out, err := as(4243, 4242, "network", "ls", "--format", "{{.Name}}"); err != nil || !strings.Contains(out, "grp") {
		t.Errorf("member of berthtest: network ls: %v: %s", err, out)
	}
	out, err := as(4244, 4244, "network", "ls")
	if err == nil || !strings.Contains(out, "permission denied") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("outside berthtest: network ls: %v: %q, want one line saying permission denied", err, out)
	}
	d.must("network", "rm", "grp")

	// An unknown group stops the daemon before it touches anything, in one line.
	cmd := exec.Command(d.bin, "daemon", "--root", t.TempDir(), "--socket", filepath.Join(tmp, "other.sock"), "--group", "nosuch-berth-group")
	out2, err := cmd.CombinedOutput()
	if err == nil || strings.TrimSpace(string(out2)) != `invalid group "nosuch-berth-group": no such group` {
		t.Errorf("--group nosuch-berth-group: %v: %q", err, out2)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
