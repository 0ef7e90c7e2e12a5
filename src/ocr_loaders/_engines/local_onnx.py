"""PP-OCR text detection and recognition run directly on onnxruntime.

The ONNX models are the ones inside rapidocr's wheel (loaded by path, never downloaded); the
pre- and post-processing is done here rather than by rapidocr's pipeline, which lets the
engine choose what decides speed and memory on a small CPU (measured on a 2-core machine, see
docs/local-engine.md):

* the detector sees the page scaled to at most ``DET_MAX_SIDE`` pixels, and its output boxes
  are mapped straight back onto the full-resolution image, from which the line crops are cut
  (sharper crops than cutting them from the scaled page);
* recognition reads one crop per call (batches of mixed widths spend their time on padding),
  with one caller thread per core on a single-threaded session: onnxruntime's own threads
  split each small convolution between cores and lose a third of the time waking each other;
  independent crops on separate cores do not (the session is shared, so the model is in
  memory once);
* onnxruntime's worker threads do not spin while waiting (spinning burns the other user's
  core on a shared machine and bought nothing here);
* the detector runs in onnxruntime's memory arena, which hands its memory back at the end of
  each run (without an arena every activation was a fresh mapping from the system: half a
  second of system time per Letter page); near-square pages run in a second session, in the
  arena too, without onnxruntime's blocked (NCHWc) layout, in which their activations grew
  past 300 MB on an AVX-512 CPU. The recogniser keeps its arena (its tensors are a few MB,
  reused from crop to crop).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .._model import BBox
from .local_detect import Detection, db_boxes
from .local_model_edits import BEST_CLASS, BEST_PROB

DET_MAX_SIDE = 1280
"""Longest side of the image the detector sees (PP-OCR's own default is 2000; at 1280
a dense 300 dpi Letter page loses no line and detection takes a third of the time)."""
DET_MIN_SIDE = 736
"""Small images are scaled up so their shorter side has this many pixels (PP-OCR's rule)."""
DET_MAX_RATIO = 8.0
"""Wider images (a single line) are padded below to this width : height ratio."""
GAP_SPLIT = 1.0
"""A line box is cut at whitespace wider than this many times its ink height."""
DET_BLOCKED_MAX_PIXELS = 1280 * 1088
"""Detector inputs up to this many pixels (every common paper shape at ``DET_MAX_SIDE``) run
in onnxruntime's blocked (NCHWc) layout, the faster one; its working memory in the arena is
185 to 210 MB there. Larger (near-square) inputs run without that layout: in it a 1280 x 1280
input took 320 to 330 MB on an AVX-512 CPU (its blocks are 16 channels wide, 8 with AVX2),
without it 230 to 240 MB on every CPU measured (docs/local-engine.md, "Near-square pages")."""
REC_HEIGHT = 48
REC_MIN_WIDTH = 320
"""Shortest input width; a crop narrower than this is padded."""
REC_WORKERS = max(1, min(4, os.cpu_count() or 1))
"""Threads reading crops at once, each on one core."""


def release_freed_memory() -> None:
    """Hand freed heap memory back to the system (glibc only; elsewhere nothing happens).

    The detector's activations are a few hundred MB, freed after each page; without this,
    glibc keeps them per thread and a second page or thread can push the peak higher.
    """
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Any = None

MMAP_THRESHOLD = 16 * 2**20
"""Allocations of this size and more get their own mapping from glibc, returned when freed."""


def map_large_allocations() -> None:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD` (process-wide; glibc only).

    glibc maps large blocks and unmaps them when freed, but after freeing one it raises its
    threshold to that block's size, so from the second page on the detector's memory (blocks
    of tens of MB) came from the heap and stayed there: the peak of one scanned page in a
    process rose from ~540 MB to 610-660 MB from its second page. With the threshold fixed
    they are mapped and returned every page (docs/local-engine.md). The detector's arena
    asks for a few such blocks per page instead of one per activation, so the fresh mappings
    cost about 0.15 s of system time per Letter page rather than 0.5-0.7 s. Smaller blocks,
    the recogniser's included, still come from the heap.
    """
    global _mapped
    if _mapped:
        return
    _mapped = True
    try:
        import ctypes

        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter number for the mmap threshold (``malloc.h``)."""
_mapped = False


def _session(model: Path | bytes, threads: int, blocked: bool = True) -> Any:
    """An onnxruntime session on the CPU, in its memory arena, for a model file or a
    serialized model; ``blocked=False`` leaves out the rewrite of convolutions into
    onnxruntime's blocked (NCHWc) layout."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    opts.enable_mem_pattern = False
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(
        source,
        sess_options=opts,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=[] if blocked else ["NchwcTransformer"],
    )


def _shrinking_run() -> Any:
    """Run options under which the arena hands its free memory back to the system when the
    run ends (so nothing is held between pages)."""
    import onnxruntime as ort

    opts = ort.RunOptions()
    opts.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return opts


def gray_of(img: np.ndarray) -> np.ndarray:
    """A grayscale view of a page or crop: itself when it is 2-D, else the darkest of its
    channels per pixel (ink in any colour is dark there)."""
    if img.ndim == 2:
        return img
    darkest: np.ndarray = np.minimum(np.minimum(img[:, :, 0], img[:, :, 1]), img[:, :, 2])
    return darkest


class OcrModels:
    """A detection and a recognition session (not thread-safe: callers serialise). Each
    model is a file or a serialized model; the recogniser must have the outputs of
    :func:`.local_model_edits.best_class_outputs` (the int8 copy of :mod:`.local_quant`, or
    :func:`.local_model_edits.fp32_recogniser`)."""

    def __init__(self, det: Path | bytes, rec: Path | bytes) -> None:
        map_large_allocations()
        self._det = _session(det, threads=REC_WORKERS)
        self._det_square = _session(det, threads=REC_WORKERS, blocked=False)
        self._det_run = _shrinking_run()
        self._rec = _session(rec, threads=1)
        outputs = [o.name for o in self._rec.get_outputs()]
        if outputs != [BEST_PROB, BEST_CLASS]:
            raise ValueError(
                f"the recogniser's outputs are {outputs}, not [{BEST_PROB!r}, {BEST_CLASS!r}]:"
                " prepare it with local_model_edits.best_class_outputs"
            )
        self._pool = ThreadPoolExecutor(REC_WORKERS, thread_name_prefix="ocr-rec")
        meta = self._rec.get_modelmeta().custom_metadata_map
        chars = str(meta.get("character", "")).splitlines()
        if not chars:
            raise RuntimeError("the recognition model carries no character list")
        self._charset = ["", *chars, " "]  # CTC blank first, space last (PP-OCR's layout)

    # --- detection ------------------------------------------------------------------------

    def detect(self, img: np.ndarray, max_side: int = DET_MAX_SIDE) -> list[Detection]:
        """Text line quadrilaterals of a grayscale or BGR image, in its pixel frame."""
        import cv2

        h, w = img.shape[:2]
        if w > DET_MAX_RATIO * h:  # a single wide line: pad it below, as PP-OCR does
            pad = np.full((math.ceil(w / DET_MAX_RATIO) - h, *img.shape[1:]), 255, img.dtype)
            img = np.concatenate([img, pad])
        ih, iw = img.shape[:2]
        scale = min(1.0, max_side / max(ih, iw))
        if min(ih, iw) * scale < DET_MIN_SIDE:
            scale = min(DET_MIN_SIDE / min(ih, iw), 2 * max_side / max(ih, iw))
        rh = max(32, round(ih * scale / 32) * 32)
        rw = max(32, round(iw * scale / 32) * 32)
        small = cv2.resize(img, (rw, rh), interpolation=cv2.INTER_AREA if scale < 1 else 1)
        x = small.astype(np.float32)
        del small
        x *= 2.0 / 255.0
        x -= 1.0
        if x.ndim == 2:  # grayscale: the same plane in the three channels the model reads
            x = np.ascontiguousarray(np.broadcast_to(x, (1, 3, *x.shape)))
        else:
            x = np.ascontiguousarray(x.transpose(2, 0, 1)[np.newaxis])
        pred = self._det_map(x)
        del x
        found = db_boxes(pred, (iw / rw, ih / rh), (w, h))
        del pred
        release_freed_memory()
        return found

    def _det_map(self, x: np.ndarray) -> np.ndarray:
        """The detector's text probability map for input ``x`` (1 x 3 x h x w), in the
        blocked-layout session up to ``DET_BLOCKED_MAX_PIXELS``, else in the other.

        The map is written into an array of ours: with no output of the run left in the arena,
        the arena hands all of its memory back when the run ends.
        """
        large = x.shape[2] * x.shape[3] > DET_BLOCKED_MAX_PIXELS
        session = self._det_square if large else self._det
        pred = np.empty((1, 1, *x.shape[2:]), np.float32)
        binding = session.io_binding()
        binding.bind_cpu_input(session.get_inputs()[0].name, x)
        binding.bind_output(
            session.get_outputs()[0].name, "cpu", 0, np.float32, pred.shape, pred.ctypes.data
        )
        session.run_with_iobinding(binding, self._det_run)
        mapped: np.ndarray = pred[0, 0]
        return mapped

    # --- recognition ----------------------------------------------------------------------

    def recognize(self, crops: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """Text and mean character confidence of each upright line crop (grayscale or BGR).

        ``REC_WORKERS`` threads take crops from one queue, widest first, so they finish
        together; each result goes to its crop's place.
        """
        out: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        todo = sorted(
            range(len(crops)), key=lambda i: -crops[i].shape[1] / max(crops[i].shape[0], 1)
        )
        name = self._rec.get_inputs()[0].name
        lock = threading.Lock()

        def work() -> None:
            while True:
                with lock:
                    if not todo:
                        return
                    i = todo.pop(0)
                prob, cls = self._rec.run(None, {name: rec_input(crops[i])})
                out[i] = self._decode(prob.reshape(-1), cls.reshape(-1))

        for done in [self._pool.submit(work) for _ in range(REC_WORKERS)]:
            done.result()
        return out

    def _decode(self, best: np.ndarray, idx: np.ndarray) -> tuple[str, float]:
        """Greedy CTC from each step's best class and its probability: repeats collapsed,
        blanks dropped; the confidence is the mean probability of the characters kept."""
        keep = idx != 0
        keep[1:] &= idx[1:] != idx[:-1]
        chars = [self._charset[i] if i < len(self._charset) else "" for i in idx[keep]]
        conf = float(best[keep].mean()) if keep.any() else 0.0
        return "".join(chars), conf


def rec_input(crop: np.ndarray) -> np.ndarray:
    """The recogniser's input for one upright line crop (grayscale or BGR):
    (1, 3, ``REC_HEIGHT``, W)."""
    width = max(REC_MIN_WIDTH, math.ceil(REC_HEIGHT * crop.shape[1] / max(crop.shape[0], 1)))
    return _rec_input(crop, width)[np.newaxis]


def _rec_input(crop: np.ndarray, width: int) -> np.ndarray:
    """A crop (grayscale or BGR) scaled to ``REC_HEIGHT`` (aspect kept, at most ``width``),
    normalised to -1..1 and padded with zeros on the right: (3, REC_HEIGHT, width) float32."""
    import cv2

    h, w = crop.shape[:2]
    rw = max(1, min(width, math.ceil(REC_HEIGHT * w / max(h, 1))))
    resized = cv2.resize(crop, (rw, REC_HEIGHT), interpolation=cv2.INTER_LINEAR)
    planes = resized[np.newaxis] if resized.ndim == 2 else resized.transpose(2, 0, 1)
    out = np.zeros((3, REC_HEIGHT, width), dtype=np.float32)
    out[:, :, :rw] = planes.astype(np.float32) * (2.0 / 255.0) - 1.0
    return out


def crop_line(img: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The line inside ``quad`` cut out and straightened; a tall crop (text running down
    the page) is turned a quarter turn counter-clockwise so it reads left to right."""
    import cv2

    q = quad.astype(np.float32)
    cw = round(max(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[2] - q[3])))
    ch = round(max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2])))
    cw, ch = max(cw, 1), max(ch, 1)
    x0, y0 = np.floor(q.min(axis=0)).astype(int)
    x1, y1 = np.ceil(q.max(axis=0)).astype(int)
    if abs(q[0, 1] - q[1, 1]) < 1.0 and abs(q[0, 0] - q[3, 0]) < 1.0:
        crop = img[max(0, y0) : max(y0 + 1, y1), max(0, x0) : max(x0 + 1, x1)]  # axis-aligned
    else:
        dst = np.array([[0, 0], [cw, 0], [cw, ch], [0, ch]], dtype=np.float32)
        m = cv2.getPerspectiveTransform(q, dst)
        crop = cv2.warpPerspective(
            img, m, (cw, ch), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC
        )
    if crop.shape[0] >= 1.5 * crop.shape[1]:
        crop = np.rot90(crop)
    return _clear_edges(np.ascontiguousarray(crop))


def _clear_edges(crop: np.ndarray) -> np.ndarray:
    """Whiten ink cut off at the top or bottom edge of an upright line crop: descenders or
    accents of the neighbouring lines, which the recogniser reads as accents or extra marks.

    Only a thin run of inked rows touching the edge, separated from the line by blank rows,
    is cleared; the line's own accents sit inside the padding and stay.
    """
    gray = gray_of(crop)
    lo, hi = int(gray.min()), int(gray.max())
    if hi - lo < 48 or gray.shape[0] < 8:
        return crop
    rows: np.ndarray = np.asarray((gray < (lo + hi) / 2).any(axis=1))
    if rows.sum() < 4:
        return crop
    out = crop
    for edge in (rows, rows[::-1]):
        run = int(np.argmin(edge)) if not edge.all() else len(edge)
        if run == 0 or run > 0.2 * len(edge):
            continue
        blank = int(np.argmax(edge[run:])) if edge[run:].any() else 0
        if blank < 1:
            continue
        if out is crop:
            out = crop.copy()
        if edge is rows:
            out[:run] = 255
        else:
            out[len(edge) - run :] = 255
    return out


def quad_box(quad: np.ndarray) -> BBox:
    """The axis-aligned box around a quadrilateral."""
    xs, ys = quad[:, 0], quad[:, 1]
    return (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))


def split_at_gaps(img: np.ndarray, quad: np.ndarray) -> list[tuple[np.ndarray, BBox]]:
    """A line box cut where its ink stops for more than ``GAP_SPLIT`` x its ink height, as
    (quadrilateral to read, box trimmed to the ink along the line) pairs.

    The detector can join lines across a narrow column gutter or between table cells into
    one box; read as one line, two columns interleave. Word spaces are a third of that wide,
    so prose is never cut. The trimmed boxes show the real whitespace between columns (the
    detector's boxes are padded around the glyphs, which can close a narrow gutter). Only
    axis-aligned boxes at least twice as long as thick are looked at, lying or standing (a
    page turned a quarter turn).
    """
    x0, y0 = (int(v) for v in np.floor(quad.min(axis=0)))
    x1, y1 = (int(v) for v in np.ceil(quad.max(axis=0)))
    w, h = x1 - x0, y1 - y0
    whole = [(quad, quad_box(quad))]
    standing = h >= 2 * w
    thick = w if standing else h
    skew = (
        abs(float(quad[1, 1] - quad[0, 1])) if not standing else abs(float(quad[3, 0] - quad[0, 0]))
    )
    if thick < 4 or (not standing and w < 2 * h) or skew > 0.1 * thick:
        return whole
    region = img[max(0, y0) : y1, max(0, x0) : x1]
    gray = gray_of(region)
    if standing:
        gray = gray.T  # along the line = axis 1 in both cases
    lo, hi = int(gray.min()), int(gray.max())
    if hi - lo < 48:
        return whole
    ink = gray < (lo + hi) / 2
    ink_h = int(ink.any(axis=1).sum())
    runs = np.flatnonzero(ink.any(axis=0))
    if ink_h < 4 or len(runs) < 2:
        return whole
    cuts = np.flatnonzero(np.diff(runs) - 1 >= max(4.0, GAP_SPLIT * ink_h))
    pad = 0 if not len(cuts) else max(2, round(0.3 * ink_h))
    starts = [int(runs[0]), *(int(runs[k + 1]) for k in cuts)]
    ends = [*(int(runs[k]) for k in cuts), int(runs[-1])]
    origin, limit = (y0, img.shape[0] - 1) if standing else (x0, img.shape[1] - 1)
    out = []
    for a, b in zip(starts, ends, strict=True):
        lo_t, hi_t = float(origin + a), float(origin + b + 1)
        if standing:
            tight: BBox = (float(x0), lo_t, float(x1), hi_t)
        else:
            tight = (lo_t, float(y0), hi_t, float(y1))
        if not len(cuts):
            return [(quad, tight)]
        lo_p, hi_p = max(0.0, lo_t - pad), min(float(limit), hi_t + pad)
        if standing:
            piece = _rect(float(x0), lo_p, float(x1), hi_p)
        else:
            piece = _rect(lo_p, float(y0), hi_p, float(y1))
        out.append((piece, tight))
    return out


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
