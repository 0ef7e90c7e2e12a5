"""Running headers, footers and page numbers, found by repetition and position, streamed.

OCR-1 has no label for page furniture, so it is recognised the way a reader does: a short block
in the top or bottom band of the page (boxes in 0..999 units) that comes back at the same height
on many pages with the same or nearly the same text, digits aside ("Page 3 of 10" and "Page 4 of
10" are one text). Such a height is a *slot*; once a slot is established, every short block in
it is furniture, so a header whose words change with the section ("1.1 SPACES", "1.2 METRICS")
is still caught. A slot is established when its text comes back on enough pages of the window
and on most of the pages where it holds anything, so the first body line (which also sits at a
fixed height on many pages, with other words each time) never establishes one.

The decision is made from the first :data:`WINDOW` pages, held back until then (pages with
nothing in either band are not held unless an earlier page is), and keeps being updated from a
sliding window of the last :data:`WINDOW` pages afterwards, so memory stays bounded.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from .._grounding import block_markdown
from .._model import Block, Page

WINDOW = 8
"""Pages the first decision is made from, and the length of the sliding window after it."""
TOP_BAND = 120
"""A header lies wholly above this height (0..999 units)."""
BOTTOM_BAND = 880
"""A footer lies wholly below this height."""
SLOT_TOLERANCE = 15
"""Two blocks whose vertical centres are this close (0..999 units) share a slot."""
MIN_SHARE = 0.25
"""A slot is furniture when repeated text fills it on this share of the window's pages (and on
two pages at least) ..."""
MIN_REPEATED = 0.5
"""... and on at least this share of the pages where the slot holds anything: a slot where
varied body text sits on most pages (the first line under the header) is not furniture even
if a heading such as "Example 3" comes back in it now and then."""
SIMILAR = 0.8
"""``difflib`` ratio above which two normalised texts count as the same running text."""
MAX_WORDS = 20
MAX_CHARS = 160
_NEVER = frozenset({"table", "image", "equation"})

Band = Literal["top", "bottom"]
Role = Literal["page_header", "page_footer", "page_number"]

_DIGITS_RE = re.compile(r"\d+")
_ROMAN_RE = re.compile(r"\b[ivxlcdm]+\b")
_PAGE_NUMBER_RE = re.compile(
    r"[\W_]*(?:(?:page|p\.|seite|s\.|pág\.?|página)\s*)?(?:\d+|[ivxlcdm]+)"
    r"(?:\s*(?:of|/|von|de|sur)\s*\d+)?[\W_]*",
    re.IGNORECASE,
)


def normalise(text: str) -> str:
    """Text as repetition sees it: lower case, numbers (arabic and roman) as ``#``, no marks."""
    text = text.lower().lstrip("#").strip()
    text = _ROMAN_RE.sub("#", _DIGITS_RE.sub("#", text))
    return " ".join(re.sub(r"[*_`|]+", " ", text).split())


def is_page_number(text: str) -> bool:
    """``12``, ``- 12 -``, ``xii``, ``Page 3``, ``Page 3 of 10``, ``3 / 10``, ``Seite 4``."""
    return bool(text.strip()) and _PAGE_NUMBER_RE.fullmatch(text.strip()) is not None


def similar(a: str, b: str) -> bool:
    """The same running text, allowing for small changes (numbers are already ``#``)."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > max(len(a), len(b)) * (1 - SIMILAR):
        return False
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= SIMILAR


@dataclass(frozen=True, slots=True)
class Candidate:
    """A block that could be furniture: short, wholly in a band."""

    index: int
    """Position of the block in ``page.blocks``."""
    band: Band
    centre: float
    text: str
    """Normalised text (:func:`normalise`)."""


def candidates(page: Page) -> list[Candidate]:
    """The page's blocks that are short and lie wholly in the top or bottom band."""
    out: list[Candidate] = []
    for i, block in enumerate(page.blocks):
        if block.label in _NEVER or not block.boxes or not block.text.strip():
            continue
        text = block.text.strip()
        if len(text) > MAX_CHARS or len(text.split()) > MAX_WORDS:
            continue
        top = min(b[1] for b in block.boxes)
        bottom = max(b[3] for b in block.boxes)
        band: Band | None = (
            "top" if bottom <= TOP_BAND else "bottom" if top >= BOTTOM_BAND else None
        )
        if band is not None:
            out.append(Candidate(i, band, (top + bottom) / 2, normalise(text)))
    return out


@dataclass(slots=True)
class _Slot:
    """A height in one band, and what filled it on the pages of the window."""

    band: Band
    centre: float
    seen: deque[tuple[int, str]] = field(default_factory=deque)
    """``(page number, normalised text)`` for the pages of the window."""
    established: bool = False

    def fits(self, c: Candidate) -> bool:
        return c.band == self.band and abs(c.centre - self.centre) <= SLOT_TOLERANCE

    def repeated_pages(self) -> int:
        """Pages whose text in this slot comes back (nearly the same) on another page."""
        texts = list(self.seen)
        pages: set[int] = set()
        for i, (page, text) in enumerate(texts):
            if page in pages:
                continue
            for other_page, other in texts[i + 1 :]:
                if other_page != page and similar(text, other):
                    pages.update((page, other_page))
                    break
        return len(pages)


@dataclass(frozen=True, slots=True)
class Furniture:
    """A furniture block found on a page, with its role and clean text."""

    block: Block
    role: Role
    band: Band
    text: str


@dataclass(frozen=True, slots=True)
class Sorted:
    """A page split into its body blocks and its furniture."""

    page: Page
    body: tuple[Block, ...]
    furniture: tuple[Furniture, ...]


class FurnitureFinder:
    """Streams pages in, and out again sorted into body and furniture, in the same order.

    :meth:`add` returns the pages it can decide now (none while the first window is being
    filled, unless no page so far had a candidate); :meth:`finish` decides the rest.
    """

    def __init__(self, window: int = WINDOW) -> None:
        self._window = window
        self._reset()

    def _reset(self) -> None:
        self._slots: list[_Slot] = []
        self._pages: deque[int] = deque()
        self._held: list[tuple[Page, list[Candidate]]] = []
        self._decided = False

    def add(self, page: Page) -> list[Sorted]:
        found = candidates(page)
        self._observe(page.number, found)
        if not self._decided and len(self._pages) >= self._window:
            self._decided = True
        if not self._decided and (self._held or found):
            self._held.append((page, found))
            return []
        out = list(self._release())
        out.append(self._sort(page, found))
        return out

    def finish(self) -> list[Sorted]:
        """Decide the held pages with what was seen, and start afresh for a new document."""
        out = list(self._release())
        self._reset()
        return out

    def _release(self) -> Iterator[Sorted]:
        held, self._held = self._held, []
        for page, found in held:
            yield self._sort(page, found)

    def _observe(self, number: int, found: list[Candidate]) -> None:
        """Add a page to the window (dropping the oldest) and update the slots."""
        self._pages.append(number)
        oldest = self._pages[0] if len(self._pages) > self._window else None
        if oldest is not None:
            self._pages.popleft()
        for c in found:
            slot = min(
                (s for s in self._slots if s.fits(c)),
                key=lambda s: abs(s.centre - c.centre),
                default=None,
            )
            if slot is None:
                slot = _Slot(c.band, c.centre)
                self._slots.append(slot)
            if not slot.seen or slot.seen[-1][0] != number or slot.seen[-1][1] != c.text:
                slot.seen.append((number, c.text))
        need = max(2, math.ceil(MIN_SHARE * len(self._pages)))
        keep: list[_Slot] = []
        for slot in self._slots:
            while slot.seen and oldest is not None and slot.seen[0][0] <= oldest:
                slot.seen.popleft()
            if not slot.established:
                repeated = slot.repeated_pages()
                occupied = len({page for page, _text in slot.seen})
                slot.established = repeated >= need and repeated >= MIN_REPEATED * occupied
            if slot.established or slot.seen:
                keep.append(slot)
        self._slots = keep

    def _sort(self, page: Page, found: list[Candidate]) -> Sorted:
        marked: dict[int, tuple[Role, Band]] = {}
        for c in found:
            if any(s.established and s.fits(c) for s in self._slots):
                text = page.blocks[c.index].text
                role: Role = (
                    "page_number"
                    if is_page_number(text)
                    else ("page_header" if c.band == "top" else "page_footer")
                )
                marked[c.index] = (role, c.band)
        if not marked:
            return Sorted(page, page.blocks, ())
        body = tuple(b for i, b in enumerate(page.blocks) if i not in marked)
        furniture = tuple(
            Furniture(page.blocks[i], role, band, _clean(page.blocks[i]))
            for i, (role, band) in sorted(marked.items())
        )
        return Sorted(page, body, furniture)


def _clean(block: Block) -> str:
    """A furniture block's text as metadata keeps it: clean markdown on one line, no ``#``."""
    text = block_markdown(Block("text", block.boxes, block.text, block.index))
    return " ".join(text.lstrip("#").split())
