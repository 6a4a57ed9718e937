# idledger — see README.md. Every target works on a fresh machine with only Go installed.
GO     ?= go
DATA   ?= ./data
LISTEN ?= 127.0.0.1:8080

.PHONY: build run test bench lint fuzz clean

build:
	$(GO) build -o bin/idledger ./cmd/idledger

# Starts the real server on the embedded NATS JetStream; on first start it creates a demo
# company and prints the SCIM URL, its token and the operator token.
run: build
	./bin/idledger serve --data $(DATA) --listen $(LISTEN) --demo

test:
	$(GO) test -race -count=1 ./...

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	@if $(GO) list -f '{{join .Imports "\n"}}' ./domain/... | grep -q '\.'; then \
		echo "domain must import only the standard library:"; \
		$(GO) list -f '{{join .Imports "\n"}}' ./domain/... | grep '\.'; exit 1; fi
	@echo "lint ok"

fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzCanonicalUser -fuzztime=30s ./domain

clean:
	rm -rf bin
