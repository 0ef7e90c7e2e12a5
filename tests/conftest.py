"""Shared test helpers: the ../shared corpus (optional), a PDF builder, the CLI run in-process."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pymupdf
import pytest
from typer.testing import CliRunner

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
    from ocr_loaders.cli import app

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
