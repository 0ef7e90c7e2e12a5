"""The int8 recogniser of the local engine (``local_quant``): made once and then read from
its cache, made again when the cached copy is damaged, usable when the cache cannot be
written, reading a rendered line exactly, and made from shipped activation ranges that are
the calibration's own. No timing assertions."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import onnx
import pymupdf
import pytest

from ocr_loaders._engines import local_ocr, local_quant
from ocr_loaders._engines.local import LocalEngine
from ocr_loaders._engines.local_onnx import OcrModels, crop_line


def _fp32() -> Path:
    return local_ocr.models_dir() / local_ocr.REC_MODEL


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A cache folder holding the int8 recogniser, quantized for real once per module."""
    folder = tmp_path_factory.mktemp("models")
    return folder, local_quant.int8_model(_fp32(), folder)


def _counting(monkeypatch: pytest.MonkeyPatch, model: bytes) -> list[Path]:
    """Replace :func:`local_quant.quantize` by a recorder returning ``model``."""
    calls: list[Path] = []

    def quantize(fp32: Path) -> bytes:
        calls.append(fp32)
        return model

    monkeypatch.setattr(local_quant, "quantize", quantize)
    return calls


def _cached(folder: Path) -> Path:
    (path,) = folder.glob("*.bin")
    return path


def test_made_once_then_read_from_the_cache(
    made: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, model = made
    path = _cached(folder)
    assert f".int8-r{local_quant.RECIPE_VERSION}-" in path.name
    stamp = path.stat().st_mtime_ns
    calls = _counting(monkeypatch, b"not used")
    assert local_quant.int8_model(_fp32(), folder) == model
    assert calls == [] and path.stat().st_mtime_ns == stamp
    assert [p.name for p in folder.iterdir()] == [path.name]  # no temporary file left


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "empty"])
def test_damaged_copy_is_made_again(
    made: tuple[Path, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    folder, model = made
    copy = tmp_path / _cached(folder).name
    data = bytearray(_cached(folder).read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "flipped byte":
        data[len(data) // 2] ^= 0xFF
    else:
        data = bytearray()
    copy.write_bytes(bytes(data))
    calls = _counting(monkeypatch, model)
    assert local_quant.int8_model(_fp32(), tmp_path) == model
    assert len(calls) == 1
    assert copy.read_bytes() == _cached(folder).read_bytes()  # replaced by a whole copy
    assert local_quant.int8_model(_fp32(), tmp_path) == model and len(calls) == 1


def test_unwritable_cache_folder_still_gives_the_model(
    made: tuple[Path, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, model = made
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    calls = _counting(monkeypatch, model)
    assert local_quant.int8_model(_fp32(), blocker / "models") == model
    assert local_quant.int8_model(_fp32(), blocker / "models") == model
    assert len(calls) == 2  # nothing could be kept, so it is made each time
    OcrModels(local_ocr.models_dir() / local_ocr.DET_MODEL, model)  # and it loads


@pytest.mark.parametrize(
    "text",
    [
        "Invoice 2024-117: 3 items, total EUR 1,284.50 (paid in full).",
        "Größere Straßen, déjà vu & 42% more: read it exactly!",
    ],
)
def test_int8_recogniser_reads_a_rendered_line_exactly(made: tuple[Path, bytes], text: str) -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=460, height=40)
    page.insert_text((12, 26), text, fontsize=11, fontname="helv")
    pix = page.get_pixmap(dpi=300, colorspace=pymupdf.csGRAY)
    gray = np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.width)
    img = np.ascontiguousarray(np.repeat(gray[:, :, np.newaxis], 3, axis=2))
    models = OcrModels(local_ocr.models_dir() / local_ocr.DET_MODEL, made[1])
    found = models.detect(img)
    read = models.recognize([crop_line(img, d.quad) for d in found])
    assert [t for t, _ in read] == [text]


def test_gelu_fusion_keeps_the_outputs() -> None:
    import onnx
    import onnxruntime as ort

    model = onnx.load(_fp32())
    plain = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert local_quant.fuse_gelu(model) == 13
    assert not any(n.op_type == "Erf" for n in model.graph.node)
    fused = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 48, 320)).astype(np.float32)
    a, b = plain.run(None, {"x": x})[0], fused.run(None, {"x": x})[0]
    assert float(np.abs(a - b).max()) < 1e-4


def _shipped() -> dict[str, tuple[np.float32, np.float32]]:
    """The shipped ranges for the installed recogniser (skip when they are for another)."""
    digest = hashlib.sha256(_fp32().read_bytes()).hexdigest()
    shipped = local_quant.shipped_ranges(digest)
    if shipped is None:
        pytest.skip(
            f"the installed rapidocr {local_ocr.rapidocr_version()} ships another recogniser "
            f"(sha256 {digest[:12]}): it is calibrated at run time; remake the shipped ranges "
            "with `python -m ocr_loaders._engines.local_quant`"
        )
    return shipped


def test_shipped_ranges_are_what_calibration_gives(tmp_path: Path) -> None:
    """The shipped file holds the calibration's own result for this recogniser (to float
    rounding: other CPUs may sum in another order)."""
    shipped = _shipped()
    calibrated = local_quant.calibrated_ranges(local_quant.prepared(_fp32(), tmp_path / "p"))
    assert sorted(shipped) == sorted(calibrated)
    for name, (lo, hi) in calibrated.items():
        assert shipped[name] == pytest.approx((lo, hi), rel=1e-4, abs=1e-6), name


def test_a_recogniser_without_shipped_ranges_is_calibrated(
    made: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another model file (another rapidocr) gets no shipped ranges and is calibrated, once;
    the model comes out as the one made before (with shipped ranges, or calibrated)."""
    assert local_quant.shipped_ranges("0" * 64) is None
    calibrate = local_quant.calibrated_ranges
    calls: list[object] = []

    def calibrated(model: onnx.ModelProto) -> dict[str, tuple[np.float32, np.float32]]:
        calls.append(model)
        return calibrate(model)

    monkeypatch.setattr(local_quant, "shipped_ranges", lambda digest: None)
    monkeypatch.setattr(local_quant, "calibrated_ranges", calibrated)
    assert local_quant.quantize(_fp32()) == made[1]
    assert len(calls) == 1


def test_calibration_lines_are_rendered_here() -> None:
    lines = local_quant.calibration_lines(8)
    assert len(lines) == 8
    assert all(c.dtype == np.uint8 and c.ndim == 3 and c.shape[2] == 3 for c in lines)
    assert all(c.shape[1] > c.shape[0] for c in lines)  # lines, not pages
    assert not math.isclose(float(lines[0].mean()), float(lines[1].mean()))


@pytest.mark.parametrize("vnni", [True, False])
def test_engine_uses_the_int8_recogniser_only_with_vnni(
    made: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch, vnni: bool
) -> None:
    asked: list[Path] = []

    def int8_model(fp32: Path) -> bytes:
        asked.append(fp32)
        return made[1]

    monkeypatch.setattr(local_ocr, "int8_supported", lambda: vnni)
    monkeypatch.setattr(local_ocr, "int8_model", int8_model)
    monkeypatch.setattr(local_ocr, "_models", None)  # restored after the test
    with local_ocr._lock:
        local_ocr._get_models()
    assert asked == ([_fp32()] if vnni else [])
    monkeypatch.setattr("ocr_loaders._engines.local.int8_supported", lambda: vnni)
    identity = LocalEngine().cache_identity
    assert (f"-int8-r{local_quant.RECIPE_VERSION}/" in identity) is vnni
