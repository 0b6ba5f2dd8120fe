#!/usr/bin/env bash
# Vision endpoints benchmark: starts a release server on a scratch data dir with the
# installed models and runs
#   1. background removal throughput against the Python rembg-style peer
#      (scripts/bench_bgremove.sh), for each model in MODELS;
#   2. p50/p99 latency of every image endpoint at 1 and 8 clients (scripts/bench_endpoints.py);
#   3. with SOAK=N, N uncached /v1/embed requests and the server's RSS before and after.
# Prints markdown tables; docs/BENCHMARKS.md quotes them.
#
#   IMAGES_DIR=/tmp/imgs scripts/bench_vision.sh
#
# Settings (environment): IMAGES_DIR (jpg/png files, required), MODELS_DIR (./models),
# MODELS ("u2netp u2net"), CONCURRENCY for the peer comparison ("1 2"), PEER_THREADS (the
# peer's intra-op thread settings, each run: "1 2"), DURATION (20 s per
# run), REQUESTS per endpoint and client count (40), SOAK (0), SOAK_MODEL (u2netp),
# VENV (/tmp/venv-bgbench), PORT (18090).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${IMAGES_DIR:?set IMAGES_DIR to a folder of test images}"
MODELS_DIR=${MODELS_DIR:-./models}
MODELS=${MODELS:-"u2netp u2net"}
CONCURRENCY=${CONCURRENCY:-"1 2"}
DURATION=${DURATION:-20}
REQUESTS=${REQUESTS:-40}
SOAK=${SOAK:-0}
SOAK_MODEL=${SOAK_MODEL:-u2netp}
VENV=${VENV:-/tmp/venv-bgbench}
PEER_THREADS=${PEER_THREADS:-"1 2"}
PORT=${PORT:-18090}
BIN=./target/release/dupify
[[ -x $BIN ]] || { echo "build first: make build" >&2; exit 1; }
DATA=$(mktemp -d)
SERVER=
trap 'stop; rm -rf "$DATA"' EXIT

stop() { if [[ -n "$SERVER" ]]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; SERVER=; fi; }

# start SEGMENTATION_MODELS: a fresh data dir each time, one instance per core with 1 thread
# each, and the solo instance (all cores) for an inference that runs alone.
start() {
  stop
  rm -rf "$DATA/d"
  DUPIFY_LOG=warn DUPIFY_MODELS_DIR="$MODELS_DIR" DUPIFY_SEGMENTATION_MODELS="$1" \
    DUPIFY_MODEL_INTRA_THREADS=1 DUPIFY_MODEL_QUEUE_LIMIT=64 \
    $BIN --data-dir "$DATA/d" serve --bind 127.0.0.1:$PORT > "$DATA/serve.out" 2> "$DATA/serve.err" &
  SERVER=$!
  for _ in $(seq 300); do
    grep -q '^  fe_live_' "$DATA/serve.out" 2>/dev/null && curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null && break
    sleep 0.1
  done
  KEY=$(grep -m1 '^  fe_live_' "$DATA/serve.out" | tr -d ' ')
  [[ -n "$KEY" ]] || { cat "$DATA/serve.err" >&2; exit 1; }
}

if [[ ! -x "$VENV/bin/python" ]]; then python3 -m venv "$VENV"; fi
"$VENV/bin/python" -c 'import onnxruntime, PIL, numpy' 2>/dev/null ||
  "$VENV/bin/pip" install -q onnxruntime==1.31.1 pillow==13.0.0 numpy==2.4.6

for m in $MODELS; do
  start "$m"
  echo "## background removal, $m"
  MODELS_DIR=$MODELS_DIR IMAGES_DIR=$IMAGES_DIR URL=http://127.0.0.1:$PORT KEY=$KEY MODEL=$m \
    THREADS="$PEER_THREADS" SERVER_THREADS='"1, 2 solo"' CONCURRENCY=$CONCURRENCY DURATION=$DURATION \
    VENV=$VENV bash scripts/bench_bgremove.sh
done

start "${MODELS%% *}"
echo "## endpoint latency (segmentation: ${MODELS%% *})"
"$VENV/bin/python" scripts/bench_endpoints.py --url "http://127.0.0.1:$PORT" --key "$KEY" \
  --images "$IMAGES_DIR" --requests "$REQUESTS"

if [[ "$SOAK" -gt 0 ]]; then
  start "$SOAK_MODEL"
  echo "## memory over $SOAK requests (segmentation: $SOAK_MODEL)"
  "$VENV/bin/python" scripts/bench_endpoints.py --url "http://127.0.0.1:$PORT" --key "$KEY" \
    --images "$IMAGES_DIR" --pid "$SERVER" --concurrency "" --soak "$SOAK"
fi
