// Package store owns berth's records (networks, sandboxes, endpoints, address allocations)
// and keeps them durable: go-memdb in memory for lock-free readers, bbolt on disk. It has no
// policy beyond integrity (unique names, one address per network) and no kernel or sockets.
//
// netmgr is the only writer (Update). Everyone else reads through Snapshot, a memdb read
// transaction that never blocks and never sees a half-made change.
package store

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-memdb"
)

// Sentinels checked with errors.Is at the API boundary.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// Store is the live state plus its durable copy.
type Store struct {
	db   *memdb.MemDB
	disk *disk // nil for a memory-only store (tests)

	// cur is the latest committed state: a read transaction and the view derived from it,
	// published together so a reader never sees one without the other. Readers only Load.
	cur atomic.Pointer[Snapshot] // always non-nil after newStore

	mu sync.Mutex // serializes Update so views are published in commit order

	// Changes of UpdateLater reach the disk after they are visible: queued in commit order,
	// written by one goroutine or by the next durable commit ahead of its own changes.
	diskMu   sync.Mutex    // held from taking changes off the queue until they are written
	qmu      sync.Mutex    // guards following
	queue    memdb.Changes // committed in memory, not yet on disk
	flushing bool          // a goroutine is writing the queue
	flushed  *sync.Cond    // on qmu: signalled when a flushing goroutine ends
}

// Open loads the state file at path (creating it if missing) and takes its lock, so a second
// daemon on the same state fails at once instead of sharing it.
func Open(path string) (*Store, error) {
	d, err := openDisk(path)
	if err != nil {
		return nil, err
	}
	s, err := newStore(d)
	if err != nil {
		d.close()
		return nil, err
	}
	return s, nil
}

// NewMemory returns a store with no durable copy, for tests.
func NewMemory() *Store {
	s, err := newStore(nil)
	if err != nil {
		panic(err) // only a broken schema gets here
	}
	return s
}

func newStore(d *disk) (*Store, error) {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, fmt.Errorf("memdb schema: %w", err)
	}
	s := &Store{db: db, disk: d}
	s.flushed = sync.NewCond(&s.qmu)
	if d != nil {
		txn := db.Txn(true)
		defer txn.Abort()
		if err := d.load(txn); err != nil {
			return nil, err
		}
		txn.Commit()
	}
	read := db.Txn(false)
	s.cur.Store(&Snapshot{txn: read, view: buildView(read)})
	return s, nil
}

// Close writes what UpdateLater left queued and releases the state file.
func (s *Store) Close() error {
	if s.disk == nil {
		return nil
	}
	return errors.Join(s.Flush(), s.disk.close())
}

// Snapshot returns a consistent read-only view of the latest commit. It is free (the same
// value is shared by every reader until the next commit), never blocks writers and may be
// used from several goroutines.
func (s *Store) Snapshot() *Snapshot {
	return s.cur.Load()
}

// Update runs fn in one write transaction. If fn succeeds the changes are written to disk
// and only then made visible in memory, so everything a caller acknowledges is durable. If
// fn or the disk write fails nothing changes.
func (s *Store) Update(fn func(tx *Tx) error) error {
	p, err := s.Begin(fn)
	if err != nil {
		return err
	}
	return p.Commit(nil)
}

// UpdateLater is Update for changes that a crash may lose: they are visible at once and
// written to disk in the background (a ~1 ms commit off the caller's path), always before
// any later commit's changes, and at Close. netmgr uses it for removing a sandbox whose
// netns is gone with it: if the records come back after a crash, the restore pass finds
// the netns gone and drops them again.
func (s *Store) UpdateLater(fn func(tx *Tx) error) error {
	p, err := s.Begin(fn)
	if err != nil {
		return err
	}
	return p.commit(nil, true)
}

// Flush writes what UpdateLater queued and returns the error of the write, if any.
func (s *Store) Flush() error {
	if s.disk == nil {
		return nil
	}
	s.qmu.Lock()
	for s.flushing {
		s.flushed.Wait()
	}
	s.qmu.Unlock()
	return s.write(nil)
}

// write puts the queued changes, then own, on disk in one bbolt transaction, in commit
// order. On failure the queued ones stay queued (the next commit tries again).
func (s *Store) write(own memdb.Changes) error {
	s.diskMu.Lock()
	defer s.diskMu.Unlock()
	s.qmu.Lock()
	queued := s.queue
	s.queue = nil
	s.qmu.Unlock()
	err := s.disk.save(append(slices.Clip(queued), own...))
	if err != nil && len(queued) > 0 {
		s.qmu.Lock()
		s.queue = append(queued, s.queue...)
		s.qmu.Unlock()
	}
	return err
}

// enqueue adds changes to the disk queue (under mu, so in commit order) and starts the
// goroutine that writes it unless one runs. That goroutine stops at the first failure; the
// queue then waits for the next commit.
func (s *Store) enqueue(changes memdb.Changes) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	s.queue = append(s.queue, changes...)
	if s.flushing {
		return
	}
	s.flushing = true
	go func() {
		for {
			err := s.write(nil)
			s.qmu.Lock()
			if err != nil || len(s.queue) == 0 {
				s.flushing = false
				s.flushed.Broadcast()
				s.qmu.Unlock()
				return
			}
			s.qmu.Unlock()
		}
	}()
}

// Pending is a write transaction held open across work that has to happen between making
// records and committing them (netmgr's kernel work for a new sandbox): one disk commit
// instead of two. Until Commit or Abort, readers see the state before it, and every other
// Begin or Update waits. Its Tx reads its own changes.
type Pending struct {
	Tx   *Tx
	s    *Store
	txn  *memdb.Txn
	done bool
}

// Begin runs fn in a new write transaction and holds it open. If fn fails nothing changes
// and nothing is held.
func (s *Store) Begin(fn func(tx *Tx) error) (*Pending, error) {
	s.mu.Lock()
	txn := s.db.Txn(true)
	txn.TrackChanges()
	p := &Pending{Tx: &Tx{Snapshot: Snapshot{txn: txn}}, s: s, txn: txn}
	if err := fn(p.Tx); err != nil {
		p.Abort()
		return nil, err
	}
	return p, nil
}

// Commit runs fn (nil: nothing more) in the pending transaction, then writes all its
// changes to disk and only then makes them visible. On any failure nothing changes. The
// transaction is finished either way.
func (p *Pending) Commit(fn func(tx *Tx) error) error { return p.commit(fn, false) }

func (p *Pending) commit(fn func(tx *Tx) error, later bool) error {
	if p.done {
		return errors.New("store: transaction already finished")
	}
	defer p.Abort()
	if fn != nil {
		if err := fn(p.Tx); err != nil {
			return err
		}
	}
	changes := p.txn.Changes()
	if p.s.disk != nil && !later {
		if err := p.s.write(changes); err != nil {
			return fmt.Errorf("persist state: %w", err)
		}
	}
	p.txn.Commit()
	if p.s.disk != nil && later && len(changes) > 0 {
		p.s.enqueue(changes)
	}
	// Publish the new state: memdb's read transaction and the view derived from the same
	// changes, under mu so a later commit cannot be published first.
	p.s.cur.Store(&Snapshot{txn: p.s.db.Txn(false), view: p.s.cur.Load().view.apply(changes)})
	return nil
}

// Abort drops the pending changes. It is a no-op after Commit or Abort.
func (p *Pending) Abort() {
	if p.done {
		return
	}
	p.done = true
	p.txn.Abort() // a no-op after Commit
	p.s.mu.Unlock()
}

// Snapshot is a read transaction with typed getters. Returned records are shared: never
// mutate them (Copy first). A Snapshot from Store.Snapshot is shared by all readers: its
// memdb transaction is only ever read (go-memdb read transactions keep no state of their
// own) and its view is immutable.
type Snapshot struct {
	txn  *memdb.Txn
	view *view // derived DNS index of the same commit; nil inside Update (a write txn)
}

func (s *Snapshot) first(table, index string, args ...interface{}) (interface{}, error) {
	obj, err := s.txn.First(table, index, args...)
	if err != nil {
		return nil, fmt.Errorf("%s by %s: %w", table, index, err)
	}
	if obj == nil {
		return nil, ErrNotFound
	}
	return obj, nil
}

func all[T any](s *Snapshot, table, index string, args ...interface{}) []*T {
	it, err := s.txn.Get(table, index, args...)
	if err != nil {
		panic(fmt.Sprintf("store: %s by %s: %v", table, index, err)) // schema bug, not data
	}
	var out []*T
	for obj := it.Next(); obj != nil; obj = it.Next() {
		out = append(out, obj.(*T))
	}
	return out
}

// Network returns the network with this ID.
func (s *Snapshot) Network(id string) (*Network, error) {
	obj, err := s.first(tableNetworks, indexID, id)
	if err != nil {
		return nil, err
	}
	return obj.(*Network), nil
}

// NetworkByName returns the network with this name (case-insensitive).
func (s *Snapshot) NetworkByName(name string) (*Network, error) {
	obj, err := s.first(tableNetworks, indexName, name)
	if err != nil {
		return nil, err
	}
	return obj.(*Network), nil
}

// NetworkByBridge returns the network whose bridge device is dev.
func (s *Snapshot) NetworkByBridge(dev string) (*Network, error) {
	obj, err := s.first(tableNetworks, indexBridge, dev)
	if err != nil {
		return nil, err
	}
	return obj.(*Network), nil
}

// Networks returns all networks, ordered by name.
func (s *Snapshot) Networks() []*Network {
	return all[Network](s, tableNetworks, indexName)
}

// Sandbox returns the sandbox with this ID.
func (s *Snapshot) Sandbox(id string) (*Sandbox, error) {
	obj, err := s.first(tableSandboxes, indexID, id)
	if err != nil {
		return nil, err
	}
	return obj.(*Sandbox), nil
}

// SandboxByName returns the sandbox with this name (case-insensitive).
func (s *Snapshot) SandboxByName(name string) (*Sandbox, error) {
	obj, err := s.first(tableSandboxes, indexName, name)
	if err != nil {
		return nil, err
	}
	return obj.(*Sandbox), nil
}

// Sandboxes returns all sandboxes in creation order.
func (s *Snapshot) Sandboxes() []*Sandbox {
	out := all[Sandbox](s, tableSandboxes, indexID)
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

// SandboxesSharing returns the container-mode sandboxes that share sandbox id's netns.
func (s *Snapshot) SandboxesSharing(id string) []*Sandbox {
	return all[Sandbox](s, tableSandboxes, indexContainer, id)
}

// PublishingSandboxes returns the sandboxes with published ports, in creation order. Served
// by an index: the cost follows the number of such sandboxes, not of all sandboxes.
func (s *Snapshot) PublishingSandboxes() []*Sandbox {
	out := all[Sandbox](s, tableSandboxes, indexPublished, true)
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

// EndpointsLinkingTo returns the endpoints with a legacy link whose target is name
// (case-insensitive), ordered by ID.
func (s *Snapshot) EndpointsLinkingTo(name string) []*Endpoint {
	return all[Endpoint](s, tableEndpoints, indexLinkTarget, name)
}

// LinkingEndpoints returns every endpoint that has at least one legacy link, ordered by ID.
func (s *Snapshot) LinkingEndpoints() []*Endpoint {
	var out []*Endpoint
	seen := map[string]bool{}
	for _, ep := range all[Endpoint](s, tableEndpoints, indexLinkTarget+"_prefix", "") {
		if !seen[ep.ID] {
			seen[ep.ID] = true
			out = append(out, ep)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Endpoint returns the endpoint with this ID.
func (s *Snapshot) Endpoint(id string) (*Endpoint, error) {
	obj, err := s.first(tableEndpoints, indexID, id)
	if err != nil {
		return nil, err
	}
	return obj.(*Endpoint), nil
}

// EndpointOf returns the endpoint joining sandbox sbID to network netID.
func (s *Snapshot) EndpointOf(netID, sbID string) (*Endpoint, error) {
	obj, err := s.first(tableEndpoints, indexNetworkSandbox, netID, sbID)
	if err != nil {
		return nil, err
	}
	return obj.(*Endpoint), nil
}

// SandboxEndpoints returns the endpoints of a sandbox in join order.
func (s *Snapshot) SandboxEndpoints(sbID string) []*Endpoint {
	out := all[Endpoint](s, tableEndpoints, indexSandbox, sbID)
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

// NetworkEndpoints returns the endpoints on a network.
func (s *Snapshot) NetworkEndpoints(netID string) []*Endpoint {
	return all[Endpoint](s, tableEndpoints, indexNetwork, netID)
}

// EndpointsByName returns the endpoints on network netID that answer to name (a sandbox
// name, alias, short ID or hostname; case-insensitive). Served by an index: no scan.
func (s *Snapshot) EndpointsByName(netID, name string) []*Endpoint {
	return all[Endpoint](s, tableEndpoints, indexNetworkName, netID, name)
}

// EachEndpointByName calls fn for each endpoint EndpointsByName would return, without
// building a slice (the DNS answer path).
func (s *Snapshot) EachEndpointByName(netID, name string, fn func(*Endpoint)) {
	it, err := s.txn.Get(tableEndpoints, indexNetworkName, netID, name)
	if err != nil {
		panic(fmt.Sprintf("store: endpoints by name: %v", err))
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		fn(obj.(*Endpoint))
	}
}

// EndpointsByLink returns the endpoints of sandbox sbID that carry a link with this alias.
func (s *Snapshot) EndpointsByLink(sbID, alias string) []*Endpoint {
	return all[Endpoint](s, tableEndpoints, indexSandboxLink, sbID, alias)
}

// EndpointsByIP returns the endpoints holding address a, on any network.
func (s *Snapshot) EndpointsByIP(a netip.Addr) []*Endpoint {
	return all[Endpoint](s, tableEndpoints, indexIP, a)
}

// Address returns the allocation of a on network netID.
func (s *Snapshot) Address(netID string, a netip.Addr) (*Address, error) {
	obj, err := s.first(tableAddresses, indexID, netID, a)
	if err != nil {
		return nil, err
	}
	return obj.(*Address), nil
}

// NetworkAddresses returns the allocations of a network in numeric order (IPv4 before IPv6).
func (s *Snapshot) NetworkAddresses(netID string) []*Address {
	return all[Address](s, tableAddresses, indexID+"_prefix", netID)
}

// File returns the record of generated file name ("etc/hosts", ...) of sandbox sbID.
func (s *Snapshot) File(sbID, name string) (*File, error) {
	obj, err := s.first(tableFiles, indexID, sbID, name)
	if err != nil {
		return nil, err
	}
	return obj.(*File), nil
}

// SandboxFiles returns the file records of a sandbox, ordered by name.
func (s *Snapshot) SandboxFiles(sbID string) []*File {
	return all[File](s, tableFiles, indexSandbox, sbID)
}

// Counter returns a persisted counter (0 if never set).
func (s *Snapshot) Counter(key string) uint64 {
	obj, err := s.first(tableMeta, indexID, key)
	if err != nil {
		return 0
	}
	return obj.(*Meta).Value
}

// Tx is a write transaction: the getters of Snapshot plus typed writes. Inserting a record
// replaces the one with the same ID; unique indexes turn into ErrConflict.
type Tx struct {
	Snapshot
}

func (tx *Tx) insert(table string, obj interface{}) error {
	if err := tx.txn.Insert(table, obj); err != nil {
		return fmt.Errorf("insert into %s: %w: %v", table, ErrConflict, err)
	}
	return nil
}

func (tx *Tx) delete(table string, obj interface{}) error {
	if err := tx.txn.Delete(table, obj); err != nil {
		if errors.Is(err, memdb.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("delete from %s: %w", table, err)
	}
	return nil
}

// PutNetwork inserts or replaces a network; names and bridges must be unique.
func (tx *Tx) PutNetwork(n *Network) error {
	if err := tx.checkUnique(tableNetworks, indexName, n.ID, n.Name); err != nil {
		return fmt.Errorf("network name %q: %w", n.Name, err)
	}
	if n.Bridge != "" {
		if err := tx.checkUnique(tableNetworks, indexBridge, n.ID, n.Bridge); err != nil {
			return fmt.Errorf("bridge %q: %w", n.Bridge, err)
		}
	}
	return tx.insert(tableNetworks, n)
}

// DeleteNetwork removes a network record.
func (tx *Tx) DeleteNetwork(n *Network) error { return tx.delete(tableNetworks, n) }

// PutSandbox inserts or replaces a sandbox; names must be unique.
func (tx *Tx) PutSandbox(sb *Sandbox) error {
	if err := tx.checkUnique(tableSandboxes, indexName, sb.ID, sb.Name); err != nil {
		return fmt.Errorf("sandbox name %q: %w", sb.Name, err)
	}
	return tx.insert(tableSandboxes, sb)
}

// DeleteSandbox removes a sandbox record and the file records that belong to it.
func (tx *Tx) DeleteSandbox(sb *Sandbox) error {
	if _, err := tx.txn.DeleteAll(tableFiles, indexSandbox, sb.ID); err != nil {
		return fmt.Errorf("delete files of sandbox %s: %w", ShortID(sb.ID), err)
	}
	return tx.delete(tableSandboxes, sb)
}

// PutFile inserts or replaces the record of one generated file.
func (tx *Tx) PutFile(f *File) error { return tx.insert(tableFiles, f) }

// PutEndpoint inserts or replaces an endpoint; one per (network, sandbox).
func (tx *Tx) PutEndpoint(ep *Endpoint) error {
	obj, err := tx.txn.First(tableEndpoints, indexNetworkSandbox, ep.NetworkID, ep.SandboxID)
	if err != nil {
		return err
	}
	if obj != nil && obj.(*Endpoint).ID != ep.ID {
		return fmt.Errorf("endpoint of sandbox %s on network %s: %w", ShortID(ep.SandboxID), ShortID(ep.NetworkID), ErrConflict)
	}
	return tx.insert(tableEndpoints, ep)
}

// DeleteEndpoint removes an endpoint record (its addresses are released separately).
func (tx *Tx) DeleteEndpoint(ep *Endpoint) error { return tx.delete(tableEndpoints, ep) }

// PutAddress records an allocation. An address already held by another owner is ErrConflict.
func (tx *Tx) PutAddress(a *Address) error {
	if old, err := tx.Address(a.NetworkID, a.Addr); err == nil && old.Owner != a.Owner {
		return fmt.Errorf("address %s: %w", a.Addr, ErrConflict)
	}
	return tx.insert(tableAddresses, a)
}

// ReleaseOwner frees every address held by an endpoint.
func (tx *Tx) ReleaseOwner(owner string) error {
	if _, err := tx.txn.DeleteAll(tableAddresses, indexOwner, owner); err != nil {
		return fmt.Errorf("release addresses of %s: %w", owner, err)
	}
	return nil
}

// NextCounter increments a persisted counter and returns the new value.
func (tx *Tx) NextCounter(key string) (uint64, error) {
	v := tx.Counter(key) + 1
	return v, tx.insert(tableMeta, &Meta{Key: key, Value: v})
}

// checkUnique fails with ErrConflict if another record (not id) holds key in a unique index.
func (tx *Tx) checkUnique(table, index, id, key string) error {
	obj, err := tx.txn.First(table, index, key)
	if err != nil {
		return err
	}
	if obj == nil {
		return nil
	}
	var other string
	switch o := obj.(type) {
	case *Network:
		other = o.ID
	case *Sandbox:
		other = o.ID
	}
	if other != id {
		return ErrConflict
	}
	return nil
}
