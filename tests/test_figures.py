"""Figures as retrieval units: crops of ``image`` blocks, links that resolve, caption once."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pymupdf
import pytest
from PIL import Image

from ocr_loaders import DeepSeekOCRLoader, DeepSeekOCRReader, parse_grounded, to_markdown
from ocr_loaders._figures import figure_name, safe_stem
from ocr_loaders._model import model_box
from ocr_loaders.testing import FakeOCRServer
from ocr_loaders.testing.responders import static_responder

from .conftest import run_cli

PAGE = (612.0, 792.0)
RECT = (100.0, 200.0, 400.0, 400.0)  # the drawn figure, PDF points
CAPTION = "Figure 1. A red square on the page."
RED = (220, 20, 20)


def _tag(label: str, bbox: tuple[float, float, float, float]) -> str:
    return f"<|ref|>{label}<|/ref|><|det|>[{list(model_box(bbox, *PAGE))}]<|/det|>"


ANSWER = (
    f"{_tag('title', (72, 60, 540, 100))}\n# Report\n\n"
    f"{_tag('text', (72, 120, 540, 180))}\nSome words before the figure.\n\n"
    f"{_tag('image', RECT)}\n\n"
    f"{_tag('image_caption', (100, 410, 400, 430))}\n{CAPTION}\n\n"
    f"{_tag('text', (72, 450, 540, 500))}\nSome words after it.\n"
)
MODEL_BOX = model_box(RECT, *PAGE)


def figure_pdf(path: Path, *, embedded: bool = False) -> Path:
    """One page: a heading, a filled red rectangle (drawn, or an embedded image) and a caption."""
    doc = pymupdf.open()
    page = doc.new_page(width=PAGE[0], height=PAGE[1])
    page.insert_text((72, 90), "Report", fontsize=24)
    page.insert_text((72, 150), "Some words before the figure.", fontsize=11)
    rect = pymupdf.Rect(*RECT)
    if embedded:
        pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 60, 40), False)
        pix.set_rect(pix.irect, RED)
        page.insert_image(rect, pixmap=pix)
    else:
        page.draw_rect(rect, color=None, fill=tuple(c / 255 for c in RED))
    page.insert_text((100, 425), CAPTION, fontsize=11)
    page.insert_text((72, 470), "Some words after it.", fontsize=11)
    doc.save(path)
    return path


@pytest.fixture(scope="module")
def figure_server() -> Iterator[FakeOCRServer]:
    with FakeOCRServer(static_responder(ANSWER)) as srv:
        yield srv


def _links(markdown: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]*)\)", markdown)


def _mostly(crop: Image.Image, colour: tuple[int, int, int], share: float = 0.9) -> bool:
    data = crop.convert("RGB").tobytes()
    pixels = [data[i : i + 3] for i in range(0, len(data), 3)]
    near = sum(all(abs(p[i] - colour[i]) <= 40 for i in range(3)) for p in pixels)
    return near >= share * len(pixels)


def _expected_size(box: tuple[int, ...], size: tuple[int, int]) -> tuple[float, float]:
    return ((box[2] - box[0]) / 999 * size[0], (box[3] - box[1]) / 999 * size[1])


def test_without_crops_markdown_keeps_the_caption_once_and_links_nothing() -> None:
    blocks = parse_grounded(ANSWER)
    md = to_markdown(blocks)
    assert _links(md) == [] and "](" not in md
    assert md.count(CAPTION) == 1


def test_cli_writes_every_crop_and_every_link_resolves(
    tmp_path: Path, figure_server: FakeOCRServer
) -> None:
    pdf = figure_pdf(tmp_path / "my report.pdf")
    out = tmp_path / "out"
    done = run_cli(
        "convert",
        str(pdf),
        "-o",
        str(out),
        "--no-cache",
        "--quiet",
        env={"DEEPSEEK_OCR_BASE_URL": figure_server.base_url},
    )
    assert done.returncode == 0, done.stderr
    md = (out / "my report.md").read_text(encoding="utf-8")
    links = _links(md)
    crops = sorted((out / "my report" / "images").iterdir())
    assert len(links) == len(crops) == 1  # one image block, one crop
    assert crops[0].name == figure_name("my report.pdf", 1, 0) == "my_report-p1-0.png"
    for link in links:
        assert (out / link.replace("%20", " ")).is_file()
    assert md.count(CAPTION) == 1
    with Image.open(crops[0]) as crop:
        render = (round(PAGE[0] * 2), round(PAGE[1] * 2))  # the CLI's 144 dpi
        w, h = _expected_size(MODEL_BOX, render)
        assert abs(crop.width - w) <= 2 and abs(crop.height - h) <= 2
        assert _mostly(crop, RED)
    lines = [json.loads(x) for x in (out / "my report.jsonl").read_text().splitlines()]
    assert all(x["metadata"]["block_types"] != "image" for x in lines)  # chunks only
    figures_file = out / "my report" / "figures.jsonl"
    figures = [json.loads(x) for x in figures_file.read_text().splitlines()]
    assert len(figures) == 1 and Path(figures[0]["metadata"]["image_path"]).is_file()
    assert figures[0]["text"] == CAPTION
    for line in lines:  # no chunk links to a file that is not there
        for link in _links(line["text"]):
            assert (out / link.replace("%20", " ")).is_file()
        assert line["text"].count(CAPTION) <= 1


def test_cli_images_none_links_nothing(tmp_path: Path, figure_server: FakeOCRServer) -> None:
    pdf = figure_pdf(tmp_path / "r.pdf")
    out = tmp_path / "out"
    done = run_cli(
        "convert",
        str(pdf),
        "-o",
        str(out),
        "--no-cache",
        "--quiet",
        "--images",
        "none",
        env={"DEEPSEEK_OCR_BASE_URL": figure_server.base_url},
    )
    assert done.returncode == 0, done.stderr
    md = (out / "r.md").read_text(encoding="utf-8")
    assert _links(md) == [] and md.count(CAPTION) == 1 and not (out / "r").exists()


def test_langchain_inline_figure_documents(tmp_path: Path, figure_server: FakeOCRServer) -> None:
    pdf = figure_pdf(tmp_path / "r.pdf")
    plain = DeepSeekOCRLoader(pdf, base_url=figure_server.base_url).load()
    assert all(d.metadata["block_types"] != "image" for d in plain)  # default: as before
    assert all(not _links(d.page_content) for d in plain)
    docs = DeepSeekOCRLoader(pdf, base_url=figure_server.base_url, images="inline").load()
    [fig] = [d for d in docs if d.metadata["block_types"] == "image"]
    assert fig.page_content == CAPTION
    assert fig.metadata["image_mimetype"] == "image/png" and "image_path" not in fig.metadata
    assert fig.id and fig.id.endswith("-p1-f0")
    [region] = json.loads(str(fig.metadata["regions"]))
    assert region["label"] == "image" and region["page"] == 1
    assert all(abs(a - b) <= 1 for a, b in zip(region["bbox"], RECT, strict=True))
    crop = Image.open(io.BytesIO(base64.b64decode(fig.metadata["image_base64"])))
    assert _mostly(crop, RED)
    for d in docs:  # inline: no file, so no link; the caption once
        assert not _links(d.page_content) and d.page_content.count(CAPTION) <= 1
    assert set(plain[0].metadata) <= set(fig.metadata)
    [holder] = [d for d in docs if d.id == fig.metadata["chunk_id"]]  # the chunk it sits in
    assert CAPTION in holder.page_content and docs.index(fig) == docs.index(holder) + 1
    assert fig.metadata["heading"] == holder.metadata["heading"]


def test_langchain_figures_through_lazy_and_async_loads(
    tmp_path: Path, figure_server: FakeOCRServer
) -> None:
    import asyncio

    pdf = figure_pdf(tmp_path / "r.pdf")
    loader = DeepSeekOCRLoader(pdf, base_url=figure_server.base_url, images="inline")
    lazy = list(loader.lazy_load())

    async def drain() -> list[str]:
        return [d.id or "" async for d in loader.alazy_load()]

    assert [d.id for d in lazy] == asyncio.run(drain()) == [d.id for d in loader.load()]
    assert sum(d.metadata["block_types"] == "image" for d in lazy) == 1


def test_llamaindex_image_nodes_only_when_asked(
    tmp_path: Path, figure_server: FakeOCRServer
) -> None:
    from llama_index.core.schema import ImageNode

    pdf = figure_pdf(tmp_path / "r.pdf")
    plain = DeepSeekOCRReader(base_url=figure_server.base_url).load_data(pdf)
    assert not any(isinstance(d, ImageNode) for d in plain)
    folder = tmp_path / "crops"
    reader = DeepSeekOCRReader(base_url=figure_server.base_url, images="files", images_dir=folder)
    docs = reader.load_data(pdf)
    [node] = [d for d in docs if isinstance(d, ImageNode)]
    assert node.text == CAPTION and node.image_mimetype == "image/png"
    assert node.image_path is not None and Path(node.image_path).parent == folder
    assert node.metadata["block_types"] == "image" and node.metadata["page_label"] == "1"
    assert "image_path" in node.excluded_embed_metadata_keys
    texts = [d.text for d in docs if not isinstance(d, ImageNode)]
    for text in texts:
        for link in _links(text):
            assert Path(link).is_file()
    assert any(_links(t) for t in texts)
    assert DeepSeekOCRReader(base_url=figure_server.base_url, images="files", images_dir=folder)
    with pytest.raises(ValueError, match="images_dir"):
        DeepSeekOCRReader(base_url=figure_server.base_url, images="files")
    with pytest.raises(ValueError, match="images"):
        DeepSeekOCRReader(base_url=figure_server.base_url, images="jpeg")


def test_local_engine_crops_embedded_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEEPSEEK_OCR_BASE_URL", raising=False)
    pdf = figure_pdf(tmp_path / "local.pdf", embedded=True)
    folder = tmp_path / "crops"
    docs = DeepSeekOCRLoader(pdf, images="files", images_dir=folder, render_workers=0).load()
    figures = [d for d in docs if d.metadata["block_types"] == "image"]
    chunks = [d for d in docs if d.metadata["block_types"] != "image"]
    crops = sorted(folder.iterdir())
    assert len(figures) == len(crops) == 1
    with Image.open(crops[0]) as crop:
        assert _mostly(crop, RED, 0.8)
        [region] = json.loads(str(figures[0].metadata["regions"]))
        x0, y0, x1, y1 = region["bbox"]
        scale = 144 / 72
        assert abs(crop.width - (x1 - x0) * scale) <= 2
        assert abs(crop.height - (y1 - y0) * scale) <= 2
    for d in chunks:
        for link in _links(d.page_content):
            assert Path(link).is_file()
        assert d.page_content.count(CAPTION) <= 1


def test_crop_names_come_from_sanitised_parts_only() -> None:
    assert safe_stem("../../etc/pass wd.pdf") == "pass_wd"
    assert figure_name("..\\..\\x<y>.pdf", 3, 2) == "x_y-p3-2.png"
    assert safe_stem("....pdf") == "document"


def test_figures_example_indexes_image_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import runpy
    import sys

    example = Path(__file__).resolve().parents[1] / "examples" / "figures.py"
    monkeypatch.delenv("DEEPSEEK_OCR_BASE_URL", raising=False)  # the local engine
    monkeypatch.setattr(
        sys,
        "argv",
        [str(example), str(figure_pdf(tmp_path / "f.pdf", embedded=True)), str(tmp_path)],
    )
    runpy.run_path(str(example), run_name="__main__")
    out = capsys.readouterr().out
    assert "1 figure(s) from f.pdf" in out
    assert f"hit (figure): '{CAPTION}'" in out
    assert (tmp_path / "crops" / "f-p1-0.png").is_file()


def test_two_inputs_named_alike_share_a_crop_folder(
    tmp_path: Path, figure_server: FakeOCRServer
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    pdfs = [figure_pdf(tmp_path / d / "report.pdf") for d in ("a", "b")]
    pymupdf_doc = pymupdf.open(pdfs[1])  # other bytes, same name
    pymupdf_doc.set_metadata({"title": "second"})
    pymupdf_doc.saveIncr()
    pymupdf_doc.close()
    folder = tmp_path / "crops"
    docs = DeepSeekOCRLoader(
        pdfs, base_url=figure_server.base_url, images="files", images_dir=folder
    ).load()
    paths = [d.metadata["image_path"] for d in docs if d.metadata["block_types"] == "image"]
    assert sorted(Path(p).name for p in paths) == ["report-2-p1-0.png", "report-p1-0.png"]
    assert all(Path(p).is_file() for p in paths)


def test_a_real_figure_page_crops_every_image_block_and_links_every_crop(
    corpus: Path, tmp_path: Path
) -> None:
    """The corpus's Google Docs export (a page with an embedded picture), through the CLI on
    the local engine: one crop per ``image`` region, each the size of its box at the
    resolution sent (within 2 px), every markdown link an existing file."""
    name = "digital_google_docs_example.pdf"
    out = tmp_path / "out"
    assert run_cli("convert", str(corpus / name), "-o", str(out), "--no-cache").returncode == 0
    stem = Path(name).stem
    chunks = [json.loads(x) for x in (out / f"{stem}.jsonl").read_text().splitlines()]
    boxes = {
        (r["page"], tuple(r["bbox"]))
        for c in chunks
        for r in json.loads(c["metadata"]["regions"])
        if r["label"] == "image"
    }
    figures = [json.loads(x) for x in (out / stem / "figures.jsonl").read_text().splitlines()]
    assert len(boxes) == len(figures) >= 1
    pdf = pymupdf.open(corpus / name)
    detail = json.loads((out / f"{stem}.stats.json").read_text())["pages_detail"]
    for fig in figures:
        meta = fig["metadata"]
        (region,) = json.loads(meta["regions"])
        zoom = detail[region["page"] - 1]["image_size"][0] / pdf[region["page"] - 1].rect.width
        x0, y0, x1, y1 = region["bbox"]
        assert abs(meta["image_width"] - (x1 - x0) * zoom) <= 2
        assert abs(meta["image_height"] - (y1 - y0) * zoom) <= 2
        assert Image.open(meta["image_path"]).size == (meta["image_width"], meta["image_height"])
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (out / f"{stem}.md").read_text())
    assert len(links) == len(figures)
    assert all((out / link).is_file() for link in links)
