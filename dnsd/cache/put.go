package cache

import (
	"encoding/binary"
	"time"
)

// analysis is what Put learns from walking a reply.
type analysis struct {
	// Offsets of every TTL but the OPT's: the first len(small) in small, the rest in
	// more. small is not a slice of itself: a self-reference would move the analysis
	// (and its array) to the heap on every Put.
	small   [64]uint16
	nsmall  int
	more    []uint16
	ttlCap  uint32 // stored TTLs are at most this
	life    int64  // nanoseconds
	lifeSec uint32

	// The OPT's COOKIE option, which Put leaves out: its offset and length in the reply,
	// and the offset of the OPT's rdlength (0: no cookie).
	cookie, cookieLen, optRdlen int
}

// maxChain bounds the names an answer section may reach from the qname through CNAMEs;
// resolvers give up on longer chains well before.
const maxChain = 16

// analyze walks reply, the upstream's answer to query (whose question ends at qend), and
// fills a; it returns why the reply may not be cached, or "".
func (c *Cache) analyze(a *analysis, query []byte, qend int, reply []byte) string {
	if len(reply) < qend || len(reply) > 65535 {
		return "shorter than the question, or longer than a message"
	}
	if reply[0] != query[0] || reply[1] != query[1] {
		return "ID is not the query's"
	}
	bits := binary.BigEndian.Uint16(reply[2:])
	switch {
	case bits&flagQR == 0:
		return "QR clear"
	case (bits>>11)&0xF != 0:
		return "opcode is not QUERY"
	case bits&flagTC != 0:
		return "truncated"
	case binary.BigEndian.Uint16(reply[4:]) != 1:
		return "not one question"
	}
	// The question: the query's plain labels, case aside, then the same type and class.
	for i := headerLen; i < qend-4; i++ {
		if lower(reply[i]) != lower(query[i]) {
			return "question is not the query's"
		}
	}
	if string(reply[qend-4:qend]) != string(query[qend-4:qend]) {
		return "question type or class is not the query's"
	}
	an := int(binary.BigEndian.Uint16(reply[6:]))
	ns := int(binary.BigEndian.Uint16(reply[8:]))
	ar := int(binary.BigEndian.Uint16(reply[10:]))

	// Names the answer section may own: the qname, then every CNAME target in order.
	// chainBuf is small: the usual chain is one or two names, and Go zeroes it per call;
	// longer chains move names to the heap (earlier slices keep their bytes).
	var chainBuf [2 * 64]byte
	var chain [maxChain][]byte
	var ownerBuf [maxName]byte
	names := lowerName(chainBuf[:0], query[headerLen:qend-4])
	chain[0] = names
	nchain := 1

	var (
		minTTL        uint32 = maxTTL
		soaTTL        uint32
		soaMin        uint32
		haveSOA, opts bool
	)
	off := qend
	for i := 0; i < an+ns+ar; i++ {
		owner, next, ok := readName(reply, off, ownerBuf[:0])
		if !ok || next+10 > len(reply) {
			return "record name or header outside the message"
		}
		typ := binary.BigEndian.Uint16(reply[next:])
		ttlOff := next + 4
		ttl := binary.BigEndian.Uint32(reply[ttlOff:])
		rdata := next + 10
		end := rdata + int(binary.BigEndian.Uint16(reply[next+8:]))
		if end > len(reply) {
			return "rdata outside the message"
		}
		if !rdataOK(reply, typ, rdata, end) {
			return "rdata malformed, of a transaction or meta type, or an EDNS option not cached"
		}
		if typ == typeOPT {
			switch {
			case i < an+ns:
				return "OPT outside the additional section"
			case opts:
				return "more than one OPT"
			case ttl>>24 != 0:
				return "extended rcode"
			case len(owner) != 1:
				return "OPT not owned by the root"
			}
			opts = true
			if o, n := findCookie(reply[rdata:end]); n > 0 {
				if end != len(reply) {
					// Taking bytes out moves everything after them: only the last
					// record's tail can go without breaking an offset another name uses.
					return "COOKIE in an OPT that is not the last record"
				}
				a.cookie, a.cookieLen, a.optRdlen = rdata+o, n, next+8
			}
			off = end
			continue
		}
		if ttl > maxTTL {
			ttl = 0 // RFC 2181 8
		}
		minTTL = min(minTTL, ttl)
		a.addTTL(uint16(ttlOff))
		switch {
		case i < an:
			if !owned(owner, typ, chain[:nchain]) {
				return "answer for a name the question does not reach"
			}
			if typ == typeCNAME {
				if nchain == maxChain {
					return "CNAME chain too long"
				}
				start := len(names)
				names, _, _ = readName(reply, rdata, names)
				chain[nchain] = names[start:len(names):len(names)]
				nchain++
			}
		case i < an+ns:
			if typ == typeSOA && !haveSOA {
				haveSOA = true
				soaTTL = ttl
				soaMin = binary.BigEndian.Uint32(reply[end-4:])
			}
		}
		off = end
	}
	if off != len(reply) {
		return "bytes after the last record"
	}

	switch rcode := bits & 0xF; {
	case rcode == rcodeNoError && an > 0:
		if minTTL == 0 {
			return "a TTL of 0"
		}
		capSec := seconds(c.maxTTL)
		a.lifeSec = min(minTTL, capSec)
		a.ttlCap = capSec
		a.life = int64(a.lifeSec) * int64(time.Second)
	case rcode == rcodeNoError || rcode == rcodeNXDomain:
		if !haveSOA {
			return "negative answer without a SOA (RFC 2308 5)"
		}
		a.lifeSec = min(soaTTL, soaMin, minTTL, seconds(c.maxNegTTL))
		if a.lifeSec == 0 {
			return "a negative lifetime of 0"
		}
		a.ttlCap = a.lifeSec // the SOA's TTL counts down from the lifetime
		a.life = int64(a.lifeSec) * int64(time.Second)
	case rcode == rcodeServfail:
		if c.servfailTTL < 0 {
			return "SERVFAIL caching off"
		}
		a.life = c.servfailTTL
		a.lifeSec = seconds(c.servfailTTL)
		a.ttlCap = a.lifeSec
	default:
		return "rcode not cached"
	}
	return ""
}

func (a *analysis) addTTL(off uint16) {
	if a.nsmall < len(a.small) {
		a.small[a.nsmall] = off
		a.nsmall++
		return
	}
	a.more = append(a.more, off)
}

// ttls is how many TTL offsets addTTL was given; ttl is the i-th.
func (a *analysis) ttls() int { return a.nsmall + len(a.more) }

func (a *analysis) ttl(i int) uint16 {
	if i < a.nsmall {
		return a.small[i]
	}
	return a.more[i-a.nsmall]
}

// owned reports whether an answer record of type typ owned by owner belongs to the
// question: its owner is a name of the chain, or, for a DNAME, an ancestor of one.
func owned(owner []byte, typ uint16, chain [][]byte) bool {
	for _, n := range chain {
		if string(owner) == string(n) || typ == typeDNAME && isOrBelow(n, owner) {
			return true
		}
	}
	return false
}

// lowerName appends the plain-label wire name name, lowercased.
func lowerName(dst, name []byte) []byte {
	for _, c := range name {
		dst = append(dst, lower(c))
	}
	return dst
}

// seconds is d in whole seconds, rounded up, at most maxTTL.
func seconds(d int64) uint32 {
	s := (d + int64(time.Second) - 1) / int64(time.Second)
	return uint32(min(max(s, 0), maxTTL))
}
