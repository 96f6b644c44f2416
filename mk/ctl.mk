# gnomonctl's generated files: manual pages and shell completions. The
# top-level Makefile includes this file; it also works on its own:
# make -f Makefile -f mk/ctl.mk <target>.
#
#   make man           gnomonctl(1), gnomond(8) and gnomon.toml(5) into MAN_OUT
#                      (default man/, where mk/ship.mk's install-units looks),
#                      from gnomonctl's cobra tree, bin/gnomond --help and
#                      docs/configuration.md (ctl/gendoc)
#   make completions   bash, zsh and fish completions for gnomonctl and gnomond
#                      into COMPLETIONS_OUT (cobra's own generators)
#   make clean-ctl     removes both

ifndef GNOMON_CTL_MK
GNOMON_CTL_MK := 1

GO              ?= go
VERSION         ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
MAN_OUT         ?= man
COMPLETIONS_OUT ?= completions
# The pages' date: $(SOURCE_DATE_EPOCH) when set (reproducible builds), else
# the last commit's date, else today (gendoc's own default).
MAN_DATE        ?= $(if $(SOURCE_DATE_EPOCH),,$(shell git log -1 --format=%cs 2>/dev/null))

.PHONY: man completions clean-ctl ctl-bins

# Always rebuilt (go build is incremental): a stale bin/gnomond would
# document flags it no longer has.
# The top-level Makefile's GOFLAGS_BUILD when included from it.
CTL_GOFLAGS     ?= $(or $(GOFLAGS_BUILD),-trimpath -ldflags "-X main.version=$(VERSION)")

ctl-bins:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build $(CTL_GOFLAGS) -o bin/gnomond ./cmd/gnomond
	CGO_ENABLED=0 $(GO) build $(CTL_GOFLAGS) -o bin/gnomonctl ./cmd/gnomonctl

man: ctl-bins
	$(GO) run ./ctl/gendoc -out $(MAN_OUT) -gnomond bin/gnomond -config-doc docs/configuration.md \
	  -version $(VERSION) $(if $(MAN_DATE),-date $(MAN_DATE))
	@if command -v groff >/dev/null; then for p in $(MAN_OUT)/*.[1-8]; do \
	  out=$$(groff -man -Tutf8 -ww -z "$$p" 2>&1); \
	  if [ -n "$$out" ]; then echo "$$p: $$out"; exit 1; fi; done; fi

completions: ctl-bins
	@mkdir -p $(COMPLETIONS_OUT)
	set -e; for b in gnomonctl gnomond; do \
	  bin/$$b completion bash > $(COMPLETIONS_OUT)/$$b; \
	  bin/$$b completion zsh > $(COMPLETIONS_OUT)/_$$b; \
	  bin/$$b completion fish > $(COMPLETIONS_OUT)/$$b.fish; done

clean-ctl:
	rm -rf $(MAN_OUT) $(COMPLETIONS_OUT)

endif
