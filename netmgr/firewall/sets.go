package firewall

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"golang.org/x/sys/unix"
)

// Everything that grows with the networks and ports lives in named sets and maps, looked
// up by a fixed number of rules: one network or port is a few set elements, and a change
// is sent as the elements added and removed (see update), never as rules.

// kind is the type of one field of a set's key or a map's data.
type kind int

const (
	kIfname  kind = iota // interface name, NUL-padded to IFNAMSIZ
	kAddr                // ipv4_addr or ipv6_addr, after the set's family
	kProto               // inet_proto: one byte
	kService             // inet_service: a port, big-endian
)

// set is a named set (or map, with data) of one table. Its elements are kept sorted and
// unique by key, so two renderings of one State compare element by element.
type set struct {
	name     string
	key      []kind
	data     []kind // map data; nil for a set
	interval bool   // the key's last field is an address range (a subnet)
	v4       bool   // family of the kAddr fields
	elems    []elem
}

// elem is one element: its key (the start of the range in interval sets), the last
// address of the range (interval sets only) and the map data.
type elem struct {
	key, keyEnd, val []byte
}

func compareElems(a, b elem) int {
	return cmp.Or(bytes.Compare(a.key, b.key), bytes.Compare(a.keyEnd, b.keyEnd), bytes.Compare(a.val, b.val))
}

// add queues an element; see finish.
func (s *set) add(key, keyEnd, val []byte) {
	s.elems = append(s.elems, elem{key: key, keyEnd: keyEnd, val: val})
}

// finish sorts the elements and drops repeated keys, keeping the first added: a map key
// given twice behaves as the first of two matching rules would, and the kernel would
// refuse the second element.
func (s *set) finish() {
	slices.SortStableFunc(s.elems, func(a, b elem) int {
		return cmp.Or(bytes.Compare(a.key, b.key), bytes.Compare(a.keyEnd, b.keyEnd))
	})
	s.elems = slices.CompactFunc(s.elems, func(a, b elem) bool {
		return bytes.Equal(a.key, b.key) && bytes.Equal(a.keyEnd, b.keyEnd)
	})
	if s.interval && len(s.key) == 1 {
		s.elems = dropNested(s.elems)
	}
}

// dropNested removes ranges inside an earlier one from a sorted single-field interval set:
// the kernel's rbtree refuses overlapping ranges, and a range inside another adds nothing.
func dropNested(es []elem) []elem {
	out := es[:0]
	for _, e := range es {
		if n := len(out); n > 0 && bytes.Compare(e.key, out[n-1].keyEnd) <= 0 {
			continue
		}
		out = append(out, e)
	}
	return out
}

func (s *set) isMap() bool { return len(s.data) > 0 }

func (s *set) datatype(ks []kind) nftables.SetDatatype {
	ts := make([]nftables.SetDatatype, len(ks))
	for i, k := range ks {
		switch k {
		case kIfname:
			ts[i] = nftables.TypeIFName
		case kAddr:
			ts[i] = nftables.TypeIP6Addr
			if s.v4 {
				ts[i] = nftables.TypeIPAddr
			}
		case kProto:
			ts[i] = nftables.TypeInetProto
		case kService:
			ts[i] = nftables.TypeInetService
		}
	}
	if len(ts) == 1 {
		return ts[0]
	}
	return nftables.MustConcatSetType(ts...)
}

// nft is the set as the library declares it in table t.
func (s *set) nft(t *nftables.Table) *nftables.Set {
	ns := &nftables.Set{Table: t, Name: s.name, KeyType: s.datatype(s.key),
		Interval: s.interval, Concatenation: len(s.key) > 1}
	if len(s.key) == 1 && s.key[0] == kIfname {
		// The key byte order is only a note for nft (user data). nft takes strings as
		// host-endian; without the note it prints interface names as "".
		ns.KeyByteOrder = binaryutil.NativeEndian
	}
	if s.isMap() {
		ns.IsMap, ns.DataType = true, s.datatype(s.data)
	}
	return ns
}

// kernel is e as the kernel stores it. A range of a concatenation (pipapo) is one element
// with a key end; a range of a single field (rbtree) is a start element and an
// interval-end element at the address after the range, left out when the range runs to
// the end of the address space.
func (s *set) kernel(e elem) []nftables.SetElement {
	if !s.interval || len(s.key) > 1 {
		return []nftables.SetElement{{Key: e.key, KeyEnd: e.keyEnd, Val: e.val}}
	}
	out := []nftables.SetElement{{Key: e.key, Val: e.val}}
	if next, ok := addrAfter(e.keyEnd); ok {
		out = append(out, nftables.SetElement{Key: next, IntervalEnd: true})
	}
	return out
}

// addrAfter is b+1 as a big-endian number; ok is false if b is all ones.
func addrAfter(b []byte) ([]byte, bool) {
	n := slices.Clone(b)
	for i := len(n) - 1; i >= 0; i-- {
		n[i]++
		if n[i] != 0 {
			return n, true
		}
	}
	return nil, false
}

// Field encodings. Each field of a concatenation takes a multiple of 4 bytes (one or more
// 32-bit registers), as the kernel loads them.

func ifnameKey(name string) []byte { return ifnameData(name) }

func protoKey(proto string) []byte {
	if proto == "udp" {
		return []byte{unix.IPPROTO_UDP, 0, 0, 0}
	}
	return []byte{unix.IPPROTO_TCP, 0, 0, 0}
}

func serviceKey(port uint16) []byte { return []byte{byte(port >> 8), byte(port), 0, 0} }

// lastAddr is the last address of p (masked).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// String renders s as nft lists it (elements in key order; nft's own order may differ).
func (s *set) String() string {
	var b strings.Builder
	word, typ := "set", s.datatype(s.key).Name
	if s.isMap() {
		word, typ = "map", typ+" : "+s.datatype(s.data).Name
	}
	fmt.Fprintf(&b, "\t%s %s {\n\t\ttype %s\n", word, s.name, typ)
	if s.interval {
		b.WriteString("\t\tflags interval\n")
	}
	if len(s.elems) > 0 {
		texts := make([]string, len(s.elems))
		for i, e := range s.elems {
			texts[i] = s.elemString(e)
		}
		fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(texts, ", "))
	}
	b.WriteString("\t}\n")
	return b.String()
}

func (s *set) elemString(e elem) string {
	t := s.fieldsString(s.key, e.key, e.keyEnd)
	if s.isMap() {
		t += " : " + s.fieldsString(s.data, e.val, nil)
	}
	return t
}

// fieldsString renders concatenated fields; with end set, address fields are ranges.
func (s *set) fieldsString(ks []kind, b, end []byte) string {
	parts := make([]string, len(ks))
	off := 0
	for i, k := range ks {
		n := s.fieldLen(k)
		v := b[off : off+n]
		switch k {
		case kIfname:
			parts[i] = strconv.Quote(string(bytes.TrimRight(v, "\x00")))
		case kAddr:
			a, _ := netip.AddrFromSlice(v)
			parts[i] = a.String()
			if end != nil {
				last, _ := netip.AddrFromSlice(end[off : off+n])
				parts[i] = rangeString(a, last)
			}
		case kProto:
			parts[i] = map[byte]string{unix.IPPROTO_TCP: "tcp", unix.IPPROTO_UDP: "udp"}[v[0]]
		case kService:
			parts[i] = strconv.Itoa(int(binary.BigEndian.Uint16(v)))
		}
		off += n
	}
	return strings.Join(parts, " . ")
}

func (s *set) fieldLen(k kind) int {
	switch k {
	case kIfname:
		return unix.IFNAMSIZ
	case kAddr:
		if s.v4 {
			return 4
		}
		return 16
	}
	return 4
}

// rangeString renders first-last as a prefix (as nft does), or as a range.
func rangeString(first, last netip.Addr) string {
	for bits := first.BitLen(); bits >= 0; bits-- {
		p := netip.PrefixFrom(first, bits)
		if p.Masked().Addr() == first && lastAddr(p) == last {
			if bits == first.BitLen() {
				return first.String()
			}
			return p.String()
		}
	}
	return first.String() + "-" + last.String()
}
