package store

import (
	"errors"
	"fmt"

	"github.com/hashicorp/go-memdb"
)

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
