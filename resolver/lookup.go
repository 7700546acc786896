// Package resolver owns the meaning of names inside berth sandboxes: which name a sandbox
// may see, what the embedded DNS on 127.0.0.11 answers locally and what it forwards, which
// upstreams it forwards to, and the resolv.conf and hosts files a sandbox gets.
//
// Everything here is a pure function of a *store.Snapshot (plus, for the files, the
// daemon's HostConfig). It has no sockets, no wire format and writes no files: dnsd turns a
// Result into a dns.Msg, netmgr writes the rendered files. The rules follow Docker's
// libnetwork (Engine 25 and later); the deviations are documented where they are made.
package resolver

import (
	"net/netip"
	"strconv"
	"strings"

	"berth/store"
)

// Query types (RFC 1035 numbers), so the resolver needs no wire library.
const (
	TypeA    uint16 = 1
	TypePTR  uint16 = 12
	TypeMX   uint16 = 15
	TypeAAAA uint16 = 28
)

// Kind says what dnsd should do with a query.
type Kind uint8

const (
	NotOurs Kind = iota // forward upstream
	Found               // Addrs (A/AAAA) or Target (PTR) hold the answer
	NoData              // the name is ours but has no record of this type: NOERROR, empty answer, not forwarded
)

// String returns the kind for logs.
func (k Kind) String() string {
	switch k {
	case NotOurs:
		return "not-ours"
	case Found:
		return "found"
	case NoData:
		return "no-data"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Result is the local answer to one question. The embedded DNS never synthesizes NXDOMAIN:
// a name it does not know is NotOurs and goes upstream, like Docker's.
type Result struct {
	Kind    Kind
	Addrs   []netip.Addr // Found, A/AAAA: every address on the answering network, deduplicated, NOT shuffled (dnsd shuffles)
	Target  string       // Found, PTR: "name.network." (fully qualified)
	Network string       // name of the network that answered, for logs and `berth dns query`
	Source  string       // why: "name", "alias", "link", "ptr", "mx", "ndots", "" for NotOurs
}

// Sources of a Result.
const (
	srcName  = "name"  // sandbox name, short ID or hostname
	srcAlias = "alias" // network alias (--network-alias, connect --alias)
	srcLink  = "link"  // --link TARGET:ALIAS of the querying sandbox on a user network
	srcPTR   = "ptr"
	srcMX    = "mx"
	srcNdots = "ndots"
)

// anyFamily asks lookupName whether a name is known at all (MX).
const anyFamily uint16 = 0

// Lookup answers one question asked by sandbox sandboxID, without the ndots rule (NDots
// applies it to the result).
//
// A and AAAA: the trailing dot is ignored and the match is case-insensitive, both in the
// name and in the network part of "name.network" (Docker compares the network part
// case-sensitively; berth does not). For "a.b.c" the candidates are ("a.b.c" on any network),
// ("a.b" on network "c"), ("a" on network "b.c"). For each candidate, the --link aliases of
// the querying sandbox are tried first, then the names on its user-defined networks in
// Docker's order (non-internal first, then by network name). The first network that has the
// name with an address of the family answers, with all its addresses of that family;
// results are never merged across networks. If networks know the name but none has an
// address of the family, the answer is NoData (Docker's resolveName does the same).
//
// PTR: an address held by a sandbox on a network the querying sandbox shares answers
// "<sandbox name>.<network name>."; MX for a name known as above is NoData; every other
// type, and every name not known, is NotOurs.
func Lookup(snap *store.Snapshot, sandboxID, qname string, qtype uint16) Result {
	return LookupAppend(nil, snap, sandboxID, qname, qtype)
}

// NDots applies the ndots rule to res, the answer without it to qname and qtype: an
// unknown single-label A or AAAA name gets NoData (Source "ndots") when ndotsSet (NDotsSet
// for the sandbox) reports true, instead of being forwarded, so the client's stub resolver
// moves on to its search domains (Docker's sb.ndotsSet rule). ndotsSet is called only
// when the rule can change res, so its cost (NDotsSet parses the sandbox's resolv.conf
// options) is paid only for such names, and the name is looked up once.
func NDots(res Result, qname string, qtype uint16, ndotsSet func() bool) Result {
	if res.Kind == NotOurs && (qtype == TypeA || qtype == TypeAAAA) && SingleLabel(qname) && ndotsSet() {
		return Result{Kind: NoData, Source: srcNdots}
	}
	return res
}

// LookupAppend is Lookup, except that the Addrs of a Found A or AAAA result are dst[:0]
// with the addresses appended, instead of a new slice. The DNS server passes a buffer it
// reuses per socket, so a local answer costs no allocation here: every read goes through
// the store's commit-time view (Snapshot.Sandbox, EndpointsByName, ...).
func LookupAppend(dst []netip.Addr, snap *store.Snapshot, sandboxID, qname string, qtype uint16) Result {
	switch qtype {
	case TypeA, TypeAAAA:
		return lookupName(snap, sandboxID, qname, qtype, dst)
	case TypeMX:
		// RFC 5321 implicit MX: a host with an address but no MX gets mail at that
		// address, so a local name answers NOERROR with no records.
		res := lookupName(snap, sandboxID, qname, anyFamily, nil)
		if res.Kind == NotOurs {
			return res
		}
		return Result{Kind: NoData, Network: res.Network, Source: srcMX}
	case TypePTR:
		return lookupPTR(snap, sandboxID, qname)
	}
	return Result{}
}

// SingleLabel reports whether qname is one non-empty label (ignoring a trailing dot).
func SingleLabel(qname string) bool {
	name := strings.TrimSuffix(qname, ".")
	return name != "" && !strings.Contains(name, ".")
}

// lookupName resolves qname for A (TypeA), AAAA (TypeAAAA) or existence (anyFamily). The
// addresses of a result go into dst[:0].
func lookupName(snap *store.Snapshot, sbID, qname string, qtype uint16, dst []netip.Addr) Result {
	name := strings.TrimSuffix(qname, ".")
	if name == "" {
		return Result{}
	}
	var buf [maxScoped]scoped
	scope := querierScope(snap, sbID, buf[:0])
	if len(scope) == 0 {
		return Result{}
	}
	if res, ok := lookupCandidate(snap, scope, name, "", qtype, dst); ok {
		return res
	}
	// Split at each dot from the right: "a.b" on network "c", then "a" on network "b.c".
	for i := len(name) - 2; i > 0; i-- {
		if name[i] != '.' {
			continue
		}
		if res, ok := lookupCandidate(snap, scope, name[:i], name[i+1:], qtype, dst); ok {
			return res
		}
	}
	return Result{}
}

// lookupCandidate tries one (name, network) candidate: links first, then names. netName ""
// means any network of the scope. ok is false when nothing knows the name.
func lookupCandidate(snap *store.Snapshot, scope []scoped, name, netName string, qtype uint16, dst []netip.Addr) (Result, bool) {
	if res, ok := lookupLink(snap, scope, name, netName, qtype, dst); ok {
		return res, true
	}
	var known *store.Network // first network that knows the name, for NoData
	for _, s := range scope {
		if netName != "" && !strings.EqualFold(netName, s.nw.Name) {
			continue
		}
		addrs, src, found := resolveOn(snap, s.nw, name, qtype, dst[:0])
		if !found {
			continue
		}
		if len(addrs) > 0 || qtype == anyFamily {
			return Result{Kind: Found, Addrs: addrs, Network: s.nw.Name, Source: src}, true
		}
		// Known here without an address of the family: Docker goes on to the next
		// network and answers NoData only if none has one.
		if known == nil {
			known = s.nw
		}
	}
	if known != nil {
		return Result{Kind: NoData, Network: known.Name, Source: srcName}, true
	}
	return Result{}, false
}

// lookupLink resolves name as a --link alias of the querying sandbox. A link made on network
// N resolves the target by name on N only, and only while the target is connected there; a
// dangling link is skipped, so (unlike Docker) it does not hide a real sandbox of the same
// name. The scope's own endpoints carry their links, so no index lookup is needed.
// A target on another host of the cluster resolves the same way, through its remote
// endpoint on the shared (overlay) network, as Docker's links on user-defined networks do.
func lookupLink(snap *store.Snapshot, scope []scoped, name, netName string, qtype uint16, dst []netip.Addr) (Result, bool) {
	var known *store.Network
	for _, s := range scope {
		if netName != "" && !strings.EqualFold(netName, s.nw.Name) {
			continue
		}
		for _, l := range s.ep.Links {
			if !strings.EqualFold(l.Alias, name) {
				continue
			}
			addrs, _, found := resolveOn(snap, s.nw, l.Target, qtype, dst[:0])
			if !found {
				continue
			}
			if len(addrs) > 0 || qtype == anyFamily {
				return Result{Kind: Found, Addrs: addrs, Network: s.nw.Name, Source: srcLink}, true
			}
			if known == nil {
				known = s.nw
			}
		}
	}
	if known != nil {
		return Result{Kind: NoData, Network: known.Name, Source: srcLink}, true
	}
	return Result{}, false
}

// resolveOn looks name up among the visible endpoints of network nw. found says whether any
// endpoint answers to the name; addrs holds their addresses of the family (nil for
// anyFamily), appended to addrs. src is "name" if any endpoint has it as its sandbox name,
// short ID or hostname, else "alias".
func resolveOn(snap *store.Snapshot, nw *store.Network, name string, qtype uint16, addrs []netip.Addr) (_ []netip.Addr, src string, found bool) {
	src = srcAlias
	for _, ep := range snap.EndpointsByName(nw.ID, name) {
		if ep.Remote() {
			if remoteOwnName(ep, name) {
				src = srcName
			}
		} else if sb := visible(snap, ep); sb == nil {
			continue
		} else if ownName(sb, name) {
			src = srcName
		}
		found = true
		switch qtype {
		case TypeA:
			addrs = appendAddr(addrs, ep.IPv4)
		case TypeAAAA:
			addrs = appendAddr(addrs, ep.IPv6)
		}
	}
	return addrs, src, found
}

// ownName reports whether name is sb's name, short ID or hostname: three comparisons, where
// looking through the endpoint's aliases would cost one per alias on every answer.
func ownName(sb *store.Sandbox, name string) bool {
	return strings.EqualFold(name, sb.Name) || strings.EqualFold(name, store.ShortID(sb.ID)) ||
		strings.EqualFold(name, sb.Hostname)
}

// remoteOwnName is ownName for a remote endpoint: its sandbox name or short ID. Its
// hostname is only among its DNSNames, not known apart from its aliases, so a match on it
// reports "alias".
func remoteOwnName(ep *store.Endpoint, name string) bool {
	return strings.EqualFold(name, ep.SandboxName) || strings.EqualFold(name, store.ShortID(ep.SandboxID))
}
