package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"berth/internal/tlstest"
)

// TestDockerAPIOverTLS: --docker-socket tcp://HOST:PORT serves the Engine API behind the
// daemon's mutual TLS, as dockerd -H tcp:// --tlsverify: a docker CLI with a client
// certificate of that CA drives networks; one without a certificate, or with another
// CA's, gets no answer; and the unix API socket keeps working beside it.
func TestDockerAPIOverTLS(t *testing.T) {
	d := newDaemon(t)
	f := tlstest.Write(t, t.TempDir())
	addr := freeTCPAddr(t)
	d.start("--docker-socket", "tcp://"+addr, "--tlsverify", "--tlscacert", f.CA,
		"--tlscert", f.ServerCert, "--tlskey", f.ServerKey)
	home := t.TempDir()
	docker := func(bin string, args ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST=tcp://"+addr, "HOME="+home, "DOCKER_CONFIG="+home)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		return o.String(), e.String(), err
	}
	ran := 0
	for i, bin := range dockerCLIs {
		if _, err := os.Stat(bin); err != nil {
			t.Logf("%s: not installed, not run", bin)
			continue
		}
		ran++
		withCert := []string{"--tlsverify", "--tlscacert", f.CA, "--tlscert", f.ClientCert, "--tlskey", f.ClientKey}
		name := []string{"tlsnet-a", "tlsnet-b"}[i]
		if _, e, err := docker(bin, append(withCert, "network", "create", "--subnet", []string{"10.71.0.0/24", "10.71.1.0/24"}[i], name)...); err != nil {
			t.Fatalf("%s network create over tcp:// with a client certificate: %v: %s", bin, err, e)
		}
		o, e, err := docker(bin, append(withCert, "network", "ls", "--filter", "name="+name, "--format", "{{.Name}} {{.Driver}}")...)
		if err != nil || strings.TrimSpace(o) != name+" bridge" {
			t.Errorf("%s network ls over tcp://: %v, %q, %q; want %q", bin, err, o, e, name+" bridge")
		}
		for _, bad := range [][]string{
			{"--tlsverify", "--tlscacert", f.CA}, // no client certificate
			{"--tlsverify", "--tlscacert", f.CA, "--tlscert", f.ForeignCert, "--tlskey", f.ForeignKey},
		} {
			if o, e, err := docker(bin, append(bad, "network", "ls")...); err == nil {
				t.Errorf("%s %v network ls: answered %q; want refused", bin, bad, o)
			} else if strings.Contains(o, name) {
				t.Errorf("%s %v: listed networks despite the refusal: %q (%q)", bin, bad, o, e)
			}
		}
		// The same network through berth's own unix socket.
		if o := d.must("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", name); o == "" {
			t.Errorf("berth network inspect %s: empty", name)
		}
		if _, e, err := docker(bin, append(withCert, "network", "rm", name)...); err != nil {
			t.Errorf("%s network rm over tcp://: %v: %s", bin, err, e)
		}
	}
	if ran == 0 {
		t.Fatal("no docker CLI installed (docker.io): nothing ran")
	}
}
