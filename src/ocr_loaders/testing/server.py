"""The fake DeepSeek-OCR server: real HTTP on loopback, vLLM's or SGLang's routes and rules.

Standard library only (Pillow for rare image formats). One thread per connection
(``ThreadingHTTPServer``, HTTP/1.1 keep-alive) in a background thread; requests are cheap:
images are sized from their headers, and the only per-request work is JSON, base64 and a few
tiktoken calls. See the package docstring for the behaviour and the sources it imitates.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import ipaddress
import json
import random
import select
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from ..defaults import DEFAULT_MODEL
from ..tokens import count_tokens, model_family, text_encoder, vision_tokens
from . import dialects
from .dialects import Flavor
from .faults import FAULT_HEADER, Fault, FaultPicker, FaultPlan, parse_fault
from .images import DataURLError, ImageError, ImageInfo, decode_data_url, sniff_image
from .responders import OCRReply, OCRRequest, Responder, grid_responder

IMAGE_TAG = "<image>\n"
SPECIAL_TOKENS = ("<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>", "<|grounding|>")
"""Grounding tags; DeepSeek-OCR's tokenizer marks them special, so vLLM's default
``skip_special_tokens=True`` removes them from the text (labels and boxes stay)."""
EOS_TEXT = "<｜end▁of▁sentence｜>"
MAX_BODY_BYTES = 64 * 1024 * 1024


def expected_prompt_tokens(width: int, height: int, prompt: str, model: str = DEFAULT_MODEL) -> int:
    """``usage.prompt_tokens`` the fake server reports: BOS + prompt text + vision tokens.

    ``prompt`` is the text part without a leading ``<image>\\n``; text is counted with
    tiktoken ``cl100k_base`` (the project's stand-in for DeepSeek's tokenizer).
    """
    return 1 + count_tokens(prompt) + vision_tokens(width, height, model)


def strip_special_tokens(text: str) -> str:
    """What ``skip_special_tokens=True`` leaves of a grounded answer: the tags removed."""
    for tag in SPECIAL_TOKENS:
        if tag in text:
            text = text.replace(tag, "")
    return text


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
    """The text started with ``<image>\\n`` (what SGLang clients must send)."""
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
class _Trace:
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


class _HTTPError(Exception):
    """Short-circuit: answer with this status and JSON body."""

    def __init__(
        self, status: int, body: Any, headers: Mapping[str, str] | None = None, message: str = ""
    ) -> None:
        super().__init__(message or str(body))
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        self.message = message


class _Dropped(Exception):
    """The connection is gone (reset on purpose, server stopping, or client went away)."""


# --- capacity ---------------------------------------------------------------------------------


class _SlotPool:
    """At most ``n`` requests in service at once; the rest wait in arrival order (FCFS)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._lock = threading.Lock()
        self._waiters: deque[threading.Event] = deque()
        self.busy = 0
        self.max_busy = 0
        self.max_waiting = 0

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def acquire(self, stop: threading.Event, gone: Callable[[], bool] = bool) -> bool:
        """Take a slot (``True``), or give up (``False``) because the server is stopping or
        the client went away while queued (``gone()``: vLLM aborts such requests)."""
        with self._lock:
            if self.busy < self.n and not self._waiters:
                self.busy += 1
                self.max_busy = max(self.max_busy, self.busy)
                return True
            ticket = threading.Event()
            self._waiters.append(ticket)
            self.max_waiting = max(self.max_waiting, len(self._waiters))
        while not ticket.wait(0.05):
            if stop.is_set() or gone():
                break
        with self._lock:
            if ticket.is_set():  # the slot was handed over by release()
                if stop.is_set():
                    self._release_locked()
                    return False
                return True
            self._waiters.remove(ticket)
            return False

    def _release_locked(self) -> None:
        if self._waiters:
            self._waiters.popleft().set()  # hand the slot over; busy is unchanged
        else:
            self.busy -= 1

    def release(self) -> None:
        with self._lock:
            self._release_locked()

    def reset_stats(self) -> None:
        with self._lock:
            self.max_busy = self.busy
            self.max_waiting = len(self._waiters)


# --- HTTP plumbing ------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024
    owner: FakeOCRServer


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


def _client_gone(h: BaseHTTPRequestHandler) -> bool:
    """Whether the client closed its connection: readable with nothing to read means EOF
    (a client waiting for its answer sends nothing more on the connection)."""
    try:
        readable, _, _ = select.select([h.connection], [], [], 0)
        return bool(readable) and h.connection.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def owner(self) -> FakeOCRServer:
        return cast(_HTTPServer, self.server).owner

    def version_string(self) -> str:
        return "uvicorn"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):  # no Nagle delay between headers and body
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # uvicorn (under both vLLM and SGLang) closes a connection idle for 5 s
        self.connection.settimeout(self.owner.keep_alive_timeout)
        self.owner._register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.owner._unregister(self.connection)

    def do_GET(self) -> None:
        self.owner._dispatch(self, "GET")

    def do_POST(self) -> None:
        self.owner._dispatch(self, "POST")

    def do_PUT(self) -> None:
        self.owner._dispatch(self, "PUT")

    def do_DELETE(self) -> None:
        self.owner._dispatch(self, "DELETE")

    # -- helpers used by the server --

    def read_body(self) -> bytes:
        """The request body (Content-Length or chunked); raises ``_HTTPError`` if too big."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            total = 0
            while True:
                try:
                    line = self.rfile.readline(1024)
                except OSError as exc:
                    raise _Dropped(str(exc)) from None
                if not line:
                    raise _Dropped("client closed the connection mid-body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    raise _HTTPError(413, {"detail": "Request Entity Too Large"})
                parts.append(self._read_exact(size))
                self.rfile.readline(1024)
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise _HTTPError(413, {"detail": "Request Entity Too Large"})
        return self._read_exact(length) if length else b""

    def _read_exact(self, n: int) -> bytes:
        try:
            data = self.rfile.read(n)
        except OSError as exc:  # timeout or reset while the body was arriving
            raise _Dropped(str(exc)) from None
        if len(data) < n:
            raise _Dropped("client closed the connection mid-body")
        return data

    def send_bytes(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        try:
            self.send_response(status)
            if payload or status not in (204, 304):
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            # headers and body in one write: one segment for small answers
            self._headers_buffer.append(b"\r\n" + payload)  # type: ignore[attr-defined]
            self.flush_headers()
        except OSError as exc:  # the client went away
            self.close_connection = True
            raise _Dropped(str(exc)) from None

    def send_json(self, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        payload = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.send_bytes(status, payload, "application/json", headers)

    def reset(self) -> None:
        """Close the connection with a TCP RST and no response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        try:
            self.rfile.close()  # drop makefile's reference so close() is immediate
        finally:
            self.connection.close()


# --- the server -------------------------------------------------------------------------------


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"FakeOCRServer only listens on loopback addresses, not {host!r}")


def _elide_images(body: Mapping[str, Any]) -> dict[str, Any]:
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


@dataclass
class _Valid:
    """A validated chat request."""

    model: str
    prompt: str
    raw_text: str
    image: bytes
    info: ImageInfo
    declared_mime: str
    image_first: bool
    image_tag: bool
    max_tokens: int | None
    temperature: float | None
    skip_special_tokens: bool | None
    stream: bool
    include_usage: bool


class FakeOCRServer:
    """A fake vLLM/SGLang DeepSeek-OCR endpoint on loopback, for tests and benchmarks.

    ``responder`` makes the answers (default :func:`grid_responder`); ``models`` are the served
    names (the first is the default and the tokenizer family); ``flavor`` picks vLLM's or
    SGLang's routes, error shapes and messages; ``max_model_len`` is the context.
    ``slots``/``service_time`` simulate a GPU: at most ``slots`` requests in service, each for
    ``service_time`` s plus responder time plus ``time_per_token`` s per output token, the rest
    queued first-come first-served. ``service_jitter`` (a fraction) draws each request's
    service time uniformly from ``service_time * (1 +/- jitter)``, same mean: real pages vary,
    and identical times make every slot finish in lock-step waves. A client that closes its
    connection has its request aborted, queued or in service, as vLLM does. ``faults``
    injects failures (:class:`FaultPlan`), seeded by ``seed``. ``api_key`` requires
    ``Authorization: Bearer <key>`` like ``--api-key``.
    ``full_decode`` decodes every image with Pillow instead of reading headers (slower).
    ``keep_alive_timeout`` closes connections idle that long, as uvicorn does (``None``: never).
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        models: Iterable[str] = (DEFAULT_MODEL,),
        host: str = "127.0.0.1",
        port: int = 0,
        flavor: Flavor = "vllm",
        max_model_len: int = 8192,
        slots: int | None = None,
        service_time: float = 0.0,
        faults: FaultPlan | None = None,
        seed: int = 0,
        time_per_token: float = 0.0,
        service_jitter: float = 0.0,
        api_key: str | None = None,
        full_decode: bool = False,
        enable_custom_logit_processor: bool = True,
        keep_alive_timeout: float | None = 5.0,
        record_limit: int = 100_000,
    ) -> None:
        _check_loopback(host)
        if flavor not in ("vllm", "sglang"):
            raise ValueError(f"flavor must be 'vllm' or 'sglang', got {flavor!r}")
        self.models: tuple[str, ...] = tuple(models)
        if not self.models:
            raise ValueError("FakeOCRServer needs at least one model name")
        if slots is not None and slots < 1:
            raise ValueError("slots must be >= 1 (or None for unlimited)")
        if service_time < 0 or time_per_token < 0:
            raise ValueError("service_time and time_per_token must be >= 0")
        if not 0 <= service_jitter < 1:
            raise ValueError("service_jitter must be in [0, 1)")
        if max_model_len < 2:
            raise ValueError("max_model_len must be >= 2")
        self.responder: Responder = responder or grid_responder()
        self.host = host
        self.flavor: Flavor = flavor
        self.max_model_len = max_model_len
        self.service_time = service_time
        self.time_per_token = time_per_token
        self.service_jitter = service_jitter
        self._jitter_rng = random.Random(seed)
        self.seed = seed
        self.api_key = api_key
        self.full_decode = full_decode
        self.enable_custom_logit_processor = enable_custom_logit_processor
        self.keep_alive_timeout = keep_alive_timeout
        self._script_base = 0
        self._requested_port = port
        self._slots = _SlotPool(slots) if slots is not None else None
        self._faults = faults or FaultPlan()
        self._picker = FaultPicker(self._faults, seed)
        self._lock = threading.Lock()
        self._records: deque[RecordedRequest] = deque(maxlen=record_limit)
        self._seq = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._served = 0
        self.route_hits: Counter[str] = Counter()
        """Requests per path, all routes (probes included)."""
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._created = int(time.time())

    # -- lifecycle --

    def start(self) -> FakeOCRServer:
        """Bind and serve in a background thread; returns ``self``. Idempotent; after
        :meth:`stop`, starts again on the same port."""
        if self._httpd is not None:
            return self
        text_encoder()  # load tiktoken's table now, not inside the first request
        self._stopping.clear()
        cls = _HTTPServer6 if ":" in self.host else _HTTPServer
        httpd = cls((self.host, self._requested_port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._requested_port = int(httpd.server_address[1])  # a restart keeps the port
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-ocr-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: close the listening socket and drop every open connection now."""
        httpd = self._httpd
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeOCRServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        """The bound port (the requested one until started)."""
        if self._httpd is None:
            return self._requested_port
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port`` (no ``/v1``), for the non-OpenAI routes."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"

    # -- configuration at run time --

    @property
    def faults(self) -> FaultPlan:
        return self._faults

    @faults.setter
    def faults(self, plan: FaultPlan | None) -> None:
        """Replace the fault plan; its script counts from the next request number."""
        with self._lock:
            self._faults = plan or FaultPlan()
            self._picker = FaultPicker(self._faults, self.seed)
            self._script_base = self._seq

    # -- statistics --

    @property
    def requests(self) -> list[RecordedRequest]:
        """Chat-completion requests answered so far, in completion order (a copy)."""
        with self._lock:
            return list(self._records)

    @property
    def request_count(self) -> int:
        """Chat-completion requests received (counting ones still in progress)."""
        with self._lock:
            return self._seq

    @property
    def in_flight(self) -> int:
        """HTTP requests being handled right now (any route)."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """Most HTTP requests handled at once since start or ``reset_stats``."""
        with self._lock:
            return self._max_in_flight

    @property
    def slots_busy(self) -> int:
        """Requests holding a simulated GPU slot now (0 without ``slots``)."""
        return self._slots.busy if self._slots else 0

    @property
    def max_slots_busy(self) -> int:
        """Most slots held at once (never more than ``slots``)."""
        return self._slots.max_busy if self._slots else 0

    @property
    def queued(self) -> int:
        """Requests waiting for a slot now."""
        return self._slots.waiting if self._slots else 0

    @property
    def max_queued(self) -> int:
        return self._slots.max_waiting if self._slots else 0

    @property
    def slots(self) -> int | None:
        return self._slots.n if self._slots else None

    def reset_stats(self) -> None:
        """Forget recorded requests and maxima; request numbers (and the fault script and
        fixture numbering) start again at 0."""
        with self._lock:
            self._records.clear()
            self._seq = 0
            self._script_base = 0
            self._served = 0
            self._max_in_flight = self._in_flight
            self.route_hits.clear()
            self._picker = FaultPicker(self._faults, self.seed)
        if self._slots:
            self._slots.reset_stats()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no request is in progress; ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.in_flight == 0:
                return True
            time.sleep(0.01)
        return self.in_flight == 0

    # -- connection bookkeeping (called by the handler) --

    def _register(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)

    def _unregister(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.discard(conn)

    def _wait(self, seconds: float, gone: Callable[[], bool] | None = None) -> None:
        """Sleep, but wake up and drop the request if the server stops or, when ``gone`` is
        given, if the client disconnects (checked every 50 ms)."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self._stopping.wait(left if gone is None else min(left, 0.05)):
                raise _Dropped("server stopping")
            if gone is not None and gone():
                raise _Dropped("client disconnected")

    # -- routing --

    def _error(
        self, status: int, message: str, err_type: str, param: str | None = None
    ) -> _HTTPError:
        return _HTTPError(
            status,
            dialects.error_body(self.flavor, message, err_type, status, param),
            message=message,
        )

    def _dispatch(self, h: _Handler, method: str) -> None:
        path = h.path.split("?", 1)[0]
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            self.route_hits[path] += 1
        try:
            if self._stopping.is_set():
                raise _Dropped("server stopping")
            unauthorized = self._auth_error(h, path)
            if unauthorized is not None:
                if method == "POST":
                    h.read_body()
                h.send_json(401, unauthorized)
            elif method == "POST" and path == "/v1/chat/completions":
                self._chat(h, path)
            else:
                self._other_route(h, method, path)
        except _HTTPError as err:
            with contextlib.suppress(_Dropped):
                h.send_json(err.status, err.body, err.headers)
        except _Dropped:
            h.close_connection = True
            if self._stopping.is_set():
                with contextlib.suppress(OSError):
                    h.reset()
        finally:
            with self._lock:
                self._in_flight -= 1

    def _fake_stats(self) -> dict[str, Any]:
        """``GET /_fake/stats``: chat requests' timings (monotonic seconds) and peaks."""
        chats = [r for r in self.requests if r.path.endswith("/chat/completions")]
        return {
            "chat": [[r.seq, r.status, r.started, r.finished] for r in chats],
            "max_in_flight": self.max_in_flight,
            "max_slots_busy": self.max_slots_busy,
        }

    def _auth_error(self, h: _Handler, path: str) -> dict[str, Any] | None:
        if not self.api_key:
            return None
        if self.flavor == "vllm" and not path.startswith("/v1"):
            return None
        if self.flavor == "sglang" and path in ("/health", "/health_generate", "/metrics", "/ping"):
            return None
        if h.headers.get("Authorization", "") == f"Bearer {self.api_key}":
            return None
        return {"error": "Unauthorized"}

    def _other_route(self, h: _Handler, method: str, path: str) -> None:
        gets: dict[str, Any] = {"/health": None, "/ping": None, "/v1/models": self._models_json}
        if self.flavor == "vllm":
            gets.update({"/version": lambda: {"version": dialects.VLLM_VERSION}, "/metrics": None})
        else:
            gets.update(
                {
                    "/health_generate": None,
                    "/get_model_info": self._model_info,
                    "/model_info": self._model_info,
                    "/get_server_info": self._server_info,
                    "/server_info": self._server_info,
                    "/get_load": self._load,
                }
            )
        if path == "/_fake/stats":  # not a real server route: for benchmarks in other processes
            if method == "POST":
                h.read_body()
                self.reset_stats()
                h.send_json(200, {"reset": True})
            else:
                h.send_json(200, self._fake_stats())
            return
        if method == "POST" and path == "/ping":  # SageMaker-style, both servers
            h.read_body()
            h.send_bytes(200, b"", "application/json")
            return
        if path in gets or path == "/v1/chat/completions":
            if method == "POST":
                h.read_body()
            if method != "GET" or path == "/v1/chat/completions":
                h.send_json(405, {"detail": "Method Not Allowed"}, {"Allow": "GET"})
                return
            if path == "/metrics":
                h.send_bytes(
                    200, self._metrics().encode(), "text/plain; version=0.0.4; charset=utf-8"
                )
                return
            maker = gets[path]
            if maker is None:
                h.send_bytes(200, b"", "application/json")
            else:
                h.send_json(200, maker())
            return
        if self.flavor == "sglang" and method == "GET" and path.startswith("/v1/models/"):
            name = path[len("/v1/models/") :]
            if name in self.models:
                h.send_json(
                    200,
                    dialects.model_card(self.flavor, name, name, self.max_model_len, self._created),
                )
            else:
                h.send_json(
                    404,
                    {
                        "error": {
                            "message": f"The model '{name}' does not exist",
                            "type": "invalid_request_error",
                            "param": "model",
                            "code": "model_not_found",
                        }
                    },
                )
            return
        if method == "POST":
            h.read_body()
        h.send_json(404, {"detail": "Not Found"})

    def _models_json(self) -> dict[str, Any]:
        root = self.models[0]
        return {
            "object": "list",
            "data": [
                dialects.model_card(
                    self.flavor,
                    name,
                    root if self.flavor == "vllm" else name,
                    self.max_model_len,
                    self._created,
                )
                for name in self.models
            ],
        }

    def _model_info(self) -> dict[str, Any]:
        ocr2 = model_family(self.models[0]) == "deepseek-ocr-2"
        return {
            "model_path": self.models[0],
            "tokenizer_path": self.models[0],
            "is_generation": True,
            "preferred_sampling_params": None,
            "weight_version": "default",
            "has_image_understanding": True,
            "has_audio_understanding": False,
            "model_type": "deepseek_vl_v2",
            "architectures": ["DeepseekOCR2ForCausalLM" if ocr2 else "DeepseekOCRForCausalLM"],
        }

    def _server_info(self) -> dict[str, Any]:
        return {
            "model_path": self.models[0],
            "tokenizer_path": self.models[0],
            "served_model_name": self.models[0],
            "host": self.host,
            "port": self.port,
            "context_length": self.max_model_len,
            "enable_multimodal": True,
            "enable_custom_logit_processor": self.enable_custom_logit_processor,
            "max_running_requests": self.slots,
            "api_key": None,
            "internal_states": [{"load": self.slots_busy + self.queued}],
            "version": dialects.SGLANG_VERSION,
        }

    def _load(self) -> list[dict[str, int]]:
        return [
            {
                "dp_rank": 0,
                "num_reqs": self.slots_busy,
                "num_waiting_reqs": self.queued,
                "num_tokens": 0,
            }
        ]

    def _metrics(self) -> str:
        name = self.models[0]
        running = self.slots_busy if self._slots else self.in_flight
        return (
            f'vllm:num_requests_running{{model_name="{name}"}} {float(running)}\n'
            f'vllm:num_requests_waiting{{model_name="{name}"}} {float(self.queued)}\n'
            f'vllm:request_success_total{{model_name="{name}"}} {float(self._served)}\n'
        )

    # -- chat completions --

    def _chat(self, h: _Handler, path: str) -> None:
        with self._lock:
            seq = self._seq
            self._seq += 1
            picker, script_base = self._picker, self._script_base
        trace = _Trace(
            seq, path, {k.lower(): v for k, v in h.headers.items()}, time.time(), time.monotonic()
        )
        # The record is stored before the answer goes out, so a client that has its answer
        # always finds the request in ``requests``.
        try:
            send = self._chat_traced(h, trace, picker, script_base)
        except _HTTPError as err:
            trace.status = err.status
            trace.fields["error"] = err.message or json.dumps(err.body)[:500]
            raise
        except _Dropped as exc:
            trace.status = 0
            trace.fields.setdefault("error", f"dropped: {exc}")
            raise
        except Exception as exc:  # a responder bug: answer 500 like a crashed engine
            trace.status = 500
            trace.fields["error"] = f"{type(exc).__name__}: {exc}"
            raise self._error(500, f"{type(exc).__name__}: {exc}", "InternalServerError") from exc
        finally:
            record = trace.freeze()
            with self._lock:
                self._records.append(record)
                if record.status == 200:
                    self._served += 1
        send()

    def _chat_traced(
        self, h: _Handler, trace: _Trace, picker: FaultPicker, script_base: int
    ) -> Callable[[], None]:
        """Do everything but the final write; return the write. Errors are raised."""
        raw_body = h.read_body()
        forced = trace.headers.get(FAULT_HEADER)
        try:
            fault = parse_fault(forced) if forced else picker.pick(trace.seq - script_base)
        except ValueError as exc:
            raise self._error(400, str(exc), "BadRequestError") from None
        trace.fault = fault
        plan = picker.plan
        if fault == "reset":
            trace.fields["error"] = "connection reset (fault)"
            return h.reset
        if fault in ("500", "503", "429"):
            status = int(fault)
            kind = {
                500: ("Internal server error", "InternalServerError"),
                503: ("Service Unavailable", "ServiceUnavailableError"),
                429: ("Too Many Requests", "RateLimitError"),
            }[status]
            err = self._error(status, kind[0], kind[1])
            if status in (429, 503):
                err.headers["Retry-After"] = plan.retry_after_header()
            raise err
        if fault == "error_200":
            body = dialects.error_body(
                self.flavor, "Internal server error (injected)", "InternalServerError", 500
            )
            trace.status = 200
            trace.fields["error"] = "error object with HTTP 200 (fault)"
            return functools.partial(h.send_json, 200, body)
        if fault == "bad_json":
            trace.status = 200
            trace.fields["error"] = "invalid JSON with HTTP 200 (fault)"
            return functools.partial(
                h.send_bytes,
                200,
                b'{"id": "chatcmpl-broken", "object": "chat.completion", "ch',
                "application/json",
            )
        if fault == "hang":
            self._wait(plan.hang_seconds)

        valid, body = self._validate(h, raw_body, trace)
        vis = vision_tokens(valid.info.width, valid.info.height, valid.model)
        prompt_tokens = 1 + count_tokens(valid.prompt) + vis
        trace.fields.update(vision_tokens=vis, prompt_tokens=prompt_tokens)
        too_long = dialects.context_error(
            self.flavor, self.max_model_len, prompt_tokens, valid.max_tokens
        )
        if too_long:
            raise self._error(
                400,
                too_long,
                "BadRequestError",
                "max_tokens" if self.flavor == "vllm" and valid.max_tokens else None,
            )
        self._check_sampling(body, valid)
        budget = (
            valid.max_tokens
            if valid.max_tokens is not None
            else dialects.default_max_tokens(self.flavor, self.max_model_len, prompt_tokens)
        )
        trace.fields["effective_max_tokens"] = budget

        request = OCRRequest(
            valid.image,
            valid.info.width,
            valid.info.height,
            valid.info.mime,
            valid.prompt,
            valid.model,
            body,
            trace.seq,
            budget,
        )
        content, finish, completion_tokens = self._serve(
            request, valid, fault, trace, functools.partial(_client_gone, h)
        )
        trace.fields.update(
            content=content, finish_reason=finish, completion_tokens=completion_tokens
        )
        trace.status = 200
        if valid.stream:
            return functools.partial(
                self._stream, h, valid, content, finish, prompt_tokens, completion_tokens
            )
        return functools.partial(
            h.send_json,
            200,
            dialects.chat_response(
                self.flavor,
                model=valid.model,
                content=content,
                finish_reason=finish,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            ),
        )

    def _serve(
        self,
        request: OCRRequest,
        valid: _Valid,
        fault: Fault,
        trace: _Trace,
        gone: Callable[[], bool],
    ) -> tuple[str, str, int]:
        """Hold a slot, run the responder, shape the answer: (content, finish, tokens).

        A client that disconnects while its request is queued or in service has the request
        aborted and its slot freed, as vLLM and SGLang do.
        """
        slots = self._slots
        queued_at = time.monotonic()
        if slots is not None and not slots.acquire(self._stopping, gone):
            raise _Dropped("server stopping" if self._stopping.is_set() else "client disconnected")
        started = time.monotonic()
        trace.fields.update(queue_seconds=started - queued_at, service_started=started)
        try:
            service = self.service_time
            if self.service_jitter:
                with self._lock:
                    service *= 1 + self._jitter_rng.uniform(
                        -self.service_jitter, self.service_jitter
                    )
            self._wait(service, gone)
            if fault == "empty":
                reply = OCRReply("")
            else:
                reply = self.responder(request)
                if fault == "length":
                    reply = OCRReply(reply.text or "x", "length", reply.delay)
            raw, finish, n_tokens = self._shape(reply, request.max_tokens)
            self._wait(reply.delay + self.time_per_token * n_tokens, gone)
        finally:
            trace.fields["service_ended"] = time.monotonic()
            if slots is not None:
                slots.release()
        skip = valid.skip_special_tokens is not False
        return (strip_special_tokens(raw) if skip else raw), finish, n_tokens

    @staticmethod
    def _shape(reply: OCRReply, max_tokens: int) -> tuple[str, str, int]:
        """Cut the raw answer at end-of-sequence and at ``max_tokens``; repeat a ``length``
        answer (a loop) until it fills ``max_tokens``."""
        raw = reply.text
        finish = reply.finish_reason or "stop"
        eos = raw.find(EOS_TEXT)
        if eos >= 0:
            raw, finish = raw[:eos], "stop"
        encoder = text_encoder()
        tokens = encoder.encode_ordinary(raw)
        changed = False
        if finish == "length" and tokens and len(tokens) < max_tokens:
            tokens = tokens * (max_tokens // len(tokens) + 1)
            changed = True
        if len(tokens) > max_tokens:
            tokens = tokens[:max_tokens]
            finish = "length"
            changed = True
        if changed:
            raw = encoder.decode(tokens)
        return raw, finish, len(tokens)

    def _stream(
        self,
        h: _Handler,
        valid: _Valid,
        content: str,
        finish: str,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None:
        cid = dialects.completion_id(self.flavor)
        created = int(time.time())
        pieces = [content[i : i + 400] for i in range(0, len(content), 400)] or [""]
        events: list[dict[str, Any]] = [
            dialects.chunk(
                self.flavor, cid, valid.model, created, {"role": "assistant", "content": ""}, None
            )
        ]
        events += [
            dialects.chunk(self.flavor, cid, valid.model, created, {"content": p}, None)
            for p in pieces
            if p
        ]
        events.append(dialects.chunk(self.flavor, cid, valid.model, created, {}, finish))
        if valid.include_usage:
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
            events.append(dialects.chunk(self.flavor, cid, valid.model, created, {}, None, usage))
        frames = [
            b"data: " + json.dumps(e, ensure_ascii=False).encode() + b"\n\n" for e in events
        ] + [b"data: [DONE]\n\n"]
        try:
            h.send_response(200)
            h.send_header("Content-Type", "text/event-stream; charset=utf-8")
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            for frame in frames:
                h.wfile.write(f"{len(frame):x}\r\n".encode() + frame + b"\r\n")
            h.wfile.write(b"0\r\n\r\n")
        except OSError as exc:
            h.close_connection = True
            raise _Dropped(str(exc)) from None

    # -- validation --

    def _bad(self, message: str, param: str | None = None) -> _HTTPError:
        return self._error(400, message, "BadRequestError", param)

    def _validate(
        self, h: _Handler, raw_body: bytes, trace: _Trace
    ) -> tuple[_Valid, dict[str, Any]]:
        """Check the request the way the real server does; raise ``_HTTPError`` if it would
        refuse it. Order: media type, JSON, field types, model, messages, image."""
        ctype = h.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if self.flavor == "sglang" and ctype != "application/json":
            raise self._bad("Unsupported Media Type: Only 'application/json' is allowed")
        if ctype and ctype != "application/json":
            raise self._bad(f"Expected a JSON body (Content-Type application/json), got {ctype!r}")
        try:
            body = json.loads(raw_body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise self._bad(f"JSON decode error: {exc}") from None
        if not isinstance(body, dict):
            raise self._bad("Input should be a valid dictionary or object to extract fields from")
        trace.fields["body"] = _elide_images(body)

        def typed(name: str, kinds: tuple[type, ...], label: str) -> Any:
            value = body.get(name)
            if value is None:
                return None
            if isinstance(value, bool) and bool not in kinds:
                raise self._bad(f"{name}: Input should be a valid {label}", name)
            if not isinstance(value, kinds):
                raise self._bad(f"{name}: Input should be a valid {label}", name)
            return value

        max_completion = typed("max_completion_tokens", (int,), "integer")
        max_tokens_field = typed("max_tokens", (int,), "integer")
        max_tokens = max_completion if max_completion is not None else max_tokens_field
        temperature = typed("temperature", (int, float), "number")
        skip = typed("skip_special_tokens", (bool,), "boolean")
        stream = bool(typed("stream", (bool,), "boolean"))
        stream_options = typed("stream_options", (dict,), "dictionary") or {}
        model = typed("model", (str,), "string")
        trace.fields.update(
            max_tokens=max_tokens, temperature=temperature, skip_special_tokens=skip, stream=stream
        )
        if self.flavor == "vllm":
            xargs = typed("vllm_xargs", (dict,), "dictionary")
            if xargs is not None:
                self._check_xargs(xargs)
                trace.fields["vllm_xargs"] = xargs
        else:
            params = typed("custom_params", (dict,), "dictionary")
            processor = typed("custom_logit_processor", (str,), "string")
            trace.fields.update(custom_params=params, custom_logit_processor=processor is not None)

        if self.flavor == "vllm":
            model = model or self.models[0]
            if model not in self.models:
                trace.fields["model"] = model
                raise self._error(404, dialects.model_not_found(model), "NotFoundError", "model")
        else:  # SGLang serves one model under any name
            model = model or self.models[0]
        trace.fields["model"] = model

        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise self._bad("messages: Field required (a non-empty list of messages)", "messages")
        if len(messages) != 1:
            raise self._bad(
                f"DeepSeek-OCR requests hold exactly one user message, got "
                f"{len(messages)} messages",
                "messages",
            )
        message = messages[0]
        if not isinstance(message, dict) or message.get("role") != "user":
            raise self._bad("The message must have role 'user'", "messages")
        content = message.get("content")
        if not isinstance(content, list):
            raise self._bad(
                "The user message must hold an image_url part and a text part "
                "(content must be a list of parts)",
                "messages",
            )
        texts: list[str] = []
        urls: list[str] = []
        image_first = False
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "image_url":
                image_url = part.get("image_url")
                url = image_url.get("url") if isinstance(image_url, dict) else image_url
                if not isinstance(url, str):
                    raise self._bad("image_url.url must be a string", "messages")
                if not urls and not texts:
                    image_first = True
                urls.append(url)
            else:
                raise self._bad(f"Unsupported content part: {kind!r}", "messages")
        if not urls:
            raise self._bad(
                "The user message has no image_url part: DeepSeek-OCR needs an image", "messages"
            )
        if len(urls) > 1:
            raise self._bad(
                f"At most 1 image(s) may be provided in one prompt, got {len(urls)}.", "messages"
            )
        try:
            declared, image = decode_data_url(urls[0])
        except DataURLError as exc:
            if exc.unsupported and self.flavor == "vllm" and "base64" in str(exc):
                raise self._error(501, str(exc), "NotImplementedError") from None
            raise self._bad(str(exc), "messages") from None
        try:
            info = sniff_image(image, full_decode=self.full_decode)
        except ImageError as exc:
            raise self._bad(f"Failed to load the image: {exc}", "messages") from None
        raw_text = "\n".join(texts)
        image_tag = raw_text.startswith(IMAGE_TAG)
        prompt = raw_text[len(IMAGE_TAG) :] if image_tag else raw_text
        trace.fields.update(
            prompt=prompt,
            raw_text=raw_text,
            image_width=info.width,
            image_height=info.height,
            image_mime=info.mime,
            declared_mime=declared,
            image_bytes=len(image),
            image_sha256=hashlib.sha256(image).hexdigest(),
            image_first=image_first,
            image_tag=image_tag,
        )
        include_usage = bool(stream_options.get("include_usage"))
        return _Valid(
            model,
            prompt,
            raw_text,
            image,
            info,
            declared,
            image_first,
            image_tag,
            max_tokens,
            temperature,
            skip,
            stream,
            include_usage,
        ), body

    def _check_xargs(self, xargs: dict[str, Any]) -> None:
        """vLLM's ``vllm_xargs`` value types, then DeepSeek-OCR's n-gram processor checks
        (``NGramPerReqLogitsProcessor.validate_params``)."""
        for key, value in xargs.items():
            items = value if isinstance(value, list) else [value]
            if not all(isinstance(v, (str, int, float)) for v in items):
                raise self._bad(
                    f"vllm_xargs.{key}: Input should be a valid string, integer, "
                    "number or a list of them",
                    "vllm_xargs",
                )
        for key in ("ngram_size", "window_size"):
            if key in xargs:
                value = xargs[key]
                if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                    raise self._bad(f"`{key}` has to be a strictly positive integer, got {value}.")
        if "whitelist_token_ids" in xargs:
            ids = xargs["whitelist_token_ids"]
            if not isinstance(ids, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in ids
            ):
                raise self._bad(
                    f"`whitelist_token_ids` has to be a sequence of integers, got {ids}."
                )

    def _check_sampling(self, body: Mapping[str, Any], valid: _Valid) -> None:
        """``SamplingParams`` checks that come after the context check."""
        if valid.max_tokens is not None and valid.max_tokens < 1:
            raise self._bad(f"max_tokens must be at least 1, got {valid.max_tokens}.", "max_tokens")
        if valid.temperature is not None and valid.temperature < 0:
            raise self._bad(
                f"temperature must be non-negative, got {float(valid.temperature)}.", "temperature"
            )
        if (
            self.flavor == "sglang"
            and body.get("custom_logit_processor") is not None
            and not self.enable_custom_logit_processor
        ):
            raise self._bad(
                "The server is not configured to enable custom logit processor. "
                "Please set `--enable-custom-logits-processor` to enable this "
                "feature."
            )
