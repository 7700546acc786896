package dnsd

import (
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"runtime/debug"
	"unsafe"

	"berth/resolver"
)

// The fast path answers the common query (one question, class IN, at most an EDNS0 OPT)
// for a name the resolver owns, straight from the datagram bytes into a reused reply
// buffer. It builds exactly the reply the general path would (localReply, then Truncate
// and Pack): same header bits, the question copied as asked, TTL 600, shuffled addresses,
// the OPT echoed with the DO bit, as many answers as fit with TC set otherwise.
// TestFastMatchesGeneral checks that, message for message (the bytes differ only in
// name compression). Anything it does
// not recognise goes to the general path unchanged, so it can only be faster, never
// different.

// scratch is the fast path's reusable memory, owned by one reader goroutine.
type scratch struct {
	name  [maxTextName]byte // the question name as text, for the resolver
	addrs []netip.Addr      // Result.Addrs
	out   []byte            // the reply
}

// maxTextName bounds the question name in text form: 255 wire bytes give at most 254
// characters with the trailing dot.
const maxTextName = 256

// Wire constants (RFC 1035, RFC 6891).
const (
	classINET  = 1
	typeOPT    = 41
	ptrToQName = 0xC00C // compression pointer to the question name at offset 12
	optLen     = 11     // OPT RR with root name and no options
)

// fastQuery is what the fast path reads from a datagram.
type fastQuery struct {
	qend    int    // offset just past the question section
	qtype   uint16 // question type
	nameLen int    // length of the text name in scratch.name
	edns    bool   // an OPT record was present
	udpSize uint16 // its advertised size
	do      bool   // its DO bit
}

// verdict is what the UDP reader does with a datagram.
type verdict uint8

const (
	toGeneral verdict = iota // miekg's checks, then ServeDNS on a goroutine
	answered                 // the reply is ready
	toRelay                  // a plain query for a name resolver does not own: forward it
)

// classify answers pkt if it can (answered, with the reply valid until the next call),
// or says where it goes. q is the parsed query for answered and toRelay. A panic here
// is logged and sends the datagram to the general path.
func (h *handler) classify(pkt []byte, sc *scratch) (reply []byte, v verdict, q fastQuery) {
	defer func() {
		if p := recover(); p != nil {
			h.s.cfg.Log.Error("dns fast path panic", "sandbox", h.id, "panic", p, "stack", string(debug.Stack()))
			reply, v = nil, toGeneral
		}
	}()
	q, ok := parseQuery(pkt, sc)
	if !ok || h.s.cfg.Log.Enabled(h.ctx, slog.LevelDebug) { // per-query debug lines come from ServeDNS
		return nil, toGeneral, q
	}
	// The resolver keeps no reference to the name (a Result holds store strings only), so
	// it may look at scratch memory that the next datagram overwrites.
	qname := unsafe.String(&sc.name[0], q.nameLen)
	res := resolver.LookupAppend(sc.addrs[:0], h.s.cfg.Store.Snapshot(), h.id, qname, q.qtype)
	if res.Kind == resolver.NotOurs {
		if (q.qtype == resolver.TypeA || q.qtype == resolver.TypeAAAA) && resolver.SingleLabel(qname) {
			return nil, toGeneral, q // the ndots rule (resolver.NDots), which ServeDNS applies
		}
		return nil, toRelay, q
	}
	if cap(res.Addrs) > cap(sc.addrs) {
		sc.addrs = res.Addrs[:0] // keep the grown buffer
	}
	if reply, ok = buildReply(pkt, q, res, sc); !ok {
		return nil, toGeneral, q
	}
	return reply, answered, q
}

// parseQuery accepts only a plain query: QR clear, opcode QUERY, one question of class IN
// whose name is plain letters, digits, '-' and '_' (anything else is escaped in text form
// and left to miekg), no answer or authority records, and at most one additional record,
// an OPT of version 0 at the end of the datagram.
func parseQuery(pkt []byte, sc *scratch) (q fastQuery, ok bool) {
	bits := binary.BigEndian.Uint16(pkt[2:])
	if bits&flagQR != 0 || (bits>>11)&0xF != 0 ||
		binary.BigEndian.Uint16(pkt[4:]) != 1 || binary.BigEndian.Uint16(pkt[6:]) != 0 ||
		binary.BigEndian.Uint16(pkt[8:]) != 0 {
		return q, false
	}
	arcount := binary.BigEndian.Uint16(pkt[10:])
	if arcount > 1 {
		return q, false
	}
	off, n := minQuery, 0
	for {
		if off >= len(pkt) {
			return q, false
		}
		l := int(pkt[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(pkt) || n+l+1 > maxTextName-1 {
			return q, false // pointers, extended labels, truncated or over-long names
		}
		for _, c := range pkt[off : off+l] {
			if !plain(c) {
				return q, false
			}
			sc.name[n] = c
			n++
		}
		sc.name[n] = '.'
		n++
		off += l
	}
	if n == 0 || off+4 > len(pkt) {
		return q, false // the root, or no type and class
	}
	q.qtype = binary.BigEndian.Uint16(pkt[off:])
	if binary.BigEndian.Uint16(pkt[off+2:]) != classINET {
		return q, false
	}
	off += 4
	q.qend, q.nameLen = off, n
	if arcount == 0 {
		return q, off == len(pkt)
	}
	// OPT: root name, type 41, class = UDP size, TTL = extended rcode, version, flags.
	if off+optLen > len(pkt) || pkt[off] != 0 || binary.BigEndian.Uint16(pkt[off+1:]) != typeOPT || pkt[off+6] != 0 {
		return q, false // not an OPT, or a version other than 0 (BADVERS, general path)
	}
	q.edns = true
	q.udpSize = binary.BigEndian.Uint16(pkt[off+3:])
	q.do = pkt[off+7]&0x80 != 0
	rdlen := int(binary.BigEndian.Uint16(pkt[off+9:]))
	return q, off+optLen+rdlen == len(pkt)
}

// plain reports whether miekg prints c in a name as is (no escape) and it is a usual
// hostname byte.
func plain(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// buildReply writes the reply to q into sc.out.
func buildReply(pkt []byte, q fastQuery, res resolver.Result, sc *scratch) ([]byte, bool) {
	var rdlen int
	switch {
	case res.Kind != resolver.Found:
	case q.qtype == resolver.TypeA:
		rdlen = 4
		res.Addrs = keep(res.Addrs, netip.Addr.Is4)
	case q.qtype == resolver.TypeAAAA:
		rdlen = 16
		res.Addrs = keep(res.Addrs, func(a netip.Addr) bool { return a.Is6() && !a.Is4In6() })
	case q.qtype == resolver.TypePTR && res.Target != "":
		var ok bool
		if rdlen, ok = wireNameLen(res.Target); !ok {
			return nil, false // a label miekg would refuse to pack: SERVFAIL there
		}
	}
	size := 512 // bufsize: 512 without EDNS, the advertised size (at least 512) with it
	if q.edns {
		size = max(int(q.udpSize), 512)
	}
	total, fit := 0, 0 // answers to send, and how many fit
	switch rdlen {
	case 0:
	case 4, 16:
		total = len(res.Addrs)
	default:
		total = 1
	}
	fixed := q.qend + btoi(q.edns)*optLen
	if rr := 12 + rdlen; total > 0 && fixed+rr <= size {
		fit = min(total, (size-fixed)/rr)
	}

	out := sc.out[:0]
	flags := flagQR | flagRA | binary.BigEndian.Uint16(pkt[2:])&(flagRD|flagCD)
	if fit < total {
		flags |= flagTC
	}
	out = binary.BigEndian.AppendUint16(out, binary.BigEndian.Uint16(pkt[0:]))
	out = binary.BigEndian.AppendUint16(out, flags)
	out = binary.BigEndian.AppendUint16(out, 1)
	out = binary.BigEndian.AppendUint16(out, uint16(fit))
	out = binary.BigEndian.AppendUint16(out, 0)
	out = binary.BigEndian.AppendUint16(out, uint16(btoi(q.edns)))
	out = append(out, pkt[minQuery:q.qend]...) // the question, case as asked
	if fit > 0 {
		if rdlen == 4 || rdlen == 16 {
			addrs := res.Addrs
			rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
			for _, a := range addrs[:fit] {
				out = appendRRHeader(out, q.qtype, rdlen)
				if rdlen == 4 {
					b := a.As4()
					out = append(out, b[:]...)
				} else {
					b := a.As16()
					out = append(out, b[:]...)
				}
			}
		} else {
			out = appendRRHeader(out, q.qtype, rdlen)
			out = appendWireName(out, res.Target)
		}
	}
	if q.edns {
		do := byte(0)
		if q.do {
			do = 0x80
		}
		out = append(out, 0, 0, typeOPT, ednsSize>>8, ednsSize&0xFF, 0, 0, do, 0, 0, 0)
	}
	sc.out = out
	return out, true
}

// appendRRHeader appends an answer's owner (a pointer to the question name), type, class
// IN, TTL 600 and rdata length.
func appendRRHeader(out []byte, qtype uint16, rdlen int) []byte {
	out = binary.BigEndian.AppendUint16(out, ptrToQName)
	out = binary.BigEndian.AppendUint16(out, qtype)
	out = binary.BigEndian.AppendUint16(out, classINET)
	out = binary.BigEndian.AppendUint32(out, localTTL)
	return binary.BigEndian.AppendUint16(out, uint16(rdlen))
}

// wireNameLen is the uncompressed wire length of a fully qualified text name made of plain
// labels of 1 to 63 bytes; ok is false for anything else.
func wireNameLen(name string) (int, bool) {
	if len(name) < 2 || name[len(name)-1] != '.' || len(name)+1 > 255 {
		return 0, false
	}
	label := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '.':
			if label == 0 {
				return 0, false
			}
			label = 0
		case plain(c):
			if label++; label > 63 {
				return 0, false
			}
		default:
			return 0, false
		}
	}
	return len(name) + 1, true
}

// appendWireName appends a name checked by wireNameLen in wire form.
func appendWireName(out []byte, name string) []byte {
	start := 0
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			out = append(out, byte(i-start))
			out = append(out, name[start:i]...)
			start = i + 1
		}
	}
	return append(out, 0)
}

// keep filters addrs in place.
func keep(addrs []netip.Addr, ok func(netip.Addr) bool) []netip.Addr {
	out := addrs[:0]
	for _, a := range addrs {
		if ok(a) {
			out = append(out, a)
		}
	}
	return out
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
