package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/go-memdb"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The durable encoding lives in this file only: one bbolt bucket per table, JSON values keyed
// by primary key, and a schema version, so the in-memory shape can change without touching
// callers.

const schemaVersion = 1

// persistTables have one bucket each. A table added later (files) gets its bucket when an
// older state file is opened: no version change, since no existing record changes shape.
var persistTables = []string{tableNetworks, tableSandboxes, tableEndpoints, tableAddresses, tableMeta, tableFiles}

var (
	bucketMeta = []byte("berth")
	keyVersion = []byte("schema_version")
)

// ErrLocked means another daemon holds the state file.
var ErrLocked = errors.New("state file is locked by another berth daemon")

type disk struct {
	db   *bolt.DB
	path string
}

func openDisk(path string) (*disk, error) {
	// The flock bbolt takes is our "one daemon per state dir" guard; a short timeout turns a
	// second daemon into a fast, clear failure instead of a hang. The freelist is not written
	// on each commit but rebuilt by a scan of the file at open (as etcd does): every create
	// and rm commits, and writing the freelist is a large share of a small commit
	// (BenchmarkUpdate/disk). The hashmap freelist keeps allocation O(1) per page.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 200 * time.Millisecond, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open state %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w (the file is damaged or not a berth state file; move it away to start empty)", path, err)
	}
	d := &disk{db: db, path: path}
	err = db.Update(func(btx *bolt.Tx) error {
		meta, err := btx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(keyVersion); v != nil {
			n, err := strconv.Atoi(string(v))
			if err != nil || n != schemaVersion {
				return fmt.Errorf("schema version %q, this berth reads %d", v, schemaVersion)
			}
		} else if err := meta.Put(keyVersion, []byte(strconv.Itoa(schemaVersion))); err != nil {
			return err
		}
		for _, t := range persistTables {
			if _, err := btx.CreateBucketIfNotExists([]byte(t)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	return d, nil
}

func (d *disk) close() error { return d.db.Close() }

// primaryKey is the bbolt key of a record.
func primaryKey(obj interface{}) string {
	switch o := obj.(type) {
	case *Network:
		return o.ID
	case *Sandbox:
		return o.ID
	case *Endpoint:
		return o.ID
	case *Address:
		return o.NetworkID + "/" + o.Addr.String()
	case *Meta:
		return o.Key
	case *File:
		return o.SandboxID + "/" + o.Name
	}
	panic(fmt.Sprintf("store: no primary key for %T", obj))
}

// save writes one transaction's changes in one bbolt transaction (fsynced on commit).
func (d *disk) save(changes memdb.Changes) error {
	if len(changes) == 0 {
		return nil
	}
	return d.db.Update(func(btx *bolt.Tx) error {
		for _, c := range changes {
			b := btx.Bucket([]byte(c.Table))
			if c.Deleted() {
				if err := b.Delete([]byte(primaryKey(c.Before))); err != nil {
					return err
				}
				continue
			}
			if c.Updated() && primaryKey(c.Before) != primaryKey(c.After) {
				if err := b.Delete([]byte(primaryKey(c.Before))); err != nil {
					return err
				}
			}
			v, err := json.Marshal(c.After)
			if err != nil {
				return fmt.Errorf("encode %s: %w", c.Table, err)
			}
			if err := b.Put([]byte(primaryKey(c.After)), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// load fills a fresh memdb transaction from disk. A record that does not decode or that
// breaks an index is an error: a damaged state file stops the daemon, never a silent reset.
func (d *disk) load(txn *memdb.Txn) error {
	return d.db.View(func(btx *bolt.Tx) error {
		for _, t := range persistTables {
			err := btx.Bucket([]byte(t)).ForEach(func(k, v []byte) error {
				obj := newRecord(t)
				if err := json.Unmarshal(v, obj); err != nil {
					return fmt.Errorf("state %s: decode %s/%s: %w", d.path, t, k, err)
				}
				if primaryKey(obj) != string(k) {
					return fmt.Errorf("state %s: record %s/%s has key %q", d.path, t, k, primaryKey(obj))
				}
				if err := txn.Insert(t, obj); err != nil {
					return fmt.Errorf("state %s: load %s/%s: %w", d.path, t, k, err)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

func newRecord(table string) interface{} {
	switch table {
	case tableNetworks:
		return &Network{}
	case tableSandboxes:
		return &Sandbox{}
	case tableEndpoints:
		return &Endpoint{}
	case tableAddresses:
		return &Address{}
	case tableMeta:
		return &Meta{}
	case tableFiles:
		return &File{}
	}
	panic("store: unknown table " + table)
}

// intentTables are the tables an intent carries: the records of a thing being made.
// Networks are made with their own commit first; counters only ever move forward.
var intentTables = []string{tableSandboxes, tableEndpoints, tableAddresses}

// Intent encodes the records of a sandbox about to be made (netmgr plans them, does the
// kernel work, then commits them), so that Recover can put them back after a crash before
// the commit: netmgr keeps it in a file meanwhile, as the kernel objects made for those
// records must be found and undone by the restore pass.
func Intent(sb *Sandbox, eps []*Endpoint, addrs []*Address) ([]byte, error) {
	recs := map[string][]json.RawMessage{}
	add := func(table string, obj any) error {
		v, err := json.Marshal(obj)
		if err != nil {
			return fmt.Errorf("encode %s: %w", table, err)
		}
		recs[table] = append(recs[table], v)
		return nil
	}
	if err := add(tableSandboxes, sb); err != nil {
		return nil, err
	}
	for _, ep := range eps {
		if err := add(tableEndpoints, ep); err != nil {
			return nil, err
		}
	}
	for _, a := range addrs {
		if err := add(tableAddresses, a); err != nil {
			return nil, err
		}
	}
	return json.Marshal(recs)
}

// Recover commits the records of an intent as they were encoded (an existing record with
// the same key is replaced).
func (s *Store) Recover(intent []byte) error {
	var recs map[string][]json.RawMessage
	if err := json.Unmarshal(intent, &recs); err != nil {
		return fmt.Errorf("decode intent: %w", err)
	}
	return s.Update(func(tx *Tx) error {
		for _, t := range intentTables {
			for _, v := range recs[t] {
				obj := newRecord(t)
				if err := json.Unmarshal(v, obj); err != nil {
					return fmt.Errorf("decode intent %s: %w", t, err)
				}
				if err := tx.insert(t, obj); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
