# berth: make build | make demo | make test
GO        ?= go
BIN       := bin/berth
PKGS_APT  := iproute2 iputils-ping dnsutils nftables util-linux

.PHONY: build deps demo test test-unit vet clean

build:
	$(GO) build -o $(BIN) ./cmd/berth

# deps installs the system tools the demo and the integration tests run (ip, ping, dig, nft).
deps:
	@missing=""; \
	for c in ip:iproute2 ping:iputils-ping dig:dnsutils nft:nftables unshare:util-linux; do \
		command -v $${c%%:*} >/dev/null 2>&1 || missing="$$missing $${c#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	$(GO) mod download

# demo runs a daemon, a network and two sandboxes inside a private network+mount namespace:
# nothing in the machine's own namespaces changes.
demo: deps build
	unshare --net --mount --propagation private scripts/demo.sh $(abspath $(BIN))

vet:
	$(GO) vet ./...

# test runs every test, the root integration tests included (each test binary re-executes
# itself under `unshare --net --mount`). Under CI=true those tests fail instead of skipping
# when they cannot run.
test: deps build vet
	BERTH_BIN=$(abspath $(BIN)) $(GO) test -race -count=1 ./...

test-unit:
	$(GO) test -count=1 ./netmgr/... ./resolver/... ./cmd/... ./api/...

clean:
	rm -rf bin

# Benchmarks (bench/bench.mk): make bench, make bench-quick
-include bench/bench.mk
