#!/usr/bin/env bash
# Schema conformance: runs schemathesis (a third-party OpenAPI fuzzer, from PyPI) against
# a real server started from the given binary, with every check except
# positive_data_acceptance (see docs/API.md: a schema cannot say which strings are
# decodable images or cursors this server issued, so schema-valid bodies are legitimately
# refused with 400/422). Fails on any 5xx, any response that does not match the schema,
# and any schema-violating request that is accepted.
#
#   scripts/conformance.sh [BINARY] [MAX_EXAMPLES]      (defaults: target/debug/dupify 60)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/debug/dupify}
EXAMPLES=${2:-60}
SEED=${CONFORMANCE_SEED:-20261201}
VENV=${CONFORMANCE_VENV:-.venv-conformance}
PY=${PYTHON:-python3}
[ -x "$BIN" ] || cargo build -p dupify
[ -f models/libonnxruntime.so ] || $PY scripts/setup-models.py models

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "4.32.5"; then
  $PY -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "schemathesis==4.32.5"
fi

WORK=$(mktemp -d)
# The fuzzer's own account: unlimited, with a rate limit no run reaches, so every
# operation is exercised rather than answered 429.
ACCOUNT=$("$BIN" --data-dir "$WORK/data" accounts create --email conformance@example.com \
  --tier unlimited --rate-limit 1000000 | tail -1)
KEY=$("$BIN" --data-dir "$WORK/data" keys create --account "$ACCOUNT" --name conformance | tail -1)
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Both documented segmentation models are loaded, so no request meets a model this
# server lacks (which would rightly be a 503).
DUPIFY_MODELS_DIR=models DUPIFY_SEGMENTATION_MODELS=u2net,u2netp DUPIFY_LOG=warn \
  "$BIN" --data-dir "$WORK/data" serve --bind "127.0.0.1:$PORT" > "$WORK/serve.out" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 240); do
  grep -q "serving on" "$WORK/serve.out" 2>/dev/null && break
  kill -0 $SERVER 2>/dev/null || { cat "$WORK/serve.out"; exit 1; }
  sleep 0.5
done
[[ "$KEY" =~ ^fe_live_[A-Za-z0-9]{32}$ ]] || { echo "no key created: $KEY"; exit 1; }

mkdir -p target/conformance
"$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/v1/openapi.json" \
  -H "X-API-Key: $KEY" \
  --checks all --exclude-checks positive_data_acceptance \
  --max-examples "$EXAMPLES" --seed "$SEED" \
  --report junit --report-dir target/conformance
