"""Display images of the pages, rendered from the source file beside the report.

The engine's own page images are not kept (and pages served from the page cache never had
one), so the inspector renders its own: JPEG at a modest resolution, one file per page in
``OUT/<stem>/pages/``, loaded by the report only when a page scrolls near the screen. The file
must still be the one that was converted (same sha256), else boxes would be drawn over another
document; then, or when it cannot be opened, the report says why and draws boxes on blank pages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import InputError
from .._passwords import Password, password_for
from .._rendering.raster import RenderSettings, open_document
from .._sources import DocumentSource, hash_source

DISPLAY = RenderSettings(dpi=100, image_format="jpeg", jpeg_quality=75, max_pixels=1_300_000)
"""Enough to read a page on screen; a letter page is about 850 x 1100 px, 100-200 KB."""

PAGES_DIR = "pages"


@dataclass(frozen=True, slots=True)
class PageImages:
    """What was rendered: page number -> file (relative to the output folder), and a note
    saying why some or all pages have no image (empty when every page has one)."""

    files: dict[int, str]
    note: str = ""
    frames: dict[int, tuple[float, float]] = field(default_factory=dict)
    """Page number -> the page frame (``width``, ``height``) the regions are in."""


def image_name(stem: str, page: int) -> str:
    """The page image's path relative to the output folder (``<stem>/pages/page-0003.jpg``)."""
    return f"{stem}/{PAGES_DIR}/page-{page:04d}.jpg"


def render_page_images(
    file_path: str,
    doc_hash: str,
    pages: Iterable[int],
    out_dir: Path,
    stem: str,
    *,
    password: Password = None,
    trusted_hash: bool = False,
) -> PageImages:
    """Render ``pages`` of ``file_path`` into ``out_dir/<stem>/pages/``.

    ``trusted_hash``: the file was hashed moments ago by the run itself, skip re-hashing.
    Never raises for a missing, changed or unreadable source: the note says what happened.
    """
    wanted = sorted(set(pages))
    if not file_path:
        return PageImages({}, "no page images: the outputs do not name the source file")
    path = Path(file_path)
    if not path.is_file():
        return PageImages({}, f"no page images: {file_path} is no longer there")
    src = DocumentSource(name=file_path, path=path)
    try:
        if not trusted_hash and hash_source(src) != doc_hash:
            return PageImages(
                {}, f"no page images: {file_path} changed since it was converted (sha256 differs)"
            )
        doc = open_document(src, password_for(password, src), known_hash=doc_hash)
    except InputError as exc:
        return PageImages({}, f"no page images: {exc}")
    except OSError as exc:
        return PageImages({}, f"no page images: cannot read {file_path} ({exc.strerror or exc})")
    files: dict[int, str] = {}
    frames: dict[int, tuple[float, float]] = {}
    failed: list[str] = []
    try:
        (out_dir / stem / PAGES_DIR).mkdir(parents=True, exist_ok=True)
        for number in wanted:
            if not 1 <= number <= doc.page_count:
                failed.append(f"page {number}: not in the file")
                continue
            try:
                image = doc.render(number, DISPLAY)
            except InputError as exc:
                failed.append(f"page {number}: {exc.reason}")
                continue
            name = image_name(stem, number)
            (out_dir / name).write_bytes(image.image)
            files[number] = name
            frames[number] = (image.width, image.height)
    finally:
        doc.close()
    note = "no image for " + "; ".join(failed) if failed else ""
    return PageImages(files, note, frames)
