"""Overlap: the previous chunk's trailing prose, cut to a token budget at a word."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .._tokens import count_tokens, text_encoder
from .pieces import Piece

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
class Tail:
    """The trailing prose of the last chunk emitted, for the next chunk's overlap."""

    text: str
    spans: tuple[tuple[int, Piece], ...]
    """``(end offset in text, piece)`` for each piece in it."""
