package daemon

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestDaemonGroup: --group takes a name or a GID, a bad one is a one-line error, and the
// socket is made root:GROUP 0660.
func TestDaemonGroup(t *testing.T) {
	parse := func(group string) (Config, error) {
		c := Config{Root: "/var/lib/berth", Socket: "/run/berth/berth.sock", Group: group}
		return c, c.validate()
	}
	for _, tc := range []struct {
		group string
		gid   int
		err   string
	}{
		{"", -1, ""},
		{"0", 0, ""},
		{"root", 0, ""},
		{"4242", 4242, ""},
		{"nosuch-berth-group", 0, `invalid group "nosuch-berth-group": no such group`},
		{"-5", 0, `invalid group "-5": negative GID`},
	} {
		c, err := parse(tc.group)
		switch {
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("--group %q: err %v, want %q", tc.group, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("--group %q: %v", tc.group, err)
		case tc.err == "" && c.socketGID != tc.gid:
			t.Errorf("--group %q: gid %d, want %d", tc.group, c.socketGID, tc.gid)
		}
	}

	gid := os.Getgid() // a group any caller may give its own files
	if os.Geteuid() == 0 {
		gid = 4242
	}
	path := filepath.Join(t.TempDir(), "berth.sock")
	ln, err := listenUnix(path, gid)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o777 != 0o660 || int(st.Gid) != gid {
		t.Errorf("socket mode %o gid %d, want 660 and %d", st.Mode&0o777, st.Gid, gid)
	}
}
