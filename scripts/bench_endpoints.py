#!/usr/bin/env python3
"""Latency of every image endpoint of a running Dupify server at 1 and 8 concurrent
clients, uncached (each request's image bytes differ, see bench_bgremove_http.make_unique),
and the server's resident memory before and after a long run.

Prints a markdown table (p50 / p99 / mean ms and requests/s per endpoint and concurrency)
and, with --soak N, sends N uncached /v1/embed requests at concurrency 8 and reports the
server's RSS (read from /proc/PID/status) before, in the middle and after, with the cache
entry count from /metrics.

usage:
  python3 scripts/bench_endpoints.py --url http://127.0.0.1:18090 --key fe_live_... \
      --images DIR --pid SERVER_PID [--requests 60] [--soak 10000]
"""

import argparse
import base64
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_bgremove_http import make_poster, make_unique  # noqa: E402
from bench_bgremove_peer import load_images, run_load, summarize  # noqa: E402

ENDPOINTS = [
    ("/v1/colors", {}),
    ("/v1/embed", {}),
    ("/v1/embed", {"include_quality": True}),
    ("/v1/silhouette", {}),
    ("/v1/attributes", {}),
    ("/v1/background-remove", {}),
    ("/v1/batch", {"operations": ["embed", "colors", "silhouette", "attributes"]}),
]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--pid", type=int, help="server process id, for RSS")
    ap.add_argument("--requests", type=int, default=60, help="requests per endpoint and concurrency")
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--soak", type=int, default=0, help="uncached /v1/embed requests for the memory check")
    args = ap.parse_args()

    url = urllib.parse.urlsplit(args.url)
    host, port = url.hostname, url.port or 80
    images = load_images(args.images)
    counter = [0]
    lock = threading.Lock()
    post = make_poster(host, port, args.key, 120.0)

    def make_work(path: str, options: dict):
        def work(i, _n):
            with lock:
                counter[0] += 1
                n = counter[0]
            body = dict(options)
            body["image_base64"] = base64.b64encode(make_unique(images[i][1], n)).decode()
            data = json.dumps(body).encode()
            t0 = time.perf_counter()
            status, raw = post(path, data)
            ms = (time.perf_counter() - t0) * 1000.0
            if status != 200:
                raise RuntimeError(f"{path}: HTTP {status}: {raw[:200]!r}")
            return ms

        return work

    def metric(name: str) -> str:
        c = http.client.HTTPConnection(host, port, timeout=10)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return line.split()[-1]
        return "?"

    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    print(f"{len(images)} images, {os.cpu_count()} cores, every request uncached\n")
    if levels:
        print("| endpoint | options | clients | requests | req/s | p50 ms | p99 ms | mean ms | errors |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for path, options in ENDPOINTS if levels else []:
        for c in levels:
            work = make_work(path, options)
            work(0, 0)  # warm-up
            lat, errors, elapsed = run_load(work, len(images), c, None, args.requests)
            r = summarize(path, lat, errors, elapsed, {})
            opts = json.dumps(options) if options else ""
            print(f"| `{path}` | {opts} | {c} | {r['requests']} | {r['images_per_s']:.1f} | "
                  f"{r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['mean_ms']:.0f} | {errors} |", flush=True)

    if args.soak and args.pid:
        before = rss_mib(args.pid)
        samples = []
        work = make_work("/v1/embed", {})
        done = [0]
        step = max(1, args.soak // 4)

        def soak_work(i, n):
            ms = work(i, n)
            with lock:
                done[0] += 1
                if done[0] % step == 0:
                    samples.append((done[0], rss_mib(args.pid)))
            return ms

        lat, errors, elapsed = run_load(soak_work, len(images), 8, None, args.soak)
        after = rss_mib(args.pid)
        r = summarize("soak", lat, errors, elapsed, {})
        print(f"\nmemory: {args.soak} uncached /v1/embed requests at 8 clients in {elapsed:.0f} s "
              f"({r['images_per_s']:.1f} req/s, p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, {errors} errors)")
        print(f"RSS before {before:.0f} MiB, " + ", ".join(f"after {n}: {m:.0f} MiB" for n, m in samples)
              + f", at the end {after:.0f} MiB; cache entries {metric('dupify_cache_entries')}")


if __name__ == "__main__":
    main()
