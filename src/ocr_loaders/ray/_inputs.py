"""Inputs of a Ray job: local paths and globs as the loaders take them, and filesystem URIs.

Local paths, folders and globs are expanded by :func:`ocr_loaders._sources.resolve_inputs`,
exactly as the single-process loaders do, so sources (and the metadata made from them) are the
same. A URI (``s3://bucket/scans/``, ``gs://...``, ``file:///data/x.pdf``...) is listed with
pyarrow's filesystems, or fsspec's for schemes pyarrow lacks; a folder or a glob is expanded
to its PDFs and images, in sorted order. A URI's bytes are read on the worker that opens it;
its ``source`` and ``file_path`` are the URI itself.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import InputNotFoundError, UnreadableInputError
from .._sniff import SUFFIXES
from .._sources import DocumentSource, resolve_inputs
from ._rows import Row

if TYPE_CHECKING:
    import pyarrow.fs as pafs


def is_uri(text: str) -> bool:
    """``scheme://...`` other than a Windows drive path."""
    scheme, sep, _rest = text.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.replace("+", "").isalnum()


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and the path inside it for a URI (fsspec as a fallback)."""
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(uri)
        return fs, str(path)
    except (ValueError, TypeError) as first:  # pyarrow's ArrowInvalid is a ValueError
        try:
            import fsspec
        except ImportError:
            raise UnreadableInputError(f"no filesystem for this URI ({first})", path=uri) from None
        fs, path = fsspec.core.url_to_fs(uri)
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def _has_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def expand_uri(uri: str) -> list[str]:
    """The documents a URI names: itself, a folder's PDFs and images, or a glob's matches."""
    import pyarrow.fs as pafs

    scheme = uri.split("://", 1)[0] + "://"
    if _has_glob(uri):
        cut = min(uri.index(c) for c in "*?[" if c in uri)
        base = uri[:cut].rsplit("/", 1)[0]
        fs, root = filesystem(base)
        pattern = root.rstrip("/") + "/" + uri[len(base) :].lstrip("/")
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        found = [i.path for i in infos if i.is_file and fnmatch.fnmatchcase(i.path, pattern)]
    else:
        fs, path = filesystem(uri)
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.File:
            return [uri]
        if info.type != pafs.FileType.Directory:
            raise InputNotFoundError("no such file or folder", path=uri)
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
        found = [i.path for i in infos if i.is_file and not _hidden(i.path, path)]
    files = sorted(p for p in found if Path(p).suffix.lower() in SUFFIXES)
    if not files:
        raise InputNotFoundError("matched no PDF or image file", path=uri)
    return [_with_scheme(scheme, p) for p in files]


def _hidden(path: str, root: str) -> bool:
    return any(part.startswith(".") for part in path[len(root) :].split("/") if part)


def _with_scheme(scheme: str, path: str) -> str:
    if scheme == "file://" and not path.startswith("/"):
        path = "/" + path
    return scheme + path


def document_rows(inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Row]:
    """One row per input document, in order: ``doc`` (its key), ``name``, ``path``, ``uri``."""
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not items:
        raise InputNotFoundError("no input given", path="<none>")
    rows: list[Row] = []
    for item in items:
        text = os.fspath(item)
        if is_uri(text):
            rows += [{"name": u, "path": "", "uri": u} for u in expand_uri(text)]
        else:
            rows += [{"name": s.name, "path": str(s.path), "uri": ""} for s in resolve_inputs(text)]
    width = len(str(len(rows)))
    return [{"doc": str(i).zfill(width), **row} for i, row in enumerate(rows)]


def source_of(row: Row) -> DocumentSource:
    """The :class:`DocumentSource` of a row, reading a URI's bytes here."""
    if not row["uri"]:
        return DocumentSource(name=row["name"], path=Path(row["path"]))
    uri = row["uri"]
    try:
        fs, path = filesystem(uri)
        with fs.open_input_stream(path) as fh:
            data = fh.read()
    except FileNotFoundError as exc:
        raise InputNotFoundError("no such file", path=uri) from exc
    except OSError as exc:
        raise UnreadableInputError(f"cannot read ({exc})", path=uri) from exc
    return DocumentSource(name=uri, data=bytes(data))
