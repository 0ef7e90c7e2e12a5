"""Token accounting: DeepSeek-OCR's vision-token formula and tiktoken text counts.

Both vLLM and SGLang serve DeepSeek-OCR in its dynamic-resolution ("Gundam") mode: a padded
global view plus, when the page is larger than one tile on either side, a grid of tiles chosen
by aspect ratio. The page's cost in vision tokens depends only on its pixel size.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from hashlib import sha1
from pathlib import Path
from typing import Literal, Protocol

from ._errors import TokenizerUnavailableError

log = logging.getLogger(__name__)

Family = Literal["deepseek-ocr", "deepseek-ocr-2"]


@dataclass(frozen=True, slots=True)
class VisionSpec:
    """Tile size and token costs of one model family."""

    tile: int
    base_tokens: int
    """Global view: OCR-1 16x16 queries + one newline per row + a separator; OCR-2 16x16 + 1."""
    min_tiles: int = 2
    max_tiles: int = 6


SPECS: dict[Family, VisionSpec] = {
    "deepseek-ocr": VisionSpec(tile=640, base_tokens=273),
    "deepseek-ocr-2": VisionSpec(tile=768, base_tokens=257),
}


def model_family(model: str) -> Family:
    """Map a model name (``deepseek-ai/DeepSeek-OCR-2``, ``deepseek-ocr``, ...) to its family."""
    name = model.lower().rsplit("/", 1)[-1].replace("_", "-")
    compact = name.replace("-", "")
    if "ocr2" in compact or "ocrv2" in compact:
        return "deepseek-ocr-2"
    return "deepseek-ocr"


@functools.lru_cache(maxsize=16)
def candidate_grids(min_tiles: int = 2, max_tiles: int = 6) -> tuple[tuple[int, int], ...]:
    """All ``(w, h)`` tile grids with ``min_tiles <= w*h <= max_tiles``, sorted by ``w*h``.

    The order among grids of equal size is (w, h) ascending; it cannot change the result
    because no two grids of equal size have the same aspect ratio.
    """
    grids = {
        (w, h)
        for w in range(1, max_tiles + 1)
        for h in range(1, max_tiles + 1)
        if min_tiles <= w * h <= max_tiles
    }
    return tuple(sorted(grids, key=lambda g: (g[0] * g[1], g)))


def tile_grid(
    width_px: int, height_px: int, tile: int = 640, min_tiles: int = 2, max_tiles: int = 6
) -> tuple[int, int]:
    """The tile grid DeepSeek-OCR's preprocessor picks for an image, ``(1, 1)`` if untiled.

    Untiled when both sides fit in one tile. Otherwise the grid whose aspect ratio is closest
    to the image's; on an exact tie the later (larger) grid wins only if the image's area
    exceeds half the grid's area in pixels.
    """
    if width_px <= tile and height_px <= tile:
        return (1, 1)
    aspect = width_px / height_px
    area = width_px * height_px
    best_diff = float("inf")
    best = (1, 1)
    for w, h in candidate_grids(min_tiles, max_tiles):
        diff = abs(aspect - w / h)
        if diff < best_diff:
            best_diff, best = diff, (w, h)
        elif diff == best_diff and area > 0.5 * tile * tile * w * h:
            best = (w, h)
    return best


def vision_tokens(width_px: int, height_px: int, model: str = "deepseek-ocr") -> int:
    """Vision tokens DeepSeek-OCR spends on an image of this pixel size (vLLM/SGLang mode).

    ``model`` is a family (``deepseek-ocr``, ``deepseek-ocr-2``) or any model name mapping to
    one. A4 at 144 dpi (1190x1684) costs 903 tokens on OCR-1 and 1121 on OCR-2.
    """
    if width_px <= 0 or height_px <= 0:
        raise ValueError(f"image size must be positive, got {width_px}x{height_px}")
    family = model_family(model)
    spec = SPECS[family]
    w, h = tile_grid(width_px, height_px, spec.tile, spec.min_tiles, spec.max_tiles)
    if (w, h) == (1, 1):
        return spec.base_tokens
    if family == "deepseek-ocr":
        # 10x10 queries per 640 tile, one newline token per row of the stitched grid.
        return spec.base_tokens + (10 * w + 1) * 10 * h
    # OCR-2: 12x12 queries per 768 tile, no newline tokens.
    return spec.base_tokens + 144 * w * h


# --- text tokens (tiktoken cl100k_base, loaded without a download) -------------------------

_CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
_env_lock = threading.Lock()


class TextEncoder(Protocol):
    """What the project needs from a tokenizer."""

    def encode_ordinary(self, text: str) -> list[int]: ...
    def decode(self, tokens: list[int]) -> str: ...


def _table_dirs() -> list[Path]:
    """Directories that may hold tiktoken's cached cl100k table, in the order tried."""
    dirs: list[Path] = []
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if os.environ.get(var):
            dirs.append(Path(os.environ[var]))
    dirs.append(Path(tempfile.gettempdir()) / "data-gym-cache")
    try:  # found without importing llama_index.core, which takes seconds
        spec = importlib.util.find_spec("llama_index.core")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            dirs.append(Path(location) / "_static" / "tiktoken_cache")
    return dirs


@functools.lru_cache(maxsize=1)
def text_encoder() -> TextEncoder:
    """tiktoken's ``cl100k_base``, from a local table when one exists.

    tiktoken names its cached tables by the sha1 of their URL; the first directory of
    :func:`_table_dirs` holding that file is handed to tiktoken, which then verifies the
    table's hash and reads it with no network. Only when none exists does tiktoken try its own
    download. Raises :class:`TokenizerUnavailableError` saying how to fix it when none works.
    """
    import tiktoken

    key = sha1(_CL100K_URL.encode()).hexdigest()  # noqa: S324 - tiktoken's own cache naming
    for directory in _table_dirs():
        if (directory / key).is_file():
            with _env_lock:
                saved = os.environ.get("TIKTOKEN_CACHE_DIR")
                os.environ["TIKTOKEN_CACHE_DIR"] = str(directory)
                try:
                    return tiktoken.get_encoding("cl100k_base")
                except Exception as exc:  # a damaged table: try the next place
                    log.warning("tiktoken table in %s unusable: %s", directory, exc)
                finally:
                    if saved is None:
                        del os.environ["TIKTOKEN_CACHE_DIR"]
                    else:
                        os.environ["TIKTOKEN_CACHE_DIR"] = saved
    try:
        return tiktoken.get_encoding("cl100k_base")
    except Exception as exc:
        raise TokenizerUnavailableError(
            "tiktoken's cl100k_base table is not available offline and could not be "
            f"downloaded ({type(exc).__name__}). Install the LlamaIndex extra "
            "(pip install 'ocr-loaders[llamaindex]', which ships a copy), or put the table in "
            "TIKTOKEN_CACHE_DIR."
        ) from exc


def count_tokens(text: str) -> int:
    """cl100k_base tokens in ``text`` (special-token text counted as ordinary text)."""
    if not text:
        return 0
    return len(text_encoder().encode_ordinary(text))
