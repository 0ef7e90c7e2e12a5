"""Shared test helpers: the ../shared corpus (optional), a PDF builder, the CLI run in-process."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pymupdf
import pytest
from typer.testing import CliRunner

from ocr_loaders import LoaderOptions
from ocr_loaders.testing import FakeOCRServer, RecordedRequest, grid_responder

SHARED = Path(__file__).resolve().parents[2] / "shared"
RAW_OUTPUTS = SHARED / "fixtures" / "raw_outputs"
CORPUS = SHARED / "corpus"
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")


def missing_shared(path: Path, what: str) -> str:
    """The skip reason a new user reads when an optional folder beside the checkout is absent."""
    return (
        f"optional: ../shared/{path.relative_to(SHARED)} ({what}, kept beside the checkout) "
        f"not found at {path}; tests that need it are skipped"
    )


CORPUS_REASON = missing_shared(CORPUS, "real PDFs and scans")
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=CORPUS_REASON)


@pytest.fixture(scope="session")
def raw_outputs() -> Path:
    """Real DeepSeek-OCR outputs beside the checkout; skip when the folder is not there."""
    if not RAW_OUTPUTS.is_dir():
        pytest.skip(missing_shared(RAW_OUTPUTS, "real DeepSeek-OCR outputs"))
    return RAW_OUTPUTS


@pytest.fixture(scope="session")
def corpus() -> Path:
    """Real PDFs and scans beside the checkout; skip when the folder is not there."""
    if not CORPUS.is_dir():
        pytest.skip(CORPUS_REASON)
    return CORPUS


def make_pdf(
    path: Path,
    pages: int = 3,
    *,
    rotate: int = 0,
    size: tuple[int, int] = (612, 792),
    **save: object,
) -> Path:
    """A text PDF: page N has the heading "Heading <Word> N" (24 pt, baseline y=100 pt) and the
    line "The <word> paragraph sits on page N." below it; ``save`` goes to ``Document.save``."""
    doc = pymupdf.open()
    for i in range(pages):
        page = doc.new_page(width=size[0], height=size[1])
        word = WORDS[i % len(WORDS)]
        page.insert_text((72, 100), f"Heading {word.title()} {i + 1}", fontsize=24)
        page.insert_text((72, 160), f"The {word} paragraph sits on page {i + 1}.", fontsize=16)
        if rotate:
            page.set_rotation(rotate)
    doc.save(path, **save)
    return path


def chats(server: FakeOCRServer) -> list[RecordedRequest]:
    """The chat-completion requests a fake server received (health and model probes left out)."""
    return [r for r in server.requests if r.path.endswith("/chat/completions")]


@pytest.fixture(scope="module")
def grid_server() -> Iterator[FakeOCRServer]:
    """One grid-answering fake server per module."""
    with FakeOCRServer(grid_responder()) as srv:
        yield srv


@pytest.fixture
def server(grid_server: FakeOCRServer) -> FakeOCRServer:
    """The module's grid server with fresh statistics and no faults, for one test."""
    grid_server.reset_stats()
    grid_server.faults = None  # after the reset: a fault script counts from request 0
    return grid_server


@dataclass(frozen=True)
class CliRun:
    """What one in-process run of the command line left: exit status and both streams."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, env: Mapping[str, str] | None = None) -> CliRun:
    """``ocr-loaders ARGS`` in this process (no interpreter start-up), ``DEEPSEEK_OCR_BASE_URL``
    unset unless ``env`` sets it. Exceptions the CLI lets escape are re-raised."""
    from ocr_loaders._cli import app

    environ = {"DEEPSEEK_OCR_BASE_URL": None, **(env or {})}
    # as in a fresh process: the CLI's logging set-up takes effect, and is undone afterwards
    root, ours = logging.getLogger(), logging.getLogger("ocr_loaders")
    saved = (root.handlers[:], root.level, ours.level)
    root.handlers.clear()
    try:
        result = CliRunner().invoke(app, list(args), env=environ, prog_name="ocr-loaders")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        ours.setLevel(saved[2])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliRun(result.exit_code, result.stdout, result.stderr)


@dataclass(frozen=True)
class MixedFolder:
    """A folder as users have them: good PDFs, broken files and PDFs under different passwords."""

    path: Path
    passwords: dict[str, str]
    """File name -> user password of the locked PDFs."""
    good_pages: dict[str, int]
    """File name -> page count of every intact file (locked ones included)."""
    repaired: dict[str, int]
    """File name -> page count of damaged files that load anyway (none here: see ``broken``)."""
    broken: tuple[str, ...]
    """File names that cannot be read whatever the options: a header-only PDF; an HTML error
    page saved as ``.pdf`` (refused by its magic bytes; MuPDF alone would read it as a one-page
    HTML document); and a PDF cut short: MuPDF would repair the first third of a 4-page PDF
    into 4 pages, 3 of them blank, so it is refused as truncated rather than indexed as
    silently empty pages."""


def make_mixed_folder(folder: Path) -> MixedFolder:
    """Two good PDFs, an HTML error page saved as ``.pdf``, a truncated PDF, a header-only PDF
    and two PDFs locked with different passwords."""
    folder.mkdir(parents=True, exist_ok=True)
    make_pdf(folder / "good_a.pdf", 3)
    make_pdf(folder / "good_b.pdf", 2)
    html = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>"
    (folder / "download.pdf").write_bytes(html + b"<body><h1>404</h1></body></html>\n")
    whole = make_pdf(folder / "whole.pdf", 4).read_bytes()
    (folder / "whole.pdf").unlink()
    (folder / "truncated.pdf").write_bytes(whole[: len(whole) // 3])
    (folder / "header_only.pdf").write_bytes(b"%PDF-1.7\n")
    passwords = {"locked_a.pdf": "alpha", "locked_b.pdf": "bravo"}
    for name, password in passwords.items():
        make_pdf(
            folder / name,
            2,
            encryption=pymupdf.PDF_ENCRYPT_AES_256,
            user_pw=password,
            owner_pw=password + "-owner",
        )
    return MixedFolder(
        path=folder,
        passwords=passwords,
        good_pages={"good_a.pdf": 3, "good_b.pdf": 2, "locked_a.pdf": 2, "locked_b.pdf": 2},
        repaired={},
        broken=("download.pdf", "header_only.pdf", "truncated.pdf"),
    )


@pytest.fixture
def mixed_folder(tmp_path: Path) -> MixedFolder:
    """See :func:`make_mixed_folder`."""
    return make_mixed_folder(tmp_path / "mixed")


@pytest.fixture
def made_options(monkeypatch: pytest.MonkeyPatch) -> list[LoaderOptions]:
    """The options the command line builds, with retry backoff shortened (the command line
    has no flag for it) so fault tests count tries instead of sitting through the backoff."""
    real = LoaderOptions.from_kwargs.__func__  # type: ignore[attr-defined]
    made: list[LoaderOptions] = []

    def quick(cls: type[LoaderOptions], *args: Any, **kwargs: Any) -> LoaderOptions:
        options = real(cls, *args, **kwargs)
        quicker = replace(options.endpoint, backoff_base=0.01, backoff_max=0.05)
        options = replace(options, endpoint=quicker)
        made.append(options)
        return options

    monkeypatch.setattr(LoaderOptions, "from_kwargs", classmethod(quick))
    return made
