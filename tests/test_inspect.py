"""The inspector's files without a browser: what ``convert --html`` and ``inspect`` write, the
data the page draws, the escaping and the Content-Security-Policy."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from ocr_loaders._inspect import write_inspector
from ocr_loaders._inspect.layout import LaidBlock, PageLayout
from ocr_loaders._inspect.page import json_island, render_html
from ocr_loaders._inspect.report import ChunkLine, histogram, report_data
from ocr_loaders.testing import FakeOCRServer

from .conftest import make_pdf, run_cli

ISLAND = re.compile(r'<script type="application/json" id="inspector-data">(.*?)</script>', re.S)


def island(html_path: Path) -> dict[str, Any]:
    """The data a report draws, read back from its JSON island."""
    found = ISLAND.search(html_path.read_text(encoding="utf-8"))
    assert found is not None
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def convert(pdf: Path, out: Path, server: FakeOCRServer, *extra: str) -> None:
    args = ["convert", str(pdf), "-o", str(out), "--base-url", server.base_url, *extra]
    result = run_cli(*args, "-q")
    assert result.returncode == 0, result.stderr


def test_json_island_cannot_close_its_element() -> None:
    text = "</script><script>alert(1)</script> & <!-- \u2028 \u2029 >"
    out = json_island({"t": text, "ratio": float("nan")})
    assert not set("<>&\u2028\u2029") & set(out)
    assert json.loads(out) == {"t": text, "ratio": None}


def test_policy_allows_exactly_the_inline_script_and_style() -> None:
    page = render_html({"title": "<b>x</b>.pdf", "pages": [], "chunks": []})
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert policy is not None
    script = re.findall(r"<script>(.*?)</script>", page, re.S)
    style = re.findall(r"<style>(.*?)</style>", page, re.S)
    assert len(script) == 1 and len(style) == 1

    def sha(text: str) -> str:
        return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    directives = dict(d.strip().split(" ", 1) for d in policy.group(1).split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == f"'sha256-{sha(script[0])}'"
    assert directives["style-src"] == f"'sha256-{sha(style[0])}'"
    assert "<title>Inspector: &lt;b&gt;x&lt;/b&gt;.pdf</title>" in page
    assert "http://" not in page and "https://" not in page  # nothing from the network


def test_regions_are_matched_to_block_boxes() -> None:
    layout = PageLayout(
        2,
        "ii",
        600.0,
        800.0,
        (
            LaidBlock(0, "title", "# T", ((10.0, 10.0, 500.0, 40.0),)),
            LaidBlock(1, "text", "two boxes", ((10.0, 50.0, 290.0, 700.0), (310, 50, 590, 700))),
        ),
    )
    regions = [
        {"page": 2, "label": "text", "bbox": [10.0, 50.0, 290.0, 700.0]},
        {"page": 2, "label": "text", "bbox": [310.0, 50.0, 590.0, 700.0]},
        {"page": 3, "label": "text", "bbox": [1.0, 2.0, 3.0, 4.0]},  # no layout for page 3
    ]
    chunk = ChunkLine("c0", "two boxes", {"regions": json.dumps(regions), "chunk_index": 0})
    stats = {
        "pages_detail": [
            {"page": 2, "status": "ok", "compression_ratio": 0.7, "risk": "fine"},
            {"page": 3, "status": "truncated", "compression_ratio": 22.0, "risk": "lossy"},
        ]
    }
    data = report_data(stats, [chunk], {2: layout}, {}, title="t.pdf")
    p2, p3 = data["pages"]
    assert [b["chunks"] for b in p2["boxes"]] == [[], [0], [0]]
    assert [b["order"] for b in p2["boxes"]] == [0, 1, 1]
    assert p3["boxes"] == [
        {"order": None, "label": "text", "text": "", "bbox": [1.0, 2.0, 3.0, 4.0], "chunks": [0]}
    ]
    assert data["chunks"][0]["regions"] == [[2, 1], [2, 2], [3, 0]]
    assert p2["flags"] == [] and p3["flags"] == ["truncated", "lossy"]
    assert data["layout"] is True


def test_verification_fields_are_shown_when_present() -> None:
    detail = {
        "page": 1,
        "status": "ok",
        "risk": "fine",
        "text_coverage": 0.62,
        "verification": {"method": "text layer"},
        "missed_regions": [{"bbox": [1, 2, 3, 4]}, [5, 6, 7, 8], "junk"],
    }
    data = report_data({"pages_detail": [detail]}, [], {}, {}, title="t.pdf")
    page = data["pages"][0]
    assert page["flags"] == ["low coverage"]
    assert page["coverage"] == 0.62
    assert json.loads(page["verification"]) == {"method": "text layer"}
    assert page["missed"] == [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]


def test_histogram_bins_every_ratio() -> None:
    bins = histogram([0.2, 0.3, 0.7, 9.9, 10.0, 30.0])
    counts = {b["lo"]: b["count"] for b in bins if b["count"]}
    assert counts == {0: 2, 0.5: 1, 8: 1, 10: 1, 25: 1}
    assert bins[-1]["hi"] is None


def test_convert_html_draws_every_block_with_page_images(
    tmp_path: Path, server: FakeOCRServer
) -> None:
    pdf = make_pdf(tmp_path / "doc.pdf", 3)
    out = tmp_path / "out"
    cache = tmp_path / "cache"
    convert(pdf, out, server, "--html", "--cache-dir", str(cache))
    first = island(out / "doc.html")
    layouts = [json.loads(x) for x in (out / "doc" / "pages.jsonl").read_text().splitlines()]
    assert [p["page"] for p in first["pages"]] == [1, 2, 3] == [x["page"] for x in layouts]
    for page, layout in zip(first["pages"], layouts, strict=True):
        assert len(page["boxes"]) == sum(len(b["boxes"]) for b in layout["blocks"]) > 0
        assert (out / page["image"]).read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG beside it
    # every chunk region is one of the drawn boxes
    chunks = [json.loads(x) for x in (out / "doc.jsonl").read_text().splitlines()]
    drawn = {(p["page"], tuple(b["bbox"])) for p in first["pages"] for b in p["boxes"]}
    for c in chunks:
        for r in json.loads(c["metadata"]["regions"]):
            assert (r["page"], tuple(r["bbox"])) in drawn
    # a second run is served from the page cache: the report still has every page image
    for image in (out / "doc" / "pages").iterdir():
        image.unlink()
    convert(pdf, out, server, "--html", "--cache-dir", str(cache))
    second = island(out / "doc.html")
    assert all(p["cached"] for p in second["pages"])
    assert all((out / p["image"]).is_file() for p in second["pages"])
    assert [p["boxes"] for p in second["pages"]] == [p["boxes"] for p in first["pages"]]


def test_inspect_reads_a_plain_convert(tmp_path: Path, server: FakeOCRServer) -> None:
    pdf = make_pdf(tmp_path / "doc.pdf", 2)
    out = tmp_path / "out"
    convert(pdf, out, server, "--no-cache")
    assert not (out / "doc.html").exists()
    result = run_cli("inspect", str(out))
    assert result.returncode == 0, result.stderr
    data = island(out / "doc.html")
    assert data["layout"] is False
    regions = {
        (r["page"], tuple(r["bbox"]))
        for line in (out / "doc.jsonl").read_text().splitlines()
        for r in json.loads(json.loads(line)["metadata"]["regions"])
    }
    drawn = {(p["page"], tuple(b["bbox"])) for p in data["pages"] for b in p["boxes"]}
    assert drawn == regions
    assert [(p["width"], p["height"]) for p in data["pages"]] == [(612.0, 792.0)] * 2
    # the source changed since: no images over the wrong pages, and the report says why
    make_pdf(pdf, 3)
    write_inspector(out)
    data = island(out / "doc.html")
    assert all(p["image"] is None for p in data["pages"])
    assert any("changed since it was converted" in n for n in data["notes"])


def test_inspect_errors_name_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("inspect", str(empty))
    assert result.returncode == 2
    assert "no *.stats.json" in result.stderr and str(empty) in result.stderr
    (empty / "x.stats.json").write_text('{"pages_detail": []}')
    (empty / "x").mkdir()
    (empty / "x" / "pages.jsonl").write_text('{"page": 1}\n')
    result = run_cli("inspect", str(empty))
    assert result.returncode == 2
    assert "pages.jsonl" in result.stderr and "line 1" in result.stderr
    with pytest.raises(Exception, match="no such output folder"):
        write_inspector(tmp_path / "missing")
