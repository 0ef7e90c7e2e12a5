"""The JSON body of one page's request, written from the page's own image bytes.

A request in flight holds its page once: the PNG the page already has. The base64 data URL
is produced only while the body is being sent, a piece at a time (:class:`RequestBody`, with
its exact ``Content-Length`` so servers see an ordinary body), never as a string in the
request, a copy of the request in the OpenAI client, or a whole body in memory. With 64
requests in flight that is ~30 MB less for ~220 KB pages (docs/benchmarks.md, memory).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

PIECE = 3 * 16384
"""Image bytes encoded per piece of the body (a multiple of 3: base64 pieces then join)."""
_SLOT = "@@ocr-loaders-image@@"


@dataclass(frozen=True, slots=True)
class InlineImage:
    """A page's image inside a request: its encoded bytes, by reference."""

    mime: str
    data: bytes

    def url(self) -> str:
        """``data:<mime>;base64,...``, as the servers read it."""
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


@dataclass(frozen=True, slots=True)
class RequestBody:
    """A body in three parts: the JSON before the image's base64, the image, the JSON after."""

    head: bytes
    image: bytes
    tail: bytes

    def __len__(self) -> int:
        return len(self.head) + 4 * ((len(self.image) + 2) // 3) + len(self.tail)

    def pieces(self) -> Iterator[bytes]:
        """The body's bytes, a piece at a time (a new pass on each call)."""
        yield self.head
        view = memoryview(self.image)
        for start in range(0, len(view), PIECE):
            yield base64.b64encode(view[start : start + PIECE])
        yield self.tail

    def stream(self) -> Streamed:
        """The body as the HTTP client streams it (async, any number of passes)."""
        return Streamed(self)

    def __bytes__(self) -> bytes:
        return b"".join(self.pieces())


@dataclass(frozen=True, slots=True)
class Streamed:
    """An async-only view of a :class:`RequestBody` (httpx's async client takes only
    async iterables as streamed content)."""

    body: RequestBody

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.body.pieces():
            yield piece


def request_body(request: Mapping[str, Any], **more: Any) -> RequestBody:
    """The body of a request from :func:`.wire.build_request`, with ``more`` fields: the
    ``extra_body`` fields at the top level (where vLLM and SGLang read them) and its one
    :class:`InlineImage` as a data URL (a request without one is all ``head``)."""
    fields = {k: v for k, v in request.items() if k != "extra_body"}
    fields.update(request.get("extra_body") or {})
    fields.update(more)
    images: list[InlineImage] = []

    def slot(value: object) -> str:
        if isinstance(value, InlineImage) and not images:
            images.append(value)
            return f"data:{value.mime};base64,{_SLOT}"
        if isinstance(value, InlineImage):
            return value.url()
        raise TypeError(f"{type(value).__name__} is not JSON serializable")

    text = json.dumps(fields, default=slot, separators=(",", ":"))
    parts = text.split(_SLOT)
    if not images or len(parts) != 2:  # no image, or the marker also in the text itself
        return RequestBody(json.dumps(fields, default=_url).encode("utf-8"), b"", b"")
    return RequestBody(parts[0].encode("utf-8"), images[0].data, parts[1].encode("utf-8"))


def encode_body(request: Mapping[str, Any], **more: Any) -> bytes:
    """:func:`request_body` as one ``bytes``."""
    return bytes(request_body(request, **more))


def _url(value: object) -> str:
    if isinstance(value, InlineImage):
        return value.url()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


__all__ = ["InlineImage", "RequestBody", "Streamed", "encode_body", "request_body"]
