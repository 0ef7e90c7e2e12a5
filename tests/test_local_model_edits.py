"""The local engine's edits to its OCR models, each made for speed: the recogniser returning
each step's best class (the same classes and probabilities as the whole softmax), and the
int8 projection quantized as onnxruntime's quantizer would, written as float logits (the
exact integer product, not rounded).
No timing assertions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from ocr_loaders._engines import local_ocr, local_quant
from ocr_loaders._engines.local_model_edits import (
    BEST_CLASS,
    BEST_PROB,
    best_class_outputs,
    fp32_recogniser,
    integer_projection,
)
from ocr_loaders._engines.local_onnx import OcrModels


def _session(model: onnx.ModelProto | bytes) -> ort.InferenceSession:
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def _rec_path() -> Path:
    return local_ocr.models_dir() / local_ocr.REC_MODEL


# --- best class per step --------------------------------------------------------------------


def test_best_class_outputs_are_the_softmax_maxima_and_their_classes() -> None:
    original = onnx.load(_rec_path())
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 48, 480)).astype(np.float32)
    (probs,) = _session(original).run(None, {"x": x})
    best_class_outputs(original)
    assert [o.name for o in original.graph.output] == [BEST_PROB, BEST_CLASS]
    prob, cls = _session(original).run(None, {"x": x})
    assert cls.shape == prob.shape == (*probs.shape[:2], 1)
    assert np.array_equal(cls[..., 0], probs.argmax(axis=2))
    assert np.array_equal(prob[..., 0], probs.max(axis=2))


def test_the_engine_refuses_a_recogniser_without_the_best_class_outputs() -> None:
    det = local_ocr.models_dir() / local_ocr.DET_MODEL
    with pytest.raises(ValueError, match="best_class_outputs"):
        OcrModels(det, _rec_path())
    OcrModels(det, fp32_recogniser(_rec_path()))  # prepared: accepted


# --- the int8 projection as float logits ----------------------------------------------------


def _float_projection(w: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    """Float features -> MatMul (weights) -> Add(bias) -> Softmax: the end of the
    recogniser, small."""
    k, n = w.shape
    nodes = [
        helper.make_node("MatMul", ["a", "w"], ["y"], name="head"),
        helper.make_node("Add", ["y", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=2),
    ]
    graph = helper.make_graph(
        nodes,
        "projection",
        [helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [1, 30, k])],
        [helper.make_tensor_value_info("probs", onnx.TensorProto.FLOAT, [1, 30, n])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _weights(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 1, (24, 40)).astype(np.float32)
    w[:, 7] = 0.0  # an all-zero column: scale 1, as onnxruntime's quantizer gives it
    bias = rng.normal(0, 1, 40).astype(np.float32)
    a = rng.uniform(-2, 3, (1, 30, 24)).astype(np.float32)
    return w, bias, a


@pytest.mark.parametrize("levels", [local_quant.FULL_LEVELS, local_quant.PAIR_LEVELS])
def test_integer_projection_is_the_exact_integer_product(levels: int) -> None:
    """Features on codes 0 to ``levels``: 255 where VNNI sums the products in 32 bits, 127 on
    every x86-64 CPU (AVX2 adds pairs of products in 16 bits, which 2 x 255 x 127 overflows:
    there the full codes saturate, as the int8 copy for such CPUs avoids)."""
    if levels == local_quant.FULL_LEVELS and local_quant.int8_levels() != levels:
        pytest.skip("this CPU has no VNNI: the engine never runs 256-code products here")
    w, bias, a = _weights()
    model = _float_projection(w, bias)
    assert integer_projection(model, (np.float32(-2.0), np.float32(3.0)), levels)
    assert [nd.op_type for nd in model.graph.node] == [
        "QuantizeLinear",
        "MatMulIntegerToFloat",
        "Softmax",
    ]
    (probs,) = _session(model).run(None, {"a": a})

    # what it means: uint8 features over [-2, 3], int8 weights per column, float logits
    a_scale = 5.0 / levels
    a_zero = round(2.0 / a_scale)
    a_q = np.clip(np.round(a / np.float32(a_scale)) + a_zero, 0, 255)
    w_scale = np.where(np.abs(w).max(axis=0) > 0, np.abs(w).max(axis=0) / 127, 1.0)
    w_deq = np.round(w / w_scale) * w_scale
    logits = (a_q - a_zero) * a_scale @ w_deq + bias
    expected = np.exp(logits - logits.max(axis=2, keepdims=True))
    expected /= expected.sum(axis=2, keepdims=True)
    assert np.abs(probs - expected).max() < 1e-4


def test_integer_projection_quantizes_as_onnxruntime_does(tmp_path: Path) -> None:
    """The same int8 weights, scales and feature quantization as onnxruntime's own
    per-channel quantizer gives the projection, computed in one array operation."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    w, bias, a = _weights(1)
    onnx.save(_float_projection(w, bias), tmp_path / "float.onnx")

    class One(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._left = [{"a": a}]

        def get_next(self) -> dict[str, np.ndarray] | None:
            return self._left.pop() if self._left else None

    quantize_static(
        tmp_path / "float.onnx",
        tmp_path / "int8.onnx",
        One(),
        quant_format=QuantFormat.QOperator,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        extra_options={
            "TensorQuantOverrides": {"a": [{"rmin": np.float32(-1.7), "rmax": np.float32(2.9)}]}
        },
    )
    theirs = {
        i.name: numpy_helper.to_array(i)
        for i in onnx.load(tmp_path / "int8.onnx").graph.initializer
    }
    ours_model = _float_projection(w, bias)
    assert integer_projection(ours_model, (np.float32(-1.7), np.float32(2.9)))
    ours = {i.name: numpy_helper.to_array(i) for i in ours_model.graph.initializer}
    for name in ("w_quantized", "w_scale", "w_zero_point", "a_scale", "a_zero_point"):
        assert ours[name].dtype == theirs[name].dtype, name
        assert np.array_equal(ours[name], theirs[name]), name


def test_integer_projection_leaves_other_models_alone() -> None:
    w, bias, _ = _weights()
    model = _float_projection(w, bias)
    model.graph.node[2].op_type = "Sigmoid"  # not a softmax head
    model.graph.node[2].ClearField("attribute")
    before = model.SerializeToString()
    assert not integer_projection(model, (np.float32(-1.0), np.float32(1.0)))
    assert model.SerializeToString() == before
