"""The command line on bad input and misbehaving servers, and the figures it reports.

Each test names the point of issue 11 it covers: bad input as users make it (6-8), the CLI's
options and reports (9-12), and the mixed folder end to end.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from ocr_loaders import CorruptInputError, LoaderOptions, estimate, vision_tokens
from ocr_loaders._sources import DocumentSource, describe
from ocr_loaders.testing import FakeOCRServer, FaultPlan, grid_responder

from .conftest import MixedFolder, chats, make_pdf, run_cli

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def convert(out: Path, server: FakeOCRServer, *args: str) -> list[str]:
    """``convert ARGS -o OUT`` against ``server``, without the page cache."""
    return ["convert", *args, "-o", str(out), "--base-url", server.base_url, "--no-cache"]


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- 6. bad input as users make it -----------------------------------------------------------


def test_html_error_page_saved_as_pdf_is_corrupt_input(tmp_path: Path) -> None:
    """A failed download (an HTML page named .pdf) is refused by its bytes, naming the file;
    the same for a .png that is not a PNG and a PDF cut short; MuPDF would read each."""
    html = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>404</body>"
    cases = {"download.pdf": html, "photo.png": html}
    whole = make_pdf(tmp_path / "whole.pdf", 4).read_bytes()
    cases["cut.pdf"] = whole[: len(whole) // 3]
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(CorruptInputError, match=re.escape(name)) as caught:
            describe(DocumentSource(str(path), path=path))
        assert "HTML" in str(caught.value) or "truncated" in str(caught.value)
    # an HTML page that merely mentions the PDF header is still not a PDF
    mention = tmp_path / "mention.pdf"
    mention.write_bytes(b"<html><body><pre>%PDF-1.7</pre></body></html>")
    with pytest.raises(CorruptInputError, match="mention.pdf"):
        describe(DocumentSource(str(mention), path=mention))


# --- 7. no empty or half-written outputs ----------------------------------------------------


def test_unreachable_server_leaves_no_output_files(
    tmp_path: Path, made_options: list[LoaderOptions]
) -> None:
    pdf = make_pdf(tmp_path / "x.pdf", 2)
    with FakeOCRServer(grid_responder()) as srv:
        url = srv.base_url  # a port nothing listens on once the server is gone
    out = tmp_path / "out"
    done = run_cli("convert", str(pdf), "-o", str(out), "--base-url", url, "--no-cache")
    assert done.returncode == 1
    assert "cannot reach the OCR server" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == []  # no empty x.md, x.jsonl, stats


def test_stopped_run_leaves_only_partial_files(
    tmp_path: Path, made_options: list[LoaderOptions]
) -> None:
    """Two requests succeed, then every one fails and ``--on-error raise`` stops the run: the
    done pages are kept under ``.partial`` names that a glob over *.jsonl does not pick up."""
    pdf = make_pdf(tmp_path / "x.pdf", 4)
    out = tmp_path / "out"
    plan = FaultPlan(script=("ok", "ok"), error_500=1.0)
    with FakeOCRServer(grid_responder(), faults=plan) as srv:
        args = convert(out, srv, str(pdf), "--concurrency", "1", "--on-error", "raise")
        done = run_cli(*args)
    assert done.returncode == 1, done.stderr
    assert list(out.glob("*.jsonl")) == [] and list(out.glob("*.md")) == []
    stats = json.loads((out / "x.stats.json.partial").read_text())
    done_pages = stats["pages"]
    assert stats["complete"] is False and 1 <= done_pages < 4
    md = (out / "x.md.partial").read_text()
    assert re.findall(r"<!-- page (\d+)", md) == [str(n) for n in range(1, done_pages + 1)]
    assert records(out / "x.jsonl.partial")


# --- 8. one missing path among several ------------------------------------------------------


def test_missing_path_among_several_is_skipped(tmp_path: Path, server: FakeOCRServer) -> None:
    a = make_pdf(tmp_path / "a.pdf", 2)
    b = make_pdf(tmp_path / "b.pdf", 1)
    missing = tmp_path / "nope.pdf"
    out = tmp_path / "out"
    done = run_cli(*convert(out, server, str(a), str(missing), str(b)))
    assert done.returncode == 1, done.stderr
    assert (out / "a.jsonl").is_file() and (out / "b.jsonl").is_file()
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nope.pdf" in errors[0]
    summary = [line for line in done.stderr.splitlines() if line.startswith("skipped ")]
    assert summary == [f"skipped 1 file(s): {missing}: no such file or folder"]
    only_missing = run_cli(*convert(out, server, str(missing)))
    assert only_missing.returncode == 2  # nothing to convert at all


# --- 9. the Python options on the command line ----------------------------------------------


def test_cli_has_the_python_options(
    tmp_path: Path, server: FakeOCRServer, made_options: list[LoaderOptions]
) -> None:
    pdf = make_pdf(tmp_path / "p.pdf", 3)
    out = tmp_path / "out"
    args = convert(out, server, str(pdf))
    extra = ["--mode", "pages", "--tables", "markdown", "--prompt", "Free OCR."]
    done = run_cli(*args, *extra, "--timeout", "12.5", "--on-error", "raise")
    assert done.returncode == 0, done.stderr
    options = made_options[-1]
    assert (options.chunk.mode, options.chunk.tables) == ("pages", "markdown")
    assert (options.prompt, options.endpoint.timeout, options.on_error) == (
        "Free OCR.",
        12.5,
        "raise",
    )
    assert {r.prompt for r in chats(server)} == {"Free OCR."}
    assert [r["metadata"]["page_start"] for r in records(out / "p.jsonl")] == [1, 2, 3]
    bad = run_cli(*args, "--on-error", "ignore")
    assert bad.returncode == 2 and "on_error" in bad.stderr


# --- 10. log lines stay clear of the progress bar --------------------------------------------


def test_log_lines_are_printed_above_the_bar_not_over_it(tmp_path: Path) -> None:
    """On a terminal the bar is live; the local engine's INFO line comes after it started and
    must begin on a line of its own (rich clears the bar first), not after the bar's text."""
    pdf = make_pdf(tmp_path / "t.pdf", 2)
    env = {"FORCE_COLOR": "1", "TERM": "xterm", "COLUMNS": "100"}
    done = run_cli("convert", str(pdf), "-o", str(tmp_path / "o"), "--no-cache", env=env)
    assert done.returncode == 0, done.stderr
    raw = done.stderr
    assert "pages/s" in raw  # the live bar was drawn
    at = raw.index("INFO ocr_loaders")
    before = ANSI.sub("", raw[:at].replace("\x1b[2K", "\n"))
    assert before == "" or before.endswith(("\n", "\r")), repr(raw[max(0, at - 80) : at])


# --- 11. figures that agree -----------------------------------------------------------------


def test_latency_excludes_queueing_on_the_local_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Five pages handed to the local engine at once wait for its one worker; each page's
    latency is its own reading there (with the wait counted, the fifth would show ~5x the
    first's)."""
    from ocr_loaders._engines.local import LocalEngine
    from ocr_loaders._model import PageImage, SourceInfo

    info = SourceInfo("s.png", "s.png", "/s.png", "0" * 64, "image", 5)
    pages = [PageImage(info, n, str(n), 10.0, 10.0, b"", "image/png", 10, 10) for n in range(5)]

    def slow_work(self: LocalEngine, page: PageImage) -> str:
        time.sleep(0.1)
        return "text"

    monkeypatch.setattr(LocalEngine, "_work", slow_work)

    async def read_all() -> list[float]:
        engine = LocalEngine()
        try:
            raws = await asyncio.gather(*(engine.recognize(p) for p in pages))
        finally:
            await engine.aclose()
        return [r.latency_s for r in raws]

    latencies = asyncio.run(read_all())
    assert max(latencies) < 2.5 * min(latencies), latencies


def test_document_seconds_cover_their_pages(tmp_path: Path) -> None:
    """Two documents whose pages are served at once: each document's seconds span its own
    pages' work, so none is shorter than its slowest page (today's second document: ~0 s)."""
    (tmp_path / "in").mkdir()
    make_pdf(tmp_path / "in" / "four.pdf", 4)
    make_pdf(tmp_path / "in" / "one.pdf", 1)
    out = tmp_path / "o"
    with FakeOCRServer(grid_responder(), service_time=0.2) as srv:
        done = run_cli(*convert(out, srv, str(tmp_path / "in")))
    assert done.returncode == 0, done.stderr
    for stem in ("four", "one"):
        stats = json.loads((out / f"{stem}.stats.json").read_text())
        slowest = max(p["latency_s"] for p in stats["pages_detail"])
        assert slowest > 0.1
        assert stats["seconds"] >= slowest - 1e-3, (stem, stats["seconds"], slowest)


def test_one_pages_per_second_for_bar_table_and_json(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "r.pdf", 3)
    out = tmp_path / "o"
    env = {"FORCE_COLOR": "1", "TERM": "xterm", "COLUMNS": "200"}
    with FakeOCRServer(grid_responder(), service_time=0.05) as srv:
        done = run_cli(*convert(out, srv, str(pdf)), env=env)
    assert done.returncode == 0, done.stderr
    text = ANSI.sub("", done.stderr)
    bar, table = text.split("run statistics", 1)
    bar_rate = re.findall(r"([\d.]+) pages/s", bar)[-1]
    table_rate = re.findall(r"([\d.]+) pages/s", table)[-1]
    stats = json.loads((out / "r.stats.json").read_text())
    assert bar_rate == table_rate == f"{stats['pages_per_second']:.2f}"
    assert stats["pages_per_second"] == pytest.approx(3 / stats["seconds"], rel=0.01)


# --- 12. a dry run --------------------------------------------------------------------------


def test_dry_run_counts_pages_and_tokens_and_sends_nothing(
    tmp_path: Path, server: FakeOCRServer
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    make_pdf(folder / "letter.pdf", 2)
    make_pdf(folder / "turned.pdf", 1, rotate=90, size=(595, 842))
    make_pdf(folder / "poster.pdf", 1, size=(250 * 72, 500 * 72))  # over the pixel budget
    Image.new("RGB", (1920, 1080), "white").save(folder / "shot.png")
    (folder / "download.pdf").write_bytes(b"<html><body>404</body></html>")
    dry = run_cli("convert", str(folder), "--dry-run", "--base-url", server.base_url, "--json")
    assert server.requests == []  # not even a probe
    assert dry.returncode == 1  # download.pdf would be skipped
    plan = json.loads(dry.stdout)
    assert plan["pages"] == plan["requests"] == 5
    assert plan["assumed_pages_per_second"] == 2.3
    assert plan["gpu_seconds"] == round(5 / 2.3, 1)
    assert [s["source"] for s in plan["skipped"]] == [str(folder / "download.pdf")]
    assert "request(s)" in dry.stderr and "2.3 pages/s" in dry.stderr

    # the figures are the real run's: same images, same vision tokens
    (folder / "download.pdf").unlink()
    out = tmp_path / "o"
    done = run_cli(*convert(out, server, str(folder)))
    assert done.returncode == 0, done.stderr
    real = {
        Path(d["source"]).name: d["vision_tokens"]
        for d in (json.loads(p.read_text()) for p in out.glob("*.stats.json"))
    }
    est = estimate(folder, assume_pages_per_s=4.0)
    assert {Path(d.source).name: d.vision_tokens for d in est.documents} == real
    assert est.vision_tokens == sum(real.values()) and est.gpu_seconds == 5 / 4.0
    assert real["shot.png"] == vision_tokens(1920, 1080)

    faster = run_cli("convert", str(folder), "--dry-run", "--assume-pages-per-s", "0.5")
    assert faster.returncode == 0 and "GPU time ~10 s at an assumed 0.5 pages/s" in faster.stderr


# --- the mixed folder, end to end -----------------------------------------------------------


def test_mixed_folder_end_to_end_with_server_faults(
    mixed_folder: MixedFolder, tmp_path: Path, made_options: list[LoaderOptions]
) -> None:
    """Good files, an HTML page as .pdf, a truncated and a header-only PDF and two PDFs under
    different passwords, against a server failing 30 % of requests with 500s."""
    folder = mixed_folder
    passwords = [f"--password={name}={pw}" for name, pw in folder.passwords.items()]
    locked_out: set[str] = set()
    good = dict(folder.good_pages)
    out = tmp_path / "out"
    faults = FaultPlan(error_500=0.3, seed=11)
    with FakeOCRServer(grid_responder(), faults=faults) as srv:
        args = convert(out, srv, str(folder.path), "--mode", "pages", *passwords)
        done = run_cli(*args, "--concurrency", "4", "--json", "--verify", "off")  # failures only
        assert any(r.status == 500 for r in chats(srv))
    assert done.returncode == 1, done.stderr

    # every good page arrives once, and no chunk is empty
    seen: Counter[tuple[str, int]] = Counter()
    for jsonl in out.glob("*.jsonl"):
        for rec in records(jsonl):
            assert rec["text"].strip(), rec["metadata"]
            meta = rec["metadata"]
            seen.update(
                (meta["file_name"], p) for p in range(meta["page_start"], meta["page_end"] + 1)
            )
    expected = {(name, p) for name, n in good.items() for p in range(1, n + 1)}
    assert set(seen) == expected and set(seen.values()) == {1}
    assert not list(out.glob("*.partial"))

    # every failure listed with file and reason, in the JSON and in the table
    payload = json.loads(done.stdout)
    failed = {Path(f["source"]).name: f["reason"] for f in payload["failures"]}
    assert set(failed) == set(folder.broken) | locked_out
    assert all(failed.values())
    assert "HTML" in failed["download.pdf"] and "truncated" in failed["truncated.pdf"]
    table = done.stderr.split("run statistics", 1)[1]
    for name in failed:
        assert name in table
    assert table.count("skipped:") == len(failed)

    # nothing on stderr but the project's own lines and the table
    own = ("error: ", "WARNING ocr_loaders", "INFO ocr_loaders", "skipped ", str(folder.path))
    lines = done.stderr.splitlines()
    title = next(i for i, line in enumerate(lines) if "ocr-loaders: run statistics" in line)
    for line in lines[:title] + lines[title + 1 :][-1:]:
        assert line.startswith(own), line
    assert "Traceback" not in done.stderr and "Task was destroyed" not in done.stderr
