package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/store"
)

func TestCreateNetworkRace(t *testing.T) {
	t.Parallel()
	_, eps := startEtcd(t)
	hosts := []*host{newHost(t, eps, "h1", "192.0.2.1", nil), newHost(t, eps, "h2", "192.0.2.2", nil), newHost(t, eps, "h3", "192.0.2.3", nil)}
	ctx := context.Background()

	// The same name from three hosts (each with its own ID and subnet): one wins.
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = h.c.CreateNetwork(ctx, overlay("Same", fmt.Sprintf("10.30.%d.0/24", i)))
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "name is taken"):
			t.Errorf("host %d: %v; want success or a taken name", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d hosts created Same; want 1 (%v)", won, errs)
	}
	// Case-insensitive, as local names.
	if _, err := hosts[0].c.CreateNetwork(ctx, overlay("same", "10.30.9.0/24")); !errors.Is(err, store.ErrConflict) {
		t.Errorf("create same: %v; want ErrConflict", err)
	}

	// Different networks from three hosts at once: VNIs unique, from 4096 up.
	const each = 6
	vnis := map[int]string{}
	var mu sync.Mutex
	start := time.Now()
	for i, h := range hosts {
		for j := range each {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("n%d-%d", i, j)
				vni, err := h.c.CreateNetwork(ctx, overlay(name, fmt.Sprintf("10.31.%d.0/24", i*each+j)))
				if err != nil {
					t.Errorf("create %s: %v", name, err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if o, ok := vnis[vni]; ok {
					t.Errorf("VNI %d given to %s and %s", vni, o, name)
				}
				vnis[vni] = name
			}()
		}
	}
	wg.Wait()
	t.Logf("%d concurrent creates in %v", len(hosts)*each, time.Since(start))
	for v := range vnis {
		if v < 4096 || v > 4096+len(hosts)*each {
			t.Errorf("VNI %d; want 4096..%d", v, 4096+len(hosts)*each)
		}
	}
	if len(vnis) != len(hosts)*each {
		t.Errorf("%d VNIs; want %d", len(vnis), len(hosts)*each)
	}
}

func TestCreateNetworkConflicts(t *testing.T) {
	t.Parallel()
	_, eps := startEtcd(t)
	h := newHost(t, eps, "h1", "192.0.2.1", nil)
	ctx := context.Background()
	first := created(t, h, overlay("front", "10.40.1.0/24"))
	if first.VNI != 4096 {
		t.Errorf("first VNI %d; want 4096", first.VNI)
	}
	for _, tc := range []struct {
		name, cidr, want string
	}{
		{"same subnet", "10.40.1.0/24", "overlaps 10.40.1.0/24 of global network front"},
		{"wider subnet", "10.40.0.0/16", "overlaps 10.40.1.0/24 of global network front"},
		{"narrower subnet", "10.40.1.128/25", "overlaps"},
	} {
		_, err := h.c.CreateNetwork(ctx, overlay(tc.name, tc.cidr))
		if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want ErrConflict with %q", tc.name, err, tc.want)
		}
	}
	// The same ID again (a retried create that did land) is a conflict too.
	if _, err := h.c.CreateNetwork(ctx, overlay("front", "10.40.1.0/24")); !errors.Is(err, store.ErrConflict) {
		t.Errorf("create front again: %v; want ErrConflict", err)
	}
	// A freed VNI is the lowest free one again.
	second := created(t, h, overlay("back", "10.40.2.0/24"))
	if err := h.c.RemoveNetwork(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	third := created(t, h, overlay("front", "10.40.1.0/24"))
	if second.VNI != 4097 || third.VNI != 4096 {
		t.Errorf("VNIs %d, %d; want 4097, 4096", second.VNI, third.VNI)
	}
}

// TestRemoveNetwork: refused while a host has an endpoint or a live host holds a claim;
// allowed once that host's lease expired, taking its stale claims along.
func TestRemoveNetwork(t *testing.T) {
	t.Parallel()
	_, eps := startEtcd(t)
	a := startHost(t, eps, "a", "192.0.2.1", nil)
	b := newHost(t, eps, "b", "192.0.2.2", nil)
	raw := rawClient(t, eps)
	ctx := context.Background()
	n := created(t, b, overlay("ov", "10.50.0.0/24"))

	ep := a.join(n, "web", "10.50.0.2")
	waitFor(t, "endpoint published", 5*time.Second, func() bool { return count(t, raw, "/berth/v1/endpoints/"+n.ID+"/") == 1 })
	err := b.c.RemoveNetwork(ctx, n.ID)
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "host a") {
		t.Fatalf("remove with a's endpoint: %v; want ErrConflict naming host a", err)
	}

	// a's endpoint goes, its claim stays (a claim is not on the lease).
	if err := a.c.ClaimAddr(ctx, n.ID, ep.IPv4, ep.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.c.ClaimAddr(ctx, n.ID, netip.MustParseAddr("10.50.0.3"), "b-ep"); err != nil {
		t.Fatal(err)
	}
	a.leave(ep)
	waitFor(t, "endpoint unpublished", 5*time.Second, func() bool { return count(t, raw, "/berth/v1/endpoints/"+n.ID+"/") == 0 })
	err = b.c.RemoveNetwork(ctx, n.ID)
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "claimed by host a") {
		t.Fatalf("remove with a's claim: %v; want ErrConflict naming host a", err)
	}

	// a dies without leaving: its lease expires, its claim is stale. b's own claim does
	// not block b's remove.
	died := time.Now()
	a.die()
	d := waitFor(t, "host a's key expired", 10*time.Second, func() bool { return count(t, raw, "/berth/v1/hosts/a") == 0 })
	t.Logf("host key gone %v after the host died (TTL 2s)", d)
	if err := b.c.RemoveNetwork(ctx, n.ID); err != nil {
		t.Fatalf("remove after a's lease expired (%v): %v", time.Since(died), err)
	}
	for _, p := range []string{"networks/", "netnames/", "vni/", "subnets/", "ipam/"} {
		if got := count(t, raw, "/berth/v1/"+p); got != 0 {
			t.Errorf("%d keys left under %s", got, p)
		}
	}
	// Removing a removed network is success.
	if err := b.c.RemoveNetwork(ctx, n.ID); err != nil {
		t.Errorf("remove again: %v", err)
	}
	if err := b.c.ClaimAddr(ctx, n.ID, netip.MustParseAddr("10.50.0.4"), "late"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("claim on the removed network: %v; want ErrNotFound", err)
	}
}
