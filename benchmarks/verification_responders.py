"""What answers for the fake server in ``benchmarks/verification.py``: real OCR (cached on
disk), or the page's own text layer read by the local engine (pages and their tiles)."""

from __future__ import annotations

import hashlib
import io
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ocr_loaders._rendering.raster import RenderSettings
from ocr_loaders.testing.responders import OCRReply, OCRRequest, local_responder

CACHE = Path(tempfile.gettempdir()) / "ocr-loaders-verify-bench"
LOADER_RENDER = RenderSettings(text_layer=True)
"""What the loader renders with when verifying (an endpoint engine, no page hook)."""
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
        from ocr_loaders._rendering.raster import open_document
        from ocr_loaders._sources import PageSelection, resolve_inputs
        from ocr_loaders._verify.tiling import LAYOUTS, plan_tiles, tile_image

        self.answers: dict[str, str] = {}
        self.thumbs = Thumbs()
        for path, pages, password in docs:
            src = resolve_inputs([path])[0]
            doc, reader = open_document(src, password), open_document(src, password)
            try:
                for n in doc.outline.page_numbers(PageSelection.parse(pages)):
                    # the pipeline's own sequence on the document it renders from (text read
                    # after each page's pixels), so the bytes match; the answer from another
                    image = doc.render(n, LOADER_RENDER, None)
                    text = recognize_page_data(
                        reader.render(n, RenderSettings(), extract_page).hint
                    )
                    self.answers[_key(image.image)] = text
                    self.thumbs.add(image.image, text)
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
                        self.thumbs.add(part.image, format_grounded(mine))
            finally:
                doc.close()
                reader.close()

    def __call__(self, request: OCRRequest) -> OCRReply:
        text = self.answers.get(_key(request.image))
        if text is None:  # drawn a few pixels differently: the nearest thumbnail
            text = self.thumbs.find(request.image)
        if text is None:
            raise KeyError("an image this responder never rendered")
        return OCRReply(text)


def _key(image: bytes) -> str:
    return hashlib.sha1(image).hexdigest()


def thumb(image: bytes) -> Any:
    """A 24 x 24 grey thumbnail: the same page drawn with a few pixels anti-aliased
    differently (MuPDF's caches depend on what was read before) still finds its match."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(image)) as img:
        small = img.convert("L").resize((24, 24), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32)


class Thumbs:
    """Nearest-thumbnail lookup of images rendered here (pages and tiles)."""

    def __init__(self) -> None:
        self.keys: list[Any] = []
        self.values: list[str] = []

    def add(self, image: bytes, value: str) -> None:
        self.keys.append(thumb(image))
        self.values.append(value)

    def find(self, image: bytes, size: tuple[int, int] | None = None) -> str | None:
        import numpy as np

        t = thumb(image)
        dist = [float(np.abs(k - t).mean()) for k in self.keys]
        best = int(np.argmin(dist)) if dist else -1
        return self.values[best] if best >= 0 and dist[best] < 2.0 else None


class Identify:
    """Wraps a responder and notes which page each request showed (by thumbnail; ``None`` for
    a tile): ``seen[seq]``."""

    def __init__(self, inner: Callable[[OCRRequest], OCRReply], pages: Thumbs) -> None:
        self.inner = inner
        self.pages = pages
        self.seen: dict[int, str | None] = {}

    def __call__(self, request: OCRRequest) -> OCRReply:
        self.seen[request.seq] = self.pages.find(request.image)
        return self.inner(request)


def page_thumbs(docs: Sequence[tuple[Path, str | None, str | None]]) -> Thumbs:
    """Thumbnails of every page as the loader renders it, named like ``name()``."""
    from ocr_loaders._rendering.raster import open_document
    from ocr_loaders._sources import PageSelection, resolve_inputs

    out = Thumbs()
    for path, pages, password in docs:
        doc = open_document(resolve_inputs([path])[0], password)
        try:
            for n in doc.outline.page_numbers(PageSelection.parse(pages)):
                out.add(doc.render(n, LOADER_RENDER, None).image, f"{path.name} p{n}")
        finally:
            doc.close()
    return out
