"""Reads the EfficientNet-Lite0 checkpoint (PyTorch's legacy, pre-zip serialisation) without torch.

The file is five pickles in a row and then the raw storages:
  1. a magic number, 2. the protocol version, 3. a sys-info dict,
  4. the state dict: an OrderedDict of tensors that name their storage by persistent id,
  5. the list of storage keys, in the order their bytes follow;
then for each storage an 8-byte little-endian element count and its little-endian data.

Only the four globals such a state dict needs are resolved; any other global in the pickle
is refused, so a tampered file cannot run code. Also describes the network's block layout
(`blocks`), read from the tensor shapes and checked against the EfficientNet-Lite0 stages.
"""

import collections
import pickle
import struct

import numpy as np

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001
DTYPES = {"FloatStorage": np.float32, "LongStorage": np.int64}

# EfficientNet-Lite0 stages: (repeats, stride of the first block). Lite keeps the B0 layout.
STAGES = [(1, 1), (2, 2), (2, 2), (3, 2), (3, 1), (4, 2), (1, 1)]


class _Tensor:
    """What `_rebuild_tensor_v2` stands for until the storages have been read."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, *rest):
    return _Tensor(storage, offset, size, stride)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in DTYPES:
            return name
        raise pickle.UnpicklingError(f"refusing pickle global {module}.{name}")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, element count[, view metadata])
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        kind, key = pid[1], pid[2]
        if kind not in DTYPES:
            raise pickle.UnpicklingError(f"unsupported storage type {kind!r}")
        return (kind, key)


def load(path):
    """The state dict as {name: numpy array}, honouring each tensor's offset and strides."""
    with open(path, "rb") as f:
        if _Unpickler(f).load() != MAGIC:
            raise ValueError(f"{path}: not a legacy PyTorch file (bad magic number)")
        if _Unpickler(f).load() != PROTOCOL:
            raise ValueError(f"{path}: unsupported protocol version")
        _Unpickler(f).load()  # sys info: byte order etc.
        state = _Unpickler(f).load()
        keys = _Unpickler(f).load()
        kinds = {}
        for t in state.values():
            if not isinstance(t, _Tensor):
                raise ValueError(f"{path}: state dict holds a non-tensor")
            kinds[t.storage[1]] = t.storage[0]
        storages = {}
        for key in keys:
            (count,) = struct.unpack("<q", f.read(8))
            dtype = np.dtype(DTYPES[kinds[key]]).newbyteorder("<")
            data = f.read(count * dtype.itemsize)
            if len(data) != count * dtype.itemsize:
                raise ValueError(f"{path}: storage {key} is truncated")
            storages[key] = np.frombuffer(data, dtype=dtype)
    out = {}
    for name, t in state.items():
        base = storages[t.storage[1]]
        item = base.itemsize
        if t.size:
            last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride))
            if t.offset < 0 or last >= base.size:
                raise ValueError(f"{path}: {name} reaches outside its storage")
        view = np.lib.stride_tricks.as_strided(
            base[t.offset:], shape=t.size, strides=[s * item for s in t.stride], writeable=False
        )
        out[name] = np.ascontiguousarray(view)
    return out


def blocks(w):
    """Per block: (index, expand?, kernel, stride, in channels, out channels, residual?)."""
    count = 1 + max(int(k.split(".")[1]) for k in w if k.startswith("_blocks."))
    if count != sum(r for r, _ in STAGES):
        raise ValueError(f"{count} blocks, expected {sum(r for r, _ in STAGES)} for Lite0")
    firsts = {}
    i = 0
    for repeats, stride in STAGES:
        firsts[i] = stride
        i += repeats
    out = []
    for b in range(count):
        p = f"_blocks.{b}."
        expand = p + "_expand_conv.weight" in w
        dw = w[p + "_depthwise_conv.weight"]
        proj = w[p + "_project_conv.weight"]
        cin = w[p + "_expand_conv.weight"].shape[1] if expand else dw.shape[0]
        cout = proj.shape[0]
        kernel = dw.shape[2]
        stride = firsts.get(b, 1)
        if cin != cout and b not in firsts:
            raise ValueError(f"block {b} changes channels inside a stage")
        if p + "_se_reduce.weight" in w:
            raise ValueError("squeeze-excite weights found: not a Lite checkpoint")
        out.append((b, expand, kernel, stride, cin, cout, stride == 1 and cin == cout))
    return out


def same_pads(size, kernel, stride):
    """TensorFlow "SAME" padding of one axis: (before, after); the odd pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2
