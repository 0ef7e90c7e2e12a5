"""Behaviour that differs between real server versions, reproduced by the fake server.

Context length (``context_style``), read from each version's request validation:

* ``vllm-0.11.1``: counts the prompt's TEXT tokens only before the image is expanded, and
  refuses ``text + max_tokens > max_model_len`` with "'max_tokens' or 'max_completion_tokens'
  is too large: N. This model's maximum context length is L tokens and your request has T
  input tokens (N > L - T)."; a request that fits the text check but not with the image is
  cut at the context by the engine (no error).
* ``vllm-0.26`` / ``vllm-0.33``: refuse ``max_tokens > max_model_len`` with "max_tokens=N
  cannot be greater than max_model_len=max_total_tokens=L. Please request fewer output
  tokens. (parameter=max_tokens, value=N)" (0.33: ``max_model_len=L``), refuse ``text +
  max_tokens > L`` with "This model's maximum context length is L tokens. However, you
  requested N output tokens and your prompt contains at least T input tokens, ..." (T is the
  lower bound ``L - N + 1`` its truncated tokenization proves), and silently clamp a
  ``max_tokens`` that fits under L but not with the whole prompt.
* ``sglang``: counts the whole prompt (image included) and refuses ``prompt + max_tokens >=
  L`` with "Requested token count exceeds the model's maximum context length of L tokens.
  You requested a total of ...".

A prompt that alone reaches the context is refused by every version.

SGLang's ``deepseek-ocr`` chat template puts one ``<image>`` before the text itself, so a text
holding another is refused: 0.5.23 "Prompt has 2 image placeholders but 1 image inputs were
provided", 0.5.5 and 0.5.6 "Mismatch: More '<image>' tokens found than corresponding data
items provided.". Its custom logit processor needs ``--enable-custom-logit-processor``.
"""

from __future__ import annotations

import json
import pickletools
from dataclasses import dataclass
from typing import Literal

from .dialects import Flavor

ContextStyle = Literal["vllm-0.11.1", "vllm-0.26", "vllm-0.33", "sglang"]
CONTEXT_STYLES: tuple[ContextStyle, ...] = ("vllm-0.11.1", "vllm-0.26", "vllm-0.33", "sglang")
SGLANG_VERSIONS = ("0.5.5", "0.5.6", "0.5.23")
"""SGLang versions whose image-placeholder message the fake reproduces."""

SGLANG_PROCESSOR = (
    "sglang.srt.sampling.custom_logit_processor",
    "DeepseekOCRNoRepeatNGramLogitProcessor",
)
PROCESSOR_DISABLED = (
    "The server is not configured to enable custom logit processor. "
    "Please set `--enable-custom-logit-processor` to enable this feature."
)
"""SGLang's ``TokenizerManager._validate_one_request`` message, verbatim."""
IMAGE_TAG = "<image>"


def default_style(flavor: Flavor) -> ContextStyle:
    """The context behaviour a fake of ``flavor`` has unless told otherwise."""
    return "vllm-0.26" if flavor == "vllm" else "sglang"


def server_version(style: ContextStyle, sglang_version: str) -> str:
    """What ``/version`` (vLLM) or ``/get_server_info`` (SGLang) reports."""
    if style == "sglang":
        return sglang_version
    return {"vllm-0.11.1": "0.11.1", "vllm-0.26": "0.26.0", "vllm-0.33": "0.33.0"}[style]


@dataclass(frozen=True, slots=True)
class ContextVerdict:
    """A request judged against the context: the error to send (and its ``param``), or the
    ``max_tokens`` the server really generates up to."""

    error: str | None
    param: str | None = None
    effective_max_tokens: int = 0


def judge_context(
    style: ContextStyle,
    max_model_len: int,
    prompt_tokens: int,
    text_tokens: int,
    max_tokens: int | None,
    prompt_chars: int = 0,
) -> ContextVerdict:
    """What the server of ``style`` does with a request (see the module docstring).

    ``prompt_tokens`` counts everything the model reads (BOS, text, image tokens);
    ``text_tokens`` what vLLM counts before the image is expanded; ``prompt_chars`` the
    length of the prompt as the chat template renders it (BOS, ``<image>\n``, the text), which
    vLLM 0.26 reports when ``max_tokens`` leaves no room at all (as seen on a real 0.26.0).
    """
    limit = max_model_len
    if style == "sglang":
        return _sglang(limit, prompt_tokens, max_tokens)
    if text_tokens >= limit:
        return ContextVerdict(
            f"This model's maximum context length is {limit} tokens. However, your request "
            f"has {text_tokens} input tokens. Please reduce the length of the input messages.",
            "input_tokens",
        )
    if style == "vllm-0.11.1":
        if max_tokens is not None and text_tokens + max_tokens > limit:
            return ContextVerdict(
                f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. "
                f"This model's maximum context length is {limit} tokens and your request has "
                f"{text_tokens} input tokens ({max_tokens} > {limit} - {text_tokens}).",
                "max_tokens",
            )
    elif max_tokens is not None:
        if max_tokens > limit:
            total = "max_total_tokens=" if style == "vllm-0.26" else ""
            return ContextVerdict(
                f"max_tokens={max_tokens} cannot be greater than max_model_len={total}{limit}. "
                f"Please request fewer output tokens. (parameter=max_tokens, value={max_tokens})",
                "max_tokens",
            )
        if max_tokens == limit and prompt_chars:  # no room at all: 0.26 says so in characters
            return ContextVerdict(
                f"This model's maximum context length is {limit} tokens. However, you "
                f"requested {max_tokens} output tokens and your prompt contains "
                f"{prompt_chars} characters (more than 0 characters, which is the upper bound "
                "for 0 input tokens). Please reduce the length of the input prompt or the "
                f"number of requested output tokens. (parameter=input_text, value={prompt_chars})",
                "input_text",
            )
        if text_tokens + max_tokens > limit:
            least = limit - max_tokens + 1
            return ContextVerdict(
                f"This model's maximum context length is {limit} tokens. However, you "
                f"requested {max_tokens} output tokens and your prompt contains at least "
                f"{least} input tokens, for a total of at least {least + max_tokens} tokens. "
                "Please reduce the length of the input prompt or the number of requested "
                f"output tokens. (parameter=input_tokens, value={least})",
                "input_tokens",
            )
    if prompt_tokens >= limit:
        return ContextVerdict(
            f"The decoder prompt (length {prompt_tokens}) is longer than the maximum model "
            f"length of {limit}. Make sure that `max_model_len` is no smaller than the number "
            "of text tokens plus multimodal tokens. For image inputs, the number of image "
            "tokens depends on the number of images, and possibly their aspect ratios as well."
        )
    rest = limit - prompt_tokens  # the engine stops at the context: a silent clamp
    return ContextVerdict(None, None, rest if max_tokens is None else min(max_tokens, rest))


def _sglang(limit: int, prompt_tokens: int, max_tokens: int | None) -> ContextVerdict:
    if prompt_tokens >= limit:
        return ContextVerdict(
            f"The input ({prompt_tokens} tokens) is longer than the model's context "
            f"length ({limit} tokens)."
        )
    if max_tokens is not None and prompt_tokens + max_tokens >= limit:
        return ContextVerdict(
            f"Requested token count exceeds the model's maximum context length of "
            f"{limit} tokens. You requested a total of {prompt_tokens + max_tokens} "
            f"tokens: {prompt_tokens} tokens from the input messages and {max_tokens} "
            "tokens for the completion. Please reduce the number of tokens in the input "
            "messages or the completion to fit within the limit."
        )
    rest = max(1, limit - prompt_tokens - 1)
    return ContextVerdict(None, None, rest if max_tokens is None else max_tokens)


def placeholder_error(text: str, sglang_version: str) -> str | None:
    """SGLang's refusal of a text that holds ``<image>`` itself (the template adds one)."""
    found = text.count(IMAGE_TAG)
    if not found:
        return None
    if sglang_version in ("0.5.5", "0.5.6"):
        return "Mismatch: More '<image>' tokens found than corresponding data items provided."
    return f"Prompt has {found + 1} image placeholders but 1 image inputs were provided"


def processor_error(value: str) -> str | None:
    """Why ``custom_logit_processor`` is not the serialized DeepSeek-OCR n-gram processor
    (``None`` if it is). The string is never unpickled: its JSON shape is checked, then the
    pickle's opcodes (``pickletools.genops``) must only reference that class."""
    try:
        data = json.loads(value)
        raw = bytes.fromhex(data["callable"])
    except (ValueError, TypeError, KeyError):
        return 'custom_logit_processor must be a JSON string {"callable": "<hex of a pickle>"}'
    try:
        ops = [(op.name, arg) for op, arg, _pos in pickletools.genops(raw)]
    except Exception as exc:
        return f"custom_logit_processor is not a valid pickle ({exc})"
    strings = [str(arg) for name, arg in ops if name.endswith("UNICODE")]
    globals_ = [arg for name, arg in ops if name == "GLOBAL"]
    names = {" ".join(strings[-2:])} if any(n == "STACK_GLOBAL" for n, _ in ops) else set()
    names |= {str(g) for g in globals_}
    if " ".join(SGLANG_PROCESSOR) not in names:
        return (
            "custom_logit_processor does not reference "
            f"{SGLANG_PROCESSOR[0]}.{SGLANG_PROCESSOR[1]} (the fake server only accepts it)"
        )
    return None


__all__ = [
    "CONTEXT_STYLES",
    "PROCESSOR_DISABLED",
    "SGLANG_PROCESSOR",
    "SGLANG_VERSIONS",
    "ContextStyle",
    "ContextVerdict",
    "default_style",
    "judge_context",
    "placeholder_error",
    "processor_error",
    "server_version",
]
