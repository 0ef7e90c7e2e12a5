"""Models the local engine derives from rapidocr's files, made once and kept on disk.

Two kinds are derived: the int8 copy of the recogniser (:mod:`.local_quant`, seconds to
make) and the fp32 models edited by :mod:`.local_model_edits` (cheap themselves, but they
need the ``onnx`` package, whose import takes over a second). Each is kept in
``<user cache>/ocr-loaders/models``, named by its source file's SHA-256, the recipe and
onnxruntime's version, written atomically (racing processes each leave a whole file) with a
SHA-256 of its content, so a damaged copy is made again. When the folder cannot be written
the model is made in each process and used from memory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

_MAGIC = b"ocr-loaders int8 onnx\n"
"""Header of a cached file (its wording predates the second kind of derived model; kept so
cached int8 recognisers stay valid)."""


def model_cache_dir() -> Path:
    """Where derived models are kept: ``models`` beside the page cache's folders."""
    from .._cache import default_cache_dir

    return default_cache_dir() / "models"


def derived_model(
    source: Path, recipe: str, make: Callable[[Path], bytes], directory: Path | None = None
) -> bytes:
    """The serialized model ``make(source)``: from the cache when a whole copy is there, else
    made now and stored. ``recipe`` names what ``make`` does (bump it when that changes)."""
    import onnxruntime as ort

    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    folder = directory or model_cache_dir()
    path = folder / f"{source.stem}.{recipe}-ort{ort.__version__}-{digest}.bin"
    cached = _read(path)
    if cached is not None:
        return cached
    start = time.perf_counter()
    model = make(source)
    log.info("made %s of %s in %.1f s", recipe, source.name, time.perf_counter() - start)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".bin")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(_MAGIC + hashlib.sha256(model).digest() + model)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.warning(
            "cannot cache the OCR model %s in %s (%s); using it from memory", path.name, folder, exc
        )
    return model


def _read(path: Path) -> bytes | None:
    """A cached model's bytes, or ``None`` when it is missing, truncated or damaged."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head = len(_MAGIC) + 32
    if (
        data[: len(_MAGIC)] != _MAGIC
        or hashlib.sha256(data[head:]).digest() != data[head - 32 : head]
    ):
        log.warning("the cached OCR model %s is damaged; making it again", path)
        return None
    return data[head:]
