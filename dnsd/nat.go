package dnsd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"berth/internal/nsutil"
)

// natTable is the nftables table dnsd owns inside each sandbox netns (Docker's nftables
// backend uses "docker-dns"). dnsd never reads or changes any other table.
const natTable = "berth-dns"

// dnsPort is the port clients use; the real sockets listen on random ports.
const dnsPort = 53

var serviceIP = [4]byte{127, 0, 0, 11}

// installNAT installs, over a connection to the sandbox's netns, the table that sends
// 127.0.0.11:53 to the ports dnsd listens on:
//
//	table ip berth-dns {
//		chain output { type nat hook output priority dstnat;
//			ip daddr 127.0.0.11 udp dport 53 dnat to 127.0.0.11:UDPPORT
//			ip daddr 127.0.0.11 tcp dport 53 dnat to 127.0.0.11:TCPPORT }
//		chain postrouting { type nat hook postrouting priority srcnat;
//			ip saddr 127.0.0.11 udp sport UDPPORT snat to 127.0.0.11:53
//			ip saddr 127.0.0.11 tcp sport TCPPORT snat to 127.0.0.11:53 }
//	}
//
// An existing table (from an earlier daemon run, with other ports) is replaced in the same
// batch, so there is no moment without a rule and no "already exists" failure (moby #45646).
func installNAT(c *nftables.Conn, udpPort, tcpPort uint16) error {
	t := &nftables.Table{Name: natTable, Family: nftables.TableFamilyIPv4}
	c.AddTable(t) // create if missing, so the delete below cannot fail
	c.DelTable(t)
	c.AddTable(t)
	out := c.AddChain(&nftables.Chain{
		Name: "output", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest,
	})
	post := c.AddChain(&nftables.Chain{
		Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	for _, p := range []struct {
		proto byte
		port  uint16
	}{{unix.IPPROTO_UDP, udpPort}, {unix.IPPROTO_TCP, tcpPort}} {
		c.AddRule(&nftables.Rule{Table: t, Chain: out,
			Exprs: natRule(expr.NATTypeDestNAT, p.proto, 16, 2, dnsPort, p.port)})
		c.AddRule(&nftables.Rule{Table: t, Chain: post,
			Exprs: natRule(expr.NATTypeSourceNAT, p.proto, 12, 0, p.port, dnsPort)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install nftables table %s: %w", natTable, err)
	}
	return nil
}

// natChains are the base chains of the table installNAT makes: name, hook, priority.
var natChains = []struct {
	name string
	hook nftables.ChainHook
	prio nftables.ChainPriority
}{
	{"output", *nftables.ChainHookOutput, *nftables.ChainPriorityNATDest},
	{"postrouting", *nftables.ChainHookPostrouting, *nftables.ChainPriorityNATSource},
}

// readNAT reads the table berth-dns in c's netns and returns the UDP and TCP ports it
// redirects 127.0.0.11:53 to, if it is exactly the table installNAT makes for them (what
// a daemon that stopped or died leaves behind). Anything else (no table, other chains or
// rules, someone's edits) is not ok, and the caller installs the table afresh.
func readNAT(c *nftables.Conn) (p natPorts, ok bool) {
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return p, false
	}
	n := 0
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != natTable {
			continue
		}
		n++
		want := -1
		for i, w := range natChains {
			if ch.Name == w.name {
				want = i
			}
		}
		if want < 0 || ch.Type != nftables.ChainTypeNAT || ch.Hooknum == nil || *ch.Hooknum != natChains[want].hook ||
			ch.Priority == nil || *ch.Priority != natChains[want].prio {
			return p, false
		}
	}
	if n != len(natChains) {
		return p, false
	}
	t := &nftables.Table{Name: natTable, Family: nftables.TableFamilyIPv4}
	out, err := c.GetRules(t, &nftables.Chain{Name: "output", Table: t})
	if err != nil || len(out) != 2 {
		return p, false
	}
	var ports [2]uint16
	for i, r := range out {
		if len(r.Exprs) != 9 {
			return p, false
		}
		imm, ok := r.Exprs[7].(*expr.Immediate)
		if !ok || len(imm.Data) != 2 {
			return p, false
		}
		ports[i] = binary.BigEndian.Uint16(imm.Data)
	}
	post, err := c.GetRules(t, &nftables.Chain{Name: "postrouting", Table: t})
	if err != nil || len(post) != 2 {
		return p, false
	}
	for i, proto := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
		if ports[i] == 0 ||
			!reflect.DeepEqual(out[i].Exprs, natRule(expr.NATTypeDestNAT, proto, 16, 2, dnsPort, ports[i])) ||
			!reflect.DeepEqual(post[i].Exprs, natRule(expr.NATTypeSourceNAT, proto, 12, 0, ports[i], dnsPort)) {
			return p, false
		}
	}
	return natPorts{udp: ports[0], tcp: ports[1]}, true
}

// natRule matches 127.0.0.11 at addrOff of the IPv4 header, proto, and match at portOff
// of the transport header, and translates to 127.0.0.11:to.
func natRule(typ expr.NATType, proto byte, addrOff, portOff uint32, match, to uint16) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: addrOff, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: serviceIP[:]},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: portOff, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(match)},
		&expr.Immediate{Register: 1, Data: serviceIP[:]},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(to)},
		&expr.NAT{Type: typ, Family: unix.NFPROTO_IPV4,
			RegAddrMin: 1, RegAddrMax: 1, RegProtoMin: 2, RegProtoMax: 2, Specified: true},
	}
}

// pinnedAt reports whether path still names the netns want. It does not when the path is
// gone or names another netns now (the sandbox was removed or renamed and a new one took
// its name), whose table is not ours to touch.
func pinnedAt(path string, want nsutil.ID) (bool, error) {
	id, err := nsutil.IDOf(path)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	return err == nil && id == want, err
}

// deleteNAT removes the table from the netns open at fd; a table that is already gone is
// fine.
func deleteNAT(fd int) error {
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	c.DelTable(&nftables.Table{Name: natTable, Family: nftables.TableFamilyIPv4})
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}
