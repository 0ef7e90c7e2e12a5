"""Keeping a vector store in sync with a folder: what changed, framework-neutral and pure.

A folder's state is ``{file_path: doc_hash}`` (the resolved path, as chunk metadata has it,
and the sha256 of the bytes); an index's state is what its chunks' metadata say. The plan
compares the two: files to OCR (new or changed), files whose chunks go (changed or removed),
files left alone. The framework helpers (``_index_llamaindex``, ``_index_langchain``) read the
index's state from the frameworks' own records and carry the plan out.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import InputNotFoundError, UnreadableInputError
from ._sources import DocumentSource, _folder_files, hash_source
from ._stats import Totals

Metadata = Mapping[str, object]

KEY_NAMESPACE = uuid.UUID("5d3f7a52-8f0e-4c41-9a57-2b0c9f1e6a10")
"""Namespace of the store keys (:func:`store_key`); fixed, so keys never change."""


def scan_folder(folder: str | Path) -> dict[str, str]:
    """``{resolved file path: sha256}`` of the PDFs and images under ``folder``.

    The same walk as a load of the folder (recursive, hidden entries skipped, PDF and image
    suffixes only). An empty folder is a folder whose files were all removed: ``{}``.
    """
    root = Path(folder).expanduser()
    if not root.exists():
        raise InputNotFoundError("no such folder", path=str(folder))
    if not root.is_dir():
        raise UnreadableInputError("not a folder: index a folder of files", path=str(folder))
    state: dict[str, str] = {}
    for path in _folder_files(root):
        try:
            state[str(path.resolve())] = hash_source(DocumentSource(str(path), path))
        except OSError as exc:
            raise UnreadableInputError(f"cannot read it: {exc}", path=str(path)) from exc
    return state


def indexed_files(metadatas: Iterable[Metadata]) -> dict[str, frozenset[str]]:
    """``{file_path: doc hashes}`` of the chunks an index holds (from their metadata).

    More than one hash for a file means an earlier sync stopped half-way; such a file is
    planned as changed, so its chunks are rebuilt. Chunks without the two keys are ignored.
    """
    found: dict[str, set[str]] = {}
    for meta in metadatas:
        path, digest = meta.get("file_path"), meta.get("doc_hash")
        if isinstance(path, str) and isinstance(digest, str):
            found.setdefault(path, set()).add(digest)
    return {path: frozenset(hashes) for path, hashes in found.items()}


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """Which files to OCR and which files' chunks to drop, each sorted by path."""

    added: tuple[str, ...]
    """In the folder, not in the index: OCR them."""
    updated: tuple[str, ...]
    """In both with other bytes: OCR them, drop their old chunks."""
    removed: tuple[str, ...]
    """In the index, gone from the folder: drop their chunks."""
    skipped: tuple[str, ...]
    """Unchanged: no request, no write."""
    copies: tuple[str, ...] = ()
    """Byte-for-byte copies of another file of the folder, indexed once under that file's path
    (only where chunk ids decide identity: LlamaIndex). No request, no write."""

    @property
    def to_load(self) -> tuple[str, ...]:
        """The files to OCR: new and changed ones."""
        return tuple(sorted(self.added + self.updated))

    @property
    def unchanged(self) -> bool:
        """Nothing to do at all."""
        return not (self.added or self.updated or self.removed)


def plan_sync(
    current: Mapping[str, str],
    indexed: Mapping[str, frozenset[str]],
    *,
    one_per_content: bool = False,
) -> SyncPlan:
    """Compare a folder's state with an index's (see :func:`indexed_files`).

    ``one_per_content``: chunk ids come from the bytes alone, so two identical files give the
    same ids and a store keyed by them holds one copy. Then a file whose bytes are indexed (or
    about to be) under another current path is a copy, not a file to OCR on every run. Only a
    file not yet indexed can be a copy; an indexed one that changed is ``updated``.
    """
    skipped = sorted(p for p in current if p in indexed and indexed[p] == {current[p]})
    updated = sorted(p for p in current if p in indexed and p not in skipped)
    owner = {current[p]: p for p in skipped + updated}
    added: list[str] = []
    copies: list[str] = []
    for path in sorted(p for p in current if p not in indexed):
        if one_per_content and current[path] in owner:
            copies.append(path)
        else:
            owner.setdefault(current[path], path)
            added.append(path)
    removed = sorted(p for p in indexed if p not in current)
    return SyncPlan(tuple(added), tuple(updated), tuple(removed), tuple(skipped), tuple(copies))


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one sync did: the plan's files, what failed, and the store operations."""

    plan: SyncPlan
    failed: tuple[str, ...] = ()
    """Files to OCR that gave no chunk (unreadable; listed in ``stats.failures``). Their old
    chunks are dropped; the next sync tries them again."""
    written: int = 0
    """Chunks and figures written to the vector store."""
    deleted: int = 0
    """Chunks and figures deleted from it (LangChain counts them exactly; LlamaIndex counts the
    documents its docstore dropped)."""
    stats: Totals | None = None
    """Totals of the OCR run (``None`` when nothing needed OCR): pages, requests, failures."""

    @property
    def added(self) -> tuple[str, ...]:
        return self.plan.added

    @property
    def updated(self) -> tuple[str, ...]:
        return self.plan.updated

    @property
    def removed(self) -> tuple[str, ...]:
        return self.plan.removed

    @property
    def skipped(self) -> tuple[str, ...]:
        return self.plan.skipped

    @property
    def copies(self) -> tuple[str, ...]:
        return self.plan.copies

    def summary(self) -> str:
        """One line: ``added 1, updated 1, removed 1, skipped 2 files; 9 written, 6 deleted``."""
        failed = f", {len(self.failed)} failed" if self.failed else ""
        failed += f", {len(self.copies)} copies" if self.copies else ""
        return (
            f"added {len(self.added)}, updated {len(self.updated)}, "
            f"removed {len(self.removed)}, skipped {len(self.skipped)} files{failed}; "
            f"{self.written} written, {self.deleted} deleted"
        )


def loaded_files(metadatas: Iterable[Metadata]) -> set[str]:
    """The ``file_path`` values of loaded chunks: the files that gave at least one."""
    return {str(m["file_path"]) for m in metadatas if "file_path" in m}


def store_key(chunk_id: str, text: str, metadata: Metadata) -> str:
    """A UUID for a chunk in a vector store: the same chunk id, text and metadata give the same
    key on every run; any change gives a new one. Stores such as Qdrant take only UUIDs (or
    integers) as ids, so the chunk id itself cannot be the key."""
    body = json.dumps([chunk_id, text, dict(metadata)], sort_keys=True, default=str)
    return str(uuid.uuid5(KEY_NAMESPACE, hashlib.sha256(body.encode()).hexdigest()))


def node_key(chunk_id: str) -> str:
    """A UUID naming the store node of a LlamaIndex chunk (its docstore tracks the content)."""
    return str(uuid.uuid5(KEY_NAMESPACE, chunk_id))


CROPS_PREFIX = "sync-"


def crop_options(
    options: Mapping[str, Any], plan: SyncPlan, current: Mapping[str, str]
) -> dict[str, Any]:
    """Loader options for one sync: with ``images="files"``, the crops of this sync's files go
    to a folder of their own under ``images_dir`` (``sync-<digest of the files' hashes>``).

    Crop names are unique within one load only (``<stem>-p<page>-<k>.png``); a later sync
    loading ``x.pdf`` from another folder would otherwise overwrite the crops of an unchanged
    ``x.pdf`` that the store still links.
    """
    out = dict(options)
    if out.get("images") != "files" or out.get("images_dir") is None:
        return out
    pairs = "\n".join(f"{p}\t{current[p]}" for p in plan.to_load)
    digest = hashlib.sha256(pairs.encode()).hexdigest()[:16]
    out["images_dir"] = str(Path(str(out["images_dir"])) / f"{CROPS_PREFIX}{digest}")
    return out


def prune_crops(options: Mapping[str, Any], current: Iterable[Metadata]) -> int:
    """Remove the ``sync-*`` crop folders under ``images_dir`` that no current figure links
    (those of changed and removed files); the number removed. Nothing else is touched."""
    if options.get("images") != "files" or options.get("images_dir") is None:
        return 0
    root = Path(str(options["images_dir"])).resolve()
    if not root.is_dir():
        return 0
    linked: set[Path] = set()
    for meta in current:
        image = meta.get("image_path")
        if isinstance(image, str):
            parents = Path(image).resolve().parents
            linked.update(p for p in parents if p.parent == root)
    removed = 0
    for folder in root.glob(f"{CROPS_PREFIX}*"):
        if folder.is_dir() and folder.resolve() not in linked:
            shutil.rmtree(folder)
            removed += 1
    return removed
