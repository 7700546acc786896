package daemon

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"berth/api"
	"berth/store"
)

// TestNetworkViewOptions: inspect of an IPv6-only network with an aux address, and of a
// configuration network and one made from it, shaped as the oracle (dockerd 20.10) showed
// `docker network inspect cfg` and `fromcfg` (EnableIPv4 is Docker 28's field; berth shows
// the gateway, which 20.10 leaves out when it was not given); and of a macvlan network as
// the oracle showed `docker network create -d macvlan --subnet 10.50.0.0/24 -o parent=eth0
// mv0`: the options as given, no bridge name.
func TestNetworkViewOptions(t *testing.T) {
	st := store.NewMemory()
	cfgID, fromID, v6ID := "c"+strings.Repeat("0", 63), "f"+strings.Repeat("0", 63), "6"+strings.Repeat("0", 63)
	mvID := "a" + strings.Repeat("0", 63)
	aux := map[string]netip.Addr{"r": mustAddr("10.80.0.70")}
	opts := map[string]string{"com.docker.network.bridge.enable_icc": "false"}
	cfg := &store.Network{ID: cfgID, Name: "cfg", Driver: store.DriverNull, ConfigOnly: true, Aux: aux,
		Subnets: []store.Subnet{{Subnet: mustPrefix("10.80.0.0/24"), IPRange: mustPrefix("10.80.0.64/26")}},
		Options: opts, Labels: map[string]string{"k": "v"}}
	from := &store.Network{ID: fromID, Name: "fromcfg", Driver: store.DriverBridge, Bridge: "br-f000", ConfigFrom: "cfg", Aux: aux,
		Subnets: []store.Subnet{{Subnet: mustPrefix("10.80.0.0/24"), Gateway: mustAddr("10.80.0.1"), IPRange: mustPrefix("10.80.0.64/26")}},
		Options: opts, Labels: map[string]string{"k": "v"}}
	v6 := &store.Network{ID: v6ID, Name: "v6", Driver: store.DriverBridge, Bridge: "br-6000", NoIPv4: true, IPv6: true, Attachable: true,
		Aux:     map[string]netip.Addr{"printer": mustAddr("fd42:17::5")},
		Subnets: []store.Subnet{{Subnet: mustPrefix("fd42:17::/64"), Gateway: mustAddr("fd42:17::1")}}}
	mv := &store.Network{ID: mvID, Name: "mv0", Driver: store.DriverMacvlan, Parent: store.Parent{Name: "eth0"}, Mode: "bridge",
		Subnets: []store.Subnet{{Subnet: mustPrefix("10.50.0.0/24"), Gateway: mustAddr("10.50.0.1")}},
		Options: map[string]string{"parent": "eth0"}}
	if err := st.Update(func(tx *store.Tx) error {
		for _, n := range []*store.Network{cfg, from, v6, mv} {
			if err := tx.PutNetwork(n); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	snap := st.Snapshot()
	zero := `"Created":"0001-01-01T00:00:00Z",`
	for _, tc := range []struct {
		n    *store.Network
		want string
	}{
		{cfg, `{"Name":"cfg","Id":"` + cfgID + `",` + zero + `"Scope":"local","Driver":"null","EnableIPv4":true,"EnableIPv6":false,` +
			`"IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.80.0.0/24","IPRange":"10.80.0.64/26","AuxiliaryAddresses":{"r":"10.80.0.70"}}]},` +
			`"Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":true,"Containers":{},` +
			`"Options":{"com.docker.network.bridge.enable_icc":"false"},"Labels":{"k":"v"}}`},
		{from, `{"Name":"fromcfg","Id":"` + fromID + `",` + zero + `"Scope":"local","Driver":"bridge","EnableIPv4":true,"EnableIPv6":false,` +
			`"IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.80.0.0/24","IPRange":"10.80.0.64/26","Gateway":"10.80.0.1","AuxiliaryAddresses":{"r":"10.80.0.70"}}]},` +
			`"Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":"cfg"},"ConfigOnly":false,"Containers":{},` +
			`"Options":{"com.docker.network.bridge.enable_icc":"false","com.docker.network.bridge.name":"br-f000"},"Labels":{"k":"v"}}`},
		{v6, `{"Name":"v6","Id":"` + v6ID + `",` + zero + `"Scope":"local","Driver":"bridge","EnableIPv4":false,"EnableIPv6":true,` +
			`"IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"fd42:17::/64","Gateway":"fd42:17::1","AuxiliaryAddresses":{"printer":"fd42:17::5"}}]},` +
			`"Internal":false,"Attachable":true,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{},` +
			`"Options":{"com.docker.network.bridge.name":"br-6000"},"Labels":{}}`},
		{mv, `{"Name":"mv0","Id":"` + mvID + `",` + zero + `"Scope":"local","Driver":"macvlan","EnableIPv4":true,"EnableIPv6":false,` +
			`"IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.50.0.0/24","Gateway":"10.50.0.1"}]},` +
			`"Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{},` +
			`"Options":{"parent":"eth0"},"Labels":{}}`},
	} {
		b, err := json.Marshal(networkView(snap, tc.n, api.NetworkPeer{}))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.n.Name, b, tc.want)
		}
	}
}
