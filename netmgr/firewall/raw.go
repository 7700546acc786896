package firewall

import "slices"

// The daemon derives its State from the store in a stable order, so that from one Apply to
// the next a change is a few items inserted or removed in place: updateRaw finds them by
// walking the last State and the new one side by side (comparisons, no hashing, nothing
// allocated for the items that are equal) and checks and indexes only those. Anything it
// cannot follow cheaply goes to index and update, which compare the whole inputs.

// Bounds of the walk: how far ahead it looks for the item it lost, and how many
// differences make indexing the whole State the cheaper way.
const (
	walkWindow = 64
	walkBudget = 512
)

// walk returns the items of prev that are not in cur and those of cur that are not in
// prev, in the sense of a greedy alignment: each pair it matches is equal, so gone and
// added together always turn prev into cur (an item can be in both if the walk lost its
// way; its elements then come out and go back in). ok is false past walkBudget.
func walk[T any](prev, cur []T, eq func(a, b T) bool) (gone, added []T, ok bool) {
	i, j := 0, 0
	for i < len(prev) && j < len(cur) {
		if eq(prev[i], cur[j]) {
			i, j = i+1, j+1
			continue
		}
		if k := index1(cur[j+1:min(len(cur), j+1+walkWindow)], prev[i], eq); k >= 0 { // inserted
			added = append(added, cur[j:j+1+k]...)
			j += 1 + k
		} else if k := index1(prev[i+1:min(len(prev), i+1+walkWindow)], cur[j], eq); k >= 0 { // removed
			gone = append(gone, prev[i:i+1+k]...)
			i += 1 + k
		} else { // replaced
			gone, added = append(gone, prev[i]), append(added, cur[j])
			i, j = i+1, j+1
		}
		if len(gone)+len(added) > walkBudget {
			return nil, nil, false
		}
	}
	gone, added = append(gone, prev[i:]...), append(added, cur[j:]...)
	return gone, added, len(gone)+len(added) <= walkBudget
}

func index1[T any](s []T, v T, eq func(a, b T) bool) int {
	return slices.IndexFunc(s, func(x T) bool { return eq(x, v) })
}

func eqRawNetwork(a, b Network) bool {
	return a.Bridge == b.Bridge && a.Internal == b.Internal && a.ICC == b.ICC && a.Masquerade == b.Masquerade &&
		a.HostBindingIPv4 == b.HostBindingIPv4 && slices.Equal(a.Subnets, b.Subnets)
}

// copyState is a deep copy of s: the caller may reuse its slices.
func copyState(s State) State {
	c := State{Networks: slices.Clone(s.Networks), Ports: slices.Clone(s.Ports), Links: slices.Clone(s.Links)}
	for i := range c.Networks {
		c.Networks[i].Subnets = slices.Clone(c.Networks[i].Subnets)
	}
	return c
}

// updateRaw moves l to s, which must be l.raw's successor in the daemon's order, and
// returns the elements to send; ok is false (and l unchanged) when the difference is too
// large to walk, s is invalid (index gives the error), or a table would appear or go.
func (l *live) updateRaw(s State) (cs []change, ok bool) {
	goneN, addN, ok1 := walk(l.raw.Networks, s.Networks, eqRawNetwork)
	goneP, addP, ok2 := walk(l.raw.Ports, s.Ports, func(a, b Port) bool { return a == b })
	goneL, addL, ok3 := walk(l.raw.Links, s.Links, func(a, b Link) bool { return a == b })
	if !ok1 || !ok2 || !ok3 {
		return nil, false
	}
	if len(goneN)+len(addN)+len(goneP)+len(addP)+len(goneL)+len(addL) == 0 {
		l.raw = copyState(s)
		return nil, true
	}

	// The networks after: those added (checked, canonical), else those before unless gone.
	after := map[string]Network{}
	gone := map[string]bool{}
	for _, nw := range goneN {
		gone[nw.Bridge] = true
	}
	for _, nw := range addN {
		c, err := cleanNetwork(nw)
		if _, dup := after[nw.Bridge]; err != nil || dup {
			return nil, false
		}
		if _, exists := l.in.nets[nw.Bridge]; exists && !gone[nw.Bridge] {
			return nil, false // listed twice
		}
		after[nw.Bridge] = c
	}
	netAfter := func(br string) (Network, bool) {
		if nw, ok := after[br]; ok {
			return nw, true
		}
		nw, ok := l.in.nets[br]
		return nw, ok && !gone[br]
	}
	isNet := func(br string) bool { _, ok := netAfter(br); return ok }

	// Ports and links: counts by canonical form, and per bridge (no port may be left
	// on a network that goes).
	portDelta, linkDelta, onDelta := map[Port]int{}, map[Link]int{}, map[string][2]int{}
	for _, p := range goneP {
		c, _ := cleanPort(p, func(string) bool { return true }) // it was checked when it came
		portDelta[c]--
		d := onDelta[p.Bridge]
		d[0]--
		onDelta[p.Bridge] = d
	}
	for _, p := range addP {
		c, err := cleanPort(p, isNet)
		if err != nil {
			return nil, false
		}
		portDelta[c]++
		d := onDelta[p.Bridge]
		d[0]++
		onDelta[p.Bridge] = d
	}
	for _, k := range goneL {
		c, _ := cleanLink(k, func(string) bool { return true })
		linkDelta[c]--
		d := onDelta[k.Bridge]
		d[1]--
		onDelta[k.Bridge] = d
	}
	for _, k := range addL {
		c, err := cleanLink(k, isNet)
		if err != nil {
			return nil, false
		}
		linkDelta[c]++
		d := onDelta[k.Bridge]
		d[1]++
		onDelta[k.Bridge] = d
	}
	for br := range gone {
		if _, ok := after[br]; !ok && (l.in.portsOn[br]+onDelta[br][0] > 0 || l.in.linksOn[br]+onDelta[br][1] > 0) {
			return nil, false // a port or link on a network that is gone
		}
	}

	// Which networks really change, and the shape after.
	var oldNets, newNets []Network
	redo := map[string]bool{}
	nets, quiets := len(l.in.nets), l.in.quiet()
	touchedBr := map[string]bool{}
	for br := range gone {
		touchedBr[br] = true
	}
	for br := range after {
		touchedBr[br] = true
	}
	for br := range touchedBr {
		before, had := l.in.nets[br]
		now, has := netAfter(br)
		switch {
		case had && has && sameNetwork(before, now):
			continue
		case had && has:
			redo[br] = true
		}
		if had {
			oldNets = append(oldNets, before)
			nets--
			if quiet(before) {
				quiets--
			}
		}
		if has {
			newNets = append(newNets, now)
			nets++
			if quiet(now) {
				quiets++
			}
		}
	}
	if (shape{ip: nets > 0, bridge: quiets > 0}) != l.shape {
		return nil, false
	}

	var oldPorts, newPorts []Port
	for p, d := range portDelta {
		before := l.in.ports[p]
		switch now := before + d; {
		case now < 0:
			return nil, false
		case before > 0 && now == 0:
			oldPorts = append(oldPorts, p)
		case before == 0 && now > 0:
			newPorts = append(newPorts, p)
		}
	}
	var oldLinks, newLinks []Link
	for k, d := range linkDelta {
		before := l.in.links[k]
		switch now := before + d; {
		case now < 0:
			return nil, false
		case before > 0 && now == 0:
			oldLinks = append(oldLinks, k)
		case before == 0 && now > 0:
			newLinks = append(newLinks, k)
		}
	}
	if len(redo) > 0 { // a network changed in place: its ports and links are built again
		for p, n := range l.in.ports {
			if redo[p.Bridge] && n > 0 && n+portDelta[p] > 0 {
				oldPorts, newPorts = append(oldPorts, p), append(newPorts, p)
			}
		}
		for k, n := range l.in.links {
			if redo[k.Bridge] && n > 0 && n+linkDelta[k] > 0 {
				oldLinks, newLinks = append(oldLinks, k), append(newLinks, k)
			}
		}
	}

	swap := func() {
		for br := range gone {
			delete(l.in.nets, br)
		}
		for br, nw := range after {
			l.in.nets[br] = nw
		}
		for p, d := range portDelta {
			if n := l.in.ports[p] + d; n > 0 {
				l.in.ports[p] = n
			} else {
				delete(l.in.ports, p)
			}
		}
		for k, d := range linkDelta {
			if n := l.in.links[k] + d; n > 0 {
				l.in.links[k] = n
			} else {
				delete(l.in.links, k)
			}
		}
		for br, d := range onDelta {
			l.in.portsOn[br] += d[0]
			l.in.linksOn[br] += d[1]
		}
	}
	cs = l.move(swap, oldNets, newNets, oldPorts, newPorts, oldLinks, newLinks)
	l.raw = copyState(s)
	return cs, true
}
