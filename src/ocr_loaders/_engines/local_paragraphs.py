"""Rows -> paragraphs (spacing, indentation, font size and weight) and their labels:
``title`` / ``sub_title`` / captions / ``text``, as DeepSeek-OCR labels them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .._model import BBox
from .local_geometry import Item, Row, union_bbox, y_overlap

# --- text helpers ---------------------------------------------------------------------------

_HYPHEN_END = re.compile(r"[^\W\d_]-$")
_LOWER_START = re.compile(r"^[^\W\d_]")
_SYMBOL_BULLET = r"[•●▪◦‣■□►▶✓✔·∙○◆◇\-–—*!\uf0a7\uf0b7]\s"
_BULLET_START = re.compile(
    rf"^(?:{_SYMBOL_BULLET}|\(?\d{{1,3}}[.)]\s|\(?[a-z][.)]\s|\([ivx]{{1,4}}\)\s)"
)
_SYMBOL_BULLET_START = re.compile(f"^{_SYMBOL_BULLET}")
_TERMINAL_END = re.compile(
    r"[.!?:;。！？]['\"”’)\]]?"
    r"(?:[\u00b9\u00b2\u00b3\u2070-\u2079*†‡§]+|(?<=[^\W\d_][.!?])\d{1,2})?$"
)
"""A sentence's end, with a footnote mark after it (``benchmarks.¹``, ``results.3``)."""
_CAPTION_START = re.compile(
    r"^(?P<kind>figure|fig\.|table|tab\.|abbildung|abb\.|tabelle|图|表)\s*[\dIVX]+[a-z]?\s*[.:|]",
    re.IGNORECASE,
)
_TAG_LIKE = re.compile(r"<\|\s*/?\s*(?:ref|det|grounding)\s*\|>")


def join_lines(lines: Iterable[str]) -> str:
    """Join wrapped lines into one paragraph, undoing end-of-line hyphenation.

    ``"effi-" + "cient"`` becomes ``"efficient"``; a hyphen before an upper-case letter or a
    digit is kept, with no space (``"Lucene-" + "BM25"`` gives ``"Lucene-BM25"``).
    """
    out = ""
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if not out:
            out = line
        elif _HYPHEN_END.search(out):
            out = (out[:-1] if line[:1].islower() else out) + line
        else:
            out = f"{out} {line}"
    return out


def clean_text(text: str) -> str:
    """Remove anything that would read as a grounding tag, and control characters."""
    text = _TAG_LIKE.sub("", text)
    return "".join(ch for ch in text if ch in "\n\t" or ch >= " ")


@dataclass(slots=True)
class Para:
    rows: list[Row] = field(default_factory=list)

    @property
    def bbox(self) -> BBox:
        return union_bbox((r.x0, r.y0, r.x1, r.y1) for r in self.rows)

    @property
    def size(self) -> float:
        chars = [(max(len(r.text), 1), r.size) for r in self.rows]
        total = sum(c for c, _ in chars)
        return sum(c * s for c, s in chars) / total

    @property
    def bold(self) -> bool:
        return all(r.bold for r in self.rows)

    @property
    def text(self) -> str:
        return join_lines(r.text for r in self.rows)


# --- rows -> paragraphs -----------------------------------------------------------------------


def _continues_row(a: Row, b: Row) -> bool:
    """``b`` is the rest of ``a``'s visual line (split by MuPDF or by a column cut)."""
    if a.kind != "line" or b.kind != "line":
        return False
    size = max(a.size, b.size)
    return (
        y_overlap(a, b) >= 0.5 * min(a.h, b.h)
        and b.x0 >= a.x1 - 0.5 * size
        and b.x0 - a.x1 <= 2.0 * size
    )


def _starts_list_item(text: str) -> bool:
    return bool(_BULLET_START.match(text))


def _after_large_initial(para: Para, row: Row, size: float) -> bool:
    """``row`` continues a first line made taller by a large initial (a drop cap, the first
    word in capitals): the sentence runs on in lower case and both lines end at the same
    right edge of the column."""
    last = para.rows[-1]
    return (
        len(para.rows) == 1
        and size < last.size <= 2.0 * size
        and not _TERMINAL_END.search(last.text)
        and row.text[:1].islower()
        and abs(row.x1 - last.x1) <= size
    )


def _joins(para: Para, row: Row, *, ocr: bool) -> bool:
    """Whether ``row`` continues paragraph ``para`` (same column, close, same style).

    OCR line heights vary with ascenders and descenders, so ``ocr`` allows more size spread,
    and a first line made taller by a large initial (a scanned book's chapter opening).
    """
    last = para.rows[-1]
    if row.kind != "line" or last.kind != "line":
        return False
    size = min(last.size, row.size)
    big = max(last.size, row.size)
    if big > (1.4 if ocr else 1.15) * size and not (ocr and _after_large_initial(para, row, size)):
        return False  # different font size
    if last.bold and not row.bold and len(para.rows) == 1:
        return False  # a bold heading line, then body text
    if row.bold and not last.bold and _TERMINAL_END.search(last.text) and len(row.text) < 100:
        return False  # body text, then a bold heading line
    gap = row.y0 - last.y1
    if gap > 0.7 * size or gap < -0.6 * min(last.h, row.h):
        return False
    px0, _py0, px1, _py1 = para.bbox
    overlap = min(px1, row.x1) - max(px0, row.x0)
    if overlap < 0.5 * min(row.x1 - row.x0, px1 - px0):
        return False
    if _starts_list_item(row.text):
        return False
    ended = bool(_TERMINAL_END.search(last.text))
    first = para.rows[0]
    if ended and _SYMBOL_BULLET_START.match(first.text) and row.x0 < first.x0 + 0.5 * size:
        return False  # a bulleted item's lines hang right of its bullet; back at it: new text
    if (
        len(para.rows) == 1
        and last.x1 - last.x0 < 0.6 * (row.x1 - row.x0)
        and not last.text.endswith(("-", ","))
    ):
        return False  # a short first line over a long one: a heading or a label
    indented = row.x0 > px0 + 0.8 * size and last.x0 <= px0 + 0.5 * size
    short = last.x1 < px1 - 2.5 * size
    return not (ended and (indented or short))


def _continues_across(prev: Para, nxt: Para) -> bool:
    """A paragraph cut by a column or page-region break: no terminal punctuation before,
    a lower-case start after, same style, and the next part starts in a new column."""
    if not prev.rows or not nxt.rows or prev.rows[-1].kind != "line" or nxt.rows[0].kind != "line":
        return False
    a, b = prev.rows[-1], nxt.rows[0]
    if _TERMINAL_END.search(a.text) or not _LOWER_START.match(b.text) or not b.text[0].islower():
        return False
    if abs(prev.size - nxt.size) > 0.1 * max(prev.size, nxt.size) or prev.bold != nxt.bold:
        return False
    return b.y0 < a.y0 and b.x0 > a.x1 - 0.5 * a.size


def build_paragraphs(regions: list[list[Row]], *, ocr: bool = False) -> list[Para]:
    """Rows in reading order -> paragraphs; tables and images stay single-row 'paragraphs'.
    ``ocr``: the rows come from OCR (see :func:`_joins`)."""
    rows: list[Row] = []
    for region in regions:
        for row in region:
            if rows and _continues_row(rows[-1], row):
                rows[-1] = Row.of(rows[-1].items + row.items)
            else:
                rows.append(row)
    paras: list[Para] = []
    for row in rows:
        if paras and _joins(paras[-1], row, ocr=ocr):
            paras[-1].rows.append(row)
        else:
            paras.append(Para([row]))
    out: list[Para] = []
    for para in paras:
        if out and _continues_across(out[-1], para):
            out[-1] = MultiPara.of(out[-1], para)
        else:
            out.append(para)
    return out


@dataclass(slots=True)
class MultiPara(Para):
    """A paragraph flowing across columns: one box per part."""

    parts: list[list[Row]] = field(default_factory=list)

    @classmethod
    def of(cls, prev: Para, nxt: Para) -> MultiPara:
        prev_parts = prev.parts if isinstance(prev, MultiPara) else [prev.rows]
        return cls(rows=prev.rows + nxt.rows, parts=[*prev_parts, nxt.rows])

    def boxes(self) -> list[BBox]:
        return [union_bbox((r.x0, r.y0, r.x1, r.y1) for r in part) for part in self.parts]


# --- labels ---------------------------------------------------------------------------------


def body_size(lines: Iterable[Item]) -> float:
    """The font size (or line height) carrying most characters, rounded to half units."""
    weight: dict[float, int] = {}
    for it in lines:
        if it.kind == "line" and it.text.strip():
            key = round(it.size * 2) / 2
            weight[key] = weight.get(key, 0) + len(it.text.strip())
    if not weight:
        return 0.0
    return max(sorted(weight), key=lambda s: weight[s])


def _heading_level(para: Para, body: float, *, ocr: bool) -> str | None:
    """``title``, ``sub_title`` or ``None`` for a text paragraph."""
    text = para.text
    if (
        body <= 0
        or len(text) > 200
        or len(para.rows) > 3
        or sum(ch.isalpha() for ch in text) < 2
        or _CAPTION_START.match(text)
        or _SYMBOL_BULLET_START.match(text)  # a list item set large, not a heading
    ):
        return None
    ratio = para.size / body
    if ocr:
        if not _wordy(text):
            return None  # a formula or a figure's labels, read as letters and digits
        # OCR line heights are noisy (ascenders, descenders): ask for a clearer jump.
        if ratio >= 2.0 and len(para.rows) <= 2:
            return "title"
        if ratio >= 1.4 and len(text) <= 120:
            return "sub_title"
        return "sub_title" if _bold_line_heading(para, 0.8 <= ratio < 1.4) else None
    if ratio >= 1.6:
        return "title"
    if ratio >= 1.15:
        return "sub_title"
    return "sub_title" if _bold_line_heading(para, abs(ratio - 1) < 0.15) else None


def _wordy(text: str) -> bool:
    """Text made of words: at least half its tokens hold two letters or more, and one
    three (``1.6 Wege und Knoten``, ``Definition 17``; not ``x n x 0 1 k n1 f x x``)."""
    tokens = text.split()
    letters = [sum(ch.isalpha() for ch in t) for t in tokens]
    return 2 * sum(n >= 2 for n in letters) >= len(tokens) and max(letters, default=0) >= 3


def _bold_line_heading(para: Para, body_sized: bool) -> bool:
    """A heading set in bold at about the body's size: one bold line, not a sentence."""
    text = para.text
    return (
        body_sized
        and para.bold
        and len(para.rows) == 1
        and len(text) <= 100
        and not _TERMINAL_END.search(text.rstrip("."))
        and not text.endswith(".")
    )


def _caption_label(text: str) -> str | None:
    m = _CAPTION_START.match(text)
    if not m:
        return None
    kind = m.group("kind").lower()
    return "table_caption" if kind.startswith(("tab", "表")) else "image_caption"


def para_label(para: Para, body: float, *, ocr: bool) -> str:
    kind = para.rows[0].items[0].kind
    if kind != "line":
        return kind
    text = para.text
    return _caption_label(text) or _heading_level(para, body, ocr=ocr) or "text"


def promote_title(paras: list[Para], labels: list[str], body: float, height: float) -> None:
    """With no ``title`` on the page, the largest heading near the top becomes one.

    DeepSeek-OCR labels a page's main heading ``title`` even when it is only moderately
    larger than the body text (a paper's title at 14 pt over 10 pt text).
    """
    if "title" in labels or body <= 0:
        return
    heads = [k for k, lab in enumerate(labels) if lab == "sub_title"]
    if not heads:
        return
    top = max(heads, key=lambda k: (paras[k].size, -k))
    para = paras[top]
    if (
        para.size >= 1.25 * body
        and para.bbox[1] <= height / 3
        and all(paras[k].size < para.size - 0.1 for k in heads if k != top)
    ):
        labels[top] = "title"
