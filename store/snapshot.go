package store

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"

	"github.com/hashicorp/go-memdb"
)

// Snapshot is a read transaction with typed getters, the store's one read API. The
// contract is the same for every getter and both kinds of Snapshot (from Store.Snapshot,
// or a Tx inside Update):
//   - returned records and slices are shared: never modify them (Copy a record before
//     changing it, slices.Clone a slice before sorting it or writing into it);
//   - a getter of one record returns ErrNotFound on a miss, a getter of a list returns
//     an empty (nil) slice.
//
// A Snapshot from Store.Snapshot is shared by all readers: its memdb transaction is only
// ever read (go-memdb read transactions keep no state of their own) and its view is
// immutable. The getters the DNS answer path uses read the view when there is one (see
// view.go) and memdb's schema indexes otherwise.
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
	if s.view != nil {
		if n := s.view.networks[id]; n != nil {
			return n, nil
		}
		return nil, ErrNotFound
	}
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
	if s.view != nil {
		if sb := s.view.sandboxes[id]; sb != nil {
			return sb, nil
		}
		return nil, ErrNotFound
	}
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

// SandboxEndpoints returns the endpoints of a sandbox in join order (Seq, then ID).
func (s *Snapshot) SandboxEndpoints(sbID string) []*Endpoint {
	if s.view != nil {
		return slices.Clip(s.view.joined[sbID])
	}
	out := all[Endpoint](s, tableEndpoints, indexSandbox, sbID)
	slices.SortFunc(out, bySeq)
	return out
}

// NetworkEndpoints returns the endpoints on a network.
func (s *Snapshot) NetworkEndpoints(netID string) []*Endpoint {
	return all[Endpoint](s, tableEndpoints, indexNetwork, netID)
}

// EndpointsByName returns the endpoints on network netID that answer to name (a sandbox
// name, alias, short ID or hostname; case-insensitive), ordered by ID.
func (s *Snapshot) EndpointsByName(netID, name string) []*Endpoint {
	if s.view != nil {
		return slices.Clip(s.view.endpointsByName(netID, name))
	}
	return all[Endpoint](s, tableEndpoints, indexNetworkName, netID, name)
}

// EndpointsByLink returns the endpoints of sandbox sbID that carry a link with this alias.
func (s *Snapshot) EndpointsByLink(sbID, alias string) []*Endpoint {
	return all[Endpoint](s, tableEndpoints, indexSandboxLink, sbID, alias)
}

// EndpointsByIP returns the endpoints holding address a, on any network, ordered by ID.
func (s *Snapshot) EndpointsByIP(a netip.Addr) []*Endpoint {
	if s.view != nil {
		return slices.Clip(s.view.byIP[a.Unmap()])
	}
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
