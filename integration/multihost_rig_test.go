package integration

import (
	"strings"
	"testing"
	"time"
)

// TestMultihostRig proves the multi-host harness itself: three hosts with namespaces of
// their own, each reaching the others and etcd over the underlay, and a daemon answering on
// each, whose state (a bridge network made on A) stays on its own host.
func TestMultihostRig(t *testing.T) {
	r := newRig(t, 3)
	for _, h := range r.hosts {
		if got := h.mustExec("ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(got, " "+h.addr+"/24 ") {
			t.Errorf("host %s eth0: %q, want %s/24", h.name, got, h.addr)
		}
		for _, other := range r.hosts {
			if other == h {
				continue
			}
			// The first echo may wait for ARP: a few tries, as for any fresh link.
			waitFor(t, 5*time.Second, "underlay ping "+h.name+" -> "+other.name, func() error {
				_, err := h.exec("ping", "-c1", "-W1", other.addr)
				return err
			})
		}
		if _, err := h.exec("ping", "-c1", "-W1", underlayGW); err != nil {
			t.Errorf("host %s cannot ping the underlay gateway %s: %v", h.name, underlayGW, err)
		}
		if err := etcdHealthFrom(h.netPath(), r.etcd.Addr()); err != nil {
			t.Errorf("host %s cannot reach etcd at %s: %v", h.name, r.etcd.Addr(), err)
		}
	}
	// Each daemon is its own: a bridge network made on A is A's only, in A's netns only.
	a, b := r.hosts[0], r.hosts[1]
	a.must("network", "create", "--subnet", "10.98.0.0/24", "onlya")
	nw, err := a.inspectNetwork("onlya")
	if err != nil {
		t.Fatal(err)
	}
	if nw.Scope != "local" {
		t.Errorf("bridge network scope %q, want local", nw.Scope)
	}
	if _, err := b.inspectNetwork("onlya"); err == nil {
		t.Errorf("host B sees host A's bridge network onlya")
	}
	bridge := "br-" + nw.ID[:12]
	if _, err := a.exec("ip", "link", "show", bridge); err != nil {
		t.Errorf("host A has no %s", bridge)
	}
	if _, err := b.exec("ip", "link", "show", bridge); err == nil {
		t.Errorf("host B has A's bridge %s", bridge)
	}
	// A sandbox made on A is a named netns in A's mount namespace only.
	a.must("sandbox", "create", "--name", "solo", "--network", "onlya")
	if _, err := a.exec("ip", "netns", "exec", "solo", "true"); err != nil {
		t.Errorf("host A: ip netns exec solo: %v", err)
	}
	if _, err := b.exec("ip", "netns", "exec", "solo", "true"); err == nil {
		t.Errorf("host B sees host A's netns solo")
	}
	if r.clustered {
		t.Logf("daemons run with --cluster-store etcd://%s", r.etcd.Addr())
	}
}
