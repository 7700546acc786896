// Package dnsd owns berth's embedded DNS: one UDP and one TCP server per sandbox on
// 127.0.0.11, with sockets opened inside the sandbox's netns on random ports and an nftables
// NAT table there that redirects 127.0.0.11:53 to them (as Docker does, so a process in the
// sandbox can still bind port 53 itself); and, unless IPv6 is off in the netns, on
// fd62:6572:7468::11 (resolver.EmbeddedNS6, added to the sandbox's lo; an IPv6-only
// sandbox's resolv.conf names it) with the same ports and an ip6 twin of the table.
// Answers come from resolver.Lookup over a store snapshot taken per query; names resolver
// does not own are forwarded upstream, and their replies kept in the daemon's forward
// cache (Config.Cache, package dnsd/cache).
//
// dnsd decides nothing about names (that is resolver's job) and never writes the store.
//
// Where things are:
//
//	server.go     Config, Server: Serve, ServeNew, Stop, Close (the daemon's API)
//	sandbox.go    one sandbox's lifecycle (phase) and its NAT table's state (natState):
//	              netns handle, sockets, table, servers, from start to stop
//	bind.go       its listening sockets on 127.0.0.11 and fd62:6572:7468::11 (the address
//	              on lo), on one pair of ports
//	natkept.go    tables kept from an earlier run: the clean list, the background check
//	nat.go        the nftables table itself: install, read, delete
//	conntrack.go  the conntrack reset after a table changes
//	handler.go    the answer logic: a miekg dns.Handler per sandbox (ServeDNS), local
//	              replies and failures; tests drive it with dnstest.Writer
//	udp.go        the UDP reader: batches (mmsg.go), the fast path, hand-offs to the relay
//	              or to the general path (miekg's checks, then ServeDNS)
//	fast.go       the fast path: local answers built from the datagram's bytes
//	tcpconn.go    TCP: miekg's dns.Server behind per-sandbox connection slots
//	forward.go    forwarding: upstream selection, the TCP exchange, the UDP one via relay
//	cached.go     the forward cache (package cache) seen from here: partitions, reads, puts
//	relay.go      the UDP forwarding relay: one epoll loop for every sandbox's forwards
//	relayloop.go  its loop: replies, timeouts (timerheap.go), failover, draining
//	epoll.go      the relay's epoll instance, parked on Go's poller
//	wire.go       wire-format checks of upstream replies, failures from query bytes
//	sockets.go    upstream sockets, in the daemon's netns or on a sandbox's netns worker
//	inflight.go   inflight slots per sandbox and per daemon
//	explain.go    Explain, for `berth dns query`
//	metrics.go    Prometheus counters (berth_dns_*)
package dnsd
