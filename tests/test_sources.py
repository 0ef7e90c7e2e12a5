"""Inputs, page selection, rendering frame and pixel budget, bad input errors."""

from __future__ import annotations

import io
from pathlib import Path

import pymupdf
import pytest
from PIL import Image

from ocr_loaders._errors import (
    ConfigError,
    CorruptInputError,
    EmptyDocumentError,
    InputNotFoundError,
    PasswordError,
    UnsupportedInputError,
)
from ocr_loaders._rendering.raster import RenderSettings, open_document
from ocr_loaders._sniff import sniff_kind
from ocr_loaders._sources import (
    DocumentSource,
    PageSelection,
    resolve_inputs,
)

from .conftest import make_pdf


@pytest.mark.parametrize(
    ("spec", "total", "expected"),
    [
        ("1-3,7", 10, [1, 2, 3, 7]),
        ("2-3", 5, [2, 3]),
        ("5-", 7, [5, 6, 7]),
        ("-2", 7, [1, 2]),
        ("3,1,3", 5, [1, 3]),
        ("4-9", 5, [4, 5]),
        (None, 3, [1, 2, 3]),
        ([2, 4], 5, [2, 4]),
    ],
)
def test_page_selection(spec: object, total: int, expected: list[int]) -> None:
    assert PageSelection.parse(spec).numbers(total) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", ["0", "3-1", "a-b", "", "1-2-3", ","])
def test_bad_page_selection(spec: str) -> None:
    with pytest.raises(ConfigError):
        PageSelection.parse(spec)


def test_resolve_folder_glob_bytes_and_file_object(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    a = make_pdf(tmp_path / "a.pdf")
    b = make_pdf(sub / "b.pdf")
    Image.new("RGB", (10, 10)).save(tmp_path / "c.png")
    (tmp_path / "notes.txt").write_text("not a document")
    (tmp_path / ".hidden.pdf").write_bytes(a.read_bytes())
    names = [Path(s.name).name for s in resolve_inputs(tmp_path)]
    assert names == ["a.pdf", "c.png", "b.pdf"]
    assert [Path(s.name).name for s in resolve_inputs(str(tmp_path / "**" / "*.pdf"))] == [
        "a.pdf",
        "b.pdf",
    ]
    data = a.read_bytes()
    assert resolve_inputs(data)[0].data == data
    assert resolve_inputs(io.BytesIO(data))[0].data == data
    assert [s.path for s in resolve_inputs([a, b])] == [a, b]
    with pytest.raises(InputNotFoundError, match="missing.pdf"):
        resolve_inputs(tmp_path / "missing.pdf")
    with pytest.raises(InputNotFoundError, match="matched no"):
        resolve_inputs(str(tmp_path / "*.docx"))


def test_sniff_kind() -> None:
    assert sniff_kind(b"%PDF-1.7\n") == "pdf"
    assert sniff_kind(b"\x89PNG\r\n\x1a\n....") == "image"
    assert sniff_kind(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image"
    assert sniff_kind(b"PK\x03\x04") is None


def test_open_pdf_labels_and_hash(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "doc.pdf", pages=4)
    doc = pymupdf.open(path)
    doc.set_page_labels(
        [
            {"startpage": 0, "prefix": "", "style": "r", "firstpagenum": 1},
            {"startpage": 2, "prefix": "A-", "style": "D", "firstpagenum": 1},
        ]
    )
    doc.save(tmp_path / "labelled.pdf")
    opened = open_document(
        DocumentSource(str(tmp_path / "labelled.pdf"), path=tmp_path / "labelled.pdf")
    )
    assert opened.page_count == 4
    assert [opened.label(n) for n in range(1, 5)] == ["i", "ii", "A-1", "A-2"]
    assert len(opened.info.doc_hash) == 64
    plain = open_document(DocumentSource(str(path), path=path))
    assert plain.label(3) == "3"


def test_rotated_page_renders_in_viewer_frame(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "rot.pdf", pages=1, rotate=90)
    doc = open_document(DocumentSource(str(path), path=path))
    image = doc.render(1, RenderSettings(dpi=72))
    assert (image.width, image.height) == (792.0, 612.0)  # landscape as displayed
    assert (image.image_width, image.image_height) == (792, 612)
    assert image.mime == "image/png" and image.image.startswith(b"\x89PNG")


@pytest.mark.parametrize("compressor", ["installed", "stdlib"])
@pytest.mark.parametrize("channels", [1, 3])
def test_png_writer_is_lossless(
    channels: int, compressor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zlib

    import numpy as np

    from ocr_loaders._rendering import raster as render

    if compressor == "stdlib":
        monkeypatch.setattr(render, "_compress", zlib.compress)
    rng = np.random.default_rng(channels)
    pixels = np.full((37, 53, channels), 255, dtype=np.uint8)  # odd sizes: no row padding
    pixels[5:30, 7:40] = rng.integers(0, 256, (25, 33, channels), dtype=np.uint8)
    data = render.png_bytes(pixels.tobytes(), 53, 37, channels)
    img = Image.open(io.BytesIO(data))
    img.load()
    assert img.mode == ("RGB" if channels == 3 else "L") and img.size == (53, 37)
    assert np.array_equal(np.asarray(img).reshape(37, 53, channels), pixels)


def test_pixel_budget_on_a_poster_page(tmp_path: Path) -> None:
    # 250 x 500 inches: at 144 dpi that would be 36000 x 72000 pixels
    path = make_pdf(tmp_path / "poster.pdf", pages=1, size=(250 * 72, 500 * 72))
    doc = open_document(DocumentSource(str(path), path=path))
    settings = RenderSettings()
    image = doc.render(1, settings)
    assert image.downscaled
    assert image.image_width * image.image_height <= settings.max_pixels
    assert abs(image.image_width / image.image_height - 0.5) < 0.01
    assert (image.width, image.height) == (250 * 72, 500 * 72)


def test_multipage_tiff_frames_are_pages(tmp_path: Path) -> None:
    frames = [Image.new("L", (300 + 10 * i, 200), 255) for i in range(3)]
    path = tmp_path / "scan.tif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    doc = open_document(DocumentSource(str(path), path=path))
    assert doc.info.kind == "image" and doc.page_count == 3
    image = doc.render(3, RenderSettings())
    assert (image.width, image.image_width) == (320.0, 320)  # native resolution
    assert Image.open(io.BytesIO(image.image)).mode == "RGB"


def test_bad_inputs_get_project_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    with pytest.raises(CorruptInputError, match="empty.pdf"):
        open_document(DocumentSource(str(empty), path=empty))
    junk = tmp_path / "junk.pdf"
    junk.write_bytes(b"%PDF-1.4\n" + b"\x00garbage" * 10)
    with pytest.raises((CorruptInputError, EmptyDocumentError), match="junk.pdf"):
        open_document(DocumentSource(str(junk), path=junk))
    text = tmp_path / "notes.docx"
    text.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(UnsupportedInputError, match="notes.docx"):
        open_document(DocumentSource(str(text), path=text))
    zero = tmp_path / "zero.pdf"
    minimal = (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF"
    )
    zero.write_bytes(minimal)
    with pytest.raises(EmptyDocumentError, match="zero.pdf"):
        open_document(DocumentSource(str(zero), path=zero))


def test_encrypted_pdf_passwords_and_pages_not_blank(tmp_path: Path) -> None:
    path = make_pdf(
        tmp_path / "secret.pdf",
        pages=2,
        encryption=pymupdf.PDF_ENCRYPT_AES_256,
        user_pw="s3cret",
        owner_pw="owner",
    )
    src = DocumentSource(str(path), path=path)
    with pytest.raises(PasswordError, match="encrypted"):
        open_document(src)
    with pytest.raises(PasswordError, match="wrong password"):
        open_document(src, password="nope")
    doc = open_document(src, password="s3cret")
    image = doc.render(1, RenderSettings(dpi=72))
    pixels = Image.open(io.BytesIO(image.image)).convert("L")
    assert pixels.getextrema()[0] < 128, "the page rendered blank"


def test_long_pdfs_are_reopened_and_render_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ocr_loaders._rendering import raster

    path = make_pdf(
        tmp_path / "long.pdf",
        pages=7,
        encryption=pymupdf.PDF_ENCRYPT_AES_256,
        user_pw="pw",
        owner_pw="owner",
    )
    settings = RenderSettings(dpi=36)
    reference = open_document(DocumentSource(str(path), path=path), password="pw")
    expected = [reference.render(n, settings).image for n in range(1, 8)]
    reference.close()
    monkeypatch.setattr(raster, "REOPEN_AFTER_PAGES", 3)
    doc = open_document(DocumentSource(str(path), path=path), password="pw")
    opened = doc._reopen
    assert opened is not None
    reopened_at: list[int] = []
    images = []
    for n in range(1, 8):
        doc._reopen = lambda n=n: reopened_at.append(n) or opened()  # type: ignore[misc]
        images.append(doc.render(n, settings).image)
    assert reopened_at == [4, 7]  # a fresh handle every 3 pages
    assert images == expected  # same pixels, decrypted again after each reopen


def test_a_pdf_that_changes_while_read_fails_its_pages_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ocr_loaders._errors import PageRenderError
    from ocr_loaders._rendering import raster

    path = make_pdf(tmp_path / "moving.pdf", pages=4)
    monkeypatch.setattr(raster, "REOPEN_AFTER_PAGES", 2)
    doc = open_document(DocumentSource(str(path), path=path))
    doc.render(1, RenderSettings(dpi=36))
    doc.render(2, RenderSettings(dpi=36))
    make_pdf(tmp_path / "moving.pdf", pages=2)  # replaced on disk mid-run
    with pytest.raises(PageRenderError, match=r"moving\.pdf.*page 3.*changed"):
        doc.render(3, RenderSettings(dpi=36))


def _scan_like_pdf(path: Path, pages: int, side: int) -> Path:
    """``pages`` pages, each drawing its own ``side`` x ``side`` grey image (a scan's shape)."""
    out = pymupdf.open()
    for n in range(pages):
        buf = io.BytesIO()
        Image.new("L", (side, side), 40 + n).save(buf, format="PNG")  # one image per page
        out.new_page(width=612, height=792).insert_image(
            pymupdf.Rect(0, 0, 612, 612), stream=buf.getvalue()
        )
    out.save(path, deflate=True)
    return path


def test_mupdf_cache_is_emptied_after_scanned_pages_and_every_64_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ocr_loaders._rendering import raster

    emptied: list[int] = []
    real = raster.empty_store
    rendered: list[int] = []
    monkeypatch.setattr(raster, "empty_store", lambda: emptied.append(rendered[-1]) or real())
    settings = RenderSettings(dpi=36)

    text = make_pdf(tmp_path / "text.pdf", pages=130)
    doc = open_document(DocumentSource(str(text), path=text))
    for n in range(1, 131):
        rendered.append(n)
        doc.render(n, settings)
    doc.close()
    assert emptied == [64, 128]  # text pages: fonts stay cached between the resets

    emptied.clear()
    scan = _scan_like_pdf(tmp_path / "scan.pdf", pages=3, side=1200)  # 1.44 Mpx each
    doc = open_document(DocumentSource(str(scan), path=scan))
    for n in range(1, 4):
        rendered.append(n)
        doc.render(n, settings)
    doc.close()
    assert emptied == [1, 2, 3]  # a decoded scan image is never kept for the next page
