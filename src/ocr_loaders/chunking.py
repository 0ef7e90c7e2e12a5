"""Structure-aware chunking: parsed pages -> citable chunks sized in tiktoken tokens, streamed.

Pages come in one at a time. Each page's blocks become *units*: a heading, a prose block, an
equation, or a *group* (a table or figure with the captions and footnotes it owns). Units are
packed greedily into the pending chunk, which is emitted as soon as the next unit cannot join it:

* a heading always opens a new chunk (consecutive headings share one) and is never left alone;
* a unit that fits the room left joins the pending chunk, so small peers under one heading path
  merge, across page breaks too;
* a unit that does not fit starts a new chunk, except a unit larger than ``chunk_size`` itself,
  which is split: prose at sentence boundaries, then at whitespace, then anywhere; tables between
  rows, with the header row repeated; equations, images and single rows never.

Token counts are taken once per unit or part and summed; separators count one token each (an
upper bound for cl100k). See docs/chunking.md.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from .grounding import (
    CAPTION_LABELS,
    HEADING_LABELS,
    LOOP_NOTE,
    block_markdown,
    caption_for,
    html_table_to_markdown,
)
from .model import Block, Chunk, Page, Region
from .tokens import count_tokens, text_encoder

Mode = Literal["chunks", "pages", "document"]
TableFormat = Literal["html", "markdown"]
ImageTarget = Callable[[Page, Block, int], str]
"""``(page, image block, k-th image on the page)`` -> the image's link target."""

SEP = "\n\n"
SEP_TOKENS = 1
"""cl100k encodes a blank line (and a line break) as one token; joining two stripped texts with
one costs at most this on top of their own counts (a space may cost more: it changes how the
next word is tokenized)."""

_ANCHOR_LABELS = frozenset({"table", "image"})


@dataclass(frozen=True, slots=True)
class ChunkOptions:
    """How pages are cut into chunks (see docs/chunking.md)."""

    chunk_size: int = 512
    """Largest chunk, in tiktoken cl100k tokens, wherever the content allows."""
    chunk_overlap: int = 0
    """Tokens of the previous chunk's trailing prose repeated at the start of the next."""
    mode: Mode = "chunks"
    tables: TableFormat = "html"
    """Table rendering, passed to :func:`grounding.block_markdown`."""

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {self.chunk_size}")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise ValueError(f"chunk_overlap must be in [0, chunk_size), got {self.chunk_overlap}")
        if self.mode not in ("chunks", "pages", "document"):
            raise ValueError(f"mode must be chunks, pages or document, got {self.mode!r}")
        if self.tables not in ("html", "markdown"):
            raise ValueError(f"tables must be html or markdown, got {self.tables!r}")


# --- pages -> units -------------------------------------------------------------------------

UnitKind = Literal["heading", "prose", "solid", "group", "note"]


@dataclass(frozen=True, slots=True)
class _Member:
    """One block of a unit with its markdown and its boxes on the page."""

    block: Block
    text: str
    regions: tuple[Region, ...]


@dataclass(frozen=True, slots=True)
class _Unit:
    """A piece of a page that chunking moves as one: a block, or a table/figure group."""

    kind: UnitKind
    page: int
    members: tuple[_Member, ...]
    level: int = 0
    """Heading level (``#`` count) for headings."""
    title: str = ""
    """Heading text for the heading path."""

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


def _tidy(markdown: str) -> str:
    """Collapse runs of blank lines, as :func:`grounding.to_markdown` does for a page."""
    return re.sub(r"\n{3,}", "\n\n", markdown)


def _block_regions(page: Page, block: Block) -> tuple[Region, ...]:
    """The block's boxes on the page frame, as citation regions."""
    return tuple(
        Region(page.number, block.label, bbox)
        for bbox in block.scaled_boxes(page.width, page.height)
    )


def _page_members(
    page: Page, tables: TableFormat, image_target: ImageTarget | None
) -> list[_Member]:
    """Every block of the page that renders to some markdown, in reading order."""
    members: list[_Member] = []
    k = 0
    for i, block in enumerate(page.blocks):
        target = caption = ""
        if block.label == "image":
            target = image_target(page, block, k) if image_target is not None else ""
            caption = caption_for(page.blocks, i)
            k += 1
        text = _tidy(block_markdown(block, tables=tables, image_target=target, caption=caption))
        if text:
            members.append(_Member(block, text, _block_regions(page, block)))
    return members


_TABLE_WORD_RE = re.compile(r"\s*(?:table|tab\.|表)", re.IGNORECASE)
_FIGURE_WORD_RE = re.compile(r"\s*(?:fig(?:ure)?\b|fig\.|chart|plate|图|圖)", re.IGNORECASE)


def _goes_forward(caption: _Member, prev: Block, nxt: Block) -> bool:
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


def _caption_owners(members: Sequence[_Member]) -> dict[int, int]:
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


def _heading_unit(page: Page, member: _Member) -> _Unit | None:
    """A heading unit with its level and title, or None when the heading has no words."""
    text = member.text
    level = len(text) - len(text.lstrip("#"))
    title = " ".join(text.lstrip("#").split("\n", 1)[0].split())
    if not title:
        return None
    return _Unit("heading", page.number, (member,), level=max(1, level), title=title)


def _page_units(
    page: Page, tables: TableFormat = "html", image_target: ImageTarget | None = None
) -> list[_Unit]:
    """Cut a page into units, in reading order; a cut repetition loop ends it with a note."""
    members = _page_members(page, tables, image_target)
    owners = _caption_owners(members)
    owned: dict[int, list[int]] = {}
    for caption, anchor in owners.items():
        owned.setdefault(anchor, []).append(caption)
    units: list[_Unit] = []
    for i, member in enumerate(members):
        label = member.block.label
        if i in owners:
            continue
        if label in _ANCHOR_LABELS:
            group = sorted([*owned.get(i, []), i])
            units.append(_Unit("group", page.number, tuple(members[j] for j in group)))
        elif label in HEADING_LABELS and (heading := _heading_unit(page, member)) is not None:
            units.append(heading)
        elif label == "equation":
            units.append(_Unit("solid", page.number, (member,)))
        else:
            units.append(_Unit("prose", page.number, (member,)))
    if page.loop_cut:
        units.append(_Unit("note", page.number, ()))
    return units


# --- pieces and the sources that cut units into them ----------------------------------------

PieceKind = Literal["heading", "prose", "solid", "note"]


@dataclass(frozen=True, slots=True)
class _Piece:
    """Text placed in a chunk, with what it cites and how many tokens it costs."""

    text: str
    tokens: int
    page: int
    labels: tuple[str, ...]
    regions: tuple[Region, ...]
    kind: PieceKind
    continued: bool = False
    """A later part of a split prose block: joined to its overlap by a line break, not a
    blank line (a space could re-tokenize the part's first word into more tokens)."""


def _whole_piece(unit: _Unit, tokens: int) -> _Piece:
    """The whole unit as one piece."""
    kind: PieceKind = "solid" if unit.kind == "group" else unit.kind
    return _Piece(unit.text, tokens, unit.page, unit.labels, unit.regions, kind)


class _Source(Protocol):
    """A unit being placed: what is left of it, and how to take a part that fits a room."""

    tokens: int
    done: bool

    def splittable(self) -> bool: ...

    def take(self, room: int, force: bool) -> _Piece | None:
        """The largest leading part within ``room`` tokens, or None if nothing fits.

        With ``force``, the smallest atomic part is returned even when it does not fit.
        """
        ...


class _Solid:
    """A unit that is never split (equation, figure, small table group, loop note)."""

    def __init__(self, piece: _Piece) -> None:
        self.piece = piece
        self.tokens = piece.tokens
        self.done = False

    def splittable(self) -> bool:
        return False

    def take(self, room: int, force: bool) -> _Piece | None:
        if self.piece.tokens > room and not force:
            return None
        self.done = True
        self.tokens = 0
        return self.piece


_SENTENCE_RE = re.compile(
    r"(?<=[.!?])(?=\s)|(?<=[.!?][\"'”’)\]])(?=\s)|(?<=[。！？；])|(?<!\n)(?=\n)"
)
_WORD_RE = re.compile(r"(?<=\S)(?=\s)")

Segment = tuple[str, int, int]
"""``(text, tokens, level)``: level 0 sentence, 1 word, 2 arbitrary cut."""


def _cut(text: str, pattern: re.Pattern[str]) -> list[str]:
    """Cut ``text`` at the zero-width matches of ``pattern``; the pieces concatenate to it."""
    pieces: list[str] = []
    start = 0
    for m in pattern.finditer(text):
        if m.start() > start:
            pieces.append(text[start : m.start()])
            start = m.start()
    pieces.append(text[start:])
    return [p for p in pieces if p]


def _segments(text: str, level: int) -> list[Segment]:
    """Cut a text at the given level: sentences (0), words (1), or in two halves (2)."""
    if level == 0:
        pieces = _cut(text, _SENTENCE_RE)
    elif level == 1:
        pieces = _cut(text, _WORD_RE)
    else:
        half = len(text) // 2
        pieces = [text[:half], text[half:]]
    return [(p, count_tokens(p), level) for p in pieces]


def _refine(segment: Segment) -> list[Segment] | None:
    """The segment cut finer (a sentence into words, else in halves), None for one character."""
    text, _tokens, level = segment
    if len(text) < 2:
        return None
    if level == 0:
        words = _segments(text, 1)
        if len(words) > 1:
            return words
    return _segments(text, 2)


class _Prose:
    """A prose block, split at sentences, then whitespace, then anywhere, only if needed."""

    def __init__(self, unit: _Unit, tokens: int) -> None:
        self.unit = unit
        self.tokens = tokens
        self.done = False
        self._segs: deque[Segment] | None = None
        self._parts = 0

    def splittable(self) -> bool:
        return True

    def _piece(self, text: str, tokens: int, continued: bool) -> _Piece:
        u = self.unit
        return _Piece(text, tokens, u.page, u.labels, u.regions, "prose", continued)

    def take(self, room: int, force: bool) -> _Piece | None:
        if self._segs is None:
            if self.tokens <= room:
                whole = _whole_piece(self.unit, self.tokens)
                self.done, self.tokens = True, 0
                return whole
            self._segs = deque(_segments(self.unit.text, 0))
            self.tokens = sum(seg[1] for seg in self._segs)
        piece = self._take(room, force)
        self._parts += piece is not None
        return piece

    def _pop(self) -> Segment:
        seg = self._queue().popleft()
        self.tokens -= seg[1]
        return seg

    def _push(self, segs: Sequence[Segment]) -> None:
        self._queue().extendleft(reversed(segs))
        self.tokens += sum(s[1] for s in segs)

    def _queue(self) -> deque[Segment]:
        assert self._segs is not None
        return self._segs

    def _greedy(self, room: int, force: bool) -> list[Segment] | None:
        """Leading segments within ``room``; the first one is cut finer only when forced."""
        segs = self._queue()
        taken: list[Segment] = []
        used = 0
        words = False
        while segs:
            seg = segs[0]
            if used + seg[1] <= room:
                taken.append(self._pop())
                used += seg[1]
                words = words or not seg[0].isspace()
                continue
            if words:
                break
            finer = _refine(seg) if force else None
            if finer is not None:
                self._pop()
                self._push(finer)
                continue
            if not force:
                self._push(taken)
                return None
            taken.append(self._pop())  # one character that alone exceeds the room
            break
        return taken

    def _take(self, room: int, force: bool) -> _Piece | None:
        """The next part: whole segments, checked by one count of the part's own text."""
        while True:
            taken = self._greedy(room, force)
            if taken is None:
                return None
            text = "".join(s[0] for s in taken).strip()
            tokens = count_tokens(text)
            while tokens > room and len(taken) > 1:  # the summed estimate was a little low
                self._push([taken.pop()])
                text = "".join(s[0] for s in taken).strip()
                tokens = count_tokens(text)
            if tokens > room and taken:  # one segment, longer once stripped
                finer = _refine(taken[0]) if force else None
                if finer is not None:
                    self._push(finer)
                    continue
                if not force:
                    self._push(taken)
                    return None
            self.done = not self._queue()
            if text or self.done:
                break
        return self._piece(text, tokens, self._parts > 0) if text else None


# --- tables split by rows -------------------------------------------------------------------

_TABLE_RE = re.compile(r"<table\b.*?(?:</table\s*>|\Z)", re.IGNORECASE | re.DOTALL)
_ROW_RE = re.compile(r"<tr\b[^>]*>.*?</tr\s*>", re.IGNORECASE | re.DOTALL)
_PIPE_SEPARATOR_RE = re.compile(r"\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*")


@dataclass(frozen=True, slots=True)
class _Rows:
    """A table cut for splitting: ``head`` (opening and header row), data rows, endings.

    A part is ``head + rows + close``; the last part ends with ``tail`` instead (the table's
    own ending, which may be unclosed when the model was cut off).
    """

    head: str
    rows: tuple[str, ...]
    tail: str
    close: str


def _html_rows(table: str) -> _Rows | None:
    """Cut an HTML table at its ``<tr>`` rows; None if nested or with under two data rows."""
    if table.lower().count("<table") != 1:
        return None
    found = list(_ROW_RE.finditer(table))
    if len(found) < 3:
        return None
    head = table[: found[1].start()]
    rows = [table[found[k].start() : found[k + 1].start()] for k in range(1, len(found) - 1)]
    rows.append(table[found[-1].start() : found[-1].end()])
    tail = table[found[-1].end() :]
    close = tail if "</table" in tail.lower() else "</table>"
    return _Rows(head, tuple(rows), tail, close)


def _pipe_rows(text: str) -> _Rows | None:
    """Cut a markdown pipe table at its lines; None if it is not one with two data rows."""
    lines = text.split("\n")
    if (
        len(lines) < 4
        or not all(line.lstrip().startswith("|") for line in lines)
        or not _PIPE_SEPARATOR_RE.fullmatch(lines[1])
    ):
        return None
    return _Rows("\n".join(lines[:2]), tuple("\n" + line for line in lines[2:]), "", "")


def _table_pieces(markdown_html: str, tables: TableFormat) -> list[tuple[str, _Rows | None]]:
    """A table block's markdown (HTML tables kept) cut into rendered pieces and their rows.

    Text outside ``<table>`` stays one piece; each table becomes one piece, rendered as
    :func:`block_markdown` would, with its rows when it can be split.
    """
    pieces: list[tuple[str, _Rows | None]] = []
    start = 0
    for m in _TABLE_RE.finditer(markdown_html):
        before = markdown_html[start : m.start()].strip()
        if before:
            pieces.append((before, _pipe_rows(before)))
        html = m.group(0).strip()
        converted = html_table_to_markdown(html) if tables == "markdown" else None
        if converted is not None:
            pieces.append((converted, _pipe_rows(converted)))
        else:
            pieces.append((html, _html_rows(html)))
        start = m.end()
    after = markdown_html[start:].strip()
    if after:
        pieces.append((after, _pipe_rows(after)))
    return pieces


AtomRole = Literal["para", "head", "row", "tail"]


@dataclass(frozen=True, slots=True)
class _Atom:
    """Smallest text of a group: a paragraph, or a table's head, one row, or its ending."""

    text: str
    tokens: int
    member: int
    role: AtomRole
    table: int = -1


@dataclass(frozen=True, slots=True)
class _Plan:
    """A group laid out for splitting: runs of atoms that must stay together.

    Parts may break only between two data rows of one table, so a run is everything from one
    such break to the next. ``heads``/``closes`` are each table's repeated opening and the
    ending of a part that stops inside it.
    """

    runs: tuple[tuple[_Atom, ...], ...]
    run_tokens: tuple[int, ...]
    rest_tokens: tuple[int, ...]
    """``sum(run_tokens[k:])`` for each k, and 0 at the end."""
    heads: tuple[tuple[str, int], ...]
    closes: tuple[tuple[str, int], ...]


def _plan_group(unit: _Unit, tables: TableFormat) -> _Plan:
    """Lay out a group's blocks as atoms and cut them into runs."""
    atoms: list[_Atom] = []
    heads: list[tuple[str, int]] = []
    closes: list[tuple[str, int]] = []
    for i, member in enumerate(unit.members):
        if member.block.label != "table":
            atoms.append(_Atom(member.text, count_tokens(member.text), i, "para"))
            continue
        html = _tidy(block_markdown(member.block, tables="html"))
        for text, rows in _table_pieces(html, tables):
            if rows is None:
                atoms.append(_Atom(text, count_tokens(text), i, "para"))
                continue
            t = len(heads)
            heads.append((rows.head, count_tokens(rows.head)))
            closes.append((rows.close, count_tokens(rows.close)))
            atoms.append(_Atom(rows.head, heads[t][1], i, "head", t))
            atoms.extend(_Atom(r, count_tokens(r), i, "row", t) for r in rows.rows)
            if rows.tail:
                atoms.append(_Atom(rows.tail, count_tokens(rows.tail), i, "tail", t))
    runs: list[list[_Atom]] = []
    run_tokens: list[int] = []
    for k, atom in enumerate(atoms):
        if not runs or (atom.role == "row" and atoms[k - 1].role == "row"):
            runs.append([])
            run_tokens.append(0)
        runs[-1].append(atom)
        starts_paragraph = atom.role in ("para", "head") and k > 0
        run_tokens[-1] += atom.tokens + (SEP_TOKENS if starts_paragraph else 0)
    rest = [0]
    for n in reversed(run_tokens):
        rest.append(rest[-1] + n)
    return _Plan(
        tuple(tuple(r) for r in runs),
        tuple(run_tokens),
        tuple(reversed(rest)),
        tuple(heads),
        tuple(closes),
    )


class _Group:
    """A table or figure with its captions: whole if it fits, else split between rows."""

    def __init__(self, unit: _Unit, tokens: int, tables: TableFormat) -> None:
        self.unit = unit
        self.tokens = tokens
        self.done = False
        self._tables = tables
        self._plan: _Plan | None = None
        self._pos = 0

    def plan(self) -> _Plan:
        if self._plan is None:
            self._plan = _plan_group(self.unit, self._tables)
        return self._plan

    def splittable(self) -> bool:
        return len(self.plan().runs) > 1

    def _head(self, run: int) -> int:
        """Tokens of the repeated table head a part starting at ``run`` needs."""
        plan = self.plan()
        return plan.heads[plan.runs[run][0].table][1] if run > 0 else 0

    def _close(self, run: int) -> int:
        """Tokens of the ending a part stopping before ``run`` needs."""
        plan = self.plan()
        return plan.closes[plan.runs[run][0].table][1] if run < len(plan.runs) else 0

    def take(self, room: int, force: bool) -> _Piece | None:
        if self._pos == 0 and self.tokens <= room:
            whole = _whole_piece(self.unit, self.tokens)
            self.done, self.tokens = True, 0
            return whole
        plan = self.plan()
        start = end = self._pos
        cost = self._head(start)
        while end < len(plan.runs):
            add = plan.run_tokens[end]
            if cost + add + self._close(end + 1) <= room or (end == start and force):
                cost += add
                end += 1
            else:
                break
        if end == start:
            return None
        cost += self._close(end)
        piece = self._render(start, end, cost)
        self._pos = end
        self.done = end == len(plan.runs)
        self.tokens = 0 if self.done else self._head(end) + plan.rest_tokens[end]
        return piece

    def _render(self, start: int, end: int, tokens: int) -> _Piece:
        """The part made of runs ``start:end``, with the table head/ending it needs."""
        plan = self.plan()
        atoms = [a for run in plan.runs[start:end] for a in run]
        paragraphs: list[list[str]] = []
        if start > 0:
            paragraphs.append([plan.heads[atoms[0].table][0]])
        for atom in atoms:
            if atom.role in ("para", "head"):
                paragraphs.append([atom.text])
            else:
                paragraphs[-1].append(atom.text)
        if end < len(plan.runs):
            paragraphs[-1].append(plan.closes[plan.runs[end][0].table][0])
        members = [self.unit.members[i] for i in sorted({a.member for a in atoms})]
        return _Piece(
            SEP.join("".join(p) for p in paragraphs),
            tokens,
            self.unit.page,
            tuple(m.block.label for m in members),
            tuple(r for m in members for r in m.regions),
            "solid",
        )


# --- overlap --------------------------------------------------------------------------------

_CHARS_PER_TOKEN_WINDOW = 16


def tail_text(text: str, limit: int) -> tuple[str, int]:
    """The longest suffix of ``text`` within ``limit`` tokens that starts at a word.

    Only the last ``16 * limit`` characters are encoded; a cut inside a word moves to the next
    whitespace (text without spaces, such as CJK, is cut between characters). Returns the
    suffix and its token count.
    """
    if limit <= 0 or not text:
        return "", 0
    encoder = text_encoder()
    window = text[-limit * _CHARS_PER_TOKEN_WINDOW :]
    ids = encoder.encode_ordinary(window)
    if len(ids) > limit:
        decoded = encoder.decode(ids[-limit:]).lstrip("\ufffd")
        window = window[len(window) - len(decoded) :]
    start = len(text) - len(window)
    if start > 0 and window and not window[0].isspace() and not text[start - 1].isspace():
        gap = re.search(r"\s", window)
        if gap is not None:
            window = window[gap.start() :]
    tail = window.strip()
    tokens = count_tokens(tail)
    while tokens > limit:  # the suffix tokenized alone came out longer: drop a word
        gap = re.search(r"\s+", tail[1:])
        tail = tail[gap.end() + 1 :] if gap is not None else tail[1:]
        tokens = count_tokens(tail)
    return tail, tokens


@dataclass(frozen=True, slots=True)
class _Tail:
    """The trailing prose of the last chunk emitted, for the next chunk's overlap."""

    text: str
    spans: tuple[tuple[int, _Piece], ...]
    """``(end offset in text, piece)`` for each piece in it."""


# --- the chunker ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Gather:
    """A whole-page or whole-document chunk being collected (pages / document modes)."""

    page_start: int
    page_end: int
    texts: list[str] = field(default_factory=list)
    labels: dict[str, None] = field(default_factory=dict)
    regions: dict[Region, None] = field(default_factory=dict)
    heading: str | None = None


class Chunker:
    """Streams pages into chunks: feed pages in order with :meth:`add`, then :meth:`finish`.

    Only the pending chunk is held. After :meth:`finish` the chunker starts a new document
    (chunk indexes and headings start over).
    """

    def __init__(
        self, options: ChunkOptions = ChunkOptions(), image_target: ImageTarget | None = None
    ) -> None:
        self.options = options
        self._image_target = image_target
        self._start_document()

    # -- public --------------------------------------------------------------------------

    def add(self, page: Page) -> list[Chunk]:
        """Take the next page; return the chunks it completed."""
        units = _page_units(page, self.options.tables, self._image_target)
        failed = not units and page.status != "ok"
        mode = self.options.mode
        if mode == "chunks":
            if failed:
                self._emit()
                self._emit_empty(page)
            else:
                for unit in units:
                    self._place(unit)
        elif mode == "pages":
            self._gather_page(page, units)
            self._emit_gather()
        else:
            if failed:
                self._emit_gather()
                self._emit_empty(page)
            else:
                self._gather_page(page, units)
        return self._drain()

    def finish(self) -> list[Chunk]:
        """End the document: return the last chunks and start afresh."""
        self._emit()
        self._emit_gather()
        out = self._drain()
        self._start_document()
        return out

    # -- state ---------------------------------------------------------------------------

    def _start_document(self) -> None:
        self._index = 0
        self._stack: list[tuple[int, str]] = []
        self._done: list[Chunk] = []
        self._tail: _Tail | None = None
        self._gather: _Gather | None = None
        self._clear()

    def _clear(self) -> None:
        self._pieces: list[_Piece] = []
        self._texts: list[str] = []
        self._ends: list[int] = []
        self._length = 0
        self._tokens = 0
        self._content = False

    def _drain(self) -> list[Chunk]:
        out, self._done = self._done, []
        return out

    def _path(self) -> str:
        return " > ".join(title for _level, title in self._stack)

    def _enter_heading(self, unit: _Unit) -> None:
        self._stack = [h for h in self._stack if h[0] < unit.level]
        self._stack.append((unit.level, unit.title))

    def _chunk(
        self,
        text: str,
        page_start: int,
        page_end: int,
        labels: Iterable[str],
        heading: str,
        regions: Iterable[Region],
    ) -> None:
        self._done.append(
            Chunk(
                text,
                self._index,
                page_start,
                page_end,
                tuple(dict.fromkeys(labels)),
                heading,
                tuple(dict.fromkeys(regions)),
            )
        )
        self._index += 1

    def _emit_empty(self, page: Page) -> None:
        """The chunk of a page that produced nothing, so it does not vanish."""
        self._chunk("", page.number, page.number, (), self._path(), ())
        self._tail = None

    # -- chunks mode ---------------------------------------------------------------------

    def _place(self, unit: _Unit) -> None:
        if unit.kind == "heading":
            self._open_heading(unit)
            return
        tokens = (
            count_tokens(unit.text)
            if unit.kind != "group"
            else (
                sum(count_tokens(m.text) for m in unit.members)
                + SEP_TOKENS * (len(unit.members) - 1)
            )
        )
        source: _Source
        if unit.kind == "prose":
            source = _Prose(unit, tokens)
        elif unit.kind == "group":
            source = _Group(unit, tokens, self.options.tables)
        else:
            source = _Solid(_whole_piece(unit, tokens))
        self._feed(source)

    def _open_heading(self, unit: _Unit) -> None:
        """A heading starts a chunk; headings in a row share it."""
        piece = _whole_piece(unit, count_tokens(unit.text))
        crowded = self._tokens + SEP_TOKENS + piece.tokens > self.options.chunk_size
        if self._content or (self._pieces and crowded):
            self._emit()
        self._enter_heading(unit)
        self._append(piece, SEP if self._pieces else "")

    def _feed(self, source: _Source) -> None:
        """Place a unit: whole where it fits, else in a new chunk, else split to fill chunks."""
        size = self.options.chunk_size
        while not source.done:
            room = size - self._tokens - SEP_TOKENS if self._pieces else size
            if source.tokens <= room:
                piece = source.take(room, force=True)
                if piece is not None:
                    self._put(piece)
                continue
            if self._content and not (source.tokens > size and source.splittable()):
                self._emit()
                continue
            if not self._pieces:
                room -= self._overlap_reserve()
            piece = source.take(room, force=not self._content)
            if piece is None:
                self._emit()
                continue
            self._put(piece)
            if not source.done:
                self._emit()

    def _overlap_reserve(self) -> int:
        """Room kept for the overlap when a split part opens a chunk."""
        if self.options.chunk_overlap and self._tail is not None:
            return self.options.chunk_overlap + SEP_TOKENS
        return 0

    def _put(self, piece: _Piece) -> None:
        """Add a content piece; a chunk it opens starts with the overlap, if any."""
        if not self._pieces and self._tail is not None and self.options.chunk_overlap:
            limit = min(
                self.options.chunk_overlap, self.options.chunk_size - piece.tokens - SEP_TOKENS
            )
            overlap = self._overlap(limit)
            if overlap is not None:
                self._append(overlap, "")
        joint = ("\n" if piece.continued else SEP) if self._pieces else ""
        self._append(piece, joint)

    def _append(self, piece: _Piece, joint: str) -> None:
        self._texts.append(joint)
        self._texts.append(piece.text)
        self._length += len(joint) + len(piece.text)
        self._ends.append(self._length)
        self._tokens += (SEP_TOKENS if joint else 0) + piece.tokens
        self._pieces.append(piece)
        if piece.kind != "heading":
            self._content = True

    def _overlap(self, limit: int) -> _Piece | None:
        """The last chunk's trailing prose, cut to ``limit`` tokens, as a piece."""
        tail = self._tail
        if tail is None or limit <= 0:
            return None
        text, tokens = tail_text(tail.text, limit)
        if not text:
            return None
        begin = len(tail.text) - len(text)
        covered = [p for end, p in tail.spans if end > begin]
        return _Piece(
            text,
            tokens,
            covered[0].page,
            tuple(label for p in covered for label in p.labels),
            tuple(r for p in covered for r in p.regions),
            "prose",
        )

    def _emit(self) -> None:
        """Close the pending chunk and remember its trailing prose for the overlap."""
        if not self._pieces:
            return
        text = "".join(self._texts)
        pieces = self._pieces
        pages = [p.page for p in pieces]
        self._chunk(
            text,
            min(pages),
            max(pages),
            (label for p in pieces for label in p.labels),
            self._path(),
            (r for p in pieces for r in p.regions),
        )
        self._tail = self._trailing_prose(text)
        self._clear()

    def _trailing_prose(self, text: str) -> _Tail | None:
        if not self.options.chunk_overlap:
            return None
        first = len(self._pieces)
        while first > 0 and self._pieces[first - 1].kind == "prose":
            first -= 1
        if first == len(self._pieces):
            return None
        begin = self._ends[first - 1] if first > 0 else 0
        spans = tuple(
            (self._ends[i] - begin, self._pieces[i]) for i in range(first, len(self._pieces))
        )
        return _Tail(text[begin:], spans)

    # -- pages and document modes --------------------------------------------------------

    def _gather_page(self, page: Page, units: Sequence[_Unit]) -> None:
        gather = self._gather
        if gather is None:
            gather = self._gather = _Gather(page.number, page.number)
        gather.page_start = min(gather.page_start, page.number)
        gather.page_end = max(gather.page_end, page.number)
        for unit in units:
            if unit.kind == "heading":
                self._enter_heading(unit)
            elif gather.heading is None:
                gather.heading = self._path()
            gather.texts.append(unit.text)
            gather.labels.update(dict.fromkeys(unit.labels))
            gather.regions.update(dict.fromkeys(unit.regions))

    def _emit_gather(self) -> None:
        gather = self._gather
        if gather is None:
            return
        heading = gather.heading if gather.heading is not None else self._path()
        self._chunk(
            SEP.join(gather.texts),
            gather.page_start,
            gather.page_end,
            gather.labels,
            heading,
            gather.regions,
        )
        self._gather = None


def chunk_pages(
    pages: Iterable[Page],
    options: ChunkOptions = ChunkOptions(),
    image_target: ImageTarget | None = None,
) -> list[Chunk]:
    """Chunk a whole document at once (see :class:`Chunker` for streaming)."""
    chunker = Chunker(options, image_target)
    chunks: list[Chunk] = []
    for page in pages:
        chunks.extend(chunker.add(page))
    chunks.extend(chunker.finish())
    return chunks
