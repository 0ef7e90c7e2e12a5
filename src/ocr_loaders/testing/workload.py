"""A realistic workload for the fake server, and how busy its slots were: for benchmarks and
tests of saturation under variance.

Real DeepSeek-OCR pages differ: output length runs from a few hundred tokens to the whole
context, so service time (``service_time + time_per_token x output tokens`` on the fake server)
varies by 10x, and a share of answers loop until ``max_tokens`` (``finish_reason="length"``),
which the client retries. :func:`workload_responder` answers like that, deterministically:
a page's length depends on its image, whether an answer loops on the image and the try (the
prompt and repetition guard), so a retried page usually stops looping, as with the real model.

:func:`saturation` reads the server's own records: the best possible time is the slots' total
busy time divided by the slot count (or the longest request, if longer), and the share is that
over the span from the first request's arrival to the last answer, a ratio independent of the
machine's speed.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .recording import RecordedRequest
from .responders import OCRReply, OCRRequest, Responder, loop_text

RAW_OUTPUT_TOKENS = (431, 620, 952, 1970, 2109, 3068)
"""Output tokens (cl100k) of the six clean real DeepSeek-OCR answers in
``../shared/fixtures/raw_outputs`` (a two-box caption, a Chinese table, German notes, an
article, a chemistry paper, a paper with equations); the seventh file there is a loop."""

_FILLER = ("the", "page", "model", "text", "and", "of", "table", "order", "image", "region")
"""Words of one cl100k token each (with their leading space)."""


@dataclass(frozen=True, slots=True)
class Workload:
    """How answers vary. ``lengths``: clean output lengths (tokens) to draw a page's from,
    each scaled by a uniform factor in ``1 +/- spread``; ``slow_every``: one page in that many
    is a dense one of ``slow_tokens`` (a range); ``loop_every``: one answer in that many loops
    (``0``: none); ``head_delay``: extra seconds for the first request of a run (a straggler
    at the head of the document, which holds back every page after it in the output order);
    ``ink_tokens``: when set, a clean answer is as long as its page's text instead of drawn,
    ``ink x ink_tokens`` tokens (``ink``: :func:`~.images.image_ink`, +/- ``spread``), as the
    real model's answers follow how much text a page holds (``lengths`` and ``slow_every``
    unused)."""

    lengths: Sequence[int] = RAW_OUTPUT_TOKENS
    spread: float = 0.25
    slow_every: int = 30
    slow_tokens: tuple[int, int] = (4000, 6000)
    loop_every: int = 15
    head_delay: float = 0.0
    ink_tokens: float = 0.0


def page_tokens(workload: Workload, image_crc: int, ink: float = 0.0) -> int:
    """Output tokens of a clean answer for the page whose image has this CRC (and ink)."""
    rng = random.Random(image_crc)
    if workload.ink_tokens:
        base = ink * workload.ink_tokens
        return max(1, round(base * rng.uniform(1 - workload.spread, 1 + workload.spread)))
    if workload.slow_every and rng.randrange(workload.slow_every) == 0:
        return rng.randint(*workload.slow_tokens)
    base = rng.choice(tuple(workload.lengths))
    return max(1, round(base * rng.uniform(1 - workload.spread, 1 + workload.spread)))


def filler_page(tokens: int, seed: int) -> str:
    """A grounded answer of about ``tokens`` output tokens: text blocks of 60 words."""
    rng = random.Random(seed)
    blocks, left, top = [], max(1, tokens), 40
    while left > 0:
        words = min(60, left)
        text = " ".join(rng.choice(_FILLER) for _ in range(words))
        bottom = min(999, top + 20)
        blocks.append(f"<|ref|>text<|/ref|><|det|>[[80, {top}, 920, {bottom}]]<|/det|>\n{text}\n")
        top = 40 if bottom >= 979 else bottom + 2
        left -= words + 36  # a block's tags, box and newlines: about 36 tokens
    return "\n".join(blocks)


def _try_key(request: OCRRequest) -> int:
    """A number for one try at a page: the image, the prompt and the repetition guard."""
    guard = request.body.get("vllm_xargs") or request.body.get("custom_params") or {}
    text = request.prompt + json.dumps(guard, sort_keys=True, default=str)
    return zlib.crc32(text.encode(), request.image_crc)


def workload_responder(workload: Workload | None = None) -> Responder:
    """Answers that vary as :class:`Workload` says (for ``time_per_token`` service times)."""
    spec = workload or Workload()

    def respond(request: OCRRequest) -> OCRReply:
        crc = request.image_crc
        ink = request.image_ink if spec.ink_tokens else 0.0
        if request.seq == 0 and spec.head_delay:
            return OCRReply(filler_page(page_tokens(spec, crc, ink), crc), delay=spec.head_delay)
        if spec.loop_every and random.Random(_try_key(request)).randrange(spec.loop_every) == 0:
            return OCRReply(loop_text(), "length")
        return OCRReply(filler_page(page_tokens(spec, crc, ink), crc))

    return respond


def fixture_token_counts(directory: str | Path) -> dict[str, int]:
    """Output tokens (cl100k) of each ``*.txt`` raw output in a directory, by file name."""
    from .._tokens import text_encoder

    encoder = text_encoder()
    return {
        p.name: len(encoder.encode_ordinary(p.read_text(encoding="utf-8")))
        for p in sorted(Path(directory).glob("*.txt"))
    }


@dataclass(frozen=True, slots=True)
class Saturation:
    """How busy a server's slots were over one run (seconds, from its records)."""

    requests: int
    """Chat requests answered (200)."""
    busy: float
    """Total slot-seconds of service."""
    best: float
    """``busy / slots``, or the longest request if longer: the best possible span."""
    span: float
    """First request's arrival to the last answer."""
    peak_in_flight: int
    """Most requests at the server (queued or in service) at once."""
    mean_in_flight: float
    """Requests at the server, averaged over the span."""

    @property
    def share(self) -> float:
        """``best / span``: 1.0 means the slots never idled while work remained."""
        return self.best / self.span if self.span > 0 else 0.0


def saturation(records: Sequence[RecordedRequest], slots: int) -> Saturation:
    """:class:`Saturation` of a run from the server's records of it."""
    chats = [r for r in records if r.path.endswith("/chat/completions")]
    served = [r for r in chats if r.service_started is not None and r.service_ended is not None]
    times = [(r.service_started or 0.0, r.service_ended or 0.0) for r in served]
    busy = sum(end - start for start, end in times)
    longest = max((end - start for start, end in times), default=0.0)
    if not chats:
        return Saturation(0, 0.0, 0.0, 0.0, 0, 0.0)
    first = min(r.started for r in chats)
    span = max(r.finished for r in chats) - first
    events = sorted([(r.started, 1) for r in chats] + [(r.finished, -1) for r in chats])
    level = peak = 0
    area, last = 0.0, first
    for at, step in events:
        area += level * (at - last)
        level, last = level + step, at
        peak = max(peak, level)
    return Saturation(
        requests=sum(1 for r in chats if r.status == 200),
        busy=busy,
        best=max(busy / slots, longest),
        span=span,
        peak_in_flight=peak,
        mean_in_flight=area / span if span > 0 else 0.0,
    )


__all__ = [
    "RAW_OUTPUT_TOKENS",
    "Saturation",
    "Workload",
    "filler_page",
    "fixture_token_counts",
    "page_tokens",
    "saturation",
    "workload_responder",
]
