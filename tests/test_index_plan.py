"""The framework-neutral part of index sync: folder state, the plan, crop folders, store keys
and the stand-in embedding; and the extra named when a framework is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocr_loaders import InputNotFoundError
from ocr_loaders._folder_index import (
    crop_options,
    indexed_files,
    plan_sync,
    prune_crops,
    scan_folder,
    store_key,
)
from ocr_loaders._hash_embedding import hashed_vector

from .index_support import first_folder, path_of


def test_plan_sorts_files_into_added_updated_removed_skipped() -> None:
    current = {"/a": "1", "/b": "2", "/e": "5"}
    indexed = {"/a": frozenset({"1"}), "/b": frozenset({"0"}), "/c": frozenset({"3"})}
    plan = plan_sync(current, indexed)
    assert (plan.added, plan.updated, plan.removed, plan.skipped) == (
        ("/e",),
        ("/b",),
        ("/c",),
        ("/a",),
    )
    assert plan.to_load == ("/b", "/e")
    assert plan_sync({"/a": "1"}, {"/a": frozenset({"1"})}).unchanged
    # a file indexed under two hashes (a sync stopped half-way) is rebuilt
    assert plan_sync({"/a": "1"}, {"/a": frozenset({"1", "0"})}).updated == ("/a",)


def test_copies_are_indexed_once_where_chunk_ids_decide() -> None:
    same = {"/x": "h", "/y": "h", "/z": "k"}
    fresh = plan_sync(same, {}, one_per_content=True)
    assert (fresh.added, fresh.copies) == (("/x", "/z"), ("/y",))
    assert plan_sync(same, {}).added == ("/x", "/y", "/z")  # LangChain keys see the path too
    # the store then holds /x (and /z): nothing to do, /y stays a copy
    indexed = {"/x": frozenset({"h"}), "/z": frozenset({"k"})}
    again = plan_sync(same, indexed, one_per_content=True)
    assert again.unchanged and again.copies == ("/y",) and again.to_load == ()
    # the indexed one goes: its copy is indexed in its place
    gone = plan_sync({"/y": "h"}, {"/x": frozenset({"h"})}, one_per_content=True)
    assert (gone.added, gone.removed, gone.copies) == (("/y",), ("/x",), ())


def test_indexed_files_and_scan(tmp_path: Path) -> None:
    metas = [
        {"file_path": "/a", "doc_hash": "1"},
        {"file_path": "/a", "doc_hash": "1"},
        {"file_path": "/b", "doc_hash": "2"},
        {"other": 1},
    ]
    assert indexed_files(metas) == {"/a": frozenset({"1"}), "/b": frozenset({"2"})}
    folder = first_folder(tmp_path / "docs")
    (folder / "notes.txt").write_text("not a document")
    (folder / ".hidden.pdf").write_bytes(b"%PDF-1.7\n")
    state = scan_folder(folder)
    assert sorted(state) == sorted(
        path_of(folder, n) for n in ("a.pdf", "b.pdf", "sub/c.pdf", "d.pdf")
    )
    assert all(len(h) == 64 for h in state.values())
    empty = tmp_path / "empty"
    empty.mkdir()
    assert scan_folder(empty) == {}
    with pytest.raises(InputNotFoundError, match="nowhere"):
        scan_folder(tmp_path / "nowhere")


def test_each_sync_crops_into_its_own_folder_and_unlinked_ones_go(tmp_path: Path) -> None:
    options = {"images": "files", "images_dir": str(tmp_path / "crops"), "dpi": 100}
    first = plan_sync({"/x/a.pdf": "1", "/y/a.pdf": "2"}, {})
    second = plan_sync({"/x/a.pdf": "1", "/y/a.pdf": "3"}, {"/x/a.pdf": frozenset({"1"})})
    one = crop_options(options, first, {"/x/a.pdf": "1", "/y/a.pdf": "2"})
    two = crop_options(options, second, {"/x/a.pdf": "1", "/y/a.pdf": "3"})
    assert one["dpi"] == 100 and Path(one["images_dir"]).parent == tmp_path / "crops"
    assert Path(one["images_dir"]).name.startswith("sync-")
    assert one["images_dir"] != two["images_dir"]  # /y/a.pdf's new crops never overwrite /x's
    assert crop_options({"images": "inline"}, first, {}) == {"images": "inline"}
    for made in (one, two):
        Path(made["images_dir"]).mkdir(parents=True)
        (Path(made["images_dir"]) / "a-p1-0.png").write_bytes(b"png")
    (tmp_path / "crops" / "mine").mkdir()
    linked = [{"image_path": str(Path(two["images_dir"]) / "a-p1-0.png")}, {"page": 0}]
    assert prune_crops(options, linked) == 1
    assert sorted(p.name for p in (tmp_path / "crops").iterdir()) == sorted(
        ["mine", Path(two["images_dir"]).name]
    )
    assert prune_crops({"images": "none"}, []) == 0


def test_stand_in_embedding_and_store_keys() -> None:
    one = hashed_vector("the granite map of alder")
    assert len(one) == 256 and abs(sum(v * v for v in one) - 1.0) < 1e-9
    assert one == hashed_vector("The GRANITE map, of alder!")  # words, not case or punctuation
    near = sum(x * y for x, y in zip(one, hashed_vector("granite map"), strict=True))
    far = sum(x * y for x, y in zip(one, hashed_vector("quartz cedar survey"), strict=True))
    assert near > 0.5 > abs(far)
    assert hashed_vector("") == [1.0] + [0.0] * 255
    key = store_key("abc-p1-c0", "text", {"page": 0})
    assert key == store_key("abc-p1-c0", "text", {"page": 0})
    assert key != store_key("abc-p1-c0", "text!", {"page": 0})
    assert len(key) == 36  # a UUID, as Qdrant requires


def test_sync_helpers_name_the_extra_when_a_framework_is_missing() -> None:
    from .test_optional_imports import run

    done = run("""
        from ocr_loaders import SyncReport  # framework-free
        for name in ("sync_folder_llamaindex", "sync_folder_langchain"):
            try:
                __import__("ocr_loaders", fromlist=[name]).__getattribute__(name)
            except ImportError as exc:
                print(exc)
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("pip install 'ocr-loaders[index]'") == 2
