"""The wire format of one DeepSeek-OCR request on an OpenAI-compatible server.

One request per page, exactly as the servers want it (docs/usage.md): the image part first, the
prompt, ``temperature=0``, ``skip_special_tokens=False`` so the layout tags survive, and
``max_tokens`` = the context left after the page's prompt. Dialects differ only in the
repetition guard (``vllm_xargs`` vs SGLang's ``custom_logit_processor`` + ``custom_params``);
both get the plain prompt, since both servers put ``<image>`` before it themselves.

Answers are read here too, and every way a request can go wrong is sorted into one of three
faults: :class:`Retryable` (try again, maybe elsewhere), :class:`ContextTooLong` (try again with
a smaller ``max_tokens``), :class:`GuardRefused` (SGLang without the custom-processor flag:
resend without the guard) and :class:`PageFailure` (this page cannot succeed).
"""

from __future__ import annotations

import email.utils
import functools
import inspect
import json
import re
import time
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._defaults import ServerDialect
from .._errors import ConfigError, EndpointError
from .._grounding import find_repetition_loop, may_end_in_loop
from .._model import PageImage
from .._tokens import vision_tokens
from .body import InlineImage, RequestBody, request_body
from .output_policy import Answer, Guard, TryFailed
from .settings import EndpointSettings

if TYPE_CHECKING:
    import openai


def normalize_base_url(url: str) -> str:
    """``http://host:8000`` -> ``http://host:8000/v1`` (the OpenAI routes' prefix)."""
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://", url):
        raise ConfigError(f"base_url must start with http:// or https://, got {url!r}")
    return url if re.search(r"/v\d+$", url) else url + "/v1"


SPECIAL_TOKENS = ("<|grounding|>", "<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>")
"""Tags DeepSeek's tokenizer holds as single tokens."""
TEMPLATE_TOKENS = 32
"""Room for what the servers add around the prompt: BOS, ``<image>``, newlines and the chat
template's role markers (a handful of tokens on vLLM and SGLang)."""


def prompt_token_bound(prompt: str) -> int:
    """A safe upper bound of the prompt's text tokens on DeepSeek's tokenizer, template
    included, with no tokenizer: byte-level BPE never makes more tokens than UTF-8 bytes, and
    each special tag is one token."""
    specials = 0
    for tag in SPECIAL_TOKENS:
        specials += prompt.count(tag)
        prompt = prompt.replace(tag, "")
    return len(prompt.encode("utf-8")) + specials + TEMPLATE_TOKENS


MIN_MAX_TOKENS = 16


@dataclass(frozen=True, slots=True)
class Sizing:
    """How to size one page's ``max_tokens`` on any endpoint: its context minus ``reserve``
    (the page's vision tokens and the prompt's bound), and never above ``cap`` (set after a
    refusal, so a page is never asked again for as much as was refused)."""

    reserve: int
    cap: int | None = None

    def max_tokens(self, max_model_len: int) -> int:
        budget = max_model_len - self.reserve
        if self.cap is not None:
            budget = min(budget, self.cap)
        return max(MIN_MAX_TOKENS, budget)


def sizing_for(page: PageImage, settings: EndpointSettings, prompt: str) -> Sizing:
    """The :class:`Sizing` of one page and prompt."""
    vision = vision_tokens(page.image_width, page.image_height, settings.model)
    return Sizing(vision + prompt_token_bound(prompt))


def max_tokens_for(
    page: PageImage, settings: EndpointSettings, prompt: str, max_model_len: int | None = None
) -> int:
    """Output budget: the context left after the image and the prompt, never more.
    ``max_model_len`` defaults to the settings' (the context assumed until a server says)."""
    limit = settings.max_model_len if max_model_len is None else max_model_len
    return sizing_for(page, settings, prompt).max_tokens(limit)


SGLANG_PROCESSOR_CLASS = (
    "sglang.srt.sampling.custom_logit_processor",
    "DeepseekOCRNoRepeatNGramLogitProcessor",
)
"""The n-gram processor SGLang ships for DeepSeek-OCR (from SGLang 0.5.5)."""


def class_reference_pickle(module: str, name: str) -> bytes:
    """A protocol-4 pickle that only names a class (what ``dill.dumps`` writes for an
    importable class): PROTO 4, SHORT_BINUNICODE module, SHORT_BINUNICODE name,
    STACK_GLOBAL, STOP."""
    out = bytearray(b"\x80\x04")
    for text in (module, name):
        raw = text.encode("utf-8")
        if len(raw) > 255:
            raise ValueError(f"name too long for SHORT_BINUNICODE: {text!r}")
        out += b"\x8c" + bytes([len(raw)]) + raw
    out += b"\x93."
    return bytes(out)


def sglang_ngram_processor() -> str:
    """``DeepseekOCRNoRepeatNGramLogitProcessor.to_str()`` built without SGLang installed:
    ``{"callable": "<hex of the pickle>"}``, which SGLang turns back into the class with
    ``dill.loads(bytes.fromhex(...))``."""
    return json.dumps({"callable": class_reference_pickle(*SGLANG_PROCESSOR_CLASS).hex()})


def build_request(
    page: PageImage,
    settings: EndpointSettings,
    dialect: ServerDialect,
    prompt: str,
    guard: Guard,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """The request for one page (a pure function): the chat-completions fields, the servers'
    own fields under ``extra_body``, and the image as an :class:`InlineImage` that
    :func:`.body.request_body` writes out. The balancer sets ``max_tokens`` again for the endpoint
    it picks (:class:`Sizing`)."""
    # the plain prompt for both: vLLM and SGLang's deepseek-ocr template insert <image> themselves
    text = prompt
    extra: dict[str, Any] = {"skip_special_tokens": False}
    if guard.ngram_size is not None and guard.window_size is not None:
        params = {
            "ngram_size": guard.ngram_size,
            "window_size": guard.window_size,
            "whitelist_token_ids": list(settings.whitelist_token_ids),
        }
        if dialect == "vllm":
            extra["vllm_xargs"] = params
        else:
            extra["custom_logit_processor"] = (
                settings.sglang_logit_processor or sglang_ngram_processor()
            )
            extra["custom_params"] = params
    return {
        "model": settings.model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": InlineImage(page.mime, page.image)}},
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


class Retryable(Exception):
    """A fault worth another try; ``delay`` overrides the backoff (Retry-After)."""

    def __init__(
        self, message: str, *, connection: bool = False, delay: float | None = None
    ) -> None:
        super().__init__(message)
        self.connection = connection
        self.delay = delay


class ContextTooLong(Exception):
    """The server refused ``max_tokens`` for its context. ``limit`` is the context it named,
    ``prompt_tokens`` the whole prompt's size when the message gives it (image included),
    ``prompt_alone`` says the prompt by itself does not fit (no ``max_tokens`` helps), and
    ``sent`` is the refused ``max_tokens`` (set by the balancer)."""

    def __init__(
        self,
        message: str,
        limit: int | None = None,
        prompt_tokens: int | None = None,
        *,
        prompt_alone: bool = False,
    ) -> None:
        super().__init__(f"context too long: {message}")
        self.limit = limit
        self.prompt_tokens = prompt_tokens
        self.prompt_alone = prompt_alone
        self.sent: int | None = None


class GuardRefused(Exception):
    """SGLang without ``--enable-custom-logit-processor`` refused the n-gram guard."""


class PageFailure(TryFailed):
    """This page cannot succeed (bad request for this image, retries exhausted)."""


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
    client: openai.AsyncOpenAI,
    request: dict[str, Any],
    url: str,
    timeout: float,
    *,
    stream: bool = False,
) -> Answer:
    """Send one request (from :func:`build_request`) as a ready body through the OpenAI
    client's ``post`` (its auth, timeouts and errors, without its copy of the request) and
    read the answer, raising one of this module's faults, or :class:`EndpointError` for a
    request the server will never take (auth, unknown model). ``stream``: read the answer as
    it is generated and stop at a repetition loop (:func:`read_stream`)."""
    import httpx
    import openai
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    fields = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
    body = request_body(request, **fields)
    try:
        if stream:
            chunks = await client.post(
                "/chat/completions",
                cast_to=ChatCompletion,
                stream=True,
                stream_cls=openai.AsyncStream[ChatCompletionChunk],
                **_raw_body(body),
            )
            return await read_stream(chunks)
        response = await client.post("/chat/completions", cast_to=httpx.Response, **_raw_body(body))
        answer = response.content
    except openai.APIError as exc:
        raise _fault(exc, url, timeout) from exc
    except httpx.HTTPError as exc:  # a stream cut mid-answer surfaces as httpx's own error
        raise Retryable(f"the answer stream broke: {_cause(exc)}", connection=True) from exc
    return parse_completion(answer)


def _raw_body(body: RequestBody) -> dict[str, Any]:
    """How the OpenAI client takes a ready body: streamed in pieces with its length where
    ``post`` takes ``content`` (3.x), else whole as ``body`` (sent as is from 1.100 on)."""
    if _post_takes_content():
        return {
            "content": body.stream(),
            "options": {"headers": {"Content-Length": str(len(body))}},
        }
    return {"body": bytes(body)}


@functools.cache
def _post_takes_content() -> bool:
    import openai

    return "content" in inspect.signature(openai.AsyncOpenAI.post).parameters


LOOP_CHECK_CHARS = 400
"""A streamed answer is checked for a repetition loop each time it grows by this much (a
microseconds-cheap probe, :func:`may_end_in_loop`, then the full test when it says yes): a
loop is stopped within a few hundred characters of its start, a second or so of a slot."""
LOOP_WINDOW = 4000
"""How much of the answer's end each check reads (a loop runs to the end)."""


async def read_stream(chunks: AsyncIterable[Any]) -> Answer:
    """Read a streamed answer. When its end is a repetition loop the stream is closed at once
    (the server aborts the request and frees its slot) and the answer so far comes back with
    ``finish_reason="length"``, as if it had run to ``max_tokens``: the output policy then
    retries it with a tighter guard seconds, not minutes, later."""
    parts: list[str] = []
    finish: str | None = None
    usage: Any = None
    size = checked = 0
    try:
        async for chunk in chunks:
            usage = getattr(chunk, "usage", None) or usage
            for choice in getattr(chunk, "choices", None) or []:
                piece = getattr(choice.delta, "content", None) if choice.delta else None
                if piece:
                    parts.append(piece)
                    size += len(piece)
                finish = choice.finish_reason or finish
            if size - checked >= LOOP_CHECK_CHARS:
                checked = size
                text = "".join(parts)
                parts = [text]
                end = text[-LOOP_WINDOW:]
                if may_end_in_loop(end) and find_repetition_loop(end) is not None:
                    return Answer(text, "length", None, None)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            await close()
    if finish is None:
        raise Retryable("the answer stream ended without a finish reason")
    return Answer(
        text="".join(parts),
        finish_reason=finish,
        prompt_tokens=getattr(usage, "prompt_tokens", None),
        completion_tokens=getattr(usage, "completion_tokens", None),
    )


def _fault(exc: openai.APIError, url: str, timeout: float) -> Exception:
    """This module's fault for an error of the OpenAI client (one map for every path)."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return Retryable(f"timed out after {timeout:.0f} s")
    if isinstance(exc, openai.APIConnectionError):
        return Retryable(f"connection failed: {_cause(exc)}", connection=True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = _error_message(exc)
        if status == 429 or status >= 500 or status == 408:
            return Retryable(f"HTTP {status}: {message}", delay=retry_after(exc.response.headers))
        if status == 400:
            if GUARD_REFUSED in message:
                return GuardRefused(message)
            refusal = context_refusal(message)
            if refusal is not None:
                return refusal
            return PageFailure(f"HTTP 400: {message}", 1)
        return EndpointError(f"{url} rejected the request: HTTP {status}: {message}")
    return Retryable(f"bad response ({exc})")  # unreadable bodies and other protocol faults


GUARD_REFUSED = "not configured to enable custom logit processor"
"""SGLang's 400 for a ``custom_logit_processor`` without ``--enable-custom-logit-processor``."""

_LIMIT_RES = tuple(
    re.compile(p)
    for p in (
        r"maximum context length (?:is|of) (\d+) tokens",  # vLLM (all), SGLang
        r"max_model_len=(?:max_total_tokens=)?(\d+)",  # vLLM 0.26 / 0.33 max_tokens check
        r"model's context length \((\d+) tokens\)",  # SGLang, prompt alone
        r"maximum model length of (\d+)",  # vLLM engine, prompt alone
    )
)
"""Where the real servers' context-length refusals name the context (docs/usage.md)."""
_PROMPT_RES = tuple(
    re.compile(p)
    for p in (
        r"(\d+) tokens from the input messages",  # SGLang: the whole prompt, image included
        r"The input \((\d+) tokens\)",  # SGLang, prompt alone
        r"decoder prompt \(length (\d+)\)",  # vLLM engine, prompt alone
    )
)
"""Messages whose prompt size counts the image. vLLM 0.11.1's "your request has N input
tokens" and 0.26's "at least N input tokens" count text only (or a lower bound): not used."""
_PROMPT_ALONE_RES = (
    re.compile(r"is longer than the model's context length"),
    re.compile(r"decoder prompt \(length \d+\) is longer"),
    re.compile(r"Please reduce the length of the input messages"),
)


def context_refusal(message: str) -> ContextTooLong | None:
    """The :class:`ContextTooLong` a 400 message means, or ``None`` if it is about something
    else. Knows vLLM 0.11.1, 0.26 and 0.33's and SGLang's wordings."""
    limit = _first_int(_LIMIT_RES, message)
    prompt = _first_int(_PROMPT_RES, message)
    alone = any(p.search(message) for p in _PROMPT_ALONE_RES)
    if limit is None and prompt is None and not alone:
        if "context length" in message or "max_tokens" in message:
            return ContextTooLong(message)
        return None
    return ContextTooLong(message, limit, prompt, prompt_alone=alone)


def _first_int(patterns: tuple[re.Pattern[str], ...], message: str) -> int | None:
    for pattern in patterns:
        m = pattern.search(message)
        if m:
            return int(m.group(1))
    return None


def prompt_tokens_from_error(message: str) -> int | None:
    """The whole prompt's token count from a context-length error message, if it gives one."""
    return _first_int(_PROMPT_RES, message)


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
    "GUARD_REFUSED",
    "Answer",
    "ContextTooLong",
    "Guard",
    "GuardRefused",
    "PageFailure",
    "Retryable",
    "Sizing",
    "build_request",
    "class_reference_pickle",
    "complete",
    "context_refusal",
    "max_tokens_for",
    "normalize_base_url",
    "parse_completion",
    "prompt_token_bound",
    "prompt_tokens_from_error",
    "retry_after",
    "sglang_ngram_processor",
    "sizing_for",
]
