#!/usr/bin/env python3
"""Builds a segmentation-quality evaluation set with known ground truth.

Cut-out objects with a real alpha channel (public-domain clip art from Debian's
`openclipart-png` package) are composited onto varied backgrounds: flat colours, linear and
radial gradients, smooth colour noise, tinted textures and (blurred or sharp) photos from
scikit-image's bundled sample data. For each sample it writes

  NNN.jpg         the composite (RGB, JPEG quality 90), what a segmentation model sees
  NNN_alpha.png   the ground-truth foreground mask: 8-bit L, the composited alpha binarised
                  at 128 (255 = foreground, 0 = background)

plus index.json (source file, background kind, canvas size, placement, foreground ratio of
every sample, and the settings). Everything is seeded: the same package version, seed and
count give byte-identical output.

Cut-outs are a deterministic sample (seeded shuffle of the sorted file list) of object-like
categories (people, animals, food, transportation, tools, ...; no icons, shapes, symbols,
maps or patterns) that pass: RGBA with a real alpha (both clear and opaque pixels), short
side >= 120 px, foreground (alpha >= 128) 5-80 % of the image, and a solid foreground (a
2-px erosion keeps >= 60 % of it, which drops line art and outlines), and not translucent
(at most 10 % of the object's pixels with alpha strictly between 8 and 248, which drops
glass, glows and soft shadows whose binarised truth would be arbitrary).

usage:
  apt-get update && apt-get install -y openclipart-png      # cut-outs, /usr/share/openclipart/png
  python3 -m venv /tmp/venv-seg && /tmp/venv-seg/bin/pip install numpy==2.4.6 pillow==13.0.0 scikit-image==0.26.0
  /tmp/venv-seg/bin/python scripts/seg_eval_data.py OUT_DIR [--count 60] [--seed 7] [--src DIR]

A model's mask can then be scored against NNN_alpha.png (IoU, boundary F-measure, MAE).
"""

import argparse
import json
import pathlib
import random
import sys
import warnings

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

SRC_DEFAULT = "/usr/share/openclipart/png"
# Object-like categories only (paths relative to SRC); the rest is icons, symbols and shapes.
CATEGORIES = [
    "animals", "buildings", "containers", "decorations", "education", "electronics", "food",
    "office", "people", "plants", "recreation", "science", "tools", "transportation",
]
EXCLUDE_PARTS = {"icons", "flags", "maps", "map_symbols", "aiga-symbols", "signs", "symbols",
                 "patterns", "gradients", "borders", "frames", "buttons", "logos", "roadsigns"}
MAX_PIXELS = 16_000_000  # some clip art is rendered huge; skip those rather than decode them
CANVASES = [(512, 512), (480, 640), (640, 480), (600, 800), (800, 600)]  # (w, h)
BACKGROUNDS = ["flat", "linear_gradient", "radial_gradient", "noise", "texture", "photo"]
MIN_SIDE = 120
FG_RANGE = (0.05, 0.80)
MIN_SOLIDITY = 0.60
MAX_SEMI = 0.10


def candidates(src: pathlib.Path) -> list[pathlib.Path]:
    files = []
    for cat in CATEGORIES:
        for p in (src / cat).rglob("*.png"):
            rel = p.relative_to(src)
            if not EXCLUDE_PARTS.intersection(part.lower() for part in rel.parts[:-1]):
                files.append(p)
    return sorted(files, key=lambda p: str(p.relative_to(src)))


def load_cutout(path: pathlib.Path):
    """Returns the RGBA cut-out cropped to its alpha box, or None with the reason it fails."""
    try:
        im = Image.open(path)
        if im.width * im.height > MAX_PIXELS:
            return None, "too large"
        im.load()
    except Exception as e:  # noqa: BLE001 - a broken file is just skipped
        return None, f"unreadable: {e}"
    if im.mode not in ("RGBA", "LA") and not (im.mode == "P" and "transparency" in im.info):
        return None, f"no alpha ({im.mode})"
    im = im.convert("RGBA")
    if min(im.size) < MIN_SIDE:
        return None, "too small"
    a = np.asarray(im)[:, :, 3]
    if not ((a == 0).any() and (a == 255).any()):
        return None, "alpha not real"
    fg = a >= 128
    ratio = float(fg.mean())
    if not FG_RANGE[0] <= ratio <= FG_RANGE[1]:
        return None, f"foreground {ratio:.2f}"
    obj = a > 0
    semi = float(((a > 8) & (a < 248)).sum() / max(1, obj.sum()))
    if semi > MAX_SEMI:
        return None, f"translucent ({semi:.2f})"  # glass, glows, shadows: no clear truth
    solid = ndimage.binary_erosion(fg, iterations=2).sum() / max(1, fg.sum())
    if solid < MIN_SOLIDITY:
        return None, f"thin ({solid:.2f})"
    box = Image.fromarray((a > 0).astype(np.uint8) * 255).getbbox()
    return im.crop(box), ratio


def rand_colour(rng: random.Random) -> tuple:
    return tuple(rng.randrange(256) for _ in range(3))


def background(kind: str, w: int, h: int, rng: random.Random, photos: dict) -> tuple[Image.Image, dict]:
    nrng = np.random.default_rng(rng.randrange(2**32))
    meta: dict = {"kind": kind}
    if kind == "flat":
        c = rand_colour(rng)
        meta["colour"] = c
        return Image.new("RGB", (w, h), c), meta
    if kind in ("linear_gradient", "radial_gradient"):
        c0, c1 = np.array(rand_colour(rng), float), np.array(rand_colour(rng), float)
        yy, xx = np.mgrid[0:h, 0:w].astype(float)
        if kind == "linear_gradient":
            ang = rng.uniform(0, np.pi)
            t = xx * np.cos(ang) + yy * np.sin(ang)
        else:
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            t = np.hypot(xx - cx, yy - cy)
        t = (t - t.min()) / max(1e-9, t.max() - t.min())
        arr = c0 * (1 - t[..., None]) + c1 * t[..., None]
        meta["colours"] = [tuple(int(v) for v in c0), tuple(int(v) for v in c1)]
        return Image.fromarray(arr.round().astype(np.uint8)), meta
    if kind == "noise":
        scale = rng.choice([4, 16, 48])  # fine grain to big blotches
        small = nrng.integers(0, 256, (max(2, h // scale), max(2, w // scale), 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((w, h), Image.BICUBIC)
        grain = nrng.normal(0, 12, (h, w, 3))
        arr = np.clip(np.asarray(img, float) + grain, 0, 255)
        meta["scale"] = scale
        return Image.fromarray(arr.round().astype(np.uint8)), meta
    if kind == "texture":
        name = rng.choice(["brick", "grass", "gravel"])
        tex = photos[name]
        tint = np.array(rand_colour(rng), float) / 255.0
        g = np.asarray(tex.resize((w, h), Image.BICUBIC), float)
        arr = np.clip(g[..., None] * (0.35 + 0.65 * tint), 0, 255)
        meta.update(source=f"skimage.data.{name}", tint=[round(float(v), 3) for v in tint])
        return Image.fromarray(arr.round().astype(np.uint8)), meta
    # photo: a random crop of a sample photo, blurred like an out-of-focus backdrop
    name = rng.choice(sorted(k for k in photos if k not in ("brick", "grass", "gravel")))
    ph = photos[name]
    s = max(w / ph.width, h / ph.height) * rng.uniform(1.0, 1.6)
    ph = ph.resize((int(np.ceil(ph.width * s)), int(np.ceil(ph.height * s))), Image.BICUBIC)
    x0, y0 = rng.randrange(ph.width - w + 1), rng.randrange(ph.height - h + 1)
    ph = ph.crop((x0, y0, x0 + w, y0 + h))
    blur = rng.choice([3, 6, 12])  # never sharp: the photos have salient subjects of their own
    if blur:
        ph = ph.filter(ImageFilter.GaussianBlur(blur))
    meta.update(source=f"skimage.data.{name}", blur=blur)
    return ph, meta


def load_photos() -> dict:
    from skimage import data

    out = {}
    for name in ["brick", "grass", "gravel", "coffee", "chelsea", "rocket", "astronaut",
                 "hubble_deep_field", "immunohistochemistry", "stereo_motorcycle"]:
        try:
            a = getattr(data, name)()
        except Exception:  # noqa: BLE001 - a sample that needs a download is skipped
            continue
        if isinstance(a, tuple):
            a = a[0]
        out[name] = Image.fromarray(a).convert("L" if a.ndim == 2 else "RGB")
    if not {"brick", "grass", "gravel"} <= out.keys() or len(out) < 5:
        sys.exit("scikit-image sample data is missing")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output directory")
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--src", default=SRC_DEFAULT, help="openclipart-png folder")
    args = ap.parse_args()

    warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # huge files are skipped
    src = pathlib.Path(args.src)
    if not src.is_dir():
        sys.exit(f"{src} not found: apt-get update && apt-get install -y openclipart-png")
    if "tuxpaint" in str(src.resolve()).lower():
        sys.exit("tuxpaint stamps are not to be used")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    rng = random.Random(args.seed)
    files = candidates(src)
    rng.shuffle(files)
    photos = load_photos()
    kinds = [BACKGROUNDS[i % len(BACKGROUNDS)] for i in range(args.count)]
    rng.shuffle(kinds)

    samples, skipped = [], 0
    for path in files:
        if len(samples) == args.count:
            break
        cut, info = load_cutout(path)
        if cut is None:
            skipped += 1
            continue
        i = len(samples)
        w, h = rng.choice(CANVASES)
        bg, bg_meta = background(kinds[i], w, h, rng, photos)
        # Object covers 35-85 % of the canvas in its limiting dimension, anywhere inside it.
        fill = rng.uniform(0.35, 0.85)
        s = fill * min(w / cut.width, h / cut.height)
        cw, ch = max(1, round(cut.width * s)), max(1, round(cut.height * s))
        obj = cut.resize((cw, ch), Image.LANCZOS)
        x, y = rng.randrange(w - cw + 1), rng.randrange(h - ch + 1)

        alpha = Image.new("L", (w, h), 0)
        alpha.paste(obj.getchannel("A"), (x, y))
        layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        layer.paste(obj, (x, y))
        comp = Image.alpha_composite(bg.convert("RGBA"), layer).convert("RGB")
        mask = alpha.point(lambda v: 255 if v >= 128 else 0)

        stem = f"{i:03d}"
        comp.save(out / f"{stem}.jpg", quality=90)
        mask.save(out / f"{stem}_alpha.png", optimize=True)
        samples.append({
            "image": f"{stem}.jpg",
            "mask": f"{stem}_alpha.png",
            "source": str(path.relative_to(src)),
            "width": w,
            "height": h,
            "object_box": [x, y, x + cw, y + ch],
            "foreground_ratio": round(float((np.asarray(mask) > 0).mean()), 4),
            "background": bg_meta,
        })
    if len(samples) < args.count:
        sys.exit(f"only {len(samples)} usable cut-outs under {src}")

    index = {
        "description": "segmentation eval set: composite NNN.jpg, ground truth NNN_alpha.png "
                       "(alpha >= 128 -> 255); cut-outs from Debian openclipart-png (public domain)",
        "generator": "scripts/seg_eval_data.py",
        "seed": args.seed,
        "count": args.count,
        "source_dir": str(src),
        "candidates": len(files),
        "rejected_before_enough": skipped,
        "samples": samples,
    }
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    kinds_count = {k: sum(s["background"]["kind"] == k for s in samples) for k in BACKGROUNDS}
    print(f"{len(samples)} samples in {out} (from {len(files)} candidates, {skipped} rejected); "
          f"backgrounds {kinds_count}")


if __name__ == "__main__":
    main()
