"""The wire format of one DeepSeek-OCR request on an OpenAI-compatible server.

One request per page, exactly as the servers want it (docs/usage.md): the image part first, the
prompt, ``temperature=0``, ``skip_special_tokens=False`` so the layout tags survive, and
``max_tokens`` = the context left after the page's prompt. Dialects differ only in the
repetition guard (``vllm_xargs`` vs SGLang's ``custom_params``) and where ``<image>`` goes.

Answers are read here too, and every way a request can go wrong is sorted into one of three
faults: :class:`Retryable` (try again, maybe elsewhere), :class:`ContextTooLong` (try again with
a smaller ``max_tokens``) and :class:`PageFailure` (this page cannot succeed).
"""

from __future__ import annotations

import base64
import email.utils
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._defaults import ServerDialect
from .._errors import ConfigError, EndpointError
from .._model import PageImage
from .._tokens import count_tokens, vision_tokens
from .settings import EndpointSettings

if TYPE_CHECKING:
    import openai


def normalize_base_url(url: str) -> str:
    """``http://host:8000`` -> ``http://host:8000/v1`` (the OpenAI routes' prefix)."""
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://", url):
        raise ConfigError(f"base_url must start with http:// or https://, got {url!r}")
    return url if re.search(r"/v\d+$", url) else url + "/v1"


def prompt_token_bound(prompt: str) -> int:
    """A safe upper bound of the prompt's text tokens on DeepSeek's tokenizer (+ template)."""
    return 2 * count_tokens(prompt) + 64


def max_tokens_for(page: PageImage, settings: EndpointSettings, prompt: str) -> int:
    """Output budget: the context left after the image and the prompt, never more."""
    budget = (
        settings.max_model_len
        - vision_tokens(page.image_width, page.image_height, settings.model)
        - prompt_token_bound(prompt)
    )
    return max(16, budget)


@dataclass(frozen=True, slots=True)
class Guard:
    """The repetition guard of one attempt (``None`` values: no guard)."""

    ngram_size: int | None
    window_size: int | None


def build_request(
    page: PageImage,
    settings: EndpointSettings,
    dialect: ServerDialect,
    prompt: str,
    guard: Guard,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """Keyword arguments of ``chat.completions.create`` for one page (a pure function)."""
    data_uri = f"data:{page.mime};base64,{base64.b64encode(page.image).decode('ascii')}"
    text = prompt if dialect == "vllm" else f"<image>\n{prompt}"
    extra: dict[str, Any] = {"skip_special_tokens": False}
    if guard.ngram_size is not None and guard.window_size is not None:
        params = {
            "ngram_size": guard.ngram_size,
            "window_size": guard.window_size,
            "whitelist_token_ids": list(settings.whitelist_token_ids),
        }
        if dialect == "vllm":
            extra["vllm_xargs"] = params
        elif settings.sglang_logit_processor:
            extra["custom_logit_processor"] = settings.sglang_logit_processor
            extra["custom_params"] = params
    return {
        "model": settings.model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": data_uri}},
                    {"type": "text", "text": text},
                ],
            }
        ],
        "temperature": 0,
        "max_tokens": max_tokens
        if max_tokens is not None
        else max_tokens_for(page, settings, prompt),
        "extra_body": extra,
    }


@dataclass(frozen=True, slots=True)
class Answer:
    """What one completion said about one page."""

    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None


class Retryable(Exception):
    """A fault worth another try; ``delay`` overrides the backoff (Retry-After)."""

    def __init__(
        self, message: str, *, connection: bool = False, delay: float | None = None
    ) -> None:
        super().__init__(message)
        self.connection = connection
        self.delay = delay


class ContextTooLong(Exception):
    """The server refused ``max_tokens``; ``prompt_tokens`` (if it said) sizes the next try."""

    def __init__(self, message: str, prompt_tokens: int | None) -> None:
        super().__init__(f"context too long: {message}")
        self.prompt_tokens = prompt_tokens


class PageFailure(Exception):
    """This page cannot succeed (bad request for this image, retries exhausted)."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


def parse_completion(body: bytes) -> Answer:
    """Read a chat.completion JSON body; raise :class:`Retryable` for bodies that are faults."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise Retryable(f"invalid JSON in the response ({exc})") from exc
    if not isinstance(data, dict):
        raise Retryable("response is not a JSON object")
    if "error" in data and not data.get("choices"):
        err = data["error"]
        message = err.get("message", err) if isinstance(err, dict) else err
        raise Retryable(f"server returned an error body: {message}")
    if data.get("object") == "error":
        raise Retryable(f"server returned an error body: {data.get('message')}")
    choices = data.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        raise Retryable("response has no choices")
    message = choices[0].get("message") or {}
    content = message.get("content") or ""
    usage = data.get("usage") or {}
    return Answer(
        text=content if isinstance(content, str) else str(content),
        finish_reason=choices[0].get("finish_reason"),
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
    )


async def complete(
    client: openai.AsyncOpenAI, request: dict[str, Any], url: str, timeout: float
) -> Answer:
    """Send one request (keyword arguments of :func:`build_request`) and read the answer,
    raising one of this module's faults, or :class:`EndpointError` for a request the server
    will never take (auth, unknown model)."""
    import openai

    try:
        raw = await client.chat.completions.with_raw_response.create(**request)
        body = raw.http_response.content
    except openai.APITimeoutError as exc:
        raise Retryable(f"timed out after {timeout:.0f} s") from exc
    except openai.APIConnectionError as exc:
        raise Retryable(f"connection failed: {_cause(exc)}", connection=True) from exc
    except openai.APIStatusError as exc:
        status = exc.status_code
        message = _error_message(exc)
        if status == 429 or status >= 500 or status == 408:
            raise Retryable(
                f"HTTP {status}: {message}", delay=retry_after(exc.response.headers)
            ) from exc
        if status == 400:
            tokens = prompt_tokens_from_error(message)
            if "context length" in message or "max_tokens" in message or tokens:
                raise ContextTooLong(message, tokens) from exc
            raise PageFailure(f"HTTP 400: {message}", 1) from exc
        raise EndpointError(f"{url} rejected the request: HTTP {status}: {message}") from exc
    except openai.APIError as exc:  # unreadable bodies and other protocol faults
        raise Retryable(f"bad response ({exc})") from exc
    return parse_completion(body)


_CONTEXT_RES = (
    re.compile(r"has (\d+) input tokens"),
    re.compile(r"\((\d+) in the messages"),
    re.compile(r"prompt \(length (\d+)\)"),
)
"""How vLLM and SGLang word "the prompt alone has N tokens" in a 400 answer."""


def prompt_tokens_from_error(message: str) -> int | None:
    """The prompt's token count from a context-length error message, if it gives one."""
    for pattern in _CONTEXT_RES:
        m = pattern.search(message)
        if m:
            return int(m.group(1))
    return None


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (seconds or an HTTP date), if any.
    ``httpx.Headers`` is such a mapping, case-insensitive."""
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _cause(exc: BaseException) -> str:
    inner = exc.__cause__ or exc.__context__
    return f"{type(inner).__name__}: {inner}" if inner else str(exc)


def _error_message(exc: openai.APIError) -> str:
    """The server's own message: vLLM nests it in ``error``, SGLang puts it at the top."""
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if body.get("message"):
            return str(body["message"])
    return exc.message


__all__ = [
    "Answer",
    "ContextTooLong",
    "Guard",
    "PageFailure",
    "Retryable",
    "build_request",
    "complete",
    "max_tokens_for",
    "normalize_base_url",
    "parse_completion",
    "prompt_token_bound",
    "prompt_tokens_from_error",
    "retry_after",
]
