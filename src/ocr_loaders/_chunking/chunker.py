"""The streaming chunker: chunks mode packs units greedily; pages and document modes gather."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .._model import Chunk, Page, Region
from .._stats import CleanupCounts
from .._tokens import count_tokens
from .document import DocumentPass, Step
from .options import DEFAULT_OPTIONS, SEP, SEP_TOKENS, ChunkOptions, ImageTarget
from .overlap import Tail, tail_text
from .pieces import Piece, Solid, Source, whole_piece
from .prose import Prose
from .tables import Group
from .units import Unit


@dataclass(slots=True)
class _Gather:
    """A whole-page or whole-document chunk being collected (pages / document modes)."""

    page_start: int
    page_end: int
    texts: list[str] = field(default_factory=list)
    joins: dict[str, None] = field(default_factory=dict)
    labels: dict[str, None] = field(default_factory=dict)
    regions: dict[Region, None] = field(default_factory=dict)
    heading: str | None = None


class Chunker:
    """Streams pages into chunks: feed pages in order with :meth:`add`, then :meth:`finish`.

    Only the pending chunk is held. After :meth:`finish` the chunker starts a new document
    (chunk indexes and headings start over).
    """

    def __init__(
        self, options: ChunkOptions = DEFAULT_OPTIONS, image_target: ImageTarget | None = None
    ) -> None:
        self.options = options
        self._image_target = image_target
        self._pass = DocumentPass(options, image_target)
        self._start_document()

    # -- public --------------------------------------------------------------------------

    def add(self, page: Page) -> list[Chunk]:
        """Take the next page; return the chunks it completed."""
        for step in self._pass.add(page):
            self._take(step)
        return self._drain()

    def finish(self) -> list[Chunk]:
        """End the document: return the last chunks and start afresh."""
        for step in self._pass.finish():
            self._take(step)
        self._emit()
        self._emit_gather()
        out = self._drain()
        self._start_document()
        return out

    @property
    def counts(self) -> CleanupCounts:
        """Headers, footers and page numbers kept out of the text, tables and paragraphs
        joined across pages, hyphens mended: totals since this chunker was made."""
        return self._pass.counts

    def _take(self, step: Step) -> None:
        """Pack the units the document pass released."""
        mode = self.options.mode
        if mode == "chunks":
            if step.failed:
                self._emit()
                self._emit_empty(step.page)
            else:
                for unit in step.units:
                    self._place(unit)
        elif mode == "pages":
            self._gather_page(step.page, step.units)
            self._emit_gather()
        else:
            if step.failed:
                self._emit_gather()
                self._emit_empty(step.page)
            else:
                self._gather_page(step.page, step.units)

    # -- state ---------------------------------------------------------------------------

    def _start_document(self) -> None:
        self._pass.reset()
        self._index = 0
        self._stack: list[tuple[int, str]] = []
        self._done: list[Chunk] = []
        self._tail: Tail | None = None
        self._gather: _Gather | None = None
        self._clear()

    def _clear(self) -> None:
        self._pieces: list[Piece] = []
        self._texts: list[str] = []
        self._ends: list[int] = []
        self._length = 0
        self._tokens = 0
        self._content = False

    def _drain(self) -> list[Chunk]:
        out, self._done = self._done, []
        return out

    def _path(self) -> str:
        return " > ".join(title for _level, title in self._stack)

    def _enter_heading(self, unit: Unit) -> None:
        self._stack = [h for h in self._stack if h[0] < unit.level]
        self._stack.append((unit.level, unit.title))

    def _chunk(
        self,
        text: str,
        page_start: int,
        page_end: int,
        labels: Iterable[str],
        heading: str,
        regions: Iterable[Region],
        joins: Iterable[str] = (),
    ) -> None:
        header, footer = self._pass.furniture(page_start, page_end)
        self._done.append(
            Chunk(
                text,
                self._index,
                page_start,
                page_end,
                tuple(dict.fromkeys(labels)),
                heading,
                tuple(dict.fromkeys(regions)),
                header,
                footer,
                tuple(dict.fromkeys(joins)),
            )
        )
        self._pass.forget_before(page_start)
        self._index += 1

    def _emit_empty(self, page: Page | None) -> None:
        """The chunk of a page that produced nothing, so it does not vanish."""
        assert page is not None
        self._chunk("", page.number, page.number, (), self._path(), ())
        self._tail = None

    # -- chunks mode ---------------------------------------------------------------------

    def _place(self, unit: Unit) -> None:
        if unit.kind == "heading":
            self._open_heading(unit)
            return
        tokens = (
            count_tokens(unit.text)
            if unit.kind != "group"
            else (
                sum(count_tokens(m.text) for m in unit.members)
                + SEP_TOKENS * (len(unit.members) - 1)
            )
        )
        source: Source
        if unit.kind == "prose":
            source = Prose(unit, tokens)
        elif unit.kind == "group":
            source = Group(unit, tokens, self.options.tables)
        else:
            source = Solid(whole_piece(unit, tokens))
        self._feed(source)

    def _open_heading(self, unit: Unit) -> None:
        """A heading starts a chunk; headings in a row share it."""
        piece = whole_piece(unit, count_tokens(unit.text))
        crowded = self._tokens + SEP_TOKENS + piece.tokens > self.options.chunk_size
        if self._content or (self._pieces and crowded):
            self._emit()
        self._enter_heading(unit)
        self._append(piece, SEP if self._pieces else "")

    def _feed(self, source: Source) -> None:
        """Place a unit: whole where it fits, else in a new chunk, else split to fill chunks."""
        size = self.options.chunk_size
        while not source.done:
            room = size - self._tokens - SEP_TOKENS if self._pieces else size
            if source.tokens <= room:
                piece = source.take(room, force=True)
                if piece is not None:
                    self._put(piece)
                continue
            if self._content and not (source.tokens > size and source.splittable()):
                self._emit()
                continue
            if not self._pieces:
                room -= self._overlap_reserve()
            piece = source.take(room, force=not self._content)
            if piece is None:
                self._emit()
                continue
            self._put(piece)
            if not source.done:
                self._emit()

    def _overlap_reserve(self) -> int:
        """Room kept for the overlap when a split part opens a chunk."""
        if self.options.chunk_overlap and self._tail is not None:
            return self.options.chunk_overlap + SEP_TOKENS
        return 0

    def _put(self, piece: Piece) -> None:
        """Add a content piece; a chunk it opens starts with the overlap, if any."""
        if not self._pieces and self._tail is not None and self.options.chunk_overlap:
            limit = min(
                self.options.chunk_overlap, self.options.chunk_size - piece.tokens - SEP_TOKENS
            )
            overlap = self._overlap(limit)
            if overlap is not None:
                self._append(overlap, "")
        joint = ("\n" if piece.continued else SEP) if self._pieces else ""
        self._append(piece, joint)

    def _append(self, piece: Piece, joint: str) -> None:
        self._texts.append(joint)
        self._texts.append(piece.text)
        self._length += len(joint) + len(piece.text)
        self._ends.append(self._length)
        self._tokens += (SEP_TOKENS if joint else 0) + piece.tokens
        self._pieces.append(piece)
        if piece.kind != "heading":
            self._content = True

    def _overlap(self, limit: int) -> Piece | None:
        """The last chunk's trailing prose, cut to ``limit`` tokens, as a piece."""
        tail = self._tail
        if tail is None or limit <= 0:
            return None
        text, tokens = tail_text(tail.text, limit)
        if not text:
            return None
        begin = len(tail.text) - len(text)
        covered = [p for end, p in tail.spans if end > begin]
        return Piece(
            text,
            tokens,
            covered[0].page,
            tuple(label for p in covered for label in p.labels),
            tuple(r for p in covered for r in p.regions),
            "prose",
        )

    def _emit(self) -> None:
        """Close the pending chunk and remember its trailing prose for the overlap."""
        if not self._pieces:
            return
        text = "".join(self._texts)
        pieces = self._pieces
        pages = [p.page for p in pieces] + [r.page for p in pieces for r in p.regions]
        self._chunk(
            text,
            min(pages),
            max(pages),
            (label for p in pieces for label in p.labels),
            self._path(),
            (r for p in pieces for r in p.regions),
            (j for p in pieces for j in p.joins),
        )
        self._tail = self._trailing_prose(text)
        self._clear()

    def _trailing_prose(self, text: str) -> Tail | None:
        if not self.options.chunk_overlap:
            return None
        first = len(self._pieces)
        while first > 0 and self._pieces[first - 1].kind == "prose":
            first -= 1
        if first == len(self._pieces):
            return None
        begin = self._ends[first - 1] if first > 0 else 0
        spans = tuple(
            (self._ends[i] - begin, self._pieces[i]) for i in range(first, len(self._pieces))
        )
        return Tail(text[begin:], spans)

    # -- pages and document modes --------------------------------------------------------

    def _gather_page(self, page: Page | None, units: Sequence[Unit]) -> None:
        pages = [page.number] if page is not None else []
        pages += [u.page for u in units] + [r.page for u in units for r in u.regions]
        if not pages:
            return
        gather = self._gather
        if gather is None:
            gather = self._gather = _Gather(min(pages), max(pages))
        gather.page_start = min(gather.page_start, *pages)
        gather.page_end = max(gather.page_end, *pages)
        for unit in units:
            if unit.kind == "heading":
                self._enter_heading(unit)
            elif gather.heading is None:
                gather.heading = self._path()
            gather.texts.append(unit.text)
            gather.labels.update(dict.fromkeys(unit.labels))
            gather.regions.update(dict.fromkeys(unit.regions))
            gather.joins.update(dict.fromkeys(unit.joins))

    def _emit_gather(self) -> None:
        gather = self._gather
        if gather is None:
            return
        heading = gather.heading if gather.heading is not None else self._path()
        self._chunk(
            SEP.join(gather.texts),
            gather.page_start,
            gather.page_end,
            gather.labels,
            heading,
            gather.regions,
            gather.joins,
        )
        self._gather = None


def chunk_pages(
    pages: Iterable[Page],
    options: ChunkOptions = DEFAULT_OPTIONS,
    image_target: ImageTarget | None = None,
) -> list[Chunk]:
    """Chunk a whole document at once (see :class:`Chunker` for streaming)."""
    chunker = Chunker(options, image_target)
    chunks: list[Chunk] = []
    for page in pages:
        chunks.extend(chunker.add(page))
    chunks.extend(chunker.finish())
    return chunks
