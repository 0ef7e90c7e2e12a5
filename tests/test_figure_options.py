"""Figure crops beyond the defaults: pages from the cache, ``figure_dpi``, table and equation
crops, JPEG, and the LlamaIndex relationship of a figure to its chunk."""

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

from ocr_loaders import ConfigError, DeepSeekOCRLoader, DeepSeekOCRReader
from ocr_loaders._model import model_box
from ocr_loaders.testing import FakeOCRServer
from ocr_loaders.testing.responders import static_responder

from .conftest import run_cli

PAGE = (612.0, 792.0)
FIGURE = (100.0, 200.0, 400.0, 400.0)  # PDF points
TABLE = (100.0, 480.0, 500.0, 600.0)
EQUATION = (200.0, 650.0, 400.0, 700.0)
CAPTION = "Figure 1. A red square on the page."
TABLE_CAPTION = "Table 1. Two sites."
RED, BLUE, GREEN = (220, 20, 20), (20, 20, 220), (20, 160, 20)


def _tag(label: str, bbox: tuple[float, float, float, float], page: tuple[float, float]) -> str:
    return f"<|ref|>{label}<|/ref|><|det|>[{list(model_box(bbox, *page))}]<|/det|>"


def _answer(page: tuple[float, float] = PAGE) -> str:
    return (
        f"{_tag('title', (72, 60, 540, 100), page)}\n# Report\n\n"
        f"{_tag('text', (72, 120, 540, 180), page)}\nSome words before the figure.\n\n"
        f"{_tag('image', FIGURE, page)}\n\n"
        f"{_tag('image_caption', (100, 410, 400, 430), page)}\n{CAPTION}\n\n"
        f"{_tag('table_caption', (100, 450, 400, 470), page)}\n{TABLE_CAPTION}\n\n"
        f"{_tag('table', TABLE, page)}\n"
        "<table><tr><td>site</td><td>level</td></tr><tr><td>A</td><td>3</td></tr></table>\n\n"
        f"{_tag('equation', EQUATION, page)}\n\\[ E = m c^2 \\]\n"
    )


def _pdf(path: Path, *, rotate: int = 0) -> Path:
    """One page with a red figure, a blue table area and a green equation area (drawn in the
    frame a viewer shows, whatever the page's ``/Rotate``)."""
    doc = pymupdf.open()
    w, h = PAGE if rotate in (0, 180) else PAGE[::-1]
    page = doc.new_page(width=w, height=h)
    page.set_rotation(rotate)
    for rect, colour in ((FIGURE, RED), (TABLE, BLUE), (EQUATION, GREEN)):
        shown = pymupdf.Rect(*rect) * page.derotation_matrix
        page.draw_rect(shown, color=None, fill=tuple(c / 255 for c in colour))
    doc.save(path)
    return path


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOCRServer]:
    with FakeOCRServer(static_responder(_answer())) as srv:
        yield srv


def _links(markdown: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]*)\)", markdown)


def _share(crop: Image.Image, colour: tuple[int, int, int]) -> float:
    data = crop.convert("RGB").tobytes()
    pixels = [data[i : i + 3] for i in range(0, len(data), 3)]
    return sum(all(abs(p[i] - colour[i]) <= 40 for i in range(3)) for p in pixels) / len(pixels)


def _size_at(bbox: tuple[float, ...], dpi: float) -> tuple[float, float]:
    """The pixel size of a box of ``FIGURE``'s model units at ``dpi``."""
    box = model_box(bbox, *PAGE)
    return (
        (box[2] - box[0]) / 999 * PAGE[0] * dpi / 72,
        (box[3] - box[1]) / 999 * PAGE[1] * dpi / 72,
    )


def _tree(folder: Path) -> dict[str, bytes]:
    """Every output file but the stats (timings differ), with the folder's own path as
    ``OUT`` (figure records name their crop's path)."""
    return {
        str(p.relative_to(folder)): p.read_bytes().replace(str(folder).encode(), b"OUT")
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".stats.json")
    }


def test_cached_pages_still_get_their_crops_and_no_request(
    tmp_path: Path, server: FakeOCRServer
) -> None:
    pdf = _pdf(tmp_path / "paper.pdf")
    env = {"DEEPSEEK_OCR_BASE_URL": server.base_url}
    cache = tmp_path / "cache"
    outputs = []
    counts = []
    for run in ("first", "second"):
        before = server.request_count
        out = tmp_path / run
        done = run_cli(
            "convert", str(pdf), "-o", str(out), "--cache-dir", str(cache), "-q", env=env
        )
        assert done.returncode == 0, done.stderr
        counts.append(server.request_count - before)
        outputs.append(_tree(out))
    assert counts == [1, 0]  # the second run is served from the cache
    first, second = outputs
    assert first.keys() == second.keys()
    assert "paper/images/paper-p1-0.png" in first
    for name in first:  # md, chunks, figure records and crop files: identical, byte for byte
        assert first[name] == second[name], name
    md = second["paper.md"].decode()
    assert _links(md) == ["paper/images/paper-p1-0.png"] and md.count(CAPTION) == 1
    assert (tmp_path / "second" / _links(md)[0]).is_file()
    figures = [json.loads(x) for x in second["paper/figures.jsonl"].decode().splitlines()]
    [path] = [f["metadata"]["image_path"] for f in figures]
    assert Path(path.replace("OUT", str(tmp_path / "second"), 1)).is_file()


@pytest.mark.parametrize("workers", [0, 1])
@pytest.mark.parametrize("rotate", [0, 90])
def test_figure_dpi_renders_the_box_again_sharper(
    tmp_path: Path, workers: int, rotate: int
) -> None:
    with FakeOCRServer(static_responder(_answer())) as srv:  # the viewer's frame is PAGE
        pdf = _pdf(tmp_path / "r.pdf", rotate=rotate)
        docs = DeepSeekOCRLoader(
            pdf,
            base_url=srv.base_url,
            images="inline",
            dpi=72,
            figure_dpi=216,
            render_workers=workers,
        ).load()
    [fig] = [d for d in docs if d.metadata["block_types"] == "image"]
    crop = Image.open(io.BytesIO(base64.b64decode(fig.metadata["image_base64"])))
    w, h = _size_at(FIGURE, 216)  # three times the 72 dpi sent
    assert abs(crop.width - w) <= 2 and abs(crop.height - h) <= 2
    assert (fig.metadata["image_width"], fig.metadata["image_height"]) == crop.size
    assert _share(crop, RED) >= 0.95


def test_default_crops_are_at_the_resolution_sent(tmp_path: Path, server: FakeOCRServer) -> None:
    pdf = _pdf(tmp_path / "r.pdf")
    docs = DeepSeekOCRLoader(pdf, base_url=server.base_url, images="inline", dpi=72).load()
    [fig] = [d for d in docs if d.metadata["block_types"] == "image"]
    w, h = _size_at(FIGURE, 72)
    assert abs(fig.metadata["image_width"] - w) <= 2 and abs(fig.metadata["image_height"] - h) <= 2


def test_image_inputs_ignore_figure_dpi(tmp_path: Path) -> None:
    png = tmp_path / "scan.png"
    picture = Image.new("RGB", (612, 792), (255, 255, 255))
    picture.paste(RED, tuple(int(v) for v in FIGURE))
    picture.save(png)
    with FakeOCRServer(static_responder(_answer())) as srv:
        docs = DeepSeekOCRLoader(
            png, base_url=srv.base_url, images="inline", figure_dpi=600, render_workers=0
        ).load()
    [fig] = [d for d in docs if d.metadata["block_types"] == "image"]
    w, h = _size_at(FIGURE, 72)  # the image's own pixels: never upscaled
    assert abs(fig.metadata["image_width"] - w) <= 2 and abs(fig.metadata["image_height"] - h) <= 2


def test_table_and_equation_crops_on_request(tmp_path: Path, server: FakeOCRServer) -> None:
    pdf = _pdf(tmp_path / "r.pdf")
    folder = tmp_path / "crops"
    plain = DeepSeekOCRLoader(
        pdf, base_url=server.base_url, images="files", images_dir=tmp_path / "only_figures"
    ).load()
    assert [d.metadata["block_types"] for d in plain if "image_path" in d.metadata] == ["image"]
    docs = DeepSeekOCRLoader(
        pdf,
        base_url=server.base_url,
        images="files",
        images_dir=folder,
        crop_blocks=("image", "table", "equation"),
    ).load()
    crops = {d.metadata["block_types"]: d for d in docs if "image_path" in d.metadata}
    assert sorted(crops) == ["equation", "image", "table"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "r-p1-0.png",
        "r-p1-equation0.png",
        "r-p1-table0.png",
    ]
    table, equation = crops["table"], crops["equation"]
    assert table.page_content == TABLE_CAPTION and table.id and table.id.endswith("-p1-t0")
    assert "E = m c^2" in equation.page_content and equation.id and equation.id.endswith("-p1-e0")
    with Image.open(table.metadata["image_path"]) as image:
        w, h = _size_at(TABLE, 144)
        assert abs(image.width - w) <= 2 and abs(image.height - h) <= 2
        assert _share(image, BLUE) >= 0.9
    with Image.open(equation.metadata["image_path"]) as image:
        assert _share(image, GREEN) >= 0.9
    [holder] = [d for d in docs if d.id == table.metadata["chunk_id"]]
    assert "<table>" in holder.page_content  # the chunk keeps the table's HTML ...
    assert table.metadata["image_path"] in json.loads(
        holder.metadata["crop_paths"]
    )  # ... and its crop
    for d in docs:  # only figures are linked; every link resolves
        assert all(Path(link).is_file() and "-p1-0" in link for link in _links(d.page_content))


def test_jpeg_crops(tmp_path: Path, server: FakeOCRServer) -> None:
    pdf = _pdf(tmp_path / "r.pdf")
    folder = tmp_path / "crops"
    docs = DeepSeekOCRLoader(
        pdf, base_url=server.base_url, images="files", images_dir=folder, figure_format="jpeg"
    ).load()
    [fig] = [d for d in docs if d.metadata["block_types"] == "image"]
    assert fig.metadata["image_mimetype"] == "image/jpeg"
    path = Path(fig.metadata["image_path"])
    assert path.name == "r-p1-0.jpg" and path.read_bytes()[:2] == b"\xff\xd8"
    with Image.open(path) as image:
        assert image.format == "JPEG" and _share(image, RED) >= 0.9
    assert any(f"]({path.as_posix()})" in d.page_content for d in docs)
    inline = DeepSeekOCRLoader(pdf, base_url=server.base_url, images="inline", figure_format="jpeg")
    [fig] = [d for d in inline.load() if d.metadata["block_types"] == "image"]
    assert base64.b64decode(fig.metadata["image_base64"])[:2] == b"\xff\xd8"


def test_image_node_parent_is_the_chunk_that_shows_it(
    tmp_path: Path, server: FakeOCRServer
) -> None:
    from llama_index.core.schema import Document, ImageNode, NodeRelationship

    pdf = _pdf(tmp_path / "r.pdf")
    nodes = DeepSeekOCRReader(base_url=server.base_url, images="inline").load_data(pdf)
    [node] = [n for n in nodes if isinstance(n, ImageNode)]
    assert node.parent_node is not None
    [chunk] = [n for n in nodes if isinstance(n, Document) and n.id_ == node.parent_node.node_id]
    assert CAPTION in chunk.text and node.text == CAPTION
    assert NodeRelationship.SOURCE not in node.relationships  # ref_doc_id stays its own


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("figure_dpi", "high"),
        ("figure_dpi", 5000),
        ("figure_format", "gif"),
        ("crop_blocks", ("image", "text")),
        ("crop_blocks", ()),
    ],
)
def test_bad_crop_options_are_config_errors(option: str, value: object) -> None:
    with pytest.raises(ConfigError, match=option):
        DeepSeekOCRLoader(
            "x.pdf", base_url="http://localhost:1", images="inline", **{option: value}
        )


def test_cli_crop_options(tmp_path: Path, server: FakeOCRServer) -> None:
    pdf = _pdf(tmp_path / "r.pdf")
    out = tmp_path / "out"
    env = {"DEEPSEEK_OCR_BASE_URL": server.base_url}
    args = ["convert", str(pdf), "-o", str(out), "--no-cache", "-q", "--dpi", "72"]
    done = run_cli(
        *args,
        "--figure-dpi",
        "144",
        "--figure-format",
        "jpeg",
        "--crop-blocks",
        "image,table",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    images = out / "r" / "images"
    assert sorted(p.name for p in images.iterdir()) == ["r-p1-0.jpg", "r-p1-table0.jpg"]
    with Image.open(images / "r-p1-0.jpg") as image:
        w, h = _size_at(FIGURE, 144)
        assert abs(image.width - w) <= 2 and abs(image.height - h) <= 2
    md = (out / "r.md").read_text()
    assert _links(md) == ["r/images/r-p1-0.jpg"]
    bad = run_cli(*args, "--figure-format", "gif", env=env)
    assert bad.returncode == 2 and "figure_format" in bad.stderr + bad.stdout


def test_a_crop_that_cannot_be_rendered_leaves_the_caption_and_no_link(
    tmp_path: Path,
    server: FakeOCRServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ocr_loaders._errors import PageRenderError
    from ocr_loaders._rendering import thread

    def broken(*_args: object) -> None:
        raise PageRenderError("clip failed", path="r.pdf", page=1)

    monkeypatch.setattr(thread, "clip_pdf", broken)
    pdf = _pdf(tmp_path / "r.pdf")
    folder = tmp_path / "crops"
    docs = DeepSeekOCRLoader(
        pdf,
        base_url=server.base_url,
        images="files",
        images_dir=folder,
        figure_dpi=300,
        render_workers=0,
    ).load()
    assert docs and not any("image_path" in d.metadata for d in docs)
    assert not folder.exists()
    text = "\n".join(d.page_content for d in docs)
    assert not _links(text) and text.count(CAPTION) == 1
    assert "figures not cropped" in caplog.text and "clip failed" in caplog.text
