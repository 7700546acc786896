// Package cluster is berth's cluster store (`berth daemon --cluster-store etcd://...`): it
// implements netmgr.Cluster on etcd's v3 API, publishes this host's endpoints on global
// (overlay) networks, and mirrors the other hosts' into netmgr (Config.Apply, which is
// Manager.ApplyRemote). It owns the etcd connection, the host's lease and the keys below; it
// never writes the local store itself (netmgr does, from what the mirror hands it) and has
// no kernel work. netmgr never imports it: the daemon wires the two together.
//
// # Key layout
//
// Every key is under Config.Prefix, "/berth/v1/" by default:
//
//	hosts/HOSTID           {"ID","Addr"}: the host is alive; on its lease
//	networks/NETID         store.Network JSON, VNI set: the global network itself
//	netnames/LOWERNAME     NETID: global network names are unique case-insensitively
//	vni/VNI                NETID: one VXLAN ID per network
//	subnets/CIDR           NETID (e.g. subnets/10.0.1.0/24): no two global networks overlap
//	ipam/NETID/IP          {"Host","Endpoint"}: an address claim; NOT on a lease
//	endpoints/NETID/EPID   store.Endpoint JSON (Host, HostAddr, SandboxName set); on the lease
//
// # Allocation
//
// Every write is one transaction guarded by create-revision or mod-revision compares, so
// two hosts racing for a name, a VNI, a subnet or an address cannot both win: the loser's
// compare fails and it reads again. CreateNetwork reads vni/ and subnets/ at one revision,
// picks the lowest free VNI >= 4096 (Docker's first overlay VNI, so the two never look
// alike by accident), checks the subnets for overlap, and commits only if no key under
// vni/ or subnets/ changed since that read and netnames/NAME and networks/NETID are absent;
// a lost race on the VNI or a subnet is retried a few times, a taken name or subnet is
// store.ErrConflict.
//
// Address claims are not on the lease: a host killed between claiming an address and
// publishing its endpoint keeps the claim, so the address is never handed out twice while
// that host may still use it; the host drops the claims no endpoint holds when it
// registers again (Config.Registered, where the daemon runs Manager.ReconcileClaims).
// Endpoints and hosts/HOSTID are on the host's lease (TTL 10 s by default, kept alive): a
// host that dies disappears from every other host's DNS and VXLAN peers one TTL later.
// RemoveNetwork is refused while any host has an endpoint on the network, or a live host
// (hosts/HOSTID present) has a claim on it; a dead host's claims are stale and go with the
// network.
//
// # Mirror
//
// The mirror reads networks/ and endpoints/ at one revision and hands netmgr a full
// RemoteUpdate, then watches the prefix from the next revision and hands one update per
// watch response, in revision order. The etcd client resumes a broken watch (an etcd
// restart) from the revision after the last event it delivered, so nothing is missed or
// repeated; a compacted revision, a cancelled watch or a failed Apply starts over with a
// full update.
//
// # Wiring
//
// The daemon parses --cluster-store with ParseStore and --cluster-store-opt with
// TLSConfig, calls New (which never blocks: etcd may be down), hands the Client to
// netmgr.Config.Cluster, runs Run in a goroutine, calls Kick after every change of its
// sandboxes' endpoints on global networks (Kick is cheap, never blocks and coalesces),
// and calls Close at shutdown, which revokes the host's lease so that the other hosts
// drop its endpoints at once.
package cluster
