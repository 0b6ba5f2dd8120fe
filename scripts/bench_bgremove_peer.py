#!/usr/bin/env python3
"""Python peer for the background-removal throughput benchmark: what rembg does for u2net.

Per image, exactly rembg's U2netSession + remove() path (rembg 2.x):
  PIL open -> convert RGB -> resize 320x320 (LANCZOS) -> x / max(x)
  -> (x - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225] -> NCHW float32
  -> onnxruntime (CPUExecutionProvider) on u2net.onnx / u2netp.onnx
  -> first output [:, 0, :, :] -> min-max normalise -> PIL "L" mask
  -> resize to the original size (LANCZOS) -> RGBA with putalpha(mask) -> PNG bytes.

N worker threads (ThreadPoolExecutor) share one ONNX Runtime session (its run() is thread-safe
and releases the GIL) and walk the images round-robin. Images are read into memory first, so
the timing covers decode + inference + encode, not disk. One warm-up call is not counted.
Prints one JSON line: images/s, p50/p99/mean latency in ms, and the settings.

usage:
  python3 -m venv /tmp/venv-bg && /tmp/venv-bg/bin/pip install onnxruntime==1.31.1 pillow==13.0.0 numpy==2.4.6
  /tmp/venv-bg/bin/python scripts/bench_bgremove_peer.py --model MODELS/u2netp.onnx \
      --images DIR --concurrency 2 --threads 1 (--duration 20 | --requests 200) [--save OUT_DIR]
"""

import argparse
import io
import itertools
import json
import os
import pathlib
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort
from PIL import Image

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SIZE = (320, 320)
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def load_images(folder: str) -> list[tuple[str, bytes]]:
    paths = sorted(p for p in pathlib.Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not paths:
        sys.exit(f"no images (.jpg/.jpeg/.png/.webp/.bmp) in {folder}")
    return [(p.name, p.read_bytes()) for p in paths]


def make_session(model: str, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def remove_background(session: ort.InferenceSession, data: bytes) -> bytes:
    img = Image.open(io.BytesIO(data))
    img = img.convert("RGB")  # rembg's remove() works on the decoded image

    # rembg U2netSession.normalize
    im = img.convert("RGB").resize(SIZE, Image.LANCZOS)
    im_ary = np.array(im)
    im_ary = im_ary / np.max(im_ary)
    tmp = np.zeros((im_ary.shape[0], im_ary.shape[1], 3))
    for c in range(3):
        tmp[:, :, c] = (im_ary[:, :, c] - MEAN[c]) / STD[c]
    tmp = tmp.transpose((2, 0, 1))
    feed = {session.get_inputs()[0].name: np.expand_dims(tmp, 0).astype(np.float32)}

    # rembg U2netSession.predict
    out = session.run(None, feed)
    pred = out[0][:, 0, :, :]
    ma, mi = np.max(pred), np.min(pred)
    pred = (pred - mi) / (ma - mi)
    pred = np.squeeze(pred)
    mask = Image.fromarray((pred * 255).astype("uint8"), mode="L")
    mask = mask.resize(img.size, Image.LANCZOS)

    # cutout + PNG encode
    cutout = img.convert("RGBA")
    cutout.putalpha(mask)
    buf = io.BytesIO()
    cutout.save(buf, format="PNG")
    return buf.getvalue()


def percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_ms:
        return float("nan")
    rank = max(1, int(np.ceil(q / 100.0 * len(sorted_ms))))
    return sorted_ms[rank - 1]


def summarize(label: str, latencies_ms: list[float], errors: int, elapsed: float, extra: dict) -> dict:
    lat = sorted(latencies_ms)
    return {
        "impl": label,
        **extra,
        "requests": len(lat),
        "errors": errors,
        "elapsed_s": round(elapsed, 3),
        "images_per_s": round(len(lat) / elapsed, 3) if elapsed > 0 else 0.0,
        "p50_ms": round(percentile(lat, 50), 2),
        "p99_ms": round(percentile(lat, 99), 2),
        "mean_ms": round(sum(lat) / len(lat), 2) if lat else float("nan"),
    }


def run_load(work, n_images: int, concurrency: int, duration: float | None, requests: int | None):
    """Runs work(i) for round-robin indices on `concurrency` threads until the deadline or
    the request budget. Returns (latencies_ms, errors, elapsed_s)."""
    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    start = time.perf_counter()
    deadline = start + duration if duration else None

    def worker():
        mine, errs = [], 0
        while True:
            if deadline is not None and time.perf_counter() >= deadline:
                break
            with lock:
                n = next(counter)
            if requests is not None and n >= requests:
                break
            t0 = time.perf_counter()
            try:
                own_ms = work(n % n_images, n)
            except Exception as e:  # noqa: BLE001 - counted and reported
                errs += 1
                if errs <= 3:
                    print(f"error: {e!r}", file=sys.stderr)
                continue
            # work() may time itself (to leave out its own set-up) by returning milliseconds.
            mine.append(own_ms if own_ms is not None else (time.perf_counter() - t0) * 1000.0)
        with lock:
            latencies.extend(mine)
            errors[0] += errs

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for f in [pool.submit(worker) for _ in range(concurrency)]:
            f.result()
    return latencies, errors[0], time.perf_counter() - start


def add_load_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--images", required=True, help="folder of input images")
    ap.add_argument("--concurrency", type=int, default=1, help="worker threads (in flight)")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--duration", type=float, help="seconds to run")
    mode.add_argument("--requests", type=int, help="total number of images to process")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="u2net.onnx or u2netp.onnx")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    ap.add_argument("--save", help="write each input's cutout here once (for checking)")
    add_load_args(ap)
    args = ap.parse_args()

    images = load_images(args.images)
    session = make_session(args.model, args.threads)
    remove_background(session, images[0][1])  # warm-up, not timed

    if args.save:
        os.makedirs(args.save, exist_ok=True)
        for name, data in images:
            out = pathlib.Path(args.save) / (pathlib.Path(name).stem + ".png")
            out.write_bytes(remove_background(session, data))

    def work(i, _n):
        remove_background(session, images[i][1])

    cpu0 = time.process_time()
    lat, errors, elapsed = run_load(work, len(images), args.concurrency, args.duration, args.requests)
    cpu = time.process_time() - cpu0
    print(json.dumps(summarize(
        "python-rembg",
        lat,
        errors,
        elapsed,
        {
            "model": pathlib.Path(args.model).name,
            "concurrency": args.concurrency,
            "threads": args.threads,
            "images": len(images),
            "onnxruntime": ort.__version__,
            # CPU time of this process per image (all threads): a check on a busy machine.
            "cpu_ms_per_image": round(cpu * 1000.0 / max(1, len(lat)), 1),
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
        },
    )))


if __name__ == "__main__":
    main()
