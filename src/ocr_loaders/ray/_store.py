"""The page cache of a Ray job, on a path every worker reaches: resume across workers.

Same keys and same entries as :class:`ocr_loaders._cache.PageCache` (``pages-v1/ab/<key>.json``
under the root), so a folder written by a cluster job can be handed to the single-process
loaders (``cache_dir=``) and the other way round. The root is a local or shared folder (NFS,
a mounted bucket) or a filesystem URI (``s3://bucket/ocr-cache``). An entry is written whole:
to a temporary name then renamed on a local filesystem, by a single upload on an object store,
so a killed worker never leaves a torn entry. There is no size cap (a job's answers must all
stay until it finished); delete the folder when the job's results are written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._cache import FORMAT_VERSION
from ._inputs import filesystem, is_uri

if TYPE_CHECKING:
    import pyarrow.fs as pafs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SharedCache:
    """A page cache rooted at ``root`` (a folder or a URI); picklable, opened lazily."""

    root: str

    def _fs(self) -> tuple[pafs.FileSystem, str, bool]:
        if is_uri(self.root):
            fs, base = filesystem(self.root)
            local = self.root.startswith("file://")
        else:
            import pyarrow.fs as pafs

            fs, base, local = pafs.LocalFileSystem(), os.path.abspath(self.root), True
        return fs, base.rstrip("/") + f"/pages-v{FORMAT_VERSION}", local

    def _where(self, key: str) -> tuple[pafs.FileSystem, str, str, bool]:
        fs, pages, local = self._fs()
        folder = f"{pages}/{key[:2]}"
        return fs, folder, f"{folder}/{key}.json", local

    def get(self, key: str) -> bytes | None:
        """The stored entry of ``key`` (see :func:`ocr_loaders._cache.entry_bytes`), or
        ``None``; an unreadable store is a miss, never an error."""
        fs, _folder, path, _local = self._where(key)
        try:
            with fs.open_input_stream(path) as fh:
                return bytes(fh.read())
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.debug("page cache miss on %s: %s", path, exc)
            return None

    def put(self, key: str, entry: bytes) -> None:
        """Store an entry whole; a store that refuses it is logged, not raised (the page is
        done, only its resume is lost)."""
        fs, folder, path, local = self._where(key)
        target = f"{folder}/.tmp-{uuid.uuid4().hex}" if local else path
        try:
            fs.create_dir(folder, recursive=True)
            with fs.open_output_stream(target) as fh:
                fh.write(entry)
            if local:
                fs.move(target, path)
        except OSError as exc:
            log.warning("cannot write the page cache at %s: %s", self.root, exc)
            if local:
                with contextlib.suppress(OSError):
                    fs.delete_file(target)

    def count(self) -> int:
        """How many entries the cache holds (walks the whole store: for tests and reports)."""
        import pyarrow.fs as pafs

        fs, pages, _local = self._fs()
        infos = fs.get_file_info(pafs.FileSelector(pages, recursive=True, allow_not_found=True))
        return sum(1 for i in infos if i.is_file and i.path.endswith(".json"))
