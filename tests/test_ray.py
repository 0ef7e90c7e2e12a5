"""Scale-out on Ray Data (``ocr_loaders.ray``) on a local 2-CPU cluster against the fake server.

One ``ray.init(num_cpus=2)`` for the module: starting Ray is the slow part on a small machine.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymupdf
import pytest
from PIL import Image

from ocr_loaders import ConfigError, DeepSeekOCRLoader
from ocr_loaders.testing import FakeOCRServer, FaultPlan, grid_responder

from .conftest import chats, make_pdf

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install '.[ray]'")

from ocr_loaders.ray import (  # noqa: E402
    CHUNK_COLUMNS,
    RunStats,
    SharedCache,
    add_to_vector_store,
    read_documents,
)
from ocr_loaders.ray._sinks import row_metadata  # noqa: E402


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    import ray.data

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A 100-page PDF, an image, a 3-frame TIFF, an encrypted PDF and a broken file."""
    folder = tmp_path_factory.mktemp("ray-inputs")
    make_pdf(folder / "long.pdf", 100)
    Image.new("RGB", (400, 300), "white").save(folder / "photo.png")
    frames = [Image.new("L", (300 + 10 * i, 200), 255) for i in range(3)]
    frames[0].save(folder / "scan.tif", save_all=True, append_images=frames[1:])
    make_pdf(
        folder / "locked.pdf",
        2,
        encryption=pymupdf.PDF_ENCRYPT_AES_256,
        user_pw="secret",
        owner_pw="secret-owner",
    )
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n")
    return folder, {"locked.pdf": "secret"}


def loader_chunks(paths: Any, url: str, **options: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """The single-process loader's chunks, with ``verify`` off as on Ray (not carried there)."""
    docs = DeepSeekOCRLoader(paths, base_url=url, **{"verify": "off", **options}).load()
    return sorted((d.id or "", d.page_content, d.metadata) for d in docs)


def ray_chunks(rows: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    return sorted((r["id"], r["text"], row_metadata(r)) for r in rows)


def test_same_chunks_as_the_loader_every_page_accounted_for(
    ray_session: None, inputs: tuple[Path, dict[str, str]], server: FakeOCRServer
) -> None:
    folder, passwords = inputs
    stats = RunStats()
    ds = read_documents(
        str(folder), base_url=server.base_url, password=passwords, stats=stats, pages_per_task=16
    )
    rows = ds.take_all()
    sent = len(chats(server))
    server.reset_stats()
    expected = loader_chunks(str(folder), server.base_url, password=passwords)
    got = ray_chunks(rows)
    assert [(i, t) for i, t, _m in got] == [(i, t) for i, t, _m in expected]
    assert [m for _i, _t, m in got] == [m for _i, _t, m in expected]  # every metadata key
    assert {r["file_name"] for r in rows} == {"long.pdf", "photo.png", "scan.tif", "locked.pdf"}
    totals = stats.totals()
    assert (totals.pages, totals.pages_ok, totals.documents) == (106, 106, 4)
    assert sent == 106  # one request per page, none repeated
    assert totals.documents_failed == 1
    [failure] = totals.failures
    assert failure.source.endswith("broken.pdf") and failure.page is None
    assert failure.error == "CorruptInputError"
    assert totals.vision_tokens > 0 and totals.ratio_distribution.max > 0
    assert totals.pages_per_second > 0
    long_pages = {p for r in rows if r["file_name"] == "long.pdf" for p in (r["page_start"],)}
    assert long_pages == set(range(1, 101))


def settled(server: FakeOCRServer, cache: SharedCache, quiet: float = 2.0) -> tuple[int, int]:
    """(chat requests received, pages cached) once neither has changed for ``quiet`` seconds:
    a killed job's workers may still be finishing for a moment."""
    last, since = (-1, -1), time.monotonic()
    while time.monotonic() - since < quiet:
        now = (len(chats(server)), cache.count())
        if now != last:
            last, since = now, time.monotonic()
        time.sleep(0.1)
    return last


def test_killed_midway_then_rerun_sends_only_the_missing_pages(
    ray_session: None, tmp_path: Path
) -> None:
    """The job's driver is killed (SIGKILL) after a few pages; the same job started again
    with the same cache sends exactly the pages not in the cache."""
    pdf = make_pdf(tmp_path / "resume.pdf", 24)
    cache = SharedCache(str(tmp_path / "shared-cache"))
    address = ray.get_runtime_context().gcs_address
    with FakeOCRServer(slots=2, service_time=0.3) as srv:
        job = textwrap.dedent(f"""
            import ray, ray.data
            ray.init(address={address!r}, log_to_driver=False)
            ray.data.DataContext.get_current().enable_progress_bars = False
            from ocr_loaders.ray import read_documents
            read_documents(
                {str(pdf)!r}, base_url={srv.base_url!r}, cache_dir={cache.root!r}, concurrency=2
            ).take_all()
            print("finished")
        """)
        driver = subprocess.Popen([sys.executable, "-c", job], stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while len(chats(srv)) < 6 and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        driver.kill()
        stdout, _ = driver.communicate()
        assert "finished" not in stdout  # killed midway, not done
        sent, done_before = settled(srv, cache)
        assert 1 <= done_before < 24 and sent >= done_before
        srv.reset_stats()
        stats = RunStats()
        rows = read_documents(
            str(pdf), base_url=srv.base_url, cache_dir=cache.root, stats=stats
        ).take_all()
        assert len(chats(srv)) == 24 - done_before  # only the missing pages
        expected = loader_chunks(str(pdf), srv.base_url)
    assert [(r[0], r[1]) for r in ray_chunks(rows)] == [(e[0], e[1]) for e in expected]
    totals = stats.totals()
    assert (totals.pages, totals.pages_ok, totals.pages_cached) == (24, 24, done_before)
    assert cache.count() == 24


def test_a_failing_endpoint_leaves_its_pages_for_the_rerun(
    ray_session: None, tmp_path: Path
) -> None:
    pdf = make_pdf(tmp_path / "flaky.pdf", 6)
    cache = SharedCache(str(tmp_path / "cache"))
    faults = FaultPlan(script=("ok", "ok", "500", "500", "500", "500"))
    with FakeOCRServer(faults=faults) as srv:
        stats = RunStats()
        options = {"base_url": srv.base_url, "cache_dir": cache.root, "max_attempts": 1}
        read_documents(str(pdf), concurrency=1, stats=stats, **options).take_all()
        totals = stats.totals()
        assert (totals.pages, totals.pages_ok, totals.pages_failed) == (6, 2, 4)
        assert [f.page for f in totals.failures] == [3, 4, 5, 6]
        assert cache.count() == 2  # failed pages are not cached
        srv.reset_stats()
        srv.faults = None
        read_documents(str(pdf), stats=stats, **options).take_all()
        assert len(chats(srv)) == 4
    assert stats.totals().pages_ok == 6


def test_uri_inputs_parquet_and_a_vector_store(
    ray_session: None, inputs: tuple[Path, dict[str, str]], server: FakeOCRServer, tmp_path: Path
) -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.vectorstores import InMemoryVectorStore

    folder, _ = inputs
    uri = (folder / "scan.tif").as_uri()
    with FakeOCRServer(grid_responder()) as second:  # requests go to the least-loaded endpoint
        urls = f"{server.base_url},{second.base_url}"
        ds = read_documents([uri, str(folder / "photo.png")], base_url=urls).materialize()
        assert len(chats(server)) >= 1 and len(chats(second)) >= 1
        assert len(chats(server)) + len(chats(second)) == 4
    out = tmp_path / "parquet"
    ds.write_parquet(str(out))
    import pyarrow.parquet as pq

    table = pq.read_table(out)
    assert table.column_names == list(CHUNK_COLUMNS)
    rows = table.to_pylist()
    by_name = {r["file_name"]: r for r in rows}
    assert by_name["scan.tif"]["source"] == uri and by_name["scan.tif"]["file_path"] == uri
    local = loader_chunks([str(folder / "scan.tif")], server.base_url)
    assert sorted((r["id"], r["text"]) for r in rows if r["file_name"] == "scan.tif") == [
        (i, t) for i, t, _m in local
    ]
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=8))
    assert add_to_vector_store(ds, store, batch_size=2) == len(rows)
    assert set(store.store) == {r["id"] for r in rows}
    stored = store.get_by_ids([rows[0]["id"]])[0]
    assert stored.metadata["page_label"] == rows[0]["page_label"]
    assert "figure_index" not in stored.metadata
    from llama_index.core import MockEmbedding, VectorStoreIndex

    index = VectorStoreIndex([], embed_model=MockEmbedding(embed_dim=8))
    assert add_to_vector_store(ds, index, batch_size=3) == len(rows)
    assert set(index.docstore.docs) == {r["id"] for r in rows}
    node = index.docstore.get_node(rows[0]["id"])
    assert node.metadata["doc_hash"] == rows[0]["doc_hash"]
    assert "regions" in node.excluded_embed_metadata_keys
    with pytest.raises(ConfigError, match="VectorStore"):
        add_to_vector_store(ds, object())


def test_missing_input_is_a_project_error(ray_session: None, tmp_path: Path) -> None:
    from ocr_loaders import InputNotFoundError

    with pytest.raises(InputNotFoundError, match="nothing-here"):
        read_documents(str(tmp_path / "nothing-here"))
    with pytest.raises(InputNotFoundError, match="matched no PDF"):
        read_documents((tmp_path / "*.pdf").as_uri().replace("%2A", "*"))


def test_base_install_imports_without_ray() -> None:
    block = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("ray", "pyarrow"):
                    raise ImportError(f"blocked {name}")
                return None
        sys.meta_path.insert(0, Block())
        import ocr_loaders
        assert ocr_loaders.vision_tokens(1190, 1684) == 903
        try:
            import ocr_loaders.ray
        except ImportError as exc:
            print(exc)
    """)
    done = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'ocr-loaders[ray]'" in done.stdout


def test_ray_data_llm_rows_follow_the_recipe(tmp_path: Path) -> None:
    """The in-process option's request and answer rows (the processor itself needs GPUs)."""
    import pyarrow as pa

    from ocr_loaders._cache import read_entry
    from ocr_loaders.ray._job import job_spec
    from ocr_loaders.ray._llm import LOGITS_PROCESSOR, answer, engine_kwargs, request
    from ocr_loaders.ray._rows import page_row
    from ocr_loaders.ray._stages import plan, render

    pdf = make_pdf(tmp_path / "one.pdf", 1)
    spec = job_spec({"engine": "vllm", "cache_dir": str(tmp_path / "cache")})
    assert spec.engine.name == "vllm" and spec.hook is None
    doc = pa.Table.from_pylist([{"doc": "0", "name": str(pdf), "path": str(pdf), "uri": ""}])
    [row] = render(plan(doc, spec), spec).to_pylist()
    assert row["png"].startswith(b"\x89PNG") and not row["cached"]
    asked = request(row, spec)
    [message] = asked["messages"]
    image, text = message["content"]
    assert image["image_url"]["url"].startswith("data:image/png;base64,")
    assert text == {"type": "text", "text": spec.options.prompt}
    sampling = asked["sampling_params"]
    assert sampling["temperature"] == 0.0 and sampling["skip_special_tokens"] is False
    assert sampling["extra_args"]["ngram_size"] == spec.options.endpoint.ngram_size
    assert 16 <= sampling["max_tokens"] < spec.options.endpoint.max_model_len
    kwargs = engine_kwargs(spec, {"gpu_memory_utilization": 0.8})
    assert kwargs["logits_processors"] == [LOGITS_PROCESSOR]
    assert kwargs["enable_prefix_caching"] is False and kwargs["gpu_memory_utilization"] == 0.8
    said = "<|ref|>title<|/ref|><|det|>[[10, 10, 900, 80]]<|/det|>\n# Heading"
    out = answer({**asked, "generated_text": said, "num_input_tokens": 300}, spec)
    assert set(out) == set(page_row())
    _image, raw = read_entry(row["cache_key"], out["entry"])
    assert (raw.text, raw.engine, raw.prompt_tokens) == (said, "vllm", 300)
    assert SharedCache(str(tmp_path / "cache")).get(row["cache_key"]) == out["entry"]
    failed = answer({**asked, "generated_text": "", "__inference_error__": "CUDA OOM"}, spec)
    assert read_entry(row["cache_key"], failed["entry"])[1].error == "CUDA OOM"


FIGURE_PAGE = (
    "<|ref|>image<|/ref|><|det|>[[100, 100, 500, 500]]<|/det|>\n"
    "<|ref|>image_caption<|/ref|><|det|>[[100, 510, 500, 540]]<|/det|>\nFigure 1: A chart.\n"
    "<|ref|>text<|/ref|><|det|>[[100, 600, 900, 700]]<|/det|>\nBody text of the page."
)


def test_figure_rows_match_the_loader(ray_session: None, tmp_path: Path) -> None:
    from ocr_loaders.testing import static_responder

    pdf = make_pdf(tmp_path / "figures.pdf", 2)
    with FakeOCRServer(static_responder(FIGURE_PAGE)) as srv:
        rows = read_documents(str(pdf), base_url=srv.base_url, images="inline").take_all()
        expected = loader_chunks(str(pdf), srv.base_url, images="inline")
    assert ray_chunks(rows) == expected
    figures = [r for r in rows if r["figure_index"] >= 0]
    assert len(figures) == 2 and all(r["image_base64"] for r in figures)
    assert {r["text"] for r in figures} == {"Figure 1: A chart."}


def test_verification_is_refused_not_skipped() -> None:
    """The Ray path does not carry the text layer between its stages yet: asking it to verify
    is an error, not a job that silently reports every page unverified."""
    from ocr_loaders.ray._job import job_spec

    with pytest.raises(ConfigError, match="not supported by ocr_loaders.ray"):
        job_spec({"base_url": "http://127.0.0.1:9/v1", "verify": "flag"})
    assert job_spec({"base_url": "http://127.0.0.1:9/v1"}).options.verification.verify == "off"
