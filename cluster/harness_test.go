package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"berth/internal/etcdtest"
	"berth/netmgr"
	"berth/store"
)

// host is one simulated berth host: a memory store, a Client on it and what its mirror
// applied.
type host struct {
	t   *testing.T
	c   *Client
	st  *store.Store
	rec *recorder
	id  string

	cancel context.CancelFunc // ends Run without Close: the lease then expires
	ran    chan struct{}      // closed when Run returned
}

// newHost makes a client for id at underlay address addr without running it.
func newHost(t *testing.T, eps []string, id, addr string, tweak func(*Config)) *host {
	t.Helper()
	h := &host{t: t, st: store.NewMemory(), rec: newRecorder(), id: id}
	cfg := Config{
		Endpoints: eps,
		Advertise: netip.MustParseAddr(addr),
		HostID:    id,
		TTL:       2 * time.Second,
		Timeout:   time.Second,
		Prefix:    "/berth/v1/",
		Log:       slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("host", id),
		Snapshot:  h.st.Snapshot,
		Apply:     h.rec.apply,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New %s: %v", id, err)
	}
	h.c = c
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Logf("close %s: %v", id, err)
		}
	})
	return h
}

// startHost makes a client and runs it.
func startHost(t *testing.T, eps []string, id, addr string, tweak func(*Config)) *host {
	t.Helper()
	h := newHost(t, eps, id, addr, tweak)
	h.run()
	return h
}

func (h *host) run() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.ran = cancel, make(chan struct{})
	go func() {
		defer close(h.ran)
		if err := h.c.Run(ctx); err != nil {
			h.t.Errorf("Run %s: %v", h.id, err)
		}
	}()
}

// die stops the host's Run without revoking its lease, as when the daemon is killed.
func (h *host) die() {
	h.cancel()
	<-h.ran
}

// join puts sandbox name, ready, on global network n of h's store with address ip and
// kicks the publisher; it returns the endpoint.
func (h *host) join(n *store.Network, name, ip string, dnsNames ...string) *store.Endpoint {
	h.t.Helper()
	sb := &store.Sandbox{ID: hexID(h.id + "/" + name), Name: name, State: store.StateReady, Mode: store.ModeBridge}
	ep := &store.Endpoint{ID: hexID(h.id + "/" + name + "/" + n.ID), NetworkID: n.ID, SandboxID: sb.ID,
		IfName: "eth0", HostVeth: store.VethName(hexID(name)), MAC: "02:42:0a:00:00:02",
		IPv4: netip.MustParseAddr(ip), DNSNames: append([]string{name}, dnsNames...),
		Links: []store.Link{{Target: "x", Alias: "y"}}, Seq: 7}
	h.update(func(tx *store.Tx) error {
		if _, err := tx.Network(n.ID); err != nil {
			if err := tx.PutNetwork(n); err != nil {
				return err
			}
		}
		if err := tx.PutSandbox(sb); err != nil {
			return err
		}
		return tx.PutEndpoint(ep)
	})
	return ep
}

// rename changes the DNS names of ep and kicks the publisher.
func (h *host) rename(ep *store.Endpoint, names ...string) *store.Endpoint {
	h.t.Helper()
	c := ep.Copy()
	c.DNSNames = names
	h.update(func(tx *store.Tx) error { return tx.PutEndpoint(c) })
	return c
}

// leave removes ep and its sandbox and kicks the publisher.
func (h *host) leave(ep *store.Endpoint) {
	h.t.Helper()
	h.update(func(tx *store.Tx) error {
		sb, err := tx.Sandbox(ep.SandboxID)
		if err != nil {
			return err
		}
		if err := tx.DeleteEndpoint(ep); err != nil {
			return err
		}
		return tx.DeleteSandbox(sb)
	})
}

func (h *host) update(fn func(tx *store.Tx) error) {
	h.t.Helper()
	if err := h.st.Update(fn); err != nil {
		h.t.Fatalf("store update on %s: %v", h.id, err)
	}
	h.c.Kick()
}

// recorder is a Config.Apply that keeps every update and the state they add up to.
type recorder struct {
	mu        sync.Mutex // guards following
	updates   []netmgr.RemoteUpdate
	networks  map[string]*store.Network
	endpoints map[string]*store.Endpoint
	failNext  int // the next failNext calls fail
}

func newRecorder() *recorder {
	return &recorder{networks: map[string]*store.Network{}, endpoints: map[string]*store.Endpoint{}}
}

func (r *recorder) apply(ctx context.Context, u netmgr.RemoteUpdate) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failNext > 0 {
		r.failNext--
		return fmt.Errorf("recorder told to fail")
	}
	r.updates = append(r.updates, u)
	if u.Full {
		r.networks, r.endpoints = map[string]*store.Network{}, map[string]*store.Endpoint{}
	}
	for _, n := range u.Networks {
		r.networks[n.ID] = n
	}
	for _, id := range u.RemovedNetworks {
		delete(r.networks, id)
	}
	for _, ep := range u.Endpoints {
		r.endpoints[ep.ID] = ep
	}
	for _, id := range u.RemovedEndpoints {
		delete(r.endpoints, id)
	}
	return nil
}

func (r *recorder) endpoint(id string) *store.Endpoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.endpoints[id]
}

func (r *recorder) network(id string) *store.Network {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.networks[id]
}

func (r *recorder) all() []netmgr.RemoteUpdate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]netmgr.RemoteUpdate(nil), r.updates...)
}

// waitFor polls cond every 2 ms until it holds and returns how long that took; it fails
// the test after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not after %v", what, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

// rawClient is a plain etcd client for the test's own reads and writes.
func rawClient(t *testing.T, eps []string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// count returns how many keys are under prefix.
func count(t *testing.T, c *clientv3.Client, prefix string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatalf("count %s: %v", prefix, err)
	}
	return resp.Count
}

// hexID is a 64-hex ID derived from s.
func hexID(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// overlay is a global network record as netmgr would hand CreateNetwork.
func overlay(name, cidr string) *store.Network {
	p := netip.MustParsePrefix(cidr)
	id := hexID("net/" + name + "/" + cidr)
	return &store.Network{ID: id, Name: name, Driver: store.DriverOverlay, Scope: store.ScopeGlobal,
		Bridge: "br-" + id[:12], Subnets: []store.Subnet{{Subnet: p, Gateway: p.Addr().Next()}}}
}

// created is n after CreateNetwork on h, VNI set.
func created(t *testing.T, h *host, n *store.Network) *store.Network {
	t.Helper()
	vni, err := h.c.CreateNetwork(context.Background(), n)
	if err != nil {
		t.Fatalf("create %s: %v", n.Name, err)
	}
	c := n.Copy()
	c.VNI = vni
	return c
}

func startEtcd(t *testing.T) (*etcdtest.Server, []string) {
	srv := etcdtest.Start(t)
	return srv, []string{srv.Addr()}
}

// testWriter sends the clients' logs to t.Log, where they show for failing tests only.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}
