"""Content faults: answers that arrive fine but say the wrong thing, for the cross-check.

Transport faults (:mod:`.faults`) break requests; these break *answers*, at seeded rates,
the way a vision-language model loses or invents text:

* ``drop_blocks``: whole blocks are left out until ``share`` of the page's words are gone;
* ``truncate_text``: the answer stops early (``share`` of its words missing), yet ends with
  ``finish_reason="stop"``, so nothing but the text itself shows it;
* ``made_up``: sentences the page does not hold are inserted (``share`` of its word count);
* ``other_page``: the answer of another page (the previous different image) comes back.

And a stand-in for compression loss, for the repair: with ``compress_ratio`` set, an answer
holding more text tokens per vision token than that loses ``compress_drop`` of its words (by
blocks); a tile of the page carries less text for as many vision tokens, so it answers fully.

The choice for a request depends only on the seed and the image's pixels, so a page gets the same
fault on every run; :attr:`ContentFaultResponder.log` records ``(seq, image crc, fault)``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from .._grounding import format_grounded, parse_grounded
from .._model import Block
from .._tokens import count_tokens, vision_tokens
from .responders import OCRReply, OCRRequest, Responder

ContentFault = Literal["ok", "drop_blocks", "truncate_text", "made_up", "other_page", "compress"]
CONTENT_RATES: tuple[tuple[str, ContentFault], ...] = (
    ("drop_blocks", "drop_blocks"),
    ("truncate_text", "truncate_text"),
    ("made_up", "made_up"),
    ("other_page", "other_page"),
)

_INVENTED = (
    "Quarterly shipments of refrigerated cargo rose sharply along the northern corridor.",
    "The committee postponed its ruling on the harbour expansion until next spring.",
    "Volunteers catalogued seventeen species of migratory songbirds near the reservoir.",
    "A ceramic workshop reopened downtown after the flood repairs were finished.",
    "Engineers replaced the bridge bearings without closing the eastbound lanes.",
    "The orchestra announced a festival of forgotten baroque cantatas in autumn.",
)


@dataclass(frozen=True)
class ContentFaultPlan:
    """Rates in [0, 1] (their sum at most 1), the share of words each fault touches, and the
    compression stand-in (``compress_ratio`` 0: off)."""

    drop_blocks: float = 0.0
    truncate_text: float = 0.0
    made_up: float = 0.0
    other_page: float = 0.0
    share: float = 0.4
    compress_ratio: float = 0.0
    compress_drop: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        total = 0.0
        for attr, _ in CONTENT_RATES:
            rate = getattr(self, attr)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"ContentFaultPlan.{attr} must be within [0, 1], got {rate}")
            total += rate
        if total > 1.0 + 1e-9:
            raise ValueError(f"ContentFaultPlan rates add up to {total:.3f}, more than 1")
        if not 0.0 < self.share <= 1.0 or not 0.0 <= self.compress_drop <= 1.0:
            raise ValueError("ContentFaultPlan.share must be in (0, 1], compress_drop in [0, 1]")
        if self.compress_ratio < 0:
            raise ValueError("ContentFaultPlan.compress_ratio must be >= 0")

    @property
    def active(self) -> bool:
        return self.compress_ratio > 0 or any(getattr(self, a) > 0 for a, _ in CONTENT_RATES)

    def pick(self, image_crc: int) -> ContentFault:
        """The fault for an image: a function of the seed and the image's pixels only."""
        u = random.Random(self.seed * 1_000_003 + image_crc).random()
        edge = 0.0
        for attr, fault in CONTENT_RATES:
            edge += getattr(self, attr)
            if u < edge:
                return fault
        return "ok"


def _words(block: Block) -> int:
    return len(block.text.split())


def drop_share(blocks: Sequence[Block], share: float, rng: random.Random) -> list[Block]:
    """``blocks`` without randomly chosen ones, until at least ``share`` of the words are gone
    (never every block of a page holding two or more)."""
    total = sum(_words(b) for b in blocks)
    order = list(range(len(blocks)))
    rng.shuffle(order)
    dropped: set[int] = set()
    gone = 0
    for i in order:
        if gone >= share * total or len(dropped) == len(blocks) - 1:
            break
        dropped.add(i)
        gone += _words(blocks[i])
    if gone < share * total and blocks:  # one block left holding most of the text: cut it
        keep = next(i for i in range(len(blocks)) if i not in dropped)
        words = blocks[keep].text.split()
        cut = max(0, len(words) - int(share * total - gone + 0.999))
        blocks = [
            replace(b, text=" ".join(words[:cut])) if i == keep else b for i, b in enumerate(blocks)
        ]
    return [b for i, b in enumerate(blocks) if i not in dropped]


def truncate(blocks: Sequence[Block], share: float) -> list[Block]:
    """The blocks up to the point where ``1 - share`` of the words have been written."""
    total = sum(_words(b) for b in blocks)
    budget = int(total * (1.0 - share))
    out: list[Block] = []
    for b in blocks:
        n = _words(b)
        if n <= budget:
            out.append(b)
            budget -= n
            continue
        if budget > 0:
            out.append(replace(b, text=" ".join(b.text.split()[:budget])))
        break
    return out


def invent(blocks: Sequence[Block], share: float, rng: random.Random) -> list[Block]:
    """``blocks`` with made-up sentences added, ``share`` of their word count, in new blocks
    at random places."""
    target = max(8, int(share * sum(_words(b) for b in blocks)))
    out = list(blocks)
    added = 0
    while added < target:
        sentence = rng.choice(_INVENTED)
        at = rng.randint(0, len(out))
        y = 50 + (900 * at) // max(1, len(out) + 1)
        out.insert(at, Block("text", ((80, y, 920, min(999, y + 20)),), sentence, 0))
        added += len(sentence.split())
    return [replace(b, index=i) for i, b in enumerate(out)]


class ContentFaultResponder:
    """Wraps a responder (usually :func:`~.responders.local_responder`) with content faults."""

    def __init__(self, base: Responder, plan: ContentFaultPlan, model: str = "deepseek-ocr"):
        self.base = base
        self.plan = plan
        self.model = model
        self.log: list[tuple[int, int, ContentFault]] = []
        self._lock = threading.Lock()
        self._last: tuple[int, str] | None = None

    def __call__(self, request: OCRRequest) -> OCRReply:
        reply = self.base(request)
        crc = request.image_crc
        fault = self.plan.pick(crc)
        rng = random.Random(self.plan.seed + crc)
        blocks = parse_grounded(reply.text)
        text = reply.text
        if fault == "drop_blocks":
            text = format_grounded(drop_share(blocks, self.plan.share, rng))
        elif fault == "truncate_text":
            text = format_grounded(truncate(blocks, self.plan.share))
        elif fault == "made_up":
            text = format_grounded(invent(blocks, self.plan.share, rng))
        elif fault == "other_page":
            with self._lock:
                last = self._last
            if last is not None and last[0] != crc:
                text = last[1]
            else:
                fault = "ok"  # no other page seen yet
        elif self.plan.compress_ratio > 0:
            words = count_tokens("\n".join(b.text for b in blocks))
            dense = words / vision_tokens(request.width, request.height, self.model)
            if dense > self.plan.compress_ratio:
                fault = "compress"
                text = format_grounded(drop_share(blocks, self.plan.compress_drop, rng))
        with self._lock:
            self._last = (crc, reply.text)
            self.log.append((request.seq, crc, fault))
        return replace(reply, text=text)
