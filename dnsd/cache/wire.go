package cache

import "encoding/binary"

// Wire-format reading for the cache: the query's key (Get and Put) and the full walk of
// an upstream reply (Put). Nothing here allocates; names are decoded into caller buffers.

// Wire constants (RFC 1035, RFC 6891, RFC 6672).
const (
	headerLen = 12
	maxName   = 255 // longest name in uncompressed wire form, root label included

	typeA     = 1
	typeNS    = 2
	typeMD    = 3
	typeMF    = 4
	typeCNAME = 5
	typeSOA   = 6
	typeMB    = 7
	typeMG    = 8
	typeMR    = 9
	typePTR   = 12
	typeMINFO = 14
	typeMX    = 15
	typeTXT   = 16
	typeRP    = 17
	typeAFSDB = 18
	typeRT    = 21
	typeSIG   = 24
	typePX    = 26
	typeAAAA  = 28
	typeSRV   = 33
	typeNAPTR = 35
	typeKX    = 36
	typeDNAME = 39
	typeOPT   = 41
	typeTKEY  = 249
	typeTSIG  = 250

	optCookie = 10 // RFC 7873
	optEDE    = 15 // RFC 8914

	// DNSSEC (RFC 4034, RFC 5155, RFC 7344) and CAA (RFC 8659), for DO queries and
	// certificate authorities.
	typeDS      = 43
	typeRRSIG   = 46
	typeNSEC    = 47
	typeDNSKEY  = 48
	typeNSEC3   = 50
	typeCDS     = 59
	typeCDNSKEY = 60
	typeCAA     = 257

	flagQR = 0x8000
	flagTC = 0x0200
	flagRD = 0x0100
	flagAD = 0x0020
	flagCD = 0x0010

	rcodeNoError  = 0
	rcodeServfail = 2
	rcodeNXDomain = 3

	// maxTTL is the largest TTL RFC 2181 8 allows; a larger one (top bit set) means 0.
	maxTTL = 1<<31 - 1
)

// Key layout: partition (4 bytes), query bits (1), qtype (2), qclass (2), then the
// question name in wire form, ASCII lowercased.
const (
	keyFixed = 9
	maxKey   = keyFixed + maxName

	bitEDNS = 1 << 0
	bitDO   = 1 << 1
	bitCD   = 1 << 2
)

// queryKey reads query (one question, no answer or authority records, at most one OPT in
// the additional section, nothing after) and writes its key into kb. It returns the key
// and the offset just past the question.
func queryKey(part uint32, query []byte, kb *[maxKey]byte) (key []byte, qend int, ok bool) {
	if len(query) < headerLen {
		return nil, 0, false
	}
	bits := binary.BigEndian.Uint16(query[2:])
	if bits&flagQR != 0 || (bits>>11)&0xF != 0 ||
		binary.BigEndian.Uint16(query[4:]) != 1 || binary.BigEndian.Uint16(query[6:]) != 0 ||
		binary.BigEndian.Uint16(query[8:]) != 0 {
		return nil, 0, false
	}
	binary.BigEndian.PutUint32(kb[0:], part)
	// The question name: plain labels only (no compression pointer can come first).
	off, n := headerLen, keyFixed
	for {
		if off >= len(query) {
			return nil, 0, false
		}
		l := int(query[off])
		if l > 63 || off+1+l > len(query) || n-keyFixed+1+l > maxName-1 {
			return nil, 0, false
		}
		kb[n] = byte(l)
		n++
		off++
		if l == 0 {
			break
		}
		for _, c := range query[off : off+l] {
			kb[n] = lower(c)
			n++
		}
		off += l
	}
	if off+4 > len(query) {
		return nil, 0, false
	}
	copy(kb[5:9], query[off:off+4]) // qtype, qclass
	off += 4
	qend = off
	var qbits byte
	if bits&flagCD != 0 {
		qbits |= bitCD
	}
	for ar := binary.BigEndian.Uint16(query[10:]); ar > 0; ar-- {
		typ, ttl, _, end, ok := skipRR(query, off)
		if !ok {
			return nil, 0, false
		}
		if typ == typeOPT {
			if qbits&bitEDNS != 0 {
				return nil, 0, false // more than one OPT: FORMERR territory, not ours
			}
			qbits |= bitEDNS
			if ttl&0x8000 != 0 {
				qbits |= bitDO
			}
		}
		off = end
	}
	if off != len(query) {
		return nil, 0, false
	}
	kb[4] = qbits
	return kb[:n], qend, true
}

// skipRR reads the fixed part of the record at off (its owner name checked as readName
// does) and returns its type, TTL, the offset of its rdata and the offset past it.
func skipRR(msg []byte, off int) (typ uint16, ttl uint32, rdata, end int, ok bool) {
	off, ok = skipName(msg, off)
	if !ok || off+10 > len(msg) {
		return 0, 0, 0, 0, false
	}
	typ = binary.BigEndian.Uint16(msg[off:])
	ttl = binary.BigEndian.Uint32(msg[off+4:])
	rdata = off + 10
	end = rdata + int(binary.BigEndian.Uint16(msg[off+8:]))
	if end > len(msg) {
		return 0, 0, 0, 0, false
	}
	return typ, ttl, rdata, end, true
}

// skipName checks the name at off and returns the offset past it in the message.
func skipName(msg []byte, off int) (int, bool) {
	_, next, ok := readName(msg, off, nil)
	return next, ok
}

// readName decodes the possibly compressed name at off, appending its uncompressed wire
// form, ASCII lowercased, to dst (nil dst: only checked). Every pointer must point
// strictly before the name that uses it (no loops, no forward references) and the whole
// name must fit in 255 bytes; 0x40 and 0x80 label types are refused, as miekg refuses
// them. next is the offset just past the name where it starts.
func readName(msg []byte, off int, dst []byte) (out []byte, next int, ok bool) {
	out, next = dst, -1
	total, limit := 0, off // limit: pointers must point below it
	for {
		if off >= len(msg) {
			return nil, 0, false
		}
		l := int(msg[off])
		switch l & 0xC0 {
		case 0x00:
		case 0xC0:
			if off+1 >= len(msg) {
				return nil, 0, false
			}
			ptr := int(binary.BigEndian.Uint16(msg[off:]) & 0x3FFF)
			if next < 0 {
				next = off + 2
			}
			if ptr >= limit {
				return nil, 0, false
			}
			off, limit = ptr, ptr
			continue
		default:
			return nil, 0, false
		}
		if total += l + 1; total > maxName || off+1+l > len(msg) {
			return nil, 0, false
		}
		if dst != nil {
			out = append(out, byte(l))
			for _, c := range msg[off+1 : off+1+l] {
				out = append(out, lower(c))
			}
		}
		off += l + 1
		if l == 0 {
			if next < 0 {
				next = off
			}
			return out, next, true
		}
	}
}

// isOrBelow reports whether name is ancestor or a name below it, both in uncompressed,
// lowercased wire form.
func isOrBelow(name, ancestor []byte) bool {
	for off := 0; off < len(name); off += int(name[off]) + 1 {
		if string(name[off:]) == string(ancestor) {
			return true
		}
	}
	return false
}

// rdataOK checks the rdata msg[rdata:end] of a record of type typ. Rdata that can hold a
// compressed name (the RFC 1035 types with names, and those miekg also compresses or
// decompresses: RP, AFSDB, RT, PX, SRV, NAPTR's replacement, KX, DNAME, NSEC's next name,
// RRSIG's signer) is walked the way miekg unpacks it: names inside the message and ending
// where the layout says, fixed lengths, character-strings filling the rdata. So are the
// few fixed-layout types the cache always checked (A, AAAA, TXT, CAA, DS, DNSKEY, NSEC3).
// Every other type (HTTPS, SVCB, TLSA, SSHFP, LOC, URI, ... and types not yet assigned)
// is opaque bytes within rdlength: RFC 3597 4 forbids compression in its rdata, and Put
// serves it at the same offset byte for byte, so it unpacks exactly as the upstream's
// reply did. Refused: the transaction types whose records belong to one exchange (SIG,
// which carries SIG(0), TKEY, TSIG) and the query-only types (RFC 6895 3.1: 128-255).
func rdataOK(msg []byte, typ uint16, rdata, end int) bool {
	n := end - rdata
	switch typ {
	case typeSIG, typeTKEY, typeTSIG:
		return false
	case typeOPT:
		return optOK(msg[rdata:end])
	}
	if 128 <= typ && typ <= 255 {
		return false
	}
	if n == 0 {
		// Empty rdata is an update's deletion, or a type's own business (RFC 3597 and
		// NULL allow it); miekg unpacks any type with rdlength 0 as empty.
		return !hasName(typ) && typ != typeA && typ != typeAAAA
	}
	name := func(off int) (int, bool) { return skipName(msg[:end], off) }
	switch typ {
	case typeA:
		return n == 4
	case typeAAAA:
		return n == 16
	case typeNS, typeMD, typeMF, typeCNAME, typeMB, typeMG, typeMR, typePTR, typeDNAME:
		next, ok := name(rdata)
		return ok && next == end
	case typeMX, typeAFSDB, typeRT, typeKX: // preference, then a name
		next, ok := name(rdata + 2)
		return n > 2 && ok && next == end
	case typeSRV:
		next, ok := name(rdata + 6)
		return n > 6 && ok && next == end
	case typeMINFO, typeRP: // two names
		next, ok := name(rdata)
		if !ok {
			return false
		}
		next, ok = name(next)
		return ok && next == end
	case typePX: // preference, then two names
		if n <= 2 {
			return false
		}
		next, ok := name(rdata + 2)
		if !ok {
			return false
		}
		next, ok = name(next)
		return ok && next == end
	case typeSOA:
		next, ok := name(rdata)
		if !ok {
			return false
		}
		next, ok = name(next)
		return ok && next+20 == end
	case typeNAPTR: // order, preference, flags, services, regexp, then the replacement
		off := rdata + 4
		for range 3 {
			if off >= end {
				return false
			}
			off += 1 + int(msg[off])
		}
		if off >= end {
			return false
		}
		next, ok := name(off)
		return ok && next == end
	case typeDS, typeCDS, typeDNSKEY, typeCDNSKEY: // fixed 4 bytes, then opaque
		return n >= 4
	case typeRRSIG: // 18 fixed bytes, the signer's name, the signature
		_, ok := name(rdata + 18)
		return n > 18 && ok
	case typeNSEC:
		next, ok := name(rdata)
		return ok && typeBitmapOK(msg[next:end])
	case typeNSEC3: // hash, flags, iterations, salt, next hashed owner, type bitmap
		off := rdata + 4
		if off >= end {
			return false
		}
		if off += 1 + int(msg[off]); off >= end {
			return false
		}
		if off += 1 + int(msg[off]); off > end {
			return false
		}
		return typeBitmapOK(msg[off:end])
	case typeCAA: // flags, a tag as a character-string, the value
		return n >= 2 && rdata+2+int(msg[rdata+1]) <= end
	case typeTXT:
		for off := rdata; off < end; off += int(msg[off]) + 1 {
			if off+1+int(msg[off]) > end {
				return false
			}
		}
		return true
	}
	return true
}

// hasName reports whether rdata of type typ holds a name rdataOK walks.
func hasName(typ uint16) bool {
	switch typ {
	case typeNS, typeMD, typeMF, typeCNAME, typeSOA, typeMB, typeMG, typeMR, typePTR,
		typeMINFO, typeMX, typeRP, typeAFSDB, typeRT, typePX, typeSRV, typeNAPTR, typeKX,
		typeDNAME, typeNSEC, typeRRSIG:
		return true
	}
	return false
}

// optOK checks an OPT's options: opaque ones (NSID, DAU, DHU, N3U, PADDING), EDE (an
// info code, then text) and at most one COOKIE, which Put strips. ECS is refused (the
// answer may be per client subnet), and so is anything else miekg parses field by field.
func optOK(opts []byte) bool {
	cookies := 0
	for off := 0; off < len(opts); {
		if off+4 > len(opts) {
			return false
		}
		code := binary.BigEndian.Uint16(opts[off:])
		l := int(binary.BigEndian.Uint16(opts[off+2:]))
		if off+4+l > len(opts) {
			return false
		}
		switch code {
		case 3, 5, 6, 7, 12: // NSID, DAU, DHU, N3U, PADDING: opaque bytes
		case optEDE:
			if l < 2 {
				return false
			}
		case optCookie:
			if cookies++; cookies > 1 {
				return false
			}
		default:
			return false
		}
		off += 4 + l
	}
	return true
}

// findCookie returns the offset and length (header included) of the COOKIE option in
// the OPT rdata opts that optOK accepted, or 0, 0.
func findCookie(opts []byte) (off, n int) {
	for off < len(opts) {
		l := 4 + int(binary.BigEndian.Uint16(opts[off+2:]))
		if binary.BigEndian.Uint16(opts[off:]) == optCookie {
			return off, l
		}
		off += l
	}
	return 0, 0
}

// typeBitmapOK checks an NSEC or NSEC3 type bitmap as miekg does: windows in increasing
// order, each of 1 to 32 bytes, filling b exactly.
func typeBitmapOK(b []byte) bool {
	last := -1
	for off := 0; off < len(b); {
		if off+2 > len(b) {
			return false
		}
		window, l := int(b[off]), int(b[off+1])
		if window <= last || l == 0 || l > 32 || off+2+l > len(b) {
			return false
		}
		last = window
		off += 2 + l
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
