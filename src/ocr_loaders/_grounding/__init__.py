"""DeepSeek-OCR grounded markdown: raw text <-> blocks, blocks -> clean markdown.

The grammar (docs/grounding.md) is a sequence of block headers
``<|ref|>LABEL<|/ref|><|det|>[[x0, y0, x1, y1], ...]<|/det|>`` each followed by its content,
which runs to the next header. Real outputs bend it in many ways, so the parser is lossless and
tolerant: it never raises, never ``eval``s, and never drops text that is not a tag:

* text before the first header (or after a block that cannot hold text) becomes a ``text`` block;
* box lists are read with a regex: missing commas, stray letters, out-of-range and inverted
  corners are mended; a box that cannot be read is dropped, its block is kept;
* broken nesting (``<|ref|>a<|/ref|>s<|/ref|><|det|>``) and unclosed tags are absorbed;
* ``<|grounding|>OCR this image.`` output, where the line sits inside the ref tag, becomes ``text``;
* table HTML the model wrote after a caption or footnote header is given back to its table;
* a repetition loop at the end is detected by :func:`find_repetition_loop` and cut by
  :func:`parse_page`, which says so on the page.

Modules: :mod:`.labels` (tags and labels), :mod:`.parsing` (text -> blocks, blocks -> grounded
text), :mod:`.loops` (repetition loops, one page's parse), :mod:`.markdown` (blocks -> clean
markdown, HTML made inert) and :mod:`.tables` (simple HTML tables -> pipe tables). Box ->
page coordinates are :func:`ocr_loaders._model.scale_box` and :meth:`Block.scaled_boxes`.
"""

from .labels import (
    CAPTION_LABELS,
    DET,
    DET_END,
    HEADING_LABELS,
    KNOWN_LABELS,
    REF,
    REF_END,
    TABLE_RE,
)
from .loops import (
    LOOP_NOTE,
    Loop,
    ParsedPage,
    cut_repetition_loop,
    find_repetition_loop,
    may_end_in_loop,
    parse_page,
)
from .markdown import (
    ImageLink,
    block_markdown,
    caption_for,
    default_image_link,
    neutralize_html,
    to_markdown,
)
from .parsing import format_grounded, parse_boxes, parse_grounded
from .tables import html_table_to_markdown, parse_html_table

__all__ = [
    "CAPTION_LABELS",
    "DET",
    "DET_END",
    "HEADING_LABELS",
    "KNOWN_LABELS",
    "LOOP_NOTE",
    "REF",
    "REF_END",
    "TABLE_RE",
    "ImageLink",
    "Loop",
    "ParsedPage",
    "block_markdown",
    "caption_for",
    "cut_repetition_loop",
    "default_image_link",
    "find_repetition_loop",
    "format_grounded",
    "html_table_to_markdown",
    "may_end_in_loop",
    "neutralize_html",
    "parse_boxes",
    "parse_grounded",
    "parse_html_table",
    "parse_page",
    "to_markdown",
]
