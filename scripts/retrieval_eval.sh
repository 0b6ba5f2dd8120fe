#!/usr/bin/env bash
# Near-duplicate retrieval evaluation of dupify-visual-v1 against an RGB-histogram
# baseline (crates/dupify-vision/examples/retrieval_eval.rs), on images that packages ship:
# scikit-image's and matplotlib's sample data (photos) and a seeded sample of Debian's
# openclipart-png cut-outs (products on transparent backgrounds, where the background-change
# edits are exact). Prints markdown tables; docs/BENCHMARKS.md quotes them.
#
#   scripts/retrieval_eval.sh [OUT_DIR]      (default /tmp/dupify-retrieval)
#
# Settings (environment): CLIPART=N cut-outs to sample (default 150), SEED (default 11),
# VENV (default /tmp/venv-retrieval). Needs apt's openclipart-png for the cut-outs
# (skipped with a warning when absent).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-/tmp/dupify-retrieval}
CLIPART=${CLIPART:-150}
SEED=${SEED:-11}
VENV=${VENV:-/tmp/venv-retrieval}

if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -c 'import skimage, matplotlib' 2>/dev/null ||
  "$VENV/bin/pip" install -q scikit-image==0.26.0 matplotlib==3.11.2

rm -rf "$OUT"
mkdir -p "$OUT"
"$VENV/bin/python" - "$OUT" "$CLIPART" "$SEED" <<'PY'
import pathlib, random, shutil, sys
import matplotlib, skimage
from PIL import Image

out, n_clip, seed = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
exts = {".png", ".jpg", ".jpeg", ".gif"}
sources = [
    ("skimage", pathlib.Path(skimage.__file__).parent / "data"),
    ("mpl", pathlib.Path(matplotlib.get_data_path()) / "sample_data"),
]
count = 0
for tag, d in sources:
    for p in sorted(d.iterdir()):
        if p.suffix.lower() not in exts:
            continue
        try:
            with Image.open(p) as im:
                w, h = im.size
        except Exception:
            continue
        # Tiny images and near-empty test patterns say nothing about retrieval.
        if min(w, h) < 64:
            continue
        shutil.copy(p, out / f"{tag}_{p.name}")
        count += 1
clip_root = pathlib.Path("/usr/share/openclipart/png")
if clip_root.is_dir() and n_clip > 0:
    files = sorted(clip_root.rglob("*.png"))
    random.Random(seed).shuffle(files)
    taken = 0
    for p in files:
        if taken >= n_clip:
            break
        try:
            with Image.open(p) as im:
                if im.mode != "RGBA" or min(im.size) < 96 or im.size[0] * im.size[1] > 4_000_000:
                    continue
                a = im.getchannel("A")
                lo, hi = a.getextrema()
                if lo > 0 or hi < 255:
                    continue
        except Exception:
            continue
        shutil.copy(p, out / f"clipart_{taken:03d}_{p.name}")
        taken += 1
    count += taken
else:
    print("openclipart-png not installed: photos only", file=sys.stderr)
print(f"{count} images in {out}", file=sys.stderr)
PY

echo "### masks: model-free estimate"
cargo run --release -q -p dupify-models --example retrieval_eval -- "$OUT"
echo "### masks: u2netp"
cargo run --release -q -p dupify-models --example retrieval_eval -- "$OUT" --segmenter u2netp
echo "### masks: u2net"
cargo run --release -q -p dupify-models --example retrieval_eval -- "$OUT" --segmenter u2net
