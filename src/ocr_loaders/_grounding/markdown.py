"""Blocks -> clean markdown: headings marked, figures linked to their crops, HTML made inert."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence

from .._model import Block
from .labels import CAPTION_LABELS, HEADING_LABELS, TABLE_RE
from .loops import LOOP_NOTE
from .tables import html_table_to_markdown

ImageLink = Callable[[Block, int], str]
"""Given an image block and its 0-based number among the page's images, the link target."""

_CENTER_RE = re.compile(r"</?\s*center\s*>", re.IGNORECASE)
_LATEX_FIXES = ((r"\coloneqq", ":="), (r"\eqqcolon", "=:"))


def default_image_link(page: int | None = None) -> ImageLink:
    """Link targets as DeepSeek's own cleanup names crops: ``images/{page}_{k}.jpg``.

    With no page number (a single image), ``images/{k}.jpg``. Nothing writes those files:
    pass this only where you write the crops under those names yourself.
    """

    def link(_block: Block, k: int) -> str:
        return f"images/{k}.jpg" if page is None else f"images/{page}_{k}.jpg"

    return link


def caption_for(blocks: Sequence[Block], i: int) -> str:
    """Short alt text for block ``i``: the first line of an adjacent caption, if any."""
    for j in (i + 1, i - 1):
        if 0 <= j < len(blocks) and blocks[j].label in CAPTION_LABELS:
            first = _CENTER_RE.sub("", blocks[j].text).strip().split("\n", 1)[0]
            first = re.sub(r"[\[\]\n]", " ", first)
            return first[:120].rstrip()
    return ""


_TAG_HTML_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)((?:\s[^<>]*)?)/?>")
_TABLE_TAGS = frozenset({"table", "thead", "tbody", "tr", "td", "th"})
_ACTIVE_TAGS = frozenset(
    {
        "script",
        "style",
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "link",
        "meta",
        "base",
        "form",
        "input",
        "button",
        "textarea",
        "select",
        "option",
        "svg",
        "math",
        "img",
        "image",
        "video",
        "audio",
        "source",
        "track",
        "picture",
        "body",
        "html",
        "head",
        "title",
        "template",
        "noscript",
        "xmp",
        "plaintext",
        "a",
        "area",
        "map",
        "portal",
    }
)
_SPAN_ATTR_RE = re.compile(r"""\s(?:rowspan|colspan)\s*=\s*["']?\d+["']?""", re.IGNORECASE)
_RISKY_ATTR_RE = re.compile(r"\bon[a-z]+\s*=|javascript:|\bsrcdoc\s*=|\bstyle\s*=", re.IGNORECASE)


def neutralize_html(text: str) -> str:
    """Make model output inert where markdown renderers pass HTML through.

    DeepSeek-OCR writes tables as ``<table><tr><td>`` with ``rowspan``/``colspan``: those are
    kept, other attributes dropped. Tags that can run code or load content (``<script>``,
    ``<img onerror=...>``, ``<iframe>``, links) and any tag carrying an event handler or a
    ``javascript:`` URL are escaped, so they show as text. Anything else (``a <b`` in math,
    ``x<y and z>w``) is left as the model wrote it.
    """

    def fix(m: re.Match[str]) -> str:
        closing, name, attrs = m.group(1), m.group(2).lower(), m.group(3)
        if name in _TABLE_TAGS:
            kept = "" if closing else "".join(a.group(0) for a in _SPAN_ATTR_RE.finditer(attrs))
            return f"<{closing}{name}{kept}>"
        if name in _ACTIVE_TAGS or _RISKY_ATTR_RE.search(attrs):
            return html.escape(m.group(0), quote=False)
        return m.group(0)

    return _TAG_HTML_RE.sub(fix, text) if "<" in text else text


def block_markdown(
    block: Block, *, tables: str = "html", image_target: str = "", caption: str = ""
) -> str:
    """Clean markdown for one block: tags gone, headings marked, captions unwrapped.

    Equations keep the model's ``\\[ ... \\]`` delimiters (inline math keeps ``\\( \\)``);
    tables stay the model's HTML unless ``tables="markdown"`` and the table is simple. HTML
    other than table markup is escaped (:func:`neutralize_html`).
    """
    text = neutralize_html(_CENTER_RE.sub("", block.text)).strip()
    for old, new in _LATEX_FIXES:
        text = text.replace(old, new)
    label = block.label
    if label == "image":  # the caption is its own block: a link only, and only to a real file
        return f"![figure]({image_target})" if image_target else ""
    if label in HEADING_LABELS and text and not text.startswith("#"):
        first, _, rest = text.partition("\n")
        hashes = "#" if label == "title" else "##"
        text = f"{hashes} {first}" + (f"\n{rest}" if rest else "")
    if label == "table" and tables == "markdown":
        text = TABLE_RE.sub(lambda m: html_table_to_markdown(m.group(0)) or m.group(0), text)
    return text


def to_markdown(
    blocks: Sequence[Block],
    *,
    tables: str = "html",
    image_link: ImageLink | None = None,
    loop_cut: bool = False,
) -> str:
    """Clean markdown for a page's blocks, blocks separated by blank lines.

    Image blocks become ``![figure](target)`` with targets from ``image_link``; with no
    ``image_link`` (or an empty target) they leave nothing, so no link points at a file that
    was never written; their caption stays, once, as its own line. ``loop_cut`` appends a
    visible note where a repetition loop was cut.
    """
    parts: list[str] = []
    k = 0
    for i, block in enumerate(blocks):
        target = ""
        caption = ""
        if block.label == "image":
            target = image_link(block, k) if image_link is not None else ""
            caption = caption_for(blocks, i)
            k += 1
        md = block_markdown(block, tables=tables, image_target=target, caption=caption)
        if md:
            parts.append(md)
    if loop_cut:
        parts.append(LOOP_NOTE)
    out = "\n\n".join(parts)
    return re.sub(r"\n{3,}", "\n\n", out)
