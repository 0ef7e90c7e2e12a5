"""What answers for the fake server in ``benchmarks/verification.py``: real OCR (cached on
disk), or the page's own text layer read by the local engine (pages and their tiles)."""

from __future__ import annotations

import hashlib
import tempfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from ocr_loaders.testing.responders import OCRReply, OCRRequest, local_responder

CACHE = Path(tempfile.gettempdir()) / "ocr-loaders-verify-bench"
Base = Callable[[OCRRequest], OCRReply]


class CachedResponder:
    """The local-engine responder with its answers kept on disk by image hash."""

    def __init__(self) -> None:
        self.inner = local_responder()
        CACHE.mkdir(parents=True, exist_ok=True)
        self.misses = 0

    def __call__(self, request: OCRRequest) -> OCRReply:
        path = CACHE / (hashlib.sha1(request.image).hexdigest() + ".txt")
        if path.is_file():
            return OCRReply(path.read_text(encoding="utf-8"))
        self.misses += 1
        reply = self.inner(request)
        path.write_text(reply.text, encoding="utf-8")
        return reply


class LayerResponder:
    """Answers from the page's real content without OCR noise: the local engine's reading of
    the PDF's own text layer, for every page of ``docs`` and each of its tiles, found by the
    image's hash (rendering is deterministic, so the loader sends these very bytes)."""

    def __init__(self, docs: Sequence[tuple[Path, str | None, str | None]]) -> None:
        from ocr_loaders._engines.local import recognize_page_data
        from ocr_loaders._engines.local_textlayer import extract_page
        from ocr_loaders._grounding import format_grounded, parse_grounded
        from ocr_loaders._model import Block, model_box, scale_box
        from ocr_loaders._rendering.raster import RenderSettings, open_document
        from ocr_loaders._sources import PageSelection, resolve_inputs
        from ocr_loaders._verify.tiling import LAYOUTS, plan_tiles, tile_image

        self.answers: dict[str, str] = {}
        for path, pages, password in docs:
            doc = open_document(resolve_inputs([path])[0], password)
            try:
                for n in doc.outline.page_numbers(PageSelection.parse(pages)):
                    image = doc.render(n, RenderSettings(), extract_page)
                    text = recognize_page_data(image.hint)
                    self.answers[_key(image.image)] = text
                    blocks = parse_grounded(text)
                    tiles = [t for rows, cols in LAYOUTS for t in plan_tiles(image, rows, cols)]
                    for tile in tiles:
                        part = tile_image(image, tile)
                        sx = image.width / image.image_width
                        sy = image.height / image.image_height
                        ox, oy = tile.x0 * sx, tile.y0 * sy
                        mine = []
                        for b in blocks:
                            boxes = [scale_box(box, image.width, image.height) for box in b.boxes]
                            if not boxes:
                                continue
                            cx = (boxes[0][0] + boxes[0][2]) / 2 - ox
                            cy = (boxes[0][1] + boxes[0][3]) / 2 - oy
                            if 0 <= cx <= part.width and 0 <= cy <= part.height:
                                moved = tuple(
                                    model_box(
                                        (x0 - ox, y0 - oy, x1 - ox, y1 - oy),
                                        part.width,
                                        part.height,
                                    )
                                    for x0, y0, x1, y1 in boxes
                                )
                                mine.append(Block(b.label, moved, b.text, len(mine)))
                        self.answers[_key(part.image)] = format_grounded(mine)
            finally:
                doc.close()

    def __call__(self, request: OCRRequest) -> OCRReply:
        return OCRReply(self.answers[_key(request.image)])


def _key(image: bytes) -> str:
    return hashlib.sha1(image).hexdigest()


def page_crcs(docs: Sequence[tuple[Path, str | None, str | None]]) -> dict[str, int]:
    """CRC-32 of the image the loader sends for every page (rendering is deterministic), by
    page name: which request was which page, whatever retries and tiles came in between."""
    from ocr_loaders._rendering.raster import RenderSettings, open_document
    from ocr_loaders._sources import PageSelection, resolve_inputs

    out: dict[str, int] = {}
    for path, pages, password in docs:
        doc = open_document(resolve_inputs([path])[0], password)
        try:
            for n in doc.outline.page_numbers(PageSelection.parse(pages)):
                out[f"{path.name} p{n}"] = zlib.crc32(doc.render(n, RenderSettings()).image)
        finally:
            doc.close()
    return out
