"""Page-level, content-addressed cache of engine answers on disk: resume for free.

The key is a hash of everything that determines a page's answer: the document's bytes (its
sha256), the page number, the render settings and the engine's identity (model, prompt,
dialect, guard). A killed run started again finds its finished pages here and sends no request
for them. Entries are small JSON files written atomically (temp file + rename), so concurrent
writers never leave a torn entry; the total size is capped, oldest entries evicted first. No
secret is stored: entries hold the model's text, token counts and page geometry only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ._model import PageImage, RawPage, SourceInfo
from ._rendering.raster import RenderSettings
from ._sources import DocumentOutline, DocumentSource, hash_source, source_info
from ._verify.textlayer import layer_from_json, layer_to_json

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """The platform cache folder (``$XDG_CACHE_HOME/ocr-loaders`` on Linux)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("ocr-loaders", appauthor=False))


def page_key(doc_hash: str, page: int, render: RenderSettings, engine_identity: str) -> str:
    """The cache key of one page under given render settings and engine."""
    material = "\x1f".join(
        [str(FORMAT_VERSION), doc_hash, str(page), render.key(), engine_identity]
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def _manifest_key(doc_hash: str) -> str:
    return hashlib.sha256(f"{FORMAT_VERSION}\x1fmanifest\x1f{doc_hash}".encode()).hexdigest()


_PLACEHOLDER_SOURCE = SourceInfo(
    source="", file_name="", file_path="", doc_hash="", kind="pdf", total_pages=0
)


def entry_bytes(key: str, image: PageImage, raw: RawPage) -> bytes:
    """The stored form of one page answer: JSON of the answer and the page geometry (no
    pixels). Every cache store writes this, so their entries are interchangeable."""
    skip = ("source", "image", "hint", "text_layer")
    geometry = {k: v for k, v in asdict(image).items() if k not in skip}
    if image.text_layer is not None:  # so a cached page is still verified (verify)
        geometry["text_layer"] = layer_to_json(image.text_layer)
    return json.dumps(
        {"version": FORMAT_VERSION, "key": key, "image": geometry, "raw": asdict(raw)},
        ensure_ascii=False,
    ).encode("utf-8")


def read_entry(key: str, data: bytes) -> tuple[PageImage, RawPage]:
    """The (image geometry, answer) stored by :func:`entry_bytes`; ``ValueError`` (or a
    ``TypeError``/``KeyError``) for an entry that is stale or damaged. The image's ``source``
    is a placeholder: the caller knows the document."""
    entry = json.loads(data.decode("utf-8"))
    if entry.get("version") != FORMAT_VERSION or entry.get("key") != key:
        raise ValueError("stale entry")
    geometry = dict(entry["image"])
    layer = layer_from_json(geometry.pop("text_layer", None))
    image = PageImage(
        source=_PLACEHOLDER_SOURCE, image=b"", hint=None, text_layer=layer, **geometry
    )
    return image, RawPage(**entry["raw"])


class PageCache:
    """A folder of cached page answers. Thread-safe; safe across processes."""

    def __init__(self, directory: Path | None = None, *, max_bytes: int = 2 * 1024**3) -> None:
        root = directory or default_cache_dir()
        self.directory = root / f"pages-v{FORMAT_VERSION}"
        self.manifests = root / f"documents-v{FORMAT_VERSION}"
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._size: int | None = None
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> tuple[PageImage, RawPage] | None:
        """The cached (image geometry, answer) for ``key``, or ``None``."""
        path = self._path(key)
        try:
            image, raw = read_entry(key, path.read_bytes())
        except FileNotFoundError:
            self.misses += 1
            return None
        except Exception as exc:  # a damaged entry is a miss, never an error
            log.debug("ignoring damaged cache entry %s: %s", path, exc)
            self.misses += 1
            return None
        self.hits += 1
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: evicted last
        return image, raw

    def put(self, key: str, image: PageImage, raw: RawPage) -> None:
        """Store an answer atomically; evict old entries when over the size cap."""
        payload = entry_bytes(key, image, raw)
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
            os.replace(tmp, path)
        except OSError as exc:  # a full or read-only disk must not fail the load
            log.warning("cannot write the page cache in %s: %s", self.directory, exc)
            return
        with self._lock:
            if self._size is None:
                self._size = self._scan_size()
            else:
                self._size += len(payload)
            if self._size > self.max_bytes:
                self._evict()

    def get_manifest(self, doc_hash: str) -> dict[str, Any] | None:
        """What is known of a document with these bytes: kind, page count, labels, encrypted."""
        try:
            path = self.manifests / f"{_manifest_key(doc_hash)}.json"
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if data.get("doc_hash") == doc_hash else None

    def put_manifest(self, doc_hash: str, manifest: dict[str, Any]) -> None:
        """Remember a document's kind, page count and labels, so a fully cached re-run need
        not open it at all."""
        payload = json.dumps({"doc_hash": doc_hash, **manifest}, ensure_ascii=False)
        path = self.manifests / f"{_manifest_key(doc_hash)}.json"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(payload)
            os.replace(tmp, path)
        except OSError as exc:
            log.debug("cannot write a document manifest: %s", exc)

    def document(self, src: DocumentSource) -> DocumentOutline | None:
        """The outline of an input from its manifest, without opening it (``None``: unknown).

        Only for documents opened before without a password: callers with a password open
        the document anyway, so a wrong password still fails.
        """
        try:
            doc_hash = hash_source(src)
        except OSError:
            return None  # opening will say what is wrong with the file
        manifest = self.get_manifest(doc_hash)
        if not manifest:
            return None
        try:
            info = source_info(src, doc_hash, manifest["kind"], int(manifest["total_pages"]))
            labels = tuple(str(label) for label in manifest["labels"])
            weights = tuple(int(w) for w in manifest.get("weights", ()))
            return DocumentOutline(info, labels, weights)
        except (KeyError, TypeError, ValueError):
            return None

    def remember_document(self, outline: DocumentOutline) -> None:
        """Write an opened document's manifest (see :meth:`document`)."""
        info = outline.info
        labels = [outline.label(n) for n in range(1, info.total_pages + 1)]
        self.put_manifest(
            info.doc_hash,
            {
                "kind": info.kind,
                "total_pages": info.total_pages,
                "labels": labels,
                "weights": list(outline.weights),
            },
        )

    def _entries(self) -> list[tuple[float, int, Path]]:
        out = []
        for path in self.directory.glob("*/*.json"):
            try:
                st = path.stat()
            except OSError:
                continue
            out.append((st.st_mtime, st.st_size, path))
        return out

    def _scan_size(self) -> int:
        return sum(size for _m, size, _p in self._entries())

    def _evict(self) -> None:
        entries = sorted(self._entries())
        total = sum(size for _m, size, _p in entries)
        target = int(self.max_bytes * 0.9)
        for _mtime, size, path in entries:
            if total <= target:
                break
            try:
                path.unlink()
                total -= size
            except OSError:
                continue
        self._size = total

    def clear(self) -> None:
        """Delete every entry and document manifest."""
        for path in [*(p for _m, _s, p in self._entries()), *self.manifests.glob("*.json")]:
            with contextlib.suppress(OSError):
                path.unlink()
        self._size = 0
