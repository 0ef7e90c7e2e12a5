"""Words for the text-layer cross-check: one normalisation for the PDF's text and the OCR's.

Both sides go through :func:`normalize` and :func:`tokens`, so they compare like for like:

* Unicode compatibility forms are folded (NFKC: ligatures ``ﬁ`` -> ``fi``, full-width forms,
  Arabic presentation forms), case is folded, and accents are dropped, including the spacing
  accents some PDFs draw as separate glyphs (``O˘guz`` reads ``Oguz``, as ``Oğuz`` does);
* soft hyphens vanish, and a word hyphenated at a line break is joined (``exam-`` /
  ``ple`` -> ``example``);
* markup the model writes (HTML tags, LaTeX commands, markdown marks) is not text;
* scripts written without spaces between words (Chinese, Japanese, Korean, Thai, Lao, Khmer,
  Myanmar) count one token per character, so spacing differences cost nothing;
* a right-to-left word matches whether its characters are stored in logical or visual order.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from .._model import BBox

SOFT_HYPHEN = "\u00ad"
_HYPHENS = "-\u2010\u2011\u00ad"
_SPACING_ACCENTS = frozenset(
    "\u02d8\u02d9\u02da\u02db\u02dc\u02dd\u00a8\u00b4\u00b8\u02c6\u02c7\u0060\u00af"
)
"""Accents a PDF may draw as a glyph of their own beside the letter (``O˘guz``)."""

_PER_CHAR = (
    "\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f"  # Myanmar
    "\u1100-\u11ff"  # Hangul jamo
    "\u1780-\u17ff"  # Khmer
    "\u2e80-\u2fdf"  # CJK radicals
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3100-\u31ff"  # Bopomofo, Hangul compatibility jamo, Katakana extensions
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\U00020000-\U0003134f"  # CJK extensions B-G
)
_TOKEN = re.compile(rf"[{_PER_CHAR}]|[^\W_{_PER_CHAR}]+")
_ASCII_TOKEN = re.compile(r"[a-z0-9]+")
_DROP = dict.fromkeys(map(ord, _SPACING_ACCENTS | {SOFT_HYPHEN}))
_COMBINING = re.compile(
    "[\u0300-\u036f\u0483-\u0489\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7"
    "\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e4\u06e7\u06e8\u06ea-\u06ed"
    "\u0e31\u0e34-\u0e3a\u0e47-\u0e4e\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff"
    "\u302a-\u302f\u3099\u309a\ufe20-\ufe2f]"
)
"""Combining marks (accents, Hebrew points, Arabic harakat, Thai vowel and tone marks,
kana voicing marks) dropped after decomposition, on both sides alike."""
_RTL = re.compile(r"[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff]")
_MARKUP = re.compile(
    r"<[^>]{0,200}>"  # HTML tags (tables, <sup>, <br>)
    r"|\\[A-Za-z]+"  # LaTeX commands
    r"|&(?:[a-z]+|#\d+);"  # HTML entities
)
_LINE_HYPHEN = re.compile(rf"(\w)[{_HYPHENS}][ \t]*\n[ \t]*(?=\w)")


def normalize(text: str) -> str:
    """Compatibility-folded, case-folded text without accents or soft hyphens."""
    if text.isascii():
        return text.lower()
    # spacing accents first: NFKC would turn them into a space and a combining mark
    text = text.translate(_DROP)
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    bare = _COMBINING.sub("", decomposed)
    return unicodedata.normalize("NFC", bare)  # Hangul syllables back from their jamo


def _canonical(token: str) -> str:
    """A right-to-left word stored in visual order matches its logical order."""
    if _RTL.search(token):
        reverse = token[::-1]
        return min(token, reverse)
    return token


def tokens(text: str) -> list[str]:
    """The comparable words of a text (see the module docstring)."""
    if "\n" in text or SOFT_HYPHEN in text:
        text = _LINE_HYPHEN.sub(r"\1", text.replace(SOFT_HYPHEN + "\n", ""))
    if "<" in text or "\\" in text or "&" in text:
        text = _MARKUP.sub(" ", text)
    if text.isascii():
        return _ASCII_TOKEN.findall(text.lower())
    return [_canonical(t) for t in _TOKEN.findall(normalize(text))]


class LayerWord(NamedTuple):
    """One word of a PDF's text layer: its text and its box in the page frame of ``regions``
    (points, top-left origin, ``/Rotate`` applied); ``line`` numbers the layer's lines.

    A named tuple, not a dataclass: a page has hundreds of these, made in the renderer and
    unpickled in the loader's process, and a tuple is made at half the cost."""

    text: str
    bbox: BBox
    line: int

    @property
    def center(self) -> tuple[float, float]:
        return ((self.bbox[0] + self.bbox[2]) / 2, (self.bbox[1] + self.bbox[3]) / 2)


class LayerToken(NamedTuple):
    """A comparable token of the text layer and the word it came from."""

    token: str
    word: int
    """Index into the layer's words."""


def _joined_words(words: Sequence[LayerWord]) -> Iterator[tuple[int, str]]:
    """``(index, text)`` of each word, a word ending in a hyphen as the last word of its line
    joined with the first word of the next line when that starts in lower case (``exam-`` +
    ``ple``); the joined text belongs to the first word."""
    i = 0
    while i < len(words):
        text = words[i].text
        joined = i
        while (
            text
            and text[-1] in _HYPHENS
            and joined + 1 < len(words)
            and words[joined + 1].line != words[joined].line
            and words[joined + 1].text[:1].islower()
        ):
            joined += 1
            text = text[:-1] + words[joined].text
        yield i, text
        i = joined + 1


def layer_tokens(words: Sequence[LayerWord]) -> list[LayerToken]:
    """The comparable tokens of a text layer's words, in order, each with its word."""
    return [LayerToken(t, i) for i, text in _joined_words(words) for t in tokens(text)]


def layer_counts(words: Sequence[LayerWord]) -> Counter[str]:
    """The comparable tokens of a text layer's words as a multiset: what a page's counts need
    (``verify="flag"``), without a token object per word."""
    counts: Counter[str] = Counter()
    for _i, text in _joined_words(words):
        counts.update(tokens(text))
    return counts


def joined_text(words: Iterable[LayerWord]) -> str:
    """Words as running text, as a paragraph reads: words of a line separated by spaces, lines
    joined by a space; a word broken at a line's end is joined with the next line's first word:
    without its hyphen before lower case (``ef-`` / ``ficient`` -> ``efficient``), with it before
    upper case (``Baden-`` / ``Württemberg``)."""
    lines: list[list[str]] = []
    last: int | None = None
    for word in words:
        if last is None or word.line != last:
            lines.append([])
            last = word.line
        lines[-1].append(word.text)
    text = ""
    for line in lines:
        piece = " ".join(line)
        broken = len(text) > 1 and text[-1] in _HYPHENS and text[-2].isalpha()
        if broken and piece[:1].islower():  # ef- / ficient
            text = text[:-1] + piece
        elif broken and piece[:1].isupper():  # Baden- / Württemberg: the hyphen is the word's
            text += piece
        else:
            text = f"{text} {piece}" if text else piece
    return text
