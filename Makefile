# idledger — see README.md. Every target works on a fresh machine with only Go installed.
GO     ?= go
DATA   ?= ./data
LISTEN ?= 127.0.0.1:8080

.PHONY: build build-bench run test bench bench-short bench-go lint fuzz fuzz-smoke clean screens

build:
	$(GO) build -o bin/idledger ./cmd/idledger

# Starts the real server on the embedded NATS JetStream; on first start it creates a demo
# company and prints the SCIM URL, its token and the operator token.
run: build
	./bin/idledger serve --data $(DATA) --listen $(LISTEN) --demo

test:
	$(GO) test -race -count=1 ./...
	@$(MAKE) --no-print-directory fuzz-smoke

# Every parser of untrusted input has a fuzz target (package:Target,Target). `make test` runs
# each for FUZZTIME, `make fuzz` for 30 s; -fuzz takes one target per run, so a package's
# targets run one after another, packages side by side. What a run finds is written to
# <pkg>/testdata/fuzz/<Target>/ and committed: a regression seed for every later `go test`.
FUZZ = ./httpapi:FuzzSCIMBody ./domain:FuzzDiffApply ./domain/scim:FuzzParseFilter,FuzzParsePatchPath,FuzzPatchUser,FuzzReadAttributes ./domain/jsonenc:FuzzAppendJSON \
	./eventstore:FuzzDecodeEvent ./saml:FuzzParseIDPMetadata ./projections:FuzzRowJSON,FuzzRowPartial
FUZZTIME ?= 3s
# Minimising each new interesting input may take up to 60 s by default, during which a worker
# explores nothing (a long filter shows as minutes of "0/sec"); a short budget keeps it fuzzing.
FUZZMIN ?= 2s

fuzz-smoke:
	@pids=; for spec in $(FUZZ); do \
		pkg=$${spec%%:*}; \
		( for fn in $$(echo "$${spec#*:}" | tr , ' '); do \
			$(GO) test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMIN) $$pkg || exit 1; \
		done ) & pids="$$pids $$!"; \
	done; rc=0; for p in $$pids; do wait $$p || rc=1; done; exit $$rc

# The console's screenshots (README, "Connect Microsoft Entra ID"): the headless Chromium test
# writes them to bin/screens/; this copies the set into docs/screens/.
screens:
	$(GO) test -count=1 -run '^TestConsoleBrowser' ./httpapi/
	cp bin/screens/*.png docs/screens/

# idledger-bench (docs/benchmarks.md): this machine's limits, an Entra-like provisioning cycle
# over HTTP, replay and SAML, on a fresh temp data dir. Prints the table, writes the JSON
# results and the initial cycle's CPU profile to bin/, and records the table in
# docs/benchmarks.md. bench-short is the -short profile (10k users, 200 groups; < 2 min).
# The bench is its own command (cmd/idledger-bench), not part of the idledger binary.
build-bench:
	$(GO) build -o bin/idledger-bench ./cmd/idledger-bench

bench: build-bench
	./bin/idledger-bench --out bin/bench-results.json

bench-short: build-bench
	./bin/idledger-bench -short --out bin/bench-short-results.json

# The go test micro-benchmarks.
bench-go:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	@if $(GO) list -f '{{join .Imports "\n"}}' ./domain/... | grep -v '^github.com/idledger/idledger/domain' | grep -q '\.'; then \
		echo "domain must import only the standard library (and its own packages):"; \
		$(GO) list -f '{{join .Imports "\n"}}' ./domain/... | grep -v '^github.com/idledger/idledger/domain' | grep '\.'; exit 1; fi
	@echo "lint ok"

fuzz:
	@$(MAKE) --no-print-directory fuzz-smoke FUZZTIME=30s

clean:
	rm -rf bin
