"""The Python API loses no work and hides no failure (issue 11, points 1-5).

One bad file is skipped and listed, not fatal; ``on_error="raise"`` keeps what was done; a
load that raises or is abandoned prints nothing but its one exception; a failed page is
listed and logged, never an empty document; ``show_progress`` draws a bar; ``password`` may
differ per file. Everything runs against the in-process fake server.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymupdf
import pytest
from langchain_core.documents import Document as LangChainDocument

from ocr_loaders import (
    ConfigError,
    CorruptInputError,
    DeepSeekOCRLoader,
    DeepSeekOCRReader,
    EndpointUnavailableError,
    InputError,
    OCRLoadersError,
    PageFailedError,
    PasswordError,
)
from ocr_loaders._sources import DocumentSource, describe
from ocr_loaders._stats import Totals
from ocr_loaders.testing import FakeOCRServer, FaultPlan, OCRReply, OCRRequest, grid_responder

from .conftest import MixedFolder, make_pdf

FAST: dict[str, Any] = {
    "backoff_base": 0.01,
    "backoff_max": 0.05,
    "dpi": 36,
    "mode": "pages",
    "verify": "off",  # the fake's made-up words would be flagged: these tests read failures
}
KINDS = ("reader", "loader")


def text_and_id(doc: Any) -> tuple[str, str]:
    """Text and id of a LlamaIndex or a LangChain ``Document``."""
    if isinstance(doc, LangChainDocument):
        return doc.page_content, str(doc.id)
    return str(doc.text), str(doc.doc_id)


def load(kind: str, inputs: Any, **options: Any) -> tuple[list[Any], Totals]:
    """Load through the LlamaIndex reader or the LangChain loader; documents and last_stats."""
    adapter: DeepSeekOCRReader | DeepSeekOCRLoader
    if kind == "reader":
        adapter = DeepSeekOCRReader(**options)
        docs: list[Any] = adapter.load_data(inputs)
    else:
        adapter = DeepSeekOCRLoader(inputs, **options)
        docs = adapter.load()
    assert adapter.last_stats is not None
    return docs, adapter.last_stats


def pages_of(docs: list[Any]) -> list[tuple[str, int]]:
    """``(file name, page)`` of each document (pages mode: one document per page)."""
    return [(d.metadata["file_name"], d.metadata["page_start"]) for d in docs]


def refused(folder: MixedFolder) -> set[str]:
    """The broken files this build refuses to open. ``header_only.pdf`` always; the HTML page
    saved as ``download.pdf`` once its magic bytes are checked (MuPDF alone reads it as HTML),
    so the expectations follow what really happens instead of hiding it."""
    out: set[str] = set()
    for name in folder.broken:
        try:
            describe(DocumentSource(name=str(folder.path / name), path=folder.path / name))
        except InputError:
            out.add(name)
    assert "header_only.pdf" in out
    return out


def readable_pages(folder: MixedFolder) -> set[tuple[str, int]]:
    """Every page a load of the whole folder (right passwords) must account for."""
    counts = {**folder.good_pages, **folder.repaired}
    for name in set(folder.broken) - refused(folder):
        counts[name] = describe(DocumentSource(name=name, path=folder.path / name)).page_count
    return {(name, n) for name, count in counts.items() for n in range(1, count + 1)}


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.fixture
def unraisable(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What Python would print as ``Exception ignored in ...`` (e.g. a coroutine that ignored
    GeneratorExit); collected after a garbage collection at the end of the test."""
    seen: list[str] = []
    monkeypatch.setattr(
        sys, "unraisablehook", lambda u: seen.append(f"{u.object!r}: {u.exc_value!r}")
    )
    return seen


def assert_quiet(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, unraisable: list[str]
) -> None:
    """Nothing printed, nothing logged by anyone but the project, nothing left half-closed."""
    gc.collect()
    assert capfd.readouterr().err == ""
    foreign = [f"{r.name}: {r.getMessage()}" for r in caplog.records]
    assert [m for m in foreign if not m.startswith("ocr_loaders")] == []
    assert unraisable == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fail_requests(seqs: set[int]) -> Callable[[OCRRequest], OCRReply]:
    """Grid answers, except an empty answer to the requests numbered in ``seqs``."""
    grid = grid_responder()
    return lambda req: OCRReply("") if req.seq in seqs else grid(req)


def pdf_with_narrow_page(path: Path, narrow: int, pages: int = 3) -> Path:
    """A text PDF whose page ``narrow`` is 500 pt wide (250 px at 36 dpi), the others 612."""
    doc = pymupdf.open()
    for number in range(1, pages + 1):
        page = doc.new_page(width=500 if number == narrow else 612, height=792)
        page.insert_text((72, 100), f"Heading {number}", fontsize=24)
        page.insert_text((72, 160), f"The paragraph of page {number}.", fontsize=16)
    doc.save(path)
    return path


def fail_narrow_pages() -> Callable[[OCRRequest], OCRReply]:
    """Grid answers, except an empty answer, on every try, for a 250 px wide image."""
    grid = grid_responder()
    return lambda req: OCRReply("") if req.width == 250 else grid(req)


# --- 1. one bad file does not throw the load away ---------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_unreadable_files_are_skipped_logged_and_listed(
    kind: str,
    mixed_folder: MixedFolder,
    server: FakeOCRServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No password given: the locked PDFs fail too; every other page still arrives."""
    skipped = refused(mixed_folder) | set(mixed_folder.passwords)
    docs, stats = load(kind, mixed_folder.path, base_url=server.base_url, **FAST)
    expected = {p for p in readable_pages(mixed_folder) if p[0] not in mixed_folder.passwords}
    assert sorted(pages_of(docs)) == sorted(expected)
    failures = {f.source: f for f in stats.failures}
    assert {Path(s).name for s in failures} == skipped
    for source, failure in failures.items():
        assert failure.page is None and failure.reason and failure.error
        if Path(source).name in mixed_folder.passwords:
            assert failure.error == "PasswordError" and "password" in failure.reason
        # one warning per skipped file, naming it and the reason
        named = [m for m in warnings_of(caplog) if source in m]
        assert len(named) == 1 and failure.reason in named[0]
    assert stats.documents_failed == len(skipped)
    as_json = json.loads(json.dumps(stats.as_dict()))
    assert {(Path(f["source"]).name, f["page"]) for f in as_json["failures"]} == {
        (name, None) for name in skipped
    }
    assert "could not be read" in warnings_of(caplog)[-1]  # the summary comes last


def test_on_error_raise_keeps_the_documents_done_before(
    tmp_path: Path, server: FakeOCRServer
) -> None:
    first = make_pdf(tmp_path / "first.pdf", 3)
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.7\n")
    later = make_pdf(tmp_path / "later.pdf", 2)
    options: dict[str, Any] = {"base_url": server.base_url, "on_error": "raise", **FAST}

    reader = DeepSeekOCRReader(**options)
    loader = DeepSeekOCRLoader([first, bad, later], **options)
    calls: list[Callable[[], object]] = [
        lambda: reader.load_data([first, bad, later]),
        lambda: asyncio.run(reader.aload_data([first, bad, later])),
        loader.load,
        lambda: asyncio.run(loader.aload()),
    ]
    for call in calls:
        with pytest.raises(CorruptInputError, match=r"bad\.pdf") as caught:
            call()
        assert pages_of(list(caught.value.documents)) == [("first.pdf", n) for n in (1, 2, 3)]
    for adapter in (reader, loader):
        assert adapter.last_stats is not None
        assert [(Path(f.source).name, f.error) for f in adapter.last_stats.failures] == [
            ("bad.pdf", "CorruptInputError")
        ]


# --- 2. no asyncio noise ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cause", ["bad file", "failed page"])
def test_a_load_that_raises_prints_only_its_exception(
    kind: str,
    cause: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    unraisable: list[str],
) -> None:
    for i in range(3):
        make_pdf(tmp_path / f"doc{i}.pdf", 6)
    if cause == "bad file":
        (tmp_path / "doc1.pdf").write_bytes(b"%PDF-1.7\n")
    error = CorruptInputError if cause == "bad file" else PageFailedError
    failing = set(range(8, 1000)) if cause == "failed page" else set()
    with FakeOCRServer(fail_requests(failing)) as srv, pytest.raises(error):
        load(kind, tmp_path, base_url=srv.base_url, on_error="raise", concurrency=4, **FAST)
    assert_quiet(capfd, caplog, unraisable)
    assert warnings_of(caplog) == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_dead_endpoint_raises_once_and_quietly(
    kind: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    unraisable: list[str],
) -> None:
    make_pdf(tmp_path / "a.pdf", 4)
    make_pdf(tmp_path / "b.pdf", 4)
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(EndpointUnavailableError):
        load(kind, tmp_path, base_url=dead, max_attempts=2, **FAST)
    assert_quiet(capfd, caplog, unraisable)


@pytest.mark.parametrize("kind", KINDS)
def test_an_abandoned_async_load_shuts_down_quietly(
    kind: str,
    tmp_path: Path,
    server: FakeOCRServer,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    unraisable: list[str],
) -> None:
    """``return`` out of ``async for`` with pages in flight and files still to open, and
    let ``asyncio.run`` end at once: nothing is left for the closing loop to destroy."""
    for i in range(6):
        make_pdf(tmp_path / f"doc{i}.pdf", 2)
    options: dict[str, Any] = {"base_url": server.base_url, "concurrency": 4, **FAST}
    reader = DeepSeekOCRReader(**options)
    loader = DeepSeekOCRLoader(tmp_path, **options)

    async def first() -> Any:
        docs = reader.alazy_load_data(tmp_path) if kind == "reader" else loader.alazy_load()
        async for doc in docs:
            return doc
        return None

    assert asyncio.run(first()) is not None
    assert_quiet(capfd, caplog, unraisable)
    adapter = reader if kind == "reader" else loader
    assert adapter.last_stats is not None  # the load's own clean-up ran to its end


# --- 3. failed pages are listed and logged, never empty documents ------------------------------


@pytest.mark.parametrize("mode", ["chunks", "pages", "document"])
def test_a_failed_page_is_listed_and_logged_not_an_empty_document(
    mode: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pdf = pdf_with_narrow_page(tmp_path / "three.pdf", narrow=2)
    with FakeOCRServer(fail_narrow_pages()) as srv:
        reader = DeepSeekOCRReader(base_url=srv.base_url, **{**FAST, "mode": mode})
        docs = reader.load_data(pdf)
    assert docs and all(d.text.strip() for d in docs)
    covered = {n for d in docs for n in range(d.metadata["page_start"], d.metadata["page_end"] + 1)}
    assert covered == {1, 3}
    stats = reader.last_stats
    assert stats is not None and stats.pages == 3 and stats.pages_failed == 1
    assert [(f.source, f.page) for f in stats.failures] == [(str(pdf), 2)]
    assert "no text" in stats.failures[0].reason
    assert reader.last_documents[0].failures == stats.failures  # per document too
    logged = warnings_of(caplog)
    assert len(logged) == 2
    assert f"{pdf}, page 2" in logged[0] and stats.failures[0].reason in logged[0]
    assert "1 of 3 page(s) failed" in logged[1]


# --- 4. a progress bar in Python --------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_show_progress_draws_a_bar_over_pages_across_files(
    kind: str, tmp_path: Path, server: FakeOCRServer, capfd: pytest.CaptureFixture[str]
) -> None:
    make_pdf(tmp_path / "a.pdf", 3)
    make_pdf(tmp_path / "b.pdf", 2)
    load(kind, tmp_path, base_url=server.base_url, **FAST)
    assert capfd.readouterr().err == ""  # off by default
    load(kind, tmp_path, base_url=server.base_url, show_progress=True, **FAST)
    assert "5/5 pages" in capfd.readouterr().err
    if kind == "reader":  # LlamaIndex's convention: also a load_data argument
        DeepSeekOCRReader(base_url=server.base_url, **FAST).load_data(tmp_path, show_progress=True)
        assert "5/5 pages" in capfd.readouterr().err


# --- 5. a password per file -------------------------------------------------------------------


def test_passwords_per_file_by_name_path_or_function(tmp_path: Path, server: FakeOCRServer) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    make_pdf(folder / "open.pdf", 1)
    secrets = {"a.pdf": "alpha", "b.pdf": "bravo"}
    for name, password in secrets.items():
        make_pdf(
            folder / name,
            2,
            encryption=pymupdf.PDF_ENCRYPT_AES_256,
            user_pw=password,
            owner_pw=password + "!",
        )
    expected = [("a.pdf", 1), ("a.pdf", 2), ("b.pdf", 1), ("b.pdf", 2), ("open.pdf", 1)]
    asked: list[str] = []

    def lookup(path: str) -> str | None:
        asked.append(path)
        return secrets.get(Path(path).name)

    by_path = {str((folder / name).resolve()): pw for name, pw in secrets.items()}
    for password in (secrets, by_path, lookup):
        docs, stats = load("reader", folder, base_url=server.base_url, password=password, **FAST)
        assert sorted(pages_of(docs)) == expected and stats.failures == ()
    assert {Path(p).name for p in asked} >= set(secrets)
    # a file the mapping gets wrong is skipped and listed, the others load
    docs, stats = load(
        "loader", folder, base_url=server.base_url, password={"a.pdf": "nope"}, **FAST
    )
    assert pages_of(docs) == [("open.pdf", 1)]
    assert [(Path(f.source).name, f.error) for f in stats.failures] == [
        ("a.pdf", "PasswordError"),
        ("b.pdf", "PasswordError"),
    ]
    with pytest.raises(PasswordError, match="wrong password"):
        load("reader", folder, base_url=server.base_url, password={"a.pdf": "x"}, on_error="raise")
    with pytest.raises(ConfigError, match="password"):
        DeepSeekOCRReader(password=1234)


# --- end to end: a real folder, a flaky server -------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_mixed_folder_against_a_flaky_server(
    kind: str,
    mixed_folder: MixedFolder,
    server: FakeOCRServer,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    unraisable: list[str],
) -> None:
    """30 % of requests answer HTTP 500: every readable page arrives once or is listed as a
    failed page, every unreadable file is listed with its reason, no empty document, and
    nothing on stderr but the project's warnings."""
    server.faults = FaultPlan(error_500=0.3, seed=11)
    docs, stats = load(
        kind,
        mixed_folder.path,
        base_url=server.base_url,
        password=mixed_folder.passwords,
        concurrency=4,
        **FAST,
    )
    assert any(r.status == 500 for r in server.requests)  # the faults really happened
    assert all(text_and_id(d)[0].strip() for d in docs)
    arrived = pages_of(docs)
    assert len(arrived) == len(set(arrived))
    assert len({text_and_id(d)[1] for d in docs}) == len(docs)
    failed_pages = {(Path(f.source).name, f.page) for f in stats.failures if f.page is not None}
    assert set(arrived) | failed_pages == readable_pages(mixed_folder)
    assert not set(arrived) & failed_pages
    files = {Path(f.source).name: f for f in stats.failures if f.page is None}
    assert set(files) == refused(mixed_folder)
    assert all(f.reason and f.error.endswith("Error") for f in files.values())
    assert stats.pages_failed == len(failed_pages)
    assert_quiet(capfd, caplog, unraisable)
    logged = warnings_of(caplog)
    assert len(logged) == len(files) + len(failed_pages) + 1  # each failure, then the summary
    assert all(r.name.startswith("ocr_loaders") for r in caplog.records)


def test_errors_carry_no_documents_by_default() -> None:
    """A streaming caller already has its documents; the attribute is documented as empty."""
    assert OCRLoadersError("x").documents == ()
