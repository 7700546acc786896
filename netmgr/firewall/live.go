package firewall

import (
	"bytes"
	"slices"

	"github.com/google/nftables"
)

// live is what a Firewall installed, kept so that the next Apply costs what changed, in
// the kernel and here: the inputs it was built from, indexed, and each set's elements
// with how many inputs put each there (a bridge is in localnet once per published port).
// An Apply finds the inputs that differ (a map lookup per port), takes their elements out
// and puts the new ones in; elements whose count goes to or from zero are sent.
type live struct {
	in     inputs
	raw    State // the State as last applied (a copy), for updateRaw
	shape  shape
	sets   map[setRef]*liveSet
	broken bool // two inputs gave one map key different data, or a count went wrong: rebuild
}

// shape is which tables exist: a change of shape is a rebuild.
type shape struct{ ip, bridge bool }

type setRef struct {
	family nftables.TableFamily
	name   string
}

type liveSet struct {
	family nftables.TableFamily
	def    *set                 // name and types; its elems are unused
	elems  map[string]*liveElem // by key and key end
}

type liveElem struct {
	e    elem
	refs int
}

// inputs is a clean State indexed by identity.
type inputs struct {
	nets    map[string]Network // by bridge
	ports   map[Port]int       // how many times the State lists each
	links   map[Link]int
	portsOn map[string]int // ports listed per bridge
	linksOn map[string]int
}

func index(s State) (inputs, error) {
	c, err := clean(s)
	if err != nil {
		return inputs{}, err
	}
	in := inputs{nets: make(map[string]Network, len(c.Networks)), ports: make(map[Port]int, len(c.Ports)),
		links: make(map[Link]int, len(c.Links)), portsOn: map[string]int{}, linksOn: map[string]int{}}
	for _, nw := range c.Networks {
		in.nets[nw.Bridge] = nw
	}
	for _, p := range c.Ports {
		in.ports[p]++
		in.portsOn[p.Bridge]++
	}
	for _, l := range c.Links {
		in.links[l]++
		in.linksOn[l.Bridge]++
	}
	return in, nil
}

func (in inputs) shape() shape { return shape{ip: len(in.nets) > 0, bridge: in.quiet() > 0} }

// quiet counts the networks with elements in the bridge table.
func (in inputs) quiet() int {
	n := 0
	for _, nw := range in.nets {
		if quiet(nw) {
			n++
		}
	}
	return n
}

// newLive indexes what a rebuild from in installs.
func newLive(in inputs) *live {
	l := &live{shape: in.shape(), sets: map[setRef]*liveSet{},
		in: inputs{nets: map[string]Network{}, ports: map[Port]int{}, links: map[Link]int{}}}
	addSets := func(f nftables.TableFamily, defs []*set) {
		for _, s := range defs {
			l.sets[setRef{f, s.name}] = &liveSet{family: f, def: s, elems: map[string]*liveElem{}}
		}
	}
	if l.shape.ip {
		addSets(nftables.TableFamilyIPv4, builder{v4: true}.setDefs())
		addSets(nftables.TableFamilyIPv6, builder{v4: false}.setDefs())
	}
	if l.shape.bridge {
		addSets(nftables.TableFamilyBridge, bridgeSetDefs())
	}
	l.update(in) // from nothing: the counts only, the rebuild sends the elements
	return l
}

func familyOf(v4 bool) nftables.TableFamily {
	if v4 {
		return nftables.TableFamilyIPv4
	}
	return nftables.TableFamilyIPv6
}

// change is the elements of one set to delete and to add.
type change struct {
	family     nftables.TableFamily
	set        *set
	dels, adds []elem
}

// touched remembers an element's state before this update.
type touched struct {
	le  *liveElem
	was bool
	old []byte // data before
}

// update moves l to cur and returns the elements to send. l.shape must be cur's.
func (l *live) update(cur inputs) []change {
	old := l.in
	var goneNets, newNets []Network
	redo := map[string]bool{} // bridges whose network changed: their ports and links too
	for br, nw := range cur.nets {
		if o, ok := old.nets[br]; !ok {
			newNets = append(newNets, nw)
		} else if !sameNetwork(o, nw) {
			goneNets, newNets = append(goneNets, o), append(newNets, nw)
			redo[br] = true
		}
	}
	for br, o := range old.nets {
		if _, ok := cur.nets[br]; !ok {
			goneNets = append(goneNets, o)
		}
	}
	gonePorts, newPorts := diff(old.ports, cur.ports, func(p Port) bool { return redo[p.Bridge] })
	goneLinks, newLinks := diff(old.links, cur.links, func(k Link) bool { return redo[k.Bridge] })
	return l.move(func() { l.in = cur }, goneNets, newNets, gonePorts, newPorts, goneLinks, newLinks)
}

// diff returns the keys listed in old but not in cur (gone) and in cur but not in old
// (added); a key that redo reports is in both, to be taken out and put back.
func diff[K comparable](old, cur map[K]int, redo func(K) bool) (gone, added []K) {
	for k := range old {
		if cur[k] == 0 || redo(k) {
			gone = append(gone, k)
		}
	}
	for k := range cur {
		if old[k] == 0 || redo(k) {
			added = append(added, k)
		}
	}
	return gone, added
}

// move takes the elements of the gone inputs out (against the networks before), calls
// swap to switch l.in to the inputs after, puts the elements of the new inputs in, and
// returns the elements to send.
func (l *live) move(swap func(), goneNets, newNets []Network, gonePorts, newPorts []Port, goneLinks, newLinks []Link) []change {
	seen := map[*liveSet]map[string]*touched{}
	apply := func(in inputs, d int, nets []Network, ports []Port, links []Link) {
		if l.shape.ip {
			for _, v4 := range []bool{true, false} {
				b := builder{v4: v4, nets: in.nets}
				add := l.sink(familyOf(v4), d, seen)
				for _, nw := range nets {
					b.networkElems(nw, add)
				}
				for _, p := range ports {
					b.portElems(p, in.nets[p.Bridge], add)
				}
				for _, k := range links {
					b.linkElems(k, in.nets[k.Bridge], add)
				}
			}
		}
		if l.shape.bridge {
			add := l.sink(nftables.TableFamilyBridge, d, seen)
			for _, nw := range nets {
				bridgeNetworkElems(nw, add)
			}
			for _, p := range ports {
				bridgePortElems(p, in.nets[p.Bridge], add)
			}
			for _, k := range links {
				bridgeLinkElems(k, in.nets[k.Bridge], add)
			}
		}
	}
	apply(l.in, -1, goneNets, gonePorts, goneLinks)
	swap()
	apply(l.in, +1, newNets, newPorts, newLinks)

	var out []change
	for ls, ts := range seen {
		c := change{family: ls.family, set: ls.def}
		for id, t := range ts {
			now := t.le.refs > 0
			switch {
			case t.was && !now:
				c.dels = append(c.dels, elem{t.le.e.key, t.le.e.keyEnd, t.old})
			case !t.was && now:
				c.adds = append(c.adds, t.le.e)
			case t.was && now && !bytes.Equal(t.old, t.le.e.val):
				c.dels = append(c.dels, elem{t.le.e.key, t.le.e.keyEnd, t.old})
				c.adds = append(c.adds, t.le.e)
			}
			if !now {
				delete(ls.elems, id)
			}
		}
		if len(c.dels) > 0 || len(c.adds) > 0 {
			slices.SortFunc(c.dels, compareElems) // for the reader of a trace; the kernel does not mind
			slices.SortFunc(c.adds, compareElems)
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b change) int {
		if a.family != b.family {
			return int(a.family) - int(b.family)
		}
		return bytes.Compare([]byte(a.set.name), []byte(b.set.name))
	})
	return out
}

// sink counts the elements of one input in (d = +1) or out (d = -1) of family's sets,
// noting each element's state before its first change in seen.
func (l *live) sink(family nftables.TableFamily, d int, seen map[*liveSet]map[string]*touched) sink {
	return func(name string, key, keyEnd, val []byte) {
		ls := l.sets[setRef{family, name}]
		id := string(key) + string(keyEnd)
		le := ls.elems[id]
		if le == nil {
			le = &liveElem{e: elem{key: key, keyEnd: keyEnd, val: val}}
			ls.elems[id] = le
		}
		ts := seen[ls]
		if ts == nil {
			ts = map[string]*touched{}
			seen[ls] = ts
		}
		if ts[id] == nil {
			ts[id] = &touched{le: le, was: le.refs > 0, old: le.e.val}
		}
		switch {
		case d > 0 && le.refs > 0 && !bytes.Equal(le.e.val, val):
			l.broken = true // the kernel would hold one of the two; Ruleset decides which
		case d > 0 && le.refs == 0:
			le.e.val = val
		case d < 0 && le.refs == 0:
			l.broken = true // out of step: never in, or taken out twice
			return
		}
		le.refs += d
	}
}

// sameNetwork reports whether a and b (clean) give the same elements.
func sameNetwork(a, b Network) bool {
	return a.Bridge == b.Bridge && a.Internal == b.Internal && a.ICC == b.ICC && a.Masquerade == b.Masquerade &&
		a.HostBindingIPv4 == b.HostBindingIPv4 && slices.Equal(a.Subnets, b.Subnets)
}

// queueChanges queues cs into b: per set, removals first (a map element whose data changed is
// removed and added again under its key, and an interval's end may be the next one's
// start).
func queueChanges(b *batch, cs []change) {
	for _, c := range cs {
		ns := c.set.nft(&nftables.Table{Name: TableName, Family: c.family})
		b.delElements(c.set, ns, c.dels)
		b.addElements(c.set, ns, c.adds)
	}
}
