"""The rows that flow between the Ray Data stages, and their encoding.

Ray Data moves rows as Arrow columns, so every stage reads and writes the same flat columns
(:data:`PAGE_COLUMNS`), each present in every row: a document that cannot be read is one row
with ``number == 0`` and ``error`` set; a page's image, answer and timing are filled in as it
moves on. Structured values travel as JSON strings (the page geometry and the answer use the
page cache's own encoding); an engine's page hint is pickled, since it only travels from the
render task to the OCR actor of the same job.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from .._cache import entry_bytes, read_entry
from .._model import PageImage, RawPage, SourceInfo
from .._sources import DocumentOutline

if TYPE_CHECKING:
    import pyarrow as pa

Row = dict[str, Any]

PAGE_COLUMNS: dict[str, Any] = {
    "doc": "",  # the document's key: its position among the inputs, zero-padded
    "name": "",  # DocumentSource.name
    "path": "",  # a local path ("" for a URI)
    "uri": "",  # a filesystem URI read through pyarrow/fsspec ("" for a local path)
    "number": 0,  # 1-based page number; 0 on the row of a document that cannot be read
    "pages": 0,  # how many pages of the document are selected
    "outline": "",  # JSON: SourceInfo and page labels
    "error": "",  # JSON: why the document cannot be read
    "png": b"",  # the page image sent to the engine (kept after OCR only for figures)
    "hint": b"",  # the engine's page hint (the local engine's text layer), pickled
    "entry": b"",  # the page answer and geometry, in the page cache's encoding
    "cache_key": "",  # the page's key in the page cache
    "cached": False,  # the answer came from the page cache
    "finished": 0.0,  # wall-clock time the answer arrived (time.time())
}


def page_row(**values: Any) -> Row:
    """A row with every column, defaults where not given."""
    unknown = set(values) - set(PAGE_COLUMNS)
    if unknown:
        raise KeyError(f"not a page column: {sorted(unknown)}")
    return {**PAGE_COLUMNS, **values}


@dataclass(frozen=True, slots=True)
class DocumentError:
    """Why a document cannot be read: the error's class and its message parts."""

    error: str
    reason: str
    message: str

    def encode(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def decode(cls, text: str) -> DocumentError:
        return cls(**json.loads(text))


def encode_outline(outline: DocumentOutline) -> str:
    info = asdict(outline.info)
    return json.dumps({"info": info, "labels": list(outline.labels)}, ensure_ascii=False)


def decode_outline(text: str) -> DocumentOutline:
    data = json.loads(text)
    info = data["info"]
    info["extra"] = tuple(tuple(pair) for pair in info.get("extra", ()))
    return DocumentOutline(SourceInfo(**info), tuple(data["labels"]))


def encode_page(key: str, image: PageImage, raw: RawPage) -> bytes:
    """A page's geometry and answer, exactly as the page cache stores them."""
    return entry_bytes(key, image, raw)


def decode_page(key: str, entry: bytes, info: SourceInfo) -> tuple[PageImage, RawPage]:
    image, raw = read_entry(key, entry)
    return replace(image, source=info), raw


def encode_hint(hint: Any) -> bytes:
    return b"" if hint is None else pickle.dumps(hint)


def decode_hint(data: bytes) -> Any:
    """The hint of a page rendered by this job's own render task (never read from storage)."""
    return pickle.loads(data) if data else None  # noqa: S301


def page_schema() -> pa.Schema:
    """The Arrow schema of :data:`PAGE_COLUMNS` (binary columns stay exact bytes)."""
    import pyarrow as pa

    kinds = {str: pa.string(), bytes: pa.large_binary(), bool: pa.bool_(), int: pa.int64()}
    return pa.schema([(name, kinds.get(type(v), pa.float64())) for name, v in PAGE_COLUMNS.items()])


def to_table(rows: list[Row]) -> pa.Table:
    """Rows as the Arrow batch a stage returns (every column, even with no rows)."""
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=page_schema())


def from_table(batch: pa.Table) -> list[Row]:
    """An Arrow batch back into rows of plain Python values."""
    rows: list[Row] = batch.to_pylist()
    return rows
