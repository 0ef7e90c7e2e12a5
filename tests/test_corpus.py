"""Every file of the shared corpus through the CLI against the fake server.

The CLI runs in this process (one interpreter start-up for all files instead of one per file);
each file is still its own run with its own outcome. Each input ends with every page accounted
for (``pages == ok + truncated + failed``, equal to the page count MuPDF or Pillow sees), or
exit status 2 with one line naming the file; never a traceback, a hang, or more than 2 GiB of
memory.
"""

from __future__ import annotations

import io
import json
import re
import resource
import threading
from collections.abc import Iterator
from pathlib import Path

import pymupdf
import pytest
from PIL import Image

from ocr_loaders.testing import FakeOCRServer, OCRReply, OCRRequest, grid_responder

from .conftest import CORPUS, needs_corpus, run_cli

FILES = (
    sorted(p for p in CORPUS.glob("*") if p.suffix.lower() not in (".txt", ".tsv"))
    if CORPUS.is_dir()
    else []
)
LIMIT = 2 * 1024**3


def expected_pages(path: Path, password: str | None) -> int | None:
    """Pages as MuPDF (or Pillow, for images) sees them; None when neither can read it."""
    if path.suffix.lower() == ".pdf":
        try:
            doc = pymupdf.open(path)
        except Exception:
            return None
        if doc.needs_pass and password:
            doc.authenticate(password)
        return int(doc.page_count)
    try:
        return int(getattr(Image.open(path), "n_frames", 1))
    except Exception:
        return None


class Darkness:
    """A responder that notes how dark each received image is (blank pages are all white)."""

    def __init__(self) -> None:
        self.darkest: dict[int, int] = {}
        self.lock = threading.Lock()
        self.grid = grid_responder()

    def __call__(self, req: OCRRequest) -> OCRReply:
        low = Image.open(io.BytesIO(req.image)).convert("L").getextrema()[0]
        with self.lock:
            self.darkest[req.seq] = int(low)
        return self.grid(req)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[FakeOCRServer, Darkness]]:
    darkness = Darkness()
    with FakeOCRServer(darkness) as srv:
        yield srv, darkness


@pytest.mark.slow
@needs_corpus
@pytest.mark.parametrize("path", FILES or [CORPUS], ids=[p.name for p in FILES] or ["corpus"])
def test_corpus_file_through_the_cli(
    path: Path, tmp_path: Path, served: tuple[FakeOCRServer, Darkness]
) -> None:
    server, darkness = served
    match = re.search(r"userpw_([^_.]+)", path.name)
    password = match.group(1) if match else None
    args = [str(path), "-o", str(tmp_path), "--base-url", server.base_url, "--no-cache"]
    if password:
        args += ["--password", password]
    first_seq = server.request_count
    done = run_cli("convert", *args, "--json", "-q")  # an escaping exception fails the test
    assert "Traceback" not in done.stderr, done.stderr
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):  # this process, render workers
        assert resource.getrusage(who).ru_maxrss * 1024 < LIMIT
    pages = expected_pages(path, password)
    if done.returncode == 2:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and path.name in lines[0]
        assert not pages, f"{path.name}: MuPDF reads {pages} page(s) but the CLI gave up"
        return
    assert done.returncode in (0, 1), done.stderr
    stats = json.loads(done.stdout)
    assert stats["pages"] == stats["pages_ok"] + stats["pages_truncated"] + stats["pages_failed"]
    assert stats["pages"] == pages
    out = json.loads((tmp_path / f"{path.stem}.stats.json").read_text())
    assert [d["page"] for d in out["pages_detail"]] == list(range(1, pages + 1))
    if password:  # decrypted pages must not render blank
        seqs = [s for s in darkness.darkest if s >= first_seq]
        assert seqs and all(darkness.darkest[s] < 128 for s in seqs)
