"""The document pass: pages in, units out, cleaned across page breaks, streamed.

Between the pages and the packing, the chunker runs this pass:

1. :class:`~.furniture.FurnitureFinder` sorts each page into body and furniture (running
   headers, footers, page numbers), holding back at most the first window of pages;
2. hyphenation kept inside a block is mended (``join_pages``);
3. the page's body becomes units (:func:`~.units.page_units`);
4. a last unit that may go on at the top of the next page is held until that page comes, then
   joined with its first unit when it does continue (:mod:`.joins`).

Furniture text is kept per page until no chunk can span that page any more, so chunks carry
it as metadata. Every removal and join is counted in :attr:`DocumentPass.counts`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .._model import Block, Page
from .._stats import CleanupCounts
from .furniture import Furniture, FurnitureFinder, Sorted
from .joins import continues, join, mend_block
from .options import ChunkOptions, ImageTarget
from .units import Unit, page_units


@dataclass(frozen=True, slots=True)
class Step:
    """Units ready for packing, and the page whose arrival released them.

    ``page`` is None for a unit released at the end of the document or before a failed page;
    ``failed`` marks a page that produced nothing and did not end ``ok``.
    """

    page: Page | None
    units: tuple[Unit, ...]
    failed: bool = False


@dataclass(frozen=True, slots=True)
class _Held:
    """The last unit of a page, waiting for the next page's first unit."""

    unit: Unit
    page: int


_REMOVED = {
    "page_header": CleanupCounts(headers_removed=1),
    "page_footer": CleanupCounts(footers_removed=1),
    "page_number": CleanupCounts(page_numbers_removed=1),
}


class DocumentPass:
    """Pages of one document in order -> :class:`Step`\\ s, with furniture out and joins made."""

    def __init__(self, options: ChunkOptions, image_target: ImageTarget | None = None) -> None:
        self.options = options
        self._image_target = image_target
        self._finder = None if options.keep_page_furniture else FurnitureFinder()
        self._joining = options.join_pages and options.mode != "pages"
        self.counts = CleanupCounts()
        """Totals since this pass was made (over every document it saw)."""
        self.reset()

    def reset(self) -> None:
        """Forget the document (after :meth:`finish` and the last chunk): start a new one."""
        self._held: _Held | None = None
        self._furniture: dict[int, tuple[Furniture, ...]] = {}

    def add(self, page: Page) -> list[Step]:
        """Take the next page; return the steps it releases (possibly none, while held)."""
        sorted_pages = self._finder.add(page) if self._finder else [Sorted(page, page.blocks, ())]
        return [step for s in sorted_pages for step in self._steps(s)]

    def finish(self) -> list[Step]:
        """Release everything held at the end of the document."""
        steps = [
            step for s in (self._finder.finish() if self._finder else []) for step in self._steps(s)
        ]
        if self._held is not None:
            steps.append(Step(None, (self._held.unit,)))
            self._held = None
        return steps

    def furniture(self, first: int, last: int) -> tuple[str, str]:
        """The header and footer texts of pages ``first..last``, each distinct text once."""
        top: dict[str, None] = {}
        bottom: dict[str, None] = {}
        for number in range(first, last + 1):
            for f in self._furniture.get(number, ()):
                (top if f.band == "top" else bottom)[f.text] = None
        return " | ".join(top), " | ".join(bottom)

    def forget_before(self, number: int) -> None:
        """No chunk will start before page ``number`` any more: drop older furniture."""
        for n in [n for n in self._furniture if n < number]:
            del self._furniture[n]

    def _steps(self, s: Sorted) -> list[Step]:
        page = s.page
        if s.furniture:
            self._furniture[page.number] = s.furniture
            for f in s.furniture:
                self.counts += _REMOVED[f.role]
        body = self._mended(s.body) if self.options.join_pages else s.body
        if body is not page.blocks:
            page = replace(page, blocks=body)
        units = page_units(page, self.options.tables, self._image_target)
        failed = not units and page.status != "ok"
        if not self._joining:
            return [Step(page, tuple(units), failed)]
        steps: list[Step] = []
        held, self._held = self._held, None
        if failed:
            if held is not None:
                steps.append(Step(None, (held.unit,)))
            return [*steps, Step(page, (), True)]
        if held is not None:
            joined = (
                join(held.unit, held.page, units[0], self.options.tables)
                if units and page.number == held.page + 1
                else None
            )
            if joined is not None:
                units[0] = joined.unit
                kind = "tables_joined" if joined.kind == "table" else "paragraphs_joined"
                self.counts += CleanupCounts(**{kind: 1})
            else:
                units.insert(0, held.unit)
        if units and page.status == "ok" and continues(units[-1]):
            self._held = _Held(units.pop(), page.number)
        return [*steps, Step(page, tuple(units))]

    def _mended(self, blocks: tuple[Block, ...]) -> tuple[Block, ...]:
        out: list[Block] = []
        mended = 0
        for block in blocks:
            block, n = mend_block(block)
            out.append(block)
            mended += n
        if not mended:
            return blocks
        self.counts += CleanupCounts(hyphens_mended=mended)
        return tuple(out)
