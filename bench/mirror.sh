#!/bin/bash
# mirror.sh BIN MIRRORLOAD N: one daemon mirroring N remote endpoints of a fake host
# (bench/mirrorload publishes them through package cluster), in a private namespace:
# the daemon's RSS, how long the mirror takes to answer the last of them after the daemon
# starts with none, and its restart-to-answering time once they are in its state. Run by
# `make bench-mirror` under unshare --net --mount.
set -eu
bin=$1 load=$2 n=${3:-10000}
d=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; umount -l "$d/s/uts" 2>/dev/null || true; rm -rf "$d"; }
trap cleanup EXIT
mount -t tmpfs tmpfs /run/netns 2>/dev/null || { mkdir -p /run/netns; mount -t tmpfs tmpfs /run/netns; }
mkdir -p /etc/netns && mount -t tmpfs tmpfs /etc/netns
ip link set lo up
ip link add ul0 type veth peer name ul1
ip addr add 10.99.0.11/24 dev ul0; ip link set ul0 up; ip link set ul1 up
etcd --data-dir "$d/etcd" --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
  --listen-peer-urls http://127.0.0.1:23800 --quota-backend-bytes 1073741824 >"$d/etcd.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/23790) 2>/dev/null && break; sleep 0.1; done
"$load" -etcd 127.0.0.1:23790 -n "$n" -network ov >"$d/load.log" 2>&1 &
pids+=($!)
echo "nameserver 127.0.0.1" >"$d/resolv.conf"
export BERTH_HOST=unix://$d/s/berth.sock
mkdir -p "$d/s"
start() {
  "$bin" daemon --root "$d/root" --socket "$d/s/berth.sock" --resolv-conf "$d/resolv.conf" --log-level warn \
    --cluster-store etcd://127.0.0.1:23790 --cluster-advertise 10.99.0.11 2>>"$d/daemon.log" &
  daemon=$!
}
last="r$((n - 1))"
# Only an address counts: dig +short prints its ";; communications error ... connection
# refused" on stdout too, which a dead daemon's sandbox gets at once.
answers() { ip netns exec q dig @127.0.0.11 "$last" +short +time=1 +tries=1 2>/dev/null | grep -qE '^[0-9]+(\.[0-9]+){3}$'; }
start
for _ in $(seq 100); do "$bin" network ls -q >/dev/null 2>&1 && break; sleep 0.05; done
for _ in $(seq 200); do "$bin" network inspect ov >/dev/null 2>&1 && break; sleep 0.05; done
"$bin" sandbox create --name q --network ov >/dev/null
t0=$(date +%s%N)
for _ in $(seq 600); do answers && break; sleep 0.05; done
answers || { echo "mirror: $last never answered"; tail "$d/daemon.log" "$d/load.log"; exit 1; }
echo "mirror	$n remote endpoints: the last answers $((($(date +%s%N) - t0) / 1000000)) ms after the sandbox create (publisher and mirror racing)"
rss=$(awk '/VmRSS/ {print $2}' /proc/$daemon/status)
echo "mirror	daemon RSS with $n remote endpoints: $rss KiB"
for round in 1 2 3; do
  kill -9 $daemon; wait $daemon 2>/dev/null || true
  t0=$(date +%s%N)
  start
  until answers; do sleep 0.02; done
  echo "mirror	restart (kill -9) to answering $last, round $round: $((($(date +%s%N) - t0) / 1000000)) ms"
done
rss=$(awk '/VmRSS/ {print $2}' /proc/$daemon/status)
echo "mirror	daemon RSS after restart: $rss KiB"
kill $daemon; wait $daemon 2>/dev/null || true
