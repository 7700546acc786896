package dnsd

import "encoding/binary"

// Wire-format helpers of the relay: checking an upstream's reply and building a failure
// reply from the query's bytes, without unpacking either into a dns.Msg.

// replyMatches reports whether reply answers query (its header and question) sent with id:
// QR set, the same ID, and the same question (name case-insensitively), or no question at
// all in an error reply (FORMERR, NOTIMP from old servers). Nothing past the question is
// parsed: the reply is relayed as it came.
func replyMatches(reply []byte, id uint16, query []byte) bool {
	if len(reply) < minQuery || binary.BigEndian.Uint16(reply) != id || reply[2]&0x80 == 0 {
		return false
	}
	switch binary.BigEndian.Uint16(reply[4:]) {
	case 0:
		return reply[3]&0xF != 0
	case 1:
	default:
		return false
	}
	if len(reply) < len(query) {
		return false
	}
	// query's question is plain labels (checked by parseQuery, or packed by miekg, which
	// never compresses the first name), so its length bytes tell where labels are.
	for i := minQuery; i < len(query)-4; {
		l := int(query[i])
		if reply[i] != query[i] {
			return false
		}
		for j := i + 1; j <= i+l; j++ {
			if lower(reply[j]) != lower(query[j]) {
				return false
			}
		}
		i += l + 1
	}
	return string(reply[len(query)-4:len(query)]) == string(query[len(query)-4:])
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// questionEnd returns the offset past the question of a packed query with one question
// (the end of its name, type and class).
func questionEnd(pkt []byte) (int, bool) {
	off := minQuery
	for off < len(pkt) {
		l := int(pkt[off])
		if l == 0 {
			off += 5
			return off, off <= len(pkt)
		}
		if l > 63 {
			return 0, false
		}
		off += l + 1
	}
	return 0, false
}

// appendFailure appends the reply failure(r, rcode) packs to, for the query pkt read by
// parseQuery: ID, QR, opcode QUERY, RD and CD copied, RA as failureRA says, the question
// as asked, and the OPT echoed (size 1232, DO copied) when the query had one.
func appendFailure(out, pkt []byte, q fastQuery, rcode int) []byte {
	flags := flagQR | binary.BigEndian.Uint16(pkt[2:])&(flagRD|flagCD) | uint16(rcode&0xF)
	if failureRA(rcode) {
		flags |= flagRA
	}
	out = binary.BigEndian.AppendUint16(out, binary.BigEndian.Uint16(pkt))
	out = binary.BigEndian.AppendUint16(out, flags)
	out = append(out, 0, 1, 0, 0, 0, 0, 0, byte(btoi(q.edns)))
	out = append(out, pkt[minQuery:q.qend]...)
	if q.edns {
		do := byte(0)
		if q.do {
			do = 0x80
		}
		out = append(out, 0, 0, typeOPT, ednsSize>>8, ednsSize&0xFF, 0, 0, do, 0, 0, 0)
	}
	return out
}
