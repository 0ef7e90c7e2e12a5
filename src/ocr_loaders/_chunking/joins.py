"""Paragraphs and tables continued across a page break, joined; hyphenation mended.

A page ends mid-paragraph when its last body block is text with no sentence end and the next
page's first body block starts lower-case (or the first finished with a hyphenated ``exam-``).
A table continues when the page's last body block is a table and the next page opens with a
table of the same width (its repeated header row, if any, is dropped). Both only join
consecutive pages, the first block low on its page and the second high on its own, so a page
selection that skips pages never joins. The joined unit keeps both pages' regions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .._grounding import block_markdown
from .._model import Block
from .._tokens import count_tokens
from .options import TableFormat
from .units import Member, Unit, tidy

LOW_ON_PAGE = 600
"""A block that continues on the next page ends below this height (0..999 units)."""
HIGH_ON_PAGE = 350
"""A block that continues the previous page starts above this height."""
_CONJUNCTIONS = frozenset({"and", "or", "nor", "to", "und", "oder", "bis", "et", "ou"})
_SENTENCE_END_RE = re.compile(r"[.!?。！？…][\"'”’»)\]*_]*\s*$")
_LINE_HYPHEN_RE = re.compile(r"(\b[^\W\d_]{2,})-[ \t]*\n[ \t]*([^\W\d_]+)")
_SPACE_HYPHEN_RE = re.compile(r"(\b[^\W\d_]{2,})- ([^\W\d_]+)")
_END_WORD_RE = re.compile(r"(\b[^\W\d_]+)-$")
_START_WORD_RE = re.compile(r"[^\W\d_]+")
_ROW_RE = re.compile(r"<tr\b[^>]*>.*?</tr\s*>", re.IGNORECASE | re.DOTALL)
_TABLE_RE = re.compile(r"\s*(<table\b[^>]*>)(.*)</table\s*>\s*", re.IGNORECASE | re.DOTALL)
_CELL_RE = re.compile(r"<td\b([^>]*)>", re.IGNORECASE)
_COLSPAN_RE = re.compile(r"colspan\s*=\s*[\"']?(\d+)", re.IGNORECASE)
_TAG_RE = re.compile(r"<[^>]+>")
_PROSE_LABELS = frozenset({"text"})
_NOT_MENDED = frozenset({"table", "equation", "image"})


def hyphen_join(head: str, tail: str) -> str:
    """Two halves of a word cut by a line or page break: ``exam`` + ``ple`` -> ``example``,
    but ``second`` + ``order`` -> ``second-order``.

    The cl100k vocabulary serves as the lexicon: a real word cut in two encodes in fewer tokens
    whole than as its halves, while a compound that had its own hyphen does not.
    """
    whole = head + tail
    if count_tokens(" " + whole) < count_tokens(" " + head) + count_tokens(tail):
        return whole
    return f"{head}-{tail}"


def mend_hyphens(text: str) -> tuple[str, int]:
    """Undo end-of-line hyphenation kept inside a block (``exam-\nple``, or ``exam- ple`` as
    the model writes it) when the second half is lower-case, with :func:`hyphen_join`;
    ``pre- and post-`` is left alone. Returns the text and the number of words mended."""
    mended = 0

    def mend(m: re.Match[str]) -> str:
        nonlocal mended
        head, tail = m.group(1), m.group(2)
        if not tail[0].islower() or tail.lower() in _CONJUNCTIONS:
            return m.group(0)
        mended += 1
        return hyphen_join(head, tail)

    text = _LINE_HYPHEN_RE.sub(mend, text)
    text = _SPACE_HYPHEN_RE.sub(mend, text)
    return text, mended


def mend_block(block: Block) -> tuple[Block, int]:
    """The block with its hyphenation mended (tables, equations and images untouched)."""
    if block.label in _NOT_MENDED or "-" not in block.text:
        return block, 0
    text, n = mend_hyphens(block.text)
    return (Block(block.label, block.boxes, text, block.index), n) if n else (block, 0)


def _bottom(block: Block) -> int:
    return max((b[3] for b in block.boxes), default=0)


def _top(block: Block) -> int:
    return min((b[1] for b in block.boxes), default=999)


def _is_cjk(ch: str) -> bool:
    return "\u3040" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" or "\uf900" <= ch <= "\ufaff"


@dataclass(frozen=True, slots=True)
class _Table:
    """A block that is one well-formed HTML table: its opening tag and its rows."""

    opening: str
    rows: tuple[str, ...]

    @property
    def columns(self) -> int:
        """The widest row, counting ``colspan``."""
        return max(
            sum(int(m.group(1)) if (m := _COLSPAN_RE.search(attrs)) else 1 for attrs in cells)
            for cells in (_CELL_RE.findall(row) for row in self.rows)
        )


def _table(block: Block) -> _Table | None:
    if block.label != "table" or block.text.lower().count("<table") != 1:
        return None
    m = _TABLE_RE.fullmatch(block.text)
    if m is None:
        return None
    rows = tuple(_ROW_RE.findall(m.group(2)))
    if not rows or _ROW_RE.sub("", m.group(2)).strip():
        return None
    return _Table(m.group(1), rows)


def _row_text(row: str) -> str:
    return " ".join(_TAG_RE.sub(" ", row).split()).lower()


def continues(unit: Unit) -> bool:
    """Could this last unit of a page go on at the top of the next page?"""
    last = unit.members[-1].block if unit.members else None
    if last is None or _bottom(last) < LOW_ON_PAGE:
        return False
    if unit.kind == "prose":
        return last.label in _PROSE_LABELS and not _SENTENCE_END_RE.search(unit.text)
    return unit.kind == "group" and _table(last) is not None


@dataclass(frozen=True, slots=True)
class Joined:
    """Two units made one, and what kind of join it was (``text`` or ``table``)."""

    unit: Unit
    kind: str


def join(prev: Unit, prev_page: int, nxt: Unit, tables: TableFormat) -> Joined | None:
    """``prev`` (the last unit of page ``prev_page``) and ``nxt`` (the first of the next page)
    as one unit, or None when ``nxt`` does not continue ``prev``."""
    first = nxt.members[0].block if nxt.members else None
    if first is None or _top(first) > HIGH_ON_PAGE or not continues(prev):
        return None
    if prev.kind == "prose" and nxt.kind == "prose" and first.label in _PROSE_LABELS:
        return _join_prose(prev, prev_page, nxt)
    if prev.kind == "group" and nxt.kind == "group" and first.label == "table":
        return _join_tables(prev, prev_page, nxt, tables)
    return None


def _glue(a: str, b: str) -> str | None:
    """``a`` continued by ``b`` as one text, or None when ``b`` starts a new sentence."""
    a, b = a.rstrip(), b.lstrip()
    if not a or not b:
        return None
    head = _END_WORD_RE.search(a)
    if head is not None and b[0].isalpha():
        if not b[0].islower():
            return a + b
        tail = _START_WORD_RE.match(b)
        assert tail is not None
        return a[: head.start()] + hyphen_join(head.group(1), tail.group(0)) + b[tail.end() :]
    if _is_cjk(a[-1]) and _is_cjk(b[0]):
        return a + b
    return a + " " + b if b[0].islower() else None


def _join_prose(prev: Unit, prev_page: int, nxt: Unit) -> Joined | None:
    a, b = prev.members[0], nxt.members[0]
    text = _glue(a.text, b.text)
    raw = _glue(a.block.text, b.block.text)
    if text is None or raw is None:
        return None
    block = Block(a.block.label, b.block.boxes, raw, a.block.index)
    member = Member(block, text, a.regions + b.regions)
    joins = (*prev.joins, f"text {prev_page}-{nxt.page}", *nxt.joins)
    return Joined(Unit("prose", prev.page, (member,), joins=joins), "text")


def _join_tables(prev: Unit, prev_page: int, nxt: Unit, tables: TableFormat) -> Joined | None:
    a, b = prev.members[-1], nxt.members[0]
    top, bottom = _table(a.block), _table(b.block)
    if top is None or bottom is None or top.columns != bottom.columns:
        return None
    rows = bottom.rows
    if _row_text(rows[0]) == _row_text(top.rows[0]):
        rows = rows[1:]  # the header row, repeated on the new page
    html = top.opening + "".join(top.rows + rows) + "</table>"
    block = Block("table", b.block.boxes, html, a.block.index)
    member = Member(block, tidy(block_markdown(block, tables=tables)), a.regions + b.regions)
    joins = (*prev.joins, f"table {prev_page}-{nxt.page}", *nxt.joins)
    members = (*prev.members[:-1], member, *nxt.members[1:])
    return Joined(Unit("group", prev.page, members, joins=joins), "table")
