"""A fake DeepSeek-OCR server (vLLM or SGLang flavour) for tests and benchmarks.

Every end-to-end test and benchmark of the project runs against it, over real HTTP on loopback,
so it is as strict as the real servers about requests::

    from ocr_loaders.testing import FakeOCRServer, FaultPlan

    with FakeOCRServer(flavor="vllm", slots=4, service_time=0.2) as server:
        reader = DeepSeekOCRReader(base_url=server.base_url)
        ...
        assert server.max_slots_busy <= 4

``POST /v1/chat/completions`` takes exactly one user message holding one ``image_url`` part (a
base64 ``data:`` URL of a PNG, JPEG or WebP) and text. It answers a ``chat.completion`` whose
``usage.prompt_tokens`` is what a real vLLM counts for the image it received: BOS,
``vision_tokens(w, h, model)``, the ``\\n`` after the image and the prompt
(:func:`expected_prompt_tokens`; DeepSeek's prompts are counted exactly, other text closely, see
:mod:`.tokenizer`; vLLM's ``POST /tokenize`` answers the same count), and whose
``completion_tokens`` counts the raw answer (tags included). The answer is
cut at ``max_tokens`` tokens with ``finish_reason="length"``; without ``max_tokens`` the budget
is the rest of the context. Unless ``skip_special_tokens`` is ``False`` the grounding tags are
removed from the content, as vLLM's default does. ``stream: true`` is supported (SSE, with a
usage chunk when ``stream_options.include_usage``); with ``time_per_token`` the content goes out
while it is "generated", and a client that stops reading aborts the request and frees its slot.

Facts imitated, and where they were read (vLLM and SGLang repositories on GitHub):

* vLLM ``vllm/entrypoints/openai/engine/serving.py`` (``serving_engine.py`` in older
  releases): ``_check_model`` -> 404 ``NotFoundError`` "The model `X` does not exist.";
  ``_validate_input`` -> 400 context-length refusals, which differ by version (0.11.1, 0.26,
  0.33: :mod:`.versions`, picked with ``context_style``; 0.26 and 0.33 also clamp silently).
  ``vllm/entrypoints/openai/engine/protocol.py``: ``ErrorResponse`` =
  ``{"error": {"message", "type", "param", "code"}}``, ``ModelCard`` (``owned_by="vllm"``,
  ``max_model_len``, ``permission``). ``api_server.py``: ``GET /health`` (empty 200),
  ``GET /version`` -> ``{"version": ...}``, ``GET /v1/models``, ``/ping``, ``/metrics``; an
  ``--api-key`` guards ``/v1`` paths with 401 ``{"error": "Unauthorized"}``.
  ``vllm/model_executor/models/deepseek_ocr.py``: ``NGramPerReqLogitsProcessor.validate_params``
  messages for ``ngram_size``, ``window_size``, ``whitelist_token_ids``.
* SGLang ``python/sglang/srt/entrypoints/http_server.py``: ``/health``, ``/health_generate``,
  ``/get_model_info`` (newer also ``/model_info``), ``/get_server_info`` (newer
  ``/server_info``), ``/get_load``, ``/v1/models`` (``owned_by="sglang"``),
  ``/v1/models/{model}``, ``/ping``; no ``/version``; ``/v1/chat/completions`` requires
  ``Content-Type: application/json``. ``managers/tokenizer_manager.py``
  (``_validate_one_request``): "The input (N tokens) is longer than the model's context length
  (M tokens)." and "Requested token count exceeds the model's maximum context length of M
  tokens. ..." with ``>=`` comparisons; a ``custom_logit_processor`` without
  ``--enable-custom-logit-processor`` (``enable_custom_logit_processor``, off by default) is
  refused. The ``deepseek-ocr`` chat template puts ``<image>`` before the text, so a text
  holding one is refused (:mod:`.versions`). Errors are flat
  ``{"object": "error", "message", "type", "param", "code"}``; the model name is not checked.

Detecting the server type: ``GET /v1/models`` and read ``data[0]["owned_by"]`` (``"vllm"`` or
``"sglang"``); it is one request, needs the same API key as the chat route, and both servers
have always sent it. Fallbacks: ``GET /version`` answers 200 only on vLLM, ``GET
/get_model_info`` answers 200 only on SGLang.
"""

from __future__ import annotations

from .chat import expected_prompt_tokens, strip_special_tokens
from .content_faults import ContentFault, ContentFaultPlan, ContentFaultResponder
from .dialects import Flavor
from .faults import FAULT_HEADER, FAULTS, Fault, FaultPlan
from .images import ImageInfo, data_url, sniff_image
from .recording import RecordedRequest
from .responders import (
    OCRReply,
    OCRRequest,
    Responder,
    fixture_responder,
    grid_responder,
    length_responder,
    load_fixtures,
    local_responder,
    loop_text,
    static_responder,
)
from .server import FakeOCRServer

__all__ = [
    "FAULTS",
    "FAULT_HEADER",
    "ContentFault",
    "ContentFaultPlan",
    "ContentFaultResponder",
    "FakeOCRServer",
    "Fault",
    "FaultPlan",
    "Flavor",
    "ImageInfo",
    "OCRReply",
    "OCRRequest",
    "RecordedRequest",
    "Responder",
    "data_url",
    "expected_prompt_tokens",
    "fixture_responder",
    "grid_responder",
    "length_responder",
    "load_fixtures",
    "local_responder",
    "loop_text",
    "sniff_image",
    "static_responder",
    "strip_special_tokens",
]
