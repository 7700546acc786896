package integration

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDockerSocketBusy: a --docker-socket the daemon cannot listen on (another server is
// on it) fails the start with one line, and the API socket, opened just before, goes with
// it: no client reaches a daemon that is exiting, and no socket file is left behind.
func TestDockerSocketBusy(t *testing.T) {
	d := newDaemon(t)
	busy := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", busy)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out, err := exec.Command(d.bin, "daemon", "--root", d.root, "--socket", d.sock, "--resolv-conf", d.resolv,
		"--docker-socket", busy).CombinedOutput()
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	want := "listen " + busy + ": another daemon is serving on it"
	if err == nil || lines[len(lines)-1] != want {
		t.Errorf("start with a busy --docker-socket: %v, last line %q; want an exit with %q\n%s", err, lines[len(lines)-1], want, out)
	}
	if _, err := os.Lstat(d.sock); err == nil {
		t.Errorf("the API socket %s is left after the failed start", d.sock)
	}
}
