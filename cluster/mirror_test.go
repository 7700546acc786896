package cluster

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"berth/internal/etcdtest"
	"berth/store"
)

// TestPublishMirror: a's endpoint appears on b, follows its rename, and goes when a
// removes it and when a's lease expires.
func TestPublishMirror(t *testing.T) {
	t.Parallel()
	_, eps := startEtcd(t)
	a := startHost(t, eps, "a", "192.0.2.1", nil)
	b := startHost(t, eps, "b", "192.0.2.2", nil)
	n := created(t, a, overlay("ov", "10.60.0.0/24"))
	waitFor(t, "network mirrored on b", 5*time.Second, func() bool { return b.rec.network(n.ID) != nil })
	if got := b.rec.network(n.ID); got.VNI != n.VNI || got.Name != "ov" || !got.Global() {
		t.Errorf("b mirrors %+v; want ov with VNI %d", got, n.VNI)
	}

	ep := a.join(n, "web", "10.60.0.2", "www")
	d := waitFor(t, "a's endpoint on b", 5*time.Second, func() bool { return b.rec.endpoint(ep.ID) != nil })
	t.Logf("endpoint appeared on the other host after %v", d)
	got := b.rec.endpoint(ep.ID)
	if got.Host != "a" || got.HostAddr.String() != "192.0.2.1" || got.SandboxName != "web" ||
		got.HostVeth != "" || got.Links != nil || got.Seq != 0 || got.IPv4 != ep.IPv4 ||
		!slices.Equal(got.DNSNames, []string{"web", "www"}) {
		t.Errorf("b mirrors %+v", got)
	}
	// b's own endpoint is published for a, never applied on b itself.
	own := b.join(n, "db", "10.60.0.3")
	waitFor(t, "b's endpoint on a", 5*time.Second, func() bool { return a.rec.endpoint(own.ID) != nil })
	if b.rec.endpoint(own.ID) != nil || a.rec.endpoint(ep.ID) != nil {
		t.Errorf("a host mirrors its own endpoint")
	}

	ep = a.rename(ep, "web2", "www")
	d = waitFor(t, "rename on b", 5*time.Second, func() bool {
		e := b.rec.endpoint(ep.ID)
		return e != nil && slices.Equal(e.DNSNames, []string{"web2", "www"})
	})
	t.Logf("rename reached the other host after %v", d)

	a.leave(ep)
	d = waitFor(t, "removal on b", 5*time.Second, func() bool { return b.rec.endpoint(ep.ID) == nil })
	t.Logf("removal reached the other host after %v", d)

	ep2 := a.join(n, "api", "10.60.0.4")
	waitFor(t, "second endpoint on b", 5*time.Second, func() bool { return b.rec.endpoint(ep2.ID) != nil })
	a.die()
	d = waitFor(t, "expiry on b", 10*time.Second, func() bool { return b.rec.endpoint(ep2.ID) == nil })
	t.Logf("lease expiry removed the endpoint on the other host %v after its host died (TTL 2s)", d)
	if b.rec.endpoint(own.ID) != nil {
		t.Errorf("b mirrors its own endpoint")
	}
	for _, u := range b.rec.all()[1:] {
		if u.Full {
			t.Errorf("b resynced in full at revision %d; want only the first update full", u.Rev)
		}
	}
}

// TestPublisherRestart: a host that comes back with a new lease republishes what it still
// has and drops what it published before and no longer has, without waiting for the old
// lease to expire.
func TestPublisherRestart(t *testing.T) {
	t.Parallel()
	_, eps := startEtcd(t)
	raw := rawClient(t, eps)
	a := startHost(t, eps, "a", "192.0.2.1", func(c *Config) { c.TTL = 30 * time.Second })
	n := created(t, a, overlay("ov", "10.61.0.0/24"))
	keep := a.join(n, "keep", "10.61.0.2")
	gone := a.join(n, "gone", "10.61.0.3")
	waitFor(t, "published", 5*time.Second, func() bool { return count(t, raw, "/berth/v1/endpoints/") == 2 })
	a.die() // the old lease lives on for 30 s

	// The restarted daemon: same store, same host ID, one sandbox fewer.
	a2 := newHost(t, eps, "a", "192.0.2.1", nil)
	a2.st = a.st
	a2.c.cfg.Snapshot = a.st.Snapshot
	if err := a.st.Update(func(tx *store.Tx) error { return tx.DeleteEndpoint(gone) }); err != nil {
		t.Fatal(err)
	}
	a2.run()
	waitFor(t, "stale endpoint dropped", 5*time.Second, func() bool { return count(t, raw, "/berth/v1/endpoints/") == 1 })
	resp, err := raw.Get(context.Background(), "/berth/v1/endpoints/"+n.ID+"/"+keep.ID)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("kept endpoint: %v %v", resp, err)
	}
	if l := clientv3.LeaseID(resp.Kvs[0].Lease); l != a2.c.leaseID() {
		t.Errorf("kept endpoint on lease %x; want the new lease %x", l, a2.c.leaseID())
	}
}

// putNet writes global network rec with label seq=i straight into etcd, as another
// host's CreateNetwork would, and returns the revision.
func putNet(t *testing.T, raw *clientv3.Client, rec *store.Network, i int) int64 {
	t.Helper()
	c := rec.Copy()
	c.Labels = map[string]string{"seq": strconv.Itoa(i)}
	c.VNI = 5000
	b, _ := json.Marshal(c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := raw.Put(ctx, "/berth/v1/networks/"+c.ID, string(b))
	if err != nil {
		t.Fatalf("put seq %d: %v", i, err)
	}
	return resp.Header.Revision
}

// seqs lists the seq labels of the networks of the non-full updates, in order.
func seqs(r *recorder) []int {
	var out []int
	for _, u := range r.all() {
		if u.Full {
			continue
		}
		for _, n := range u.Networks {
			i, _ := strconv.Atoi(n.Labels["seq"])
			out = append(out, i)
		}
	}
	return out
}

// TestMirrorAcrossRestart: changes before and after an etcd restart reach the mirror
// once each, in order, with no full resync.
func TestMirrorAcrossRestart(t *testing.T) {
	t.Parallel()
	srv, eps := startEtcd(t)
	raw := rawClient(t, eps)
	b := startHost(t, eps, "b", "192.0.2.2", nil)
	// One network per change: changes of one key within one watch response collapse to
	// the last, so distinct keys show every change.
	rec := func(i int) *store.Network { return overlay("n"+strconv.Itoa(i), "10.62."+strconv.Itoa(i)+".0/24") }
	waitFor(t, "first full update", 5*time.Second, func() bool { return len(b.rec.all()) > 0 })
	const half = 20
	for i := 1; i <= half; i++ {
		putNet(t, raw, rec(i), i)
	}
	waitFor(t, "changes before the restart", 5*time.Second, func() bool { return len(seqs(b.rec)) == half })
	start := time.Now()
	srv.Restart()
	t.Logf("etcd restarted in %v", time.Since(start))
	for i := half + 1; i <= 2*half; i++ {
		putNet(t, raw, rec(i), i)
	}
	d := waitFor(t, "changes after the restart", 10*time.Second, func() bool {
		s := seqs(b.rec)
		return len(s) > 0 && s[len(s)-1] == 2*half
	})
	t.Logf("the mirror had the last change %v after the first put after the restart", d)
	want := make([]int, 2*half)
	for i := range want {
		want[i] = i + 1
	}
	if got := seqs(b.rec); !slices.Equal(got, want) {
		t.Errorf("changes applied %v; want %v", got, want)
	}
	ups := b.rec.all()
	for i, u := range ups {
		if u.Full != (i == 0) {
			t.Errorf("update %d (rev %d) Full=%v", i, u.Rev, u.Full)
		}
		if i > 0 && u.Rev <= ups[i-1].Rev {
			t.Errorf("update %d at revision %d after %d", i, u.Rev, ups[i-1].Rev)
		}
	}
	waitFor(t, "connected again", 10*time.Second, func() bool { return b.c.Status().Connected })
}

// TestMirrorCompacted: a watch that starts below the compacted revision starts over with
// one full update holding what it missed.
func TestMirrorCompacted(t *testing.T) {
	t.Parallel()
	_, eps := startEtcd(t)
	raw := rawClient(t, eps)
	first := true
	rec1, rec2 := overlay("one", "10.63.1.0/24"), overlay("two", "10.63.2.0/24")
	b := newHost(t, eps, "b", "192.0.2.2", nil)
	b.c.beforeWatch = func(rev int64) {
		if !first {
			return
		}
		first = false
		// Between the full read and the watch (as while disconnected): changes, then a
		// compaction past them.
		putNet(t, raw, rec1, 1)
		last := putNet(t, raw, rec2, 2)
		if _, err := raw.Compact(context.Background(), last, clientv3.WithCompactPhysical()); err != nil {
			t.Errorf("compact: %v", err)
		}
	}
	b.run()
	waitFor(t, "both networks", 5*time.Second, func() bool { return b.rec.network(rec1.ID) != nil && b.rec.network(rec2.ID) != nil })
	ups := b.rec.all()
	if len(ups) != 2 || !ups[0].Full || !ups[1].Full || len(ups[1].Networks) != 2 {
		t.Fatalf("updates %+v; want the first full update, then one full update with both networks", ups)
	}
}

// TestMirrorApplyFails: a failed Apply is followed by a full update with what it missed.
func TestMirrorApplyFails(t *testing.T) {
	t.Parallel()
	_, eps := startEtcd(t)
	raw := rawClient(t, eps)
	b := startHost(t, eps, "b", "192.0.2.2", nil)
	waitFor(t, "first full update", 5*time.Second, func() bool { return len(b.rec.all()) == 1 })
	b.rec.mu.Lock()
	b.rec.failNext = 1
	b.rec.mu.Unlock()
	rec := overlay("ov", "10.64.0.0/24")
	putNet(t, raw, rec, 1)
	waitFor(t, "network after the failure", 5*time.Second, func() bool { return b.rec.network(rec.ID) != nil })
	ups := b.rec.all()
	if len(ups) != 2 || !ups[1].Full {
		t.Errorf("updates %+v; want the first, then a full one", ups)
	}
	if st := b.c.Status(); st.Rev != ups[1].Rev || st.LastError != "" {
		t.Errorf("status %+v; want rev %d, no error", st, ups[1].Rev)
	}
}

// TestChanges: one watch response becomes one update; events on one key collapse to the
// last; this host's endpoints, claims and index keys are left out; only endpoints the
// mirror handed out are removed.
func TestChanges(t *testing.T) {
	c := &Client{cfg: Config{HostID: "me", Prefix: "/p/", Log: slog.New(slog.DiscardHandler)}, keys: keys{"/p/"}}
	n := overlay("ov", "10.65.0.0/24")
	n.VNI = 4096
	ep := func(id, host string) *mvccpb.KeyValue {
		e := &store.Endpoint{ID: id, NetworkID: n.ID, Host: host, HostAddr: netip.MustParseAddr("192.0.2.9")}
		b, _ := json.Marshal(e)
		return &mvccpb.KeyValue{Key: []byte("/p/endpoints/" + n.ID + "/" + id), Value: b}
	}
	nb, _ := json.Marshal(n)
	put := func(kv *mvccpb.KeyValue, rev int64) *clientv3.Event {
		kv.ModRevision = rev
		return &clientv3.Event{Type: mvccpb.PUT, Kv: kv}
	}
	del := func(key string, rev int64) *clientv3.Event {
		return &clientv3.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev}}
	}
	known := map[string]bool{string(ep("old", "x").Key): true}
	u := c.changes([]*clientv3.Event{
		put(&mvccpb.KeyValue{Key: []byte("/p/networks/" + n.ID), Value: nb}, 10),
		put(ep("a", "other"), 11),
		put(ep("b", "other"), 12),
		del(string(ep("b", "").Key), 13), // put then delete: never handed out, so nothing
		put(ep("mine", "me"), 14),        // this host's: not mirrored
		del(string(ep("never", "").Key), 15),
		del(string(ep("old", "").Key), 16),
		put(&mvccpb.KeyValue{Key: []byte("/p/ipam/" + n.ID + "/10.65.0.2"), Value: []byte(`{}`)}, 17),
		put(&mvccpb.KeyValue{Key: []byte("/p/netnames/ov"), Value: []byte(n.ID)}, 18),
		del("/p/networks/gone", 19),
	}, known)
	var eps []string
	for _, e := range u.Endpoints {
		eps = append(eps, e.ID)
	}
	if u.Full || u.Rev != 19 || len(u.Networks) != 1 || u.Networks[0].ID != n.ID ||
		!slices.Equal(u.RemovedNetworks, []string{"gone"}) || !slices.Equal(eps, []string{"a"}) ||
		!slices.Equal(u.RemovedEndpoints, []string{"old"}) {
		t.Errorf("update %+v (endpoints %v)", u, eps)
	}
	if !known[string(ep("a", "").Key)] || len(known) != 1 {
		t.Errorf("known after %v; want only a", known)
	}
}

// TestMirrorMemberLost: with a 3-member etcd the host keeps its lease and its mirror when
// the leader dies: the changes made after reach it, in revision order.
func TestMirrorMemberLost(t *testing.T) {
	t.Parallel()
	cl := etcdtest.StartCluster(t, 3)
	var eps []string
	for _, m := range cl.Members {
		eps = append(eps, m.Addr())
	}
	raw := rawClient(t, eps)
	// The default TTL: 2 s is about what an election takes, and the client gives a lease
	// up when no keepalive answer came for a TTL.
	b := startHost(t, eps, "b", "192.0.2.2", func(c *Config) { c.TTL = DefaultTTL })
	waitFor(t, "registered", 5*time.Second, func() bool { return b.c.Status().Connected })
	lease := b.c.leaseID()
	rec := func(i int) *store.Network { return overlay("m"+strconv.Itoa(i), "10.66."+strconv.Itoa(i)+".0/24") }
	putNet(t, raw, rec(1), 1)
	lead := cl.Leader()
	lead.Kill()
	start := time.Now()
	for _, m := range cl.Members {
		if m != lead {
			m.WaitHealthy() // a new leader: writes go through again
			break
		}
	}
	for i := 2; i <= 10; i++ {
		putNet(t, raw, rec(i), i)
	}
	d := waitFor(t, "all networks mirrored", 10*time.Second, func() bool {
		for i := 1; i <= 10; i++ {
			if b.rec.network(rec(i).ID) == nil {
				return false
			}
		}
		return true
	})
	t.Logf("the mirror had every change %v after the last put, %v after the leader was killed (election included)", d, time.Since(start))
	ups := b.rec.all()
	for i := 1; i < len(ups); i++ {
		if ups[i].Rev <= ups[i-1].Rev {
			t.Errorf("update %d at revision %d after %d", i, ups[i].Rev, ups[i-1].Rev)
		}
	}
	fulls := 0
	for _, u := range ups {
		if u.Full {
			fulls++
		}
	}
	t.Logf("%d updates, %d of them full", len(ups), fulls)
	if got := b.c.leaseID(); got != lease {
		t.Errorf("lease %x after losing a member; want %x kept", got, lease)
	}
}
