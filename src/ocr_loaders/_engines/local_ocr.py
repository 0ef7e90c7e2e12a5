"""CPU OCR for the local engine: PP-OCR ONNX models shipped in rapidocr's wheel.

The models are loaded from the ``rapidocr/models`` folder of the installed wheel by explicit
path, so no downloader is ever reached; a missing file is an error, not a download. On
x86-64 CPUs with AVX2 the recogniser is read as an int8 copy, made from its file on first use
and cached (:mod:`.local_quant`); the fp32 models are read from cached copies edited by
:mod:`.local_model_edits` (subnormal weights zeroed, the recogniser returning each step's
best class). They are run by
:mod:`.local_onnx`. One process-wide instance, loaded once, serves every caller under a lock
(onnxruntime already uses every core).

Orientation: the reader turns tall line crops a quarter turn counter-clockwise before reading
them, so a page scanned a quarter turn clockwise reads well as is, and one turned the other
way (or upside down) reads as confident-looking garbage. :func:`ocr_lines` therefore reads
the page once, and when the scores are not clearly good, reads a sample of the longest lines
turned half a turn; if that reads better, the whole page is read again turned half a turn.
Boxes always come back in the frame of the image given.
"""

from __future__ import annotations

import io
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._model import BBox
from .local_layout import TextLine
from .local_model_cache import derived_model
from .local_model_edits import fp32_recogniser, without_denormal_weights
from .local_onnx import (
    OcrModels,
    crop_line,
    gray_of,
    release_freed_memory,
    split_at_gaps,
)
from .local_quant import int8_levels, int8_model
from .local_weight import bold_lines

log = logging.getLogger(__name__)

DET_MODEL = "PP-OCRv6_det_small.onnx"
REC_MODEL = "PP-OCRv6_rec_small.onnx"
DENORMAL_RECIPE = "nodenormal-r1"
"""Names the cached copy of the detector with subnormal weights zeroed."""
FP32_REC_RECIPE = "nodenormal-best-r1"
"""Names the cached fp32 recogniser (:func:`.local_model_edits.fp32_recogniser`)."""

MAX_DECODE_SIDE = 4096
"""Images larger than this are scaled down on decoding, to bound memory."""
MIN_SCORE = 0.5
"""Lines the recogniser is less sure of are dropped (rapidocr's own default)."""
GOOD_SCORE = 0.9
"""Above this character-weighted mean score the page is taken as upright without a check."""
NARROW = 0.6
"""A standing piece thinner than this share of the page's lying lines is read as part of
a lying line (:func:`_reread_standing`)."""

_lock = threading.Lock()
_models: OcrModels | None = None


class OCRUnavailableError(RuntimeError):
    """rapidocr or its bundled models cannot be loaded."""


def models_dir() -> Path:
    """Folder of the ONNX models inside the installed rapidocr wheel (found without importing
    rapidocr, whose import pulls in its whole pipeline)."""
    import importlib.util

    spec = importlib.util.find_spec("rapidocr")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("rapidocr is not installed")
    return Path(next(iter(spec.submodule_search_locations))).resolve() / "models"


def rapidocr_version() -> str:
    """Installed rapidocr version (part of the engine's cache identity)."""
    try:
        from importlib.metadata import version

        return version("rapidocr")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        return "unknown"


def _get_models() -> OcrModels:
    """The process-wide models, loaded on first use (once per process). Caller holds
    ``_lock``."""
    global _models
    if _models is not None:
        return _models
    try:
        folder = models_dir()
    except ImportError as exc:  # pragma: no cover - rapidocr is a dependency
        raise OCRUnavailableError(f"rapidocr is not installed: {exc}") from exc
    paths = {name: folder / name for name in (DET_MODEL, REC_MODEL)}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise OCRUnavailableError(
            "rapidocr's bundled models are missing (" + ", ".join(missing) + "); reinstall "
            "rapidocr 3.x from its wheel. The local engine never downloads models."
        )
    try:
        det = derived_model(paths[DET_MODEL], DENORMAL_RECIPE, without_denormal_weights)
        levels = int8_levels()
        if levels is not None:
            rec = int8_model(paths[REC_MODEL], levels=levels)
        else:
            rec = derived_model(paths[REC_MODEL], FP32_REC_RECIPE, fp32_recogniser)
    except ImportError as exc:  # pragma: no cover - onnx is a dependency
        raise OCRUnavailableError(f"cannot prepare the OCR models: {exc}") from exc
    _models = OcrModels(det, rec)
    return _models


def warm_up() -> None:
    """Load the OCR models now (they load on first use otherwise)."""
    with _lock:
        _get_models()


# --- images ---------------------------------------------------------------------------------


def decode_image(data: bytes) -> tuple[np.ndarray, int, int]:
    """Encoded image bytes -> (array for OCR, original width, original height).

    The array is 2-D for grayscale and bilevel images (a third of the work of three equal
    channels), else BGR. The first frame of multi-frame files is used; transparency is laid
    on white. Images larger than ``MAX_DECODE_SIDE`` are scaled down; the caller maps boxes
    back with the original size.
    """
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.seek(0)
        width, height = im.size
        im.draft("RGB", (MAX_DECODE_SIDE, MAX_DECODE_SIDE))
        if im.mode in ("1", "L") and "transparency" not in im.info:
            gray = im.convert("L")
            if max(gray.size) > MAX_DECODE_SIDE:
                gray.thumbnail((MAX_DECODE_SIDE, MAX_DECODE_SIDE))
            return np.ascontiguousarray(np.asarray(gray)), width, height
        if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
            rgba = im.convert("RGBA")
            rgb = Image.new("RGB", rgba.size, (255, 255, 255))
            rgb.paste(rgba, mask=rgba.getchannel("A"))  # transparent -> white paper
        else:
            rgb = im.convert("RGB")
    if max(rgb.size) > MAX_DECODE_SIDE:
        rgb.thumbnail((MAX_DECODE_SIDE, MAX_DECODE_SIDE))
    arr = np.asarray(rgb)[:, :, ::-1]  # RGB -> BGR, as OpenCV-based rapidocr expects
    return np.ascontiguousarray(arr), width, height


# --- OCR ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Read:
    boxes: list[BBox]
    texts: list[str]
    scores: list[float]
    angles: list[int]
    """Clockwise angle of each line's writing in the image: 0, 90 (down) or 270 (up)."""

    def quality(self) -> float:
        """Character-weighted mean recognition score."""
        total = sum(max(len(t), 1) for t in self.texts)
        if not total:
            return 0.0
        return sum(max(len(t), 1) * s for t, s in zip(self.texts, self.scores, strict=True)) / total

    def vertical_share(self) -> float:
        """Share of line length in tall boxes (text running up or down the image)."""
        tall = wide = 0.0
        for (x0, y0, x1, y1), angle in zip(self.boxes, self.angles, strict=True):
            w, h = x1 - x0, y1 - y0
            if max(w, h) < 1.5 * min(w, h):
                continue  # too square to tell
            if angle:
                tall += h
            else:
                wide += w
        return tall / (tall + wide) if tall + wide else 0.0


def _run(models: OcrModels, img: np.ndarray) -> _Read:
    pieces = [p for d in models.detect(img) for p in split_at_gaps(img, d.quad)]
    if not pieces:
        return _Read([], [], [], [])
    crops = [crop_line(img, q) for q, _ in pieces]
    read = models.recognize(crops)
    angles = [
        90 if float(np.linalg.norm(q[0] - q[3])) >= 1.5 * float(np.linalg.norm(q[0] - q[1])) else 0
        for q, _ in pieces
    ]  # crop_line turns tall crops a quarter turn counter-clockwise before reading
    out = _Read([box for _, box in pieces], [t for t, _ in read], [s for _, s in read], angles)
    if angles.count(90) and out.vertical_share() <= 0.5:
        _reread_standing(models, crops, out)
    release_freed_memory()
    return out


def _reread_standing(models: OcrModels, crops: list[np.ndarray], read: _Read) -> None:
    """On a page of lying lines, read its standing pieces the other ways too (in place).

    ``crop_line`` turns a standing piece for text running down the page. One running up (an
    arXiv stamp in the margin, a spine label) then reads as garbage, so it is also read
    half-turned, and that reading is kept when it is confident and better. A piece thinner than
    :data:`NARROW` of the page's lying lines is a glyph or two of a lying line cut off by a
    gap (a section number, a digit in a table cell): read upright, it stays with its line.
    """
    lying = [b[3] - b[1] for b, a in zip(read.boxes, read.angles, strict=True) if not a]
    typical = float(np.median(lying)) if lying else 0.0
    again: list[np.ndarray] = []
    owners: list[tuple[int, int]] = []
    for i, angle in enumerate(read.angles):
        if not angle:
            continue
        box = read.boxes[i]
        if box[2] - box[0] < NARROW * typical:
            again.append(np.ascontiguousarray(np.rot90(crops[i], -1)))
            owners.append((i, 0))
        again.append(np.ascontiguousarray(np.rot90(crops[i], 2)))
        owners.append((i, 270))
    for (i, angle), (text, score) in zip(owners, models.recognize(again), strict=True):
        if angle == 0:
            better = score >= MIN_SCORE  # a narrow piece reads upright when it can
        else:  # running up: only a confident reading (specks read as anything turned)
            better = read.angles[i] != 0 and score >= GOOD_SCORE and score > read.scores[i]
        if better:
            read.texts[i], read.scores[i], read.angles[i] = text, score, angle


def _sample_scores(
    models: OcrModels, img: np.ndarray, read: _Read, flip: bool, k: int = 8
) -> float:
    """Mean score of the ``k`` longest lines read from plain crops, optionally half-turned."""
    order = sorted(
        range(len(read.boxes)),
        key=lambda i: (
            -max(read.boxes[i][2] - read.boxes[i][0], read.boxes[i][3] - read.boxes[i][1])
        ),
    )[:k]
    crops: list[np.ndarray] = []
    for i in order:
        x0, y0, x1, y1 = (round(v) for v in read.boxes[i])
        crop = img[max(0, y0) : max(y0 + 1, y1), max(0, x0) : max(x0 + 1, x1)]
        if crop.size == 0:
            continue
        if read.angles[i]:
            crop = np.rot90(crop, 1 if read.angles[i] == 90 else -1)
        if flip:
            crop = np.rot90(crop, 2)
        crops.append(np.ascontiguousarray(crop))
    scores = [s for _, s in models.recognize(crops)]
    return sum(scores) / len(scores) if scores else 0.0


def _turn_box(b: BBox, width: float, height: float) -> BBox:
    """A box of the half-turned image, back in the original frame."""
    return (width - b[2], height - b[3], width - b[0], height - b[1])


def ocr_lines(img: np.ndarray) -> tuple[list[TextLine], int]:
    """OCR a grayscale or BGR image: text lines (boxes in the image frame) and the page's
    text direction.

    The direction is the clockwise angle of the writing in the image (0, 90, 180 or 270).
    Lines scoring below ``MIN_SCORE`` are dropped; lines set in bold are told from their
    ink (:mod:`.local_weight`).
    """
    height, width = img.shape[:2]
    with _lock:
        models = _get_models()
        read = _run(models, img)
        if not read.texts:
            return [], 0
        vertical = read.vertical_share() > 0.5
        flipped = False
        if read.quality() < GOOD_SCORE:
            plain = _sample_scores(models, img, read, flip=False)
            turned = _sample_scores(models, img, read, flip=True)
            if turned > plain + 0.03:
                again = _run(models, np.ascontiguousarray(np.rot90(img, 2)))
                if again.quality() > read.quality():
                    read = _Read(
                        [_turn_box(b, width, height) for b in again.boxes],
                        again.texts,
                        again.scores,
                        again.angles,
                    )
                    flipped = True
    direction = (90 if vertical else 0) + (180 if flipped else 0)
    kept = [
        (box, text.strip(), angle)
        for box, text, score, angle in zip(
            read.boxes, read.texts, read.scores, read.angles, strict=True
        )
        if score >= MIN_SCORE and text.strip()
    ]
    bold = bold_lines(
        gray_of(img), [k[0] for k in kept], [k[1] for k in kept], [bool(k[2]) for k in kept]
    )
    lines: list[TextLine] = []
    for (box, text, angle), heavy in zip(kept, bold, strict=True):
        line_dir = (angle + (180 if flipped else 0)) % 360
        size = (box[2] - box[0]) if angle else (box[3] - box[1])
        lines.append(TextLine(box, text, size=max(size, 1.0), bold=heavy, direction=line_dir))
    return lines, direction % 360


def scale_lines(lines: list[TextLine], sx: float, sy: float) -> list[TextLine]:
    """Lines with boxes and sizes scaled (decoded-image pixels -> original pixels)."""
    if sx == 1.0 and sy == 1.0:
        return lines
    out = []
    for ln in lines:
        x0, y0, x1, y1 = ln.bbox
        size_scale = sx if ln.direction in (90, 270) else sy
        out.append(
            TextLine(
                (x0 * sx, y0 * sy, x1 * sx, y1 * sy),
                ln.text,
                ln.size * size_scale,
                ln.bold,
                ln.direction,
            )
        )
    return out
