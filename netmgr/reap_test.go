package netmgr

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"berth/api"
	"berth/netmgr/firewall"
	"berth/store"
)

// TestRemoveHoldsAddressesUntilVethGone: rm returns before its veth is deleted, and until
// then the address stays out of IPAM (a new sandbox must not share an address, or the MAC
// derived from it, with a veth still on the bridge).
func TestRemoveHoldsAddressesUntilVethGone(t *testing.T) {
	m, k := newTestManager(t)
	mustNetwork(t, m, api.NetworkCreate{Name: "app", Subnets: []string{"10.9.0.0/24"}})
	_, first := mustSandbox(t, m, api.SandboxCreate{Name: "a", Networks: []string{"app"}})
	gate := make(chan struct{})
	k.mu.Lock()
	k.deleteGate = gate
	k.mu.Unlock()
	if err := m.RemoveSandbox(t.Context(), api.SandboxRemove{Sandbox: "a", Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.cfg.Store.Snapshot().SandboxByName("a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("record of a still there after rm: %v", err)
	}
	_, second := mustSandbox(t, m, api.SandboxCreate{Name: "b", Networks: []string{"app"}})
	if second.IPv4 == first.IPv4 {
		t.Errorf("b got %s while a's veth was still being deleted", second.IPv4)
	}
	close(gate)
	m.Settle()
	k.mu.Lock()
	_, left := k.links[first.HostVeth]
	k.mu.Unlock()
	if left {
		t.Errorf("veth %s of a still there after Settle", first.HostVeth)
	}
	if _, third := mustSandbox(t, m, api.SandboxCreate{Name: "c", Networks: []string{"app"}}); third.IPv4 != first.IPv4 {
		t.Errorf("c got %s; want a's released %s", third.IPv4, first.IPv4)
	}
}

// TestStaticAddressWaitsForReaper: --ip of an address whose veth is being deleted waits
// for the deletion instead of failing or sharing it.
func TestStaticAddressWaitsForReaper(t *testing.T) {
	m, k := newTestManager(t)
	mustNetwork(t, m, api.NetworkCreate{Name: "app", Subnets: []string{"10.9.0.0/24"}})
	mustSandbox(t, m, api.SandboxCreate{Name: "a", Networks: []string{"app"}, IPv4: "10.9.0.7"})
	gate := make(chan struct{})
	k.mu.Lock()
	k.deleteGate = gate
	k.mu.Unlock()
	if err := m.RemoveSandbox(t.Context(), api.SandboxRemove{Sandbox: "a", Force: true}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "b", Networks: []string{"app"}, IPv4: "10.9.0.7"})
		done <- err
	}()
	k.mu.Lock()
	k.deleteGate = nil
	k.mu.Unlock()
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("create with a's address after rm: %v", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	veths := 0
	for _, kind := range k.links {
		if kind == "veth" {
			veths++
		}
	}
	if veths != 1 {
		t.Errorf("%d veths; want b's only", veths)
	}
}

// TestBridgeFull: the kernel's bare EXFULL becomes one line naming the network and the limit,
// and the create is undone.
func TestBridgeFull(t *testing.T) {
	m, k := newTestManager(t)
	mustNetwork(t, m, api.NetworkCreate{Name: "app"})
	k.vethErr = fmt.Errorf("create veth bth01234567: attach to br-x: %w", syscall.EXFULL)
	_, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "web", Networks: []string{"app"}})
	if err == nil || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("err = %v; want a conflict", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "network app is full") || !strings.Contains(msg, "1023 ports") {
		t.Errorf("err = %q; want one line naming network app and the 1023-port limit", msg)
	}
	if sbs := m.cfg.Store.Snapshot().Sandboxes(); len(sbs) != 0 {
		t.Errorf("records left: %v", sbs)
	}
}

// TestFirewallAppliedOnlyOnChange: a sandbox without published ports or links leaves the
// ruleset as it is, so it is not rebuilt; one that publishes a port changes it.
func TestFirewallAppliedOnlyOnChange(t *testing.T) {
	m, _ := newTestManager(t)
	var applied []firewall.State
	m.cfg.Firewall = func(st firewall.State) error { applied = append(applied, st); return nil }
	mustNetwork(t, m, api.NetworkCreate{Name: "app"})
	if len(applied) != 1 {
		t.Fatalf("network create: %d applies; want 1", len(applied))
	}
	mustSandbox(t, m, api.SandboxCreate{Name: "plain", Networks: []string{"app"}})
	if err := m.RemoveSandbox(t.Context(), api.SandboxRemove{Sandbox: "plain", Force: true}); err != nil {
		t.Fatal(err)
	}
	if len(applied) != 1 {
		t.Errorf("plain sandbox create+rm: %d applies in all; want still 1", len(applied))
	}
	mustSandbox(t, m, api.SandboxCreate{Name: "web", Networks: []string{"app"}, Publish: []string{"8080:80"}})
	if len(applied) != 2 || len(applied[1].Ports) != 1 {
		t.Fatalf("publishing sandbox: applies %v; want a second one with its port", applied)
	}
	m.cfg.Firewall = func(firewall.State) error { return errors.New("netlink says no") }
	if err := m.RemoveSandbox(t.Context(), api.SandboxRemove{Sandbox: "web", Force: true}); err != nil {
		t.Fatal(err)
	}
	m.cfg.Firewall = func(st firewall.State) error { applied = append(applied, st); return nil }
	mustSandbox(t, m, api.SandboxCreate{Name: "plain2", Networks: []string{"app"}})
	if len(applied) != 3 || len(applied[2].Ports) != 0 {
		t.Errorf("after a failed apply: applies %v; want the next change to apply again", applied)
	}
}
