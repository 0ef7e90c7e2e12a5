"""Prose split only when it must: at sentences, then whitespace, then anywhere."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence

from .._tokens import count_tokens
from .pieces import Piece, whole_piece
from .units import Unit

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


class Prose:
    """A prose block, split at sentences, then whitespace, then anywhere, only if needed."""

    def __init__(self, unit: Unit, tokens: int) -> None:
        self.unit = unit
        self.tokens = tokens
        self.done = False
        self._segs: deque[Segment] | None = None
        self._parts = 0

    def splittable(self) -> bool:
        return True

    def _piece(self, text: str, tokens: int, continued: bool) -> Piece:
        u = self.unit
        return Piece(text, tokens, u.page, u.labels, u.regions, "prose", continued, u.joins)

    def take(self, room: int, force: bool) -> Piece | None:
        if self._segs is None:
            if self.tokens <= room:
                whole = whole_piece(self.unit, self.tokens)
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

    def _take(self, room: int, force: bool) -> Piece | None:
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
