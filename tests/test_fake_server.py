"""The fake DeepSeek-OCR server over real HTTP on loopback, with the openai client and httpx."""

from __future__ import annotations

import base64
import functools
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from PIL import Image

from ocr_loaders._tokens import count_tokens, text_encoder, vision_tokens
from ocr_loaders.testing import (
    FakeOCRServer,
    FaultPlan,
    OCRReply,
    OCRRequest,
    data_url,
    expected_prompt_tokens,
    fixture_responder,
    length_responder,
    sniff_image,
    static_responder,
    strip_special_tokens,
)
from ocr_loaders.testing.images import ImageError, image_crc

PROMPT = "<|grounding|>Convert the document to markdown."
MODEL = "deepseek-ai/DeepSeek-OCR"
HTTP = httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0))
"""One client for the whole module (creating one per call is slow); no pooled connections, so
a stopped server never leaves a stale one behind."""
GROUNDED = (
    "<|ref|>title<|/ref|><|det|>[[10, 20, 900, 80]]<|/det|>\n# Hello\n\n"
    "<|ref|>text<|/ref|><|det|>[[10, 100, 900, 300]]<|/det|>\nSome body text.\n"
)


@functools.lru_cache(maxsize=32)
def image(width: int, height: int, fmt: str = "PNG") -> bytes:
    im = Image.new("RGB", (width, height), (250, 250, 245))
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def body(
    img: bytes | None = None,
    *,
    mime: str = "image/png",
    text: str = PROMPT,
    url: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    url = url or data_url(img if img is not None else image(1190, 1684), mime)
    return {
        "model": MODEL,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "text", "text": text},
                ],
            }
        ],
        **extra,
    }


def post(server: FakeOCRServer, payload: Any, **kw: Any) -> httpx.Response:
    return HTTP.post(f"{server.base_url}/chat/completions", json=payload, **kw)


def client(server: FakeOCRServer, **kw: Any) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key="test", max_retries=0, **kw)


@pytest.fixture(scope="module")
def vllm_server() -> Iterator[FakeOCRServer]:
    with FakeOCRServer(static_responder(GROUNDED)) as s:
        yield s


@pytest.fixture(scope="module")
def sglang_server() -> Iterator[FakeOCRServer]:
    with FakeOCRServer(static_responder(GROUNDED), flavor="sglang") as s:
        yield s


def fresh(s: FakeOCRServer) -> FakeOCRServer:
    """A module's shared server as a new one would be: no records, no faults."""
    s.reset_stats()
    s.faults = None
    return s


@pytest.fixture
def server(vllm_server: FakeOCRServer) -> FakeOCRServer:
    return fresh(vllm_server)


@pytest.fixture
def sglang(sglang_server: FakeOCRServer) -> FakeOCRServer:
    return fresh(sglang_server)


# --- image sniffing ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
@pytest.mark.parametrize(("w", "h"), [(1, 1), (700, 700), (1190, 1684), (3000, 17)])
def test_sniff_matches_pillow(fmt: str, w: int, h: int) -> None:
    data = image(w, h, fmt)
    info = sniff_image(data)
    assert (info.width, info.height) == (w, h)
    assert info.mime == f"image/{fmt.lower()}"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_sniff_rejects_truncated_images(fmt: str) -> None:
    data = image(300, 200, fmt)
    with pytest.raises(ImageError):
        sniff_image(data[: len(data) // 2])
    with pytest.raises(ImageError):
        sniff_image(b"not an image at all")


def test_sniff_lossless_and_extended_webp() -> None:
    for kwargs in ({"lossless": True}, {"exif": b"Exif\x00\x00"}):
        im = Image.new("RGBA", (321, 123), (1, 2, 3, 128))
        buf = io.BytesIO()
        im.save(buf, "WEBP", **kwargs)
        info = sniff_image(buf.getvalue())
        assert (info.width, info.height, info.mime) == (321, 123, "image/webp")


# --- the happy path and usage ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "w", "h", "fmt"),
    [
        ("deepseek-ai/DeepSeek-OCR", 1190, 1684, "PNG"),
        ("deepseek-ai/DeepSeek-OCR", 700, 700, "JPEG"),
        ("deepseek-ai/DeepSeek-OCR", 1684, 1190, "WEBP"),
        ("deepseek-ai/DeepSeek-OCR", 500, 400, "PNG"),
        ("deepseek-ai/DeepSeek-OCR-2", 1190, 1684, "PNG"),
        ("deepseek-ai/DeepSeek-OCR-2", 700, 700, "JPEG"),
    ],
)
def test_usage_follows_the_vision_token_formula(model: str, w: int, h: int, fmt: str) -> None:
    with FakeOCRServer(static_responder(GROUNDED), models=(model,)) as s:
        r = client(s).chat.completions.create(
            model=model,
            max_tokens=500,
            temperature=0,
            messages=body(image(w, h, fmt), mime=f"image/{fmt.lower()}")["messages"],
            extra_body={"skip_special_tokens": False},
        )
    assert r.usage is not None
    # BOS, the image, its "\n" and the prompt's 8 tokens: 10 beyond the image on a real vLLM
    expected = vision_tokens(w, h, model) + 10
    assert r.usage.prompt_tokens == expected == expected_prompt_tokens(w, h, PROMPT, model)
    assert r.usage.completion_tokens == count_tokens(GROUNDED)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.choices[0].message.content == GROUNDED
    assert r.choices[0].finish_reason == "stop"
    rec = s.requests[0]
    assert (rec.image_width, rec.image_height, rec.image_mime) == (w, h, f"image/{fmt.lower()}")
    assert rec.vision_tokens == vision_tokens(w, h, model)
    assert rec.prompt == PROMPT and rec.temperature == 0 and rec.image_first


def test_a4_page_costs_903_vision_tokens(server: FakeOCRServer) -> None:
    r = post(server, body(max_tokens=100)).json()
    assert r["usage"]["prompt_tokens"] == 913


def test_record_holds_request_details(server: FakeOCRServer) -> None:
    png = image(640, 480)
    r = post(
        server,
        body(
            png,
            max_tokens=64,
            temperature=0.0,
            vllm_xargs={
                "ngram_size": 30,
                "window_size": 90,
                "whitelist_token_ids": [128821, 128822],
            },
        ),
    )
    assert r.status_code == 200
    (rec,) = server.requests
    assert rec.seq == 0 and rec.status == 200 and rec.fault == "ok"
    assert rec.path == "/v1/chat/completions" and rec.headers["content-type"] == "application/json"
    assert rec.image_bytes == len(png) and rec.declared_mime == "image/png"
    assert rec.max_tokens == rec.effective_max_tokens == 64
    assert rec.vllm_xargs == {
        "ngram_size": 30,
        "window_size": 90,
        "whitelist_token_ids": [128821, 128822],
    }
    assert rec.body is not None
    url = rec.body["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,<") and len(url) < 100  # elided in the record
    assert rec.received_at <= time.time() and rec.latency >= 0
    assert server.request_count == 1


def test_missing_max_tokens_takes_the_rest_of_the_context(server: FakeOCRServer) -> None:
    r = post(server, body()).json()
    prompt_tokens = r["usage"]["prompt_tokens"]
    assert server.requests[0].effective_max_tokens == 8192 - prompt_tokens
    assert server.requests[0].max_tokens is None


def test_model_defaults_to_first_served_name(server: FakeOCRServer) -> None:
    payload = body(max_tokens=10)
    del payload["model"]
    r = post(server, payload)
    assert r.status_code == 200 and r.json()["model"] == MODEL


def test_responder_sees_the_request() -> None:
    seen: list[OCRRequest] = []

    def respond(req: OCRRequest) -> OCRReply:
        seen.append(req)
        return OCRReply(f"{req.width}x{req.height} {req.mime} #{req.seq} {req.max_tokens}")

    png = image(333, 222)
    with FakeOCRServer(respond) as s:
        for _ in range(2):
            r = post(s, body(png, max_tokens=50)).json()
    assert r["choices"][0]["message"]["content"] == "333x222 image/png #1 50"
    assert seen[0].image == png and seen[0].prompt == PROMPT and seen[0].model == MODEL


def test_default_grid_responder_is_deterministic_and_grounded() -> None:
    png = image(1190, 1684)
    with FakeOCRServer() as s:
        a = post(s, body(png, max_tokens=3000, skip_special_tokens=False)).json()
        b = post(s, body(png, max_tokens=3000, skip_special_tokens=False)).json()
    text = a["choices"][0]["message"]["content"]
    assert text == b["choices"][0]["message"]["content"]
    assert text.startswith("<|ref|>title<|/ref|><|det|>[[") and "1190x1684" in text


def test_the_same_pixels_get_the_same_answer_however_they_were_compressed() -> None:
    """Answers hang on the pixels: a PNG written by Pillow (row filters, zlib) and one written
    by the loader (no filters, fast deflate) answer alike; another image answers differently."""
    from ocr_loaders._rendering.raster import png_bytes

    im = Image.new("RGB", (400, 300), "white")
    im.paste((200, 30, 30), (40, 40, 200, 120))
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=True)
    ours = png_bytes(im.tobytes(), 400, 300, 3)
    assert buf.getvalue() != ours
    assert image_crc(buf.getvalue()) == image_crc(ours)
    other = png_bytes(Image.new("RGB", (400, 300), "white").tobytes(), 400, 300, 3)
    assert image_crc(other) != image_crc(ours)
    with FakeOCRServer() as s:
        answers = [
            post(s, body(png, max_tokens=3000)).json()["choices"][0]["message"]["content"]
            for png in (buf.getvalue(), ours, other)
        ]
    assert answers[0] == answers[1] != answers[2]


def test_fixture_responder_cycles_and_maps() -> None:
    with FakeOCRServer(fixture_responder(["a", "b"])) as s:
        got = [
            post(s, body(max_tokens=5)).json()["choices"][0]["message"]["content"] for _ in range(3)
        ]
    assert got == ["a", "b", "a"]
    with FakeOCRServer(fixture_responder({1: "one"}, default="other")) as s:
        got = [
            post(s, body(max_tokens=5)).json()["choices"][0]["message"]["content"] for _ in range(2)
        ]
    assert got == ["other", "one"]


def test_responder_crash_is_a_500() -> None:
    def boom(_req: OCRRequest) -> OCRReply:
        raise RuntimeError("kaput")

    with FakeOCRServer(boom) as s:
        r = post(s, body(max_tokens=5))
        assert r.status_code == 500 and "kaput" in r.json()["error"]["message"]
        assert s.requests[0].status == 500


# --- output handling --------------------------------------------------------------------------


def test_tags_are_stripped_unless_skip_special_tokens_is_false(server: FakeOCRServer) -> None:
    c = client(server)
    msgs = body()["messages"]
    default = c.chat.completions.create(model=MODEL, messages=msgs, max_tokens=200)
    explicit = c.chat.completions.create(
        model=MODEL, messages=msgs, max_tokens=200, extra_body={"skip_special_tokens": True}
    )
    kept = c.chat.completions.create(
        model=MODEL, messages=msgs, max_tokens=200, extra_body={"skip_special_tokens": False}
    )
    stripped = strip_special_tokens(GROUNDED)
    assert stripped.startswith("title[[10, 20, 900, 80]]\n# Hello")  # labels and boxes stay
    assert default.choices[0].message.content == stripped
    assert explicit.choices[0].message.content == stripped
    assert kept.choices[0].message.content == GROUNDED
    # completion tokens count what the model generated, tags included
    assert default.usage is not None and kept.usage is not None
    assert default.usage.completion_tokens == kept.usage.completion_tokens
    assert [r.skip_special_tokens for r in server.requests] == [None, True, False]


def test_long_answer_is_cut_at_max_tokens(server: FakeOCRServer) -> None:
    r = post(server, body(max_tokens=7, skip_special_tokens=False)).json()
    enc = text_encoder()
    assert r["choices"][0]["finish_reason"] == "length"
    assert r["usage"]["completion_tokens"] == 7
    assert r["choices"][0]["message"]["content"] == enc.decode(enc.encode_ordinary(GROUNDED)[:7])
    assert server.requests[0].finish_reason == "length"


def test_length_responder_loops_to_max_tokens() -> None:
    with FakeOCRServer(length_responder(static_responder(GROUNDED), requests={1})) as s:
        first = post(s, body(max_tokens=300)).json()
        second = post(s, body(max_tokens=1000, skip_special_tokens=False)).json()
    assert first["choices"][0]["finish_reason"] == "stop"
    assert second["choices"][0]["finish_reason"] == "length"
    assert second["usage"]["completion_tokens"] == 1000
    content = second["choices"][0]["message"]["content"]
    assert content.count("The same line comes back again and again.") > 10


def test_end_of_sentence_text_ends_the_answer() -> None:
    with FakeOCRServer(static_responder("done<｜end▁of▁sentence｜>garbage")) as s:
        r = post(s, body(max_tokens=50)).json()
    assert r["choices"][0]["message"]["content"] == "done"


def test_streaming(server: FakeOCRServer) -> None:
    stream = client(server).chat.completions.create(
        model=MODEL,
        messages=body()["messages"],
        max_tokens=500,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"skip_special_tokens": False},
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert text == GROUNDED and finish == "stop"
    assert usage is not None and usage.completion_tokens == count_tokens(GROUNDED)


# --- validation (vLLM) ------------------------------------------------------------------------


def test_unknown_model_is_vllms_404(server: FakeOCRServer) -> None:
    r = post(server, {**body(max_tokens=10), "model": "gpt-4o"})
    assert r.status_code == 404
    assert r.json() == {
        "error": {
            "message": "The model `gpt-4o` does not exist.",
            "type": "NotFoundError",
            "param": "model",
            "code": 404,
        }
    }
    with pytest.raises(openai.NotFoundError):
        client(server).chat.completions.create(model="gpt-4o", messages=body()["messages"])


def test_context_overflow_is_vllms_400(server: FakeOCRServer) -> None:
    """vLLM 0.26 (the default): above max_model_len is refused; under it, a max_tokens that
    does not fit with the image is clamped silently."""
    prompt_tokens = 913
    fits = post(server, body(max_tokens=8192 - prompt_tokens + 1))
    assert fits.status_code == 200
    assert server.requests[0].effective_max_tokens == 8192 - prompt_tokens
    r = post(server, body(max_tokens=9000))
    assert r.status_code == 400
    assert r.json() == {
        "error": {
            "message": "max_tokens=9000 cannot be greater than "
            "max_model_len=max_total_tokens=8192. Please request fewer output tokens. "
            "(parameter=max_tokens, value=9000)",
            "type": "BadRequestError",
            "param": "max_tokens",
            "code": 400,
        }
    }
    with pytest.raises(openai.BadRequestError, match="max_model_len"):
        client(server).chat.completions.create(
            model=MODEL, messages=body()["messages"], max_tokens=8193
        )


def test_prompt_longer_than_context() -> None:
    with FakeOCRServer(max_model_len=500) as s:
        r = post(s, body())
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith(
        f"The decoder prompt (length {913}) is longer than the maximum model length of 500."
    )


def test_max_completion_tokens_counts_too(server: FakeOCRServer) -> None:
    r = post(server, body(max_completion_tokens=9000))
    assert r.status_code == 400 and "max_tokens=9000 cannot" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("payload", "status", "fragment"),
    [
        (body(url="data:image/png;base64,!!!notbase64!!!"), 400, "Invalid base64"),
        (body(url="data:image/png," + "A" * 300), 501, "Only base64 data URLs"),
        (body(url="https://example.com/page.png"), 400, "only accepts data: URLs"),
        (body(url=data_url(b"hello world, not a picture")), 400, "cannot identify image"),
        (body(url=data_url(image(300, 200)[:400])), 400, "truncated PNG"),
        (body(url=data_url(image(300, 200), "text/plain")), 400, "image media type"),
        ({"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}, 400, "image_url"),
        (
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}],
            },
            400,
            "no image_url part",
        ),
        (
            {
                "model": MODEL,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": data_url(image(20, 20))}},
                            {"type": "image_url", "image_url": {"url": data_url(image(20, 20))}},
                        ],
                    }
                ],
            },
            400,
            "At most 1 image",
        ),
        ({"model": MODEL, "messages": []}, 400, "messages"),
        ({"model": MODEL}, 400, "messages"),
        (
            {**body(), "messages": [{"role": "system", "content": "x"}, *body()["messages"]]},
            400,
            "exactly one user message",
        ),
        (body(max_tokens="10"), 400, "max_tokens"),
        (body(max_tokens=0), 400, "max_tokens must be at least 1, got 0."),
        (body(temperature=-1), 400, "temperature must be non-negative"),
        (
            body(vllm_xargs={"ngram_size": "30"}),
            400,
            "`ngram_size` has to be a strictly positive integer, got 30.",
        ),
        (
            body(vllm_xargs={"ngram_size": 30, "window_size": 0}),
            400,
            "`window_size` has to be a strictly positive integer, got 0.",
        ),
        (
            body(vllm_xargs={"whitelist_token_ids": ["128821"]}),
            400,
            "`whitelist_token_ids` has to be a sequence of integers",
        ),
        (body(vllm_xargs={"nested": {"a": 1}}), 400, "vllm_xargs.nested"),
        (body(vllm_xargs=[1, 2]), 400, "vllm_xargs"),
    ],
)
def test_bad_requests(
    server: FakeOCRServer, payload: dict[str, Any], status: int, fragment: str
) -> None:
    r = post(server, payload)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert fragment in err["message"]
    assert err["code"] == status
    assert server.requests[-1].status == status


def test_non_json_bodies(server: FakeOCRServer) -> None:
    url = f"{server.base_url}/chat/completions"
    r = HTTP.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON decode error" in r.json()["error"]["message"]
    r = HTTP.post(url, content=b"[1, 2]", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = HTTP.post(url, content=b"x=1", headers={"Content-Type": "text/plain"})
    assert r.status_code == 400


def test_routes_404_and_405(server: FakeOCRServer) -> None:
    assert HTTP.get(f"{server.url}/nope").json() == {"detail": "Not Found"}
    assert HTTP.get(f"{server.base_url}/chat/completions").status_code == 405
    assert HTTP.post(f"{server.url}/health", json={}).status_code == 405


def test_api_key() -> None:
    with FakeOCRServer(api_key="sekret") as s:
        r = post(s, body(max_tokens=5))
        assert r.status_code == 401 and r.json() == {"error": "Unauthorized"}
        assert HTTP.get(f"{s.url}/health").status_code == 200  # not under /v1
        ok = post(s, body(max_tokens=5), headers={"Authorization": "Bearer sekret"})
        assert ok.status_code == 200


# --- SGLang flavour ---------------------------------------------------------------------------


def test_sglang_accepts_any_model_and_applies_its_template(sglang: FakeOCRServer) -> None:
    r = client(sglang).chat.completions.create(
        model="whatever",
        max_tokens=100,
        messages=body()["messages"],
        extra_body={
            "skip_special_tokens": False,
            "custom_params": {"ngram_size": 30, "window_size": 90},
        },
    )
    assert r.model == "whatever" and r.choices[0].message.content == GROUNDED
    assert r.usage is not None
    assert r.usage.prompt_tokens == expected_prompt_tokens(1190, 1684, PROMPT)
    rec = sglang.requests[0]
    assert not rec.image_tag and rec.prompt == PROMPT and rec.raw_text == PROMPT
    assert rec.custom_params == {"ngram_size": 30, "window_size": 90}


def test_sglang_context_error_is_flat_and_off_by_one(sglang: FakeOCRServer) -> None:
    prompt_tokens = 913
    at_limit = 8192 - prompt_tokens  # vLLM accepts this; SGLang's check is ">="
    r = post(sglang, body(max_tokens=at_limit))
    assert r.status_code == 400
    assert r.json() == {
        "object": "error",
        "message": "Requested token count exceeds the model's maximum context length of 8192 "
        f"tokens. You requested a total of 8192 tokens: {prompt_tokens} tokens from "
        f"the input messages and {at_limit} tokens for the completion. Please reduce "
        "the number of tokens in the input messages or the completion to fit within "
        "the limit.",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
    assert post(sglang, body(max_tokens=at_limit - 1)).status_code == 200
    with pytest.raises(openai.BadRequestError, match="Requested token count exceeds"):
        client(sglang).chat.completions.create(
            model=MODEL, messages=body()["messages"], max_tokens=8000
        )


def test_sglang_requires_json_content_type(sglang: FakeOCRServer) -> None:
    import json

    raw = json.dumps(body(max_tokens=5)).encode()
    r = HTTP.post(f"{sglang.base_url}/chat/completions", content=raw)
    assert r.status_code == 400 and "application/json" in r.json()["message"]


def test_sglang_custom_logit_processor_needs_the_server_flag(sglang: FakeOCRServer) -> None:
    from ocr_loaders._engines.wire import sglang_ngram_processor

    r = post(sglang, body(max_tokens=5, custom_logit_processor=sglang_ngram_processor()))
    assert r.status_code == 400
    assert r.json()["message"] == (
        "The server is not configured to enable custom logit processor. "
        "Please set `--enable-custom-logit-processor` to enable this feature."
    )


def test_flavor_detection_routes() -> None:
    with FakeOCRServer(flavor="vllm") as v, FakeOCRServer(flavor="sglang") as s:
        vm = HTTP.get(f"{v.base_url}/models").json()
        sm = HTTP.get(f"{s.base_url}/models").json()
        assert vm["data"][0]["owned_by"] == "vllm" and sm["data"][0]["owned_by"] == "sglang"
        assert vm["data"][0]["id"] == sm["data"][0]["id"] == MODEL
        assert vm["data"][0]["max_model_len"] == sm["data"][0]["max_model_len"] == 8192
        assert HTTP.get(f"{v.url}/version").json() == {"version": "0.26.0"}
        assert HTTP.get(f"{s.url}/version").status_code == 404
        for path in (
            "/get_model_info",
            "/model_info",
            "/get_server_info",
            "/server_info",
            "/health_generate",
            "/get_load",
        ):
            assert HTTP.get(f"{s.url}{path}").status_code == 200, path
            assert HTTP.get(f"{v.url}{path}").status_code == 404, path
        info = HTTP.get(f"{s.url}/get_model_info").json()
        assert info["model_path"] == MODEL and info["has_image_understanding"] is True
        for srv in (v, s):
            health = HTTP.get(f"{srv.url}/health")
            assert health.status_code == 200 and health.content == b""
            assert HTTP.get(f"{srv.url}/ping").status_code == 200
        assert "vllm:num_requests_running" in HTTP.get(f"{v.url}/metrics").text
        assert HTTP.get(f"{s.base_url}/models/{MODEL}").json()["id"] == MODEL
        assert HTTP.get(f"{v.base_url}/models/{MODEL}").status_code == 404
        assert v.route_hits["/version"] == 1 and v.request_count == 0


# --- faults -----------------------------------------------------------------------------------


def test_each_fault_kind() -> None:
    script = ["500", "503", "429", "reset", "bad_json", "error_200", "empty", "length", "ok"]
    plan = FaultPlan(script=script, retry_after=2)
    with FakeOCRServer(static_responder("short answer"), faults=plan) as s:
        c = httpx.Client(timeout=5)
        url = f"{s.base_url}/chat/completions"
        r = c.post(url, json=body(max_tokens=50))
        assert r.status_code == 500 and r.json()["error"]["type"] == "InternalServerError"
        r = c.post(url, json=body(max_tokens=50))
        assert r.status_code == 503 and r.headers["retry-after"] == "2"
        r = c.post(url, json=body(max_tokens=50))
        assert r.status_code == 429 and r.headers["retry-after"] == "2"
        with pytest.raises(httpx.TransportError):
            c.post(url, json=body(max_tokens=50))
        r = c.post(url, json=body(max_tokens=50))
        assert r.status_code == 200
        with pytest.raises(ValueError):
            r.json()
        r = c.post(url, json=body(max_tokens=50))
        assert r.status_code == 200 and r.json()["error"]["code"] == 500
        r = c.post(url, json=body(max_tokens=50)).json()
        assert r["choices"][0]["message"]["content"] == ""
        assert r["usage"]["completion_tokens"] == 0
        r = c.post(url, json=body(max_tokens=50)).json()
        assert r["choices"][0]["finish_reason"] == "length"
        assert r["usage"]["completion_tokens"] == 50  # "short answer" repeated like a loop
        r = c.post(url, json=body(max_tokens=50)).json()
        assert r["choices"][0]["finish_reason"] == "stop"
        c.close()
        faults = [rec.fault for rec in sorted(s.requests, key=lambda rec: rec.seq)]
        statuses = [rec.status for rec in sorted(s.requests, key=lambda rec: rec.seq)]
    assert faults == script
    assert statuses == [500, 503, 429, 0, 200, 200, 200, 200, 200]


def test_faults_through_the_openai_client() -> None:
    with FakeOCRServer(faults=FaultPlan(script=["500", "429", "reset", "ok"])) as s:
        c = client(s)
        msgs = body()["messages"]
        with pytest.raises(openai.InternalServerError):
            c.chat.completions.create(model=MODEL, messages=msgs, max_tokens=10)
        with pytest.raises(openai.RateLimitError):
            c.chat.completions.create(model=MODEL, messages=msgs, max_tokens=10)
        with pytest.raises(openai.APIConnectionError):
            c.chat.completions.create(model=MODEL, messages=msgs, max_tokens=10)
        assert c.chat.completions.create(model=MODEL, messages=msgs, max_tokens=10).choices


def test_openai_client_retries_through_scripted_faults() -> None:
    with FakeOCRServer(faults=FaultPlan(script=["503", "429"], retry_after=0.05)) as s:
        c = OpenAI(base_url=s.base_url, api_key="x", max_retries=2)
        r = c.chat.completions.create(model=MODEL, messages=body()["messages"], max_tokens=10)
        assert r.choices[0].finish_reason in ("stop", "length")
        assert [rec.fault for rec in s.requests] == ["503", "429", "ok"]


def test_hang_then_answer() -> None:
    # the hang outlasts the client's timeout by 1.3 s, so the next request reaches the server
    # while it is still held even when the test process stalls (0.4 s was once too little)
    with FakeOCRServer(
        static_responder("x"), faults=FaultPlan(script=["hang"], hang_seconds=1.5)
    ) as s:
        with pytest.raises(httpx.ReadTimeout):
            HTTP.post(f"{s.base_url}/chat/completions", json=body(max_tokens=5), timeout=0.2)
        r = post(s, body(max_tokens=5))  # the next one is fine
        assert r.status_code == 200
        assert s.wait_idle(5)
        hung, after = sorted(s.requests, key=lambda rec: rec.seq)
        assert hung.fault == "hang" and hung.latency >= 1.5
        # not queued behind the hang: answered while the hung request was still held
        assert after.fault != "hang" and after.finished < hung.finished


def test_fault_rates_are_seeded_and_reproducible() -> None:
    plan = FaultPlan(error_500=0.3, error_429=0.2, seed=7)

    def run() -> list[str]:
        with FakeOCRServer(static_responder("x"), faults=plan) as s:
            with httpx.Client() as c:
                for _ in range(30):
                    c.post(f"{s.base_url}/chat/completions", json=body(max_tokens=5))
            return [r.fault for r in sorted(s.requests, key=lambda r: r.seq)]

    first, second = run(), run()
    assert first == second
    assert {"500", "429", "ok"} == set(first)


def test_fault_header_and_plan_swap(server: FakeOCRServer) -> None:
    r = post(server, body(max_tokens=5), headers={"x-fake-ocr-fault": "503"})
    assert r.status_code == 503
    server.faults = FaultPlan(script=["429"])
    assert post(server, body(max_tokens=5)).status_code == 429
    assert post(server, body(max_tokens=5)).status_code == 200
    bogus = post(server, body(max_tokens=5), headers={"x-fake-ocr-fault": "bogus"})
    assert bogus.status_code == 400


def test_fault_plan_validation() -> None:
    with pytest.raises(ValueError, match="add up"):
        FaultPlan(error_500=0.7, reset=0.5)
    with pytest.raises(ValueError, match="unknown fault"):
        FaultPlan(script=["501"])
    with pytest.raises(ValueError):
        FaultPlan(hang_seconds=1000)


# --- concurrency and capacity -----------------------------------------------------------------


@pytest.mark.parametrize("n", [16, 100])
def test_parallel_requests_are_served_together(n: int) -> None:
    """Each answer waits until all n requests are inside the server at once: if the server
    served them one after another, the barrier would break and the requests fail."""
    together = threading.Barrier(n, timeout=60)

    def all_at_once(req: OCRRequest) -> OCRReply:
        together.wait()
        return OCRReply("x")

    limits = httpx.Limits(max_connections=n + 10)
    with (
        FakeOCRServer(all_at_once) as s,
        httpx.Client(timeout=120, limits=limits) as c,
    ):
        with ThreadPoolExecutor(n) as pool:
            codes = list(
                pool.map(
                    lambda _: (
                        c.post(
                            f"{s.base_url}/chat/completions", json=body(max_tokens=5)
                        ).status_code
                    ),
                    range(n),
                )
            )
        records = s.requests
    assert codes == [200] * n
    assert s.max_in_flight >= n
    # served together: every request had arrived before the first one was answered
    assert max(r.started for r in records) < min(r.finished for r in records)


def test_capacity_slots_bound_service_and_throughput() -> None:
    slots, service, n = 3, 0.2, 18
    with FakeOCRServer(static_responder("x"), slots=slots, service_time=service) as s:
        with ThreadPoolExecutor(9) as pool:
            codes = list(pool.map(lambda _: post(s, body(max_tokens=5)).status_code, range(n)))
        records = s.requests
        assert s.max_slots_busy == slots and s.max_queued > 0 and s.max_in_flight > slots
    assert codes == [200] * n
    # each request holds its slot for the service time: throughput is at most slots/service
    held = [(r.service_started, r.service_ended) for r in records]
    assert all(a is not None and b is not None and b - a >= service * 0.95 for a, b in held)
    # never more than `slots` requests in service at once, judged from the records
    events = sorted(
        [(r.service_started, 1) for r in records if r.service_started]
        + [(r.service_ended, -1) for r in records if r.service_ended]
    )
    busy = peak = 0
    for _t, step in events:
        busy += step
        peak = max(peak, busy)
    assert peak <= slots
    assert max(r.queue_seconds for r in records) > service


def test_a_client_that_leaves_has_its_request_aborted() -> None:
    """Like vLLM: closing the connection aborts the request, queued or in service, and frees
    its slot for the next one."""
    with FakeOCRServer(static_responder("x"), slots=1, service_time=3.0) as s:
        with ThreadPoolExecutor(2) as pool:
            holder = pool.submit(post, s, body(max_tokens=5), timeout=1.0)  # in service
            deadline = time.monotonic() + 5
            while s.slots_busy < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            queued = pool.submit(post, s, body(max_tokens=5), timeout=0.2)  # leaves first
            for future in (holder, queued):
                with pytest.raises(httpx.TimeoutException):
                    future.result()
        assert s.wait_idle(2)  # both noticed within the polling interval, not after 3 s
        records = s.requests
        assert s.slots_busy == 0
    assert len(records) == 2
    assert all(r.status == 0 and "client disconnected" in r.error for r in records)
    served, waited = sorted(records, key=lambda r: r.seq)
    assert served.service_started is not None and served.latency < 2.5
    assert waited.service_started is None  # aborted while queued: never got the slot


def test_reset_stats(server: FakeOCRServer) -> None:
    post(server, body(max_tokens=5))
    assert server.wait_idle(2)
    server.reset_stats()
    assert server.requests == [] and server.request_count == 0 and server.max_in_flight == 0
    post(server, body(max_tokens=5))
    assert server.requests[0].seq == 0


# --- lifecycle --------------------------------------------------------------------------------


def test_stop_and_restart_on_the_same_port() -> None:
    first = FakeOCRServer(static_responder("one"), service_time=60.0).start()
    port = first.port
    c = httpx.Client(timeout=10)
    errors: list[BaseException] = []

    def stuck() -> None:
        try:
            c.post(f"{first.base_url}/chat/completions", json=body(max_tokens=5))
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=stuck)
    worker.start()
    deadline = time.monotonic() + 5
    while first.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    first.stop()
    worker.join(20)
    assert not worker.is_alive()  # the in-service request was dropped, not served to its end
    assert errors and isinstance(errors[0], httpx.TransportError)
    with pytest.raises(httpx.TransportError):
        HTTP.get(f"http://127.0.0.1:{port}/health", timeout=1)
    with FakeOCRServer(static_responder("two"), port=port) as second:
        assert second.port == port
        r = c.post(f"{second.base_url}/chat/completions", json=body(max_tokens=5))
        assert r.json()["choices"][0]["message"]["content"] == "two"
    first.start()  # the same object comes back on its port
    try:
        assert first.port == port and c.get(f"{first.url}/health").status_code == 200
    finally:
        first.stop()
    c.close()


def test_idle_connections_are_closed_like_uvicorn() -> None:
    with (
        FakeOCRServer(keep_alive_timeout=0.3) as s,
        socket.create_connection(("127.0.0.1", s.port)) as sock,
    ):
        for _ in range(2):  # kept alive between requests that follow each other
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
        sock.settimeout(5)
        assert sock.recv(4096) == b""  # then closed by the server once idle


def test_only_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FakeOCRServer(host="0.0.0.0")


def test_local_responder() -> None:
    pytest.importorskip("ocr_loaders._engines.local")
    from ocr_loaders.testing import local_responder

    im = Image.new("RGB", (400, 120), "white")
    buf = io.BytesIO()
    im.save(buf, "PNG")
    with FakeOCRServer(local_responder()) as s:
        r = post(s, body(buf.getvalue(), max_tokens=500))
    assert r.status_code == 200, r.text


def test_command_line() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ocr_loaders.testing",
            "--port",
            str(port),
            "--flavor",
            "sglang",
            "--responder",
            "static:hi",
            "--slots",
            "2",
            "--fault-script",
            "500,ok",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == f"http://127.0.0.1:{port}/v1"
        assert HTTP.get(f"{line}/models").json()["data"][0]["owned_by"] == "sglang"
        assert HTTP.post(f"{line}/chat/completions", json=body(max_tokens=5)).status_code == 500
        r = HTTP.post(f"{line}/chat/completions", json=body(max_tokens=5)).json()
        assert r["choices"][0]["message"]["content"] == "hi"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_data_url_roundtrip() -> None:
    png = image(10, 10)
    url = data_url(png)
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == png
