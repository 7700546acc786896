// Package cache is the embedded DNS's cache of forwarded answers: whole upstream replies
// on the wire, shared by every sandbox of the daemon and partitioned by upstream set and
// scope (a string the caller builds), so that sandboxes with other upstreams, or an
// internal network, never see each other's answers.
//
// A hit is served on the UDP reader's hot path, so Get works on the datagram's bytes:
// it builds the key on the stack, takes one shard's mutex for a map lookup and an LRU
// move, and copies the stored reply into the caller's buffer, patching ID, question case,
// RD/CD/AD and TTLs in place. It does not allocate. Put runs once per upstream reply: it
// walks the whole reply once (every owner name, rdlength and count checked, and every
// rdata that can hold a compressed name, the way miekg would unpack it; other rdata is
// opaque bytes, served at the same offset) and stores a copy, with one allocation, only
// if it may be served to another client:
//
//   - NOERROR with answers: for the smallest TTL of every record but the OPT, capped at
//     MaxTTL; a TTL of 0 anywhere is not cached.
//   - NXDOMAIN and NODATA (RFC 2308): for min(SOA TTL, SOA MINIMUM) of the authority
//     section's SOA, capped at MaxNegTTL and at every other record's TTL; no SOA, no
//     caching (RFC 2308 5).
//   - SERVFAIL (the failure the caller built when every upstream failed): ServfailTTL,
//     unless a live entry has the key (one too big for the client that missed).
//   - never: other rcodes, TC, a malformed reply, an ID, QR, opcode or question that does
//     not match the query, more than one OPT, an answer whose owner is neither the qname
//     nor reached from it by the CNAME/DNAME records before it (a lying forwarder),
//     transaction records (TSIG, TKEY, SIG) and meta types, EDNS options other than NSID,
//     DAU, DHU, N3U, PADDING, EDE and COOKIE (ECS: the answer may be per client subnet).
//
// A COOKIE option (RFC 7873) belongs to one client's exchange: Put stores the reply
// without it, and Get serves it so to every client (5.3: a client that sent a cookie
// accepts a reply without one).
//
// Replies are stored for their own question only: no record is ever taken out of one
// reply to answer another name, so additional-section records are never answers.
//
// The key is the partition, the question name (ASCII lowercased), type and class, and
// three query bits: EDNS present, DO and CD (a reply to a query without EDNS must not
// carry an OPT to a client that sent one, and vice versa; CD changes what a validating
// upstream answers).
//
// Beyond the specified API: GetAt is Get with the caller's clock reading, for a caller
// that already read the clock for the datagram.
package cache

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Config bounds a Cache. Zero durations take the defaults.
type Config struct {
	MaxEntries  int              // 0 or less disables the cache (New returns nil; all methods are nil-safe)
	MaxBytes    int64            // bound on memory held by entries (key + reply + bookkeeping); 0: 1 KiB per entry of MaxEntries
	MaxTTL      time.Duration    // cap on positive lifetimes (default 1h, as CoreDNS)
	MaxNegTTL   time.Duration    // cap on negative lifetimes, RFC 2308 (default 30m)
	ServfailTTL time.Duration    // how long a failed forward is remembered (default 2s; negative: never)
	Now         func() time.Time // tests; default time.Now
}

// Defaults of Config.
const (
	DefaultMaxTTL      = time.Hour
	DefaultMaxNegTTL   = 30 * time.Minute
	DefaultServfailTTL = 2 * time.Second
	defaultEntryBytes  = 1024
)

// maxShards is the shard count of a large cache; a small one has fewer, so that each
// shard holds at least minShardEntries and the LRU order stays meaningful.
const (
	maxShards       = 16
	minShardEntries = 64
)

// entryOverhead is what Bytes counts for an entry beyond its buffer: the entry struct
// (128 bytes, in its shard's chunks) and its slot in the shard's map (key string header and pointer,
// control byte, load factor and growth: about 48 bytes on average). TestMemory measures
// the real cost per entry against this accounting.
const entryOverhead = 128 + 48

// Cache is safe for concurrent use. A nil *Cache is a disabled cache: Get misses, Put
// stores nothing, Stats is zero.
type Cache struct {
	shards []shard
	mask   uint64
	seed   maphash.Seed

	maxTTL, maxNegTTL, servfailTTL int64 // nanoseconds
	now                            func() time.Time
	base                           time.Time // entries' times are nanoseconds since base

	misses atomic.Int64 // misses of queries no shard sees (not a cacheable question)

	pmu   sync.Mutex
	parts map[string]uint32
}

// entry is one cached reply. key, reply and the TTL offsets share one buffer, written
// once by Put and never changed after (Get copies from it outside the lock). The entry
// itself is a slot its shard reuses after eviction: its fields are read under the lock.
type entry struct {
	key        string // the map key: a view of buf's first bytes
	reply      []byte // the stored reply: TTLs as at stored, ID 0
	ttls       []byte // offsets of the TTLs to decrement, 2 bytes each
	upstream   string
	prev, next *entry
	stored     int64 // when Put ran, nanoseconds since Cache.base
	life       int64 // nanoseconds after stored at which the entry expires
	lifeSec    uint32
	part       uint32
	qend       int32 // offset past the question
	size       int32 // what the entry counts in Bytes
}

// New returns a cache bounded by cfg, or nil when cfg.MaxEntries is 0 or less.
func New(cfg Config) *Cache {
	if cfg.MaxEntries <= 0 {
		return nil
	}
	c := &Cache{
		seed:        maphash.MakeSeed(),
		maxTTL:      int64(orDefault(cfg.MaxTTL, DefaultMaxTTL)),
		maxNegTTL:   int64(orDefault(cfg.MaxNegTTL, DefaultMaxNegTTL)),
		servfailTTL: int64(orDefault(cfg.ServfailTTL, DefaultServfailTTL)),
		now:         cfg.Now,
		parts:       make(map[string]uint32),
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.base = c.now()
	maxBytes := cfg.MaxBytes
	if maxBytes <= 0 {
		maxBytes = int64(cfg.MaxEntries) * defaultEntryBytes
	}
	n := maxShards
	for n > 1 && cfg.MaxEntries/n < minShardEntries {
		n /= 2
	}
	c.shards = make([]shard, n)
	c.mask = uint64(n - 1)
	for i := range c.shards {
		sh := &c.shards[i]
		sh.m = make(map[string]*entry, min((cfg.MaxEntries+n-1)/n, 1<<16))
		sh.maxN = (cfg.MaxEntries + n - 1) / n
		sh.maxBytes = (maxBytes + int64(n) - 1) / int64(n)
	}
	return c
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Partition interns an upstream set and scope; the id goes into every Get and Put. The
// same set always gets the same id, for the cache's lifetime.
func (c *Cache) Partition(set string) uint32 {
	if c == nil {
		return 0
	}
	c.pmu.Lock()
	defer c.pmu.Unlock()
	id, ok := c.parts[set]
	if !ok {
		id = uint32(len(c.parts) + 1)
		c.parts[set] = id
	}
	return id
}

// Flush drops every entry of partition part (the caller calls it when a sandbox's
// upstreams change). Flushed entries are not evictions.
func (c *Cache) Flush(part uint32) {
	if c == nil {
		return
	}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for e := sh.head; e != nil; {
			next := e.next
			if e.part == part {
				sh.remove(e)
			}
			e = next
		}
		sh.mu.Unlock()
	}
}

// Get answers query (a client's datagram or packed message, at least the header and
// question) from the cache into dst[:0]: the cached reply with the query's ID, the
// query's question bytes (the client's letter case, 0x20), the query's RD and CD bits (AD
// cleared unless the query set AD or DO), every TTL (not the OPT's) decremented by the
// entry's age in whole seconds. limit is the
// largest reply the client takes (512 without EDNS, the advertised size, 65535 for TCP):
// a bigger cached reply is a miss. It returns the remaining lifetime (for `berth dns
// query`) and the Put's upstream label.
func (c *Cache) Get(part uint32, query []byte, limit int, dst []byte) (reply []byte, ttl uint32, upstream string, ok bool) {
	if c == nil {
		return nil, 0, "", false
	}
	return c.GetAt(part, query, limit, dst, c.now())
}

// GetAt is Get at time now, which must come from Config.Now's clock (time.Now by
// default): for a caller that already read the clock for this datagram, as the UDP
// reader does for its metrics, it saves a second clock read (a quarter of a hit's cost
// on the test machine, where time.Now takes about 40 ns).
func (c *Cache) GetAt(part uint32, query []byte, limit int, dst []byte, now time.Time) (reply []byte, ttl uint32, upstream string, ok bool) {
	if c == nil {
		return nil, 0, "", false
	}
	var kb [maxKey]byte
	key, qend, ok := queryKey(part, query, &kb)
	if !ok {
		c.misses.Add(1)
		return nil, 0, "", false
	}
	sh := c.shard(key)
	at := int64(now.Sub(c.base))
	sh.mu.Lock()
	e := sh.m[string(key)]
	switch {
	case e == nil || len(e.reply) > limit:
		sh.misses++
		sh.mu.Unlock()
		return nil, 0, "", false
	case at-e.stored >= e.life:
		sh.remove(e)
		sh.misses++
		sh.mu.Unlock()
		return nil, 0, "", false
	}
	sh.touch(e)
	sh.hits++
	// The entry's slot is reused once it is evicted, so read its fields under the lock;
	// the buffers they point to never change after Put, so the copy needs no lock.
	src, stored, ttls, lifeSec, up := e.reply, e.stored, e.ttls, e.lifeSec, e.upstream
	sh.mu.Unlock()

	out := append(dst[:0], src...)
	out[0], out[1] = query[0], query[1]
	out[2] = out[2]&^byte(flagRD>>8) | query[2]&byte(flagRD>>8)
	out[3] = out[3]&^byte(flagCD) | query[3]&byte(flagCD)
	if query[3]&byte(flagAD) == 0 && key[4]&bitDO == 0 {
		// The stored AD bit answered whichever client asked first; a validating
		// server sets it only for a query with AD or DO (RFC 6840 5.8).
		out[3] &^= byte(flagAD)
	}
	copy(out[headerLen:qend], query[headerLen:qend])
	age := uint32(max(at-stored, 0) / int64(time.Second))
	for i := 0; i+1 < len(ttls); i += 2 {
		o := int(binary.BigEndian.Uint16(ttls[i:]))
		binary.BigEndian.PutUint32(out[o:], binary.BigEndian.Uint32(out[o:])-age)
	}
	return out, lifeSec - age, up, true
}

// Put stores reply (the upstream's, with the client's ID restored) as the answer to
// query, if it may be cached, and says whether it was.
func (c *Cache) Put(part uint32, query, reply []byte, upstream string) bool {
	ok, _ := c.put(part, query, reply, upstream)
	return ok
}

// put is Put, saying why a reply was not stored (for tests).
func (c *Cache) put(part uint32, query, reply []byte, upstream string) (bool, string) {
	if c == nil {
		return false, "disabled"
	}
	var kb [maxKey]byte
	key, qend, ok := queryKey(part, query, &kb)
	if !ok {
		return false, "query is not one plain question"
	}
	var a analysis
	if why := c.analyze(&a, query, qend, reply); why != "" {
		return false, why
	}
	// One allocation per stored entry: key, reply and TTL offsets share buf, and the
	// entry itself comes from the shard's free list (refilled a chunk at a time until the
	// shard is full; a full shard reuses the slot of the entry it evicts).
	klen, rlen := len(key), len(reply)-a.cookieLen
	size := klen + rlen + 2*a.ttls() + entryOverhead
	sh := c.shard(key)
	if int64(size) > sh.maxBytes {
		return false, "larger than a shard's byte bound"
	}
	buf := make([]byte, klen+rlen+2*a.ttls())
	copy(buf, key)
	stored := buf[klen : klen+rlen]
	if a.cookieLen == 0 {
		copy(stored, reply)
	} else {
		// The COOKIE option is the exchange's, not the answer's: leave it out (RFC 7873
		// 5.3: a client that sent a cookie accepts a reply without one) and shorten the
		// OPT's rdlength. The OPT is the last record, so no other offset moves.
		n := copy(stored, reply[:a.cookie])
		copy(stored[n:], reply[a.cookie+a.cookieLen:])
		rdlen := binary.BigEndian.Uint16(stored[a.optRdlen:])
		binary.BigEndian.PutUint16(stored[a.optRdlen:], rdlen-uint16(a.cookieLen))
	}
	stored[0], stored[1] = 0, 0
	ttls := buf[klen+rlen:]
	for i := range a.ttls() {
		o := a.ttl(i)
		binary.BigEndian.PutUint16(ttls[2*i:], o)
		t := binary.BigEndian.Uint32(stored[o:])
		if t > maxTTL || t > a.ttlCap {
			binary.BigEndian.PutUint32(stored[o:], a.ttlCap)
		}
	}
	k := unsafe.String(&buf[0], klen)
	now := c.clock()

	sh.mu.Lock()
	if old := sh.m[k]; old != nil {
		if reply[3]&0xF == rcodeServfail && now-old.stored < old.life {
			// A live answer missed only for its size (a client with a smaller buffer,
			// whose forward then failed): the clients it fits keep getting it.
			sh.mu.Unlock()
			return false, "a SERVFAIL does not replace a live entry"
		}
		sh.remove(old)
	}
	for sh.n >= sh.maxN || sh.bytes+int64(size) > sh.maxBytes {
		sh.remove(sh.tail)
		sh.evictions++
	}
	e := sh.alloc()
	*e = entry{
		key:      k,
		reply:    stored,
		ttls:     ttls,
		upstream: upstream,
		stored:   now,
		life:     a.life,
		lifeSec:  a.lifeSec,
		part:     part,
		qend:     int32(qend),
		size:     int32(size),
	}
	sh.m[k] = e
	sh.pushFront(e)
	sh.mu.Unlock()
	return true, ""
}

// Stats are a cache's counters.
type Stats struct {
	Hits, Misses, Evictions int64 // since New
	Entries, Bytes          int64 // now; Bytes as MaxBytes counts it
}

// Stats sums the shards' counters.
func (c *Cache) Stats() Stats {
	var s Stats
	if c == nil {
		return s
	}
	s.Misses = c.misses.Load()
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		s.Hits += sh.hits
		s.Misses += sh.misses
		s.Evictions += sh.evictions
		s.Entries += int64(sh.n)
		s.Bytes += sh.bytes
		sh.mu.Unlock()
	}
	return s
}

func (c *Cache) shard(key []byte) *shard {
	return &c.shards[maphash.Bytes(c.seed, key)&c.mask]
}

// clock is nanoseconds since base (monotonic with the default time.Now).
func (c *Cache) clock() int64 {
	return int64(c.now().Sub(c.base))
}
