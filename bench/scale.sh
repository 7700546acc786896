#!/usr/bin/env bash
# scale.sh BIN OUT [NETWORKS PORTS]: the firewall scale curve (issue 14.1), run by `make
# bench-scale` (and `make bench`) inside a private network+mount namespace (unshare --net
# --mount). One daemon; bench/fwscale creates NETWORKS bridge networks (explicit subnets)
# and PORTS published ports through the API, timing each call and counting berth's nftables
# rules and set elements; then the daemon restarts (SIGTERM) and the time until its API
# answers, with every network and port restored into freshly rebuilt tables, is measured.
# OUT gets RESULTS.md (the section make bench appends) and the daemon's log.
# BERTH=PATH measures another build with the same harness.
set -euo pipefail
bin=$1 out=$2 networks=${3:-1000} ports=${4:-5000}
berth=${BERTH:-$bin/berth}
rm -rf "$out"; mkdir -p "$out"
state=$(mktemp -d /tmp/berth-scale.XXXXXX)
for d in /run/netns /etc/netns /run/berth; do mkdir -p "$d"; mount -t tmpfs tmpfs "$d"; done
ip link set lo up
printf 'nameserver 127.0.0.53\n' > "$state/resolv.conf"
start() {
  "$berth" daemon --root "$state/root" --resolv-conf "$state/resolv.conf" --log-level error 2>>"$out/daemon.log" &
  daemon=$!
  for _ in $(seq 600); do "$berth" network ls -q >/dev/null 2>&1 && return; sleep 0.01; done
  echo "scale: daemon did not answer" >&2; exit 1
}
cleanup() {
  [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$state"
}
trap cleanup EXIT
start
load=$(cut -d' ' -f1-3 /proc/loadavg)
"$bin/fwscale" -networks "$networks" -ports "$ports" > "$out/RESULTS.md"
kill "$daemon"; wait "$daemon" || true
t0=$(date +%s.%N)
start
t1=$(date +%s.%N)
nets=$("$berth" network ls -q | wc -l)
{
  printf 'Restart (SIGTERM, start) with %s networks (the predefined ones included) and %s ports: API answering after %.2f s (Restore rebuilds the tables in one batch).\n' \
    "$nets" "$ports" "$(echo "$t1 - $t0" | bc -l)"
  printf '\nRun %s UTC, load average at start %s; command: unshare --net --mount --propagation private bench/scale.sh %s %s %s %s\n' \
    "$(date -u '+%Y-%m-%d %H:%M')" "$load" "$bin" "$out" "$networks" "$ports"
} >> "$out/RESULTS.md"
cat "$out/RESULTS.md"
