#!/usr/bin/env bash
# demo-multihost.sh BERTH: issue 16's overlay networks end to end, in the private network+mount
# namespace that `make demo-multihost` runs it in (unshare --net --mount): an underlay bridge
# ul0 (10.99.0.1/24) with etcd on it, three simulated hosts A, B and C (each a process in a
# net+mount namespace of its own, eth0 a veth into ul0 at 10.99.0.1N) running a berth daemon
# on that etcd, one overlay network, then `ping web` and `dig @127.0.0.11 web` from a sandbox
# on host C to the sandbox web on host A. Nothing outside changes; every process it starts
# is ended by its PID.
set -euo pipefail
berth=$1
root=$(mktemp -d /tmp/berth-demo-multihost.XXXXXX)
hosts=(A B C)
declare -A hostpid daemonpid
etcdpid=

cleanup() {
	set +e
	for h in "${hosts[@]}"; do
		[ -n "${daemonpid[$h]:-}" ] && kill "${daemonpid[$h]}" 2>/dev/null && wait "${daemonpid[$h]}" 2>/dev/null
	done
	for h in "${hosts[@]}"; do
		[ -n "${hostpid[$h]:-}" ] && kill "${hostpid[$h]}" 2>/dev/null && wait "${hostpid[$h]}" 2>/dev/null
		ip link del "ul$h" 2>/dev/null
	done
	[ -n "$etcdpid" ] && kill "$etcdpid" 2>/dev/null && wait "$etcdpid" 2>/dev/null
	ip link del ul0 2>/dev/null
	rm -rf "$root"
}
trap cleanup EXIT

# The test namespace's own copies of the directories berth and iproute2 write to.
for d in /run/netns /etc/netns /run/berth; do mkdir -p "$d"; mount -t tmpfs tmpfs "$d"; done
ip link set lo up

# The underlay and the cluster store on it.
ip link add ul0 type bridge
ip addr add 10.99.0.1/24 dev ul0
ip link set ul0 up
etcd=http://10.99.0.1
/usr/bin/etcd --name demo --data-dir "$root/etcd" \
	--listen-client-urls $etcd:2379 --advertise-client-urls $etcd:2379 \
	--listen-peer-urls $etcd:2380 --initial-advertise-peer-urls $etcd:2380 \
	--initial-cluster demo=$etcd:2380 --initial-cluster-state new \
	--logger zap --log-outputs stderr --log-level error 2>"$root/etcd.log" &
etcdpid=$!
healthy() { exec 3<>/dev/tcp/10.99.0.1/2379 && printf 'GET /health HTTP/1.0\r\n\r\n' >&3 && grep -q '"health":"true"' <&3; }
for _ in $(seq 100); do (healthy) 2>/dev/null && break; sleep 0.1; done
(healthy) || { echo "etcd did not become healthy" >&2; exit 1; }

# The daemons forward names they do not own to the nameservers of this resolv.conf; in
# this closed namespace that is a stand-in address nothing answers on.
printf 'nameserver 10.99.0.1\n' > "$root/resolv.conf"

# on H CMD... runs CMD in host H's network and mount namespaces.
on() { local h=$1; shift; nsenter -t "${hostpid[$h]}" -n -m "$@"; }
# b H ARGS... is the berth client of host H's daemon.
b() { local h=$1; shift; BERTH_HOST="unix://$root/$h/berth.sock" "$berth" "$@"; }

n=0
for h in "${hosts[@]}"; do
	n=$((n + 1))
	addr=10.99.0.1$n
	mkdir -p "$root/$h"
	unshare --net --mount --propagation private sleep infinity &
	hostpid[$h]=$!
	# unshare execs sleep once the namespaces exist.
	for _ in $(seq 50); do
		[ "$(readlink "/proc/${hostpid[$h]}/ns/net")" != "$(readlink /proc/self/ns/net)" ] &&
			[ "$(readlink "/proc/${hostpid[$h]}/exe")" = "$(readlink -f "$(command -v sleep)")" ] && break
		sleep 0.05
	done
	for d in /run/netns /etc/netns /run/berth; do on "$h" mount -t tmpfs tmpfs "$d"; done
	on "$h" ip link set lo up
	ip link add "ul$h" type veth peer name eth0 netns "${hostpid[$h]}"
	ip link set "ul$h" master ul0 up
	on "$h" ip addr add "$addr/24" dev eth0
	on "$h" ip link set eth0 up
	on "$h" ip route add default via 10.99.0.1
	# nsenter itself, not through on(): $! must be the daemon's PID (nsenter execs it).
	nsenter -t "${hostpid[$h]}" -n -m "$berth" daemon --root "$root/$h/state" --socket "$root/$h/berth.sock" \
		--resolv-conf "$root/resolv.conf" --log-level warn \
		--cluster-store etcd://10.99.0.1:2379 --cluster-advertise "$addr" &
	daemonpid[$h]=$!
	for _ in $(seq 100); do b "$h" network ls -q >/dev/null 2>&1 && break; sleep 0.1; done
	b "$h" network ls -q >/dev/null
done

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
# waitfor CMD... retries CMD quietly for up to 10 s (a change takes a watch event to reach
# the other hosts, and the first frame over VXLAN may wait for a neighbour entry).
waitfor() { for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return; sleep 0.1; done; "$@"; }

echo "hosts A B C on 10.99.0.11-13, etcd on 10.99.0.1:2379"
step b A network create -d overlay ov
waitfor b C network inspect ov
step b C network ls
step b A sandbox create --name web --network ov
step b C sandbox create --name client --network ov
webip=$(b A sandbox inspect -f '{{(index .Networks "ov").IPAddress}}' web)
resolves() { [ "$(on C ip netns exec client dig @127.0.0.11 +short web)" = "$webip" ]; }
waitfor resolves
waitfor on C ip netns exec client ping -c1 -W1 "$webip"
echo
echo "on host C:"
step on C ip netns exec client ping -c2 -W1 web
step on C ip netns exec client dig @127.0.0.11 +noall +answer web
step on C ip netns exec client dig @127.0.0.11 +noall +answer -x "$webip"
step b C sandbox rm -f client
step b A sandbox rm -f web
waitfor b B network rm ov
echo
echo "demo-multihost ok"
