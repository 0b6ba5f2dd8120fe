#!/usr/bin/env python3
"""HTTP load against a running Dupify server's POST /v1/background-remove, measured the same
way as scripts/bench_bgremove_peer.py measures the Python peer (same worker pool, same round-
robin over the same images, same JSON line), so the two can be put side by side.

Every request sends different bytes, so the server's result cache (keyed by the image's
SHA-256) never hits: a JPEG gets a COM (comment) segment right after SOI, a PNG a tEXt chunk
after IHDR, both holding a per-request counter and a random run id. Pixels are unchanged.
Responses that still say "cached": true are counted and reported. Other formats are sent as
they are: then start the server with DUPIFY_CACHE_MAX_MIB=0.

Only the request itself is timed (the base64/JSON body is built before the clock starts);
the latency includes the server's decode, inference, PNG encode and base64 of the cutout.
Uses the standard library only (one keep-alive connection per worker thread).

usage:
  python3 scripts/bench_bgremove_http.py --url http://127.0.0.1:8080 --key fe_live_... \
      --images DIR --concurrency 2 (--duration 20 | --requests 200) [--label dupify]
"""

import argparse
import base64
import http.client
import json
import os
import struct
import sys
import threading
import time
import urllib.parse
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_bgremove_peer import add_load_args, load_images, run_load, summarize  # noqa: E402

RUN_ID = os.urandom(8).hex()


def make_unique(data: bytes, n: int) -> bytes:
    tag = f"dupify-bench {RUN_ID} {n}".encode()
    if data[:2] == b"\xff\xd8":  # JPEG: COM segment right after SOI
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(tag) + 2) + tag + data[2:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":  # PNG: tEXt chunk after IHDR (8 + 25 bytes)
        body = b"Comment\x00" + tag
        chunk = struct.pack(">I", len(body)) + b"tEXt" + body
        chunk += struct.pack(">I", zlib.crc32(b"tEXt" + body) & 0xFFFFFFFF)
        return data[:33] + chunk + data[33:]
    return data


def make_poster(host: str, port: int, key: str, timeout: float):
    """post(path, body) -> (status, bytes) over one keep-alive connection per thread,
    reconnecting once when the server dropped it."""
    local = threading.local()

    def post(path: str, body: bytes):
        headers = {"Content-Type": "application/json", "X-API-Key": key}
        for attempt in (0, 1):
            c = getattr(local, "c", None)
            if c is None:
                c = local.c = http.client.HTTPConnection(host, port, timeout=timeout)
            try:
                c.request("POST", path, body=body, headers=headers)
                r = c.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, ConnectionError, OSError):
                c.close()
                local.c = None
                if attempt:
                    raise

    return post


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("--key", required=True, help="API key with the background_remove scope")
    ap.add_argument("--label", default="dupify")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--extra", default="{}", help="JSON object merged into the label fields")
    add_load_args(ap)
    args = ap.parse_args()

    url = urllib.parse.urlsplit(args.url)
    if url.scheme != "http":
        sys.exit("only http:// URLs (a local server) are supported")
    host, port = url.hostname, url.port or 80
    path = url.path.rstrip("/") + "/v1/background-remove"
    images = load_images(args.images)
    cached = [0]
    lock = threading.Lock()
    post = make_poster(host, port, args.key, args.timeout)

    def work(i, n):
        data = make_unique(images[i][1], n)
        body = json.dumps(
            {"image_base64": base64.b64encode(data).decode(), "output": "png", "crop": False}
        ).encode()
        t0 = time.perf_counter()
        status, raw = post(path, body)
        ms = (time.perf_counter() - t0) * 1000.0
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {raw[:200]!r}")
        doc = json.loads(raw)
        if not doc.get("image_base64"):
            raise RuntimeError(f"no image_base64 in response: {raw[:200]!r}")
        if doc.get("cached"):
            with lock:
                cached[0] += 1
        return ms

    # Warm-up (not timed): also fails fast on a wrong URL, key or missing route.
    work(0, -1)

    lat, errors, elapsed = run_load(work, len(images), args.concurrency, args.duration, args.requests)
    extra = {"url": args.url, "concurrency": args.concurrency, "images": len(images)}
    extra.update(json.loads(args.extra))
    result = summarize(args.label, lat, errors, elapsed, extra)
    result["cached_responses"] = cached[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
