package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/internal/etcdtest"
	"berth/netmgr"
)

// TestTLS: against an etcd that requires client certificates (--client-cert-auth), a
// client with TLSConfig's configuration works and one without a client certificate
// does not. etcdtest runs plain HTTP only, so this test runs etcd itself.
func TestTLS(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(etcdtest.Binary); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("etcd tests must run in CI: %v", err)
		}
		t.Skipf("needs %s", etcdtest.Binary)
	}
	dir := t.TempDir()
	pki := newPKI(t, dir)
	addr := startTLSEtcd(t, dir, pki)

	tlsCfg, err := TLSConfig(map[string]string{OptCACert: pki.ca, OptCert: pki.clientCert, OptKey: pki.clientKey})
	if err != nil {
		t.Fatal(err)
	}
	h := startHost(t, []string{addr}, "a", "192.0.2.1", func(c *Config) { c.TLS = tlsCfg })
	var created error
	waitFor(t, "create over TLS", 10*time.Second, func() bool {
		_, created = h.c.CreateNetwork(context.Background(), overlay("ov", "10.90.0.0/24"))
		return created == nil
	})
	waitFor(t, "connected over TLS", 5*time.Second, func() bool { return h.c.Status().Connected })

	// The server's CA but no client certificate: etcd refuses the handshake, and the
	// call fails (within the timeout) rather than hanging.
	noCert, err := TLSConfig(map[string]string{OptCACert: pki.ca})
	if err != nil {
		t.Fatal(err)
	}
	bad := newHost(t, []string{addr}, "b", "192.0.2.2", func(c *Config) { c.TLS = noCert; c.Timeout = 500 * time.Millisecond })
	start := time.Now()
	_, err = bad.c.CreateNetwork(context.Background(), overlay("ov2", "10.90.1.0/24"))
	if err == nil || !errors.Is(err, netmgr.ErrClusterUnreachable) {
		t.Errorf("create without a client certificate: %v; want it to fail as unreachable", err)
	}
	t.Logf("without a client certificate: %v after %v", err, time.Since(start))
}

// startTLSEtcd runs etcd with a TLS client port that requires certificates signed by the
// test CA and returns its address; it is killed when the test ends.
func startTLSEtcd(t *testing.T, dir string, p pki) string {
	t.Helper()
	ports := make([]int, 2)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	client := fmt.Sprintf("https://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	name := fmt.Sprintf("tls-%d", os.Getpid())
	cmd := exec.Command(etcdtest.Binary, "--name", name, "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", name+"="+peer, "--initial-cluster-state", "new",
		"--cert-file", p.serverCert, "--key-file", p.serverKey,
		"--trusted-ca-file", p.ca, "--client-cert-auth",
		"--logger", "zap", "--log-outputs", "stderr", "--log-level", "error")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = []string{"PATH=/usr/bin:/bin"} // no ETCD_* from the environment
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("run etcd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("etcd output:\n%s", out.String())
		}
	})
	return strings.TrimPrefix(client, "https://")
}
