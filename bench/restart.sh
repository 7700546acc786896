#!/usr/bin/env bash
# restart.sh BIN N ROUNDS: daemon restart time with N sandboxes, ROUNDS times, run by `make
# bench-restart` inside a private network+mount namespace (unshare --net --mount). One
# daemon creates N sandboxes (cplat -mode bulk, network bulknet of its own); then, ROUNDS
# times: `cplat -mode probe -ready` opens a UDP socket in every sandbox, then SIGTERM, wait,
# start the daemon again, and the probe asks 127.0.0.11:53 (16 sandboxes at a time, each
# retried every 20 ms) until every sandbox answers. BERTH=PATH measures another build with
# the same harness; SIG=KILL restarts after a kill -9 instead (no clean list: every kept
# table is read, and reset in the background); PERF=1 records `perf record -a -g` over the
# last round into /tmp/berth-restart.perf; LOGLEVEL=info and KEEPLOG=FILE keep the daemon's
# log (its timestamps show restore and DNS start apart).
set -euo pipefail
bin=$1 n=$2 rounds=${3:-3}
berth=${BERTH:-$bin/berth}
state=$(mktemp -d /tmp/berth-restart.XXXXXX)
for d in /run/netns /etc/netns /run/berth; do mkdir -p "$d"; mount -t tmpfs tmpfs "$d"; done
ip link set lo up
printf 'nameserver 127.0.0.53\n' > "$state/resolv.conf"
start() {
  "$berth" daemon --root "$state/root" --resolv-conf "$state/resolv.conf" --log-level "${LOGLEVEL:-error}" 2>>"$state/daemon.log" &
  daemon=$!
}
cleanup() {
  [ -n "${perfpid:-}" ] && kill "$perfpid" 2>/dev/null
  [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  [ -z "${KEEPLOG:-}" ] || cp "$state/daemon.log" "$KEEPLOG"
  rm -rf "$state"
}
trap cleanup EXIT
start
for _ in $(seq 100); do "$berth" network ls -q >/dev/null 2>&1 && break; sleep 0.05; done
"$berth" network create --subnet 10.78.0.0/16 bulknet >/dev/null
echo "build $berth; load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin/cplat" -mode bulk -n "$n" -network bulknet
for r in $(seq "$rounds"); do
  # The probe opens its sockets first and starts asking when told (cplat -ready).
  coproc PROBE { "$bin/cplat" -mode probe -ready -n "$n" -timeout 30s; }
  # Copies: bash closes the coproc's own fds and unsets PROBE_PID once it has ended.
  probepid=$PROBE_PID; exec {pin}<&"${PROBE[0]}" {pout}>&"${PROBE[1]}"
  read -r _ <&"$pin"
  kill -"${SIG:-TERM}" "$daemon"; wait "$daemon" || true
  if [ -n "${PERF:-}" ] && [ "$r" = "$rounds" ]; then
    perf record -a -g -o /tmp/berth-restart.perf -- sleep 5 >/dev/null 2>&1 & perfpid=$!
    sleep 0.3
  fi
  t0=$(date +%s%N)
  start
  echo go >&"$pout"
  read -r p <&"$pin"
  echo "round $r: $p (from daemon exec: $((($(date +%s%N) - t0) / 1000000)) ms)"
  exec {pin}<&- {pout}>&-
  wait "$probepid" || true
done
[ -z "${perfpid:-}" ] || { wait "$perfpid" || true; perfpid=; }
