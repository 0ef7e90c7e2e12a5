"""The page cache on its own: keys, damaged entries, the size cap, concurrent writers."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from ocr_loaders._cache import PageCache, default_cache_dir, page_key
from ocr_loaders._model import PageImage, RawPage, SourceInfo
from ocr_loaders._rendering.raster import RenderSettings

INFO = SourceInfo("x.pdf", "x.pdf", "/x.pdf", "a" * 64, "pdf", 3)
IMAGE = PageImage(INFO, 2, "ii", 612.0, 792.0, b"\x89PNG...", "image/png", 1224, 1584)
RAW = RawPage(
    "<|ref|>text<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\nhello",
    "stop",
    "openai",
    "deepseek-ai/DeepSeek-OCR",
    "<|grounding|>Convert the document to markdown.",
    1000,
    20,
    1.5,
    1,
)


def test_round_trip_keeps_answer_and_geometry_not_pixels(tmp_path: Path) -> None:
    cache = PageCache(tmp_path)
    key = page_key(INFO.doc_hash, 2, RenderSettings(), "engine-a")
    assert cache.get(key) is None
    cache.put(key, IMAGE, RAW)
    image, raw = cache.get(key) or (None, None)
    assert raw == RAW
    assert image is not None and image.image == b""
    assert (image.number, image.label, image.width, image.image_width) == (2, "ii", 612.0, 1224)


def test_keys_change_with_every_input() -> None:
    base = page_key("a" * 64, 1, RenderSettings(), "engine")
    assert base != page_key("b" * 64, 1, RenderSettings(), "engine")
    assert base != page_key("a" * 64, 2, RenderSettings(), "engine")
    assert base != page_key("a" * 64, 1, RenderSettings(dpi=200), "engine")
    assert base != page_key("a" * 64, 1, RenderSettings(image_format="jpeg"), "engine")
    assert base != page_key("a" * 64, 1, RenderSettings(), "engine-2")
    assert base == page_key("a" * 64, 1, RenderSettings(), "engine")


def test_damaged_entry_is_a_miss(tmp_path: Path) -> None:
    cache = PageCache(tmp_path)
    key = page_key(INFO.doc_hash, 1, RenderSettings(), "e")
    cache.put(key, IMAGE, RAW)
    path = next(tmp_path.rglob(f"{key}.json"))
    path.write_text("{not json")
    assert cache.get(key) is None
    cache.put(key, IMAGE, RAW)
    cache.put_manifest(INFO.doc_hash, {"kind": "pdf", "total_pages": 3, "labels": []})
    cache.clear()
    assert cache.get(key) is None and cache.get_manifest(INFO.doc_hash) is None


def test_size_cap_evicts_oldest(tmp_path: Path) -> None:
    cache = PageCache(tmp_path, max_bytes=20_000)
    big = replace(RAW, text="x" * 3000)
    keys = [page_key(INFO.doc_hash, n, RenderSettings(), "e") for n in range(30)]
    for key in keys:
        cache.put(key, IMAGE, big)
    total = sum(p.stat().st_size for p in tmp_path.rglob("*.json"))
    assert total <= 20_000
    assert cache.get(keys[-1]) is not None  # the newest survive
    assert cache.get(keys[0]) is None  # the oldest went first


def test_concurrent_writers_never_tear_an_entry(tmp_path: Path) -> None:
    caches = [PageCache(tmp_path) for _ in range(4)]
    key = page_key(INFO.doc_hash, 1, RenderSettings(), "e")
    texts = [replace(RAW, text=f"answer {i} " * 500) for i in range(4)]

    def writer(i: int) -> None:
        for _ in range(50):
            caches[i].put(key, IMAGE, texts[i])

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for _ in range(200):
        hit = caches[0].get(key)
        assert hit is None or hit[1] in texts
    for t in threads:
        t.join()
    hit = caches[0].get(key)
    assert hit is not None and hit[1] in texts
    assert not list(tmp_path.rglob(".tmp-*"))


def test_default_dir_follows_xdg_cache_home(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "ocr-loaders"
