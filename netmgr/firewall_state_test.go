package netmgr

import (
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
