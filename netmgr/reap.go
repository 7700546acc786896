package netmgr

import (
	"log/slog"
	"net/netip"
	"sync"
)

// Removing a sandbox leaves the deletion of its veths to a background reaper. Deleting a
// veth pair costs the kernel RCU grace periods (20-40 ms measured, mostly an rcu_barrier
// after the RTNL is released), several times everything else `sandbox rm` does, and nothing
// a client can observe needs to wait for it: the records, names, netns pin, files and
// firewall rows are gone when rm returns, and the pair's sandbox end lives in a netns that
// is already unpinned.
//
// Until a pair is gone its addresses stay out of IPAM (held here, in memory only), so no new
// endpoint shares an address, or the MAC derived from it, with a dying one on the bridge. A
// crash before the deletion leaves a berth-named veth without a record, which Restore's
// orphan sweep deletes before anything is allocated; so holding in memory is enough.
type reaper struct {
	kernel Kernel        // always non-nil
	log    *slog.Logger  // always non-nil
	slots  chan struct{} // bounds concurrent deletions
	wg     sync.WaitGroup

	mu   sync.Mutex // guards following
	held map[heldAddr]int
}

// heldAddr is an address of a network whose veth is not deleted yet.
type heldAddr struct {
	netID string
	addr  netip.Addr
}

// reaperSlots bounds the deletions in flight: each mostly waits for RCU, so a few in
// parallel share grace periods, while a burst of removals cannot start a goroutine storm.
const reaperSlots = 8

func newReaper(k Kernel, log *slog.Logger) *reaper {
	return &reaper{kernel: k, log: log, slots: make(chan struct{}, reaperSlots), held: map[heldAddr]int{}}
}

// reap deletes veths in the background and holds addrs until they are gone.
func (r *reaper) reap(veths []string, addrs []heldAddr) {
	if len(veths) == 0 {
		return
	}
	r.mu.Lock()
	for _, a := range addrs {
		r.held[a]++
	}
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.slots <- struct{}{}
		defer func() { <-r.slots }()
		for _, v := range veths {
			if err := r.kernel.DeleteLink(v); err != nil {
				r.log.Warn("delete veth of removed sandbox", "link", v, "err", err)
			}
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, a := range addrs {
			if r.held[a]--; r.held[a] <= 0 {
				delete(r.held, a)
			}
		}
	}()
}

// holds reports whether addr of network netID belongs to a veth still being deleted.
func (r *reaper) holds(netID string, addr netip.Addr) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held[heldAddr{netID, addr}] > 0
}

// wait returns once every deletion started so far is done.
func (r *reaper) wait() { r.wg.Wait() }

// Settle waits until the background work of earlier removals is done: every removed
// sandbox's veths are deleted and their addresses free again. The daemon calls it before
// exiting; tests call it before comparing the kernel with the records.
func (m *Manager) Settle() { m.reap.wait() }
