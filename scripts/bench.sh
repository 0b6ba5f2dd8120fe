#!/usr/bin/env bash
# Full-stack benchmark of a cached /v1/colors request with wrk over loopback, plus the
# uncached pipeline split. Needs a release build (`make build`) and wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./target/release/dupify
DATA=$(mktemp -d)
PORT=${PORT:-18080}
DURATION=${DURATION:-15s}
CONNS=${CONNS:-32}
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

DUPIFY_LOG=warn $BIN --data-dir "$DATA" serve --bind 127.0.0.1:$PORT > "$DATA/serve.out" 2>"$DATA/serve.err" &
SERVER=$!
for _ in $(seq 100); do
  grep -q '^  fe_live_' "$DATA/serve.out" 2>/dev/null && break
  sleep 0.1
done
KEY=$(grep -m1 '^  fe_live_' "$DATA/serve.out" | tr -d ' ')

# A 600x400 product-like JPEG, cached after the first request.
IMG_B64=$(python3 - <<'PY'
import base64, io, struct, zlib
w, h = 600, 400
rows = []
for y in range(h):
    row = bytearray([0])
    for x in range(w):
        inside = 150 < x < 450 and 80 < y < 330
        row += bytes((31, 42, 68) if inside else (250, 250, 250))
    rows.append(bytes(row))
raw = zlib.compress(b"".join(rows), 9)
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")
print(base64.b64encode(png).decode())
PY
)
BODY="{\"image_base64\": \"$IMG_B64\", \"max_colors\": 5}"
curl -s -o /dev/null -w 'warm-up: %{http_code}\n' "http://127.0.0.1:$PORT/v1/colors" \
  -H "X-API-Key: $KEY" -H 'Content-Type: application/json' -d "$BODY"

cat > "$DATA/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "$KEY"
wrk.body = [[$BODY]]
LUA
echo "== cached /v1/colors, $CONNS connections, $DURATION, 2 wrk threads =="
wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s "$DATA/post.lua" "http://127.0.0.1:$PORT/v1/colors"
hist() { curl -s "http://127.0.0.1:$PORT/metrics" | grep 'dupify_http_request_duration_seconds_bucket{route="/v1/colors"' | grep -E 'le="(0.0005|0.001|0.0025|\+Inf)"'; }
echo "== server-side histogram after the unlimited-tier run (cumulative counts) =="
hist
# The same with a pro-tier key: limited tiers also report the monthly counter.
ACCT=$($BIN --data-dir "$DATA" accounts create --email bench@example.com --tier pro | tail -1)
PRO_KEY=$($BIN --data-dir "$DATA" keys create --account "$ACCT" --name bench 2>/dev/null | tail -1)
sed "s/$KEY/$PRO_KEY/" "$DATA/post.lua" > "$DATA/post-pro.lua"
curl -s -o /dev/null "http://127.0.0.1:$PORT/v1/colors" \
  -H "X-API-Key: $PRO_KEY" -H 'Content-Type: application/json' -d "$BODY"
echo "== cached /v1/colors with a pro-tier key, $CONNS connections, $DURATION =="
wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s "$DATA/post-pro.lua" "http://127.0.0.1:$PORT/v1/colors"
echo "== server-side histogram after both runs (cumulative counts) =="
hist
