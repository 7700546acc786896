package resolver

import (
	"net/netip"
	"reflect"
	"testing"
)

func ptr(network, target string) Result {
	return Result{Kind: Found, Target: target, Network: network, Source: "ptr"}
}

func TestLookupPTR(t *testing.T) {
	w := newWorld(t)
	runLookups(t, w, []lookupCase{
		{"v4", "a", "3.0.1.10.in-addr.arpa.", TypePTR, ptr("n1", "b.n1.")},
		{"v4 upper case zone", "a", "3.0.1.10.IN-ADDR.ARPA", TypePTR, ptr("n1", "b.n1.")},
		{"name, not alias or hostname", "a", "4.0.1.10.in-addr.arpa.", TypePTR, ptr("n1", "c.n1.")},
		{"own address", "a", "2.0.1.10.in-addr.arpa.", TypePTR, ptr("n1", "a.n1.")},
		{"v6", "s6", "3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.0.0.0.0.0.d.f.ip6.arpa.", TypePTR, ptr("n6", "s6b.n6.")},
		{"v6 upper-case nibbles", "s6", "3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.0.0.0.0.0.D.F.ip6.arpa.", TypePTR, ptr("n6", "s6b.n6.")},
		{"network not shared", "a", "2.0.2.10.in-addr.arpa.", TypePTR, notOurs},
		{"shared via second network", "q2", "20.0.2.10.in-addr.arpa.", TypePTR, ptr("n2", "both.n2.")},
		{"internal network", "q", "10.0.9.10.in-addr.arpa.", TypePTR, ptr("a-int", "t.a-int.")},
		{"creating sandbox", "a", "7.0.1.10.in-addr.arpa.", TypePTR, notOurs},
		{"default bridge", "legacy1", "3.0.17.172.in-addr.arpa.", TypePTR, notOurs},
		{"container mode", "ctr", "3.0.1.10.in-addr.arpa.", TypePTR, ptr("n1", "b.n1.")},
		{"unknown address", "a", "99.0.1.10.in-addr.arpa.", TypePTR, notOurs},
		{"partial zone", "a", "1.10.in-addr.arpa.", TypePTR, notOurs},
		{"not arpa", "a", "b", TypePTR, notOurs},
		{"leading zero", "a", "03.0.1.10.in-addr.arpa.", TypePTR, notOurs},
	})
}

func TestParseReverse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" means not an address
	}{
		{"4.3.2.1.in-addr.arpa.", "1.2.3.4"},
		{"4.3.2.1.in-addr.arpa", "1.2.3.4"},
		{"0.0.0.0.in-addr.arpa.", "0.0.0.0"},
		{"255.255.255.255.in-addr.arpa.", "255.255.255.255"},
		{"256.3.2.1.in-addr.arpa.", ""},
		{"3.2.1.in-addr.arpa.", ""},
		{"5.4.3.2.1.in-addr.arpa.", ""},
		{"a.3.2.1.in-addr.arpa.", ""},
		{"4..2.1.in-addr.arpa.", ""},
		{".in-addr.arpa.", ""},
		{"in-addr.arpa.", ""},
		{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.", "::1"},
		{"b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa.", "4321:0:1:2:3:4:567:89ab"},
		{"0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.", ""},        // 31 nibbles
		{"g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.", ""},      // not hex
		{"10.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.", ""},     // two-digit label
		{"4.0.3.0.2.0.1.0.f.f.f.f." + "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.", ""}, // v4-mapped
		{"example.com.", ""},
	} {
		got, ok := parseReverse(tc.in)
		if tc.want == "" {
			if ok {
				t.Errorf("parseReverse(%q) = %v; want not an address", tc.in, got)
			}
			continue
		}
		if want := netip.MustParseAddr(tc.want); !ok || got != want {
			t.Errorf("parseReverse(%q) = %v, %v; want %v", tc.in, got, ok, want)
		}
	}
}

func TestLookupPTRUnknownQuerier(t *testing.T) {
	w := newWorld(t)
	got := Lookup(w.snap(), hexID("sb", "nobody"), "3.0.1.10.in-addr.arpa.", TypePTR)
	if !reflect.DeepEqual(got, notOurs) {
		t.Errorf("got %+v; want NotOurs", got)
	}
}
