"""Structure-aware chunking: parsed pages -> citable chunks sized in tiktoken tokens, streamed.

Pages come in one at a time. Each page's blocks become *units*: a heading, a prose block, an
equation, or a *group* (a table or figure with the captions and footnotes it owns). Units are
packed greedily into the pending chunk, which is emitted as soon as the next unit cannot join it:

* a heading always opens a new chunk (consecutive headings share one) and is never left alone;
* a unit that fits the room left joins the pending chunk, so small peers under one heading path
  merge, across page breaks too;
* a unit that does not fit starts a new chunk, except a unit larger than ``chunk_size`` itself,
  which is split: prose at sentence boundaries, then at whitespace, then anywhere; tables between
  rows, with the header row repeated; equations, images and single rows never.

Token counts are taken once per unit or part and summed; separators count one token each (an
upper bound for cl100k). See docs/chunking.md.

Before packing, a document pass (:mod:`.document`) keeps running headers, footers and page
numbers out of the text (:mod:`.furniture`, by repetition and position, from a bounded window of
pages) and joins paragraphs and tables continued across a page break (:mod:`.joins`).

Modules, by strategy: :mod:`.options` (what is asked), :mod:`.units` (pages -> units),
:mod:`.pieces` (what a chunk is made of, and units never split), :mod:`.prose` (prose split at
sentences and words), :mod:`.tables` (tables split by rows, header repeated), :mod:`.overlap`
(the previous chunk's tail) and :mod:`.chunker` (chunks mode packing; pages and document modes).
"""

from .chunker import Chunker, chunk_pages
from .options import SEP, SEP_TOKENS, ChunkOptions, ImageTarget, Mode, TableFormat
from .overlap import tail_text

__all__ = [
    "SEP",
    "SEP_TOKENS",
    "ChunkOptions",
    "Chunker",
    "ImageTarget",
    "Mode",
    "TableFormat",
    "chunk_pages",
    "tail_text",
]
