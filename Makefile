# berth: make build | make demo | make test
GO        ?= go
BIN       := bin/berth
DAEMON_BIN := bin/berth-daemon
CNI_BIN   := bin/berth-cni

.PHONY: build deps demo demo-multihost test test-unit vet clean fuzz stress install

# The binaries are static (no cgo: nothing here needs libc): every `berth` client command
# then starts without the dynamic loader, ~2 ms less per command on the machines we measure.
build:
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/berth
	CGO_ENABLED=0 $(GO) build -o $(DAEMON_BIN) ./cmd/berth-daemon
	CGO_ENABLED=0 $(GO) build -o $(CNI_BIN) ./cmd/berth-cni

# deps installs the system tools the demo and the integration tests run (ip, ping, dig, nft;
# iptables and Docker's engine for TestCoexistDocker; etcd for internal/etcdtest). No package
# may start its service meanwhile (policy-rc.d exit 101): docker.io would start dockerd, and
# etcd-server etcd, in the machine's own namespaces; the tests run their own.
deps:
	@missing=""; \
	for c in ip:iproute2 ping:iputils-ping dig:dnsutils nft:nftables unshare:util-linux \
		containerd:containerd ctr:containerd runc:runc iptables:iptables dockerd:docker.io \
		etcd:etcd-server; do \
		command -v $${c%%:*} >/dev/null 2>&1 || missing="$$missing $${c#*:}"; \
	done; \
	dpkg -s busybox-static >/dev/null 2>&1 || missing="$$missing busybox-static"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		policy=; if [ ! -e /usr/sbin/policy-rc.d ]; then policy=1; printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
		status=$$?; [ -z "$$policy" ] || rm -f /usr/sbin/policy-rc.d; exit $$status; \
	fi
	$(GO) mod download

# demo runs a daemon, a network and two sandboxes inside a private network+mount namespace:
# nothing in the machine's own namespaces changes.
demo: deps build
	unshare --net --mount --propagation private scripts/demo.sh $(abspath $(BIN))

# demo-multihost runs etcd and three simulated hosts (each a net+mount namespace with its own
# daemon) inside one private namespace, and shows an overlay network's names and pings
# from a sandbox on host C to one on host A.
demo-multihost: deps build
	unshare --net --mount --propagation private scripts/demo-multihost.sh $(abspath $(BIN))

# vet runs go vet and staticcheck (pinned in go.mod as a tool: `go tool` builds it from the
# module cache `go mod download` filled, so CI needs nothing else).
vet:
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

# test runs every test, the root integration tests included (each test binary re-executes
# itself under `unshare --net --mount`). Under CI=true those tests fail instead of skipping
# when they cannot run.
test: deps build vet
	BERTH_BIN=$(abspath $(BIN)) BERTH_CNI_BIN=$(abspath $(CNI_BIN)) $(GO) test -race -count=1 ./...

test-unit:
	$(GO) test -count=1 ./netmgr/... ./resolver/... ./daemon/... ./cmd/... ./api/...

# fuzz runs each fuzz target for FUZZTIME (their seed corpora also run in `make test`), then
# the model-based test with more seeds. A crash leaves its input under PKG/testdata/fuzz/.
FUZZTIME ?= 60s
FUZZ_TARGETS = resolver:FuzzResolvConf resolver:FuzzHosts resolver:FuzzLookup \
               netmgr:FuzzValidate netmgr:FuzzSandboxSettings daemon:FuzzDecodeBody \
               dnsd:FuzzHandler
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; fn=$${t##*:}; echo "== $$fn ($$pkg)"; \
	  $(GO) test ./$$pkg/ -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME); \
	done
	$(GO) test ./netmgr/ -run '^TestModel$$' -count=1 -model.seeds=200

# stress runs a bounded mixed load (queries, malformed packets, idle TCP clients, sandbox
# churn) in a private namespace and prints the daemon's goroutines, fds and RSS before/after.
STRESS ?= 60s
stress: deps build
	BERTH_BIN=$(abspath $(BIN)) BERTH_STRESS=$(STRESS) $(GO) test -count=1 -v -run '^TestStress$$' ./integration/

# install puts the binaries (berth, the CNI plugin berth-cni), the systemd unit and the README in place (PREFIX=/usr/local).
PREFIX ?= /usr/local
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/berth
	install -D -m 0755 $(DAEMON_BIN) $(DESTDIR)$(PREFIX)/bin/berth-daemon
	install -D -m 0755 $(CNI_BIN) $(DESTDIR)/opt/cni/bin/berth-cni
	install -D -m 0644 contrib/berth.service $(DESTDIR)/etc/systemd/system/berth.service
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/berth/README.md
	$(DESTDIR)$(PREFIX)/bin/berth completion bash > berth.bash && install -D -m 0644 berth.bash $(DESTDIR)/usr/share/bash-completion/completions/berth && rm -f berth.bash

clean:
	rm -rf bin

# Benchmarks (bench/bench.mk): make bench, make bench-quick
-include bench/bench.mk
