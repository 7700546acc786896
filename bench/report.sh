#!/usr/bin/env bash
# report.sh MODE OUT: RESULTS.md from OUT/results.txt (written by run.sh): one table per
# query mix and variant with each server's ratio to berth, then the control-plane lines.
set -euo pipefail
mode=$1 out=$2
cat <<EOF
# berth benchmark results ($mode run)

Machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r).
Run: $(date -u +%Y-%m-%dT%H:%MZ), \`make bench$([ "$mode" = quick ] && echo -quick)\` (bench/run.sh inside
\`unshare --net --mount\`). Raw dnsperf outputs: bench/out/$mode/raw/, exact commands: bench/run.sh.

DNS: dnsperf 2.10 in sandbox \`client\`, each server on its own 127.0.0.x in the same netns,
\`dnsperf -s ADDR -p PORT -d QUERYFILE -l SECONDS -t 2\`; "pinned": server threads on CPU 0
(\`taskset -a -p -c 0 PID\`), dnsperf on CPU 1 (\`taskset -c 1\`). Server CPU per answer:
utime+stime from /proc/PID/stat over the run, divided by completed queries (berth's figure
is the whole daemon). berth = through 127.0.0.11:53 and the NAT; berth-noNAT = the same
socket on its random port. ratio = server qps / berth qps. dnsperf 2.10 reports mean and
standard deviation of latency, not percentiles. docker = Docker 20.10's embedded resolver
(Debian's dockerd, started for the run by ../shared/tools/docker-oracle.sh in a namespace of
its own), asked at 127.0.0.11:53 through its NAT rules by the same dnsperf command run in a
container's netns (\`nsenter -t PID -n\`); its 99 names are network aliases of 3 containers,
its forwarded names go to the same refserver -any on the bridge's gateway (the container's
\`--dns\`); its CPU is dockerd's. Control plane: netavark = Debian's \`netavark setup\` then
\`teardown\` of one container (a JSON network options file, a netns of its own) on a bridge
held by a second container, timed with \`date\` around each command like berth's CLI.

EOF
awk -F'\t' '
  $1 == "dns" { key = $2 " (" $3 ")"; if (!(key in seen)) { seen[key] = 1; order[++n] = key }
    rows[key] = rows[key] "\n" $0; if ($4 == "berth") base[key] = $5 }
  END {
    for (i = 1; i <= n; i++) {
      key = order[i]
      printf "### %s\n\n| server | qps | ratio to berth | mean latency µs | sd µs | lost | server CPU µs/answer | rcodes |\n|---|---|---|---|---|---|---|---|\n", key
      split(substr(rows[key], 2), lines, "\n")
      for (j = 1; j in lines; j++) {
        split(lines[j], f, "\t")
        r = base[key] > 0 ? sprintf("%.2f", f[5] / base[key]) : "-"
        printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", f[4], f[5], r, f[6], f[7], f[8], f[9], f[10]
      }
      print ""
    }
  }' "$out/results.txt"
# The forward cache's targets (issue 18), from the same run: a hit >= 0.9x a local answer
# (berth's a_100 and a_10000, pinned), a miss no slower than a forward without the cache.
if grep -q $'^dns\tforwarded\tpinned\tberth-nocache\t' "$out/results.txt"; then
  echo "### forward cache (forwarded names, pinned)"
  echo
  echo "| comparison | qps | against | qps | ratio |"
  echo "|---|---|---|---|---|"
  # (The ?: is in parentheses: a bare > in printf's arguments is a redirection.)
  awk -F'\t' 'function row(what, a, against, b) {
        printf "| %s | %s | %s | %s | %s |\n", what, a, against, b, (b > 0 ? sprintf("%.2f", a / b) : "-") }
    $1 == "dns" && $3 == "pinned" { qps[$2, $4] = $5 }
    END {
      row("cached forward (berth-cached, 10,000 names)", qps["forwarded", "berth-cached"], "local answer (a_100, berth)", qps["a_100", "berth"])
      row("cached forward (berth-cached, 10,000 names)", qps["forwarded", "berth-cached"], "local answer (a_10000, berth)", qps["a_10000", "berth"])
      row("miss (berth-miss, 16 entries)", qps["forwarded", "berth-miss"], "no cache (berth-nocache)", qps["forwarded", "berth-nocache"])
    }' "$out/results.txt"
  echo
fi
# 10,000 names asked against 100 of the same names' form, each server in the same phase
# (rawudp answers without a lookup: its ratio shows what the query files alone change).
# Rounds 2 and 3 (berth and rawudp) alternate the two files again; the median ratio counts.
if grep -q $'^dns\ta_100_of_10000\t' "$out/results.txt"; then
  echo "### 10,000 names vs 100 (a_10000 / a_100_of_10000, pinned)"
  echo
  echo "| server | round | qps 10,000 names | qps 100 names | ratio | CPU µs/answer 10,000 | CPU µs/answer 100 |"
  echo "|---|---|---|---|---|---|---|"
  awk -F'\t' '$1 == "dns" && $3 ~ /^pinned/ && ($2 == "a_10000" || $2 == "a_100_of_10000") {
      r = $3 == "pinned" ? 1 : substr($3, 9) + 0
      if (!($4 in seen)) { seen[$4] = 1; order[++n] = $4 }
      if (r > rounds[$4]) rounds[$4] = r
      qps[$2, $4, r] = $5; cpu[$2, $4, r] = $9 }
    END { for (i = 1; i <= n; i++) { s = order[i]; k = 0
      for (r = 1; r <= rounds[s]; r++) { b = qps["a_100_of_10000", s, r]; if (b <= 0) continue
        v[++k] = qps["a_10000", s, r] / b
        printf "| %s | %d | %s | %s | %.2f | %s | %s |\n", s, r, qps["a_10000", s, r], b, v[k], cpu["a_10000", s, r], cpu["a_100_of_10000", s, r] }
      if (k >= 3) { # median of k (insertion sort)
        for (x = 2; x <= k; x++) { y = v[x]; for (z = x - 1; z >= 1 && v[z] > y; z--) v[z + 1] = v[z]; v[z + 1] = y }
        printf "| %s | median of %d | | | **%.2f** | | |\n", s, k, v[int((k + 1) / 2)] } } }' "$out/results.txt"
  echo
fi
if awk -F'\t' '$1 == "note" {f = 1} END {exit !f}' "$out/results.txt"; then
  echo "### Peers not measured"
  echo
  awk -F'\t' '$1 == "note" { print "- " $2 }' "$out/results.txt"
  echo
fi
echo "### Control plane"
echo
awk -F'\t' '$1 == "cp" { print "- " $2 (NF > 2 ? ": " $3 : "") }' "$out/results.txt"
echo
echo "### Log"
echo
echo '```'
cat "$out/log.txt"
echo '```'
