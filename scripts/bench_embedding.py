#!/usr/bin/env python3
"""Category-aware retrieval benchmark of the embedding models, through a running server.

The set: cut-out objects of Debian's `openclipart-png` (public-domain clip art; the same
filters as scripts/seg_eval_data.py) from a balanced sample of its object categories, each
composited twice on new backgrounds (flat, gradients, noise, textures, scikit-image photos):
a catalog view, and a query view that is also moved, rescaled, flipped, re-lit and
re-compressed. For each query, the catalog views are ranked by cosine similarity:

  recall@1      the nearest catalog view is the same object;
  precision@5   of the 5 nearest other objects, the share of the query's category
                (chance: about 1 / number of categories).

Measured for every model through `POST /v1/embed` (the `model` option), for an RGB
histogram of the whole image as a baseline, and end to end through catalog search (the
catalog views uploaded as products, the query views searched with default weights) on a
server per model (`embedding_model`). Prints markdown tables (docs/BENCHMARKS.md).

usage:
  apt-get install -y openclipart-png
  python3 -m venv /tmp/venv-seg && /tmp/venv-seg/bin/pip install numpy==2.4.6 pillow==13.0.0 scikit-image==0.26.0
  /tmp/venv-seg/bin/python scripts/bench_embedding.py --binary target/release/dupify \
      [--per-category 20] [--categories 8] [--seed 5] [--models-dir models]
"""

import argparse
import base64
import collections
import io
import json
import os
import pathlib
import random
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
from PIL import Image, ImageEnhance

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import seg_eval_data as seg  # noqa: E402

MODELS = ["efficientnet-lite0", "dupify-visual-v1"]


def views(cut, rng, photos, query):
    """One composite of the cut-out: (JPEG bytes)."""
    w, h = rng.choice(seg.CANVASES)
    kind = rng.choice(seg.BACKGROUNDS)
    bg, _ = seg.background(kind, w, h, rng, photos)
    obj = cut.transpose(Image.FLIP_LEFT_RIGHT) if query and rng.random() < 0.5 else cut
    fill = rng.uniform(0.35, 0.85) if not query else rng.uniform(0.3, 0.9)
    s = fill * min(w / obj.width, h / obj.height)
    cw, ch = max(1, round(obj.width * s)), max(1, round(obj.height * s))
    obj = obj.resize((cw, ch), Image.LANCZOS)
    x, y = rng.randrange(w - cw + 1), rng.randrange(h - ch + 1)
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    layer.paste(obj, (x, y))
    comp = Image.alpha_composite(bg.convert("RGBA"), layer).convert("RGB")
    quality = 90
    if query:
        comp = ImageEnhance.Brightness(comp).enhance(rng.uniform(0.8, 1.2))
        # A loose crop that keeps the object.
        l, t = rng.randint(0, x), rng.randint(0, y)
        r, b = rng.randint(x + cw, w), rng.randint(y + ch, h)
        comp = comp.crop((l, t, r, b))
        quality = rng.randint(60, 90)
    buf = io.BytesIO()
    comp.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def build_set(src, per_category, n_categories, seed):
    rng = random.Random(seed)
    photos = seg.load_photos()
    by_cat = collections.defaultdict(list)
    for p in seg.candidates(src):
        by_cat[p.relative_to(src).parts[0]].append(p)
    items = []
    cats = sorted(by_cat)
    rng.shuffle(cats)
    used = []
    for cat in cats:
        files = by_cat[cat][:]
        rng.shuffle(files)
        got = []
        for p in files:
            if len(got) == per_category:
                break
            cut, _ = seg.load_cutout(p)
            if cut is not None:
                got.append((p, cut))
        if len(got) < per_category:
            continue
        used.append(cat)
        for p, cut in got:
            items.append({
                "category": cat,
                "source": str(p.relative_to(src)),
                "catalog": views(cut, rng, photos, False),
                "query": views(cut, rng, photos, True),
            })
        if len(used) == n_categories:
            break
    return items, used


def rgb_histogram(jpeg):
    a = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")) // 32
    idx = (a[:, :, 0].astype(int) * 64 + a[:, :, 1] * 8 + a[:, :, 2]).ravel()
    h = np.sqrt(np.bincount(idx, minlength=512).astype(np.float64))
    return h / np.linalg.norm(h)


def scores(items, q, c):
    """recall@1 and category precision@5 from query and catalog vectors (rows)."""
    q = np.asarray(q, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    sim = q @ c.T
    r1 = p5 = 0.0
    for i in range(len(items)):
        order = np.argsort(-sim[i])
        r1 += order[0] == i
        others = [j for j in order if j != i][:5]
        p5 += sum(items[j]["category"] == items[i]["category"] for j in others) / 5
    return r1 / len(items), p5 / len(items)


def post(url, key, body):
    req = urllib.request.Request(url, json.dumps(body).encode(), {
        "content-type": "application/json", "x-api-key": key})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def get(url, key):
    req = urllib.request.Request(url, headers={"x-api-key": key})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


class Server:
    def __init__(self, binary, models_dir, embedding_model):
        self.dir = tempfile.mkdtemp(prefix="dupify-bench-emb-")
        env = dict(os.environ, DUPIFY_MODELS_DIR=str(models_dir), DUPIFY_EMBEDDING_MODEL=embedding_model,
                   DUPIFY_LOG_FORMAT="text", RUST_LOG="warn")
        self.proc = subprocess.Popen(
            [binary, "--data-dir", self.dir, "serve", "--bind", "127.0.0.1:0", "--issue-dev-key"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        self.url = self.key = None
        deadline = time.time() + 300
        while time.time() < deadline and not (self.url and self.key):
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit("server exited during start")
            m = re.search(r"(fe_live_[A-Za-z0-9]{32})", line)
            if m:
                self.key = m.group(1)
            m = re.search(r"http://(127\.0\.0\.1:\d+)", line)
            if m:
                self.url = "http://" + m.group(1)
        if not (self.url and self.key):
            raise SystemExit("no key or address printed")
        # Keep reading the server's output, or a full pipe would stall it.
        import threading
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        while True:
            try:
                get(self.url + "/ready", self.key)
                break
            except Exception:  # noqa: BLE001 - not ready yet
                time.sleep(0.5)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def embed_all(server, jpegs, model):
    out = []
    for i in range(0, len(jpegs), 10):
        body = {"images": [{"image_base64": base64.b64encode(j).decode()} for j in jpegs[i:i + 10]],
                "model": model}
        res = post(server.url + "/v1/embed", server.key, body)
        for r in res["results"]:
            if "error" in r:
                raise SystemExit(f"embed failed: {r['error']}")
            out.append(r["embedding"])
    return out


def metric(server, model):
    """Sum and count of a model's inference-time histogram, from /metrics."""
    req = urllib.request.Request(server.url + "/metrics")
    text = urllib.request.urlopen(req, timeout=30).read().decode()
    got = {}
    for line in text.splitlines():
        m = re.match(r'dupify_inference_seconds_(sum|count)\{[^}]*model="([^"]+)"[^}]*\} ([0-9.e+-]+)', line)
        if m and m.group(2) == model:
            got[m.group(1)] = float(m.group(3))
    return got


def catalog_run(server, items):
    """Uploads the catalog views, searches every query view; (recall@1, precision@5, s/product)."""
    ids = []
    started = time.time()
    for i in range(0, len(items), 100):
        products = [{"title": f"item {i + k}", "external_id": str(i + k), "category": None,
                     "image_base64": base64.b64encode(it["catalog"]).decode()}
                    for k, it in enumerate(items[i:i + 100])]
        for p in products:
            p.pop("category")
        res = post(server.url + "/v1/catalog/products", server.key, {"products": products})
        ids += [r["id"] for r in res["results"]]
    while True:
        page = get(server.url + "/v1/catalog/products?limit=1&embedding_status=processing", server.key)
        if page["total"] == 0:
            break
        time.sleep(1)
    ingest = (time.time() - started) / len(items)
    index = {pid: n for n, pid in enumerate(ids)}
    r1 = p5 = 0.0
    for i, it in enumerate(items):
        res = post(server.url + "/v1/catalog/search", server.key,
                   {"image_base64": base64.b64encode(it["query"]).decode(), "top_k": 6})
        order = [index[r["product"]["id"]] for r in res["results"]]
        r1 += bool(order) and order[0] == i
        others = [j for j in order if j != i][:5]
        p5 += sum(items[j]["category"] == it["category"] for j in others) / 5
    return r1 / len(items), p5 / len(items), ingest


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default="target/release/dupify")
    ap.add_argument("--models-dir", default="models")
    ap.add_argument("--per-category", type=int, default=20)
    ap.add_argument("--categories", type=int, default=8)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--src", default=seg.SRC_DEFAULT)
    ap.add_argument("--no-catalog", action="store_true")
    args = ap.parse_args()
    src = pathlib.Path(args.src)
    if "tuxpaint" in str(src.resolve()).lower():
        sys.exit("tuxpaint stamps are kept for independent evaluation")
    if not src.is_dir():
        sys.exit(f"{src} not found: apt-get install -y openclipart-png")
    items, cats = build_set(src, args.per_category, args.categories, args.seed)
    n = len(items)
    print(f"{n} objects in {len(cats)} categories ({', '.join(cats)}); chance precision@5 "
          f"= {(args.per_category - 1) / (n - 1):.3f}\n")

    rows = []
    h_q = [rgb_histogram(it["query"]) for it in items]
    h_c = [rgb_histogram(it["catalog"]) for it in items]
    rows.append(("RGB histogram (8³ bins, whole image)", *scores(items, h_q, h_c), None))
    server = Server(args.binary, pathlib.Path(args.models_dir).resolve(), "")
    try:
        for model in MODELS:
            t = time.time()
            q = embed_all(server, [it["query"] for it in items], model)
            c = embed_all(server, [it["catalog"] for it in items], model)
            per_image = (time.time() - t) / (2 * n)
            rows.append((f"`{model}` via /v1/embed", *scores(items, q, c), per_image))
        lite = metric(server, "efficientnet-lite0")
        seg_m = {m: metric(server, m) for m in ("u2net", "u2netp")}
    finally:
        server.stop()
    print("| embedding | recall@1 (same object) | category precision@5 | s per image (request, mask included) |")
    print("|---|---|---|---|")
    for name, r1, p5, t in rows:
        print(f"| {name} | {r1:.3f} | {p5:.3f} | {'' if t is None else f'{t:.3f}'} |")
    if lite.get("count"):
        print(f"\nefficientnet-lite0 inference alone (mask excluded): "
              f"{1000 * lite['sum'] / lite['count']:.1f} ms per image over {int(lite['count'])} runs")
    for m, v in seg_m.items():
        if v.get("count"):
            print(f"{m} mask inference: {1000 * v['sum'] / v['count']:.1f} ms per image over {int(v['count'])} runs")

    if args.no_catalog:
        return
    print("\n| end to end: catalog search (default weights) | recall@1 | category precision@5 | s per product ingested |")
    print("|---|---|---|---|")
    for model in MODELS:
        server = Server(args.binary, pathlib.Path(args.models_dir).resolve(), model)
        try:
            r1, p5, ingest = catalog_run(server, items)
        finally:
            server.stop()
        print(f"| `{model}` | {r1:.3f} | {p5:.3f} | {ingest:.3f} |")


if __name__ == "__main__":
    main()
