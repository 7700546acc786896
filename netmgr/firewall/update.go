package firewall

import (
	"slices"

	"github.com/google/nftables"
)

// update queues the changes that turn the tables of old (as installed) into those of rs:
// for the ip and ip6 tables, whose rules are fixed, only the set elements added and
// removed; a chain is replaced only when its rules changed (the bridge table, with one
// rule group per ICC=false network). A table that appears, disappears or changes shape is
// added, deleted or rebuilt whole.
func (rs *Rules) update(b *batch, old *Rules) {
	for _, f := range families {
		ot, nt := old.table(f), rs.table(f)
		switch {
		case ot == nil && nt == nil:
		case nt == nil:
			b.delTable(f)
		case ot == nil:
			nt.install(b)
		case !sameShape(ot, nt):
			b.delTable(f)
			nt.install(b)
		default:
			nt.update(b, ot)
		}
	}
}

// sameShape reports whether a and b have the same sets and chains, by name and type, in
// the same order, so that b can be reached from a by elements and rules alone.
func sameShape(a, b *table) bool {
	return slices.EqualFunc(a.sets, b.sets, func(x, y *set) bool {
		return x.name == y.name && x.interval == y.interval && x.v4 == y.v4 &&
			slices.Equal(x.key, y.key) && slices.Equal(x.data, y.data)
	}) && slices.EqualFunc(a.chains, b.chains, func(x, y *chain) bool {
		return x.name == y.name && x.hook == y.hook && x.typ == y.typ
	})
}

// update queues the changes from old, a table of the same shape (see sameShape).
func (t *table) update(b *batch, old *table) {
	nt := &nftables.Table{Name: TableName, Family: t.family}
	for i, s := range t.sets {
		gone, added := diffElems(old.sets[i].elems, s.elems)
		if len(gone) == 0 && len(added) == 0 {
			continue
		}
		ns := s.nft(nt)
		// Removals first: a map element whose data changed is removed and added again
		// under its key, and an interval's end may be the next one's start.
		b.delElements(s, ns, gone)
		b.addElements(s, ns, added)
	}
	for i, ch := range t.chains {
		if !sameRules(old.chains[i].rules, ch.rules) {
			b.flushChain(ch.nft(nt))
			ch.addRules(b, nt)
		}
	}
}

// diffElems returns the elements of old not in cur and those of cur not in old; both
// are sorted (see set.finish).
func diffElems(old, cur []elem) (gone, added []elem) {
	i, j := 0, 0
	for i < len(old) && j < len(cur) {
		switch c := compareElems(old[i], cur[j]); {
		case c == 0:
			i, j = i+1, j+1
		case c < 0:
			gone = append(gone, old[i])
			i++
		default:
			added = append(added, cur[j])
			j++
		}
	}
	return append(gone, old[i:]...), append(added, cur[j:]...)
}

func sameRules(a, b []*rule) bool {
	return slices.EqualFunc(a, b, func(x, y *rule) bool { return slices.Equal(x.text, y.text) })
}
