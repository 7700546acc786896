package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/store"
)

// TestClaimsConcurrent: 3 hosts x 50 goroutines claim one address each on one /24, each
// trying the next address after a conflict as netmgr's IPAM does. No address is given
// twice and every goroutine gets exactly one.
func TestClaimsConcurrent(t *testing.T) {
	t.Parallel()
	_, eps := startEtcd(t)
	hosts := []*host{newHost(t, eps, "h1", "192.0.2.1", nil), newHost(t, eps, "h2", "192.0.2.2", nil), newHost(t, eps, "h3", "192.0.2.3", nil)}
	n := created(t, hosts[0], overlay("claims", "10.20.0.0/24"))
	const perHost = 50
	type claim struct {
		ep   string
		addr netip.Addr
	}
	var (
		mu        sync.Mutex
		got       []claim
		conflicts int
		wg        sync.WaitGroup
	)
	start := time.Now()
	for _, h := range hosts {
		for g := range perHost {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ep := hexID(fmt.Sprintf("%s/%d", h.id, g))
				first := 2 + rand.IntN(200) // spread the starting points a little, as hosts' last-allocated cursors do
				for i := range 253 {
					a := netip.AddrFrom4([4]byte{10, 20, 0, byte(2 + (first-2+i)%253)})
					err := h.c.ClaimAddr(context.Background(), n.ID, a, ep)
					if err == nil {
						mu.Lock()
						got = append(got, claim{ep, a})
						mu.Unlock()
						return
					}
					if !errors.Is(err, store.ErrConflict) {
						t.Errorf("claim %s for %s: %v", a, h.id, err)
						return
					}
					mu.Lock()
					conflicts++
					mu.Unlock()
				}
				t.Errorf("%s: no free address", ep)
			}()
		}
	}
	wg.Wait()
	t.Logf("%d claims, %d conflicts retried, in %v", len(got), conflicts, time.Since(start))
	byAddr, byEP := map[netip.Addr]string{}, map[string]int{}
	for _, c := range got {
		if o, ok := byAddr[c.addr]; ok {
			t.Errorf("address %s given to %s and %s", c.addr, store.ShortID(o), store.ShortID(c.ep))
		}
		byAddr[c.addr] = c.ep
		byEP[c.ep]++
	}
	if len(got) != 3*perHost || len(byEP) != 3*perHost {
		t.Fatalf("%d claims by %d endpoints; want %d each", len(got), len(byEP), 3*perHost)
	}
	raw := rawClient(t, eps)
	if got := count(t, raw, "/berth/v1/ipam/"+n.ID+"/"); got != 3*perHost {
		t.Errorf("%d claim keys; want %d", got, 3*perHost)
	}
	for _, h := range hosts {
		cl, err := h.c.Claims(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(cl) != perHost {
			t.Errorf("%s lists %d claims; want %d", h.id, len(cl), perHost)
		}
		for _, c := range cl {
			if byAddr[c.Addr] != c.EndpointID || c.NetworkID != n.ID {
				t.Errorf("%s lists %+v; the claim was %s's", h.id, c, store.ShortID(byAddr[c.Addr]))
			}
		}
	}
}

func TestClaimIdempotentAndRelease(t *testing.T) {
	t.Parallel()
	_, eps := startEtcd(t)
	a, b := newHost(t, eps, "a", "192.0.2.1", nil), newHost(t, eps, "b", "192.0.2.2", nil)
	n := created(t, a, overlay("rel", "10.21.0.0/24"))
	ip := netip.MustParseAddr("10.21.0.5")
	ctx := context.Background()
	if err := a.c.ClaimAddr(ctx, n.ID, ip, "ep1"); err != nil {
		t.Fatal(err)
	}
	if err := a.c.ClaimAddr(ctx, n.ID, ip, "ep1"); err != nil {
		t.Errorf("claim again for the same endpoint: %v; want success", err)
	}
	err := a.c.ClaimAddr(ctx, n.ID, ip, "ep2")
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("claim for another endpoint of the same host: %v; want ErrConflict", err)
	}
	err = b.c.ClaimAddr(ctx, n.ID, ip, "ep1")
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "host a") {
		t.Errorf("claim by another host: %v; want ErrConflict naming host a", err)
	}
	if err := b.c.ClaimAddr(ctx, "nonet", ip, "ep1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("claim on a missing network: %v; want ErrNotFound", err)
	}
	// Only the holder's release drops the claim.
	if err := b.c.ReleaseAddr(ctx, n.ID, ip, "ep1"); err != nil {
		t.Fatal(err)
	}
	if err := a.c.ReleaseAddr(ctx, n.ID, ip, "ep2"); err != nil {
		t.Fatal(err)
	}
	if cl, _ := a.c.Claims(ctx); len(cl) != 1 {
		t.Fatalf("claims after others' releases: %v; want the one", cl)
	}
	if err := a.c.ReleaseAddr(ctx, n.ID, ip, "ep1"); err != nil {
		t.Fatal(err)
	}
	if cl, _ := a.c.Claims(ctx); len(cl) != 0 {
		t.Fatalf("claims after release: %v; want none", cl)
	}
	if err := b.c.ClaimAddr(ctx, n.ID, ip, "ep9"); err != nil {
		t.Errorf("claim a released address: %v", err)
	}
}
