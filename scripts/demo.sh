#!/usr/bin/env bash
# demo.sh BERTH: the main job of berth, end to end, in the private network+mount namespace
# that `make demo` runs it in (unshare --net --mount): a daemon, a network, two sandboxes,
# `ping web` and `dig @127.0.0.11` from inside one of them. Nothing outside changes.
set -euo pipefail
berth=$1
root=$(mktemp -d /tmp/berth-demo.XXXXXX)

# Private copies of the iproute2 directories and the daemon's state.
for d in /run/netns /etc/netns /run/berth; do mkdir -p "$d"; mount -t tmpfs tmpfs "$d"; done
ip link set lo up

# The daemon forwards names it does not own to the nameservers of its resolv.conf; in this
# closed namespace that is a stand-in address nothing answers on.
printf 'nameserver 127.0.0.1\nsearch example.internal\n' > "$root/resolv.conf"
"$berth" daemon --root "$root/state" --resolv-conf "$root/resolv.conf" --log-level warn &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null; rm -rf "$root"' EXIT
for _ in $(seq 50); do "$berth" network ls -q >/dev/null 2>&1 && break; sleep 0.1; done

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
step "$berth" network create app
step "$berth" sandbox create --name web --network app
step "$berth" sandbox create --name db --network app --network-alias database
step "$berth" sandbox ls
step "$berth" exec db -- ping -c2 -W1 web
step ip netns exec web ping -c1 -W1 database
step ip netns exec db dig @127.0.0.11 +noall +answer web
step ip netns exec web dig @127.0.0.11 +noall +answer -x "$(ip netns exec db ip -4 -o addr show dev eth0 | awk '{split($4,a,"/"); print a[1]}')"
step ip netns exec web cat /etc/resolv.conf
step "$berth" network inspect app
step "$berth" sandbox rm -f web db
step "$berth" network rm app
echo
echo "demo ok"
