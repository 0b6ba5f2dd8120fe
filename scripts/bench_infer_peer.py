#!/usr/bin/env python3
"""Raw inference time of u2netp/u2net from Python's onnxruntime, the counterpart of
`cargo run --release -p dupify-models --example infer_bench` (same input shape, same
thread counts, median of RUNS runs after one warm-up).

usage: python scripts/bench_infer_peer.py [MODELS_DIR] [RUNS]
"""

import pathlib
import sys
import time

import numpy as np
import onnxruntime as ort

models = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "models")
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
x = np.random.RandomState(0).uniform(-2, 2, (1, 3, 320, 320)).astype(np.float32)
print("| model | intra-op threads | median ms | min ms | runs |")
print("|---|---:|---:|---:|---:|")
for name in ["u2netp", "u2net"]:
    path = models / f"{name}.onnx"
    if not path.is_file():
        print(f"{path} missing, skipped", file=sys.stderr)
        continue
    for threads in (1, 2):
        o = ort.SessionOptions()
        o.intra_op_num_threads = threads
        o.inter_op_num_threads = 1
        s = ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])
        feed = {s.get_inputs()[0].name: x}
        s.run(None, feed)
        t = []
        for _ in range(runs):
            a = time.perf_counter()
            s.run(None, feed)
            t.append((time.perf_counter() - a) * 1000)
        t.sort()
        print(f"| {name} (python) | {threads} | {t[len(t) // 2]:.1f} | {t[0]:.1f} | {runs} |")
