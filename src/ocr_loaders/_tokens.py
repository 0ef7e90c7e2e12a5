"""Token accounting: DeepSeek-OCR's vision-token formula and text-token counts (tiktoken
cl100k_base from a local table, else a documented estimate).

Both vLLM and SGLang serve DeepSeek-OCR in its dynamic-resolution ("Gundam") mode: a padded
global view plus, when the page is larger than one tile on either side, a grid of tiles chosen
by aspect ratio. The page's cost in vision tokens depends only on its pixel size.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from hashlib import sha1, sha256
from pathlib import Path
from typing import Literal, Protocol

from ._defaults import FREE_PROMPT, GROUNDING_PROMPT

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


# --- text tokens (tiktoken cl100k_base from a local table, else an estimate) ----------------

_CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
_CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
"""tiktoken's own expected hash of the table: a file that does not match is never handed to
tiktoken, which would delete it and try to download a new one."""
_env_lock = threading.Lock()

TextTokensMethod = Literal["cl100k", "estimate"]


class TextEncoder(Protocol):
    """What the project needs from a tokenizer."""

    def encode_ordinary(self, text: str) -> list[int]: ...
    def decode(self, tokens: list[int]) -> str: ...


def _table_dirs() -> list[Path]:
    """Directories that may hold tiktoken's cached cl100k table, in the order tried: tiktoken's
    own cache (``TIKTOKEN_CACHE_DIR``, else ``DATA_GYM_CACHE_DIR``, else the temp directory's
    ``data-gym-cache``, as tiktoken itself decides), then llama-index-core's shipped copy."""
    dirs: list[Path] = []
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            if os.environ[var]:
                dirs.append(Path(os.environ[var]))
            break
    else:
        dirs.append(Path(tempfile.gettempdir()) / "data-gym-cache")
    try:  # found without importing llama_index.core, which takes seconds
        spec = importlib.util.find_spec("llama_index.core")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            dirs.append(Path(location) / "_static" / "tiktoken_cache")
    return dirs


def _valid_table(directory: Path) -> bool:
    """``directory`` holds an intact cl100k table (tiktoken's file name and hash)."""
    key = sha1(_CL100K_URL.encode()).hexdigest()  # noqa: S324 - tiktoken's own cache naming
    try:
        data = (directory / key).read_bytes()
    except OSError:
        return False
    return sha256(data).hexdigest() == _CL100K_SHA256


def _load_cl100k() -> TextEncoder | None:
    """tiktoken's ``cl100k_base`` from the first local table found, or ``None``. Never
    downloads: tiktoken is only called with a cache directory holding an intact table."""
    import tiktoken

    for directory in _table_dirs():
        if not _valid_table(directory):
            continue
        with _env_lock:
            saved = os.environ.get("TIKTOKEN_CACHE_DIR")
            os.environ["TIKTOKEN_CACHE_DIR"] = str(directory)
            try:
                return tiktoken.get_encoding("cl100k_base")
            except Exception as exc:  # an unreadable table: try the next place
                log.warning("tiktoken table in %s unusable: %s", directory, exc)
            finally:
                if saved is None:
                    del os.environ["TIKTOKEN_CACHE_DIR"]
                else:
                    os.environ["TIKTOKEN_CACHE_DIR"] = saved
    return None


_PIECES = re.compile(
    r"'(?:[sdmtSDMT]|ll|ve|re)|[^\S\r\n]?[^\W\d_]+|\d{1,3}| ?(?:[^\w\s]|_)+[\r\n]*"
    r"|\s*[\r\n]|\s+(?!\S)|\s",
    re.DOTALL,
)
"""cl100k's pre-tokenizer, approximated with ``re``: contractions, words with one leading
space, up to three digits, punctuation runs, whitespace."""
_ASCII_LETTERS_PER_TOKEN = 6
_SYMBOLS_PER_TOKEN = 2


class EstimateEncoder:
    """A tokenizer-free stand-in for cl100k (the documented estimate of docs/stats.md).

    Text is cut like cl100k's pre-tokenizer, then a word counts one token per 6 ASCII letters
    and one per other letter (CJK, Hangul, ...), punctuation one per 2 characters, up to three
    digits or a whitespace run one. On English prose and the project's docs it comes within
    about 10 % of cl100k, slightly over; it undercounts Korean. Every "token" is a run of whole
    characters packed into its id, so ``decode`` gives back the exact text, and there are never
    more tokens than characters (nor than UTF-8 bytes).
    """

    def encode_ordinary(self, text: str) -> list[int]:
        return [_pack(run) for piece in _PIECES.findall(text) for run in _runs(piece)]

    def decode(self, tokens: list[int]) -> str:
        return "".join(_unpack(t) for t in tokens)


def _runs(piece: str) -> list[str]:
    """The "tokens" of one pre-tokenized piece (see :class:`EstimateEncoder`)."""
    body = piece.lstrip()
    if not body or body[0].isdigit() or body[0] == "'":
        return [piece]
    lead = piece[: len(piece) - len(body)]
    if body[0].isalpha():
        runs: list[str] = []
        for m in re.finditer(r"[A-Za-z]+|[^A-Za-z]", body):
            word = m.group()
            step = _ASCII_LETTERS_PER_TOKEN if word.isascii() else 1
            runs.extend(word[i : i + step] for i in range(0, len(word), step))
    else:
        runs = [body[i : i + _SYMBOLS_PER_TOKEN] for i in range(0, len(body), _SYMBOLS_PER_TOKEN)]
    runs[0] = lead + runs[0]
    return runs


def _pack(run: str) -> int:
    return int.from_bytes(b"\x01" + run.encode("utf-8"), "big")


def _unpack(token: int) -> str:
    raw = token.to_bytes((token.bit_length() + 7) // 8, "big")
    return raw[1:].decode("utf-8", errors="replace")


@functools.lru_cache(maxsize=1)
def _encoder() -> tuple[TextEncoder, TextTokensMethod]:
    found = _load_cl100k()
    if found is not None:
        return found, "cl100k"
    log.warning(
        "ocr_loaders: no tiktoken cl100k_base table found offline; text-token counts are "
        "estimates (stats say text_tokens_method=estimate). For exact counts put the table in "
        "TIKTOKEN_CACHE_DIR or install the llamaindex extra (docs/stats.md)."
    )
    return EstimateEncoder(), "estimate"


def text_encoder() -> TextEncoder:
    """tiktoken's ``cl100k_base`` from a local table, else :class:`EstimateEncoder`.

    Tables are looked up where tiktoken caches them and in llama-index-core's shipped copy
    (:func:`_table_dirs`); nothing is downloaded, so an offline machine never waits on the
    network. Which one is in use is :func:`text_tokens_method`; one warning says so when it is
    the estimate.
    """
    return _encoder()[0]


def text_tokens_method() -> TextTokensMethod:
    """``cl100k`` (exact, tiktoken) or ``estimate`` (:class:`EstimateEncoder`)."""
    return _encoder()[1]


def count_tokens(text: str) -> int:
    """cl100k_base tokens in ``text`` (special-token text counted as ordinary text), or their
    estimate when no table is available (:func:`text_tokens_method`)."""
    if not text:
        return 0
    return len(text_encoder().encode_ordinary(text))


SPECIAL_TAGS = ("<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>", "<|grounding|>")
"""DeepSeek-OCR's tags; its tokenizer holds each as one special token."""

DEEPSEEK_PROMPT_PIECES: dict[str, tuple[str, ...]] = {
    GROUNDING_PROMPT: (
        "<|grounding|>",
        *("Convert", "Ġthe", "Ġdocument", "Ġto", "Ġmark", "down", "."),
    ),
    FREE_PROMPT: ("Free", "ĠOCR", "."),
}
"""The recipes' prompts as DeepSeek-OCR's own tokenizer splits them (measured with the model's
``tokenizer.json``; a real vLLM 0.26 server counted the same: BOS + 903 image tokens + the
``\\n`` after the image + 8 = 913 for an A4 page with the grounding prompt)."""


def prompt_pieces(prompt: str) -> tuple[str, ...]:
    """A prompt's token pieces: exact for the recipes' prompts, else cl100k pieces with
    DeepSeek's special tags as one token each (close, not exact)."""
    known = DEEPSEEK_PROMPT_PIECES.get(prompt)
    if known is not None:
        return known
    pieces: list[str] = []
    encoder = text_encoder()
    rest = prompt
    while rest:
        at, tag = min(((rest.find(t), t) for t in SPECIAL_TAGS if t in rest), default=(-1, ""))
        text, rest = (rest, "") if at < 0 else (rest[:at], rest[at + len(tag) :])
        if text:
            pieces.extend(encoder.decode([t]) for t in encoder.encode_ordinary(text))
        if tag:
            pieces.append(tag)
    return tuple(pieces)


@functools.lru_cache(maxsize=16)
def prompt_text_tokens(prompt: str, *, after_image: bool = True) -> int:
    """Tokens of a request's text part as DeepSeek-OCR's tokenizer counts them, without BOS:
    the ``\\n`` after the image (when there is one) and the prompt."""
    return len(prompt_pieces(prompt)) + (1 if after_image else 0)
