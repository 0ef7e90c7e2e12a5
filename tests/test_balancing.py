"""Several endpoints: least-outstanding balancing, backing off a failing one, order kept."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from ocr_loaders import DeepSeekOCRReader
from ocr_loaders._config import LoaderOptions
from ocr_loaders._engines.openai_compat import OpenAICompatEngine
from ocr_loaders._engines.select import make_engine
from ocr_loaders._engines.settings import EndpointSettings
from ocr_loaders.testing import FakeOCRServer, FaultPlan, grid_responder

from .conftest import chats, make_pdf

FAST = {"backoff_base": 0.05, "backoff_max": 0.5, "dpi": 36, "mode": "pages"}


def served(server: FakeOCRServer) -> int:
    return sum(1 for r in chats(server) if r.status == 200)


def test_fewest_outstanding_favours_the_faster_endpoint(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "p.pdf", 30)
    with (
        FakeOCRServer(grid_responder(), service_time=0.4) as slow,
        FakeOCRServer(grid_responder(), service_time=0.02) as fast,
    ):
        # no backup copies: a copy the slow server also finished would count twice
        docs = DeepSeekOCRReader(
            base_url=[slow.base_url, fast.base_url], concurrency=4, backup_requests=False, **FAST
        ).load_data(pdf)
        n_slow, n_fast = served(slow), served(fast)
    assert [d.metadata["page_start"] for d in docs] == list(range(1, 31))
    assert n_slow + n_fast == 30
    assert n_slow >= 1 and n_fast > n_slow


def test_equal_endpoints_share_the_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pdf = make_pdf(tmp_path / "p.pdf", 24)
    with (
        FakeOCRServer(grid_responder(), service_time=0.1) as a,
        FakeOCRServer(grid_responder(), service_time=0.1) as b,
    ):
        monkeypatch.setenv("DEEPSEEK_OCR_BASE_URL", f"{a.base_url}, {b.base_url}")
        docs = DeepSeekOCRReader(concurrency=6, **FAST).load_data(pdf)
        n_a, n_b = served(a), served(b)
    assert len(docs) == 24 and n_a + n_b == 24
    assert min(n_a, n_b) >= 8


def test_a_failing_endpoint_is_backed_off(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "p.pdf", 30)
    with (
        FakeOCRServer(grid_responder(), faults=FaultPlan(reset=1.0)) as broken,
        FakeOCRServer(grid_responder(), service_time=0.05) as good,
    ):
        docs = DeepSeekOCRReader(
            base_url=[broken.base_url, good.base_url], concurrency=4, **FAST
        ).load_data(pdf)
        tried_broken = len(chats(broken))
        answered = served(good)
    assert {d.metadata["ocr_status"] for d in docs} == {"ok"}
    assert answered == 30
    assert tried_broken < 15  # backed off, not hammered once per page


def test_one_endpoint_killed_mid_run(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "p.pdf", 40)
    a = FakeOCRServer(grid_responder(), service_time=0.1).start()
    b = FakeOCRServer(grid_responder(), service_time=0.1).start()
    try:

        def kill_b_once_busy() -> None:
            deadline = time.monotonic() + 30
            while served(b) < 5 and time.monotonic() < deadline:
                time.sleep(0.01)
            b.stop()

        killer = threading.Thread(target=kill_b_once_busy)
        killer.start()
        docs = DeepSeekOCRReader(
            base_url=[a.base_url, b.base_url], concurrency=8, **FAST
        ).load_data(pdf)
        killer.join()
        assert served(b) > 0  # b did work before it died
    finally:
        a.stop()
        b.stop()
    assert [d.metadata["page_start"] for d in docs] == list(range(1, 41))
    assert {d.metadata["ocr_status"] for d in docs} == {"ok"}


def test_stragglers_get_backup_copies_once_every_page_is_sent(tmp_path: Path) -> None:
    """The tail of a run: requests stuck on a slow endpoint are copied to the idle one, the
    first answer wins, the slow copies are aborted, and no copy is made before the last page
    has been sent."""
    pdf = make_pdf(tmp_path / "p.pdf", 12)
    with (
        FakeOCRServer(grid_responder(), service_time=20.0) as slow,
        FakeOCRServer(grid_responder(), service_time=0.02) as fast,
    ):
        engine = OpenAICompatEngine(EndpointSettings(base_urls=(slow.base_url, fast.base_url)))
        docs = DeepSeekOCRReader(engine=engine, concurrency=4, **FAST).load_data(pdf)
        deadline = time.monotonic() + 10  # the slow server notices the aborts within 50 ms
        while slow.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        slow_requests, fast_requests = chats(slow), chats(fast)
    assert [d.metadata["page_start"] for d in docs] == list(range(1, 13))
    assert {d.metadata["ocr_status"] for d in docs} == {"ok"}
    # every request the slow endpoint got was copied to the fast one and aborted there
    assert slow_requests and engine.backups_sent == len(slow_requests)
    assert all(r.status == 0 and "disconnected" in r.error for r in slow_requests)
    # copies came only after the first request for the last page
    first_seen: dict[str, float] = {}
    for r in sorted(slow_requests + fast_requests, key=lambda r: r.started):
        first_seen.setdefault(r.image_sha256, r.started)
    last_new = max(first_seen.values())
    copies = [r for r in fast_requests if r.started > first_seen[r.image_sha256]]
    assert len(copies) == len(slow_requests)
    # Arrival at two servers can trail the sending order by a scheduling delay (a new
    # connection to the slow server on a loaded machine); a copy made while pages were still
    # being sent would arrive among them, a tenth of a second or more before the last.
    assert all(r.started >= last_new - 0.05 for r in copies)


def test_no_backups_with_one_endpoint(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "p.pdf", 6)
    with FakeOCRServer(grid_responder(), service_time=0.05) as server:
        engine = OpenAICompatEngine(EndpointSettings(base_urls=(server.base_url,)))
        docs = DeepSeekOCRReader(engine=engine, concurrency=3, **FAST).load_data(pdf)
        assert len(chats(server)) == 6
    assert len(docs) == 6 and engine.backups_sent == 0


def test_backup_requests_can_be_turned_off(tmp_path: Path) -> None:
    options = LoaderOptions.from_kwargs(
        base_url=["http://a:1", "http://b:1"], backup_requests=False
    )
    made = make_engine(options)
    assert isinstance(made, OpenAICompatEngine) and not made.settings.backup_requests
    pdf = make_pdf(tmp_path / "p.pdf", 6)
    with (
        FakeOCRServer(grid_responder(), service_time=1.0) as slow,
        FakeOCRServer(grid_responder(), service_time=0.02) as fast,
    ):
        engine = OpenAICompatEngine(
            EndpointSettings(base_urls=(slow.base_url, fast.base_url), backup_requests=False)
        )
        docs = DeepSeekOCRReader(engine=engine, concurrency=6, **FAST).load_data(pdf)
        slow_requests = chats(slow)
    assert len(docs) == 6 and engine.backups_sent == 0
    assert slow_requests and all(r.status == 200 for r in slow_requests)
    assert len(slow_requests) + len(chats(fast)) == 6
