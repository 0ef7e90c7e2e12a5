"""How the local engine prepares and feeds its OCR models: subnormal weights zeroed in a
cached copy, grayscale pages kept 2-D, scanned pages handed over as compressed pixels. Each
change is for speed, so each test checks that the output is exactly what it was. No timing
assertions."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
import onnx
import pymupdf
import pytest
from onnx import helper, numpy_helper
from PIL import Image

from ocr_loaders._engines import local_ocr, local_onnx, local_quant
from ocr_loaders._engines.local import ocr_array_grounded, ocr_image_grounded, recognize_page_data
from ocr_loaders._engines.local_model_cache import derived_model
from ocr_loaders._engines.local_model_edits import fp32_recogniser, without_denormal_weights
from ocr_loaders._engines.local_ocr import decode_image
from ocr_loaders._engines.local_onnx import OcrModels
from ocr_loaders._engines.local_textlayer import extract_page

TINY = float(np.finfo(np.float32).tiny)


def _subnormal_count(model: onnx.ModelProto) -> int:
    count = 0
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT:
            w = numpy_helper.to_array(init)
            count += int(((w != 0) & (np.abs(w) < TINY)).sum())
    return count


def _page_text_gray(dpi: int = 200) -> np.ndarray:
    """A grayscale render of a page of text with a small ruled table."""
    doc = pymupdf.open()
    page = doc.new_page(width=420, height=300)
    for k, line in enumerate(
        ["Quarterly report of the river authority", "Levels rose by 4.7 % in March 2019"]
    ):
        page.insert_text((30, 40 + 26 * k), line, fontsize=13, fontname="helv")
    for i in range(4):  # a 3 x 3 ruled grid
        page.draw_line((30, 120 + 40 * i), (390, 120 + 40 * i), width=1.2)
        page.draw_line((30 + 120 * i, 120), (30 + 120 * i, 240), width=1.2)
    for r, row in enumerate([("Item", "Qty", "Price"), ("Bolt", "12", "3.40")]):
        for c, cell in enumerate(row):
            page.insert_text((40 + 120 * c, 146 + 40 * r), cell, fontsize=12, fontname="helv")
    pix = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY)
    return np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.width).copy()


# --- subnormal weights ----------------------------------------------------------------------


def test_subnormal_weights_are_zeroed_and_nothing_else_changes(tmp_path: Path) -> None:
    weights = np.array([[1.5, 1e-40], [-2e-39, -0.25]], np.float32)  # two subnormal values
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(weights, "w")],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), path)
    assert _subnormal_count(onnx.load(path)) == 2
    out = onnx.load_from_string(without_denormal_weights(path))
    (w,) = [numpy_helper.to_array(i) for i in out.graph.initializer]
    assert w.tolist() == [[1.5, 0.0], [0.0, -0.25]]
    assert _subnormal_count(out) == 0


def test_detector_copy_has_no_subnormal_weights_and_finds_the_same_lines(
    tmp_path: Path,
) -> None:
    det = local_ocr.models_dir() / local_ocr.DET_MODEL
    assert _subnormal_count(onnx.load(det)) > 0  # rapidocr's file has them (the reason)
    copy = derived_model(det, local_ocr.DENORMAL_RECIPE, without_denormal_weights, tmp_path)
    assert _subnormal_count(onnx.load_from_string(copy)) == 0
    (cached,) = tmp_path.glob("*.bin")
    assert cached.name.startswith(f"{det.stem}.{local_ocr.DENORMAL_RECIPE}-ort")

    def refuse(_path: Path) -> bytes:
        raise AssertionError("made again although a whole copy is cached")

    assert derived_model(det, local_ocr.DENORMAL_RECIPE, refuse, tmp_path) == copy

    rec = fp32_recogniser(local_ocr.models_dir() / local_ocr.REC_MODEL)
    img = _page_text_gray()
    original = OcrModels(det, rec).detect(img)
    zeroed = OcrModels(copy, rec).detect(img)
    assert len(original) >= 4 and len(zeroed) == len(original)
    for a, b in zip(original, zeroed, strict=True):
        assert np.allclose(a.quad, b.quad, atol=1e-3) and abs(a.score - b.score) < 1e-5


@pytest.mark.parametrize("vnni", [True, False])
def test_engine_loads_the_zeroed_copies(monkeypatch: pytest.MonkeyPatch, vnni: bool) -> None:
    made: list[tuple[str, str]] = []
    real = local_ocr.derived_model

    def recording(source: Path, recipe: str, make: object, directory: Path | None = None) -> bytes:
        made.append((source.name, recipe))
        return real(source, recipe, make, directory)  # type: ignore[arg-type]

    monkeypatch.setattr(local_ocr, "derived_model", recording)
    monkeypatch.setattr(local_ocr, "int8_levels", lambda: local_quant.FULL_LEVELS if vnni else None)
    monkeypatch.setattr(local_ocr, "int8_model", lambda fp32, levels: fp32_recogniser(fp32))
    monkeypatch.setattr(local_ocr, "_models", None)  # restored after the test
    with local_ocr._lock:
        local_ocr._get_models()
    fp32_rec = [] if vnni else [(local_ocr.REC_MODEL, local_ocr.FP32_REC_RECIPE)]
    assert made == [(local_ocr.DET_MODEL, local_ocr.DENORMAL_RECIPE), *fp32_rec]


# --- the detector's two sessions -------------------------------------------------------------


def _quads(found: list[local_onnx.Detection]) -> list[list[list[float]]]:
    return [d.quad.tolist() for d in found]


def test_the_detector_reads_the_same_in_both_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inputs up to ``DET_BLOCKED_MAX_PIXELS`` are read in onnxruntime's blocked layout,
    larger ones without it: the same model, so the same lines (scores equal to float
    rounding); and a map is the caller's own array, not arena memory a later run (of another
    size, in the other session) writes over."""
    with local_ocr._lock:
        models = local_ocr._get_models()
    img = _page_text_gray()
    blocked = models.detect(img)
    assert len(blocked) >= 4
    held = models._det_map(np.full((1, 3, 256, 320), 0.5, np.float32))
    kept = held.copy()
    monkeypatch.setattr(local_onnx, "DET_BLOCKED_MAX_PIXELS", 0)  # every input: unblocked
    unblocked = models.detect(img)
    models.detect(np.ascontiguousarray(np.rot90(_page_text_gray(dpi=150))))
    assert np.array_equal(held, kept)
    assert _quads(unblocked) == _quads(blocked)
    assert np.allclose([d.score for d in unblocked], [d.score for d in blocked], rtol=0, atol=1e-4)
    monkeypatch.undo()
    assert _quads(models.detect(img)) == _quads(blocked)


# --- grayscale pages ------------------------------------------------------------------------


def _encoded(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def test_grayscale_and_bilevel_images_decode_2d_colour_3d() -> None:
    gray = Image.fromarray(_page_text_gray())
    arr, w, h = decode_image(_encoded(gray))
    assert arr.ndim == 2 and (w, h) == gray.size and np.array_equal(arr, np.asarray(gray))
    bilevel, _, _ = decode_image(
        _encoded(gray.point(lambda v: 255 if v > 128 else 0).convert("1"), "TIFF")
    )
    assert bilevel.ndim == 2 and set(np.unique(bilevel)) <= {0, 255}
    colour, _, _ = decode_image(_encoded(gray.convert("RGB")))
    assert colour.ndim == 3 and colour.shape[2] == 3
    clear = gray.convert("RGBA")
    clear.putalpha(0)
    laid, _, _ = decode_image(_encoded(clear))  # transparent: laid on white paper
    assert laid.ndim == 3 and int(laid.min()) == 255


def test_a_grayscale_page_reads_the_same_as_its_three_channel_copy() -> None:
    gray = _page_text_gray()
    bgr = np.ascontiguousarray(np.repeat(gray[:, :, np.newaxis], 3, axis=2))
    h, w = gray.shape
    as_gray = ocr_array_grounded(gray, w, h)
    assert "Quarterly" in as_gray and "<table>" in as_gray  # text and the ruled table
    assert as_gray == ocr_array_grounded(bgr, w, h)


# --- scanned pages handed over as pixels ----------------------------------------------------


def test_a_scanned_page_comes_as_its_pixels_and_reads_as_its_png_would() -> None:
    scan = _encoded(Image.fromarray(_page_text_gray(dpi=150)))
    doc = pymupdf.open()
    page = doc.new_page(width=420, height=300)
    page.insert_image(page.rect, stream=scan)
    data = extract_page(page)
    assert data.source == "ocr" and data.ocr_pixels is not None
    pixels = zlib.decompress(data.ocr_pixels)
    assert len(pixels) == data.ocr_width * data.ocr_height
    assert len(data.ocr_pixels) < len(pixels) / 4  # compressed: small to hand over and hold
    gray = np.frombuffer(pixels, np.uint8).reshape(data.ocr_height, data.ocr_width)
    as_png = ocr_image_grounded(_encoded(Image.fromarray(gray)))
    assert "Quarterly" in as_png
    assert recognize_page_data(data) == as_png
