#!/usr/bin/env bash
# Ingest throughput of the real pipeline: `dupify catalog import` of N generated product
# photos (base64 in JSON Lines) into a release server with the bundled models, timed
# from the first upload until every product is ready, with the server's CPU use.
#
#   scripts/bench_ingest.sh [N] [segmentation model]     (defaults: 200 u2net)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}
SEG=${2:-u2net}
BIN=target/release/dupify
[ -x "$BIN" ] || cargo build --release -p dupify
[ -f models/libonnxruntime.so ] || make models
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=18777

python3 - "$N" "$WORK/products.jsonl" <<'EOF'
# Product-like photos without third-party packages: a shaded object (ellipse, box or
# bottle silhouette) in a random color on a light studio gradient, 480x480 PNG.
import base64, json, random, struct, sys, zlib
n, out = int(sys.argv[1]), sys.argv[2]
def png(w, h, rows):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
rnd = random.Random(1)
W = H = 480
with open(out, "w") as f:
    for i in range(n):
        col = [rnd.randint(20, 230) for _ in range(3)]
        kind = i % 3
        cx, cy = W / 2 + rnd.uniform(-40, 40), H / 2 + rnd.uniform(-30, 30)
        rx, ry = rnd.uniform(80, 160), rnd.uniform(90, 180)
        rows = []
        for y in range(H):
            g = 240 - int(25 * y / H)
            row = bytearray()
            for x in range(W):
                dx, dy = (x - cx) / rx, (y - cy) / ry
                inside = (dx * dx + dy * dy <= 1) if kind == 0 else (abs(dx) <= 1 and abs(dy) <= 1) if kind == 1 \
                    else (abs(dx) <= (0.35 if dy < -0.4 else 1) and abs(dy) <= 1)
                if inside:
                    s = 0.75 + 0.25 * (1 - abs(dx))
                    row += bytes(min(255, int(c * s)) for c in col)
                else:
                    row += bytes((g, g, g - 3))
            rows.append(bytes(row))
        f.write(json.dumps({"external_id": f"ING-{i}", "title": f"Product {i}", "price": 10 + i % 90,
                            "image_base64": base64.b64encode(png(W, H, rows)).decode()}) + "\n")
EOF

DUPIFY_MODELS_DIR=models DUPIFY_SEGMENTATION_MODELS=$SEG DUPIFY_LOG=warn \
  "$BIN" --data-dir "$WORK/data" serve --bind 127.0.0.1:$PORT > "$WORK/serve.out" 2>&1 &
SERVER=$!
for _ in $(seq 1 120); do grep -q "serving on" "$WORK/serve.out" 2>/dev/null && break; sleep 0.5; done
KEY=$(grep -Eo 'fe_live_[A-Za-z0-9]{32}' "$WORK/serve.out" | head -1)
cpu() { awk '{print $14 + $15}' /proc/$SERVER/stat; }
TCK=$(getconf CLK_TCK)
C0=$(cpu); T0=$(date +%s.%N)
"$BIN" catalog import "$WORK/products.jsonl" --server http://127.0.0.1:$PORT --key "$KEY" --quiet
T1=$(date +%s.%N)
while :; do
  P=$(curl -s -H "X-API-Key: $KEY" "http://127.0.0.1:$PORT/v1/catalog/products?embedding_status=processing&limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
  [ "$P" = 0 ] && break
  sleep 0.2
done
T2=$(date +%s.%N); C1=$(cpu)
READY=$(curl -s -H "X-API-Key: $KEY" "http://127.0.0.1:$PORT/v1/catalog/products?embedding_status=ready&limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
python3 - "$N" "$SEG" "$T0" "$T1" "$T2" "$C0" "$C1" "$TCK" "$READY" <<'EOF'
import os, sys
n, seg = int(sys.argv[1]), sys.argv[2]
t0, t1, t2 = map(float, sys.argv[3:6]); c0, c1, tck = map(float, sys.argv[6:9]); ready = int(sys.argv[9])
wall = t2 - t0; cpu = (c1 - c0) / tck; cores = os.cpu_count()
print(f"| {seg} | {n} | {t1 - t0:.1f} | {wall:.1f} | {n / wall:.2f} | {100 * cpu / wall / cores:.0f} % of {cores} cores | {ready} |")
EOF
