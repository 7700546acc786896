package integration

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNetworkOptions is issue 17 item 8 on the real kernel: --aux-address and --ip-range
// per subnet on real allocations, --attachable, --config-only and --config-from, each
// checked against what Debian's dockerd 20.10 (shared/tools/docker-oracle.sh) answered.
func TestNetworkOptions(t *testing.T) {
	d := newDaemon(t)
	d.start()
	// oracle: `docker network create --subnet 10.90.0.0/29 --aux-address a=10.90.0.2
	// --aux-address b=10.90.0.3 small`; its first container got 10.90.0.4.
	d.must("network", "create", "--subnet", "10.90.0.0/29", "--aux-address", "a=10.90.0.2", "--aux-address", "b=10.90.0.3",
		"--attachable", "small")
	n := d.inspectNetwork("small")
	if !n.Attachable || len(n.IPAM.Config) != 1 || len(n.IPAM.Config[0].AuxiliaryAddresses) != 2 ||
		n.IPAM.Config[0].AuxiliaryAddresses["a"] != "10.90.0.2" || n.IPAM.Config[0].AuxiliaryAddresses["b"] != "10.90.0.3" {
		t.Errorf("inspect small: Attachable %v IPAM %+v; want true and AuxiliaryAddresses a=10.90.0.2 b=10.90.0.3", n.Attachable, n.IPAM.Config)
	}
	for i, want := range []string{"10.90.0.4", "10.90.0.5", "10.90.0.6"} {
		name := []string{"s1", "s2", "s3"}[i]
		d.must("sandbox", "create", "--name", name, "--network", "small")
		if out, _ := inNS(t, name, "ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, want+"/29") {
			t.Errorf("%s eth0: %q, want %s/29 (aux addresses skipped)", name, out, want)
		}
	}
	d.fails("no free address left", "sandbox", "create", "--name", "s4", "--network", "small")
	// oracle: docker run --ip AUX: "Address already in use".
	d.fails(`invalid ip "10.90.0.2": Address already in use (aux-address a)`,
		"sandbox", "create", "--name", "s5", "--network", "small", "--ip", "10.90.0.2")
	// oracle (docker CLI): the words of these refusals.
	d.fails("no matching subnet for aux-address 10.51.0.5", "network", "create", "--subnet", "10.50.0.0/24", "--aux-address", "a=10.51.0.5", "bad1")
	d.fails("no matching subnet for range 10.53.0.0/25", "network", "create", "--subnet", "10.52.0.0/24", "--ip-range", "10.53.0.0/25", "bad2")
	// oracle (dockerd): failed to allocate secondary ip address (a:10.57.0.1): Address already in use
	d.fails("failed to allocate secondary ip address (a:10.57.0.1): Address already in use",
		"network", "create", "--subnet", "10.57.0.0/24", "--aux-address", "a=10.57.0.1", "bad3")

	// One --ip-range per subnet, each matched to the subnet containing it.
	d.must("network", "create", "--ipv6", "--subnet", "10.60.0.0/24", "--subnet", "fd00:60::/64",
		"--ip-range", "fd00:60::100/120", "--ip-range", "10.60.0.128/25", "ranged")
	n = d.inspectNetwork("ranged")
	if len(n.IPAM.Config) != 2 || n.IPAM.Config[0].IPRange != "10.60.0.128/25" || n.IPAM.Config[1].IPRange != "fd00:60::100/120" {
		t.Errorf("inspect ranged: %+v, want 10.60.0.128/25 in the IPv4 pool and fd00:60::100/120 in the IPv6 one", n.IPAM.Config)
	}
	d.must("sandbox", "create", "--name", "r1", "--network", "ranged")
	if s := d.inspectSandbox("r1").Networks["ranged"]; s.IPAddress != "10.60.0.128" || s.GlobalIPv6Address != "fd00:60::100" {
		t.Errorf("r1 on ranged: %s %s, want 10.60.0.128 and fd00:60::100 (each range's first)", s.IPAddress, s.GlobalIPv6Address)
	}
	d.fails("cannot configure multiple ranges (10.61.0.128/25, 10.61.0.0/25) on the same subnet (10.61.0.0/24)",
		"network", "create", "--subnet", "10.61.0.0/24", "--ip-range", "10.61.0.0/25", "--ip-range", "10.61.0.128/25", "bad4")

	// oracle: a --config-only network: Driver null, Scope local, no bridge; a network
	// --config-from it takes its subnet, range, aux addresses, options and labels.
	d.must("network", "create", "--config-only", "--subnet", "10.80.0.0/24", "--ip-range", "10.80.0.64/26",
		"--aux-address", "r=10.80.0.64", "-o", "com.docker.network.bridge.enable_icc=false", "--label", "k=v", "cfg")
	cfg := d.inspectNetwork("cfg")
	if cfg.Driver != "null" || !cfg.ConfigOnly || cfg.Options["com.docker.network.bridge.name"] != "" ||
		len(cfg.IPAM.Config) != 1 || cfg.IPAM.Config[0].Gateway != "" || cfg.IPAM.Config[0].AuxiliaryAddresses["r"] != "10.80.0.64" {
		t.Errorf("inspect cfg: %+v, want driver null, ConfigOnly, no bridge, the IPAM as given", cfg)
	}
	if out, _ := exec.Command("ip", "-o", "link", "show", "type", "bridge").CombinedOutput(); strings.Count(string(out), "br-") != 2 {
		t.Errorf("bridges: %s, want small's and ranged's only (none for cfg)", out)
	}
	d.fails("cannot create endpoint on configuration-only network", "sandbox", "create", "--name", "c0", "--network", "cfg")
	d.fails("user specified configurations are not supported if the network depends on a configuration network",
		"network", "create", "--config-from", "cfg", "--subnet", "10.81.0.0/24", "bad5")
	d.fails(`configuration network "nope" does not exist`, "network", "create", "--config-from", "nope", "bad6")
	d.must("network", "create", "--config-from", "cfg", "fromcfg")
	from := d.inspectNetwork("fromcfg")
	if from.Driver != "bridge" || from.ConfigFrom.Network != "cfg" || from.ConfigOnly || len(from.IPAM.Config) != 1 ||
		from.IPAM.Config[0].Subnet != "10.80.0.0/24" || from.IPAM.Config[0].IPRange != "10.80.0.64/26" ||
		from.Options["com.docker.network.bridge.enable_icc"] != "false" {
		t.Errorf("inspect fromcfg: %+v, want bridge, ConfigFrom cfg, cfg's IPAM and options", from)
	}
	d.must("sandbox", "create", "--name", "f1", "--network", "fromcfg")
	if out, _ := inNS(t, "f1", "ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, "10.80.0.65/24") {
		t.Errorf("f1 eth0: %q, want 10.80.0.65/24 (the range's first but the aux address)", out)
	}
	if out, err := exec.Command("ip", "-4", "-o", "addr", "show", "dev", "br-"+from.ID[:12]).CombinedOutput(); err != nil || !strings.Contains(string(out), "10.80.0.1/24") {
		t.Errorf("fromcfg's bridge: %v %s, want 10.80.0.1/24", err, out)
	}
	d.fails(`configuration network "cfg" is in use`, "network", "rm", "cfg")

	// The options survive a restart.
	d.stop()
	d.start()
	if n := d.inspectNetwork("small"); !n.Attachable || n.IPAM.Config[0].AuxiliaryAddresses["b"] != "10.90.0.3" {
		t.Errorf("small after restart: %+v", n)
	}
	if n := d.inspectNetwork("fromcfg"); n.ConfigFrom.Network != "cfg" {
		t.Errorf("fromcfg after restart: %+v", n)
	}
	d.must("sandbox", "rm", "-f", "f1")
	d.must("network", "rm", "fromcfg")
	d.must("network", "rm", "cfg")
}
