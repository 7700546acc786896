package integration

import (
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"berth/internal/testns"
)

// Overlay networks across hosts (issue 16): one network made on one host is the same
// network on every host, and its sandboxes reach and resolve each other over VXLAN.

// propagation bounds how long a change made on one host may take to show on the others:
// one etcd watch event and the mirror's apply, well under a second when nothing is wrong.
const propagation = 10 * time.Second

// overlayRig is a rig whose daemons run with the cluster store; it fails the test (it
// does not skip) while the berth binary lacks --cluster-store.
func overlayRig(t *testing.T, n int) *rig {
	t.Helper()
	testns.Require(t)
	if !hasClusterFlag(t) {
		t.Fatal("berth daemon has no --cluster-store: issue 16 has not landed in this binary")
	}
	return newRig(t, n)
}

// waitNetwork waits until h shows network name as global with id, and returns it.
func (h *host) waitNetwork(name, id string) {
	h.t.Helper()
	waitFor(h.t, propagation, "host "+h.name+" sees network "+name, func() error {
		nw, err := h.inspectNetwork(name)
		if err != nil {
			return err
		}
		if nw.ID != id || nw.Scope != "global" || nw.Driver != "overlay" {
			return fmt.Errorf("id %s scope %q driver %q, want %s global overlay", nw.ID, nw.Scope, nw.Driver, id)
		}
		return nil
	})
}

// waitDig waits until sandbox sb on h resolves name to want ("" = no answer) and returns
// how long that took.
func (h *host) waitDig(sb, name, want string, within time.Duration) time.Duration {
	h.t.Helper()
	return waitFor(h.t, within, fmt.Sprintf("host %s: dig %s from %s", h.name, name, sb), func() error {
		if got := h.dig(sb, name); got != want {
			return fmt.Errorf("got %q, want %q", got, want)
		}
		return nil
	})
}

// waitPing waits until sandbox sb on h gets an echo back from addr (the first echo over a
// new path can be lost while neighbours are resolved).
func (h *host) waitPing(sb, addr string) {
	h.t.Helper()
	waitFor(h.t, 5*time.Second, "host "+h.name+": ping from "+sb, func() error { return h.ping(sb, addr) })
}

func TestMultihostOverlay(t *testing.T) {
	r := overlayRig(t, 3)
	a, b, c := r.hosts[0], r.hosts[1], r.hosts[2]
	id := a.must("network", "create", "-d", "overlay", "ov")
	onA, err := a.inspectNetwork("ov")
	if err != nil {
		t.Fatal(err)
	}
	if onA.ID != id || onA.Scope != "global" || onA.Driver != "overlay" || len(onA.IPAM.Config) != 1 {
		t.Fatalf("ov on A: id %s (create said %s) scope %q driver %q ipam %+v; want global overlay with one subnet",
			onA.ID, id, onA.Scope, onA.Driver, onA.IPAM.Config)
	}
	for _, h := range []*host{b, c} {
		h.waitNetwork("ov", id)
		nw, _ := h.inspectNetwork("ov")
		if !reflect.DeepEqual(nw.IPAM.Config, onA.IPAM.Config) || !maps.Equal(nw.Options, onA.Options) || nw.Internal != onA.Internal {
			t.Errorf("ov on %s: ipam %+v options %v internal %v; on A: %+v %v %v", h.name,
				nw.IPAM.Config, nw.Options, nw.Internal, onA.IPAM.Config, onA.Options, onA.Internal)
		}
		if ls := h.must("network", "ls", "-q"); !strings.Contains(ls, id[:12]) {
			t.Errorf("network ls -q on %s: %q, want %s listed", h.name, ls, id[:12])
		}
	}

	a.must("sandbox", "create", "--name", "web", "--network", "ov", "--network-alias", "www")
	webIP := a.cli.ip("web", "ov")
	b.must("sandbox", "create", "--name", "bee", "--network", "ov")
	c.must("sandbox", "create", "--name", "client", "--network", "ov")
	clientIP := c.cli.ip("client", "ov")
	if webIP == clientIP {
		t.Fatalf("web on A and client on C both have %s", webIP)
	}
	// Names, aliases and PTR of A's sandbox through C's and B's own 127.0.0.11.
	d := c.waitDig("client", "web", webIP, propagation)
	t.Logf("web (made on A) resolved on C after %v", d)
	b.waitDig("bee", "web", webIP, propagation)
	if got := c.dig("client", "www"); got != webIP {
		t.Errorf("alias www from C: %q, want %s", got, webIP)
	}
	if got := c.dig("client", "web.ov"); got != webIP {
		t.Errorf("web.ov from C: %q, want %s", got, webIP)
	}
	if got := c.dig("client", webIP); got != "web.ov." {
		t.Errorf("PTR %s from C: %q, want web.ov.", webIP, got)
	}
	// And the other way: C's sandbox from A.
	a.waitDig("web", "client", clientIP, propagation)

	// The data plane: ping by name, and TCP to a listener in web's netns, from C to A
	// across VXLAN, with no NAT in between (web sees client's own address).
	c.waitPing("client", webIP)
	if err := c.ping("client", "web"); err != nil {
		t.Error(err)
	}
	echoIn(t, "web", a.nsPath("web"))
	if got, want := reach(t, c.nsPath("client"), "tcp", fmt.Sprintf("%s:%d", webIP, echoPort)), "web "+clientIP; got != want {
		t.Errorf("tcp from client on C to web on A: %q, want %q", got, want)
	}
	if got, want := reach(t, c.nsPath("client"), "udp", fmt.Sprintf("%s:%d", webIP, echoPort)), "web "+clientIP; got != want {
		t.Errorf("udp from client on C to web on A: %q, want %q", got, want)
	}
	b.waitPing("bee", webIP)

	// --link to a sandbox of another host, and network connect of a sandbox made elsewhere.
	c.must("sandbox", "create", "--name", "linked", "--network", "ov", "--link", "web:webby")
	if got := c.dig("linked", "webby"); got != webIP {
		t.Errorf("link alias webby from C: %q, want %s", got, webIP)
	}
	b.must("network", "create", "--subnet", "10.97.0.0/24", "local")
	b.must("sandbox", "create", "--name", "late", "--network", "local")
	if got := b.dig("late", "web"); got == webIP {
		t.Errorf("late (not on ov yet) resolves web to %s", got)
	}
	b.must("network", "connect", "--alias", "tardy", "ov", "late")
	lateIP := b.cli.ip("late", "ov")
	b.waitDig("late", "web", webIP, propagation)
	b.waitPing("late", webIP)
	a.waitDig("web", "tardy", lateIP, propagation)
}

// TestMultihostIsolation: two overlay networks do not see each other: a sandbox on ov2
// neither resolves nor reaches web on ov, on web's host or another, while a sandbox on ov
// on that other host does both.
func TestMultihostIsolation(t *testing.T) {
	r := overlayRig(t, 3)
	a, c := r.hosts[0], r.hosts[2]
	a.must("network", "create", "-d", "overlay", "--subnet", "10.70.1.0/24", "ov")
	a.must("network", "create", "-d", "overlay", "--subnet", "10.70.2.0/24", "ov2")
	a.must("sandbox", "create", "--name", "web", "--network", "ov")
	webIP := a.cli.ip("web", "ov")
	c.waitNetwork("ov2", a.must("network", "inspect", "-f", "{{.ID}}", "ov2"))
	c.must("sandbox", "create", "--name", "friend", "--network", "ov")
	c.must("sandbox", "create", "--name", "other", "--network", "ov2")
	a.must("sandbox", "create", "--name", "neighbour", "--network", "ov2")
	otherIP := c.cli.ip("other", "ov2")

	// The positive control first: ov works between A and C.
	c.waitDig("friend", "web", webIP, propagation)
	c.waitPing("friend", webIP)
	echoIn(t, "web", a.nsPath("web"))
	addr := fmt.Sprintf("%s:%d", webIP, echoPort)
	if got := reach(t, c.nsPath("friend"), "tcp", addr); !strings.HasPrefix(got, "web ") {
		t.Fatalf("tcp from friend (ov, C) to web: %q, want an answer", got)
	}
	// ov2's sandboxes see each other, and not web.
	a.waitDig("neighbour", "other", otherIP, propagation)
	for _, tc := range []struct {
		h  *host
		sb string
	}{{c, "other"}, {a, "neighbour"}} {
		for _, name := range []string{"web", "web.ov"} {
			if got := tc.h.dig(tc.sb, name); got != "" {
				t.Errorf("host %s: %s (on ov2) resolves %s: %q, want no answer", tc.h.name, tc.sb, name, got)
			}
		}
		if got := tc.h.dig(tc.sb, webIP); got != "" {
			t.Errorf("host %s: %s (on ov2) gets PTR %s: %q, want no answer", tc.h.name, tc.sb, webIP, got)
		}
		if err := tc.h.ping(tc.sb, webIP); err == nil {
			t.Errorf("host %s: %s (on ov2) pings web %s on ov", tc.h.name, tc.sb, webIP)
		}
		if got := reach(t, tc.h.nsPath(tc.sb), "tcp", addr); got != "" {
			t.Errorf("host %s: %s (on ov2) reaches web over tcp: %q", tc.h.name, tc.sb, got)
		}
	}
}

// TestMultihostNetworkRm: an overlay network cannot be removed from any host while another
// host has an endpoint on it; once that endpoint goes, it can, and it goes everywhere.
func TestMultihostNetworkRm(t *testing.T) {
	r := overlayRig(t, 3)
	a, b, c := r.hosts[0], r.hosts[1], r.hosts[2]
	id := a.must("network", "create", "-d", "overlay", "ov")
	a.must("sandbox", "create", "--name", "web", "--network", "ov")
	c.waitNetwork("ov", id)
	o, e, err := c.run("network", "rm", "ov")
	if err == nil {
		t.Fatalf("network rm ov on C succeeded (%q) while A has web on it", o)
	}
	// The refusal names the network and the host that holds it, as Docker's "has active
	// endpoints" does the endpoint.
	if e = strings.TrimSpace(e); strings.Count(e, "\n") != 0 || !strings.Contains(e, "ov") || !strings.Contains(e, a.hostID()) {
		t.Errorf("network rm ov on C: stderr %q, want one line naming ov and host A (%s)", e, a.hostID())
	}
	for _, h := range r.hosts {
		h.waitNetwork("ov", id)
	}
	if _, err := a.inspectNetwork("ov"); err != nil {
		t.Fatalf("ov gone from A after a refused rm: %v", err)
	}
	if got := a.must("sandbox", "ls", "-q"); got == "" {
		t.Fatalf("web gone from A after a refused rm")
	}

	a.must("sandbox", "rm", "-f", "web")
	waitFor(t, propagation, "network rm ov on C once web is gone", func() error {
		_, e, err := c.run("network", "rm", "ov")
		if err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(e))
		}
		return nil
	})
	for _, h := range []*host{a, b, c} {
		waitFor(t, propagation, "ov gone from "+h.name, func() error {
			if ls := h.must("network", "ls", "-q"); strings.Contains(ls, id[:12]) {
				return fmt.Errorf("network ls: %q", ls)
			}
			return nil
		})
	}
	// The name is free again, cluster-wide.
	b.must("network", "create", "-d", "overlay", "ov")
}

// TestOverlayNeedsClusterStore: without --cluster-store, -d overlay is a one-line error and
// changes nothing; with one, overlay is IPv4-only for now.
func TestOverlayNeedsClusterStore(t *testing.T) {
	d := newDaemon(t)
	d.start()
	d.fails("overlay", "network", "create", "-d", "overlay", "ov")
	if ls := d.must("network", "ls", "--format", "{{.Name}}"); strings.Contains(ls, "ov") {
		t.Errorf("network ls after a refused overlay create: %q", ls)
	}
	r := overlayRig(t, 1)
	h := r.hosts[0]
	o, e, err := h.run("network", "create", "-d", "overlay", "--ipv6", "ov6")
	if e = strings.TrimSpace(e); err == nil || strings.Count(e, "\n") != 0 || !strings.Contains(strings.ToLower(e), "ipv6") {
		t.Errorf("network create -d overlay --ipv6: err %v stdout %q stderr %q, want one line about ipv6", err, o, e)
	}
	if _, err := h.inspectNetwork("ov6"); err == nil {
		t.Errorf("ov6 exists after a refused create")
	}
}
