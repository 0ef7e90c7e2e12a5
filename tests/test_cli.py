"""The ``ocr-loaders`` command line on real files.

Most runs are in-process (:func:`run_cli`); real subprocesses are kept where the process is
the point: ``python -m ocr_loaders``, the ``ocr-loaders`` script's exit statuses, the progress
bar on a pseudo-terminal.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ocr_loaders.testing import FakeOCRServer, grid_responder, length_responder

from .conftest import make_pdf, run_cli

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "data" / "sample.pdf"
CONTRACT_KEYS = {
    "source",
    "file_name",
    "file_path",
    "doc_hash",
    "page",
    "page_label",
    "page_start",
    "page_end",
    "total_pages",
    "block_types",
    "heading",
    "regions",
    "chunk_index",
    "ocr_model",
    "ocr_engine",
    "vision_tokens",
    "compression_ratio",
    "ocr_status",
}
STATS_KEYS = {
    "pages",
    "pages_ok",
    "pages_truncated",
    "pages_failed",
    "vision_tokens",
    "output_tokens",
    "text_tokens",
    "compression_ratio",
    "seconds",
    "engine",
    "model",
}


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, module: bool = False
) -> subprocess.CompletedProcess[str]:
    base = dict(os.environ)
    base.pop("DEEPSEEK_OCR_BASE_URL", None)
    base.update(env or {})
    exe = shutil.which("ocr-loaders")
    cmd = [sys.executable, "-m", "ocr_loaders"] if module or exe is None else [exe]
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, timeout=timeout, env=base, check=False
    )


def convert_args(pdf: Path, out: Path, server: FakeOCRServer) -> list[str]:
    """``convert PDF -o OUT`` against the fake server, without the page cache."""
    return ["convert", str(pdf), "-o", str(out), "--base-url", server.base_url, "--no-cache"]


def test_convert_sample_on_the_local_engine(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_cli("convert", str(SAMPLE), "-o", str(out), "--no-cache")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "local engine" in done.stderr  # one log line says which engine runs
    md = (out / "sample.md").read_text()
    for page in (1, 2, 3):
        assert f"<!-- page {page} -->" in md
    assert "Field Survey Notes" in md  # the scanned page was read by OCR
    assert "<table>" in md
    lines = (out / "sample.jsonl").read_text().splitlines()
    assert lines
    for i, line in enumerate(lines):
        rec = json.loads(line)
        meta = rec["metadata"]
        assert set(meta) >= CONTRACT_KEYS
        assert all(isinstance(v, (str, int, float, bool)) for v in meta.values())
        assert meta["ocr_engine"] == "local" and meta["chunk_index"] == i
        assert meta["total_pages"] == 3 and meta["page"] == meta["page_start"] - 1
        for region in json.loads(meta["regions"]):
            x0, y0, x1, y1 = region["bbox"]
            assert 0 <= x0 <= x1 <= 612 and 0 <= y0 <= y1 <= 792
    stats = json.loads((out / "sample.stats.json").read_text())
    assert set(stats) >= STATS_KEYS
    assert stats["pages"] == stats["pages_ok"] == 3 and stats["engine"] == "local"
    assert "run statistics" in done.stderr  # the table at the end


def test_python_dash_m_is_the_same_cli(tmp_path: Path, server: FakeOCRServer) -> None:
    pdf = make_pdf(tmp_path / "two.pdf", 2)
    # --verify off: the grid responder's made-up words would be flagged, a warning --quiet keeps
    args = (*convert_args(pdf, tmp_path / "o", server), "--json", "--quiet", "--verify", "off")
    done = cli(*args, module=True)
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    assert stats["pages"] == 2 and stats["engine"] == "openai"
    assert done.stderr.strip() == ""  # --quiet


def test_exit_status_one_when_pages_are_truncated(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "loop.pdf", pages=2)
    with FakeOCRServer(length_responder(grid_responder(), requests={0})) as srv:
        done = run_cli(
            "convert",
            str(pdf),
            "-o",
            str(tmp_path / "o"),
            "--base-url",
            srv.base_url,
            "--no-cache",
            "--concurrency",
            "1",
        )
    # request 0 loops; the client retries it with a tighter guard, which succeeds
    assert done.returncode == 0, done.stderr
    with FakeOCRServer(length_responder(grid_responder(), every=1)) as srv:
        done = cli(
            "convert",
            str(pdf),
            "-o",
            str(tmp_path / "o2"),
            "--base-url",
            srv.base_url,
            "--no-cache",
        )
    assert done.returncode == 1, done.stderr
    stats = json.loads((tmp_path / "o2" / "loop.stats.json").read_text())
    assert stats["pages_truncated"] == 2
    assert "<!-- page 1: truncated" in (tmp_path / "o2" / "loop.md").read_text()


def test_exit_status_for_unreadable_inputs(tmp_path: Path, server: FakeOCRServer) -> None:
    """An unreadable input among others is skipped (exit 1); with none readable, exit 2."""
    good = make_pdf(tmp_path / "good.pdf")
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    out = tmp_path / "o"
    done = cli(
        "convert",
        str(good),
        str(empty),
        "-o",
        str(out),
        "--base-url",
        server.base_url,
        "--no-cache",
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "empty.pdf" in errors[0]
    assert (out / "good.jsonl").is_file()  # the readable input was still converted

    missing = run_cli("convert", str(tmp_path / "nope.pdf"), "-o", str(out))
    assert missing.returncode == 2
    assert "nope.pdf" in missing.stderr and "Traceback" not in missing.stderr

    bad_pages = run_cli("convert", str(good), "-o", str(out), "--pages", "x-y")
    assert bad_pages.returncode == 2 and "bad page range" in bad_pages.stderr

    usage = run_cli("convert", str(good))  # no -o
    assert usage.returncode == 2


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "one.pdf", 1)
    done = run_cli("convert", str(pdf), "-o", str(tmp_path), "--pages", "x-y", "--debug")
    assert done.returncode == 2
    assert "Traceback" in done.stderr


def test_same_stem_inputs_do_not_overwrite(tmp_path: Path, server: FakeOCRServer) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    make_pdf(tmp_path / "a" / "report.pdf", 1)
    make_pdf(tmp_path / "b" / "report.pdf", 2)
    out = tmp_path / "o"
    done = run_cli(
        "convert",
        str(tmp_path / "a"),
        str(tmp_path / "b"),
        "-o",
        str(out),
        "--base-url",
        server.base_url,
        "--no-cache",
        "-q",
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.glob("*.md")) == ["report-2.md", "report.md"]


def test_progress_bar_on_a_terminal(tmp_path: Path, server: FakeOCRServer) -> None:
    pdf = make_pdf(tmp_path / "tty.pdf", pages=3)
    env = dict(os.environ, COLUMNS="120", TERM="xterm")
    env.pop("DEEPSEEK_OCR_BASE_URL", None)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocr_loaders", *convert_args(pdf, tmp_path / "o", server)],
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.time() + 120
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(master)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0
    assert "pages/s" in screen and "ETA" in screen and "3/3" in screen


def test_repair_budget_lets_a_short_document_be_repaired(tmp_path: Path) -> None:
    """A one-page document never reaches the default run budget (0.2 x pages started), so
    ``--verify repair`` alone sends no tile; ``--repair-budget 2`` lets its page be re-read
    (the grid responder's made-up words leave the page at risk either way)."""
    pdf = make_pdf(tmp_path / "one.pdf", 1)
    sent = []
    for extra in ((), ("--repair-budget", "2")):
        with FakeOCRServer() as srv:
            args = (*convert_args(pdf, tmp_path / f"o{len(extra)}", srv), "--verify", "repair")
            done = run_cli(*args, *extra, "--json", "-q")
            assert done.returncode == 0, done.stderr
            sent.append(sum(1 for r in srv.requests if r.path.endswith("/chat/completions")))
        stats = json.loads(done.stdout)
        assert stats["verification"]["extra_requests"] == sent[-1] - 1
    assert sent[0] == 1 and sent[1] >= 3  # the page, then its tiles
