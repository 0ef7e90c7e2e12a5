"""The fake server's routes other than chat completions: health, models, version, metrics,
vLLM's ``/tokenize``, SGLang's info routes, the API-key check, and the fake's own
``/_fake/stats``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from .._tokens import model_family, vision_tokens
from . import dialects
from .images import DataURLError, ImageError, ImageInfo, decode_data_url, sniff_image
from .plumbing import Handler
from .recording import RecordedRequest, RequestLog
from .tokenizer import tokenize
from .validation import ChatRules
from .versions import server_version

SGLANG_OPEN_PATHS = frozenset({"/health", "/health_generate", "/metrics", "/ping"})
"""SGLang paths an API key does not guard (vLLM guards only ``/v1`` paths)."""


class ServerView(ChatRules, Protocol):
    """What these routes read of the server."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def api_key(self) -> str | None: ...
    @property
    def list_max_model_len(self) -> bool: ...
    @property
    def slots(self) -> int | None: ...
    @property
    def slots_busy(self) -> int: ...
    @property
    def max_slots_busy(self) -> int: ...
    @property
    def queued(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def max_in_flight(self) -> int: ...
    @property
    def requests(self) -> list[RecordedRequest]: ...
    def reset_stats(self) -> None: ...


def auth_error(server: ServerView, h: Handler, path: str) -> dict[str, Any] | None:
    """The 401 body when the request lacks the API key this path needs, else ``None``."""
    if not server.api_key:
        return None
    if server.flavor == "vllm" and not path.startswith("/v1"):
        return None
    if server.flavor == "sglang" and path in SGLANG_OPEN_PATHS:
        return None
    if h.headers.get("Authorization", "") == f"Bearer {server.api_key}":
        return None
    return {"error": "Unauthorized"}


class InfoRoutes:
    """Every route but ``POST /v1/chat/completions``, for one server."""

    def __init__(self, server: ServerView, log: RequestLog) -> None:
        self._server = server
        self._log = log
        self._created = int(time.time())

    def handle(self, h: Handler, method: str, path: str) -> None:
        """Answer ``method path`` (a wrong method on a known path is 405, else 404)."""
        server = self._server
        gets: dict[str, Callable[[], Any] | None] = {
            "/health": None,
            "/ping": None,
            "/v1/models": self._models,
        }
        if server.flavor == "vllm":
            gets.update({"/version": self._version, "/metrics": None})
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
                server.reset_stats()
                h.send_json(200, {"reset": True})
            else:
                h.send_json(200, self._fake_stats())
            return
        if server.flavor == "vllm" and path == "/tokenize" and method == "POST":
            self._tokenize(h)
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
        if server.flavor == "sglang" and method == "GET" and path.startswith("/v1/models/"):
            self._model(h, path[len("/v1/models/") :])
            return
        if method == "POST":
            h.read_body()
        h.send_json(404, {"detail": "Not Found"})

    def _model(self, h: Handler, name: str) -> None:
        """SGLang's ``GET /v1/models/{model}``."""
        server = self._server
        if name in server.models:
            card = dialects.model_card(server.flavor, name, name, self._listed_len(), self._created)
            h.send_json(200, card)
            return
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

    def _fake_stats(self) -> dict[str, Any]:
        """``GET /_fake/stats``: chat requests' timings (monotonic seconds) and peaks."""
        server = self._server
        chats = [r for r in server.requests if r.path.endswith("/chat/completions")]
        return {
            "chat": [[r.seq, r.status, r.started, r.finished] for r in chats],
            "max_in_flight": server.max_in_flight,
            "max_slots_busy": server.max_slots_busy,
        }

    def _version(self) -> dict[str, str]:
        server = self._server
        return {"version": server_version(server.context_style, server.sglang_version)}

    def _listed_len(self) -> int | None:
        server = self._server
        return server.max_model_len if server.list_max_model_len else None

    def _models(self) -> dict[str, Any]:
        server = self._server
        root = server.models[0]
        return {
            "object": "list",
            "data": [
                dialects.model_card(
                    server.flavor,
                    name,
                    root if server.flavor == "vllm" else name,
                    self._listed_len(),
                    self._created,
                )
                for name in server.models
            ],
        }

    def _model_info(self) -> dict[str, Any]:
        model = self._server.models[0]
        ocr2 = model_family(model) == "deepseek-ocr-2"
        return {
            "model_path": model,
            "tokenizer_path": model,
            "is_generation": True,
            "preferred_sampling_params": None,
            "weight_version": "default",
            "has_image_understanding": True,
            "has_audio_understanding": False,
            "model_type": "deepseek_vl_v2",
            "architectures": ["DeepseekOCR2ForCausalLM" if ocr2 else "DeepseekOCRForCausalLM"],
        }

    def _server_info(self) -> dict[str, Any]:
        server = self._server
        return {
            "model_path": server.models[0],
            "tokenizer_path": server.models[0],
            "served_model_name": server.models[0],
            "host": server.host,
            "port": server.port,
            "context_length": server.max_model_len,
            "enable_multimodal": True,
            "enable_custom_logit_processor": server.enable_custom_logit_processor,
            "max_running_requests": server.slots,
            "api_key": None,
            "internal_states": [{"load": server.slots_busy + server.queued}],
            "version": server_version(server.context_style, server.sglang_version),
        }

    def _load(self) -> list[dict[str, int]]:
        server = self._server
        return [
            {
                "dp_rank": 0,
                "num_reqs": server.slots_busy,
                "num_waiting_reqs": server.queued,
                "num_tokens": 0,
            }
        ]

    def _metrics(self) -> str:
        """vLLM's Prometheus text: the gauges and counters clients read (the real server has
        many more). Without simulated slots, "running" is every HTTP request in flight but this
        scrape, which the real server does not count either."""
        server = self._server
        name = server.models[0]
        running = server.slots_busy if server.slots is not None else max(0, server.in_flight - 1)
        totals = self._log.totals
        label = f'model_name="{name}"'
        lines = [
            f"vllm:num_requests_running{{{label}}} {float(running)}",
            f"vllm:num_requests_waiting{{{label}}} {float(server.queued)}",
            f"vllm:prompt_tokens_total{{{label}}} {float(totals.get('prompt_tokens', 0))}",
            f"vllm:generation_tokens_total{{{label}}} {float(totals.get('generation_tokens', 0))}",
        ]
        for reason in ("stop", "length", "abort"):
            count = float(totals.get(f"finished:{reason}", 0))
            lines.append(
                f'vllm:request_success_total{{finished_reason="{reason}",{label}}} {count}'
            )
        return "\n".join(lines) + "\n"

    def _tokenize(self, h: Handler) -> None:
        """vLLM's ``POST /tokenize``: ``{"model", "messages" | "prompt", "return_token_strs"}``
        -> ``count``, ``max_model_len``, ``tokens`` (and ``token_strs`` when asked)."""
        server = self._server
        try:
            body = json.loads(h.read_body() or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            model = body.get("model") or server.models[0]
            if model not in server.models:
                h.send_json(
                    404,
                    dialects.error_body(
                        "vllm", dialects.model_not_found(model), "NotFoundError", 404, "model"
                    ),
                )
                return
            prompt, image = _tokenize_input(body)
        except (ValueError, DataURLError, ImageError) as exc:
            h.send_json(400, dialects.error_body("vllm", str(exc), "BadRequestError", 400))
            return
        vis = None if image is None else vision_tokens(image.width, image.height, model)
        ids, strs = tokenize(prompt, vis)
        if body.get("add_special_tokens") is False:
            ids, strs = ids[1:], strs[1:]
        h.send_json(
            200,
            {
                "count": len(ids),
                "max_model_len": server.max_model_len,
                "tokens": ids,
                "token_strs": strs if body.get("return_token_strs") else None,
            },
        )


def _tokenize_input(body: dict[str, Any]) -> tuple[str, ImageInfo | None]:
    """The prompt text and the image (its size) of a ``/tokenize`` body."""
    if "prompt" in body:
        return str(body["prompt"]), None
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("either 'prompt' or 'messages' is required")
    text: list[str] = []
    image: ImageInfo | None = None
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            text.append(content)
            continue
        for part in content if isinstance(content, list) else []:
            if part.get("type") == "text":
                text.append(str(part.get("text", "")))
            elif part.get("type") == "image_url":
                _, data = decode_data_url(str(part.get("image_url", {}).get("url", "")))
                image = sniff_image(data)
    return "".join(text), image
