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

// field is one field of a set lookup: what it loads, as nft names it, and how many bytes.
type field struct {
	text string
	size uint32
	load func(reg uint32) expr.Any
}

func metaField(key expr.MetaKey, text string, size uint32) field {
	return field{text, size, func(reg uint32) expr.Any { return &expr.Meta{Key: key, Register: reg} }}
}

var (
	iifField     = metaField(expr.MetaKeyIIFNAME, "iifname", unix.IFNAMSIZ)
	oifField     = metaField(expr.MetaKeyOIFNAME, "oifname", unix.IFNAMSIZ)
	l4protoField = metaField(expr.MetaKeyL4PROTO, "meta l4proto", 1)
)

// addrField loads the source (src) or destination address of the family.
func addrField(v4, src bool) field {
	word, off, size := "ip", uint32(16), uint32(4)
	if src {
		off = 12
	}
	if !v4 {
		word, off, size = "ip6", 24, 16
		if src {
			off = 8
		}
	}
	dir := " daddr"
	if src {
		dir = " saddr"
	}
	return field{word + dir, size, func(reg uint32) expr.Any {
		return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: size}
	}}
}

// portField loads the transport header's source (src) or destination port: the same
// offsets in TCP and UDP, so a lookup keyed by l4proto too needs no protocol match.
func portField(src bool) field {
	off, text := uint32(2), "th dport"
	if src {
		off, text = 0, "th sport"
	}
	return field{text, 2, func(reg uint32) expr.Any {
		return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2}
	}}
}

// reg32 is the first 32-bit register (NFT_REG32_00, the same storage as register 1): a
// concatenation is loaded field after field into consecutive 32-bit registers.
const reg32 = 8

// load queues the loads of fs and returns their text ("iifname . oifname").
func (r *rule) load(fs []field) string {
	var off uint32
	texts := make([]string, len(fs))
	for i, f := range fs {
		r.exprs = append(r.exprs, f.load(reg32+off/4))
		off += (f.size + 3) / 4 * 4
		texts[i] = f.text
	}
	return strings.Join(texts, " . ")
}

// in matches packets whose fields are an element of set: "iifname . oifname @pairs".
func (r *rule) in(set string, fs ...field) *rule {
	text := r.load(fs)
	return r.add(text+" @"+set, &expr.Lookup{SourceRegister: reg32, SetName: set})
}

// dnatMap translates the destination to the address and port that the map gives for fs:
// "dnat ip to meta l4proto . th dport map @anyports". Packets without an element pass on.
func (r *rule) dnatMap(v4 bool, set string, fs ...field) *rule {
	text := r.load(fs)
	fam, portReg, word := uint32(unix.NFPROTO_IPV4), uint32(reg32+1), "ip"
	if !v4 {
		fam, portReg, word = unix.NFPROTO_IPV6, reg32+4, "ip6"
	}
	return r.add("dnat "+word+" to "+text+" map @"+set,
		&expr.Lookup{SourceRegister: reg32, DestRegister: reg32, IsDestRegSet: true, SetName: set},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: reg32, RegProtoMin: portReg, Specified: true})
}

// jump continues in chain and comes back after it.
func (r *rule) jump(chain string) *rule {
	return r.add("jump "+chain, &expr.Verdict{Kind: expr.VerdictJump, Chain: chain})
}

// ret leaves the chain (in a base chain: its policy applies).
func (r *rule) ret() *rule { return r.verdict(expr.VerdictReturn, "return") }
