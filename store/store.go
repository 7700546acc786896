package store

import (
	"errors"
	"fmt"
	"slices"
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
func (s *Store) Update(fn func(tx *Tx) error) error { return s.update(fn, false) }

// UpdateLater is Update for changes that a crash may lose: they are visible at once and
// written to disk in the background (a ~1 ms commit off the caller's path), always before
// any later commit's changes, and at Close. netmgr uses it for removing a sandbox whose
// netns is gone with it: if the records come back after a crash, the restore pass finds
// the netns gone and drops them again.
func (s *Store) UpdateLater(fn func(tx *Tx) error) error { return s.update(fn, true) }

func (s *Store) update(fn func(tx *Tx) error, later bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	txn := s.db.Txn(true)
	defer txn.Abort() // a no-op after Commit
	txn.TrackChanges()
	if err := fn(&Tx{Snapshot: Snapshot{txn: txn}}); err != nil {
		return err
	}
	changes := txn.Changes()
	if s.disk != nil && !later {
		if err := s.write(changes); err != nil {
			return fmt.Errorf("persist state: %w", err)
		}
	}
	txn.Commit()
	if s.disk != nil && later && len(changes) > 0 {
		s.enqueue(changes)
	}
	// Publish the new state: memdb's read transaction and the view derived from the same
	// changes, under mu so a later commit cannot be published first.
	s.cur.Store(&Snapshot{txn: s.db.Txn(false), view: s.cur.Load().view.apply(changes)})
	return nil
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
