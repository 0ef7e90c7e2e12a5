"""Tables split between rows, the header row repeated in every part; figure groups kept whole."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .._grounding import TABLE_RE, block_markdown, html_table_to_markdown
from .._tokens import count_tokens
from .options import SEP, SEP_TOKENS, TableFormat
from .pieces import Measured, Piece, whole_piece
from .units import Unit, tidy

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
    for m in TABLE_RE.finditer(markdown_html):
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
class _Atom(Measured):
    """Smallest text of a group: a paragraph, or a table's head, one row, or its ending."""

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


def _plan_group(unit: Unit, tables: TableFormat) -> _Plan:
    """Lay out a group's blocks as atoms and cut them into runs."""
    atoms: list[_Atom] = []
    heads: list[tuple[str, int]] = []
    closes: list[tuple[str, int]] = []
    for i, member in enumerate(unit.members):
        if member.block.label != "table":
            atoms.append(_Atom(member.text, count_tokens(member.text), i, "para"))
            continue
        html = tidy(block_markdown(member.block, tables="html"))
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


class Group:
    """A table or figure with its captions: whole if it fits, else split between rows."""

    def __init__(self, unit: Unit, tokens: int, tables: TableFormat) -> None:
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

    def take(self, room: int, force: bool) -> Piece | None:
        if self._pos == 0 and self.tokens <= room:
            whole = whole_piece(self.unit, self.tokens)
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

    def _render(self, start: int, end: int, tokens: int) -> Piece:
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
        return Piece(
            SEP.join("".join(p) for p in paragraphs),
            tokens,
            self.unit.page,
            tuple(m.block.label for m in members),
            tuple(r for m in members for r in m.regions),
            "solid",
            joins=self.unit.joins,
        )
