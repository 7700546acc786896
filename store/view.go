package store

import (
	"cmp"
	"hash/maphash"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/hashicorp/go-memdb"
)

// view is a read-only index of the records for the DNS answer path, derived from memdb at
// each commit (Store.Update applies the transaction's changes to a copy of the previous
// view and publishes both together), so there is one owner of the records and no second
// copy to keep in step by hand. It holds the same record pointers as memdb.
//
// Why it exists: every go-memdb getter allocates (index key, radix transaction, iterator,
// result slice), 36 allocations per A answer over five getters (the numbers are in doc.go).
// A Go map read with a key built on the stack allocates nothing. Snapshot's getters read it
// (snapshot.go). A view is never modified once published: apply copies each map it changes
// and builds new slices.
type view struct {
	sandboxes map[string]*Sandbox        // ID -> sandbox
	networks  map[string]*Network        // ID -> network
	joined    map[string][]*Endpoint     // sandbox ID -> its endpoints, by (Seq, ID)
	names     map[string]*nameMap        // network ID -> lower-cased DNS name -> endpoints, by ID
	byIP      map[netip.Addr][]*Endpoint // address -> endpoints holding it, by ID
}

// nameShards is how many parts a network's name map is split into, by a hash of the name:
// a commit copies only the parts it changes. Whole, the map of a network with 10,000
// names (aliases count) would be copied by every create and rm on it.
const nameShards = 64

// nameSeed seeds the shard hash; the same for every view of the process.
var nameSeed = maphash.MakeSeed()

// nameMap is one network's names: lower-cased name -> endpoints, in the shard of the
// name's hash. An empty shard is nil.
type nameMap [nameShards]map[string][]*Endpoint

func shardOf(key string) int { return int(maphash.String(nameSeed, key) % nameShards) }

func (m *nameMap) empty() bool {
	for _, shard := range m {
		if shard != nil {
			return false
		}
	}
	return true
}

// owned records what one apply has copied already, so each network's name map and each
// shard is copied at most once per commit.
type owned struct {
	nets   map[string]bool
	shards map[shardKey]bool
}

type shardKey struct {
	netID string
	shard int
}

func newOwned() *owned { return &owned{nets: map[string]bool{}, shards: map[shardKey]bool{}} }

// buildView derives a view from every record visible to txn (at open, after loading the
// state file).
func buildView(txn *memdb.Txn) *view {
	v := &view{
		sandboxes: map[string]*Sandbox{},
		networks:  map[string]*Network{},
		joined:    map[string][]*Endpoint{},
		names:     map[string]*nameMap{},
		byIP:      map[netip.Addr][]*Endpoint{},
	}
	snap := &Snapshot{txn: txn}
	for _, sb := range all[Sandbox](snap, tableSandboxes, indexID) {
		v.sandboxes[sb.ID] = sb
	}
	for _, n := range all[Network](snap, tableNetworks, indexID) {
		v.networks[n.ID] = n
	}
	own := newOwned()
	for _, ep := range all[Endpoint](snap, tableEndpoints, indexID) {
		v.addEndpoint(ep, own)
	}
	return v
}

// apply returns a new view: v with the changes of one committed transaction. v itself is
// not modified (readers may hold it).
func (v *view) apply(changes memdb.Changes) *view {
	n := *v
	var sbCopied, nwCopied, epCopied bool
	own := newOwned()
	for _, c := range changes {
		switch c.Table {
		case tableSandboxes:
			if !sbCopied {
				n.sandboxes, sbCopied = maps.Clone(v.sandboxes), true
			}
			if c.Before != nil {
				delete(n.sandboxes, c.Before.(*Sandbox).ID)
			}
			if c.After != nil {
				sb := c.After.(*Sandbox)
				n.sandboxes[sb.ID] = sb
			}
		case tableNetworks:
			if !nwCopied {
				n.networks, nwCopied = maps.Clone(v.networks), true
			}
			if c.Before != nil {
				delete(n.networks, c.Before.(*Network).ID)
			}
			if c.After != nil {
				nw := c.After.(*Network)
				n.networks[nw.ID] = nw
			}
		case tableEndpoints:
			if !epCopied {
				n.joined, n.names, n.byIP = maps.Clone(v.joined), maps.Clone(v.names), maps.Clone(v.byIP)
				epCopied = true
			}
			if c.Before != nil {
				n.removeEndpoint(c.Before.(*Endpoint), own)
			}
			if c.After != nil {
				n.addEndpoint(c.After.(*Endpoint), own)
			}
		}
	}
	return &n
}

// addEndpoint indexes ep. The top-level maps must already belong to v; own tracks which
// name maps and shards do.
func (v *view) addEndpoint(ep *Endpoint, own *owned) {
	v.joined[ep.SandboxID] = withEndpoint(v.joined[ep.SandboxID], ep, bySeq)
	for _, name := range ep.DNSNames {
		key := strings.ToLower(name)
		shard := v.nameShard(ep.NetworkID, shardOf(key), own)
		shard[key] = withEndpoint(shard[key], ep, byID)
	}
	for _, a := range [2]netip.Addr{ep.IPv4, ep.IPv6} {
		if a.IsValid() {
			a = a.Unmap()
			v.byIP[a] = withEndpoint(v.byIP[a], ep, byID)
		}
	}
}

// removeEndpoint drops ep (the record as it was indexed) from v.
func (v *view) removeEndpoint(ep *Endpoint, own *owned) {
	setOrDelete(v.joined, ep.SandboxID, withoutEndpoint(v.joined[ep.SandboxID], ep.ID))
	if v.names[ep.NetworkID] != nil {
		for _, name := range ep.DNSNames {
			key := strings.ToLower(name)
			i := shardOf(key)
			if v.names[ep.NetworkID][i] == nil {
				continue
			}
			shard := v.nameShard(ep.NetworkID, i, own)
			setOrDelete(shard, key, withoutEndpoint(shard[key], ep.ID))
			if len(shard) == 0 {
				v.names[ep.NetworkID][i] = nil
			}
		}
		if v.names[ep.NetworkID].empty() {
			delete(v.names, ep.NetworkID)
		}
	}
	for _, a := range [2]netip.Addr{ep.IPv4, ep.IPv6} {
		if a.IsValid() {
			a = a.Unmap()
			setOrDelete(v.byIP, a, withoutEndpoint(v.byIP[a], ep.ID))
		}
	}
}

// nameShard returns shard i of network netID's name map, copying the map (an array of
// shard pointers) and the shard first if v does not own them yet in this commit.
func (v *view) nameShard(netID string, i int, own *owned) map[string][]*Endpoint {
	m := v.names[netID]
	// m is nil also after an earlier change of this commit emptied and dropped the
	// network's map (a rename removes, then re-adds, an endpoint's names).
	if !own.nets[netID] || m == nil {
		c := new(nameMap)
		if m != nil {
			*c = *m
		}
		m = c
		v.names[netID] = m
		own.nets[netID] = true
	}
	k := shardKey{netID, i}
	if !own.shards[k] || m[i] == nil {
		if m[i] == nil {
			m[i] = map[string][]*Endpoint{}
		} else {
			m[i] = maps.Clone(m[i])
		}
		own.shards[k] = true
	}
	return m[i]
}

func bySeq(a, b *Endpoint) int {
	if c := cmp.Compare(a.Seq, b.Seq); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

func byID(a, b *Endpoint) int { return cmp.Compare(a.ID, b.ID) }

// The slices of a view are clipped (capacity == length), so that a reader who appends to
// one gets a copy instead of writing into the array other readers share.

// withEndpoint returns a new slice: list without any record of ep.ID, plus ep, in order.
func withEndpoint(list []*Endpoint, ep *Endpoint, order func(a, b *Endpoint) int) []*Endpoint {
	out := make([]*Endpoint, 0, len(list)+1)
	for _, e := range list {
		if e.ID != ep.ID {
			out = append(out, e)
		}
	}
	i, _ := slices.BinarySearchFunc(out, ep, order)
	return slices.Clip(slices.Insert(out, i, ep))
}

// withoutEndpoint returns a new slice without the record of id (nil if none is left).
func withoutEndpoint(list []*Endpoint, id string) []*Endpoint {
	var out []*Endpoint
	for _, e := range list {
		if e.ID != id {
			out = append(out, e)
		}
	}
	return slices.Clip(out)
}

func setOrDelete[K comparable](m map[K][]*Endpoint, k K, list []*Endpoint) {
	if len(list) == 0 {
		delete(m, k)
		return
	}
	m[k] = list
}

// maxNameLen bounds the stack buffer used to lower-case a name (a DNS name is at most 253
// characters in text form; longer ones are lower-cased on the heap).
const maxNameLen = 256

// How a name must be lower-cased to match the index's strings.ToLower keys.
const (
	foldNone    = iota // already lower case
	foldASCII          // ASCII upper-case letters only: fold on the stack
	foldUnicode        // non-ASCII bytes: strings.ToLower, exactly as the index
)

func foldCase(s string) int {
	fold := foldNone
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 0x80:
			return foldUnicode
		case 'A' <= c && c <= 'Z':
			fold = foldASCII
		}
	}
	return fold
}
