"""The local engine's edits to its OCR models, each made for speed: the recogniser returning
each step's best class (the same classes and probabilities as the whole softmax), and the
int8 projection written as float logits (the exact integer product, no longer rounded).
No timing assertions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from ocr_loaders._engines import local_ocr
from ocr_loaders._engines.local_model_edits import (
    BEST_CLASS,
    BEST_PROB,
    best_class_outputs,
    float_projection,
    fp32_recogniser,
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


def _quantized_projection(
    w: np.ndarray, bias: np.ndarray, a_scale: float, y_scale: float
) -> onnx.ModelProto:
    """uint8 features -> QLinearMatMul (int8 weights, per column) -> DequantizeLinear ->
    Add(bias) -> Softmax: the end of the int8 recogniser, small."""
    k, n = w.shape
    w_scale = (np.abs(w).max(axis=0) / 127).astype(np.float32)
    w_q = np.round(w / w_scale).astype(np.int8)
    c = [
        numpy_helper.from_array(np.array(a_scale, np.float32), "a_s"),
        numpy_helper.from_array(np.array(128, np.uint8), "a_z"),
        numpy_helper.from_array(w_q, "w_q"),
        numpy_helper.from_array(w_scale, "w_s"),
        numpy_helper.from_array(np.zeros(n, np.int8), "w_z"),
        numpy_helper.from_array(np.array(y_scale, np.float32), "y_s"),
        numpy_helper.from_array(np.array(128, np.uint8), "y_z"),
        numpy_helper.from_array(bias.astype(np.float32), "bias"),
    ]
    nodes = [
        helper.make_node(
            "QLinearMatMul", ["a", "a_s", "a_z", "w_q", "w_s", "w_z", "y_s", "y_z"], ["y_q"]
        ),
        helper.make_node("DequantizeLinear", ["y_q", "y_s", "y_z"], ["y"]),
        helper.make_node("Add", ["y", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=2),
    ]
    graph = helper.make_graph(
        nodes,
        "projection",
        [helper.make_tensor_value_info("a", onnx.TensorProto.UINT8, [1, None, k])],
        [helper.make_tensor_value_info("probs", onnx.TensorProto.FLOAT, [1, None, n])],
        c,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_float_projection_keeps_the_integer_product_without_rounding_it() -> None:
    rng = np.random.default_rng(0)
    k, n, a_scale, y_scale = 24, 40, 0.05, 0.2
    w = rng.normal(0, 1, (k, n)).astype(np.float32)
    bias = rng.normal(0, 1, n).astype(np.float32)
    model = _quantized_projection(w, bias, a_scale, y_scale)
    a = rng.integers(0, 256, (1, 30, k), dtype=np.uint8)
    (rounded,) = _session(model).run(None, {"a": a})

    assert float_projection(model)
    ops = [nd.op_type for nd in model.graph.node]
    assert ops == ["MatMulIntegerToFloat", "Softmax"]
    assert {i.name for i in model.graph.initializer} == {"a_s", "a_z", "w_q", "w_s", "w_z", "bias"}
    (exact,) = _session(model).run(None, {"a": a})

    # what the integer product means, in float: dequantized features x dequantized weights
    w_scale = np.abs(w).max(axis=0) / 127
    w_deq = np.round(w / w_scale) * w_scale
    logits = (a.astype(np.float64) - 128) * a_scale @ w_deq + bias
    expected = np.exp(logits - logits.max(axis=2, keepdims=True))
    expected /= expected.sum(axis=2, keepdims=True)
    assert np.abs(exact - expected).max() < 1e-4
    assert np.abs(rounded - expected).max() > 10 * np.abs(exact - expected).max()


def test_float_projection_leaves_other_models_alone() -> None:
    fp32 = onnx.load(_rec_path())  # a float model: no QLinearMatMul before its softmax
    before = fp32.SerializeToString()
    assert not float_projection(fp32)
    assert fp32.SerializeToString() == before
