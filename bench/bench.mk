# make bench (full, < 10 min) and make bench-quick (< 2 min): DNS and control-plane numbers
# of berth and its peers, measured inside a private network+mount namespace (nothing of the
# machine's own changes). Writes bench/out/MODE/ and bench/RESULTS.md (full run only).
BENCH_BIN := bench/.bin

.PHONY: bench bench-quick bench-cp bench-restart bench-build bench-deps bench-scale bench-mirror bench-multihost

# bench-deps installs the peers from Debian, here in the machine's own netns: the bench
# itself runs in a private one, where apt cannot reach the mirror (docker-oracle.sh's own
# install would fail there). netavark needs iptables; the oracle needs docker.io and busybox.
# No package may start its service meanwhile (policy-rc.d exit 101): docker.io would start
# dockerd in the machine's own namespaces.
bench-deps:
	@missing=""; \
	for c in dnsperf:dnsperf dnsmasq:dnsmasq-base /usr/lib/podman/aardvark-dns:aardvark-dns ss:iproute2 taskset:util-linux dig:dnsutils \
		/usr/lib/podman/netavark:netavark iptables:iptables dockerd:docker.io /bin/busybox:busybox-static; do \
		command -v $${c%%:*} >/dev/null 2>&1 || [ -x "$${c%%:*}" ] || missing="$$missing $${c#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		policy=; if [ ! -e /usr/sbin/policy-rc.d ]; then policy=1; printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing || \
			echo "bench: could not install:$$missing (those peers are skipped)"; \
		[ -z "$$policy" ] || rm -f /usr/sbin/policy-rc.d; \
	fi

bench-build:
	CGO_ENABLED=0 $(GO) build -o $(BENCH_BIN)/berth ./cmd/berth
	CGO_ENABLED=0 $(GO) build -o $(BENCH_BIN)/berth-daemon ./cmd/berth-daemon
	$(GO) build -o $(BENCH_BIN)/ ./bench/refserver ./bench/rawudp ./bench/cplat ./bench/fwscale ./bench/mirrorload

bench: deps bench-deps bench-build
	unshare --net --mount --propagation private bench/run.sh full $(abspath $(BENCH_BIN)) $(abspath bench/out/full)
	unshare --net --mount --propagation private bench/scale.sh $(abspath $(BENCH_BIN)) $(abspath bench/out/scale)
	@# The hand-written sections above the generated part stay; the generated part is replaced.
	{ sed '/^# berth benchmark results (full run)$$/,$$d' bench/RESULTS.md 2>/dev/null; cat bench/out/full/RESULTS.md; \
	  echo; cat bench/out/scale/RESULTS.md; } > bench/RESULTS.md.new
	mv bench/RESULTS.md.new bench/RESULTS.md

bench-quick: deps bench-deps bench-build
	unshare --net --mount --propagation private bench/run.sh quick $(abspath $(BENCH_BIN)) $(abspath bench/out/quick)

# bench-cp: the control-plane part only (same topology as bench, no dnsperf; ~3 min).
# BERTH=PATH measures another berth build with the same harness.
bench-cp: deps bench-build
	unshare --net --mount --propagation private bench/run.sh cp $(abspath $(BENCH_BIN)) $(abspath bench/out/cp)

# bench-mirror: one daemon mirroring MIRROR_N remote endpoints that a fake host
# (bench/mirrorload, package cluster's own publisher) publishes in an etcd of its own (issue
# 16; ~30 s): RSS, and kill -9 to answering the last remote name, 3 times.
MIRROR_N ?= 10000
bench-mirror: deps bench-build
	unshare --net --mount --propagation private bench/mirror.sh $(abspath $(BENCH_BIN))/berth $(abspath $(BENCH_BIN))/mirrorload $(MIRROR_N)

# bench-multihost: issue 16 on three simulated hosts with etcd (integration's rig; ~1 min):
# create on A to answer on C (p50, p99), 3 x 100 concurrent creates (creates/s, duplicate
# addresses), ping RTT and TCP throughput across VXLAN against one bridge.
bench-multihost: deps build
	@# Not piped into grep: the pipe's status was grep's, so a failing test passed as long as
	@# one bench line came out before it failed.
	mkdir -p bench/out
	CI=true BERTH_BENCH=1 BERTH_BIN=$(abspath $(BIN)) $(GO) test -count=1 -run '^TestBenchMultihost$$' -v ./integration/ \
		>bench/out/multihost.log 2>&1; rc=$$?; grep '^bench' bench/out/multihost.log; \
		[ $$rc = 0 ] || { tail -40 bench/out/multihost.log; exit $$rc; }

# bench-restart: daemon restart with RESTART_N sandboxes until every 127.0.0.11 answers,
# RESTART_ROUNDS times (~1 min). BERTH=PATH measures another build.
RESTART_N ?= 1000
RESTART_ROUNDS ?= 3
bench-restart: deps bench-build
	unshare --net --mount --propagation private bench/restart.sh $(abspath $(BENCH_BIN)) $(RESTART_N) $(RESTART_ROUNDS)

# bench-scale: the firewall scale curve alone (issue 14.1; ~1-2 min): 1,000 networks with
# explicit subnets and 5,000 published ports against one daemon, create time and nftables
# rules/elements at 1, 10, 100, 500, 1,000 networks and 1, 100, 1,000, 5,000 ports.
# SCALE_NETWORKS / SCALE_PORTS change the counts; BERTH=PATH measures another build.
SCALE_NETWORKS ?= 1000
SCALE_PORTS ?= 5000
bench-scale: deps bench-build
	unshare --net --mount --propagation private bench/scale.sh $(abspath $(BENCH_BIN)) $(abspath bench/out/scale) $(SCALE_NETWORKS) $(SCALE_PORTS)
