"""The fake DeepSeek-OCR server: real HTTP on loopback, vLLM's or SGLang's routes and rules.

Standard library only (Pillow for rare image formats). One thread per connection
(``ThreadingHTTPServer``, HTTP/1.1 keep-alive) in a background thread; requests are cheap:
images are sized from their headers, and the only per-request work is JSON, base64 and a few
tiktoken calls. See the package docstring for the behaviour and the sources it imitates.

This module holds the server's life cycle, settings and statistics, and sends each request to
its route; the pieces are :mod:`.plumbing` (HTTP), :mod:`.capacity` (slots, queue, service
time), :mod:`.validation` (vLLM/SGLang checks), :mod:`.chat` (chat completions),
:mod:`.routes` (every other route) and :mod:`.recording` (what was asked and answered).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterable

from .._defaults import DEFAULT_MODEL
from .._tokens import text_encoder
from .capacity import Capacity
from .chat import ChatRoute
from .dialects import Flavor
from .faults import FaultPlan
from .plumbing import (
    Connections,
    Dropped,
    Handler,
    HTTPError,
    HTTPServer,
    HTTPServer6,
    check_loopback,
)
from .recording import RecordedRequest, RequestLog
from .responders import Responder, grid_responder
from .routes import InfoRoutes, auth_error
from .versions import CONTEXT_STYLES, SGLANG_VERSIONS, ContextStyle, default_style


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
    ``context_style`` picks which real server's context-length checks and messages to
    reproduce (``vllm-0.26`` by default for vLLM; ``vllm-0.33``, ``vllm-0.11.1``; ``sglang``
    for SGLang; see :mod:`.versions`); ``list_max_model_len=False`` leaves ``max_model_len``
    out of ``/v1/models``. SGLang: ``enable_custom_logit_processor`` is its server flag (off by
    default, as in SGLang), ``sglang_version`` picks the wording of its image-placeholder
    refusal (``0.5.23``, ``0.5.6``, ``0.5.5``).
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
        enable_custom_logit_processor: bool = False,
        context_style: ContextStyle | None = None,
        list_max_model_len: bool = True,
        sglang_version: str = "0.5.23",
        keep_alive_timeout: float | None = 5.0,
        record_limit: int = 100_000,
    ) -> None:
        check_loopback(host)
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
        style = context_style or default_style(flavor)
        if style not in CONTEXT_STYLES or (style == "sglang") != (flavor == "sglang"):
            raise ValueError(f"context_style {style!r} does not fit flavor {flavor!r}")
        if sglang_version not in SGLANG_VERSIONS:
            raise ValueError(f"sglang_version must be one of {', '.join(SGLANG_VERSIONS)}")
        self.responder: Responder = responder or grid_responder()
        self.host = host
        self.flavor: Flavor = flavor
        self.max_model_len = max_model_len
        self.service_time = service_time
        self.time_per_token = time_per_token
        self.service_jitter = service_jitter
        self.seed = seed
        self.api_key = api_key
        self.full_decode = full_decode
        self.enable_custom_logit_processor = enable_custom_logit_processor
        self.context_style: ContextStyle = style
        self.list_max_model_len = list_max_model_len
        self.sglang_version = sglang_version
        self.keep_alive_timeout = keep_alive_timeout
        self._requested_port = port
        self._stopping = threading.Event()
        self._capacity = Capacity(slots, self._stopping, seed)
        self._log = RequestLog(faults or FaultPlan(), seed, record_limit)
        self._chat = ChatRoute(self, self._capacity, self._log)
        self._info = InfoRoutes(self, self._log)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._max_in_flight = 0
        self.route_hits: Counter[str] = Counter()
        """Requests per path, all routes (probes included)."""
        self._conns = Connections()
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> FakeOCRServer:
        """Bind and serve in a background thread; returns ``self``. Idempotent; after
        :meth:`stop`, starts again on the same port."""
        if self._httpd is not None:
            return self
        text_encoder()  # load tiktoken's table now, not inside the first request
        self._stopping.clear()
        cls = HTTPServer6 if ":" in self.host else HTTPServer
        httpd = cls(
            (self.host, self._requested_port),
            self._dispatch,
            self._conns,
            self.keep_alive_timeout,
        )
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
        self._conns.shutdown_all()
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
        return self._log.faults

    @faults.setter
    def faults(self, plan: FaultPlan | None) -> None:
        """Replace the fault plan; its script counts from the next request number."""
        self._log.set_faults(plan or FaultPlan())

    # -- statistics --

    @property
    def requests(self) -> list[RecordedRequest]:
        """Chat-completion requests answered so far, in completion order (a copy)."""
        return self._log.records

    @property
    def request_count(self) -> int:
        """Chat-completion requests received (counting ones still in progress)."""
        return self._log.count

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
        return self._capacity.busy

    @property
    def max_slots_busy(self) -> int:
        """Most slots held at once (never more than ``slots``)."""
        return self._capacity.max_busy

    @property
    def queued(self) -> int:
        """Requests waiting for a slot now."""
        return self._capacity.waiting

    @property
    def max_queued(self) -> int:
        return self._capacity.max_waiting

    @property
    def slots(self) -> int | None:
        pool = self._capacity.pool
        return pool.n if pool else None

    def reset_stats(self) -> None:
        """Forget recorded requests and maxima; request numbers (and the fault script and
        fixture numbering) start again at 0."""
        with self._lock:
            self._max_in_flight = self._in_flight
            self.route_hits.clear()
        self._log.reset()
        self._capacity.reset_stats()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no request is in progress; ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.in_flight == 0:
                return True
            time.sleep(0.01)
        return self.in_flight == 0

    # -- routing --

    def _dispatch(self, h: Handler, method: str) -> None:
        path = h.path.split("?", 1)[0]
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            self.route_hits[path] += 1
        try:
            if self._stopping.is_set():
                raise Dropped("server stopping")
            unauthorized = auth_error(self, h, path)
            if unauthorized is not None:
                if method == "POST":
                    h.read_body()
                h.send_json(401, unauthorized)
            elif method == "POST" and path == "/v1/chat/completions":
                self._chat.handle(h, path)
            else:
                self._info.handle(h, method, path)
        except HTTPError as err:
            with contextlib.suppress(Dropped):
                h.send_json(err.status, err.body, err.headers)
        except Dropped:
            h.close_connection = True
            if self._stopping.is_set():
                with contextlib.suppress(OSError):
                    h.reset()
        finally:
            with self._lock:
                self._in_flight -= 1
