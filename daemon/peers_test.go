package daemon

import (
	"net/netip"
	"reflect"
	"testing"

	"berth/api"
	"berth/store"
)

// TestNetworkPeers: a global network's Peers list this host first when it has an endpoint
// there, then every other host with one, once each, by name.
func TestNetworkPeers(t *testing.T) {
	st := store.NewMemory()
	n := &store.Network{ID: "n1", Name: "ov", Driver: store.DriverOverlay, Scope: store.ScopeGlobal, VNI: 4096, Bridge: "br-ov"}
	remote := func(id, host, addr string) *store.Endpoint {
		return &store.Endpoint{ID: id, NetworkID: n.ID, SandboxID: "s" + id, Host: host, HostAddr: netip.MustParseAddr(addr)}
	}
	put := func(eps ...*store.Endpoint) {
		t.Helper()
		if err := st.Update(func(tx *store.Tx) error {
			for _, ep := range eps {
				if err := tx.PutEndpoint(ep); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Update(func(tx *store.Tx) error { return tx.PutNetwork(n) }); err != nil {
		t.Fatal(err)
	}
	put(remote("e1", "hc", "10.99.0.13"), remote("e2", "hb", "10.99.0.12"), remote("e3", "hc", "10.99.0.13"))
	local := api.NetworkPeer{Name: "ha", IP: "10.99.0.11"}
	b, c := api.NetworkPeer{Name: "hb", IP: "10.99.0.12"}, api.NetworkPeer{Name: "hc", IP: "10.99.0.13"}
	if got, want := networkPeers(st.Snapshot(), n, local), []api.NetworkPeer{b, c}; !reflect.DeepEqual(got, want) {
		t.Errorf("without a local endpoint: %v, want %v", got, want)
	}
	put(&store.Endpoint{ID: "e4", NetworkID: n.ID, SandboxID: "s4"})
	if got, want := networkPeers(st.Snapshot(), n, local), []api.NetworkPeer{local, b, c}; !reflect.DeepEqual(got, want) {
		t.Errorf("with a local endpoint: %v, want %v", got, want)
	}
}
