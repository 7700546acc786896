package firewall

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// rule is one nftables rule built as expressions and, in step, as nft syntax. Every
// builder method appends to both, so the text shown in tests and golden files is the rule
// that is installed.
type rule struct {
	exprs []expr.Any
	text  []string
}

func newRule() *rule { return &rule{} }

func (r *rule) add(text string, e ...expr.Any) *rule {
	r.exprs = append(r.exprs, e...)
	r.text = append(r.text, text)
	return r
}

func (r *rule) String() string { return strings.Join(r.text, " ") }

// All matches load into register 1; dnat also uses register 2 for the port.
const reg1, reg2 = 1, 2

// ifnameData is an interface name as the kernel compares it: NUL-padded to IFNAMSIZ.
func ifnameData(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func cmpOp(eq bool) (expr.CmpOp, string) {
	if eq {
		return expr.CmpOpEq, ""
	}
	return expr.CmpOpNeq, "!= "
}

func (r *rule) meta(key expr.MetaKey, word string, eq bool, name string) *rule {
	op, neg := cmpOp(eq)
	return r.add(fmt.Sprintf("%s %s%q", word, neg, name),
		&expr.Meta{Key: key, Register: reg1},
		&expr.Cmp{Op: op, Register: reg1, Data: ifnameData(name)})
}

// iif matches the input interface (iifname NAME or iifname != NAME).
func (r *rule) iif(name string, eq bool) *rule {
	return r.meta(expr.MetaKeyIIFNAME, "iifname", eq, name)
}

// oif matches the output interface.
func (r *rule) oif(name string, eq bool) *rule {
	return r.meta(expr.MetaKeyOIFNAME, "oifname", eq, name)
}

// etherType matches IPv4 or IPv6 frames (bridge family), as needed before any ip match.
func (r *rule) etherType(v4 bool) *rule {
	typ, word := uint16(unix.ETH_P_IPV6), "ip6"
	if v4 {
		typ, word = unix.ETH_P_IP, "ip"
	}
	return r.add("ether type "+word,
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.BigEndian.PutUint16(typ)})
}

// addr matches the source (src) or destination address against a prefix; a single
// address is a full-length prefix.
func (r *rule) addr(src bool, p netip.Prefix) *rule {
	a := p.Addr()
	word, off, size := "ip", uint32(16), uint32(4)
	if src {
		off = 12
	}
	if !a.Is4() {
		word, off, size = "ip6", 24, 16
		if src {
			off = 8
		}
	}
	dir := "daddr"
	if src {
		dir = "saddr"
	}
	text := fmt.Sprintf("%s %s %s", word, dir, p)
	if p.IsSingleIP() {
		text = fmt.Sprintf("%s %s %s", word, dir, a)
	}
	exprs := []expr.Any{&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: size}}
	if !p.IsSingleIP() {
		exprs = append(exprs, &expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: size,
			Mask: prefixMask(p), Xor: make([]byte, size)})
	}
	exprs = append(exprs, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: p.Masked().Addr().AsSlice()})
	return r.add(text, exprs...)
}

// prefixMask is the network mask of p as bytes.
func prefixMask(p netip.Prefix) []byte {
	n := p.Addr().BitLen() / 8
	m := make([]byte, n)
	for i := range p.Bits() {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// l4port matches the transport protocol and a source (src) or destination port:
// "tcp dport 80".
func (r *rule) l4port(proto string, src bool, port uint16) *rule {
	num, off, dir := byte(unix.IPPROTO_TCP), uint32(2), "dport"
	if proto == "udp" {
		num = unix.IPPROTO_UDP
	}
	if src {
		off, dir = 0, "sport"
	}
	return r.add(fmt.Sprintf("%s %s %d", proto, dir, port),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{num}},
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.BigEndian.PutUint16(port)})
}

// ctBits matches packets whose conntrack key (state or status) has any of mask's bits.
func (r *rule) ctBits(key expr.CtKey, text string, mask uint32) *rule {
	return r.add(text,
		&expr.Ct{Register: reg1, Key: key},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(mask), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)})
}

// established matches replies and related packets (ICMP errors) of known connections.
func (r *rule) established() *rule {
	return r.ctBits(expr.CtKeySTATE, "ct state established,related",
		expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)
}

// ipsDstNAT is IPS_DST_NAT from linux/netfilter/nf_conntrack_common.h.
const ipsDstNAT = 1 << 5

// dnatted matches connections whose destination was translated (by a published port).
func (r *rule) dnatted() *rule { return r.ctBits(expr.CtKeySTATUS, "ct status dnat", ipsDstNAT) }

// localDst matches packets to an address of the current netns (Docker's addrtype LOCAL).
func (r *rule) localDst() *rule {
	return r.add("fib daddr type local",
		&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)})
}

func (r *rule) verdict(k expr.VerdictKind, text string) *rule {
	return r.add(text, &expr.Verdict{Kind: k})
}

func (r *rule) accept() *rule { return r.verdict(expr.VerdictAccept, "accept") }
func (r *rule) drop() *rule   { return r.verdict(expr.VerdictDrop, "drop") }

func (r *rule) masquerade() *rule { return r.add("masquerade", &expr.Masq{}) }

// dnat translates the destination to to:port.
func (r *rule) dnat(to netip.Addr, port uint16) *rule {
	fam := uint32(unix.NFPROTO_IPV4)
	if !to.Is4() {
		fam = unix.NFPROTO_IPV6
	}
	return r.add("dnat to "+netip.AddrPortFrom(to, port).String(),
		&expr.Immediate{Register: reg1, Data: to.AsSlice()},
		&expr.Immediate{Register: reg2, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: fam,
			RegAddrMin: reg1, RegProtoMin: reg2, Specified: true})
}
