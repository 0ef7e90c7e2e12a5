"""What distinguishes a vLLM server from an SGLang server on the wire, for the fake server
(context-length checks, which also differ between versions, are in :mod:`.versions`).

Facts from the servers' sources (see the package docstring for file paths):

* vLLM: errors are ``{"error": {"message", "type", "param", "code"}}``; an unknown model is 404
  ``NotFoundError`` "The model `X` does not exist."; ``GET /version`` answers
  ``{"version": ...}``; ``/v1/models`` cards say ``"owned_by": "vllm"``.
* SGLang: errors are flat ``{"object": "error", "message", "type", "param", "code"}``; any
  model name is accepted; ``GET /get_model_info`` (and
  ``/model_info``) and ``GET /get_server_info`` (and ``/server_info``) exist; ``/v1/models``
  cards say ``"owned_by": "sglang"``; ``/version`` does not exist (404).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from .._defaults import ServerDialect

Flavor = ServerDialect
"""The server a fake answers as (the request dialect it expects)."""

EOS_TOKEN_ID = 1
"""DeepSeek-OCR's ``<｜end▁of▁sentence｜>`` id, reported by SGLang as ``matched_stop``."""


def error_body(
    flavor: Flavor, message: str, err_type: str, code: int, param: str | None = None
) -> dict[str, Any]:
    """The JSON error object the real server sends for an HTTP error."""
    if flavor == "vllm":
        return {"error": {"message": message, "type": err_type, "param": param, "code": code}}
    return {"object": "error", "message": message, "type": err_type, "param": param, "code": code}


def model_not_found(model: str) -> str:
    """vLLM's 404 message (``OpenAIServing._check_model``)."""
    return f"The model `{model}` does not exist."


def completion_id(flavor: Flavor) -> str:
    """``chatcmpl-<hex>`` (vLLM ``random_uuid``) or ``chatcmpl-<uuid4>`` (SGLang)."""
    return f"chatcmpl-{uuid.uuid4().hex}" if flavor == "vllm" else f"chatcmpl-{uuid.uuid4()}"


def model_card(
    flavor: Flavor, name: str, root: str, max_model_len: int | None, created: int
) -> dict[str, Any]:
    """One ``/v1/models`` entry as the real server writes it (``max_model_len`` ``None``:
    not listed, as some proxies and older servers answer)."""
    card: dict[str, Any] = {
        "id": name,
        "object": "model",
        "created": created,
        "owned_by": flavor,
        "root": root,
        "parent": None,
    }
    if max_model_len is not None:
        card["max_model_len"] = max_model_len
    if flavor == "vllm":
        card["permission"] = [
            {
                "id": f"modelperm-{uuid.uuid4().hex}",
                "object": "model_permission",
                "created": created,
                "allow_create_engine": False,
                "allow_sampling": True,
                "allow_logprobs": True,
                "allow_search_indices": False,
                "allow_view": True,
                "allow_fine_tuning": False,
                "organization": "*",
                "group": None,
                "is_blocking": False,
            }
        ]
    return card


def _choice(flavor: Flavor, key: str, value: Any, finish_reason: str | None) -> dict[str, Any]:
    """One ``choices`` entry: ``message`` (or a stream's ``delta``) and how it stopped."""
    choice: dict[str, Any] = {
        "index": 0,
        key: value,
        "logprobs": None,
        "finish_reason": finish_reason,
    }
    if flavor == "vllm":
        choice["stop_reason"] = None
    else:
        choice["matched_stop"] = EOS_TOKEN_ID if finish_reason == "stop" else None
    return choice


def chat_response(
    flavor: Flavor,
    *,
    model: str,
    content: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object in the real server's field layout."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": None,
    }
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if flavor == "vllm":
        message.update(
            refusal=None,
            annotations=None,
            audio=None,
            function_call=None,
            tool_calls=[],
            reasoning_content=None,
        )
    else:
        message.update(reasoning_content=None, tool_calls=None)
    choice = _choice(flavor, "message", message, finish_reason)
    out: dict[str, Any] = {
        "id": completion_id(flavor),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
    }
    if flavor == "vllm":
        choice["token_ids"] = None
        out.update(
            service_tier=None,
            system_fingerprint=None,
            usage=usage,
            prompt_logprobs=None,
            prompt_token_ids=None,
            kv_transfer_params=None,
        )
    else:
        out.update(usage=usage, metadata={"weight_version": "default"})
    return out


def chunk(
    flavor: Flavor,
    cid: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    finish_reason: str | None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` of a stream."""
    choices = [_choice(flavor, "delta", delta, finish_reason)] if delta or finish_reason else []
    out: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        out["usage"] = usage
    return out


def stream_events(
    flavor: Flavor,
    model: str,
    content: str,
    finish_reason: str,
    usage: tuple[int, int] | None,
) -> list[dict[str, Any]]:
    """The chunks of a streamed answer: the role, the content in pieces, the finish, and a
    usage chunk when ``usage`` (prompt and completion tokens) is given."""
    cid = completion_id(flavor)
    created = int(time.time())
    pieces = [content[i : i + 400] for i in range(0, len(content), 400)]
    events = [chunk(flavor, cid, model, created, {"role": "assistant", "content": ""}, None)]
    events += [chunk(flavor, cid, model, created, {"content": p}, None) for p in pieces if p]
    events.append(chunk(flavor, cid, model, created, {}, finish_reason))
    if usage is not None:
        prompt_tokens, completion_tokens = usage
        totals = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        events.append(chunk(flavor, cid, model, created, {}, None, totals))
    return events
