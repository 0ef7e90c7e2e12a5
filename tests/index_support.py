"""What the index-sync tests share: a fake OCR server whose pages name their image, PDFs,
a Qdrant client in local mode, and a counter of the client's writes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymupdf
import pytest

from ocr_loaders.testing import FakeOCRServer, OCRReply, OCRRequest

OPTIONS: dict[str, Any] = {"chunk_size": 64}

NOUNS = (
    *("granite", "basalt", "quartz", "marble", "slate", "shale", "chalk", "flint"),
    *("garnet", "topaz", "amber", "coral", "cedar", "maple", "birch", "aspen"),
    *("willow", "alder", "hazel", "rowan", "spruce", "larch", "poplar", "walnut"),
)


def _tag(label: str, box: tuple[int, int, int, int]) -> str:
    return f"<|ref|>{label}<|/ref|><|det|>[[{box[0]}, {box[1]}, {box[2]}, {box[3]}]]<|/det|>"


def answer(request: OCRRequest) -> OCRReply:
    """A page with a title, a paragraph, a figure and its caption, all named from the image."""
    seed = request.image_crc
    a, b, c = (NOUNS[(seed >> s) % len(NOUNS)] for s in (0, 7, 14))
    return OCRReply(
        f"{_tag('title', (80, 40, 900, 80))}\n# Notes on {a}\n\n"
        f"{_tag('text', (80, 100, 900, 200))}\nThe {a} survey lists {b} samples.\n\n"
        f"{_tag('image', (200, 250, 700, 550))}\n\n"
        f"{_tag('image_caption', (200, 560, 700, 590))}\nFigure {seed % 97}. The {c} {b} map.\n"
    )


@pytest.fixture(scope="module")
def ocr_server() -> Iterator[FakeOCRServer]:
    with FakeOCRServer(answer) as srv:
        yield srv


def write_pdf(path: Path, text: str, pages: int = 1) -> Path:
    doc = pymupdf.open()
    for i in range(pages):
        page = doc.new_page(width=612, height=792)
        page.insert_text((72, 100), f"{text}, page {i + 1}", fontsize=20)
    doc.save(path)
    return path


def first_folder(folder: Path) -> Path:
    folder.mkdir()
    write_pdf(folder / "a.pdf", "alpha file", pages=2)
    write_pdf(folder / "b.pdf", "bravo file")
    (folder / "sub").mkdir()
    write_pdf(folder / "sub" / "c.pdf", "charlie file")
    write_pdf(folder / "d.pdf", "delta file")
    return folder


def change_folder(folder: Path) -> None:
    """b changes, e is new, c is gone."""
    write_pdf(folder / "b.pdf", "bravo file, second edition")
    write_pdf(folder / "e.pdf", "echo file", pages=2)
    (folder / "sub" / "c.pdf").unlink()


def path_of(folder: Path, name: str) -> str:
    return str((folder / name).resolve())


class Writes:
    """Counts the calls that change a Qdrant client's data."""

    METHODS = (
        "upsert",
        "upload_points",
        "upload_collection",
        "batch_update_points",
        "delete",
        "set_payload",
        "overwrite_payload",
        "delete_payload",
        "update_vectors",
        "delete_vectors",
        "delete_collection",
    )

    def __init__(self, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        for name in self.METHODS:
            monkeypatch.setattr(client, name, self._counting(name, getattr(client, name)))

    def _counting(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return real(*args, **kwargs)

        return call


def points(client: Any, collection: str) -> list[Any]:
    found, offset = [], None
    while True:
        batch, offset = client.scroll(collection, limit=256, offset=offset, with_payload=True)
        found.extend(batch)
        if offset is None:
            return found


@pytest.fixture
def qdrant(tmp_path: Path) -> Iterator[Any]:
    """A Qdrant client in local mode (no server) on a folder; closed after the test."""
    qdrant_client = pytest.importorskip("qdrant_client", reason="the 'index' extra is missing")
    client = qdrant_client.QdrantClient(path=str(tmp_path / "qdrant"))
    yield client
    client.close()
