"""The examples run as a user would run them, against the fake server over real HTTP.

One example runs as a real ``python script.py`` subprocess; the others run as ``__main__`` in
this process (:func:`run_script`), which skips an interpreter start-up and the heavy imports.
"""

from __future__ import annotations

import hashlib
import os
import runpy
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocr_loaders.testing import FakeOCRServer, OCRReply, OCRRequest, Responder, local_responder

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


class Remembered:
    """Real OCR of each distinct page image once: the examples all read the same sample."""

    def __init__(self, inner: Responder) -> None:
        self.inner = inner
        self.replies: dict[str, OCRReply] = {}
        self.lock = threading.Lock()

    def __call__(self, req: OCRRequest) -> OCRReply:
        key = hashlib.sha256(req.image).hexdigest()
        with self.lock:
            known = self.replies.get(key)
        if known is None:
            known = self.inner(req)
            with self.lock:
                self.replies[key] = known
        return known


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOCRServer]:
    with FakeOCRServer(Remembered(local_responder()), slots=2) as srv:
        yield srv


def run_script(
    script: Path,
    args: list[str],
    base_url: str,
    cwd: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> str:
    """Run an example as ``__main__`` in this process; its standard output."""
    monkeypatch.setenv("DEEPSEEK_OCR_BASE_URL", base_url)
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    code: object = 0
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    assert code in (0, None), captured.err
    return captured.out


def run(args: list[str], base_url: str | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("DEEPSEEK_OCR_BASE_URL", None)
    if base_url:
        env["DEEPSEEK_OCR_BASE_URL"] = base_url
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_sample_is_what_the_script_builds(tmp_path: Path) -> None:
    out = tmp_path / "sample.pdf"
    done = run([str(EXAMPLES / "make_sample.py"), str(out)], None, tmp_path)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == (EXAMPLES / "data" / "sample.pdf").read_bytes()


def test_llamaindex_example(server: FakeOCRServer, tmp_path: Path) -> None:
    done = run([str(EXAMPLES / "llamaindex_index.py")], server.base_url, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "chunks from sample.pdf" in done.stdout
    assert '"engine": "openai"' in done.stdout
    assert "- page " in done.stdout


def test_langchain_example(
    server: FakeOCRServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    script = EXAMPLES / "langchain_vectorstore.py"
    out = run_script(script, [], server.base_url, tmp_path, monkeypatch, capsys)
    assert "chunks; 3 pages" in out
    assert "status=ok" in out


def test_build_index_example(
    server: FakeOCRServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "sample.pdf").write_bytes((EXAMPLES / "data" / "sample.pdf").read_bytes())
    storage = tmp_path / "storage"
    args = [str(folder), str(storage)]
    out = run_script(
        EXAMPLES / "build_index.py", args, server.base_url, tmp_path, monkeypatch, capsys
    )
    assert "from 3 pages" in out
    assert (storage / "docstore.json").is_file()


def test_serving_scripts_carry_the_recipe_flags() -> None:
    vllm = (EXAMPLES / "serve_vllm.sh").read_text()
    for flag in (
        "--logits_processors",
        "vllm.model_executor.models.deepseek_ocr:NGramPerReqLogitsProcessor",
        "--no-enable-prefix-caching",
        "--mm-processor-cache-gb 0",
    ):
        assert flag in vllm
    sglang = (EXAMPLES / "serve_sglang.sh").read_text()
    for flag in ("--enable-multimodal", "--enable-custom-logit-processor", "--model-path"):
        assert flag in sglang
    for script in ("serve_vllm.sh", "serve_sglang.sh"):
        assert subprocess.run(["bash", "-n", str(EXAMPLES / script)], check=False).returncode == 0


@pytest.mark.parametrize("framework", [[], ["--langchain"]], ids=["llamaindex", "langchain"])
def test_index_folder_example(
    framework: list[str],
    server: FakeOCRServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from .conftest import make_pdf

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "sample.pdf").write_bytes((EXAMPLES / "data" / "sample.pdf").read_bytes())
    args = [str(folder), str(tmp_path / "store"), *framework]
    script = EXAMPLES / "index_folder.py"

    out = run_script(script, args, server.base_url, tmp_path, monkeypatch, capsys)
    assert "added    sample.pdf" in out
    assert "added 1, updated 0, removed 0, skipped 0 files" in out
    assert "OCR: 3 pages, 3 requests" in out
    assert "- sample.pdf p.1 [" in out  # the filter on page 0 finds the first page

    out = run_script(script, args, server.base_url, tmp_path, monkeypatch, capsys)
    assert "skipped  sample.pdf" in out and "0 written, 0 deleted" in out
    assert "OCR:" not in out  # nothing read again

    make_pdf(folder / "notes.pdf", 1)
    (folder / "sample.pdf").unlink()
    out = run_script(script, args, server.base_url, tmp_path, monkeypatch, capsys)
    assert "added    notes.pdf" in out and "removed  sample.pdf" in out
    assert "added 1, updated 0, removed 1, skipped 0 files" in out
    assert "OCR: 1 pages, 1 requests" in out
    assert "- notes.pdf p.1 [" in out and "sample.pdf p." not in out
