"""Is a text layer worth trusting? Character-class statistics over its words.

Scanners and old OCR tools bake an invisible text layer into scanned PDFs; a poor one reads
like ``«POAH «3E*»CM tanntxim``. Such a layer is no ground truth for the cross-check, and the
local engine must OCR the page rather than index it. A layer is *garbage* when too many of
its words are implausible:

* unreadable characters (U+FFFD, private use, control, unassigned code points);
* symbols inside a word (``3E*»CM``), other than the joiners real words carry (``-'.,/:``
  and the like) and what formulas hold (mathematical symbols, brackets, primes);
* Latin and Cyrillic letters in one word (Greek is left alone: mathematics mixes it with
  Latin), or digits and letters interleaved more than once outside a formula (``t3x4m``);
* a case pattern no language writes (``tAnNt``: lower, upper, lower again);
* long Latin words with no vowel, or five consonants in a row (``xkcdwrt``).

Real pages, even dense mathematics and tables, stay well under the threshold
(docs/verification.md gives the measured rates).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

GARBAGE_SHARE = 0.2
"""A layer with more implausible words than this share is garbage."""
MIN_WORDS = 8
"""Too few words to judge: such a layer is kept (it rarely matters either way)."""
BAD_CHAR_SHARE = 0.10

_EDGE_PUNCT = "\"'`([{<«»„“”‘’)]}>.,;:!?¡¿…·•*–—-"
_JOINERS = frozenset("-'’.,/:&+%_@#°‐‑·")
_MATH_MARKS = frozenset("′″‴◦∘·•")
_ODD_CASE_ASCII = re.compile(r"[a-z][A-Z]+[a-z]")
_VOWELS = frozenset("aeiouyàáâãäåæèéêëìíîïòóôõöøùúûüýÿœ")
_CONSONANT_RUN = re.compile(r"[bcdfghjklmnpqrstvwxz]{5,}")
_DIGIT_LETTER = re.compile(r"(?:\d[^\W\d_]|[^\W\d_]\d)")


def _bad_char(ch: str) -> bool:
    if ch == "\ufffd":
        return True
    cat = unicodedata.category(ch)
    return cat in ("Co", "Cs", "Cn") or (cat == "Cc" and ch not in "\t\n\r")


def _script(ch: str) -> str:
    """``latin``, ``cyrillic``, ``greek`` or ``other`` for a letter."""
    if ch < "\u0250":
        return "latin"
    if "\u0370" <= ch < "\u0400":
        return "greek"
    if "\u0400" <= ch < "\u0530":
        return "cyrillic"
    return "other"


def _odd_case(alpha: str) -> bool:
    """Lower case, then upper, then lower again (``tAnNt``)."""
    lower_seen = upper_after_lower = False
    for ch in alpha:
        if ch.islower():
            if upper_after_lower:
                return True
            lower_seen = True
        elif ch.isupper() and lower_seen:
            upper_after_lower = True
    return False


def _odd_inner(ch: str) -> bool:
    """A character no real word carries inside it (mathematics allowed: symbols, brackets,
    primes, modifier marks)."""
    if ch.isalnum() or ch in _JOINERS or ch in _MATH_MARKS:
        return False
    return unicodedata.category(ch) not in ("Sm", "Sk", "Ps", "Pe", "Mn", "Mc", "Me")


def implausible(word: str) -> bool:
    """True when ``word`` (one whitespace-separated piece of a text layer) looks like
    mis-recognised text (see the module docstring)."""
    core = word.strip(_EDGE_PUNCT)
    if len(core) < 2:
        return False
    if core.isascii() and core.isalpha():  # the common case, quickly
        return bool(_ODD_CASE_ASCII.search(core)) or _no_vowel(core.lower())
    if any(_bad_char(ch) or _odd_inner(ch) for ch in core):
        return True
    letters = [ch for ch in core if ch.isalpha()]
    if not letters:
        return False
    if {"latin", "cyrillic"} <= {_script(ch) for ch in letters}:
        return True
    mathy = any(unicodedata.category(ch) in ("Sm", "Ps", "Pe") for ch in core)
    if not mathy and len(_DIGIT_LETTER.findall(core)) > 1:
        return True
    for part in re.split(r"[-‐‑/]", core):
        alpha = "".join(ch for ch in part if ch.isalpha())
        if _odd_case(alpha):
            return True
        lower = alpha.lower()
        if all(_script(ch) == "latin" for ch in lower) and _no_vowel(lower):
            return True
    return False


def _no_vowel(lower: str) -> bool:
    """A Latin word of 4+ letters without a vowel, or with 5 consonants in a row."""
    return len(lower) >= 4 and (
        not any(ch in _VOWELS for ch in lower) or bool(_CONSONANT_RUN.search(lower))
    )


@dataclass(frozen=True, slots=True)
class LayerQuality:
    """How a text layer reads: words judged, implausible words, unreadable characters."""

    words: int
    implausible: int
    chars: int
    bad_chars: int

    @property
    def share(self) -> float:
        return self.implausible / self.words if self.words else 0.0

    @property
    def garbage(self) -> bool:
        if self.chars and self.bad_chars > BAD_CHAR_SHARE * self.chars:
            return True
        return self.words >= MIN_WORDS and self.share > GARBAGE_SHARE


def layer_quality(words: Iterable[str]) -> LayerQuality:
    """The quality figures of a text layer given as its whitespace-separated words."""
    n = odd = chars = bad = 0
    for word in words:
        chars += len(word)
        if not word.isprintable() or "\ufffd" in word:
            bad += sum(1 for ch in word if _bad_char(ch))
        if len(word.strip(_EDGE_PUNCT)) >= 2:
            n += 1
            odd += implausible(word)
    return LayerQuality(n, odd, chars, bad)


def is_garbage_text(text: str) -> bool:
    """:func:`layer_quality` of a whole text says garbage."""
    return layer_quality(text.split()).garbage
