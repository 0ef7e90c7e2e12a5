"""Repetition loops: find one running to the end of a page's output and cut it to one copy."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .._model import Block
from .parsing import parse_grounded


@dataclass(frozen=True, slots=True)
class Loop:
    """A repetition loop running to the end of the text."""

    start: int
    """Where the repeating part begins."""
    period: int
    """Length of one repetition, in characters (approximate when the repeats vary)."""
    keep: int
    """Cut here to keep everything before the loop plus one copy of it."""


_BOUNDARY_RE = re.compile(r"[\s、，。,.;；:：!！?？>)\]]")
_DIGITS_IN_DET = re.compile(r"<\|det\|>.*?<\|/det\|>", re.DOTALL)


def _repeat_links(norm: str, ngram: int, window: int) -> list[int]:
    """For each position, where its ``ngram`` last occurred within ``window`` chars, else -1."""
    last: dict[str, int] = {}
    prev = [-1] * max(0, len(norm) - ngram + 1)
    for i in range(len(prev)):
        g = norm[i : i + ngram]
        p = last.get(g)
        if p is not None and i - p <= window:
            prev[i] = p
        last[g] = i
    return prev


def _dense_tail(prev: list[int], span: int, density: float, start: int) -> int:
    """Walk back from ``start`` while every ``span`` positions stay ``density`` repeated."""
    m = len(prev)
    span = min(span, m)
    if span <= 0:
        return m
    start = min(start, m - span)
    acc = sum(1 for p in prev[start : start + span] if p >= 0)
    need = density * span
    if acc < need:
        return m
    while start > 0:
        acc += (prev[start - 1] >= 0) - (prev[start - 1 + span] >= 0)
        if acc < need:
            break
        start -= 1
    return start


_MARKUP = re.compile(r"<\|det\|>.*?<\|/det\|>|<[^>]*>|\d|\s+", re.DOTALL)
PROBE = 32


def may_end_in_loop(text: str) -> bool:
    """A cheap first test for :func:`find_repetition_loop` (a few microseconds, in C): do the
    last ``PROBE`` characters, without tags, boxes, digits and spaces, occur earlier in
    ``text``? The end of a loop always does; the end of ordinary text seldom does, so a
    streamed answer can be checked often and the full test run only when this says yes."""
    cut = text.rfind("<|det|>")
    if cut > text.rfind("<|/det|>"):  # the answer so far ends inside a box: leave it out
        text = text[:cut]
    cut = text.rfind("<")
    if cut > text.rfind(">"):  # ... or inside a tag
        text = text[:cut]
    norm = _MARKUP.sub("", text)
    if len(norm) < 2 * PROBE:
        return False
    return norm.find(norm[-PROBE:], 0, len(norm) - 1) >= 0


def find_repetition_loop(
    text: str, *, min_repeats: int = 4, min_chars: int = 200, window: int = 4000
) -> Loop | None:
    """Find a repetition loop that runs to the end of ``text``, or ``None``.

    A position "repeats" when the n characters starting there already occurred within the
    previous ``window`` characters. A loop is confirmed when the last 200 characters are 90 %
    repeated at n = 24 (ordinary prose and tables are not); its start is then found by walking
    back while stretches stay 70 % repeated at n = 12, which tolerates the small variations
    real loops have ("主席、副主席、主席、..."). Box coordinates are ignored, since a loop of whole
    blocks repeats with different boxes. Linear in the text length.
    """
    n = len(text)
    if n < min_chars:
        return None
    norm = _DIGITS_IN_DET.sub(lambda m: re.sub(r"\d", "0", m.group(0)), text)
    strict = _repeat_links(norm, 24, window)
    tail = _dense_tail(strict, 200, 0.9, len(strict))
    if tail >= len(strict):
        return None
    loose = _repeat_links(norm, 12, window)
    start = min(tail, _dense_tail(loose, 200, 0.7, tail))
    first = start
    while first < len(loose) and loose[first] < 0:
        first += 1
    if first >= len(loose):
        return None
    loop_start = loose[first]
    period = first - loop_start
    length = n - loop_start
    if period <= 0 or length < min_chars or length < min_repeats * period:
        return None
    keep = min(n, loop_start + period)
    # End the kept copy at a natural boundary (punctuation, space, tag end) when one is near.
    boundary = _BOUNDARY_RE.search(text, keep, min(n, keep + period))
    if boundary is not None:
        keep = boundary.end()
    return Loop(start=loop_start, period=period, keep=keep)


LOOP_NOTE = "[ocr_loaders: repetition loop cut here]"


def cut_repetition_loop(text: str) -> tuple[str, Loop | None]:
    """Cut a trailing repetition loop to one copy; return the kept text and the loop found."""
    loop = find_repetition_loop(text)
    if loop is None:
        return text, None
    return text[: loop.keep].rstrip(), loop


@dataclass(frozen=True, slots=True)
class ParsedPage:
    """Blocks of one page plus what the parser had to do to the raw text."""

    blocks: tuple[Block, ...]
    loop: Loop | None


def parse_page(text: str, finish_reason: str | None = None) -> ParsedPage:
    """Parse one page's output, cutting a trailing repetition loop unless the model stopped.

    A page that ended with ``finish_reason == "stop"`` is parsed as is. Otherwise (``length``,
    or unknown) a loop running to the end is cut to one copy; the caller marks the page
    ``truncated`` and :func:`page_markdown` notes the cut.
    """
    loop = None
    if finish_reason != "stop":
        text, loop = cut_repetition_loop(text)
    return ParsedPage(tuple(parse_grounded(text)), loop)
