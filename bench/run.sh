#!/usr/bin/env bash
# run.sh MODE BIN OUT: berth's benchmark, run by `make bench` (MODE full) and `make
# bench-quick` (MODE quick) inside a private network+mount namespace (unshare --net --mount):
# loopback and the addresses made here only, every step bounded in time.
#
# BIN holds berth, refserver, rawudp and cplat; OUT gets the query files, raw outputs and
# RESULTS.md. Every DNS server runs in the netns of sandbox "client", on its own 127.0.0.x
# address; dnsperf runs there too and asks each in turn, with the same query files.
set -euo pipefail
mode=$1 bin=$2 out=$3
case $mode in
full) dur=7 nsmall=99 nbig=100 naliases=100 nlat=200 nbulk=1000 ;;
quick) dur=2 nsmall=99 nbig=100 naliases=100 nlat=30 nbulk=200 ;;
cp) dur=0 nsmall=99 nbig=100 naliases=100 nlat=200 nbulk=1000 ;; # the full topology, control plane only
*) echo "usage: run.sh full|quick|cp BIN OUT" >&2; exit 2 ;;
esac
rm -rf "$out"; mkdir -p "$out/q" "$out/raw"
state=$(mktemp -d /tmp/berth-bench.XXXXXX)
pids=() jobs=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$state"
}
trap cleanup EXIT
log() { printf '%s %s\n' "$(date +%T)" "$*" | tee -a "$out/log.txt" >&2; }
result() { printf '%s\n' "$*" | tee -a "$out/results.txt"; }

for d in /run/netns /etc/netns /run/berth; do mkdir -p "$d"; mount -t tmpfs tmpfs "$d"; done
ip link set lo up

# The upstream for forwarded names (daemon netns; berth dials host nameservers from there).
"$bin/refserver" -listen 127.0.0.53:53 -any 10.9.9.9 & pids+=($!)
printf 'nameserver 127.0.0.53\n' > "$state/resolv.conf"
berth=${BERTH:-$bin/berth} # BERTH=PATH measures another build
start_daemon() {
  "$berth" daemon --root "$state/root" --resolv-conf "$state/resolv.conf" --log-level error 2>>"$out/daemon.log" &
  daemon=$!
}
start_daemon
for _ in $(seq 100); do "$berth" network ls -q >/dev/null 2>&1 && break; sleep 0.05; done

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
}

cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# perf MIX SERVER ADDR PORT PID VARIANT [dnsperf args]: one dnsperf run, one results line.
perf() {
  local mix=$1 name=$2 addr=$3 port=$4 pid=$5 variant=$6; shift 6
  local pin=() c0 c1 f=$out/raw/$mix.$name.$variant.txt
  if [ "$variant" = pinned ]; then
    taskset -a -p -c 0 "$pid" >/dev/null
    pin=(taskset -c 1)
  else
    taskset -a -p -c 0-1 "$pid" >/dev/null
  fi
  c0=$(cputicks "$pid")
  ip netns exec client "${pin[@]}" dnsperf -s "$addr" -p "$port" -d "$q/$mix" -l "$dur" -t 2 -W "$@" > "$f" 2>&1 || true
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
sleep 0.3

# The same 100 names, then 10,000 more through aliases.
run_mixes() {
  local variant=$1; shift
  for mix in "$@"; do
    while read -r name addr port pid extra; do
      [ "$name" = rawudp ] && [[ $mix != a_* ]] && continue
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
[ "$mode" = cp ] || run_mixes pinned a_10000 a_100_with_10000
[ "$mode" = cp ] || log "dns: forwarded"
[ "$mode" = cp ] || for srv in "berth 127.0.0.11 53 $daemon" "dnsmasq 127.0.0.13 53 ${dnsmasqpid:-}" "aardvark-dns 127.0.0.15 53 ${aardpid:-} -a 10.77.0.2"; do
  read -r name addr port pid extra <<< "$srv"
  [ -z "$pid" ] || [[ $pid == -* ]] && continue
  # shellcheck disable=SC2086
  perf forwarded "$name" "$addr" "$port" "$pid" pinned $extra
done
taskset -a -p -c 0-1 "$daemon" >/dev/null

log "control plane"
lat=()
for i in $(seq "$nlat"); do
  t0=$(date +%s%N)
  "$berth" sandbox create --name "cli$i" --network benchnet >/dev/null
  "$berth" sandbox rm -f "cli$i" >/dev/null
  lat+=($((($(date +%s%N) - t0) / 1000)))
done
printf '%s\n' "${lat[@]}" | sort -n | awk '{v[NR] = $1} END {
  printf "cp\tCLI sandbox create+rm (n=%d)\tp50 %.1f ms p99 %.1f ms\n", NR, v[int(NR * 0.5 + 0.5)] / 1000, v[int(NR * 0.99 + 0.5)] / 1000 }' | tee -a "$out/results.txt"
result "cp	$("$bin/cplat" -mode lat -n "$nlat")"
rss() { awk '/VmRSS/ {print $2}' "/proc/$daemon/status"; }
fds() { ls "/proc/$daemon/fd" | wc -l; }
sb0=$("$berth" sandbox ls -q | wc -l) r0=$(rss) f0=$(fds)
# A network of their own: a Linux bridge takes at most 1024 ports (EXFULL beyond).
"$berth" network create --subnet 10.78.0.0/16 bulknet >/dev/null
result "cp	$("$bin/cplat" -mode bulk -n "$nbulk" -network bulknet)"
sleep 1
r1=$(rss) f1=$(fds)
result "cp	daemon with $sb0 sandboxes: RSS $r0 KiB, $f0 fds; with $((sb0 + nbulk)): RSS $r1 KiB, $f1 fds; per sandbox $(((r1 - r0) / nbulk)) KiB, $(((f1 - f0) / nbulk)) fds"
kill "$daemon"; wait "$daemon" 2>/dev/null || true
t0=$(date +%s%N)
start_daemon
probe=$("$bin/cplat" -mode probe -n "$nbulk" -timeout 30s)
result "cp	restart with $((sb0 + nbulk)) sandboxes: $probe (from daemon exec: $((($(date +%s%N) - t0) / 1000000)) ms)"
result "cp	$("$bin/cplat" -mode rm -n "$nbulk")"

bash "$(dirname "$0")/report.sh" "$mode" "$out" > "$out/RESULTS.md"
log "done: $out/RESULTS.md"
