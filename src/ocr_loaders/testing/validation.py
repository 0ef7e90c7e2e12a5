"""Request validation of the fake server: the checks vLLM and SGLang make on a chat request,
in their order, with their error messages and shapes (see the package docstring)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from . import dialects
from .dialects import Flavor
from .images import DataURLError, ImageError, ImageInfo, decode_data_url, sniff_image
from .plumbing import HTTPError
from .recording import Trace, elide_images
from .versions import PROCESSOR_DISABLED, ContextStyle, placeholder_error, processor_error

IMAGE_TAG = "<image>\n"


class ChatRules(Protocol):
    """The server settings a request is judged by."""

    @property
    def flavor(self) -> Flavor: ...
    @property
    def models(self) -> Sequence[str]: ...
    @property
    def max_model_len(self) -> int: ...
    @property
    def full_decode(self) -> bool: ...
    @property
    def enable_custom_logit_processor(self) -> bool: ...
    @property
    def context_style(self) -> ContextStyle: ...
    @property
    def sglang_version(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ValidRequest:
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


def api_error(
    flavor: Flavor, status: int, message: str, err_type: str, param: str | None = None
) -> HTTPError:
    """The error answer the real server sends, in its dialect's shape."""
    return HTTPError(
        status, dialects.error_body(flavor, message, err_type, status, param), message=message
    )


def bad_request(flavor: Flavor, message: str, param: str | None = None) -> HTTPError:
    """A 400 ``BadRequestError``."""
    return api_error(flavor, 400, message, "BadRequestError", param)


def validate_chat(
    rules: ChatRules, content_type: str, raw_body: bytes, trace: Trace
) -> tuple[ValidRequest, dict[str, Any]]:
    """Check the request the way the real server does; raise ``_HTTPError`` if it would
    refuse it. Order: media type, JSON, field types, model, messages, image."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    if rules.flavor == "sglang" and ctype != "application/json":
        raise bad_request(
            rules.flavor, "Unsupported Media Type: Only 'application/json' is allowed"
        )
    if ctype and ctype != "application/json":
        raise bad_request(
            rules.flavor, f"Expected a JSON body (Content-Type application/json), got {ctype!r}"
        )
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(rules.flavor, f"JSON decode error: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request(
            rules.flavor, "Input should be a valid dictionary or object to extract fields from"
        )
    trace.fields["body"] = elide_images(body)

    def typed(name: str, kinds: tuple[type, ...], label: str) -> Any:
        value = body.get(name)
        if value is None:
            return None
        if isinstance(value, bool) and bool not in kinds:
            raise bad_request(rules.flavor, f"{name}: Input should be a valid {label}", name)
        if not isinstance(value, kinds):
            raise bad_request(rules.flavor, f"{name}: Input should be a valid {label}", name)
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
    if rules.flavor == "vllm":
        xargs = typed("vllm_xargs", (dict,), "dictionary")
        if xargs is not None:
            check_xargs(rules.flavor, xargs)
            trace.fields["vllm_xargs"] = xargs
    else:
        params = typed("custom_params", (dict,), "dictionary")
        processor = typed("custom_logit_processor", (str,), "string")
        trace.fields.update(custom_params=params, custom_logit_processor=processor is not None)

    if rules.flavor == "vllm":
        model = model or rules.models[0]
        if model not in rules.models:
            trace.fields["model"] = model
            raise api_error(
                rules.flavor, 404, dialects.model_not_found(model), "NotFoundError", "model"
            )
    else:  # SGLang serves one model under any name
        model = model or rules.models[0]
    trace.fields["model"] = model

    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request(
            rules.flavor, "messages: Field required (a non-empty list of messages)", "messages"
        )
    if len(messages) != 1:
        raise bad_request(
            rules.flavor,
            f"DeepSeek-OCR requests hold exactly one user message, got {len(messages)} messages",
            "messages",
        )
    message = messages[0]
    if not isinstance(message, dict) or message.get("role") != "user":
        raise bad_request(rules.flavor, "The message must have role 'user'", "messages")
    content = message.get("content")
    if not isinstance(content, list):
        raise bad_request(
            rules.flavor,
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
                raise bad_request(rules.flavor, "image_url.url must be a string", "messages")
            if not urls and not texts:
                image_first = True
            urls.append(url)
        else:
            raise bad_request(rules.flavor, f"Unsupported content part: {kind!r}", "messages")
    if not urls:
        raise bad_request(
            rules.flavor,
            "The user message has no image_url part: DeepSeek-OCR needs an image",
            "messages",
        )
    if len(urls) > 1:
        raise bad_request(
            rules.flavor,
            f"At most 1 image(s) may be provided in one prompt, got {len(urls)}.",
            "messages",
        )
    try:
        declared, image = decode_data_url(urls[0])
    except DataURLError as exc:
        if exc.unsupported and rules.flavor == "vllm" and "base64" in str(exc):
            raise api_error(rules.flavor, 501, str(exc), "NotImplementedError") from None
        raise bad_request(rules.flavor, str(exc), "messages") from None
    try:
        info = sniff_image(image, full_decode=rules.full_decode)
    except ImageError as exc:
        raise bad_request(rules.flavor, f"Failed to load the image: {exc}", "messages") from None
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
    if rules.flavor == "sglang":  # its deepseek-ocr template puts one <image> before the text
        refused = placeholder_error(raw_text, rules.sglang_version)
        if refused:
            raise bad_request(rules.flavor, refused)
    include_usage = bool(stream_options.get("include_usage"))
    return ValidRequest(
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


def check_xargs(flavor: Flavor, xargs: dict[str, Any]) -> None:
    """vLLM's ``vllm_xargs`` value types, then DeepSeek-OCR's n-gram processor checks
    (``NGramPerReqLogitsProcessor.validate_params``)."""
    for key, value in xargs.items():
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, (str, int, float)) for v in items):
            raise bad_request(
                flavor,
                f"vllm_xargs.{key}: Input should be a valid string, integer, "
                "number or a list of them",
                "vllm_xargs",
            )
    for key in ("ngram_size", "window_size"):
        if key in xargs:
            value = xargs[key]
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise bad_request(
                    flavor, f"`{key}` has to be a strictly positive integer, got {value}."
                )
    if "whitelist_token_ids" in xargs:
        ids = xargs["whitelist_token_ids"]
        if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids
        ):
            raise bad_request(
                flavor, f"`whitelist_token_ids` has to be a sequence of integers, got {ids}."
            )


def check_sampling(rules: ChatRules, body: Mapping[str, Any], valid: ValidRequest) -> None:
    """``SamplingParams`` checks that come after the context check."""
    if valid.max_tokens is not None and valid.max_tokens < 1:
        raise bad_request(
            rules.flavor, f"max_tokens must be at least 1, got {valid.max_tokens}.", "max_tokens"
        )
    if valid.temperature is not None and valid.temperature < 0:
        raise bad_request(
            rules.flavor,
            f"temperature must be non-negative, got {float(valid.temperature)}.",
            "temperature",
        )
    processor = body.get("custom_logit_processor")
    if rules.flavor == "sglang" and processor is not None:
        if not rules.enable_custom_logit_processor:
            raise bad_request(rules.flavor, PROCESSOR_DISABLED)
        wrong = processor_error(processor) if isinstance(processor, str) else "not a string"
        if wrong:
            raise bad_request(rules.flavor, wrong, "custom_logit_processor")
