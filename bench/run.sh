#!/usr/bin/env bash
# run.sh MODE BIN OUT: berth's benchmark, run by `make bench` (MODE full) and `make
# bench-quick` (MODE quick) inside a private network+mount namespace (unshare --net --mount):
# loopback and the addresses made here only, every step bounded in time.
#
# Peers: refserver (a minimal miekg/dns map server), rawudp, dnsmasq and aardvark-dns in the
# client's netns; in full mode (or BENCH_DOCKER=1) Docker 20.10's embedded resolver, dockerd
# started and stopped here through ../shared/tools/docker-oracle.sh (skipped, with a line
# in RESULTS.md, if it cannot start); netavark setup/teardown for the control plane.
#
# BIN holds berth, refserver, rawudp and cplat; OUT gets the query files, raw outputs and
# RESULTS.md. Every DNS server runs in the netns of sandbox "client", on its own 127.0.0.x
# address; dnsperf runs there too and asks each in turn, with the same query files.
set -euo pipefail
mode=$1 bin=$2 out=$3
case $mode in
full) dur=7 nsmall=99 nbig=100 naliases=100 nlat=200 nbulk=1000 nnv=50 ;;
quick) dur=2 nsmall=99 nbig=100 naliases=100 nlat=30 nbulk=200 nnv=10 ;;
cp) dur=0 nsmall=99 nbig=100 naliases=100 nlat=200 nbulk=1000 nnv=50 ;; # the full topology, control plane only
*) echo "usage: run.sh full|quick|cp BIN OUT" >&2; exit 2 ;;
esac
rm -rf "$out"; mkdir -p "$out/q" "$out/raw"
state=$(mktemp -d /tmp/berth-bench.XXXXXX)
pids=() jobs=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  docker_stop
  rm -rf "$state"
}
trap cleanup EXIT
# Docker's embedded resolver, the peer: Debian's dockerd through ../shared/tools/docker-oracle.sh
# (dockerd in a namespace of its own, below this one), started and stopped here, bounded in time.
oracle=${DOCKER_ORACLE:-$(cd "$(dirname "$0")/../.." && pwd)/shared/tools/docker-oracle.sh}
dockdir=$state/docker
docker_stop() {
  [ -n "${dockerpid:-}" ] || [ -d "$dockdir" ] || return 0
  if [ -n "${dockerpid:-}" ]; then
    # Containers first: dockerd would give each `sleep` its 10 s stop timeout.
    timeout 60 docker -H "unix://$dockdir/docker.sock" rm -f dclient ds1 ds2 ds3 >/dev/null 2>&1 || true
  fi
  local upid
  upid=$(cat "$dockdir/unshare.pid" 2>/dev/null || true) # = dockerd's pid (unshare execs it)
  timeout 60 "$oracle" stop "$dockdir" >/dev/null 2>&1 || true
  for p in $upid ${dockerpid:-}; do kill "$p" 2>/dev/null || true; done # if stop gave up on it
  dockerpid=
  return 0
}
log() { printf '%s %s\n' "$(date +%T)" "$*" | tee -a "$out/log.txt" >&2; }
result() { printf '%s\n' "$*" | tee -a "$out/results.txt"; }
note() { log "$*"; result "note	$*"; }

for d in /run/netns /etc/netns /run/berth; do mkdir -p "$d"; mount -t tmpfs tmpfs "$d"; done
ip link set lo up

# The upstream for forwarded names (daemon netns; berth dials host nameservers from there).
"$bin/refserver" -listen 127.0.0.53:53 -any 10.9.9.9 & pids+=($!)
printf 'nameserver 127.0.0.53\n' > "$state/resolv.conf"
berth=${BERTH:-$bin/berth} # BERTH=PATH measures another build
start_daemon() { # [daemon flags]
  "$berth" daemon --root "$state/root" --resolv-conf "$state/resolv.conf" --log-level error "$@" 2>>"$out/daemon.log" &
  daemon=$!
}
# restart_daemon [daemon flags]: a clean restart, back once the client's 127.0.0.11 answers.
restart_daemon() {
  kill "$daemon"; wait "$daemon" 2>/dev/null || true
  start_daemon "$@"
  for _ in $(seq 200); do
    ip netns exec client dig @127.0.0.11 +short +tries=1 +time=1 client >/dev/null 2>&1 && break
    sleep 0.05
  done
}
start_daemon
for _ in $(seq 100); do "$berth" network ls -q >/dev/null 2>&1 && break; sleep 0.05; done

log "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on this machine shows here)"
log "topology: network benchnet, client + $nsmall sandboxes (s1..s4 share alias pool), $nbig sandboxes with $naliases aliases each"
"$berth" network create --subnet 10.77.0.0/16 --gateway 10.77.0.1 benchnet >/dev/null
"$berth" sandbox create --name client --network benchnet --ip 10.77.0.2 >/dev/null
hosts=$out/hosts
: > "$hosts"
printf '10.77.0.2 client\n' >> "$hosts"
for i in $(seq "$nsmall"); do
  alias=()
  [ "$i" -le 4 ] && alias=(--network-alias pool)
  "$berth" sandbox create --name "s$i" --network benchnet --ip "10.77.0.$((i + 2))" "${alias[@]}" >/dev/null & jobs+=($!)
  [ $((i % 4)) = 0 ] && wait "${jobs[@]}" && jobs=() # four at a time: setup, not a measurement
  printf '10.77.0.%d s%d%s\n' $((i + 2)) "$i" "$([ "$i" -le 4 ] && echo ' pool')" >> "$hosts"
done
[ ${#jobs[@]} = 0 ] || wait "${jobs[@]}"; jobs=()

# Query files.
q=$out/q
for i in $(seq "$nsmall"); do echo "s$i A"; done > "$q/a_100"
for i in $(seq "$nsmall"); do echo "s$i AAAA"; done > "$q/aaaa_v4only"
for i in $(seq "$nsmall"); do echo "$((i + 2)).0.77.10.in-addr.arpa PTR"; done > "$q/ptr"
echo "pool A" > "$q/shared_alias"
for i in $(seq 10000); do echo "fwd$i.example A"; done > "$q/forwarded"

servers_dns() {
  # name addr port pid [dnsperf extra args]
  local udp
  udp=$(ip netns exec client ss -Hunl 'src 127.0.0.11' | awk '{split($4,a,":"); print a[2]; exit}')
  echo "berth 127.0.0.11 53 $daemon"
  echo "berth-noNAT 127.0.0.11 $udp $daemon"
  echo "refserver 127.0.0.12 53 $refpid"
  [ -n "${dnsmasqpid:-}" ] && echo "dnsmasq 127.0.0.13 53 $dnsmasqpid"
  [ -n "${aardpid:-}" ] && echo "aardvark-dns 127.0.0.15 53 $aardpid -a 10.77.0.2"
  echo "rawudp 127.0.0.14 53 $rawpid"
  [ -n "${dockerpid:-}" ] && echo "docker 127.0.0.11 53 $dockerpid"
}

cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# perf MIX SERVER ADDR PORT PID VARIANT [dnsperf args]: one dnsperf run, one results line.
perf() {
  local mix=$1 name=$2 addr=$3 port=$4 pid=$5 variant=$6; shift 6
  local pin=() c0 c1 f=$out/raw/$mix.$name.$variant.txt inns=(ip netns exec client)
  [ "$name" = docker ] && inns=(nsenter -t "$dockcpid" -n) # from inside a container's netns
  if [[ $variant == pinned* ]]; then
    taskset -a -p -c 0 "$pid" >/dev/null
    pin=(taskset -c 1)
  else
    taskset -a -p -c 0-1 "$pid" >/dev/null
  fi
  c0=$(cputicks "$pid")
  "${inns[@]}" "${pin[@]}" dnsperf -s "$addr" -p "$port" -d "$q/$mix" -l "$dur" -t 2 -W "$@" > "$f" 2>&1 || true
  c1=$(cputicks "$pid")
  awk -v mix="$mix" -v name="$name" -v variant="$variant" -v ticks=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" '
    /Queries completed:/ {done=$3}
    /Queries lost:/ {lost=$3; sent=$3}
    /Queries sent:/ {sent=$3}
    /Queries per second:/ {qps=$4}
    /Average Latency/ {lat=$4}
    /Latency StdDev/ {sd=$4}
    /NOERROR|NXDOMAIN|SERVFAIL|REFUSED|FORMERR|NOTIMP/ {rc = rc $0}
    END {
      cpu = done > 0 ? ticks / hz / done * 1e6 : 0
      gsub(/[ \t]+/, " ", rc); gsub(/Response codes: /, "", rc)
      printf "dns\t%s\t%s\t%s\t%.0f\t%.1f\t%.1f\t%s\t%.2f\t%s\n", mix, variant, name, qps, lat * 1e6, sd * 1e6, lost + 0, cpu, rc
    }' "$f" | tee -a "$out/results.txt"
}

# Peers, all in the client's netns.
ip netns exec client "$bin/refserver" -listen 127.0.0.12:53 -hosts "$hosts" & refpid=$!; pids+=($refpid)
ip netns exec client "$bin/rawudp" -listen 127.0.0.14:53 & rawpid=$!; pids+=($rawpid)
ip netns exec client "$bin/refserver" -listen 127.0.0.53:53 -any 10.9.9.9 & pids+=($!) # peers' upstream
if command -v dnsmasq >/dev/null; then
  ip netns exec client dnsmasq -k -u root -g root --pid-file= --no-resolv --no-hosts --addn-hosts="$hosts" \
    --listen-address=127.0.0.13 --bind-interfaces --port=53 --server=127.0.0.53 --cache-size=0 \
    --local-ttl=600 --log-facility=/dev/null & dnsmasqpid=$!; pids+=($dnsmasqpid)
else
  log "dnsmasq not installed: skipped"
fi
aard=/usr/lib/podman/aardvark-dns
if [ -x "$aard" ]; then
  mkdir -p "$state/aardvark"
  {
    echo "127.0.0.15 127.0.0.53"
    awk '{ id = sprintf("%064d", NR); names = $2; for (i = 3; i <= NF; i++) names = names "," $i; print id " " $1 "  " names }' "$hosts"
  } > "$state/aardvark/benchnet"
  ip netns exec client "$aard" --config "$state/aardvark" -p 53 run >"$out/raw/aardvark.log" 2>&1 || true
  for _ in $(seq 50); do [ -s "$state/aardvark/aardvark.pid" ] && break; sleep 0.05; done
  aardpid=$(cat "$state/aardvark/aardvark.pid" 2>/dev/null || true)
  [ -n "$aardpid" ] && pids+=($aardpid) || log "aardvark-dns did not start: skipped (see raw/aardvark.log)"
else
  log "aardvark-dns not installed: skipped"
fi
docker_start() {
  if [ ! -x "$oracle" ]; then note "docker: $oracle not found: Docker's resolver skipped"; return; fi
  log "docker: starting dockerd through $oracle (at most 120 s)"
  if ! timeout 120 "$oracle" start "$dockdir" > "$out/raw/docker-oracle.log" 2>&1; then
    note "docker: dockerd could not start ($(tail -n 1 "$out/raw/docker-oracle.log" 2>/dev/null)): Docker's resolver skipped"
    cp "$dockdir/dockerd.log" "$out/raw/dockerd.log" 2>/dev/null || true
    docker_stop; return
  fi
  dockerpid=$(cat "$dockdir/dockerd.pid")
  # The same 99 names as berth's s1..s99 (network aliases of 3 containers, 33 each), a client
  # container, and the forwarded names' upstream: refserver -any on the bridge's gateway in
  # dockerd's netns (Docker 20.10 forwards from the container's netns to its --dns servers).
  if docker_setup; then
    dockcpid=$(timeout 60 docker -H "unix://$dockdir/docker.sock" inspect -f '{{.State.Pid}}' dclient)
    log "docker: $(dockerd --version), dockerd pid $dockerpid, client container pid $dockcpid"
  else
    note "docker: containers could not be set up (see raw/docker-oracle.log): Docker's resolver skipped"
    docker_stop
  fi
  return 0
}
docker_setup() {
  local dk=(timeout 60 docker -H "unix://$dockdir/docker.sock") k i args
  "${dk[@]}" network create --subnet 10.80.0.0/16 --gateway 10.80.0.1 dbench >/dev/null 2>>"$out/raw/docker-oracle.log" || return 1
  nsenter -t "$dockerpid" -n "$bin/refserver" -listen 10.80.0.1:53 -any 10.9.9.9 & pids+=($!)
  "${dk[@]}" run -d --name dclient --network dbench --dns 10.80.0.1 bb sleep 3600 >/dev/null 2>>"$out/raw/docker-oracle.log" || return 1
  for k in 1 2 3; do
    args=()
    for i in $(seq $((k * 33 - 32)) $((k * 33))); do args+=(--network-alias "s$i"); done
    "${dk[@]}" run -d --name "ds$k" --network dbench "${args[@]}" bb sleep 3600 >/dev/null 2>>"$out/raw/docker-oracle.log" || return 1
  done
}
[ "$mode" = full ] || [ "${BENCH_DOCKER:-}" = 1 ] && docker_start # BENCH_DOCKER=1: in quick mode too
sleep 0.3

# The same 100 names, then 10,000 more through aliases.
run_mixes() {
  local variant=$1; shift
  for mix in "$@"; do
    while read -r name addr port pid extra; do
      [ "$name" = rawudp ] && [[ $mix != a_* ]] && continue
      [ "$name" = docker ] && [ "$mix" != a_100 ] && continue # Docker has the 100 names only
      # shellcheck disable=SC2086
      perf "$mix" "$name" "$addr" "$port" "$pid" "$variant" $extra
    done < <(servers_dns)
  done
}
result "# kind mix variant server qps avg_lat_us sd_lat_us lost cpu_us_per_answer rcodes"
log "dns: 100 names"
case $mode in
full) run_mixes pinned a_100 aaaa_v4only ptr shared_alias; run_mixes unpinned a_100 ;;
quick) run_mixes pinned a_100 ;;
esac

log "adding $nbig sandboxes with $naliases aliases each"
t0=$(date +%s%N)
for i in $(seq 0 $((nbig - 1))); do
  args=() names="b$i"
  for j in $(seq 0 $((naliases - 1))); do args+=(--network-alias "b$i-a$j"); names="$names b$i-a$j"; done
  "$berth" sandbox create --name "b$i" --network benchnet --ip "10.77.1.$((i + 2))" "${args[@]}" >/dev/null & jobs+=($!)
  [ $((i % 4)) = 3 ] && wait "${jobs[@]}" && jobs=()
  echo "10.77.1.$((i + 2)) $names" >> "$hosts"
done
[ ${#jobs[@]} = 0 ] || wait "${jobs[@]}"; jobs=()
result "cp	create $nbig sandboxes with $naliases aliases each (CLI, 4 in parallel)	$(( ($(date +%s%N) - t0) / 1000000 )) ms"
awk -v n="$nbig" -v m="$naliases" 'BEGIN { srand(7); for (k = 0; k < 10000; k++) printf "b%d-a%d A\n", int(rand() * n), int(rand() * m) }' > "$q/a_10000"
# Peers reload their names.
kill "$refpid"; wait "$refpid" 2>/dev/null || true
ip netns exec client "$bin/refserver" -listen 127.0.0.12:53 -hosts "$hosts" & refpid=$!; pids+=($refpid)
[ -n "${dnsmasqpid:-}" ] && kill -HUP "$dnsmasqpid"
if [ -n "${aardpid:-}" ]; then
  awk '{ id = sprintf("%064d", NR); names = $2; for (i = 3; i <= NF; i++) names = names "," $i; print id " " $1 "  " names }' "$hosts" |
    sed '1i 127.0.0.15 127.0.0.53' > "$state/aardvark/benchnet"
  kill -HUP "$aardpid"
fi
sleep 0.5
log "dns: $(wc -l < "$hosts") sandboxes, $(awk '{n += NF - 1} END {print n}' "$hosts") names"
cp "$q/a_100" "$q/a_100_with_10000"
# 100 of the 10,000 alias names (one per sandbox), the same form and length as a_10000's:
# a_10000 / a_100_of_10000 compares 10,000 names asked with 100 asked, and nothing else.
awk -v n="$nbig" -v m="$naliases" 'BEGIN { srand(11); for (i = 0; i < n; i++) a[i] = int(rand() * m); for (k = 0; k < 10000; k++) { i = int(rand() * n); printf "b%d-a%d A\n", i, a[i] } }' > "$q/a_100_of_10000"
[ "$mode" = cp ] || run_mixes pinned a_10000 a_100_of_10000 a_100_with_10000
# Two more rounds of that pair, alternating, for berth and rawudp (no lookup: the control):
# one round moves 20-30% with the machine, the median of three less.
if [ "$mode" != cp ]; then
  for r in 2 3; do
    for mix in a_10000 a_100_of_10000; do
      while read -r name addr port pid extra; do
        [ "$name" = berth ] || [ "$name" = rawudp ] || continue
        perf "$mix" "$name" "$addr" "$port" "$pid" "pinned-r$r"
      done < <(servers_dns)
    done
  done
fi
[ "$mode" = cp ] || log "dns: forwarded"
[ "$mode" = cp ] || for srv in "berth 127.0.0.11 53 $daemon" "dnsmasq 127.0.0.13 53 ${dnsmasqpid:-}" "aardvark-dns 127.0.0.15 53 ${aardpid:-} -a 10.77.0.2" "docker 127.0.0.11 53 ${dockerpid:-}"; do
  read -r name addr port pid extra <<< "$srv"
  [ -z "$pid" ] || [[ $pid == -* ]] && continue
  # shellcheck disable=SC2086
  perf forwarded "$name" "$addr" "$port" "$pid" pinned $extra
done
# The forward cache (issue 18): "berth" above ran with the default cache (10,000 entries
# in 16 shards for 10,000 names: the fuller shards' names cycle through LRU and miss, so it
# is part hits, part misses). "berth-cached": a cache that holds them all, warmed by one
# pass through the file (every query measured a hit). Then every query a miss (16 entries
# for 10,000 names: a lookup, a Put and an eviction each) and no cache at all (every query
# forwarded, as before issue 18); the cached:local and miss:nocache ratios are in RESULTS.md.
if [ "$mode" != cp ]; then
  restart_daemon --dns-cache-size 100000 --dns-cache-memory 64MiB
  ip netns exec client dnsperf -s 127.0.0.11 -d "$q/forwarded" -n 1 >/dev/null 2>&1 || true
  perf forwarded berth-cached 127.0.0.11 53 "$daemon" pinned
  taskset -a -p -c 0-1 "$daemon" >/dev/null
  restart_daemon --dns-cache-size 16
  perf forwarded berth-miss 127.0.0.11 53 "$daemon" pinned
  taskset -a -p -c 0-1 "$daemon" >/dev/null
  restart_daemon --dns-cache-size 0
  perf forwarded berth-nocache 127.0.0.11 53 "$daemon" pinned
  taskset -a -p -c 0-1 "$daemon" >/dev/null
  restart_daemon
fi
taskset -a -p -c 0-1 "$daemon" >/dev/null
[ -z "${dockerpid:-}" ] || { log "docker: stopping dockerd"; docker_stop; }

# The DNS phases leave conntrack entries (every forwarded query has a fresh source port)
# that live 30 s, and every netns or veth deleted meanwhile walks them in the kernel: the
# control plane starts without them (cplat -mode ctflush, all the bench's netns).
log "$("$bin/cplat" -mode ctflush)"
log "control plane (load average $(cut -d' ' -f1-3 /proc/loadavg))"
lat=()
for i in $(seq "$nlat"); do
  t0=$(date +%s%N)
  "$berth" sandbox create --name "cli$i" --network benchnet >/dev/null
  "$berth" sandbox rm -f "cli$i" >/dev/null
  lat+=($((($(date +%s%N) - t0) / 1000)))
done
printf '%s\n' "${lat[@]}" | sort -n | awk '{v[NR] = $1} END {
  printf "cp\tCLI sandbox create+rm (n=%d)\tp50 %.1f ms p99 %.1f ms\n", NR, v[int(NR * 0.5 + 0.5)] / 1000, v[int(NR * 0.99 + 0.5)] / 1000 }' | tee -a "$out/results.txt"
cli_p50=$(printf '%s\n' "${lat[@]}" | sort -n | awk '{v[NR] = $1} END {printf "%.3f", v[int(NR * 0.5 + 0.5)] / 1000}')
apilat=$("$bin/cplat" -mode lat -n "$nlat")
result "cp	$apilat"
# Propagation: names answer in the client sandbox as soon as each create returns and stop as
# soon as each rm returns, while a peer there keeps asking (cplat -mode prop).
result "cp	$("$bin/cplat" -mode prop -n "$nlat")"
# ms of a Go duration as cplat prints it (µs, ms or s)
api_p50=$(sed -n 's/.*create+rm p50 \([0-9.]*[µm]*s\).*/\1/p' <<< "$apilat" |
  awk '{v = $1 + 0; if ($1 ~ /µs$/) v /= 1000; else if ($1 !~ /ms$/) v *= 1000; printf "%.3f", v}')
rss() { awk '/VmRSS/ {print $2}' "/proc/$daemon/status"; }
fds() { ls "/proc/$daemon/fd" | wc -l; }
sb0=$("$berth" sandbox ls -q | wc -l) r0=$(rss) f0=$(fds)
# A network of their own: a Linux bridge takes at most 1024 ports (EXFULL beyond).
"$berth" network create --subnet 10.78.0.0/16 bulknet >/dev/null
result "cp	$("$bin/cplat" -mode bulk -n "$nbulk" -network bulknet)"
sleep 1
r1=$(rss) f1=$(fds)
result "cp	daemon with $sb0 sandboxes: RSS $r0 KiB, $f0 fds; with $((sb0 + nbulk)): RSS $r1 KiB, $f1 fds; per sandbox $(((r1 - r0) / nbulk)) KiB, $(((f1 - f0) / nbulk)) fds"
# The probe opens its sockets first and starts asking when told (cplat -ready).
coproc PROBE { "$bin/cplat" -mode probe -ready -n "$nbulk" -timeout 30s; }
# Copies: bash closes the coproc's own fds and unsets PROBE_PID once it has ended.
probepid=$PROBE_PID; exec {pin}<&"${PROBE[0]}" {pout}>&"${PROBE[1]}"
read -r _ <&"$pin"
kill "$daemon"; wait "$daemon" 2>/dev/null || true
t0=$(date +%s%N)
start_daemon
echo go >&"$pout"
read -r probe <&"$pin"
exec {pin}<&- {pout}>&-
wait "$probepid" || true
result "cp	restart with $((sb0 + nbulk)) sandboxes: $probe (from daemon exec: $((($(date +%s%N) - t0) / 1000000)) ms)"
result "cp	$("$bin/cplat" -mode rm -n "$nbulk")"

# netavark (Debian's, what podman uses), the control-plane peer: `netavark setup` and
# `teardown` of one container on a bridge that already exists (a keeper container holds it:
# netavark deletes a bridge whose last container goes), in this namespace too, timed like
# berth's CLI above (date around each command). After berth's numbers: its iptables rules
# stay in this netns.
nvconf() { # name ip n: the network options netavark reads (podman's types::NetworkOptions)
  cat <<JSON
{"container_id": "$(printf '%064d' "$3")", "container_name": "$1",
 "networks": {"nvbench": {"static_ips": ["$2"], "interface_name": "eth0"}},
 "network_info": {"nvbench": {"name": "nvbench", "id": "$(printf 'b%063d' 1)", "driver": "bridge",
   "network_interface": "nvbr0", "subnets": [{"subnet": "10.79.0.0/16", "gateway": "10.79.0.1"}],
   "ipv6_enabled": false, "internal": false, "dns_enabled": false}}}
JSON
}
netavark_peer() {
  local nv=/usr/lib/podman/netavark d=$state/netavark i t0 t1 t2
  if [ ! -x "$nv" ]; then note "netavark: $nv not installed: skipped"; return 0; fi
  mkdir -p "$d"
  nvconf keeper 10.79.0.2 1 > "$d/keeper.json"
  nvconf c1 10.79.0.3 2 > "$d/c1.json"
  ip netns add nvkeeper && ip netns add nvc1
  if ! timeout 30 "$nv" --config "$d/cfg" -f "$d/keeper.json" setup /run/netns/nvkeeper > "$out/raw/netavark.log" 2>&1; then
    note "netavark: setup of the keeper container failed ($(tail -n 1 "$out/raw/netavark.log")): skipped"
    return 0
  fi
  : > "$d/times"
  for i in $(seq "$nnv"); do
    t0=$(date +%s%N)
    timeout 30 "$nv" --config "$d/cfg" -f "$d/c1.json" setup /run/netns/nvc1 >/dev/null 2>>"$out/raw/netavark.log" || { note "netavark: setup failed: skipped"; return 0; }
    t1=$(date +%s%N)
    timeout 30 "$nv" --config "$d/cfg" -f "$d/c1.json" teardown /run/netns/nvc1 >/dev/null 2>>"$out/raw/netavark.log" || { note "netavark: teardown failed: skipped"; return 0; }
    t2=$(date +%s%N)
    echo "$(((t1 - t0) / 1000)) $(((t2 - t1) / 1000))" >> "$d/times"
  done
  timeout 30 "$nv" --config "$d/cfg" -f "$d/keeper.json" teardown /run/netns/nvkeeper >/dev/null 2>>"$out/raw/netavark.log" || true
  ip netns del nvc1; ip netns del nvkeeper
  awk -v cli="$cli_p50" -v api="$api_p50" -v ver="$("$nv" --version | awk '{print $2}')" '
    function pct(a, n, p,   i, j, t, s) { for (i = 1; i <= n; i++) s[i] = a[i]
      for (i = 2; i <= n; i++) { t = s[i]; for (j = i - 1; j >= 1 && s[j] > t; j--) s[j + 1] = s[j]; s[j + 1] = t }
      return s[int(n * p / 100 + 0.5)] / 1000 }
    { su[NR] = $1; td[NR] = $2; both[NR] = $1 + $2 }
    END {
      b = pct(both, NR, 50)
      printf "cp\tnetavark %s setup+teardown of one container on an existing bridge (n=%d)\tsetup p50 %.1f ms, teardown p50 %.1f ms, setup+teardown p50 %.1f ms p99 %.1f ms\n", ver, NR, pct(su, NR, 50), pct(td, NR, 50), b, pct(both, NR, 99)
      printf "cp\tberth create+rm p50 / netavark setup+teardown p50\tCLI %.1f / %.1f ms = %.2f (target <= 0.5); API %.1f / %.1f ms = %.2f\n", cli, b, cli / b, api, b, api / b
    }' "$d/times" | tee -a "$out/results.txt"
}
log "netavark: $nnv setup+teardown"
netavark_peer

log "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
bash "$(dirname "$0")/report.sh" "$mode" "$out" > "$out/RESULTS.md"
log "done: $out/RESULTS.md"
