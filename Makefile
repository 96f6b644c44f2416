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

.PHONY: all build test setup unit lint vet fmt check-deps run install fuzz bench bench-sim clean

all: build

build:
	@mkdir -p bin
	@if [ -d cmd/gnomond ]; then $(GO) build $(GOFLAGS_BUILD) -o bin/gnomond ./cmd/gnomond; fi
	@if [ -d cmd/gnomonctl ]; then $(GO) build $(GOFLAGS_BUILD) -o bin/gnomonctl ./cmd/gnomonctl; fi

## test: set up what the tests need (the real peers, with apt when root), then run every test.
test: setup lint unit

setup:
	@./scripts/install-peers.sh

unit:
	$(GO) test -count=1 -timeout 12m ./...

lint: fmt vet check-deps

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
