"""The fake server's ``POST /v1/chat/completions``: number and record the request, inject
its fault, validate it, hold a slot while the responder answers, and send the answer (JSON or
an event stream) with usage counted the way the real servers count it."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import Protocol

from .._defaults import DEFAULT_MODEL
from .._tokens import text_encoder, vision_tokens
from . import dialects
from .capacity import Capacity
from .faults import FAULT_HEADER, Fault, FaultPicker, parse_fault
from .plumbing import Dropped, Handler, HTTPError, client_gone
from .recording import RequestLog, Trace
from .responders import OCRReply, OCRRequest, Responder
from .tokenizer import SPECIAL_TAGS, prompt_text_tokens
from .validation import ChatRules, ValidRequest, api_error, check_sampling, validate_chat
from .versions import judge_context

SPECIAL_TOKENS = SPECIAL_TAGS
"""Grounding tags; DeepSeek-OCR's tokenizer marks them special, so vLLM's default
``skip_special_tokens=True`` removes them from the text (labels and boxes stay)."""
EOS_TEXT = "<｜end▁of▁sentence｜>"
BOS_TEXT = "<｜begin▁of▁sentence｜>"

_STATUS_FAULTS = {
    "500": ("Internal server error", "InternalServerError"),
    "503": ("Service Unavailable", "ServiceUnavailableError"),
    "429": ("Too Many Requests", "RateLimitError"),
}
"""HTTP error faults: message and error type, as the real servers word them."""


def expected_prompt_tokens(width: int, height: int, prompt: str, model: str = DEFAULT_MODEL) -> int:
    """``usage.prompt_tokens`` the fake server reports: BOS + vision tokens + the ``\\n`` after
    the image + the prompt, as a real vLLM server counts them (:mod:`.tokenizer`).

    ``prompt`` is the text part without a leading ``<image>\\n``.
    """
    return 1 + prompt_text_tokens(prompt) + vision_tokens(width, height, model)


def strip_special_tokens(text: str) -> str:
    """What ``skip_special_tokens=True`` leaves of a grounded answer: the tags removed."""
    for tag in SPECIAL_TOKENS:
        if tag in text:
            text = text.replace(tag, "")
    return text


def shape_reply(reply: OCRReply, max_tokens: int) -> tuple[str, str, int]:
    """Cut the raw answer at end-of-sequence and at ``max_tokens``; repeat a ``length``
    answer (a loop) until it fills ``max_tokens``. Returns (text, finish reason, tokens)."""
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


class ChatSettings(ChatRules, Protocol):
    """The server settings the chat route reads on every request."""

    @property
    def responder(self) -> Responder: ...
    @property
    def service_time(self) -> float: ...
    @property
    def time_per_token(self) -> float: ...
    @property
    def service_jitter(self) -> float: ...


class ChatRoute:
    """``POST /v1/chat/completions`` for one server."""

    def __init__(self, settings: ChatSettings, capacity: Capacity, log: RequestLog) -> None:
        self._settings = settings
        self._capacity = capacity
        self._log = log

    def handle(self, h: Handler, path: str) -> None:
        """Answer one request; its record is stored before the answer goes out, so a client
        that has its answer always finds the request in ``requests``."""
        seq, picker, script_base = self._log.begin()
        trace = Trace(
            seq, path, {k.lower(): v for k, v in h.headers.items()}, time.time(), time.monotonic()
        )
        try:
            send = self._answer(h, trace, picker, script_base)
        except HTTPError as err:
            trace.status = err.status
            trace.fields["error"] = err.message or json.dumps(err.body)[:500]
            raise
        except Dropped as exc:
            trace.status = 0
            trace.fields.setdefault("error", f"dropped: {exc}")
            raise
        except Exception as exc:  # a responder bug: answer 500 like a crashed engine
            trace.status = 500
            message = f"{type(exc).__name__}: {exc}"
            trace.fields["error"] = message
            flavor = self._settings.flavor
            raise api_error(flavor, 500, message, "InternalServerError") from exc
        finally:
            self._log.finish(trace.freeze())
        send()

    def _answer(
        self, h: Handler, trace: Trace, picker: FaultPicker, script_base: int
    ) -> Callable[[], None]:
        """Do everything but the final write; return the write. Errors are raised."""
        settings = self._settings
        flavor = settings.flavor
        raw_body = h.read_body()
        forced = trace.headers.get(FAULT_HEADER)
        try:
            fault = parse_fault(forced) if forced else picker.pick(trace.seq - script_base)
        except ValueError as exc:
            raise api_error(flavor, 400, str(exc), "BadRequestError") from None
        trace.fault = fault
        early = self._fault_answer(h, trace, fault, picker)
        if early is not None:
            return early

        valid, body = validate_chat(settings, h.headers.get("Content-Type", ""), raw_body, trace)
        vis = vision_tokens(valid.info.width, valid.info.height, valid.model)
        prompt_tokens = 1 + prompt_text_tokens(valid.prompt) + vis
        trace.fields.update(vision_tokens=vis, prompt_tokens=prompt_tokens)
        text_tokens = prompt_tokens - vis + 1  # vLLM counts the unexpanded <image> as one
        verdict = judge_context(
            settings.context_style,
            settings.max_model_len,
            prompt_tokens,
            text_tokens,
            valid.max_tokens,
            len(BOS_TEXT) + len("<image>\n") + len(valid.prompt),
        )
        if verdict.error:
            raise api_error(flavor, 400, verdict.error, "BadRequestError", verdict.param)
        check_sampling(settings, body, valid)
        budget = verdict.effective_max_tokens
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

        def stream_frames(content: str, finish: str, completion_tokens: int) -> list[bytes]:
            usage = (prompt_tokens, completion_tokens) if valid.include_usage else None
            events = dialects.stream_events(flavor, valid.model, content, finish, usage)
            frames = [
                b"data: " + json.dumps(e, ensure_ascii=False).encode() + b"\n\n" for e in events
            ]
            return [*frames, b"data: [DONE]\n\n"]

        gone = functools.partial(client_gone, h)
        paced = valid.stream and (settings.time_per_token > 0 or settings.service_time > 0)
        content, finish, completion_tokens, rest = self._serve(
            request, valid, fault, trace, gone, stream_frames if paced else None, h
        )
        trace.fields.update(
            content=content, finish_reason=finish, completion_tokens=completion_tokens
        )
        trace.status = 200
        if paced:  # the content went out while it was "generated"; the end goes now
            return functools.partial(h.end_event_stream, rest)
        if valid.stream:
            frames = stream_frames(content, finish, completion_tokens)
            return functools.partial(h.send_event_stream, frames)
        return functools.partial(
            h.send_json,
            200,
            dialects.chat_response(
                flavor,
                model=valid.model,
                content=content,
                finish_reason=finish,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            ),
        )

    def _fault_answer(
        self, h: Handler, trace: Trace, fault: Fault, picker: FaultPicker
    ) -> Callable[[], None] | None:
        """The write for a fault that replaces the answer, or ``None`` to answer normally
        (after a hang). HTTP error faults are raised."""
        flavor = self._settings.flavor
        plan = picker.plan
        if fault == "reset":
            trace.fields["error"] = "connection reset (fault)"
            return h.reset
        if fault in _STATUS_FAULTS:
            status = int(fault)
            message, err_type = _STATUS_FAULTS[fault]
            err = api_error(flavor, status, message, err_type)
            if status in (429, 503):
                err.headers["Retry-After"] = plan.retry_after_header()
            raise err
        if fault == "error_200":
            body = dialects.error_body(
                flavor, "Internal server error (injected)", "InternalServerError", 500
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
            self._capacity.wait(plan.hang_seconds)
        return None

    def _serve(
        self,
        request: OCRRequest,
        valid: ValidRequest,
        fault: Fault,
        trace: Trace,
        gone: Callable[[], bool],
        stream_frames: Callable[[str, str, int], list[bytes]] | None = None,
        h: Handler | None = None,
    ) -> tuple[str, str, int, list[bytes]]:
        """Hold a slot, run the responder, shape the answer: (content, finish, tokens, frames
        still to send).

        A client that disconnects while its request is queued or in service has the request
        aborted and its slot freed, as vLLM and SGLang do. With ``stream_frames`` (a streamed
        request on a server whose answers take time) the content frames go out while the tokens
        are "generated", so a client that stops reading mid-answer frees the slot at once: over
        ``time_per_token`` per token after ``service_time``, or, on a server of constant
        service (``time_per_token`` 0), over the whole ``service_time``, as a real server
        streams an answer through its generation.
        """
        settings, capacity = self._settings, self._capacity
        queued_at = time.monotonic()
        with capacity.slot(gone):
            started = time.monotonic()
            trace.fields.update(queue_seconds=started - queued_at, service_started=started)
            try:
                service = capacity.jittered(settings.service_time, settings.service_jitter)
                spread = stream_frames is not None and settings.time_per_token <= 0
                if not spread:
                    capacity.wait(service, gone)
                if fault == "empty":
                    reply = OCRReply("")
                else:
                    reply = settings.responder(request)
                    if fault == "length":
                        reply = OCRReply(reply.text or "x", "length", reply.delay)
                raw, finish, n_tokens = shape_reply(reply, request.max_tokens)
                skip = valid.skip_special_tokens is not False
                content = strip_special_tokens(raw) if skip else raw
                generating = service if spread else settings.time_per_token * n_tokens
                if stream_frames is None or h is None:
                    capacity.wait(reply.delay + generating, gone)
                    return content, finish, n_tokens, []
                capacity.wait(reply.delay, gone)
                rest = self._pace(h, stream_frames(content, finish, n_tokens), generating, gone)
                return content, finish, n_tokens, rest
            finally:
                trace.fields["service_ended"] = time.monotonic()

    def _pace(
        self, h: Handler, frames: list[bytes], seconds: float, gone: Callable[[], bool]
    ) -> list[bytes]:
        """Send a stream's head and its content frames spread over ``seconds``; return the
        frames that end it (finish, usage, ``[DONE]``)."""
        n = sum(1 for f in frames[1:] if b'"content":' in f)
        h.start_event_stream()
        h.write_event(frames[0])
        if not n:
            self._capacity.wait(seconds, gone)
        for frame in frames[1 : 1 + n]:
            self._capacity.wait(seconds / n, gone)
            h.write_event(frame)
        return frames[1 + n :]
