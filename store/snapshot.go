package store

import (
	"fmt"
	"hash/maphash"
	"net/netip"
	"slices"
	"sort"
	"strings"

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

// one returns the first record of table that index finds for args, or ErrNotFound.
func one[T any](s *Snapshot, table, index string, args ...interface{}) (*T, error) {
	obj, err := s.txn.First(table, index, args...)
	if err != nil {
		return nil, fmt.Errorf("%s by %s: %w", table, index, err)
	}
	if obj == nil {
		return nil, ErrNotFound
	}
	return obj.(*T), nil
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
	return slices.Clip(out)
}

// Network returns the network with this ID.
func (s *Snapshot) Network(id string) (n *Network, err error) {
	if s.view != nil {
		n = s.view.networks[id]
	}
	if n == nil {
		n, err = s.networkMiss(id)
	}
	return
}

// networkMiss is Network's answer when the view has none (see sandboxMiss).
func (s *Snapshot) networkMiss(id string) (*Network, error) {
	if s.view != nil {
		return nil, ErrNotFound
	}
	return one[Network](s, tableNetworks, indexID, id)
}

// NetworkByName returns the network with this name (case-insensitive).
func (s *Snapshot) NetworkByName(name string) (*Network, error) {
	return one[Network](s, tableNetworks, indexName, name)
}

// NetworkByBridge returns the network whose bridge device is dev.
func (s *Snapshot) NetworkByBridge(dev string) (*Network, error) {
	return one[Network](s, tableNetworks, indexBridge, dev)
}

// Networks returns all networks, ordered by name.
func (s *Snapshot) Networks() []*Network {
	return all[Network](s, tableNetworks, indexName)
}

// Sandbox returns the sandbox with this ID.
func (s *Snapshot) Sandbox(id string) (sb *Sandbox, err error) {
	// Shaped to fit the compiler's inlining budget (TestInlining), as Network is: a DNS
	// answer asks for sandboxes and networks two to six times, and as calls they cost 3-11%
	// of resolver BenchmarkLookup.
	if s.view != nil {
		sb = s.view.sandboxes[id]
	}
	if sb == nil {
		sb, err = s.sandboxMiss(id)
	}
	return
}

// sandboxMiss is Sandbox's answer when the view has none: ErrNotFound on a published
// snapshot, memdb's inside Update. A call of its own, so that Sandbox stays small.
func (s *Snapshot) sandboxMiss(id string) (*Sandbox, error) {
	if s.view != nil {
		return nil, ErrNotFound
	}
	return one[Sandbox](s, tableSandboxes, indexID, id)
}

// SandboxByName returns the sandbox with this name (case-insensitive).
func (s *Snapshot) SandboxByName(name string) (*Sandbox, error) {
	return one[Sandbox](s, tableSandboxes, indexName, name)
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
	for _, ep := range all[Endpoint](s, tableEndpoints, indexAnyLink, "") {
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
	return one[Endpoint](s, tableEndpoints, indexID, id)
}

// EndpointOf returns the endpoint joining sandbox sbID to network netID.
func (s *Snapshot) EndpointOf(netID, sbID string) (*Endpoint, error) {
	return one[Endpoint](s, tableEndpoints, indexNetworkSandbox, netID, sbID)
}

// SandboxEndpoints returns the endpoints of a sandbox in join order (Seq, then ID).
func (s *Snapshot) SandboxEndpoints(sbID string) []*Endpoint {
	if s.view != nil {
		return s.view.joined[sbID]
	}
	return s.sandboxEndpoints(sbID) // out of line: the view path above inlines
}

func (s *Snapshot) sandboxEndpoints(sbID string) []*Endpoint {
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
	if s.view == nil {
		return all[Endpoint](s, tableEndpoints, indexNetworkName, netID, name)
	}
	// The view's keys are strings.ToLower of the names. An ASCII name is lower-cased on
	// the stack, so the lookup allocates nothing; it is in this function, not a view
	// method, to cost one call per lookup.
	names := s.view.names[netID]
	if names == nil {
		return nil
	}
	switch fold := foldCase(name); {
	case fold == foldNone:
		return names[shardOf(name)][name]
	case fold == foldUnicode || len(name) > maxNameLen:
		key := strings.ToLower(name) // not on the stack: rare
		return names[shardOf(key)][key]
	}
	var buf [maxNameLen]byte
	b := buf[:len(name)]
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	// No allocation: the compiler reads the map with the bytes.
	return names[maphash.Bytes(nameSeed, b)%nameShards][string(b)]
}

// EndpointsByLink returns the endpoints of sandbox sbID that carry a link with this alias.
func (s *Snapshot) EndpointsByLink(sbID, alias string) []*Endpoint {
	return all[Endpoint](s, tableEndpoints, indexSandboxLink, sbID, alias)
}

// EndpointsByIP returns the endpoints holding address a, on any network, ordered by ID.
func (s *Snapshot) EndpointsByIP(a netip.Addr) []*Endpoint {
	if s.view != nil {
		return s.view.byIP[a.Unmap()]
	}
	return all[Endpoint](s, tableEndpoints, indexIP, a)
}

// Address returns the allocation of a on network netID.
func (s *Snapshot) Address(netID string, a netip.Addr) (*Address, error) {
	return one[Address](s, tableAddresses, indexID, netID, a)
}

// NetworkAddresses returns the allocations of a network in numeric order (IPv4 before IPv6).
func (s *Snapshot) NetworkAddresses(netID string) []*Address {
	return all[Address](s, tableAddresses, indexNetworkAddresses, netID)
}

// File returns the record of generated file name ("etc/hosts", ...) of sandbox sbID.
func (s *Snapshot) File(sbID, name string) (*File, error) {
	return one[File](s, tableFiles, indexID, sbID, name)
}

// SandboxFiles returns the file records of a sandbox, ordered by name.
func (s *Snapshot) SandboxFiles(sbID string) []*File {
	return all[File](s, tableFiles, indexSandbox, sbID)
}

// Counter returns a persisted counter (0 if never set).
func (s *Snapshot) Counter(key string) uint64 {
	m, err := one[Meta](s, tableMeta, indexID, key)
	if err != nil {
		return 0
	}
	return m.Value
}
