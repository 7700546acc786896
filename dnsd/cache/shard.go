package cache

import "sync"

// A shard's map, LRU list and slot free list: the bookkeeping behind Get and Put.

// shard is one lock's worth of the cache: a map and an LRU list, with its share of the
// bounds. The padding keeps two shards' mutexes off one cache line.
type shard struct {
	mu                      sync.Mutex
	m                       map[string]*entry
	head, tail              *entry // head: most recently used
	n                       int
	bytes                   int64
	maxN                    int
	maxBytes                int64
	hits, misses, evictions int64
	free                    *entry // unused slots, linked by next
	_                       [64]byte
}

// entryChunk is how many entry slots a shard allocates at once while it fills.
const entryChunk = 64

// The shard's LRU list; the caller holds mu.

func (sh *shard) pushFront(e *entry) {
	e.prev, e.next = nil, sh.head
	if sh.head != nil {
		sh.head.prev = e
	} else {
		sh.tail = e
	}
	sh.head = e
	sh.n++
	sh.bytes += int64(e.size)
}

func (sh *shard) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		sh.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		sh.tail = e.prev
	}
	e.prev, e.next = nil, nil
	sh.n--
	sh.bytes -= int64(e.size)
}

func (sh *shard) touch(e *entry) {
	if sh.head != e {
		sh.unlink(e)
		sh.pushFront(e)
	}
}

// remove takes e out of the shard and puts its slot on the free list, dropping its
// buffer for the collector.
func (sh *shard) remove(e *entry) {
	sh.unlink(e)
	delete(sh.m, e.key)
	*e = entry{next: sh.free}
	sh.free = e
}

// alloc takes a slot off the free list, refilling it first if it is empty.
func (sh *shard) alloc() *entry {
	if sh.free == nil {
		chunk := make([]entry, min(entryChunk, max(sh.maxN-sh.n, 1)))
		for i := range chunk {
			chunk[i].next = sh.free
			sh.free = &chunk[i]
		}
	}
	e := sh.free
	sh.free = e.next
	e.next = nil
	return e
}
