"""The pieces that order pages for the engine: page weights read from the PDF, the slots that
admit the heaviest waiting page first, and weights kept in the cache's document manifest."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pymupdf

from ocr_loaders._cache import PageCache
from ocr_loaders._limits import Slots
from ocr_loaders._page_weights import page_weights
from ocr_loaders._sources import DocumentSource, describe


def test_a_page_with_more_text_weighs_more_and_an_empty_page_nothing() -> None:
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "A short page.")
    doc.new_page().insert_textbox(pymupdf.Rect(36, 36, 576, 756), "word " * 2000, fontsize=6)
    doc.new_page()  # nothing drawn: no content stream
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 300, 300), False)
    pix.set_rect(pix.irect, (200, 10, 10))
    doc.new_page().insert_image(pymupdf.Rect(72, 72, 372, 372), pixmap=pix)
    short, long, empty, image = page_weights(doc)
    assert 0 < short < long
    assert empty == 0
    assert image > 0  # the image's bytes count


def test_a_broken_page_weighs_nothing_and_does_not_fail() -> None:
    class Broken:
        page_count = 2

        def page_xref(self, pno: int) -> int:
            if pno == 1:
                raise RuntimeError("bad page tree")
            return 5

        def xref_get_key(self, xref: int, key: str) -> tuple[str, str]:
            return ("xref", "7 0 R") if key == "Contents" else ("xref", "9 0 R")

        def xref_object(self, xref: int) -> str:
            return " 1234 "

        def get_page_images(self, pno: int) -> list[tuple[object, ...]]:
            return []

    assert page_weights(Broken()) == (1234, 0)  # an indirect /Length is followed


def test_slots_admit_the_lowest_key_first_and_skip_cancelled_waiters() -> None:
    async def scenario() -> list[str]:
        slots, order = Slots(1), []

        async def page(name: str, key: tuple[int, ...]) -> None:
            async with slots.hold(key):
                order.append(name)
                await asyncio.sleep(0.01)

        first = asyncio.create_task(page("first", (0, 0)))
        await asyncio.sleep(0)  # it holds the only slot
        light = asyncio.create_task(page("light", (-10, 1)))
        gone = asyncio.create_task(page("gone", (-999, 2)))
        heavy = asyncio.create_task(page("heavy", (-500, 3)))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.gather(first, light, heavy, return_exceptions=True)
        return order

    assert asyncio.run(scenario()) == ["first", "heavy", "light"]


def test_an_admitted_waiter_cancelled_before_it_runs_passes_its_slot_on() -> None:
    async def scenario() -> bool:
        slots = Slots(1)
        await slots.acquire((0,))
        waiter = asyncio.create_task(slots.acquire((1,)))
        other = asyncio.create_task(slots.acquire((2,)))
        await asyncio.sleep(0)
        slots.release()  # admits `waiter` ...
        waiter.cancel()  # ... which is cancelled before it resumes
        await asyncio.gather(waiter, return_exceptions=True)
        await asyncio.wait_for(other, 1.0)  # the slot went on to `other`
        return other.done()

    assert asyncio.run(scenario())


def test_weights_travel_with_the_outline_and_through_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "two.pdf"
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "Short.")
    doc.new_page().insert_textbox(pymupdf.Rect(36, 36, 576, 756), "word " * 500, fontsize=6)
    doc.save(path)
    outline = describe(DocumentSource(str(path), path=path))
    assert len(outline.weights) == 2 and outline.weight(1) < outline.weight(2)
    assert outline.weight(3) == 0  # no such page: no guess
    cache = PageCache(tmp_path / "cache")
    cache.remember_document(outline)
    again = cache.document(DocumentSource(str(path), path=path))
    assert again is not None and again.weights == outline.weights
