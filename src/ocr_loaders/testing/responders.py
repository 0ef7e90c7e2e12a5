"""What the fake model answers: a responder maps one OCR request to one raw grounded reply.

A responder is any callable ``(OCRRequest) -> OCRReply``. The server calls it while the request
holds a simulated GPU slot, from the request's own thread, so it may block (the local engine
does real OCR) and must be thread-safe. The built-ins cover tests and benchmarks:

* :func:`static_responder`: the same text every time;
* :func:`fixture_responder`: recorded raw outputs, cycled or mapped by request number;
* :func:`grid_responder`: a cheap deterministic page derived from the image (benchmarks);
* :func:`length_responder`: chosen requests run into a repetition loop (``finish_reason="length"``);
* :func:`local_responder`: real OCR with the embedded local engine.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._grounding import format_grounded
from .._model import Block
from .images import image_crc, image_ink


@dataclass(frozen=True, slots=True)
class OCRRequest:
    """One validated chat request, as a responder sees it."""

    image: bytes
    """The decoded image bytes exactly as uploaded."""
    width: int
    height: int
    mime: str
    """Type found in the bytes (``image/png``, ``image/jpeg``, ``image/webp``...)."""
    prompt: str
    """The text part(s), joined by newlines, minus a leading ``<image>\\n`` (which vLLM accepts)."""
    model: str
    body: Mapping[str, Any]
    """The parsed JSON body (image data URL included)."""
    seq: int
    """0-based number of this chat request since start (or the last ``reset_stats``)."""
    max_tokens: int = 0
    """The effective completion budget (``max_tokens``, or the rest of the context)."""

    @property
    def image_crc(self) -> int:
        """A CRC of the pixels (:func:`~.images.image_crc`): seeds answers and faults."""
        return image_crc(self.image)

    @property
    def image_ink(self) -> float:
        """How much of the image is ink (:func:`~.images.image_ink`): the text it holds."""
        return image_ink(self.image)


@dataclass(frozen=True, slots=True)
class OCRReply:
    """The raw model output for one request (with grounding tags)."""

    text: str
    finish_reason: str = "stop"
    """``stop``, or ``length`` to end the answer as if ``max_tokens`` ran out."""
    delay: float = 0.0
    """Extra seconds of simulated generation, spent while holding the slot."""


Responder = Callable[[OCRRequest], OCRReply]


def static_responder(text: str, *, finish_reason: str = "stop") -> Responder:
    """Answer every request with ``text``."""
    reply = OCRReply(text, finish_reason)

    def respond(_request: OCRRequest) -> OCRReply:
        return reply

    return respond


def load_fixtures(directory: str | Path) -> list[str]:
    """Raw outputs from the ``*.txt``, ``*.md`` and ``*.mmd`` files of a directory, by name."""
    root = Path(directory)
    files = sorted(
        p for p in root.iterdir() if p.is_file() and p.suffix.lower() in (".txt", ".md", ".mmd")
    )
    if not files:
        raise ValueError(f"no fixture files (*.txt, *.md, *.mmd) in {root}")
    return [p.read_text(encoding="utf-8") for p in files]


def fixture_responder(
    texts: Sequence[str] | Mapping[int, str], *, default: str | None = None
) -> Responder:
    """Answer with recorded raw outputs.

    A sequence is cycled by request number (request ``n`` gets ``texts[n % len(texts)]``); a
    mapping answers request ``n`` with ``texts[n]``, else ``default`` (``KeyError``, so HTTP
    500, when there is none).
    """
    if isinstance(texts, Mapping):
        table = dict(texts)

        def by_number(request: OCRRequest) -> OCRReply:
            if request.seq in table:
                return OCRReply(table[request.seq])
            if default is None:
                raise KeyError(f"no fixture for request {request.seq}")
            return OCRReply(default)

        return by_number
    items = list(texts)
    if not items:
        raise ValueError("fixture_responder needs at least one text")

    def cycle(request: OCRRequest) -> OCRReply:
        return OCRReply(items[request.seq % len(items)])

    return cycle


_WORDS = (
    "the",
    "model",
    "reads",
    "each",
    "page",
    "as",
    "an",
    "image",
    "and",
    "writes",
    "layout",
    "blocks",
    "with",
    "boxes",
    "in",
    "reading",
    "order",
    "tables",
    "keep",
    "their",
    "rows",
    "figures",
    "carry",
    "captions",
    "headings",
    "mark",
    "sections",
    "while",
    "paragraphs",
    "hold",
    "most",
    "of",
    "text",
    "vision",
    "tokens",
    "compress",
    "document",
    "into",
    "few",
    "hundred",
    "features",
    "decoder",
    "expands",
    "them",
    "back",
    "to",
    "markdown",
    "for",
    "retrieval",
    "citations",
    "point",
    "at",
    "regions",
    "on",
    "source",
    "pages",
)


def grid_page(
    width: int,
    height: int,
    mime: str,
    seed: int,
    *,
    paragraphs: int = 3,
    words: int = 60,
    table: bool = True,
) -> list[Block]:
    """Deterministic layout blocks for an image: a title naming the size, sections, a table.

    Boxes stack down the page in 0..999 units; ``seed`` varies the words.
    """
    rng = random.Random(seed)
    blocks: list[Block] = []
    rows = 2 + 2 * paragraphs + (2 if table else 0)
    step = 900 // rows
    y = 40

    def box(h_rows: int = 1) -> tuple[int, int, int, int]:
        nonlocal y
        top, y = y, min(999, y + step * h_rows)
        return (80, top, 920, max(top + 1, y - 8))

    blocks.append(Block("title", (box(),), f"# Synthetic page {width}x{height}", 0))
    kind = mime.split("/")[-1]
    for p in range(paragraphs):
        blocks.append(Block("sub_title", (box(),), f"## Section {p + 1}", len(blocks)))
        sentence = " ".join(rng.choice(_WORDS) for _ in range(words))
        text = (
            f"This {kind} image is {width} by {height} pixels (seed {seed & 0xFFFF:04x}, "
            f"paragraph {p + 1} of {paragraphs}). {sentence.capitalize()}."
        )
        blocks.append(Block("text", (box(),), text, len(blocks)))
    if table:
        cells = "".join(
            f"<tr><td>{r}</td><td>{rng.randint(0, 999)}</td><td>{rng.choice(_WORDS)}</td></tr>"
            for r in range(1, 4)
        )
        blocks.append(Block("table", (box(),), f"<table>{cells}</table>", len(blocks)))
        blocks.append(
            Block("table_caption", (box(),), f"Table 1: values for {width}x{height}.", len(blocks))
        )
    return blocks


def grid_responder(*, paragraphs: int = 3, words: int = 60, table: bool = True) -> Responder:
    """A cheap, deterministic grounded page derived from the image (for benchmarks).

    The same image always gives the same answer (words seeded by a CRC of its pixels); the title
    and text name the image's pixel size, so a test can check which image was answered.
    """

    def respond(request: OCRRequest) -> OCRReply:
        seed = request.image_crc
        blocks = grid_page(
            request.width,
            request.height,
            request.mime,
            seed,
            paragraphs=paragraphs,
            words=words,
            table=table,
        )
        return OCRReply(format_grounded(blocks))

    return respond


def loop_text(header: str = "", unit: str = "") -> str:
    """A start of page followed by one repeated line: what a repetition loop looks like."""
    head = header or (
        "<|ref|>title<|/ref|><|det|>[[80, 40, 920, 90]]<|/det|>\n# A page that loops\n\n"
    )
    line = unit or (
        "<|ref|>text<|/ref|><|det|>[[80, 120, 920, 140]]<|/det|>\n"
        "The same line comes back again and again.\n\n"
    )
    return head + line * 8


@dataclass
class _LengthChoice:
    requests: frozenset[int] = field(default_factory=frozenset)
    every: int = 0

    def __call__(self, seq: int) -> bool:
        if seq in self.requests:
            return True
        return self.every > 0 and (seq + 1) % self.every == 0


def length_responder(
    base: Responder | None = None,
    *,
    requests: Collection[int] = (),
    every: int = 0,
    text: str | None = None,
) -> Responder:
    """Wrap ``base`` so chosen requests end with ``finish_reason="length"``.

    Chosen: request numbers in ``requests``, and every ``every``-th request (``every=1``: all).
    A chosen request answers ``text`` (default: a repetition loop, :func:`loop_text`), which the
    server repeats and cuts at ``max_tokens``. ``base`` (default :func:`grid_responder`)
    answers the others.
    """
    inner = base or grid_responder()
    chosen = _LengthChoice(frozenset(requests), every)
    looping = text if text is not None else loop_text()

    def respond(request: OCRRequest) -> OCRReply:
        if chosen(request.seq):
            return OCRReply(looping, "length")
        return inner(request)

    return respond


def local_responder() -> Responder:
    """Real OCR with the embedded local engine (``ocr_loaders._engines.local``), imported lazily."""

    def respond(request: OCRRequest) -> OCRReply:
        from .._engines.local import ocr_image_grounded  # type: ignore[import-not-found,unused-ignore]

        text: str = ocr_image_grounded(request.image)
        return OCRReply(text)

    return respond


def responder_from_spec(spec: str) -> Responder:
    """``grid``, ``local``, ``static:TEXT``, ``fixtures:DIR`` or ``loop:N`` (every N-th loops),
    as ``python -m ocr_loaders.testing --responder`` takes it; ``ValueError`` if unknown."""
    kind, _, arg = spec.partition(":")
    if kind == "grid":
        return grid_responder()
    if kind == "local":
        return local_responder()
    if kind == "static":
        return static_responder(arg.replace("\\n", "\n"))
    if kind == "fixtures":
        return fixture_responder(load_fixtures(arg))
    if kind == "loop":
        return length_responder(every=int(arg or 1))
    raise ValueError(f"unknown responder {spec!r}")
