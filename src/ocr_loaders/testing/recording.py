"""What the fake server remembers of the chat requests it answered, and the request count
that numbers them (the fault script and fixtures count from it)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .faults import Fault, FaultPicker, FaultPlan


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One chat-completions request as the server saw and answered it.

    ``body`` is the parsed JSON with every image data URL shortened to
    ``data:<mime>;base64,<N chars>`` (records stay small in long benchmarks); the image itself
    is described by ``image_*``. Times: ``received_at`` is wall-clock (``time.time()``);
    ``started``, ``service_started`` and ``finished`` are ``time.monotonic()`` readings.
    """

    seq: int
    path: str
    headers: Mapping[str, str]
    body: Mapping[str, Any] | None
    received_at: float
    started: float
    finished: float
    status: int
    """HTTP status sent; 0 when the connection was reset or dropped without a response."""
    fault: Fault
    model: str = ""
    prompt: str = ""
    """Text part(s) joined by newlines, without a leading ``<image>\\n``."""
    raw_text: str = ""
    """Text part(s) exactly as sent."""
    image_width: int = 0
    image_height: int = 0
    image_mime: str = ""
    """Type found in the image bytes."""
    declared_mime: str = ""
    """Type the data URL declared."""
    image_bytes: int = 0
    image_sha256: str = ""
    image_first: bool = False
    """The image part came before the text part."""
    image_tag: bool = False
    """The text started with ``<image>\\n`` (vLLM accepts it; SGLang refuses any ``<image>``
    in the text, since its template adds one)."""
    vision_tokens: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    max_tokens: int | None = None
    """``max_completion_tokens`` or ``max_tokens`` as requested (``None``: not sent)."""
    effective_max_tokens: int = 0
    temperature: float | None = None
    skip_special_tokens: bool | None = None
    """As sent (``None``: not sent, which means ``True``)."""
    vllm_xargs: Mapping[str, Any] | None = None
    custom_params: Mapping[str, Any] | None = None
    custom_logit_processor: bool = False
    stream: bool = False
    finish_reason: str | None = None
    content: str = ""
    """``choices[0].message.content`` as sent."""
    error: str = ""
    """The error message sent (4xx/5xx, error_200), or what went wrong."""
    queue_seconds: float = 0.0
    """Time spent waiting for a free slot."""
    service_started: float | None = None
    """When the request got its slot (or started service, without ``slots``)."""
    service_ended: float | None = None
    """When it gave the slot back (before the response was written)."""

    @property
    def latency(self) -> float:
        """Seconds from the body's arrival to the end of the response."""
        return self.finished - self.started


@dataclass
class Trace:
    """Mutable draft of a :class:`RecordedRequest`."""

    seq: int
    path: str
    headers: dict[str, str]
    received_at: float
    started: float
    fields: dict[str, Any] = field(default_factory=dict)
    status: int = 0
    fault: Fault = "ok"

    def freeze(self) -> RecordedRequest:
        return RecordedRequest(
            seq=self.seq,
            path=self.path,
            headers=self.headers,
            body=self.fields.pop("body", None),
            received_at=self.received_at,
            started=self.started,
            finished=time.monotonic(),
            status=self.status,
            fault=self.fault,
            **self.fields,
        )


def elide_images(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` whose image data URLs are shortened for the record."""
    out = dict(body)
    messages = body.get("messages")
    if not isinstance(messages, list):
        return out
    new_messages: list[Any] = []
    for message in messages:
        if isinstance(message, dict) and isinstance(message.get("content"), list):
            parts: list[Any] = []
            for part in message["content"]:
                image_url = part.get("image_url") if isinstance(part, dict) else None
                url = image_url.get("url") if isinstance(image_url, dict) else None
                if isinstance(image_url, dict) and isinstance(url, str) and len(url) > 200:
                    head, _, data = url.partition(",")
                    short = {**image_url, "url": f"{head},<{len(data)} chars>"}
                    part = {**part, "image_url": short}
                parts.append(part)
            message = {**message, "content": parts}
        new_messages.append(message)
    out["messages"] = new_messages
    return out


class RequestLog:
    """Request numbers, the fault picker that goes with them, and the records, thread-safe."""

    def __init__(self, faults: FaultPlan, seed: int, limit: int) -> None:
        self._lock = threading.Lock()
        self._seed = seed
        self._faults = faults
        self._picker = FaultPicker(faults, seed)
        self._records: deque[RecordedRequest] = deque(maxlen=limit)
        self._seq = 0
        self._script_base = 0
        self._served = 0
        self._totals: dict[str, int] = {}

    def begin(self) -> tuple[int, FaultPicker, int]:
        """Number a new request: ``(seq, fault picker, the seq the fault script counts from)``."""
        with self._lock:
            seq = self._seq
            self._seq += 1
            return seq, self._picker, self._script_base

    def finish(self, record: RecordedRequest) -> None:
        """Store a request's record (before its answer goes out)."""
        with self._lock:
            self._records.append(record)
            if record.status == 200:
                self._served += 1
                self._add_totals(record)

    def _add_totals(self, record: RecordedRequest) -> None:
        totals = self._totals
        for key, value in (
            ("prompt_tokens", record.prompt_tokens),
            ("generation_tokens", record.completion_tokens),
            (f"finished:{record.finish_reason or 'stop'}", 1),
        ):
            totals[key] = totals.get(key, 0) + value

    @property
    def faults(self) -> FaultPlan:
        return self._faults

    def set_faults(self, plan: FaultPlan) -> None:
        """Replace the fault plan; its script counts from the next request number."""
        with self._lock:
            self._faults = plan
            self._picker = FaultPicker(plan, self._seed)
            self._script_base = self._seq

    def reset(self) -> None:
        """Forget the records; numbering (and the fault script) starts again at 0."""
        with self._lock:
            self._records.clear()
            self._seq = 0
            self._script_base = 0
            self._served = 0
            self._totals = {}
            self._picker = FaultPicker(self._faults, self._seed)

    @property
    def records(self) -> list[RecordedRequest]:
        """The records, in completion order (a copy)."""
        with self._lock:
            return list(self._records)

    @property
    def count(self) -> int:
        """Requests numbered so far (counting ones still in progress)."""
        with self._lock:
            return self._seq

    @property
    def totals(self) -> dict[str, int]:
        """What vLLM's ``/metrics`` counters count over answered requests: ``prompt_tokens``,
        ``generation_tokens`` and ``finished:<reason>`` (a copy)."""
        with self._lock:
            return dict(self._totals)

    @property
    def served(self) -> int:
        """Requests answered with 200."""
        with self._lock:
            return self._served
