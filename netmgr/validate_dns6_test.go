package netmgr

import (
	"testing"

	"berth/api"
)

// TestValidateNetworkEmbeddedDNS6: no subnet, range, gateway or aux address may contain
// the embedded DNS's IPv6 address; its neighbours are fine.
func TestValidateNetworkEmbeddedDNS6(t *testing.T) {
	const why = `": overlaps berth's embedded DNS address fd62:6572:7468::11`
	v6 := func(f func(*api.NetworkCreate)) api.NetworkCreate {
		r := api.NetworkCreate{Name: "n", IPv6: true}
		f(&r)
		return r
	}
	cases := []struct {
		name string
		req  api.NetworkCreate
		want string
	}{
		{"subnet /64", v6(func(r *api.NetworkCreate) { r.Subnets = []string{"fd62:6572:7468::/64"} }),
			`invalid subnet "fd62:6572:7468::/64` + why},
		{"subnet /8", v6(func(r *api.NetworkCreate) { r.Subnets = []string{"fd00::/8"} }),
			`invalid subnet "fd00::/8` + why},
		{"subnet next door", v6(func(r *api.NetworkCreate) { r.Subnets = []string{"fd62:6572:7468:1::/64"} }), ""},
		{"ip-range", v6(func(r *api.NetworkCreate) {
			r.Subnets, r.IPRange = []string{"fd62:6572:7469::/48"}, "fd62:6572:7468::/120"
		}), `invalid ip-range "fd62:6572:7468::/120` + why},
		{"gateway", v6(func(r *api.NetworkCreate) { r.Gateways = []string{"fd62:6572:7468::11"} }),
			`invalid gateway "fd62:6572:7468::11` + why},
		{"gateway next door", v6(func(r *api.NetworkCreate) { r.Gateways = []string{"fd62:6572:7468::12"} }), ""},
		{"aux-address", v6(func(r *api.NetworkCreate) { r.AuxAddresses = map[string]string{"dns": "fd62:6572:7468::11"} }),
			`invalid aux-address "dns=fd62:6572:7468::11` + why},
		{"ipv6-only", api.NetworkCreate{Name: "n", IPv4: new(false), IPv6: true, Subnets: []string{"fd62:6572:7468::/48"}},
			`invalid subnet "fd62:6572:7468::/48` + why},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ValidateNetworkCreate(tc.req)
			if got := errText(err); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
