#!/usr/bin/env python3
"""An independent numpy forward pass of EfficientNet-Lite0, straight from the checkpoint.

It shares nothing with the ONNX graph but the weight reader: batch norm is applied as
written (eps 1e-3), not folded; padding is TensorFlow "SAME" done with np.pad; convolutions
are im2col matrix products. `--fixture` writes the outputs for fixed inputs that the Rust
tests recompute through ONNX Runtime (crates/dupify-models/tests/models/imagenet.rs).

usage: reference.py WEIGHTS.pth --fixture OUT.json
"""

import argparse
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import weights as wt  # noqa: E402

EPS = 1e-3
SIZE = 224


def pad_same(x, k, stride):
    """x [C,H,W] padded TensorFlow "SAME" for a k x k kernel; with the output size."""
    top, bottom = wt.same_pads(x.shape[1], k, stride)
    left, right = wt.same_pads(x.shape[2], k, stride)
    x = np.pad(x, ((0, 0), (top, bottom), (left, right)))
    return x, (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1


def conv(x, w, stride, groups=1):
    """x [C,H,W], w [O, C/groups, k, k], TF SAME padding."""
    o, cg, k, _ = w.shape
    x, oh, ow = pad_same(x, k, stride)
    out = np.empty((o, oh, ow), dtype=np.float64)
    og = o // groups
    for g in range(groups):
        xs = x[g * cg:(g + 1) * cg]
        cols = np.empty((cg, k, k, oh, ow), dtype=np.float64)
        for i in range(k):
            for j in range(k):
                cols[:, i, j] = xs[:, i:i + stride * oh:stride, j:j + stride * ow:stride]
        wg = w[g * og:(g + 1) * og].reshape(og, -1).astype(np.float64)
        out[g * og:(g + 1) * og] = (wg @ cols.reshape(cg * k * k, -1)).reshape(og, oh, ow)
    return out


def depthwise(x, w, stride):
    """Per-channel convolution, written out rather than as `conv(groups=C)` (faster here)."""
    c = x.shape[0]
    k = w.shape[2]
    x, oh, ow = pad_same(x, k, stride)
    out = np.zeros((c, oh, ow), dtype=np.float64)
    for i in range(k):
        for j in range(k):
            out += w[:, 0, i, j, None, None] * x[:, i:i + stride * oh:stride, j:j + stride * ow:stride]
    return out


def bn(x, w, p):
    g, b = w[p + ".weight"], w[p + ".bias"]
    m, v = w[p + ".running_mean"], w[p + ".running_var"]
    return (x - m[:, None, None]) / np.sqrt(v[:, None, None] + EPS) * g[:, None, None] + b[:, None, None]


def relu6(x):
    return np.clip(x, 0.0, 6.0)


def forward(w, x):
    """x [3,224,224] already normalised ((RGB - 127) / 128) -> (features [1280], logits [1000])."""
    x = relu6(bn(conv(x, w["_conv_stem.weight"], 2), w, "_bn0"))
    for b, expand, kernel, stride, cin, cout, residual in wt.blocks(w):
        p = f"_blocks.{b}."
        y = x
        if expand:
            y = relu6(bn(conv(y, w[p + "_expand_conv.weight"], 1), w, p + "_bn0"))
        y = relu6(bn(depthwise(y, w[p + "_depthwise_conv.weight"], stride), w, p + "_bn1"))
        y = bn(conv(y, w[p + "_project_conv.weight"], 1), w, p + "_bn2")
        x = x + y if residual else y
    x = relu6(bn(conv(x, w["_conv_head.weight"], 1), w, "_bn1"))
    features = x.mean(axis=(1, 2))
    logits = w["_fc.weight"].astype(np.float64) @ features + w["_fc.bias"]
    return features, logits


def fixed_inputs():
    """Inputs both sides can rebuild exactly: formulas of the pixel position, in [-1, 1]."""
    c, h, x = np.meshgrid(np.arange(3), np.arange(SIZE), np.arange(SIZE), indexing="ij")
    waves = np.sin(0.37 * h + 0.11 * x + 1.7 * c) * np.cos(0.05 * x - 0.023 * h * (c + 1))
    ramp = (h + 2 * x + 50 * c) % 255 / 127.5 - 1.0
    return {"waves": waves, "ramp": ramp}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("weights")
    ap.add_argument("--fixture", required=True)
    args = ap.parse_args()
    w = wt.load(args.weights)
    cases = {}
    for name, x in fixed_inputs().items():
        f, logits = forward(w, x)
        top = np.argsort(-logits)[:5]
        cases[name] = {
            "features": [round(float(v), 6) for v in f],
            "logits": [round(float(v), 5) for v in logits],
            "top5": [int(i) for i in top],
        }
        print(name, "top5", [int(i) for i in top], file=sys.stderr)
    out = {
        "about": "EfficientNet-Lite0 outputs from scripts/lite0/reference.py (numpy, unfolded batch norm)",
        "inputs": "see fixed_inputs() in scripts/lite0/reference.py",
        "cases": cases,
    }
    pathlib.Path(args.fixture).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
