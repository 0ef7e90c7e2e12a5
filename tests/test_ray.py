"""Scale-out on Ray Data (``ocr_loaders.ray``) on a local 2-CPU cluster against the fake server.

One ``ray.init(num_cpus=2)`` for the module: starting Ray is the slow part on a small machine.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymupdf
import pytest
from PIL import Image

from ocr_loaders import DeepSeekOCRLoader
from ocr_loaders.testing import FakeOCRServer, FaultPlan

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
    docs = DeepSeekOCRLoader(paths, base_url=url, **options).load()
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


def test_killed_midway_then_rerun_sends_only_the_missing_pages(
    ray_session: None, tmp_path: Path
) -> None:
    pdf = make_pdf(tmp_path / "resume.pdf", 12)
    cache = tmp_path / "shared-cache"
    faults = FaultPlan(script=("ok",) * 5, error_500=1.0)  # the GPU box dies after 5 pages
    with FakeOCRServer(faults=faults) as broken:
        options = {"base_url": broken.base_url, "max_attempts": 1, "cache_dir": str(cache)}
        # the job stops (no endpoint answers: EndpointUnavailableError in a worker), or ends
        # with the pages after the 5th failed, depending on how fast the balancer gives up
        with contextlib.suppress(Exception):
            read_documents(str(pdf), concurrency=4, **options).take_all()
    done_before = SharedCache(str(cache)).count()
    assert 1 <= done_before <= 5
    with FakeOCRServer() as healthy:
        stats = RunStats()
        rows = read_documents(
            str(pdf), base_url=healthy.base_url, cache_dir=str(cache), stats=stats
        ).take_all()
        assert len(chats(healthy)) == 12 - done_before  # only the missing pages
        expected = loader_chunks(str(pdf), healthy.base_url)
    assert [(r[0], r[1]) for r in ray_chunks(rows)] == [(e[0], e[1]) for e in expected]
    totals = stats.totals()
    assert (totals.pages, totals.pages_cached) == (12, done_before)
    assert SharedCache(str(cache)).count() == 12


def test_uri_inputs_parquet_and_a_vector_store(
    ray_session: None, inputs: tuple[Path, dict[str, str]], server: FakeOCRServer, tmp_path: Path
) -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.vectorstores import InMemoryVectorStore

    folder, _ = inputs
    uri = (folder / "scan.tif").as_uri()
    ds = read_documents([uri, str(folder / "photo.png")], base_url=server.base_url).materialize()
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
