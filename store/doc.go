// Package store owns berth's records (networks, sandboxes, endpoints, address allocations)
// and keeps them durable: go-memdb in memory for lock-free readers, bbolt on disk. It has no
// policy beyond integrity (unique names, one address per network) and no kernel or sockets.
//
// # Writing
//
// netmgr is the only writer (Update). Every write is one memdb write transaction, written to
// bbolt (persist.go) before it is made visible (UpdateLater: just after).
//
// # Reading: one API
//
// Everyone reads through a Snapshot: Store.Snapshot for the latest commit (lock-free, never
// blocks a writer, never sees a half-made change), or the Snapshot inside a Tx, which sees
// the transaction's own writes. Both have the same getters with the same contract: records
// and slices they return are shared and never modified (Copy a record, slices.Clone a
// slice); a getter of one record answers a miss with ErrNotFound, a getter of a list with an
// empty slice.
//
// The getters are memdb queries on the schema's indexes (schema.go: one function per
// table; table and index names are constants, each index says what it serves, and every
// query in this package names them), as Nomad and Consul read their state stores.
//
// # The answer path's index
//
// A published Snapshot also carries a view (view.go): Go maps derived from memdb at each
// commit, from the commit's memdb.Changes, so there is still one owner of the records and
// nothing to keep in step by hand. The five getters a DNS answer uses (Sandbox, Network,
// SandboxEndpoints, EndpointsByName, EndpointsByIP) read it when the Snapshot has one and
// memdb's indexes otherwise (inside Update). TestViewMatchesMemdb checks, after random
// commits, that every map of the view holds what memdb's indexes hold.
//
// Why: every go-memdb getter allocates (index key, radix iterator, result slice). With the
// view's getters switched to memdb, resolver BenchmarkLookup/A_hit/append went from 122 ns
// and 0 allocations to 2,090 ns and 36, and dnsd BenchmarkFastA/A from 200 ns and 0 to
// 1,730 ns and 36 (measured 2026-12-07). berth spends about 6.7 us of CPU per answer, so
// that would be about 20% more CPU per answer, plus the garbage collection.
package store
