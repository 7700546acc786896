package store

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/hashicorp/go-memdb"
)

// Tables.
const (
	tableNetworks  = "networks"
	tableSandboxes = "sandboxes"
	tableEndpoints = "endpoints"
	tableAddresses = "addresses"
	tableMeta      = "meta"
	tableFiles     = "files"
)

// Indexes. Each says what it serves.
const (
	indexID             = "id"
	indexName           = "name"            // integrity + API: unique lower-cased name
	indexBridge         = "bridge"          // integrity: one network per bridge device
	indexSandbox        = "sandbox"         // teardown, resolver scope: endpoints of a sandbox
	indexNetwork        = "network"         // teardown, inspect: endpoints/addresses of a network
	indexNetworkSandbox = "network_sandbox" // integrity: one endpoint per (network, sandbox)
	indexNetworkName    = "network_name"    // DNS: (network, name or alias) -> endpoints
	indexSandboxLink    = "sandbox_link"    // DNS: (sandbox, link alias) -> endpoints carrying the link
	indexIP             = "ip"              // DNS PTR: address -> endpoints
	indexOwner          = "owner"           // IPAM release: addresses of an endpoint
	indexContainer      = "container"       // netmgr: sandboxes sharing another's netns (container mode)
	indexPublished      = "published"       // firewall, host-port picking: sandboxes with published ports
	indexLinkTarget     = "link_target"     // netmgr, firewall: (lower-cased link target) -> endpoints linking to it
)

// Prefix queries of the indexes above: go-memdb reads an index name ending in "_prefix" as
// a query by the indexer's PrefixFromArgs.
const (
	indexNetworkAddresses = indexID + "_prefix"         // IPAM: (network) -> its addresses, in numeric order
	indexAnyLink          = indexLinkTarget + "_prefix" // netmgr, firewall: every endpoint with a link
)

func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tableNetworks:  networksTable(),
		tableSandboxes: sandboxesTable(),
		tableEndpoints: endpointsTable(),
		tableAddresses: addressesTable(),
		tableMeta:      metaTable(),
		tableFiles:     filesTable(),
	}}
}

func networksTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableNetworks,
		Indexes: map[string]*memdb.IndexSchema{
			indexID:     {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			indexName:   {Name: indexName, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name", Lowercase: true}},
			indexBridge: {Name: indexBridge, Unique: true, AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "Bridge"}},
		},
	}
}

func sandboxesTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableSandboxes,
		Indexes: map[string]*memdb.IndexSchema{
			indexID:        {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			indexName:      {Name: indexName, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name", Lowercase: true}},
			indexContainer: {Name: indexContainer, AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "Container"}},
			indexPublished: {Name: indexPublished, Indexer: &memdb.ConditionalIndex{Conditional: func(obj interface{}) (bool, error) {
				return len(obj.(*Sandbox).Ports) > 0, nil
			}}},
		},
	}
}

func endpointsTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableEndpoints,
		Indexes: map[string]*memdb.IndexSchema{
			indexID:      {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			indexSandbox: {Name: indexSandbox, Indexer: &memdb.StringFieldIndex{Field: "SandboxID"}},
			indexNetwork: {Name: indexNetwork, Indexer: &memdb.StringFieldIndex{Field: "NetworkID"}},
			indexNetworkSandbox: {Name: indexNetworkSandbox, Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				&memdb.StringFieldIndex{Field: "NetworkID"},
				&memdb.StringFieldIndex{Field: "SandboxID"},
			}}},
			indexNetworkName: {Name: indexNetworkName, AllowMissing: true, Indexer: networkNameIndexer{}},
			indexSandboxLink: {Name: indexSandboxLink, AllowMissing: true, Indexer: sandboxLinkIndexer{}},
			indexIP:          {Name: indexIP, AllowMissing: true, Indexer: endpointIPIndexer{}},
			indexLinkTarget:  {Name: indexLinkTarget, AllowMissing: true, Indexer: linkTargetIndexer{}},
		},
	}
}

func addressesTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableAddresses,
		Indexes: map[string]*memdb.IndexSchema{
			indexID:      {Name: indexID, Unique: true, Indexer: addressIndexer{}},
			indexNetwork: {Name: indexNetwork, Indexer: &memdb.StringFieldIndex{Field: "NetworkID"}},
			indexOwner:   {Name: indexOwner, Indexer: &memdb.StringFieldIndex{Field: "Owner"}},
		},
	}
}

func metaTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableMeta,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
		},
	}
}

// filesTable holds what netmgr last wrote to each generated file; the sandbox index lets
// DeleteSandbox drop them with their sandbox.
func filesTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableFiles,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {Name: indexID, Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				&memdb.StringFieldIndex{Field: "SandboxID"},
				&memdb.StringFieldIndex{Field: "Name"},
			}}},
			indexSandbox: {Name: indexSandbox, Indexer: &memdb.StringFieldIndex{Field: "SandboxID"}},
		},
	}
}

// pairKey encodes (a, b) as a memdb key: both null-terminated, b lower-cased.
func pairKey(a, b string) []byte {
	return []byte(a + "\x00" + strings.ToLower(b) + "\x00")
}

func twoStrings(args []interface{}) (string, string, error) {
	if len(args) != 2 {
		return "", "", fmt.Errorf("want 2 arguments, got %d", len(args))
	}
	a, ok1 := args[0].(string)
	b, ok2 := args[1].(string)
	if !ok1 || !ok2 {
		return "", "", fmt.Errorf("want (string, string), got (%T, %T)", args[0], args[1])
	}
	return a, b, nil
}

// networkNameIndexer indexes an endpoint under (NetworkID, n) for each of its DNSNames.
type networkNameIndexer struct{}

func (networkNameIndexer) FromObject(obj interface{}) (bool, [][]byte, error) {
	ep := obj.(*Endpoint)
	keys := make([][]byte, 0, len(ep.DNSNames))
	for _, n := range ep.DNSNames {
		keys = append(keys, pairKey(ep.NetworkID, n))
	}
	return len(keys) > 0, keys, nil
}

func (networkNameIndexer) FromArgs(args ...interface{}) ([]byte, error) {
	a, b, err := twoStrings(args)
	if err != nil {
		return nil, err
	}
	return pairKey(a, b), nil
}

// sandboxLinkIndexer indexes an endpoint under (SandboxID, alias) for each of its links.
type sandboxLinkIndexer struct{}

func (sandboxLinkIndexer) FromObject(obj interface{}) (bool, [][]byte, error) {
	ep := obj.(*Endpoint)
	keys := make([][]byte, 0, len(ep.Links))
	for _, l := range ep.Links {
		keys = append(keys, pairKey(ep.SandboxID, l.Alias))
	}
	return len(keys) > 0, keys, nil
}

func (sandboxLinkIndexer) FromArgs(args ...interface{}) ([]byte, error) {
	a, b, err := twoStrings(args)
	if err != nil {
		return nil, err
	}
	return pairKey(a, b), nil
}

// linkTargetIndexer indexes an endpoint under each (lower-cased) target of its legacy links;
// the empty prefix lists every endpoint that has a link (once per link).
type linkTargetIndexer struct{}

func (linkTargetIndexer) FromObject(obj interface{}) (bool, [][]byte, error) {
	ep := obj.(*Endpoint)
	keys := make([][]byte, 0, len(ep.Links))
	for _, l := range ep.Links {
		keys = append(keys, []byte(strings.ToLower(l.Target)+"\x00"))
	}
	return len(keys) > 0, keys, nil
}

func (linkTargetIndexer) FromArgs(args ...interface{}) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("want 1 argument, got %d", len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("want string, got %T", args[0])
	}
	return []byte(strings.ToLower(s) + "\x00"), nil
}

// PrefixFromArgs with "" matches every endpoint that has a link.
func (linkTargetIndexer) PrefixFromArgs(args ...interface{}) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("want 1 argument, got %d", len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("want string, got %T", args[0])
	}
	return []byte(strings.ToLower(s)), nil
}

// addrKey is a fixed-width big-endian key, so iteration over a network's addresses is in
// numeric order (IPAM finds the first gap in one pass).
func addrKey(a netip.Addr) []byte {
	b := a.As16()
	return b[:]
}

// endpointIPIndexer indexes an endpoint under each of its addresses.
type endpointIPIndexer struct{}

func (endpointIPIndexer) FromObject(obj interface{}) (bool, [][]byte, error) {
	ep := obj.(*Endpoint)
	var keys [][]byte
	for _, a := range []netip.Addr{ep.IPv4, ep.IPv6} {
		if a.IsValid() {
			keys = append(keys, addrKey(a))
		}
	}
	return len(keys) > 0, keys, nil
}

func (endpointIPIndexer) FromArgs(args ...interface{}) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("want 1 argument, got %d", len(args))
	}
	a, ok := args[0].(netip.Addr)
	if !ok {
		return nil, fmt.Errorf("want netip.Addr, got %T", args[0])
	}
	return addrKey(a.Unmap()), nil
}

// addressIndexer keys an allocation by (NetworkID, address); with one argument it is a
// prefix over all addresses of a network, in numeric order.
type addressIndexer struct{}

func (addressIndexer) FromObject(obj interface{}) (bool, []byte, error) {
	a := obj.(*Address)
	return true, append([]byte(a.NetworkID+"\x00"), addrKey(a.Addr)...), nil
}

func (addressIndexer) FromArgs(args ...interface{}) ([]byte, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("want 2 arguments, got %d", len(args))
	}
	id, ok1 := args[0].(string)
	a, ok2 := args[1].(netip.Addr)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("want (string, netip.Addr), got (%T, %T)", args[0], args[1])
	}
	return append([]byte(id+"\x00"), addrKey(a.Unmap())...), nil
}

// PrefixFromArgs takes only the network ID: all addresses of that network.
func (addressIndexer) PrefixFromArgs(args ...interface{}) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("want 1 argument, got %d", len(args))
	}
	id, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("want string, got %T", args[0])
	}
	return []byte(id + "\x00"), nil
}
