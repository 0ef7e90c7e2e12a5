"""What chunking is asked to do: the options, and the separator and its token cost."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .._model import Block, Page

Mode = Literal["chunks", "pages", "document"]
TableFormat = Literal["html", "markdown"]
ImageTarget = Callable[[Page, Block, int], str]
"""``(page, image block, k-th image on the page)`` -> the image's link target."""

SEP = "\n\n"
SEP_TOKENS = 1
"""cl100k encodes a blank line (and a line break) as one token; joining two stripped texts with
one costs at most this on top of their own counts (a space may cost more: it changes how the
next word is tokenized)."""


@dataclass(frozen=True, slots=True)
class ChunkOptions:
    """How pages are cut into chunks (see docs/chunking.md)."""

    chunk_size: int = 512
    """Largest chunk, in tiktoken cl100k tokens, wherever the content allows."""
    chunk_overlap: int = 0
    """Tokens of the previous chunk's trailing prose repeated at the start of the next."""
    mode: Mode = "chunks"
    tables: TableFormat = "html"
    """Table rendering, passed to :func:`grounding.block_markdown`."""
    keep_page_furniture: bool = False
    """Keep running headers, footers and page numbers in the text (none is then looked for);
    by default they are recognised, kept out of the text and carried as metadata."""
    join_pages: bool = True
    """Join paragraphs and tables continued across a page break, and mend hyphenation."""

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {self.chunk_size}")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise ValueError(f"chunk_overlap must be in [0, chunk_size), got {self.chunk_overlap}")
        if self.mode not in ("chunks", "pages", "document"):
            raise ValueError(f"mode must be chunks, pages or document, got {self.mode!r}")
        if self.tables not in ("html", "markdown"):
            raise ValueError(f"tables must be html or markdown, got {self.tables!r}")


DEFAULT_OPTIONS = ChunkOptions()
"""The defaults, shared (the options are frozen)."""
