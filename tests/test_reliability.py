"""Faults, bad output, the page cache and resume, secrets: nothing lost, nothing hangs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ocr_loaders import DeepSeekOCRLoader, DeepSeekOCRReader
from ocr_loaders._config import LoaderOptions
from ocr_loaders._defaults import FREE_PROMPT, GROUNDING_PROMPT
from ocr_loaders._errors import EndpointUnavailableError, PageFailedError
from ocr_loaders.testing import (
    FakeOCRServer,
    FaultPlan,
    OCRReply,
    OCRRequest,
    grid_responder,
    static_responder,
)

from .conftest import chats, make_pdf, run_cli

FAST = {"backoff_base": 0.05, "backoff_max": 0.5, "dpi": 36}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def pdf18(tmp_path: Path) -> Path:
    return make_pdf(tmp_path / "eighteen.pdf", 18)


def test_server_faults_are_retried_to_completion(pdf18: Path) -> None:
    faults = FaultPlan(error_500=0.10, error_429=0.10, reset=0.05, retry_after=0.1, seed=3)
    with FakeOCRServer(grid_responder(), faults=faults) as srv:
        reader = DeepSeekOCRReader(base_url=srv.base_url, mode="pages", concurrency=6, **FAST)
        docs = reader.load_data(pdf18)
        got = [r.fault for r in chats(srv)]
    assert [d.metadata["page_start"] for d in docs] == list(range(1, 19))
    assert {d.metadata["ocr_status"] for d in docs} == {"ok"}
    assert {"500", "429", "reset"} <= set(got)  # the faults really happened
    assert reader.last_stats is not None and reader.last_stats.pages_ok == 18


@pytest.mark.parametrize("fault", ["bad_json", "error_200", "empty", "503", "hang"])
def test_each_bad_answer_is_retried(tmp_path: Path, fault: str) -> None:
    pdf = make_pdf(tmp_path / "one.pdf", 1)
    plan = FaultPlan(script=(fault,), hang_seconds=3.0, retry_after=0.1)
    with FakeOCRServer(grid_responder(), faults=plan) as srv:
        docs = DeepSeekOCRLoader(
            pdf, base_url=srv.base_url, mode="pages", timeout=1.0, **FAST
        ).load()
        answered = [r for r in chats(srv) if r.status == 200 and r.fault in ("", "ok", None)]
        assert answered and answered[-1].seq >= 1  # the page was answered on a later try
    assert docs[0].metadata["ocr_status"] == "ok" and docs[0].page_content


def test_length_retries_tighten_the_guard_then_free_ocr(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "loop.pdf", 1)
    grid = grid_responder()

    def loops_unless_free(req: OCRRequest) -> OCRReply:
        if req.prompt == FREE_PROMPT:
            return OCRReply("Plain text of the page, read without layout.")
        return OCRReply(grid(req).text + "again " * 9000, "stop")  # runs into max_tokens

    with FakeOCRServer(loops_unless_free) as srv:
        docs = DeepSeekOCRReader(base_url=srv.base_url, mode="pages", **FAST).load_data(pdf)
        sent = chats(srv)
    assert [r.prompt for r in sent] == [GROUNDING_PROMPT, GROUNDING_PROMPT, FREE_PROMPT]
    assert sent[0].vllm_xargs["ngram_size"] == 30 and sent[0].vllm_xargs["window_size"] == 90
    assert sent[1].vllm_xargs["ngram_size"] < 30 and sent[1].vllm_xargs["window_size"] > 90
    assert [r.finish_reason for r in sent] == ["length", "length", "stop"]
    assert docs[0].metadata["ocr_status"] == "ok"
    assert "read without layout" in docs[0].text


def test_a_page_that_always_fails_is_accounted_for_not_embedded(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "three.pdf", 3)
    grid = grid_responder()

    def empty_after_first(req: OCRRequest) -> OCRReply:
        return grid(req) if req.seq == 0 else OCRReply("")

    # concurrency 1: page 1 is answered; pages 2 and 3 get empty answers on every try
    with FakeOCRServer(empty_after_first) as srv:
        reader = DeepSeekOCRReader(base_url=srv.base_url, mode="pages", concurrency=1, **FAST)
        docs = reader.load_data(pdf)
        assert len(chats(srv)) == 1 + 3 + 3  # each failing page: guard, tighter, Free OCR
    assert [d.metadata["page_start"] for d in docs] == [1]  # no empty chunk to embed
    assert [d.metadata["ocr_status"] for d in docs] == ["ok"]
    stats = reader.last_stats
    assert stats is not None and stats.pages == 3 and stats.pages_failed == 2
    assert [(f.page, "no text" in f.reason) for f in stats.failures] == [(2, True), (3, True)]
    with (
        FakeOCRServer(static_responder("")) as srv,
        pytest.raises(PageFailedError, match=r"three\.pdf, page 1"),
    ):
        DeepSeekOCRReader(base_url=srv.base_url, on_error="raise", **FAST).load_data(pdf)


def test_dead_server_fails_fast_with_one_clear_line(
    tmp_path: Path, made_options: list[LoaderOptions]
) -> None:
    """The CLI gives up on a server that never answers after its bounded tries, with one
    ``error:`` line. The backoff is shortened (``made_options``) so the test does not sit
    through the default ~15 s of retries; the tries are counted instead."""
    pdf = make_pdf(tmp_path / "dead.pdf", 3)
    made = made_options
    url = f"http://127.0.0.1:{free_port()}/v1"
    done = run_cli("convert", str(pdf), "-o", str(tmp_path / "o"), "--base-url", url, "--no-cache")
    assert made and made[0].base_urls == (url,)  # the command line's options were used
    assert done.returncode == 1  # the server could not be reached
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot reach the OCR server" in errors[0]
    assert (
        f"after {made[0].endpoint.max_attempts} tries" in errors[0]
    )  # bounded, not retried forever


def test_killed_server_then_rerun_resumes_from_the_cache(tmp_path: Path, pdf18: Path) -> None:
    cache = tmp_path / "cache"
    options = dict(
        mode="pages",
        concurrency=3,
        cache=True,
        cache_dir=cache,
        unavailable_after=2.0,
        max_attempts=3,
        **FAST,
    )
    srv = FakeOCRServer(grid_responder(), service_time=0.15).start()
    port = srv.port
    try:
        outcome: dict[str, object] = {}

        def run() -> None:
            try:
                DeepSeekOCRReader(base_url=srv.base_url, **options).load_data(pdf18)
                outcome["ok"] = True
            except EndpointUnavailableError as exc:
                outcome["error"] = exc

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.time() + 60
        while len([r for r in chats(srv) if r.status == 200]) < 6 and time.time() < deadline:
            time.sleep(0.02)
        srv.stop()  # killed mid-run
        worker.join(timeout=120)
        assert not worker.is_alive()
        assert "error" in outcome, "the run should stop when the server disappears"
        done_before = len(list(cache.glob("*/*/*.json")))
        assert 6 <= done_before < 18

        srv2 = FakeOCRServer(grid_responder(), port=port).start()
        try:
            reader = DeepSeekOCRReader(base_url=srv2.base_url, **options)
            docs = reader.load_data(pdf18)
            assert len(chats(srv2)) == 18 - done_before  # only the missing pages
        finally:
            srv2.stop()
    finally:
        srv.stop()
    assert [d.metadata["page_start"] for d in docs] == list(range(1, 19))
    assert {d.metadata["ocr_status"] for d in docs} == {"ok"}
    assert reader.last_stats is not None and reader.last_stats.pages_cached == done_before


def test_cache_hits_cost_no_request_and_settings_miss(
    tmp_path: Path, server: FakeOCRServer
) -> None:
    pdf = make_pdf(tmp_path / "c.pdf", 4)
    cache = tmp_path / "cache"
    first = DeepSeekOCRReader(base_url=server.base_url, cache=True, cache_dir=cache, dpi=72)
    docs1 = first.load_data(pdf)
    assert len(chats(server)) == 4
    server.reset_stats()
    again = DeepSeekOCRReader(base_url=server.base_url, cache=True, cache_dir=cache, dpi=72)
    docs2 = again.load_data(pdf)
    assert chats(server) == []  # zero requests
    assert [(d.id_, d.text) for d in docs1] == [(d.id_, d.text) for d in docs2]
    assert again.last_stats is not None and again.last_stats.pages_cached == 4
    changed = DeepSeekOCRReader(base_url=server.base_url, cache=True, cache_dir=cache, dpi=96)
    changed.load_data(pdf)
    assert len(chats(server)) == 4  # a changed render setting misses


def test_cli_cache_respects_xdg_cache_home(tmp_path: Path, server: FakeOCRServer) -> None:
    pdf = make_pdf(tmp_path / "x.pdf", 1)
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    for _ in range(2):
        args = ("convert", str(pdf), "-o", str(tmp_path / "o"), "--base-url", server.base_url)
        done = run_cli(*args, "-q", env=env)
        assert done.returncode == 0, done.stderr
    assert len(chats(server)) == 1  # the second run came from the cache
    assert list((tmp_path / "xdg" / "ocr-loaders").glob("pages-v*/*/*.json"))


def test_api_key_never_leaks(tmp_path: Path) -> None:
    secret = "sk-test-0123456789-SECRET"
    pdf = make_pdf(tmp_path / "k.pdf", 2)
    out = tmp_path / "o"
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    with FakeOCRServer(
        grid_responder(), api_key=secret, faults=FaultPlan(script=("500",), retry_after=0.1)
    ) as srv:
        args = ("convert", str(pdf), "-o", str(out), "--base-url", srv.base_url)
        done = run_cli(*args, "--api-key", secret, "--debug", env=env)
        assert done.returncode == 0, done.stderr
        assert chats(srv)[0].headers.get("authorization") == f"Bearer {secret}"
        # a wrong key fails with a message that does not echo the key
        wrong = run_cli(*args, "--api-key", secret + "-wrong", "--no-cache", env=env)
        assert wrong.returncode != 0
    assert secret not in done.stdout + done.stderr + wrong.stdout + wrong.stderr
    for path in [*out.rglob("*"), *(tmp_path / "xdg").rglob("*")]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    reader = DeepSeekOCRReader(base_url="http://127.0.0.1:1/v1", api_key=secret)
    assert secret not in repr(reader.options)


def test_render_timeout_fails_the_page_not_the_run(tmp_path: Path, server: FakeOCRServer) -> None:
    pdf = make_pdf(tmp_path / "slow.pdf", 2)
    reader = DeepSeekOCRReader(
        base_url=server.base_url, mode="pages", render_timeout=1e-4, render_workers=2, **FAST
    )
    docs = reader.load_data(pdf)
    assert docs == []  # both pages failed: nothing to embed, both accounted for
    assert reader.last_stats is not None and reader.last_stats.pages_failed == 2
    assert "longer than" in reader.last_stats.failures[0].reason
    # the workers came back
    again = DeepSeekOCRReader(
        base_url=server.base_url, mode="pages", render_workers=2, **FAST
    ).load_data(pdf)
    assert [d.metadata["ocr_status"] for d in again] == ["ok", "ok"]


def test_huge_image_in_a_small_file_is_downscaled(tmp_path: Path, server: FakeOCRServer) -> None:
    from PIL import Image, ImageDraw

    side = 14000  # 196 Mpx: past twice Pillow's decompression-bomb limit, which is an error
    assert side * side > 2 * (Image.MAX_IMAGE_PIXELS or 0)
    big = Image.new("1", (side, side), 1)
    ImageDraw.Draw(big).rectangle((800, 800, 12000, 1600), fill=0)
    path = tmp_path / "huge.tif"
    big.save(path, compression="group4")
    del big
    assert path.stat().st_size < 200_000
    docs = DeepSeekOCRReader(base_url=server.base_url, mode="pages").load_data(path)
    sent = chats(server)[0]
    assert sent.image_width * sent.image_height <= 4_000_000
    meta = docs[0].metadata
    assert meta["image_downscaled"] is True and meta["ocr_status"] == "ok"
    regions = json.loads(meta["regions"])
    assert regions
    for region in regions:  # regions in the original image's pixels
        assert region["bbox"][2] <= side and region["bbox"][3] <= side
    assert max(r["bbox"][2] for r in regions) > 2000  # not the downscaled image's pixels


def test_fully_cached_rerun_does_not_open_the_document(
    tmp_path: Path, server: FakeOCRServer
) -> None:
    pdf = make_pdf(tmp_path / "m.pdf", 3)
    cache = tmp_path / "cache"
    code = (
        "import sys\n"
        "from ocr_loaders import DeepSeekOCRLoader\n"
        "def load(**kw):\n"
        f"    loader = DeepSeekOCRLoader({str(pdf)!r}, base_url=sys.argv[1], mode='pages', **kw)\n"
        "    return loader.load()\n"
        f"docs = load(cache=True, cache_dir={str(cache)!r})\n"
        "assert [d.metadata['page_start'] for d in docs] == [1, 2, 3]\n"
        "print('pymupdf' in sys.modules)\n"
        "load(pages='1')  # uncached: the probe does see the PDF being opened\n"
        "print('pymupdf' in sys.modules)\n"
    )
    env = dict(os.environ)
    env.pop("DEEPSEEK_OCR_BASE_URL", None)
    # the first run fills the cache (in this process: opening the PDF is expected there)
    first = DeepSeekOCRReader(
        base_url=server.base_url, cache=True, cache_dir=cache, mode="pages"
    ).load_data(pdf)
    assert [d.metadata["page_start"] for d in first] == [1, 2, 3]
    rerun = subprocess.run(
        [sys.executable, "-c", code, server.base_url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert len(chats(server)) == 3 + 1  # the cached re-run sent nothing; the control, one
    assert rerun.returncode == 0, rerun.stderr
    # the cached re-run in a fresh interpreter never opened the PDF; the uncached control did
    assert rerun.stdout.split() == ["False", "True"]
