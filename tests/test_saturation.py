"""Saturation under variance: a slow or retried page at the head of a document must not stop
the pages behind it being sent (issue 18). Counted at the server, not timed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pymupdf
import pytest

from ocr_loaders import DeepSeekOCRReader
from ocr_loaders.testing import (
    FakeOCRServer,
    Flavor,
    OCRReply,
    OCRRequest,
    grid_responder,
    length_responder,
    loop_text,
)
from ocr_loaders.testing.workload import (
    RAW_OUTPUT_TOKENS,
    Workload,
    fixture_token_counts,
    page_tokens,
    saturation,
    workload_responder,
)

HEAD_WIDTH = 400
"""Page 1 is narrower than the rest (points), so the server knows its requests by size."""
PAGES, CONCURRENCY, WAIT = 40, 2, 4.0


@dataclass
class HeadHolder:
    """Holds each try at page 1 until ``others`` requests for later pages arrived meanwhile;
    the first ``loops`` tries answer a repetition loop (``finish_reason="length"``)."""

    others: int = 0
    loops: int = 0
    tries: int = 0
    seen_while_pending: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _arrived: threading.Condition = field(init=False)
    _later: int = 0

    def __post_init__(self) -> None:
        self._arrived = threading.Condition(self._lock)

    def __call__(self, request: OCRRequest) -> OCRReply:
        if request.width * 792 > request.height * (HEAD_WIDTH + 100):  # a later page
            with self._arrived:
                self._later += 1
                self._arrived.notify_all()
            return grid_responder()(request)
        with self._arrived:
            start, self.tries = self._later, self.tries + 1
            self._arrived.wait_for(lambda: self._later - start >= self.others, timeout=WAIT)
            self.seen_while_pending.append(self._later - start)
            looping = self.tries <= self.loops
        return OCRReply(loop_text(), "length") if looping else grid_responder()(request)


class Switchboard:
    """The module server's responder: whatever the current test installed."""

    def __init__(self) -> None:
        self.current: HeadHolder = HeadHolder()

    def __call__(self, request: OCRRequest) -> OCRReply:
        return self.current(request)


@pytest.fixture(scope="module")
def board() -> Switchboard:
    return Switchboard()


@pytest.fixture(scope="module")
def head_server(board: Switchboard) -> Iterator[FakeOCRServer]:
    with FakeOCRServer(board) as srv:
        yield srv


@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``PAGES`` pages; page 1 is ``HEAD_WIDTH`` points wide, the others 612."""
    path = tmp_path_factory.mktemp("sat") / "head.pdf"
    doc = pymupdf.open()
    for i in range(PAGES):
        page = doc.new_page(width=HEAD_WIDTH if i == 0 else 612, height=792)
        page.insert_text((72, 100), f"Page {i + 1}", fontsize=24)
    doc.save(path)
    return path


def load(server: FakeOCRServer, pdf: Path) -> list[int]:
    reader = DeepSeekOCRReader(base_url=server.base_url, mode="pages", concurrency=CONCURRENCY)
    docs = reader.load_data(pdf)
    assert all(d.metadata["ocr_status"] == "ok" for d in docs)
    return [int(d.metadata["page_start"]) for d in docs]


def test_slow_head_page_does_not_stop_later_pages(
    board: Switchboard, head_server: FakeOCRServer, pdf: Path
) -> None:
    head_server.reset_stats()
    board.current = holder = HeadHolder(others=PAGES - 5)
    assert load(head_server, pdf) == list(range(1, PAGES + 1))
    # with `concurrency` 2, the requests for 35 later pages went out while page 1 was pending
    assert holder.tries == 1
    assert holder.seen_while_pending == [PAGES - 5]
    assert head_server.max_in_flight >= CONCURRENCY


def test_retries_of_one_page_do_not_block_others(
    board: Switchboard, head_server: FakeOCRServer, pdf: Path
) -> None:
    head_server.reset_stats()
    board.current = holder = HeadHolder(others=12, loops=2)
    assert load(head_server, pdf) == list(range(1, PAGES + 1))
    # page 1 looped twice and was retried; 12 later pages were sent during each of its tries
    assert holder.tries == 3
    assert holder.seen_while_pending == [12, 12, 12]
    assert len(head_server.requests) == PAGES + 2


def test_workload_lengths_follow_the_real_outputs(raw_outputs: Path) -> None:
    counts = fixture_token_counts(raw_outputs)
    clean = sorted(n for name, n in counts.items() if "repetition-loop" not in name)
    assert tuple(clean) == RAW_OUTPUT_TOKENS
    spec = Workload(spread=0.0, slow_every=0)
    assert {page_tokens(spec, crc) for crc in range(200)} == set(RAW_OUTPUT_TOKENS)


def test_saturation_reads_the_server_records(tmp_path: Path) -> None:
    """Busy slot-time over slots, against the span: one slot, two sequential requests."""
    path = tmp_path / "two.pdf"
    doc = pymupdf.open()
    for i in range(2):
        doc.new_page().insert_text((72, 100), f"Page {i + 1}", fontsize=24)
    doc.save(path)
    responder = workload_responder(Workload(loop_every=0))
    with FakeOCRServer(responder, slots=1, service_time=0.05) as srv:
        DeepSeekOCRReader(base_url=srv.base_url, mode="pages", concurrency=2).load_data(path)
        sat = saturation(srv.requests, 1)
    assert sat.requests == 2
    assert sat.peak_in_flight == 2
    assert sat.best >= 0.1
    assert 0 < sat.share <= 1


def blank_page(tmp_path: Path) -> Path:
    """A one-page Letter PDF with nothing on it."""
    doc = pymupdf.open()
    doc.new_page(width=612, height=792)
    pdf = tmp_path / "one.pdf"
    doc.save(pdf)
    return pdf


def test_a_streamed_loop_is_cut_and_retried_while_it_is_being_generated(tmp_path: Path) -> None:
    """With ``stream=True`` the client stops reading an answer as soon as its end repeats:
    the server aborts that request (its record says the client went away, so its slot was
    freed before ``max_tokens``) and the tighter-guard retry answers the page cleanly."""
    pdf = blank_page(tmp_path)
    # the first request loops; at 2 ms a token its ~7000 tokens would take ~14 s to finish
    with FakeOCRServer(length_responder(requests={0}), time_per_token=0.002) as server:
        docs = DeepSeekOCRReader(base_url=server.base_url, stream=True, mode="pages").load_data(pdf)
        records = sorted(server.requests, key=lambda r: r.seq)
    assert [r.status for r in records] == [0, 200]
    assert "client disconnected" in records[0].error
    assert records[0].body is not None and records[0].body.get("stream") is True
    assert docs[0].metadata["ocr_status"] == "ok"
    assert "The same line comes back" not in docs[0].text


@pytest.mark.parametrize("flavor", ["vllm", "sglang"])
def test_a_constant_service_server_streams_through_its_service_time(
    tmp_path: Path, flavor: Flavor
) -> None:
    """A server whose every answer takes ``service_time`` streams the answer over that time
    (as a real one generates it), so a streamed loop is cut long before the answer would end;
    a request that is not streamed still gets its whole answer after ``service_time``."""
    pdf = blank_page(tmp_path)
    looping = length_responder(requests={0})
    # SGLang takes the repetition guard only when started with --enable-custom-logit-processor
    guard = {"enable_custom_logit_processor": True} if flavor == "sglang" else {}
    with FakeOCRServer(looping, service_time=3.0, flavor=flavor, **guard) as server:
        docs = DeepSeekOCRReader(base_url=server.base_url, stream=True, mode="pages").load_data(pdf)
        records = sorted(server.requests, key=lambda r: r.seq)
    assert [r.status for r in records] == [0, 200]
    assert "client disconnected" in records[0].error
    start, end = records[0].service_started, records[0].service_ended
    # the loop was seen in the stream's first part, not after the 3 s the answer takes
    assert start is not None and end is not None and end - start < 2.0
    assert docs[0].metadata["ocr_status"] == "ok"
    with FakeOCRServer(service_time=0.5, flavor=flavor, **guard) as server:
        DeepSeekOCRReader(base_url=server.base_url, mode="pages").load_data(pdf)
        (record,) = [r for r in server.requests if r.path.endswith("/chat/completions")]
    assert record.service_started is not None and record.service_ended is not None
    assert record.service_ended - record.service_started >= 0.5


def test_heavy_pages_are_sent_first_and_still_come_out_in_page_order(tmp_path: Path) -> None:
    """Page 8 of 10 holds far more text than the others, so it is sent as soon as a render
    slot frees (after the first ``concurrency + 2`` pages, which start at once), not eighth;
    the pages still come out in page order. Each page has its own width, so the server knows
    which page a request is for."""
    path = tmp_path / "heavy.pdf"
    doc = pymupdf.open()
    widths = [300 + 30 * i for i in range(10)]
    for i, width in enumerate(widths):
        page = doc.new_page(width=width, height=792)
        text = f"Page {i + 1:02d}"  # the same bytes on every light page: equal weights
        if i == 7:
            text = " ".join(f"word{n}" for n in range(3000))
        page.insert_textbox(pymupdf.Rect(10, 10, width - 10, 780), text, fontsize=4)
    doc.save(path)
    sent: list[int] = []

    def respond(request: OCRRequest) -> OCRReply:
        ratio = request.width / request.height
        sent.append(min(range(10), key=lambda i: abs(widths[i] / 792 - ratio)) + 1)
        return grid_responder()(request)

    with FakeOCRServer(respond) as server:
        reader = DeepSeekOCRReader(
            base_url=server.base_url, mode="pages", concurrency=1, verify="off"
        )
        docs = reader.load_data(path)
    assert [int(d.metadata["page_start"]) for d in docs] == list(range(1, 11))
    assert sorted(sent[:3]) == [1, 2, 3]  # they started at once, and render side by side
    assert sent[3] == 8  # the first page admitted after them is the heaviest waiting
    assert sorted(sent) == list(range(1, 11))
