"""Edits the local engine makes to rapidocr's ONNX models before it runs them.

Each edit is a pure function of an ``onnx.ModelProto`` (in place); the made models are kept
on disk by :mod:`.local_model_cache`, so ``onnx`` (over a second to import) is needed only
the first time.

* :func:`zero_denormal_weights`: subnormal float weights set to zero (x86 CPUs multiply by
  them on a slow microcode path; the output does not change);
* :func:`best_class_outputs`: the recogniser returns each step's best class and its
  probability instead of the probability of all 18,710 characters at every step. Greedy CTC
  needs nothing else, and the whole array cost a copy out of onnxruntime and a numpy pass;
* :func:`float_projection`: in the int8 recogniser, the final projection onto the character
  set writes float logits (``MatMulIntegerToFloat`` with its bias) instead of rounding them
  to 256 levels, dequantizing them and adding the bias in three passes over the largest
  tensor of the model.
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


def float_projection(model: onnx.ModelProto) -> bool:
    """Replace the int8 recogniser's ``QLinearMatMul -> DequantizeLinear -> Add(bias)``
    before its softmax by one ``MatMulIntegerToFloat`` with the bias; whether it was found.

    The same integer product, scaled to float directly: the logits keep their precision
    (they were rounded to steps of about 0.2 before the softmax).
    """
    from onnx import helper

    g = model.graph
    made_by = {out: n for n in g.node for out in n.output}
    consts = {i.name for i in g.initializer}
    softmax = made_by.get(g.output[0].name) if len(g.output) == 1 else None
    add = softmax and softmax.op_type == "Softmax" and made_by.get(softmax.input[0])
    if not add or add.op_type != "Add":
        return False
    bias = [i for i in add.input if i in consts]
    deq = [made_by.get(i) for i in add.input if i not in consts]
    if len(bias) != 1 or len(deq) != 1 or deq[0] is None:
        return False
    dq = deq[0]
    mm = made_by.get(dq.input[0]) if dq.op_type == "DequantizeLinear" else None
    if mm is None or mm.op_type != "QLinearMatMul" or mm.input[3] not in consts:
        return False
    users = [n for n in g.node if mm.output[0] in n.input or dq.output[0] in n.input]
    if len(users) != 2:  # the product feeds only this chain
        return False
    a, a_scale, a_zp, b, b_scale, b_zp = mm.input[:6]
    fused = helper.make_node(
        "MatMulIntegerToFloat",
        [a, b, a_scale, b_scale, a_zp, b_zp, bias[0]],
        [add.output[0]],
        name=f"{mm.name}_to_float",
        domain="com.microsoft",
    )
    index = list(g.node).index(mm)
    for node in (mm, dq, add):
        g.node.remove(node)
    g.node.insert(index, fused)
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
