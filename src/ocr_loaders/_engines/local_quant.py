"""An int8 copy of the PP-OCR recogniser, made from rapidocr's fp32 file on first use and
cached on disk.

Recipe (onnxruntime's ``quantize_static``, QOperator format): the ``x * (1 + erf(x / sqrt 2))
/ 2`` chains are first fused into ``Gelu`` nodes (left in float); ``Conv`` and ``MatMul``
nodes are quantized, weights to per-channel int8, activations to uint8, except the final
projection onto the character set, quantized the same way by
:func:`.local_model_edits.integer_projection` so that it writes float logits; the outputs
become each step's best class and its probability
(:func:`.local_model_edits.best_class_outputs`).
Activation ranges come from running the fp32 model on text lines rendered here at run time
(:mod:`.local_calibration`; PyMuPDF's built-in fonts: English, German, French, digits,
punctuation, Chinese and Japanese; light blur, grain or black-and-white thresholding); never
the corpus, never a download. Each range is the tensor's minimum and maximum, clipped to the
99.999th percentile of its absolute values (onnxruntime's "Percentile" calibration).

The ranges of rapidocr's recogniser are computed once and shipped beside this module
(:data:`RANGES_FILE`, made by ``python -m ocr_loaders._engines.local_quant``): calibrating
took 2.5 to 4 s of a new installation's first page. They are used only for the model file
whose SHA-256 they name and for this :data:`RECIPE_VERSION`; any other recogniser is
calibrated at run time, as above.

The result is kept on disk by :mod:`.local_model_cache` (named by the fp32 file's hash,
onnxruntime's version and :data:`RECIPE_VERSION`).

x86-64 CPUs use it (:func:`int8_levels`). With VNNI onnxruntime sums the uint8 x int8
products in 32 bits and activations use all 256 codes. With AVX2 alone its kernels add each
pair of products in a signed 16-bit register (``vpmaddubsw``), which saturates above 32,767
(2 x 255 x 127 does not fit): there the activations entering int8 weight products are
quantized to 128 codes (2 x 127 x 127 fits), a copy of its own in the cache (weights stay
8-bit: 7-bit weights changed more characters). Other CPUs were not measured; they keep the
fp32 model.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import platform
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .local_calibration import calibration_lines
from .local_model_cache import derived_model
from .local_model_edits import after_fusion, best_class_outputs, integer_projection, projection
from .local_onnx import rec_input

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

RECIPE_VERSION = "2"
"""Bump when the calibration inputs, the quantization settings or the edits change."""
QUANTIZED_OPS = ("Conv", "MatMul")
PERCENTILE = 99.999
"""Activation ranges keep this share of absolute values; rarer outliers saturate."""
RANGES_FILE = "local_quant_ranges.json"

FULL_LEVELS = 255
"""Largest uint8 code of the activations on CPUs with VNNI (products summed in 32 bits)."""
PAIR_LEVELS = 127
"""Largest uint8 code of the activations entering int8 weight products on CPUs with AVX2 but
no VNNI: a pair of products, 2 x 127 x 127, fits the 16-bit sum of ``vpmaddubsw``."""


@functools.cache
def int8_levels() -> int | None:
    """The largest uint8 code the int8 recogniser's activations may use on this CPU
    (:func:`levels_for` its ``/proc/cpuinfo``); ``None`` where the fp32 model is used."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return levels_for(platform.machine(), cpuinfo)


def levels_for(machine: str, cpuinfo: str) -> int | None:
    """:data:`FULL_LEVELS` on x86-64 with VNNI (``avx512_vnni`` or ``avx_vnni`` among the
    ``flags`` of ``cpuinfo``), :data:`PAIR_LEVELS` with AVX2 alone, else ``None``."""
    if machine.lower() not in ("x86_64", "amd64"):
        return None
    flags = {f for line in re.findall(r"(?m)^flags\s*:(.*)$", cpuinfo) for f in line.split()}
    if flags & {"avx512_vnni", "avx_vnni"}:
        return FULL_LEVELS
    return PAIR_LEVELS if "avx2" in flags else None


def int8_recipe(levels: int = FULL_LEVELS) -> str:
    """The cache recipe name of the int8 copy for ``levels`` (:func:`int8_levels`)."""
    codes = "" if levels == FULL_LEVELS else f"a{levels}"
    return f"int8{codes}-r{RECIPE_VERSION}"


def int8_model(fp32: Path, directory: Path | None = None, levels: int = FULL_LEVELS) -> bytes:
    """The serialized int8 copy of the recogniser ``fp32`` for ``levels``: from the cache
    when a whole copy is there, else quantized now (seconds) and stored."""
    return derived_model(fp32, int8_recipe(levels), lambda path: quantize(path, levels), directory)


def quantize(fp32: Path, levels: int = FULL_LEVELS) -> bytes:
    """The recogniser ``fp32`` quantized (see the module docstring for the recipe), the
    activations entering int8 weight products on codes 0 to ``levels``."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    known = shipped_ranges(hashlib.sha256(fp32.read_bytes()).hexdigest())
    line = rec_input(calibration_lines(1)[0])

    with tempfile.TemporaryDirectory(prefix="ocr-loaders-quant-") as tmp:
        pre, out = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        model = prepared(fp32, pre)
        ranges = known or calibrated_ranges(model)
        name = model.graph.input[0].name
        found = projection(model)
        if found is None:
            raise RuntimeError("the recogniser has no MatMul projection before its softmax")
        head = found[0]
        narrow = weight_product_inputs(model) if levels < FULL_LEVELS else set()
        del model

        class One(CalibrationDataReader):  # type: ignore[misc]
            """One input: the ranges come from ``TensorQuantOverrides``."""

            def __init__(self) -> None:
                self._left = [{name: line}]

            def get_next(self) -> dict[str, np.ndarray] | None:
                return self._left.pop() if self._left else None

        quantize_static(
            pre,
            out,
            One(),
            quant_format=QuantFormat.QOperator,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=list(QUANTIZED_OPS),
            nodes_to_exclude=[head.name],  # quantized below, in one array operation
            extra_options={
                "TensorQuantOverrides": {
                    t: [_narrowed(lo, hi, levels) if t in narrow else {"rmin": lo, "rmax": hi}]
                    for t, (lo, hi) in ranges.items()
                }
            },
        )
        quantized = onnx.load(out)
        if not integer_projection(quantized, ranges[head.input[0]], levels):
            raise RuntimeError("the int8 recogniser lost its float projection")
        best_class_outputs(quantized)
        serialized: bytes = quantized.SerializeToString()
        return serialized


def weight_product_inputs(model: onnx.ModelProto) -> set[str]:
    """The activations multiplied by a weight matrix (a ``QUANTIZED_OPS`` node whose second
    input is a constant): those whose codes meet int8 weights in the quantized model."""
    consts = {i.name for i in model.graph.initializer}
    return {
        n.input[0]
        for n in model.graph.node
        if n.op_type in QUANTIZED_OPS and len(n.input) > 1 and n.input[1] in consts
    }


def _narrowed(lo: np.float32, hi: np.float32, levels: int) -> dict[str, np.ndarray]:
    """The quantizer's override putting the range ``lo`` .. ``hi`` on codes 0 to ``levels``
    (onnxruntime's own scale function, as for the other activations)."""
    from onnxruntime.quantization.quant_utils import compute_scale_zp

    zero, scale = compute_scale_zp(
        np.array(lo, np.float32), np.array(hi, np.float32), np.uint8(0), np.uint8(levels)
    )
    return {"scale": np.asarray(scale, np.float32), "zero_point": np.asarray(zero, np.uint8)}


def shipped_ranges(digest: str) -> dict[str, tuple[np.float32, np.float32]] | None:
    """The shipped activation ranges (:data:`RANGES_FILE`) when they were computed for the
    recogniser whose SHA-256 is ``digest`` with this :data:`RECIPE_VERSION`, else ``None``."""
    from importlib import resources

    try:
        data = json.loads(resources.files(__package__).joinpath(RANGES_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        log.warning("the shipped ranges of the int8 recogniser cannot be read; calibrating")
        return None
    if data.get("recipe") != RECIPE_VERSION or data.get("model_sha256") != digest:
        return None
    return {t: (np.float32(lo), np.float32(hi)) for t, (lo, hi) in data["ranges"].items()}


def prepared(fp32: Path, pre: Path) -> onnx.ModelProto:
    """The recogniser ``fp32`` as the quantizer reads it: onnxruntime's pre-processing,
    then :func:`fuse_gelu`; also saved at ``pre``."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(fp32, pre, skip_symbolic_shape=True)
    model = onnx.load(pre)
    fuse_gelu(model)
    onnx.save(model, pre)
    return model


def calibrated_ranges(model: onnx.ModelProto) -> dict[str, tuple[np.float32, np.float32]]:
    """The activation ranges of a :func:`prepared` recogniser, calibrated now (seconds)."""
    name = model.graph.input[0].name
    return activation_ranges(model, ({name: rec_input(c)} for c in calibration_lines()))


def write_shipped_ranges(fp32: Path, path: Path) -> None:
    """Calibrate the recogniser ``fp32`` and write its ranges to ``path`` (the shipped
    :data:`RANGES_FILE`), named by the model's SHA-256 and :data:`RECIPE_VERSION`."""
    with tempfile.TemporaryDirectory(prefix="ocr-loaders-quant-") as tmp:
        ranges = calibrated_ranges(prepared(fp32, Path(tmp) / "pre.onnx"))
    data = {
        "recipe": RECIPE_VERSION,
        "model": fp32.name,
        "model_sha256": hashlib.sha256(fp32.read_bytes()).hexdigest(),
        "ranges": {t: [float(lo), float(hi)] for t, (lo, hi) in sorted(ranges.items())},
    }
    text = re.sub(r"\[\s+(\S+),\s+(\S+)\s+\]", r"[\1, \2]", json.dumps(data, indent=1))
    path.write_text(text + "\n", encoding="utf-8")  # a tensor per line


def activation_ranges(
    model: onnx.ModelProto, feeds: Iterable[dict[str, np.ndarray]], keep: float = PERCENTILE
) -> dict[str, tuple[np.float32, np.float32]]:
    """Quantization range of every float tensor read or written by a ``QUANTIZED_OPS`` node:
    its minimum and maximum over ``feeds``, clipped to +-the ``keep`` percentile of its
    absolute values (onnxruntime's "Percentile" calibration, computed one input at a time).
    """
    import onnx
    import onnxruntime as ort

    g = model.graph
    floats = {
        v.name
        for v in (*g.input, *g.value_info, *g.output)
        if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    } - {i.name for i in g.initializer}
    names = list(
        dict.fromkeys(
            t
            for n in g.node
            if n.op_type in QUANTIZED_OPS
            for t in (*n.input, *n.output)
            if t in floats
        )
    )
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    present = {o.name for o in probe.graph.output}
    for t in names:
        if t not in present:
            probe.graph.output.append(
                onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None)
            )
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.enable_cpu_mem_arena = False
    session = ort.InferenceSession(
        probe.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"]
    )
    del probe
    low = {t: math.inf for t in names}
    high = {t: -math.inf for t in names}
    tops: dict[str, list[np.ndarray]] = {t: [] for t in names}
    count = dict.fromkeys(names, 0)
    share = 1.0 - keep / 100.0
    for feed in feeds:
        for t, value in zip(names, session.run(names, feed), strict=True):
            flat = np.abs(value.ravel())
            low[t] = min(low[t], float(value.min()))
            high[t] = max(high[t], float(value.max()))
            tops[t].append(_largest(flat, min(flat.size, math.ceil(flat.size * share) + 1)))
            count[t] += flat.size
    ranges = {}
    for t in names:
        top = np.sort(np.concatenate(tops[t]))[::-1]
        q = float(top[min(len(top) - 1, int(count[t] * share))])
        ranges[t] = (np.float32(max(low[t], -q)), np.float32(min(high[t], q)))
    return ranges


def _largest(values: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` largest of a flat array, in no order. Values under a floor taken from every
    16th value are dropped first (exact: only when at least ``k`` remain)."""
    if values.size > 64 * k:
        sample = values[::16]
        m = min(sample.size, 4 * (k // 16 + 1))
        floor = np.partition(sample, sample.size - m)[sample.size - m]
        above = values[values >= floor]
        if above.size >= k:
            values = above
    top: np.ndarray = np.partition(values, values.size - k)[values.size - k :].copy()
    return top


def fuse_gelu(model: onnx.ModelProto) -> int:
    """Replace each ``x * (1 + erf(x / sqrt 2)) * 0.5`` chain by one ``Gelu`` node (in place);
    the number replaced.

    onnxruntime fuses this chain itself in a float model but not between quantized
    convolutions, where the five element-wise passes then cost about a quarter of the
    recogniser's time. The quantizer leaves ``Gelu`` in float.
    """
    from onnx import helper, numpy_helper

    nodes = list(model.graph.node)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}

    def only_user(name: str, op: str) -> onnx.NodeProto | None:
        users = consumers.get(name, [])
        ok = len(users) == 1 and users[0].op_type == op and name not in outputs
        return users[0] if ok else None

    def other_is(node: onnx.NodeProto, known: str, value: float) -> bool:
        rest = [n for n in node.input if n != known]
        c = consts.get(rest[0]) if len(rest) == 1 else None
        return c is not None and c.size == 1 and abs(float(c.reshape(-1)[0]) - value) < 1e-4

    replaced: dict[int, onnx.NodeProto | None] = {}
    for div in nodes:
        if div.op_type != "Div" or div.domain or not other_is(div, div.input[0], math.sqrt(2)):
            continue
        x = div.input[0]
        erf = only_user(div.output[0], "Erf")
        add = erf and only_user(erf.output[0], "Add")
        mul = add and only_user(add.output[0], "Mul")
        half = mul and only_user(mul.output[0], "Mul")
        if not (erf and add and mul and half):
            continue
        if not other_is(add, erf.output[0], 1.0) or set(mul.input) != {x, add.output[0]}:
            continue
        if not other_is(half, mul.output[0], 0.5):
            continue
        gelu = helper.make_node(
            "Gelu", [x], [half.output[0]], name=f"{div.name}_gelu", domain="com.microsoft"
        )
        replaced.update({id(div): None, id(erf): None, id(add): None, id(mul): None})
        replaced[id(half)] = gelu
    if not replaced:
        return 0
    kept = [replaced.get(id(n), n) if id(n) in replaced else n for n in nodes]
    del model.graph.node[:]
    model.graph.node.extend(n for n in kept if n is not None)
    after_fusion(model)
    return sum(n is not None for n in replaced.values())


if __name__ == "__main__":  # remake the shipped ranges after a recipe or model change
    from .local_ocr import REC_MODEL, models_dir

    write_shipped_ranges(models_dir() / REC_MODEL, Path(__file__).with_name(RANGES_FILE))
