"""The examples run as a user would run them, against the fake server over real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocr_loaders.testing import FakeOCRServer, local_responder

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOCRServer]:
    with FakeOCRServer(local_responder(), slots=2) as srv:
        yield srv


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


def test_langchain_example(server: FakeOCRServer, tmp_path: Path) -> None:
    done = run([str(EXAMPLES / "langchain_vectorstore.py")], server.base_url, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "chunks; 3 pages" in done.stdout
    assert "status=ok" in done.stdout


def test_build_index_example(server: FakeOCRServer, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "sample.pdf").write_bytes((EXAMPLES / "data" / "sample.pdf").read_bytes())
    storage = tmp_path / "storage"
    done = run(
        [str(EXAMPLES / "build_index.py"), str(folder), str(storage)], server.base_url, tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "from 3 pages" in done.stdout
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
