package dnsd

// timer is when the attempt of entry idx times out.
type timer struct {
	at  int64
	idx int32
}

// timerHeap is a binary min-heap on at that keeps each entry's position (hidx) so a
// finished attempt's timer is removed at once rather than left to fire.
type timerHeap []timer

func (h *timerHeap) push(es []*fwdEntry, t timer) {
	*h = append(*h, t)
	h.up(es, len(*h)-1)
}

// remove takes out the timer at i.
func (h *timerHeap) remove(es []*fwdEntry, i int) {
	s := *h
	n := len(s) - 1
	es[s[i].idx].hidx = -1
	if i != n {
		s[i] = s[n]
		es[s[i].idx].hidx = i
	}
	*h = s[:n]
	if i != n {
		h.down(es, i)
		h.up(es, i)
	}
}

func (h timerHeap) swap(es []*fwdEntry, i, j int) {
	h[i], h[j] = h[j], h[i]
	es[h[i].idx].hidx = i
	es[h[j].idx].hidx = j
}

func (h timerHeap) up(es []*fwdEntry, i int) {
	es[h[i].idx].hidx = i
	for i > 0 {
		p := (i - 1) / 2
		if h[p].at <= h[i].at {
			break
		}
		h.swap(es, p, i)
		i = p
	}
}

func (h timerHeap) down(es []*fwdEntry, i int) {
	n := len(h)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if c+1 < n && h[c+1].at < h[c].at {
			c++
		}
		if h[i].at <= h[c].at {
			return
		}
		h.swap(es, i, c)
		i = c
	}
}
