package netmgr

import (
	"net/netip"
	"testing"

	"berth/store"
)

// TestFirewallStateMasquerade: every boolean form the validator accepts for
// enable_ip_masquerade turns masquerading off or on; a missing option leaves it on, as in
// Docker.
func TestFirewallStateMasquerade(t *testing.T) {
	for _, c := range []struct {
		opt  string
		want bool
	}{{"", true}, {"true", true}, {"1", true}, {"false", false}, {"0", false}, {"f", false}, {"FALSE", false}} {
		st := store.NewMemory()
		n := &store.Network{ID: "n1", Name: "app", Driver: store.DriverBridge, Bridge: "br-app", Options: map[string]string{}}
		if c.opt != "" {
			n.Options[OptMasquerade] = c.opt
		}
		if err := st.Update(func(tx *store.Tx) error { return tx.PutNetwork(n) }); err != nil {
			t.Fatal(err)
		}
		fs := firewallState(st.Snapshot())
		if len(fs.Networks) != 1 || fs.Networks[0].Masquerade != c.want {
			t.Errorf("enable_ip_masquerade=%q: networks %+v, want masquerade %v", c.opt, fs.Networks, c.want)
		}
	}
}

// TestFirewallStateOverlay: an overlay network's bridge, its sandboxes' gateway on this
// host, gets a bridge network's rules (NAT, isolation from the other networks, ports);
// the none and host pseudo networks get none.
func TestFirewallStateOverlay(t *testing.T) {
	st := store.NewMemory()
	err := st.Update(func(tx *store.Tx) error {
		for _, n := range []*store.Network{
			{ID: "n1", Name: "ov", Driver: store.DriverOverlay, Scope: store.ScopeGlobal, VNI: 4096, Bridge: "br-ov", Internal: true,
				Subnets: []store.Subnet{{Subnet: netip.MustParsePrefix("10.0.0.0/24")}}},
			{ID: "n2", Name: "none", Driver: store.DriverNull, Predefined: true},
		} {
			if err := tx.PutNetwork(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fs := firewallState(st.Snapshot())
	if len(fs.Networks) != 1 || fs.Networks[0].Bridge != "br-ov" || !fs.Networks[0].Internal ||
		len(fs.Networks[0].Subnets) != 1 || fs.Networks[0].Subnets[0] != netip.MustParsePrefix("10.0.0.0/24") {
		t.Fatalf("networks %+v, want br-ov (internal, 10.0.0.0/24) only", fs.Networks)
	}
}
