package resolver

import (
	"net/netip"
	"slices"
	"testing"

	"berth/store"
)

// isVisible is visible's verdict alone, for tests that check a holder.
func isVisible(snap *store.Snapshot, ep *store.Endpoint) bool {
	return ep.Remote() || visible(snap, ep) != nil
}

// remote adds another host's endpoint on nw as the mirror does: no sandbox record, Host,
// HostAddr and SandboxName set, DNSNames as its host computed them.
func (f *fixture) remote(host, sbName string, nw *store.Network, ip4 string, aliases ...string) *store.Endpoint {
	f.t.Helper()
	sbID := hexID("sb", host+"/"+sbName)
	end := &store.Endpoint{
		ID: hexID("ep", host+"/"+sbName+"@"+nw.Name), NetworkID: nw.ID, SandboxID: sbID, IfName: "eth0",
		IPv4: netip.MustParseAddr(ip4), Aliases: aliases, Host: host,
		HostAddr: netip.MustParseAddr("192.0.2.2"), SandboxName: sbName,
		DNSNames: slices.Concat([]string{sbName}, aliases, []string{store.ShortID(sbID)}),
	}
	f.update(func(tx *store.Tx) error {
		if err := tx.PutAddress(&store.Address{NetworkID: nw.ID, Addr: end.IPv4, Owner: end.ID}); err != nil {
			return err
		}
		return tx.PutEndpoint(end)
	})
	return end
}

// overlay adds a global network as the mirror does.
func (f *fixture) overlay(name, subnet string) *store.Network {
	f.t.Helper()
	nw := f.network(name, subnet).Copy()
	nw.Driver, nw.Scope, nw.VNI = store.DriverOverlay, store.ScopeGlobal, 4096
	f.put(nw)
	return nw
}

// TestRemoteEndpoints: a sandbox on another host (a remote endpoint, no sandbox record
// here) answers A, its aliases and PTR (with its SandboxName) to a sandbox on the same
// network, and nothing to one that is not on it; a link to it resolves on the shared network.
func TestRemoteEndpoints(t *testing.T) {
	f := newFixture(t)
	ov := f.overlay("ov", "10.0.1.0/24")
	other := f.network("other", "10.0.2.0/24")
	web := f.sandbox("web")
	f.connect(web, ov, ep{ip4: "10.0.1.2", links: []store.Link{{Target: "db", Alias: "database"}}})
	lone := f.sandbox("lone")
	f.connect(lone, other, ep{ip4: "10.0.2.2"})
	db := f.remote("hostB", "db", ov, "10.0.1.3", "pg")
	snap := f.snap()

	found := func(src string, a ...string) Result {
		return Result{Kind: Found, Addrs: addrs(a...), Network: "ov", Source: src}
	}
	cases := []struct {
		name, from, qname string
		qtype             uint16
		want              Result
	}{
		{"remote name", "web", "db", TypeA, found(srcName, "10.0.1.3")},
		{"remote name.network", "web", "db.ov.", TypeA, found(srcName, "10.0.1.3")},
		{"remote short id", "web", store.ShortID(db.SandboxID), TypeA, found(srcName, "10.0.1.3")},
		{"remote alias", "web", "PG", TypeA, found(srcAlias, "10.0.1.3")},
		{"link to remote", "web", "database", TypeA, found(srcLink, "10.0.1.3")},
		{"remote AAAA nodata", "web", "db", TypeAAAA, Result{Kind: NoData, Network: "ov", Source: srcName}},
		{"remote PTR", "web", "3.1.0.10.in-addr.arpa.", TypePTR,
			Result{Kind: Found, Target: "db.ov.", Network: "ov", Source: srcPTR}},
		{"other network: name", "lone", "db", TypeA, Result{}},
		{"other network: alias", "lone", "pg", TypeA, Result{}},
		{"other network: PTR", "lone", "3.1.0.10.in-addr.arpa.", TypePTR, Result{}},
	}
	ids := map[string]string{"web": web.ID, "lone": lone.ID}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Lookup(snap, ids[tc.from], tc.qname, tc.qtype)
			if got.Kind != tc.want.Kind || !slices.Equal(got.Addrs, tc.want.Addrs) || got.Target != tc.want.Target ||
				got.Network != tc.want.Network || got.Source != tc.want.Source {
				t.Errorf("Lookup(%s, %q, %d) = %+v; want %+v", tc.from, tc.qname, tc.qtype, got, tc.want)
			}
		})
	}
	// Gone from the mirror: gone from DNS.
	f.update(func(tx *store.Tx) error {
		if err := tx.ReleaseOwner(db.ID); err != nil {
			return err
		}
		return tx.DeleteEndpoint(db)
	})
	if got := Lookup(f.snap(), web.ID, "db", TypeA); got.Kind != NotOurs {
		t.Errorf("after the remote endpoint is removed: %+v; want not ours", got)
	}
}
