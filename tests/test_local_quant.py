"""The int8 recogniser of the local engine (``local_quant``): made once and then read from
its cache, made again when the cached copy is damaged, usable when the cache cannot be
written, reading a rendered line exactly, made from shipped activation ranges that are the
calibration's own, and, for CPUs without VNNI, with no product pair beyond 16 bits. No
timing assertions."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import onnx
import pymupdf
import pytest

from ocr_loaders._engines import local_calibration, local_ocr, local_quant
from ocr_loaders._engines.local import LocalEngine
from ocr_loaders._engines.local_onnx import OcrModels, crop_line


def _fp32() -> Path:
    return local_ocr.models_dir() / local_ocr.REC_MODEL


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A cache folder holding the int8 recogniser, quantized for real once per module."""
    folder = tmp_path_factory.mktemp("models")
    return folder, local_quant.int8_model(_fp32(), folder)


@pytest.fixture(scope="module")
def made_pair(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The int8 recogniser for CPUs without VNNI (activations on 128 codes)."""
    folder = tmp_path_factory.mktemp("models")
    return local_quant.int8_model(_fp32(), folder, levels=local_quant.PAIR_LEVELS)


def _counting(monkeypatch: pytest.MonkeyPatch, model: bytes) -> list[Path]:
    """Replace :func:`local_quant.quantize` by a recorder returning ``model``."""
    calls: list[Path] = []

    def quantize(fp32: Path, levels: int) -> bytes:
        assert levels == local_quant.FULL_LEVELS
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
    assert f".{local_quant.int8_recipe()}-" in path.name
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
@pytest.mark.parametrize("levels", ["full", "pair"])
def test_int8_recogniser_reads_a_rendered_line_exactly(
    made: tuple[Path, bytes], made_pair: bytes, text: str, levels: str
) -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=460, height=40)
    page.insert_text((12, 26), text, fontsize=11, fontname="helv")
    pix = page.get_pixmap(dpi=300, colorspace=pymupdf.csGRAY)
    gray = np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.width)
    img = np.ascontiguousarray(np.repeat(gray[:, :, np.newaxis], 3, axis=2))
    rec = made[1] if levels == "full" else made_pair
    models = OcrModels(local_ocr.models_dir() / local_ocr.DET_MODEL, rec)
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
    the model comes out as the one made before (with shipped ranges, or calibrated): the
    same graph and weights, its scales and codes to the float rounding of the CPU that
    calibrated (bit for bit on the CPU that made the shipped ranges)."""
    assert local_quant.shipped_ranges("0" * 64) is None
    calibrate = local_quant.calibrated_ranges
    calls: list[object] = []

    def calibrated(model: onnx.ModelProto) -> dict[str, tuple[np.float32, np.float32]]:
        calls.append(model)
        return calibrate(model)

    monkeypatch.setattr(local_quant, "shipped_ranges", lambda digest: None)
    monkeypatch.setattr(local_quant, "calibrated_ranges", calibrated)
    again, before = (
        onnx.load_from_string(local_quant.quantize(_fp32())),
        onnx.load_from_string(made[1]),
    )
    assert len(calls) == 1
    assert [n.op_type for n in again.graph.node] == [n.op_type for n in before.graph.node]
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in before.graph.initializer}
    assert sorted(i.name for i in again.graph.initializer) == sorted(inits)
    for init in again.graph.initializer:
        a, b = onnx.numpy_helper.to_array(init), inits[init.name]
        assert a.dtype == b.dtype and a.shape == b.shape, init.name
        close = np.isclose(a.astype(np.float64), b.astype(np.float64), rtol=1e-4, atol=1e-6)
        off = np.abs(a.astype(np.float64) - b.astype(np.float64))
        assert close.all() or (a.dtype.kind in "iu" and off.max() <= 1), init.name


def test_calibration_lines_are_rendered_here() -> None:
    lines = local_calibration.calibration_lines(8)
    assert len(lines) == 8
    assert all(c.dtype == np.uint8 and c.ndim == 3 and c.shape[2] == 3 for c in lines)
    assert all(c.shape[1] > c.shape[0] for c in lines)  # lines, not pages
    assert not math.isclose(float(lines[0].mean()), float(lines[1].mean()))


_EPYC_ZEN3 = "flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 vaes\n"
_XEON_SPR = "flags\t\t: fpu sse2 avx avx2 avx512f avx512_vnni amx_tile\n"


@pytest.mark.parametrize(
    ("machine", "cpuinfo", "levels"),
    [
        ("x86_64", _EPYC_ZEN3 * 2, local_quant.PAIR_LEVELS),
        ("x86_64", _XEON_SPR * 2, local_quant.FULL_LEVELS),
        ("x86_64", "flags\t\t: avx avx2 avx_vnni\n", local_quant.FULL_LEVELS),
        ("x86_64", "flags\t\t: sse2 sse4_2 avx\n", None),
        ("x86_64", "model name\t: Made-up avx2 avx512_vnni CPU\nflags\t\t: sse2\n", None),
        ("aarch64", "Features\t: fp asimd asimddp\n", None),
        ("aarch64", _XEON_SPR, None),
    ],
)
def test_int8_levels_follow_the_cpu_flags(machine: str, cpuinfo: str, levels: int | None) -> None:
    assert local_quant.levels_for(machine, cpuinfo) == levels


def _product_codes(model: bytes) -> list[tuple[str, int, int]]:
    """For each int8 weight product of a quantized recogniser: its node, the highest uint8 code
    its activation's calibrated range reaches, and its largest weight magnitude."""
    ranges = _shipped()
    proto = onnx.load_from_string(model)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    at = {"QLinearConv": (1, 2, 3), "QLinearMatMul": (1, 2, 3), "MatMulIntegerToFloat": (2, 4, 1)}
    found = []
    for node in proto.graph.node:
        if node.op_type not in at:
            continue
        s, z, w = (node.input[k] for k in at[node.op_type])
        if w not in inits or inits[w].dtype != np.int8:
            continue  # a product of two activations: onnxruntime's exact uint8 x uint8 path
        lo, hi = ranges[s.removesuffix("_scale")]
        scale, zero = float(inits[s]), int(inits[z])
        top = max(zero + round(float(lo) / scale), zero + round(float(hi) / scale))
        found.append((node.name, top, int(np.abs(inits[w].astype(np.int32)).max())))
    return found


def test_pair_recogniser_keeps_each_pair_of_products_within_16_bits(
    made: tuple[Path, bytes], made_pair: bytes
) -> None:
    """Without VNNI onnxruntime adds two uint8 x int8 products in a signed 16-bit register:
    in the copy for those CPUs every activation's calibrated range stays on codes 0 to 128,
    so a pair is at most 2 x 128 x 127 <= 32,767, with the weights still 8-bit. The copy for
    VNNI (sums in 32 bits) uses all 256 codes, which would not fit."""
    pair, full = _product_codes(made_pair), _product_codes(made[1])
    assert len(pair) == len(full) >= 60  # every convolution, the projection and the MatMuls
    # the zero point is a whole code, so a range's top may round half a code higher: 128
    assert all(top <= local_quant.PAIR_LEVELS + 1 for _, top, _ in pair)
    assert max(w for _, _, w in pair) == 127
    assert all(2 * top * w <= 32767 for _, top, w in pair)
    assert max(2 * top * w for _, top, w in full) > 32767


@pytest.mark.parametrize("levels", [local_quant.FULL_LEVELS, local_quant.PAIR_LEVELS, None])
def test_engine_uses_the_int8_recogniser_the_cpu_can_sum(
    made: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch, levels: int | None
) -> None:
    asked: list[tuple[Path, int]] = []

    def int8_model(fp32: Path, levels: int) -> bytes:
        asked.append((fp32, levels))
        return made[1]

    monkeypatch.setattr(local_ocr, "int8_levels", lambda: levels)
    monkeypatch.setattr(local_ocr, "int8_model", int8_model)
    monkeypatch.setattr(local_ocr, "_models", None)  # restored after the test
    with local_ocr._lock:
        local_ocr._get_models()
    assert asked == ([] if levels is None else [(_fp32(), levels)])
    monkeypatch.setattr("ocr_loaders._engines.local.int8_levels", lambda: levels)
    identity = LocalEngine().cache_identity
    recipes = [
        r for r in ("int8-r", "int8a127-r") if f"-{r}{local_quant.RECIPE_VERSION}/" in identity
    ]
    assert recipes == {None: [], 255: ["int8-r"], 127: ["int8a127-r"]}[levels]
