# The two commands a newcomer needs: `make run` and `make test`.
CARGO ?= cargo
DATA_DIR ?= ./data
BIND ?= 127.0.0.1:8080

.PHONY: run test build fmt lint unit bench

## Build (release) and serve on the embedded defaults; prints a usable key and a curl example.
run: build
	./target/release/dupify --data-dir $(DATA_DIR) serve --bind $(BIND) --issue-dev-key

build:
	$(CARGO) build --release -p dupify

## Format check, lints, and every test of the workspace.
test: fmt lint unit

fmt:
	$(CARGO) fmt --all --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

## Benchmarks (release): see docs/BENCHMARKS.md.
bench: build
	bash scripts/bench.sh
