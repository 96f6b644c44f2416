# Gnomon: one memory-safe daemon that keeps a Linux machine's time.
# Targets mirror CI: .ci/run is `make test`.

GO        ?= go
export CGO_ENABLED = 0
PREFIX    ?= /usr
DESTDIR   ?=
SBINDIR   ?= $(PREFIX)/sbin
BINDIR    ?= $(PREFIX)/bin
FUZZTIME  ?= 60s
# address space (KiB) of each fuzz run: an input that blows up memory fails
# the run, not the machine
FUZZMEM   ?= 8000000
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GOFLAGS_BUILD = -trimpath -ldflags "-X main.version=$(VERSION)"

ENGINE_FORBIDDEN = ^(net|os|syscall|golang.org\/x\/sys|github.com\/godbus|github.com\/coreos)(\/|$$)

.PHONY: all build test setup unit lint vet fmt check-deps run install fuzz bench bench-sim clean cross tidy staticcheck unparam

all: build

build:
	@mkdir -p bin
	@if [ -d cmd/gnomond ]; then $(GO) build $(GOFLAGS_BUILD) -o bin/gnomond ./cmd/gnomond; fi
	@if [ -d cmd/gnomonctl ]; then $(GO) build $(GOFLAGS_BUILD) -o bin/gnomonctl ./cmd/gnomonctl; fi

## test: set up what the tests need (the real peers, with apt when root), then run every test.
test: setup lint test-deb unit cross

setup:
	@./scripts/install-peers.sh

## unit: every test with the race detector (cgo for the test binaries and
## one race-enabled gnomond only; what we ship stays CGO_ENABLED=0). The
## integration tests in tests/ start that gnomond (GNOMON_TEST_GNOMOND);
## GORACE stops a racing program at its first report and keeps the report
## in a file, which tests/peers and this target turn into a failure.
## tests/ntpload, a load generator that measures its own pacing, runs
## without -race. The VM suite (tests/vm) installs the package test-deb
## left in DEB_OUT, when there is one, instead of building another.
unit:
	@set -e; dir=$$(mktemp -d /tmp/gnomon-race-XXXXXX); trap 'rm -rf "$$dir"' EXIT; \
	chmod 0755 "$$dir"; mkdir -m 1777 "$$dir/logs"; \
	CGO_ENABLED=1 $(GO) build -race -o "$$dir/gnomond" ./cmd/gnomond; \
	GNOMON_VM_DEB=$$(ls $(abspath $(DEB_OUT))/gnomon_*_amd64.deb 2>/dev/null | head -n1); export GNOMON_VM_DEB; \
	rc=0; CGO_ENABLED=1 GNOMON_TEST_GNOMOND="$$dir/gnomond" GORACE="halt_on_error=1 log_path=$$dir/logs/race" \
	  $(GO) test -race -count=1 -timeout 12m $$($(GO) list ./... | grep -v '/tests/ntpload$$') || rc=$$?; \
	$(GO) test -count=1 -timeout 5m ./tests/ntpload || rc=$$?; \
	if ls "$$dir"/logs/race.* >/dev/null 2>&1; then \
	  echo "unit: the race detector reported data races:"; cat "$$dir"/logs/race.*; rc=1; fi; \
	exit $$rc

lint: fmt vet check-deps tidy staticcheck unparam

# Linters at pinned versions, fetched through the module proxy on first use
# (then from the build cache).
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
UNPARAM     ?= $(GO) run mvdan.cc/unparam@v0.0.0-20260823230713-2fa3d841b0c8

## tidy: go.mod and go.sum are what go mod tidy makes of them.
tidy:
	$(GO) mod tidy -diff

staticcheck:
	$(STATICCHECK) ./...

## unparam: no parameter that always receives the same value or is unused.
unparam:
	$(UNPARAM) ./...

## cross: every architecture Debian builds gnomon for (debian/control says
## Architecture: any) compiles and vets, and the engine's tests pass with
## 32-bit ints (GOARCH=386 runs natively on amd64).
CROSS_ARCHES ?= amd64 386 arm arm64 ppc64le s390x riscv64
cross:
	@set -e; for a in $(CROSS_ARCHES); do echo "cross: GOARCH=$$a"; \
	  GOARCH=$$a GOARM=7 $(GO) build ./... ; GOARCH=$$a GOARM=7 $(GO) vet ./... ; done
	@if [ "$$($(GO) env GOHOSTARCH)" = amd64 ]; then GOARCH=386 $(GO) test -count=1 ./engine/...; fi

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt: not formatted:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

## check-deps: engine/ stays sans-IO: no sockets, files, syscalls, D-Bus or systemd, no time.Now.
check-deps:
	@bad=$$($(GO) list -f '{{.ImportPath}} {{join .Imports " "}}' ./engine/... | \
	  awk '{for(i=2;i<=NF;i++) if ($$i ~ /$(ENGINE_FORBIDDEN)/) print $$1" imports "$$i}'); \
	if [ -n "$$bad" ]; then echo "engine/ must stay sans-IO:"; echo "$$bad"; exit 1; fi
	@now=$$(grep -rn --include='*.go' 'time\.Now()' engine | grep -v '_test.go' || true); \
	if [ -n "$$now" ]; then echo "engine/ calls time.Now:"; echo "$$now"; exit 1; fi
	@echo "check-deps: engine/ is sans-IO"

## run: the daemon in the foreground on its embedded default configuration.
## It is a way to try gnomond, so it never touches the clock or the system
## bus, whoever runs it: observe mode, no D-Bus, no state kept. Override with
## RUNFLAGS (e.g. RUNFLAGS="--config my.toml --observe").
RUNFLAGS ?= --observe --no-dbus --state-dir "" --user ""
run:
	$(GO) run ./cmd/gnomond $(RUNFLAGS)

install: build man completions install-units
	install -D -m 0755 bin/gnomond $(DESTDIR)$(SBINDIR)/gnomond
	@if [ -f bin/gnomonctl ]; then install -D -m 0755 bin/gnomonctl $(DESTDIR)$(BINDIR)/gnomonctl; fi
	@if [ -f configs/gnomon.toml ]; then install -D -m 0644 configs/gnomon.toml $(DESTDIR)/etc/gnomon/gnomon.toml; fi

## fuzz: every Fuzz target for FUZZTIME each.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; ( ulimit -v $(FUZZMEM) && GOMEMLIMIT=1GiB $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg ) || exit 1; \
	  done; done

bench: bench-sim bench-side

## bench-sim: 24 simulated hours of four sources (target: under 5 s each).
bench-sim:
	$(GO) test -run '^$$' -bench Day -benchtime 3x ./engine/sim

clean:
	rm -rf bin

# Fragments for benchmarks, packaging and the CLI's generated files.
-include mk/*.mk
