"""The endpoint path end to end: real HTTP against the fake DeepSeek-OCR server."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from ocr_loaders import DeepSeekOCRLoader, DeepSeekOCRReader, vision_tokens
from ocr_loaders._defaults import GROUNDING_PROMPT
from ocr_loaders.testing import (
    FakeOCRServer,
    OCRReply,
    OCRRequest,
    grid_responder,
    length_responder,
    local_responder,
)

from .conftest import WORDS, chats, make_pdf


@pytest.fixture(scope="module")
def ocr_server() -> Iterator[FakeOCRServer]:
    """Answers with real OCR of the image it received (the local engine)."""
    with FakeOCRServer(local_responder(), slots=2) as srv:
        yield srv


def test_one_request_per_page_exactly_as_the_protocol_wants(
    tmp_path: Path, server: FakeOCRServer
) -> None:
    pdf = make_pdf(tmp_path / "three.pdf", pages=3)
    docs = DeepSeekOCRReader(base_url=server.base_url).load_data(pdf)
    assert docs
    sent = chats(server)
    assert len(sent) == 3
    for rec in sent:
        assert rec.status == 200
        assert rec.image_first and not rec.image_tag  # vLLM inserts <image> itself
        assert rec.prompt == GROUNDING_PROMPT
        assert rec.temperature == 0
        assert rec.skip_special_tokens is False
        assert rec.vllm_xargs == {
            "ngram_size": 30,
            "window_size": 90,
            "whitelist_token_ids": [128821, 128822],
        }
        assert (rec.image_width, rec.image_height) == (1224, 1584)  # 144 dpi of US Letter
        assert rec.image_mime == "image/png"
        assert int(rec.headers["content-length"]) > 0  # a body of known length, not chunked
        assert "transfer-encoding" not in {k.lower() for k in rec.headers}
        assert rec.max_tokens is not None
        assert rec.prompt_tokens + rec.max_tokens <= 8192
        assert rec.max_tokens > 8192 - rec.prompt_tokens - 200  # not needlessly small


def test_sglang_dialect_detected(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "one.pdf", pages=1)
    with FakeOCRServer(
        grid_responder(), flavor="sglang", enable_custom_logit_processor=True
    ) as srv:
        DeepSeekOCRLoader(pdf, base_url=srv.base_url).load()
        sent = chats(srv)
    assert len(sent) == 1 and sent[0].status == 200
    assert not sent[0].image_tag  # the plain prompt: SGLang's template inserts <image>
    assert sent[0].custom_logit_processor and sent[0].custom_params is not None
    assert sent[0].vllm_xargs is None
    assert sent[0].skip_special_tokens is False


def test_concurrency_reaches_the_server(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "many.pdf", pages=20)
    with FakeOCRServer(grid_responder(), service_time=0.4) as srv:
        reader = DeepSeekOCRReader(base_url=srv.base_url, concurrency=8, mode="pages", dpi=36)
        docs = reader.load_data(pdf)
        assert srv.max_in_flight >= 8
    assert [d.metadata["page_start"] for d in docs] == list(range(1, 21))


def test_pages_come_out_in_order_while_later_pages_are_in_flight(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "order.pdf", pages=12)
    rng = random.Random(7)
    delays = [0.0] + [rng.uniform(0.1, 0.4) for _ in range(11)]  # page 1 first, others vary
    base = grid_responder()

    def jittery(req: OCRRequest) -> OCRReply:
        reply = base(req)
        return OCRReply(reply.text, reply.finish_reason, delay=delays[req.seq % 12])

    with FakeOCRServer(jittery) as srv:
        loader = DeepSeekOCRLoader(pdf, base_url=srv.base_url, concurrency=6, mode="pages", dpi=36)
        first_seen_at_done: list[int] = []
        pages = []
        for doc in loader.lazy_load():
            if not pages:
                first_seen_at_done.append(len(srv.requests))  # requests answered so far
            pages.append(doc.metadata["page_start"])
    assert pages == list(range(1, 13))
    assert first_seen_at_done[0] < 12  # streamed: the first page arrived before the last


def test_text_pages_and_regions_from_real_ocr(tmp_path: Path, ocr_server: FakeOCRServer) -> None:
    pdf = make_pdf(tmp_path / "doc.pdf", pages=3)
    reader = DeepSeekOCRReader(base_url=ocr_server.base_url, mode="pages")
    docs = reader.load_data(pdf)
    assert [d.metadata["page"] for d in docs] == [0, 1, 2]
    for i, d in enumerate(docs, start=1):
        meta = d.metadata
        assert WORDS[i - 1] in d.text.lower()
        assert (meta["page_start"], meta["page_end"], meta["total_pages"]) == (i, i, 3)
        assert meta["page_label"] == str(i)
        assert meta["ocr_status"] == "ok"
        regions = json.loads(meta["regions"])
        assert regions
        for region in regions:
            x0, y0, x1, y1 = region["bbox"]
            assert region["page"] == i
            assert 0 <= x0 <= x1 <= 612 and 0 <= y0 <= y1 <= 792
        # the heading's box lies around where it was drawn (baseline y=100pt, 24pt type)
        heads = [r for r in regions if r["bbox"][1] < 110]
        assert heads and heads[0]["bbox"][3] > 80
    selected = DeepSeekOCRReader(base_url=ocr_server.base_url, pages="2-3", mode="pages").load_data(
        pdf
    )
    assert [d.metadata["page_start"] for d in selected] == [2, 3]
    assert "bravo" in selected[0].text.lower() and "charlie" in selected[1].text.lower()
    assert [d.metadata["page_label"] for d in selected] == ["2", "3"]


def _text_image(text: str, size: tuple[int, int] = (900, 300)) -> Image.Image:
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    draw.text((40, 120), text, fill="black", font_size=48)
    return img


def test_multipage_tiff_and_png_through_both_adapters(
    tmp_path: Path, ocr_server: FakeOCRServer
) -> None:
    frames = [_text_image("First frame hello"), _text_image("Second frame world")]
    tiff = tmp_path / "scan.tif"
    frames[0].save(tiff, save_all=True, append_images=frames[1:])
    png = tmp_path / "note.png"
    _text_image("Single picture note").save(png)
    li = DeepSeekOCRReader(base_url=ocr_server.base_url, mode="pages").load_data([tiff, png])
    lc = DeepSeekOCRLoader([tiff, png], base_url=ocr_server.base_url, mode="pages").load()
    for docs in (li, lc):
        metas = [d.metadata for d in docs]
        texts = [(d.text if hasattr(d, "text") else d.page_content).lower() for d in docs]
        assert [(m["file_name"], m["page_start"]) for m in metas] == [
            ("scan.tif", 1),
            ("scan.tif", 2),
            ("note.png", 1),
        ]
        assert "hello" in texts[0] and "world" in texts[1] and "picture" in texts[2]
        for m in metas:
            for region in json.loads(m["regions"]):  # image pixels for images
                x0, y0, x1, y1 = region["bbox"]
                assert 0 <= x0 <= x1 <= 900 and 0 <= y0 <= y1 <= 300


def test_llamaindex_directory_reader_and_vector_index(
    tmp_path: Path, server: FakeOCRServer
) -> None:
    from llama_index.core import Settings, SimpleDirectoryReader, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding

    folder = tmp_path / "docs"
    folder.mkdir()
    make_pdf(folder / "a.pdf", pages=2)
    make_pdf(folder / "b.pdf", pages=1)
    _text_image("An image file").save(folder / "c.png")
    reader = DeepSeekOCRReader(base_url=server.base_url)
    extractor = {".pdf": reader, ".png": reader}
    docs = SimpleDirectoryReader(str(folder), file_extractor=extractor).load_data()
    names = {d.metadata["file_name"] for d in docs}
    assert names == {"a.pdf", "b.pdf", "c.png"}
    for d in docs:
        assert "regions" in d.excluded_embed_metadata_keys
        assert "regions" in d.excluded_llm_metadata_keys
        embedded = d.get_content(metadata_mode="embed")  # type: ignore[arg-type]
        assert "regions: " not in embedded and "doc_hash: " not in embedded
        assert "page_label: " in embedded and "heading: " in embedded
        assert d.metadata["file_path"].endswith(d.metadata["file_name"])
    again = SimpleDirectoryReader(str(folder), file_extractor=extractor).load_data()
    assert [d.id_ for d in docs] == [d.id_ for d in again]  # stable ids
    assert len({d.id_ for d in docs}) == len(docs)

    Settings.embed_model = MockEmbedding(embed_dim=16)
    index = VectorStoreIndex.from_documents(docs)
    hits = index.as_retriever(similarity_top_k=3).retrieve("page text")
    assert hits
    for hit in hits:
        meta = hit.node.metadata
        assert isinstance(meta["page"], int)
        assert json.loads(meta["regions"])


def test_langchain_vector_store_and_flat_metadata(tmp_path: Path, server: FakeOCRServer) -> None:
    from langchain_community.vectorstores.utils import filter_complex_metadata
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.vectorstores import InMemoryVectorStore

    pdf = make_pdf(tmp_path / "lc.pdf", pages=2)
    docs = DeepSeekOCRLoader(pdf, base_url=server.base_url, chunk_size=128).load()
    assert docs
    for d in docs:
        assert all(isinstance(v, (str, int, float, bool)) for v in d.metadata.values())
    filtered = filter_complex_metadata([d.model_copy(deep=True) for d in docs])
    assert [d.metadata for d in filtered] == [d.metadata for d in docs]
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    ids = store.add_documents(docs)
    assert ids == [d.id for d in docs]
    for hit in store.similarity_search("page", k=2):
        assert isinstance(hit.metadata["page"], int)
        assert json.loads(hit.metadata["regions"])
    second = DeepSeekOCRLoader(pdf, base_url=server.base_url, chunk_size=128).load()
    assert [d.id for d in docs] == [d.id for d in second]


def test_blob_parser_with_generic_loader(tmp_path: Path, server: FakeOCRServer) -> None:
    from langchain_community.document_loaders.generic import GenericLoader

    from ocr_loaders import DeepSeekOCRParser

    make_pdf(tmp_path / "x.pdf", pages=2)
    loader = GenericLoader.from_filesystem(
        str(tmp_path),
        glob="*.pdf",
        parser=DeepSeekOCRParser(base_url=server.base_url, mode="pages"),
    )
    docs = loader.load()
    assert [d.metadata["page_start"] for d in docs] == [1, 2]
    assert docs[0].metadata["file_name"] == "x.pdf"


def test_truncated_page_is_kept_and_marked(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "loop.pdf", pages=3)
    with FakeOCRServer(length_responder(grid_responder(), every=1)) as srv:
        reader = DeepSeekOCRReader(base_url=srv.base_url, mode="pages", dpi=36)
        docs = reader.load_data(pdf)
    assert [d.metadata["page_start"] for d in docs] == [1, 2, 3]
    assert {d.metadata["ocr_status"] for d in docs} == {"truncated"}
    assert all(d.text.strip() for d in docs)  # what was kept is there
    assert reader.last_stats is not None
    assert reader.last_stats.pages_truncated == 3


def test_stats_match_formula_and_add_up(tmp_path: Path, server: FakeOCRServer) -> None:
    pdf = make_pdf(tmp_path / "stats.pdf", pages=4)
    reader = DeepSeekOCRReader(base_url=server.base_url, mode="pages")
    docs = reader.load_data(pdf)
    sent = chats(server)
    expected = sum(vision_tokens(r.image_width, r.image_height) for r in sent)
    stats = reader.last_stats
    assert stats is not None
    assert stats.vision_tokens == expected == sum(d.metadata["vision_tokens"] for d in docs)
    assert stats.pages == 4 == stats.pages_ok + stats.pages_truncated + stats.pages_failed
    assert stats.output_tokens == sum(r.completion_tokens for r in sent)
    assert stats.text_tokens == sum(d.metadata["text_tokens"] for d in docs)
    assert stats.compression_ratio == pytest.approx(
        stats.text_tokens / stats.vision_tokens, abs=1e-3
    )
    json.dumps(stats.as_dict())  # JSON-serialisable
    assert len(reader.last_documents) == 1 and reader.last_documents[0].pages == 4


def test_sync_load_inside_a_running_event_loop(tmp_path: Path, server: FakeOCRServer) -> None:
    pdf = make_pdf(tmp_path / "nb.pdf", pages=2)

    async def notebook_cell() -> int:
        # what a Jupyter cell does: call the sync API while a loop runs in this thread
        return len(DeepSeekOCRReader(base_url=server.base_url, mode="pages").load_data(pdf))

    assert asyncio.run(notebook_cell()) == 2


def test_async_methods_run_on_the_callers_loop(tmp_path: Path, server: FakeOCRServer) -> None:
    pdf = make_pdf(tmp_path / "async.pdf", pages=3)
    seen: list[tuple[int, object]] = []

    class Spy:
        """Wraps the endpoint engine to see which loop and thread run the requests."""

        def __init__(self) -> None:
            from ocr_loaders._engines.openai_compat import make_endpoint_engine

            self.inner = make_endpoint_engine(server.base_url)
            self.name, self.model, self.prompt = "openai", self.inner.model, self.inner.prompt
            self.page_hook = None
            self.cache_identity = self.inner.cache_identity

        async def recognize(self, page):  # type: ignore[no-untyped-def]
            seen.append((threading.get_ident(), asyncio.get_running_loop()))
            return await self.inner.recognize(page)

        def drain(self) -> None:
            self.inner.drain()

        async def aclose(self) -> None:
            await self.inner.aclose()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        spy = Spy()
        docs = await DeepSeekOCRReader(engine=spy, mode="pages").aload_data(pdf)
        assert len(docs) == 3
        lazy = [d async for d in DeepSeekOCRReader(engine=spy, mode="pages").alazy_load_data(pdf)]
        assert len(lazy) == 3
        lc = [d async for d in DeepSeekOCRLoader(pdf, engine=spy, mode="pages").alazy_load()]
        assert len(lc) == 3
        await spy.aclose()
        assert {s[0] for s in seen} == {threading.get_ident()}
        assert all(s[1] is loop for s in seen)

    asyncio.run(main())


def test_unknown_model_fails_with_a_clear_error(tmp_path: Path, server: FakeOCRServer) -> None:
    from ocr_loaders._errors import EndpointError

    pdf = make_pdf(tmp_path / "m.pdf", pages=1)
    with pytest.raises(EndpointError, match="does not exist"):
        DeepSeekOCRReader(base_url=server.base_url, model="no/such-model").load_data(pdf)
    assert len(chats(server)) <= 1  # fails at once: an unknown model is not retried


def test_a_request_holds_its_page_once_and_its_body_is_what_the_server_reads() -> None:
    """In flight, a request keeps the page's own PNG bytes (no data-URL string, no client
    copy of the request, no whole body); the body, written from it in pieces as it is sent,
    has the servers' fields at the top."""
    from ocr_loaders._engines.body import PIECE, InlineImage, request_body
    from ocr_loaders._engines.openai_compat import EndpointSettings, Guard
    from ocr_loaders._engines.wire import build_request
    from ocr_loaders._model import PageImage, SourceInfo

    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 500  # several pieces, not a multiple of 3
    info = SourceInfo("d", "d.pdf", "d.pdf", "0" * 64, "pdf", 1)
    page = PageImage(info, 1, "1", 612, 792, png, "image/png", 1224, 1584)
    settings = EndpointSettings(base_urls=("http://127.0.0.1:1/v1",))
    request = build_request(page, settings, "vllm", "<image>\nFree OCR.", Guard(30, 90), 100)
    held = request["messages"][0]["content"][0]["image_url"]["url"]
    assert isinstance(held, InlineImage) and held.data is png  # the page's bytes, not a copy

    streamed = request_body(request, stream=True)
    pieces = list(streamed.pieces())
    assert len(pieces) > 3 and max(len(p) for p in pieces) <= 4 * PIECE // 3  # never whole
    whole = b"".join(pieces)
    assert len(whole) == len(streamed)  # the Content-Length sent
    body = json.loads(whole)
    url = body["messages"][0]["content"][0]["image_url"]["url"]
    assert url == "data:image/png;base64," + base64.b64encode(png).decode()
    assert body["skip_special_tokens"] is False and "extra_body" not in body
    assert body["vllm_xargs"]["ngram_size"] == 30 and body["stream"] is True
    assert body["max_tokens"] == 100 and body["temperature"] == 0


def test_an_openai_client_without_streamed_bodies_gets_the_whole_body(
    tmp_path: Path, server: FakeOCRServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """openai 1.100-2.x's ``post`` has no ``content``: the body goes whole as ``body``."""
    import warnings

    from ocr_loaders._engines import wire

    monkeypatch.setattr(wire, "_post_takes_content", lambda: False)
    pdf = make_pdf(tmp_path / "two.pdf", pages=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.x still takes it, with a warning
        docs = DeepSeekOCRReader(base_url=server.base_url, mode="pages").load_data(pdf)
    assert len(docs) == 2 and all(d.text for d in docs)
    sent = chats(server)
    assert len(sent) == 2 and all(r.status == 200 and r.image_mime == "image/png" for r in sent)
