package netmgr

import (
	"context"
	"errors"
	"net/netip"

	"berth/store"
)

// Cluster is the cluster store behind global (overlay) networks, the daemon's
// --cluster-store (package cluster, on etcd); nil without one, and then no overlay network
// can be made. netmgr calls it during a change, under its lock: each call goes over the
// network and returns within the implementation's own timeout. netmgr never imports the
// implementation, so its unit tests run with a fake.
//
// The cluster store is the authority for what is global: network names, subnets, VNIs and
// address claims. Every host mirrors it into its own store (ApplyRemote), which is what
// DNS answers from.
type Cluster interface {
	// HostID is this host's cluster ID, stable across restarts.
	HostID() string
	// Advertise is this host's underlay address (--cluster-advertise): the VXLAN source
	// address, and where the other hosts send this host's endpoints' frames.
	Advertise() netip.Addr
	// CreateNetwork records n (Driver overlay, Scope global; ID, name and subnets set) and
	// returns the VNI it allocated for it. store.ErrConflict if another global network has
	// the name, the VNI or one of the subnets; ErrClusterUnreachable when the store is.
	CreateNetwork(ctx context.Context, n *store.Network) (vni int, err error)
	// RemoveNetwork deletes the global network id with its address claims. store.ErrConflict
	// (the error names the host) while any live host has an endpoint or an address claim on it.
	RemoveNetwork(ctx context.Context, id string) error
	// ClaimAddr claims address a of global network netID for endpoint epID of this host
	// (create-if-absent in one transaction that also checks the network still exists).
	// store.ErrConflict if another endpoint holds it, store.ErrNotFound if the network is
	// gone. A claim is not on the host's lease: a host killed mid-create keeps it, so the
	// address is never handed out twice; the host itself drops it when it restarts and
	// finds no endpoint holding it (Manager.ReconcileClaims).
	ClaimAddr(ctx context.Context, netID string, a netip.Addr, epID string) error
	// ReleaseAddr drops this host's claim on a, if epID still holds it.
	ReleaseAddr(ctx context.Context, netID string, a netip.Addr, epID string) error
	// Claims lists this host's address claims.
	Claims(ctx context.Context) ([]Claim, error)
}

// Claim is one address of a global network claimed by this host for one endpoint.
type Claim struct {
	NetworkID  string
	Addr       netip.Addr
	EndpointID string
}

// ErrClusterUnreachable is returned (wrapped) when the cluster store does not answer in
// time. Global creates fail with it; local networks do not depend on the store.
var ErrClusterUnreachable = errors.New("cluster store unreachable")

// RemoteUpdate is what changed in the cluster store, as the mirror (package cluster) read
// it, for ApplyRemote. Full replaces: every global network and remote endpoint not listed
// is gone. Otherwise the lists are the changes of one or more watch events, in order.
type RemoteUpdate struct {
	Full bool
	Rev  int64 // the cluster store revision this update brings the mirror to

	Networks         []*store.Network  // global networks created or changed (VNI set)
	RemovedNetworks  []string          // IDs
	Endpoints        []*store.Endpoint // other hosts' endpoints created or changed (Host, HostAddr, SandboxName set)
	RemovedEndpoints []string          // IDs
}
