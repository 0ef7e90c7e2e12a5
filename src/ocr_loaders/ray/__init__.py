"""Scale-out on Ray Data: ``read_documents(paths_or_uris, **options) -> ray.data.Dataset``.

Pages are the unit of work: rendering runs in Ray tasks across the cluster, OCR in an actor
pool whose actors keep many requests in flight to the endpoints (the loaders' own engine and
balancer), and each document is assembled and chunked in page order exactly as
``DeepSeekOCRLoader`` does it, so one machine and a cluster give the same chunk ids and texts.
A page cache on a shared path or URI (``cache_dir=``) makes a killed job resumable. See
docs/scale-out.md. Needs the ``ray`` extra: ``pip install 'ocr-loaders[ray]'``.
"""

from __future__ import annotations

try:
    import ray.data  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by test_optional_imports
    raise ImportError("ocr_loaders.ray needs Ray Data: pip install 'ocr-loaders[ray]'") from exc

from ._documents import CHUNK_COLUMNS
from ._job import read_documents
from ._sinks import add_to_vector_store
from ._stats import RunStats
from ._store import SharedCache

__all__ = ["CHUNK_COLUMNS", "RunStats", "SharedCache", "add_to_vector_store", "read_documents"]
