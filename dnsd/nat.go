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
	"berth/resolver"
)

// natTable is the name of the two nftables tables dnsd owns inside each sandbox netns, one
// per family (Docker's nftables backend uses "docker-dns"). dnsd never reads or changes any
// other table.
const natTable = "berth-dns"

// dnsPort is the port clients use; the real sockets listen on random ports.
const dnsPort = 53

// serviceAddr6 is the embedded DNS's IPv6 address (resolver.EmbeddedNS6, which says why
// this one), on the lo of every sandbox with IPv6: the IPv6 twin of 127.0.0.11.
var serviceAddr6 = resolver.EmbeddedNS6

var (
	serviceIP  = [4]byte{127, 0, 0, 11}
	serviceIP6 = serviceAddr6.As16()
)

// natFamily is what the tables of the two families differ in: the address and where it
// sits in the network header.
type natFamily struct {
	table              nftables.TableFamily
	proto              byte   // NFPROTO_*, of the nat expression
	addr               []byte // the service address
	saddrOff, daddrOff uint32
}

var (
	natIPv4 = natFamily{nftables.TableFamilyIPv4, unix.NFPROTO_IPV4, serviceIP[:], 12, 16}
	natIPv6 = natFamily{nftables.TableFamilyIPv6, unix.NFPROTO_IPV6, serviceIP6[:], 8, 24}
)

// natFamilies returns the families of the tables installNAT makes: IPv4, and IPv6 when the
// sandbox has the IPv6 listener.
func natFamilies(v6 bool) []natFamily {
	if v6 {
		return []natFamily{natIPv4, natIPv6}
	}
	return []natFamily{natIPv4}
}

// installNAT installs, over a connection to the sandbox's netns, the table that sends
// 127.0.0.11:53 to the ports dnsd listens on, and with v6 its twin for
// [fd62:6572:7468::11]:53 (same ports, same rules, "table ip6 berth-dns"):
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
// Both are installed in one batch, so a sandbox never has one without the other. An
// existing table (from an earlier daemon run, with other ports) is replaced in the same
// batch, so there is no moment without a rule and no "already exists" failure (moby #45646).
// Without v6 the ip6 table is left as it is: the sandbox has no address for it to lead to.
func installNAT(c *nftables.Conn, udpPort, tcpPort uint16, v6 bool) error {
	for _, f := range natFamilies(v6) {
		t := &nftables.Table{Name: natTable, Family: f.table}
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
				Exprs: f.rule(expr.NATTypeDestNAT, p.proto, dnsPort, p.port)})
			c.AddRule(&nftables.Rule{Table: t, Chain: post,
				Exprs: f.rule(expr.NATTypeSourceNAT, p.proto, p.port, dnsPort)})
		}
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

// readNAT reads the berth-dns tables in c's netns and returns the UDP and TCP ports they
// redirect 127.0.0.11:53 (and with v6 [fd62:6572:7468::11]:53) to, if they are exactly
// the tables installNAT makes for them (what a daemon that stopped or died leaves behind).
// Anything else (no table, only the IPv4 one where both belong, tables leading to different
// ports, other chains or rules, someone's edits) is not ok, and the caller installs the
// tables afresh.
func readNAT(c *nftables.Conn, v6 bool) (p natPorts, ok bool) {
	for i, f := range natFamilies(v6) {
		got, ok := f.read(c)
		if !ok || i > 0 && got != p {
			return natPorts{}, false
		}
		p = got
	}
	return p, true
}

// read reads the table of family f; see readNAT.
func (f natFamily) read(c *nftables.Conn) (p natPorts, ok bool) {
	chains, err := c.ListChainsOfTableFamily(f.table)
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
	t := &nftables.Table{Name: natTable, Family: f.table}
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
			!reflect.DeepEqual(out[i].Exprs, f.rule(expr.NATTypeDestNAT, proto, dnsPort, ports[i])) ||
			!reflect.DeepEqual(post[i].Exprs, f.rule(expr.NATTypeSourceNAT, proto, ports[i], dnsPort)) {
			return p, false
		}
	}
	return natPorts{udp: ports[0], tcp: ports[1]}, true
}

// rule matches the service address (as destination for dnat, as source for snat), proto,
// and match as the transport header's destination or source port, and translates to the
// service address and port to.
func (f natFamily) rule(typ expr.NATType, proto byte, match, to uint16) []expr.Any {
	addrOff, portOff := f.daddrOff, uint32(2)
	if typ == expr.NATTypeSourceNAT {
		addrOff, portOff = f.saddrOff, 0
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: addrOff, Len: uint32(len(f.addr))},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: f.addr},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: portOff, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(match)},
		&expr.Immediate{Register: 1, Data: f.addr},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(to)},
		&expr.NAT{Type: typ, Family: uint32(f.proto),
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

// deleteNAT removes both tables from the netns open at fd; tables that are already gone
// are fine. One batch: each table is made first if missing, so neither delete can fail for
// its absence.
func deleteNAT(fd int) error {
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	for _, f := range natFamilies(true) {
		t := &nftables.Table{Name: natTable, Family: f.table}
		c.AddTable(t)
		c.DelTable(t)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("remove nftables table %s: %w", natTable, err)
	}
	return nil
}
