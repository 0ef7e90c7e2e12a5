"""Edits the local engine makes to rapidocr's ONNX models before it runs them.

Each edit is a pure function of an ``onnx.ModelProto`` (in place); the made models are kept
on disk by :mod:`.local_model_cache`, so ``onnx`` (over a second to import) is needed only
the first time.

* :func:`zero_denormal_weights`: subnormal float weights set to zero (x86 CPUs multiply by
  them on a slow microcode path; the output does not change);
* :func:`best_class_outputs`: the recogniser returns each step's best class and its
  probability instead of the probability of all 18,710 characters at every step. Greedy CTC
  needs nothing else, and the whole array cost a copy out of onnxruntime and a numpy pass;
* :func:`integer_projection`: in the int8 recogniser, the final projection onto the character
  set is quantized here (onnxruntime's quantizer leaves it in float) and writes float logits
  (``MatMulIntegerToFloat`` with its bias) instead of rounding them to 256 levels,
  dequantizing them and adding the bias in three passes over the largest tensor of the
  model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

BEST_PROB = "best_prob"
BEST_CLASS = "best_class"
"""Names of the recogniser's outputs after :func:`best_class_outputs`: (1, steps, 1) each."""


def without_denormal_weights(model: Path) -> bytes:
    """The serialized model at ``model`` with its subnormal weights zeroed (the detector).

    Two 1x1 convolutions of rapidocr's detector have 24 % and 63 % of their weights
    subnormal, which made them two thirds of the detector's time on an Intel Xeon (1.1 s ->
    0.4 s per 1280 px page with them zeroed; AMD CPUs pay far less). onnxruntime's
    ``session.set_denormal_as_zero`` would do the same for activations too, but it changes
    the floating-point mode of the thread that first creates any session in the process,
    which may be the caller's.
    """
    return _edited(model, zero_denormal_weights)


def fp32_recogniser(model: Path) -> bytes:
    """The serialized float recogniser as the engine runs it where int8 is not used:
    subnormal weights zeroed, best class and probability per step as its outputs."""
    return _edited(model, zero_denormal_weights, best_class_outputs)


def _edited(model: Path, *edits: Callable[[onnx.ModelProto], object]) -> bytes:
    """The model file at ``model`` with ``edits`` applied in order, serialized."""
    import onnx

    proto = onnx.load(str(model))
    for edit in edits:
        edit(proto)
    serialized: bytes = proto.SerializeToString()
    return serialized


def zero_denormal_weights(model: onnx.ModelProto) -> None:
    """Set float weights below 1.2e-38 in magnitude to zero.

    Their contribution is below 1e-38 of an activation, so the output does not change."""
    import onnx
    from onnx import numpy_helper

    tiny = np.finfo(np.float32).tiny
    for init in model.graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        weights = numpy_helper.to_array(init)
        subnormal = (weights != 0) & (np.abs(weights) < tiny)
        if subnormal.any():
            init.CopyFrom(numpy_helper.from_array(np.where(subnormal, 0, weights), init.name))


def best_class_outputs(model: onnx.ModelProto) -> None:
    """Make the recogniser's outputs :data:`BEST_PROB` and :data:`BEST_CLASS`: a ``TopK``
    (k = 1, ties to the lower class, as ``numpy.argmax``) over its softmax output."""
    import onnx
    from onnx import helper, numpy_helper

    g = model.graph
    if len(g.output) != 1:
        raise ValueError(f"expected one output (the softmax), found {len(g.output)}")
    probs = g.output[0].name
    k = "best_class_k"
    g.initializer.append(numpy_helper.from_array(np.array([1], np.int64), k))
    g.node.append(helper.make_node("TopK", [probs, k], [BEST_PROB, BEST_CLASS], axis=-1))
    del g.output[:]
    g.output.extend(
        [
            helper.make_tensor_value_info(BEST_PROB, onnx.TensorProto.FLOAT, None),
            helper.make_tensor_value_info(BEST_CLASS, onnx.TensorProto.INT64, None),
        ]
    )


def projection(model: onnx.ModelProto) -> tuple[onnx.NodeProto, onnx.NodeProto] | None:
    """The recogniser's final projection onto the character set: the float ``MatMul`` (by a
    weight matrix) and the ``Add`` of its bias feeding the softmax output, or ``None``."""
    g = model.graph
    made_by = {out: n for n in g.node for out in n.output}
    consts = {i.name for i in g.initializer}
    softmax = made_by.get(g.output[0].name) if len(g.output) == 1 else None
    add = softmax and softmax.op_type == "Softmax" and made_by.get(softmax.input[0])
    if not add or add.op_type != "Add" or sum(i in consts for i in add.input) != 1:
        return None
    mm = next((made_by[i] for i in add.input if i in made_by), None)
    if mm is None or mm.op_type != "MatMul" or mm.input[1] not in consts:
        return None
    if sum(mm.output[0] in n.input for n in g.node) != 1:  # the product feeds only the Add
        return None
    return mm, add


def integer_projection(
    model: onnx.ModelProto,
    a_range: tuple[np.float32, np.float32] | tuple[float, float],
    levels: int = 255,
) -> bool:
    """Quantize the float projection (:func:`projection`, left out of onnxruntime's
    quantizer) into ``QuantizeLinear`` + one ``MatMulIntegerToFloat`` with the bias, in
    place; whether it was found.

    The features are quantized to uint8 codes 0 to ``levels`` over ``a_range`` (fewer than
    255 where the CPU sums pairs of products in 16 bits) and the weights to int8 per
    character (symmetric), exactly as onnxruntime's quantizer does (its own scale function,
    the same float64 division and rounding), but in one array operation instead of a Python
    loop over 18,710 columns (1.5 to 2 s of a new installation's first page). The product is
    scaled straight to float logits with the bias added: no rounding of the logits, one pass
    over the model's largest tensor.
    """
    import onnx
    from onnx import helper, numpy_helper
    from onnxruntime.quantization.quant_utils import compute_scale_zp

    found = projection(model)
    if found is None:
        return False
    mm, add = found
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    a, w = mm.input
    bias = next(i for i in add.input if i in inits)
    weights = numpy_helper.to_array(inits[w]).astype(np.float32)
    absmax = np.maximum(-np.minimum(weights.min(axis=0), 0), np.maximum(weights.max(axis=0), 0))
    scale = absmax.astype(np.float64) * 2.0 / 254.0  # [-absmax, absmax] onto [-127, 127]
    scale = np.where(scale < np.finfo(np.float32).tiny, 1.0, scale)
    quantized = np.clip(np.round(weights / scale), -128, 127).astype(np.int8)
    lo, hi = (np.array(v, np.float32) for v in a_range)
    a_zp, a_scale = compute_scale_zp(lo, hi, np.array(0, np.uint8), np.array(levels, np.uint8))
    g.initializer.extend(
        [
            numpy_helper.from_array(quantized, f"{w}_quantized"),
            helper.make_tensor(f"{w}_scale", onnx.TensorProto.FLOAT, [scale.size], scale.tolist()),
            numpy_helper.from_array(np.zeros(scale.size, np.int8), f"{w}_zero_point"),
            helper.make_tensor(f"{a}_scale", onnx.TensorProto.FLOAT, [], [float(a_scale)]),
            numpy_helper.from_array(np.asarray(a_zp, np.uint8), f"{a}_zero_point"),
        ]
    )
    quantize = helper.make_node(
        "QuantizeLinear",
        [a, f"{a}_scale", f"{a}_zero_point"],
        [f"{a}_quantized"],
        name=f"{a}_QuantizeLinear",
    )
    fused = helper.make_node(
        "MatMulIntegerToFloat",
        [
            *(f"{a}_quantized", f"{w}_quantized", f"{a}_scale", f"{w}_scale"),
            *(f"{a}_zero_point", f"{w}_zero_point", bias),
        ],
        [add.output[0]],
        name=f"{mm.name}_to_float",
        domain="com.microsoft",
    )
    index = list(g.node).index(mm)
    g.node.remove(mm)
    g.node.remove(add)
    g.node.insert(index, fused)
    g.node.insert(index, quantize)
    after_fusion(model)
    return True


def after_fusion(model: onnx.ModelProto) -> None:
    """Tidy a model after nodes were fused into onnxruntime's own (``com.microsoft``)
    operators: drop the initializers no node reads any more, declare that domain."""
    from onnx import helper

    g = model.graph
    used = {name for n in g.node for name in n.input}
    for init in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(init)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
