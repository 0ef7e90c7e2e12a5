"""Pages -> units: the blocks chunking moves as one (a heading, prose, an equation, or a
table/figure with the captions it owns).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .._grounding import CAPTION_LABELS, HEADING_LABELS, LOOP_NOTE, block_markdown, caption_for
from .._model import Block, Page, Region
from .options import SEP, ImageTarget, TableFormat

_ANCHOR_LABELS = frozenset({"table", "image"})

UnitKind = Literal["heading", "prose", "solid", "group", "note"]


@dataclass(frozen=True, slots=True)
class Member:
    """One block of a unit with its markdown and its boxes on the page."""

    block: Block
    text: str
    regions: tuple[Region, ...]


@dataclass(frozen=True, slots=True)
class Unit:
    """A piece of a page that chunking moves as one: a block, or a table/figure group."""

    kind: UnitKind
    page: int
    members: tuple[Member, ...]
    level: int = 0
    """Heading level (``#`` count) for headings."""
    title: str = ""
    """Heading text for the heading path."""
    joins: tuple[str, ...] = ()
    """Page breaks this unit was joined across, e.g. ``("table 4-5",)`` (:mod:`.joins`)."""

    @property
    def text(self) -> str:
        """The unit's markdown: its blocks' markdown joined by blank lines (a note: LOOP_NOTE)."""
        return SEP.join(m.text for m in self.members) if self.members else LOOP_NOTE

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(m.block.label for m in self.members)

    @property
    def regions(self) -> tuple[Region, ...]:
        return tuple(r for m in self.members for r in m.regions)


def tidy(markdown: str) -> str:
    """Collapse runs of blank lines, as :func:`grounding.to_markdown` does for a page."""
    return re.sub(r"\n{3,}", "\n\n", markdown)


def _block_regions(page: Page, block: Block) -> tuple[Region, ...]:
    """The block's boxes on the page frame, as citation regions."""
    return tuple(
        Region(page.number, block.label, bbox, block.source)
        for bbox in block.scaled_boxes(page.width, page.height)
    )


def _page_members(
    page: Page, tables: TableFormat, image_target: ImageTarget | None
) -> list[Member]:
    """Every block of the page that renders to some markdown, in reading order."""
    members: list[Member] = []
    k = 0
    for i, block in enumerate(page.blocks):
        target = caption = ""
        if block.label == "image":
            target = image_target(page, block, k) if image_target is not None else ""
            caption = caption_for(page.blocks, i)
            k += 1
        text = tidy(block_markdown(block, tables=tables, image_target=target, caption=caption))
        if text:
            members.append(Member(block, text, _block_regions(page, block)))
    return members


_TABLE_WORD_RE = re.compile(r"\s*(?:table|tab\.|表)", re.IGNORECASE)
_FIGURE_WORD_RE = re.compile(r"\s*(?:fig(?:ure)?\b|fig\.|chart|plate|图|圖)", re.IGNORECASE)


def _goes_forward(caption: Member, prev: Block, nxt: Block) -> bool:
    """For a caption between two anchors: does it belong to the next one?

    Footnotes follow what they annotate; table captions precede their table (both OCR-1's
    ``table_caption`` and OCR-2's ``figure_title``); figure captions follow their figure.
    """
    label = caption.block.label
    if label.endswith("_footnote"):
        return False
    if label == "table_caption" or (
        label != "image_caption" and _TABLE_WORD_RE.match(caption.text)
    ):
        return nxt.label == "table"
    if label == "image_caption" or _FIGURE_WORD_RE.match(caption.text):
        return prev.label != "image"
    return False


def _caption_owners(members: Sequence[Member]) -> dict[int, int]:
    """Map each caption position to the position of the table or image it belongs to.

    A run of captions next to one anchor belongs to it; a run between two anchors is cut once,
    by :func:`_goes_forward`, so each anchor's captions stay contiguous with it. Captions with
    no anchor next to them are left out (they are plain prose).
    """
    owners: dict[int, int] = {}

    def anchor(j: int) -> bool:
        return 0 <= j < len(members) and members[j].block.label in _ANCHOR_LABELS

    i = 0
    while i < len(members):
        if members[i].block.label not in CAPTION_LABELS:
            i += 1
            continue
        j = i
        while j < len(members) and members[j].block.label in CAPTION_LABELS:
            j += 1
        before, after = anchor(i - 1), anchor(j)
        if before and after:
            prev, nxt = members[i - 1].block, members[j].block
            cut = next((c for c in range(i, j) if _goes_forward(members[c], prev, nxt)), j)
        else:
            cut = j if before else i
        for c in range(i, j):
            if c < cut and before:
                owners[c] = i - 1
            elif c >= cut and after:
                owners[c] = j
        i = j
    return owners


def _heading_unit(page: Page, member: Member) -> Unit | None:
    """A heading unit with its level and title, or None when the heading has no words."""
    text = member.text
    level = len(text) - len(text.lstrip("#"))
    title = " ".join(text.lstrip("#").split("\n", 1)[0].split())
    if not title:
        return None
    return Unit("heading", page.number, (member,), level=max(1, level), title=title)


def page_units(
    page: Page, tables: TableFormat = "html", image_target: ImageTarget | None = None
) -> list[Unit]:
    """Cut a page into units, in reading order; a cut repetition loop ends it with a note."""
    members = _page_members(page, tables, image_target)
    owners = _caption_owners(members)
    owned: dict[int, list[int]] = {}
    for caption, anchor in owners.items():
        owned.setdefault(anchor, []).append(caption)
    units: list[Unit] = []
    for i, member in enumerate(members):
        label = member.block.label
        if i in owners:
            continue
        if label in _ANCHOR_LABELS:
            group = sorted([*owned.get(i, []), i])
            units.append(Unit("group", page.number, tuple(members[j] for j in group)))
        elif label in HEADING_LABELS and (heading := _heading_unit(page, member)) is not None:
            units.append(heading)
        elif label == "equation":
            units.append(Unit("solid", page.number, (member,)))
        else:
            units.append(Unit("prose", page.number, (member,)))
    if page.loop_cut:
        units.append(Unit("note", page.number, ()))
    return units
