"""Real servers as deployed (issue 11, S1-S3): SGLang's template and n-gram guard, every real
server's context-length behaviour, and a base install with no tokenizer table."""

from __future__ import annotations

import io
import json
import logging
import pickle
import pickletools
import sys
import types
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from PIL import Image

from ocr_loaders import DeepSeekOCRReader, _tokens
from ocr_loaders._defaults import DEFAULT_MODEL, FREE_PROMPT, GROUNDING_PROMPT
from ocr_loaders._engines.settings import EndpointSettings
from ocr_loaders._engines.wire import (
    Guard,
    build_request,
    class_reference_pickle,
    context_refusal,
    prompt_token_bound,
    sglang_ngram_processor,
)
from ocr_loaders.testing import (
    FakeOCRServer,
    RecordedRequest,
    data_url,
    grid_responder,
    static_responder,
)
from ocr_loaders.testing.__main__ import build_parser
from ocr_loaders.testing.versions import CONTEXT_STYLES, ContextStyle, processor_error

from .conftest import chats, make_pdf, run_cli

MODULE, CLASS = (
    "sglang.srt.sampling.custom_logit_processor",
    "DeepseekOCRNoRepeatNGramLogitProcessor",
)


def page_body(text: str = GROUNDING_PROMPT, **extra: object) -> dict[str, object]:

    buf = io.BytesIO()
    Image.new("RGB", (300, 200), "white").save(buf, "PNG")
    return {
        "model": "deepseek-ai/DeepSeek-OCR",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": data_url(buf.getvalue())}},
                    {"type": "text", "text": text},
                ],
            }
        ],
        "max_tokens": 100,
        **extra,
    }


# --- S1: SGLang ------------------------------------------------------------------------------


def test_sglang_processor_string_is_a_pickle_naming_the_class_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = json.loads(sglang_ngram_processor())
    raw = bytes.fromhex(data["callable"])
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(raw)]
    assert ops == [
        ("PROTO", 4),
        ("SHORT_BINUNICODE", MODULE),
        ("SHORT_BINUNICODE", CLASS),
        ("STACK_GLOBAL", None),
        ("STOP", None),
    ]
    stand_in = type(CLASS, (), {})
    names = MODULE.split(".")
    for i in range(1, len(names) + 1):  # pickle imports the top package, then reads the module
        module = types.ModuleType(".".join(names[:i]))
        monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(sys.modules[MODULE], CLASS, stand_in, raising=False)
    assert pickle.loads(raw) is stand_in


def test_the_fake_checks_the_processor_without_unpickling_it() -> None:
    assert processor_error(sglang_ngram_processor()) is None
    other = json.dumps({"callable": class_reference_pickle("os", "system").hex()})
    assert "does not reference" in (processor_error(other) or "")
    assert "JSON" in (processor_error("not json") or "")
    assert "pickle" in (processor_error(json.dumps({"callable": "00ff"})) or "")


def test_sglang_request_is_the_plain_prompt_with_the_default_guard() -> None:
    from ocr_loaders._model import PageImage, SourceInfo

    settings = EndpointSettings(base_urls=("http://x",))
    info = SourceInfo("x.pdf", "x.pdf", "/x.pdf", "a" * 64, "pdf", 1)
    page = PageImage(info, 1, "1", 612.0, 792.0, b"png", "image/png", 300, 200)
    request = build_request(page, settings, "sglang", GROUNDING_PROMPT, Guard(30, 90), 100)
    assert request["messages"][0]["content"][1]["text"] == GROUNDING_PROMPT
    extra = request["extra_body"]
    assert extra["custom_logit_processor"] == sglang_ngram_processor()
    assert extra["custom_params"] == {
        "ngram_size": 30,
        "window_size": 90,
        "whitelist_token_ids": [128821, 128822],
    }
    own = EndpointSettings(base_urls=("http://x",), sglang_logit_processor='{"callable": "ab"}')
    request = build_request(page, own, "sglang", GROUNDING_PROMPT, Guard(30, 90), 100)
    assert request["extra_body"]["custom_logit_processor"] == '{"callable": "ab"}'


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("0.5.23", "Prompt has 2 image placeholders but 1 image inputs were provided"),
        ("0.5.5", "Mismatch: More '<image>' tokens found than corresponding data items provided."),
    ],
)
def test_fake_sglang_template_refuses_a_second_image_tag(version: str, message: str) -> None:
    with FakeOCRServer(flavor="sglang", sglang_version=version) as srv:
        url = f"{srv.base_url}/chat/completions"
        refused = httpx.post(url, json=page_body("<image>\n" + GROUNDING_PROMPT))
        accepted = httpx.post(url, json=page_body())
    assert refused.status_code == 400 and refused.json()["message"] == message
    assert accepted.status_code == 200


def test_sglang_completes_every_page_with_the_guard(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "three.pdf", pages=3)
    with FakeOCRServer(grid_responder(), flavor="sglang", enable_custom_logit_processor=True) as s:
        docs = DeepSeekOCRReader(base_url=s.base_url, mode="pages").load_data(pdf)
        sent = chats(s)
    assert [d.metadata["ocr_status"] for d in docs] == ["ok"] * 3
    assert len(sent) == 3 and all(r.status == 200 for r in sent)
    assert all(r.custom_logit_processor and not r.image_tag for r in sent)


def test_sglang_without_the_flag_goes_on_without_the_guard_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pdf = make_pdf(tmp_path / "four.pdf", pages=4)
    with (
        caplog.at_level(logging.WARNING, logger="ocr_loaders"),
        FakeOCRServer(grid_responder(), flavor="sglang") as srv,
    ):
        reader = DeepSeekOCRReader(base_url=srv.base_url, mode="pages", concurrency=1)
        docs = reader.load_data(pdf)
        sent = chats(srv)
    assert [d.metadata["ocr_status"] for d in docs] == ["ok"] * 4
    refused = [r for r in sent if r.status == 400]
    assert len(refused) == 1 and "--enable-custom-logit-processor" in refused[0].error
    assert len(sent) == 5 and sent[0] is refused[0]
    assert all(not r.custom_logit_processor and r.status == 200 for r in sent[1:])
    warnings = [r for r in caplog.records if "repetition guard" in r.getMessage()]
    assert len(warnings) == 1


# --- S2: context length ----------------------------------------------------------------------

REAL_MESSAGES = [
    (  # vLLM 0.26, text + max_tokens over the context
        "This model's maximum context length is 8192 tokens. However, you requested 8185 "
        "output tokens and your prompt contains at least 8 input tokens, for a total of at "
        "least 8193 tokens. Please reduce the length of the input prompt or the number of "
        "requested output tokens. (parameter=input_tokens, value=8)",
        8192,
        None,
    ),
    (
        "max_tokens=9000 cannot be greater than max_model_len=max_total_tokens=8192. Please "
        "request fewer output tokens. (parameter=max_tokens, value=9000)",
        8192,
        None,
    ),
    (
        "max_tokens=9000 cannot be greater than max_model_len=4096. Please request fewer "
        "output tokens. (parameter=max_tokens, value=9000)",
        4096,
        None,
    ),
    (  # vLLM 0.11.1: the 11 counts text only, so it is not taken as the prompt's size
        "'max_tokens' or 'max_completion_tokens' is too large: 8190. This model's maximum "
        "context length is 8192 tokens and your request has 11 input tokens (8190 > 8192 - 11).",
        8192,
        None,
    ),
    (
        "Requested token count exceeds the model's maximum context length of 4096 tokens. You "
        "requested a total of 8125 tokens: 915 tokens from the input messages and 7210 tokens "
        "for the completion. Please reduce the number of tokens in the input messages or the "
        "completion to fit within the limit.",
        4096,
        915,
    ),
]


@pytest.mark.parametrize(("message", "limit", "prompt"), REAL_MESSAGES)
def test_every_real_context_message_names_its_limit(
    message: str, limit: int, prompt: int | None
) -> None:
    refusal = context_refusal(message)
    assert refusal is not None and not refusal.prompt_alone
    assert (refusal.limit, refusal.prompt_tokens) == (limit, prompt)


def test_a_prompt_too_long_alone_is_not_retried() -> None:
    for message in (
        "The input (5000 tokens) is longer than the model's context length (4096 tokens).",
        "The decoder prompt (length 5000) is longer than the maximum model length of 4096.",
    ):
        refusal = context_refusal(message)
        assert refusal is not None and refusal.prompt_alone
    assert context_refusal("temperature must be non-negative") is None


@pytest.mark.parametrize("listed", [True, False], ids=["listed", "unlisted"])
@pytest.mark.parametrize("style", CONTEXT_STYLES)
def test_a_4096_context_completes_every_page(
    tmp_path: Path, style: ContextStyle, listed: bool
) -> None:
    pdf = make_pdf(tmp_path / "four.pdf", pages=4)
    with FakeOCRServer(
        grid_responder(),
        flavor="sglang" if style == "sglang" else "vllm",
        context_style=style,
        max_model_len=4096,
        list_max_model_len=listed,
        enable_custom_logit_processor=True,
    ) as srv:
        docs = DeepSeekOCRReader(base_url=srv.base_url, mode="pages").load_data(pdf)
        sent = chats(srv)
    assert [d.metadata["ocr_status"] for d in docs] == ["ok"] * 4
    per_page: dict[str, list[RecordedRequest]] = defaultdict(list)
    for record in sorted(sent, key=lambda r: r.seq):
        per_page[record.image_sha256].append(record)
    assert len(per_page) == 4
    assert any(r.status == 400 for r in sent) is not listed  # 8192 assumed until refused
    for records in per_page.values():
        refused = [r for r in records if r.status == 400]
        assert len(refused) <= (0 if listed else 1), [r.error for r in refused]
        assert records[-1].status == 200
        assert records[-1].prompt_tokens + (records[-1].max_tokens or 0) < 4096
        if refused:  # never as much again after a refusal
            assert records[-1].max_tokens is not None and refused[0].max_tokens is not None
            assert records[-1].max_tokens < refused[0].max_tokens
            assert "4096" in refused[0].error


def test_vllm_026_clamps_a_max_tokens_that_fits_under_the_context_only() -> None:
    with FakeOCRServer(max_model_len=4096) as srv:
        r = httpx.post(f"{srv.base_url}/chat/completions", json=page_body(max_tokens=4000))
        (record,) = srv.requests
    assert r.status_code == 200
    assert record.effective_max_tokens == 4096 - record.prompt_tokens


def test_models_listing_can_leave_the_context_out() -> None:
    with FakeOCRServer(list_max_model_len=False) as a, FakeOCRServer(max_model_len=4096) as b:
        unlisted = httpx.get(f"{a.base_url}/models").json()["data"][0]
        listed = httpx.get(f"{b.base_url}/models").json()["data"][0]
    assert "max_model_len" not in unlisted and listed["max_model_len"] == 4096


def test_command_line_flags() -> None:
    args = build_parser().parse_args(
        [
            "--context-style",
            "vllm-0.11.1",
            "--unlisted-max-model-len",
            "--max-model-len",
            "4096",
            "--enable-custom-logit-processor",
            "--sglang-version",
            "0.5.6",
        ]
    )
    assert args.context_style == "vllm-0.11.1" and args.unlisted_max_model_len
    assert args.enable_custom_logit_processor and args.sglang_version == "0.5.6"


# --- S3: no tokenizer table -----------------------------------------------------------------


@pytest.fixture
def no_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every cl100k table source gone, and tiktoken unable to load anything."""
    import tiktoken

    empty = tmp_path / "empty-cache"
    empty.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(empty))
    monkeypatch.setattr(_tokens, "_table_dirs", lambda: [empty])

    def no_download(name: str) -> None:
        raise AssertionError(f"tiktoken was asked for {name}: that may download")

    monkeypatch.setattr(tiktoken, "get_encoding", no_download)
    _tokens._encoder.cache_clear()
    yield
    _tokens._encoder.cache_clear()


def test_prompt_bound_needs_no_tokenizer(no_table: None) -> None:
    for prompt in (GROUNDING_PROMPT, FREE_PROMPT, "Locate <|ref|>the title<|/ref|> in the image."):
        assert prompt_token_bound(prompt) >= len(prompt.encode()) // 4 + 3
    assert _tokens.text_tokens_method() == "estimate"


def test_estimate_round_trips_and_never_exceeds_characters(no_table: None) -> None:
    encoder = _tokens.text_encoder()
    for text in ("Hello, world!  It's 12345.\n\n| a | b |", "한국어 테스트", "x_y__z\r\n\t"):
        ids = encoder.encode_ordinary(text)
        assert encoder.decode(ids) == text and len(ids) <= len(text)


def test_offline_base_install_converts_with_estimated_text_tokens(
    no_table: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pdf = make_pdf(tmp_path / "two.pdf", pages=2)
    with caplog.at_level(logging.WARNING, logger="ocr_loaders"), FakeOCRServer() as srv:
        reader = DeepSeekOCRReader(base_url=srv.base_url, mode="pages")
        docs = reader.load_data(pdf)
        result = run_cli(
            "convert", str(pdf), "-o", str(tmp_path / "out"), "--base-url", srv.base_url
        )
    assert [d.metadata["ocr_status"] for d in docs] == ["ok", "ok"]
    assert reader.last_stats is not None
    assert reader.last_stats.text_tokens_method == "estimate"
    assert reader.last_stats.text_tokens > 0
    assert result.returncode == 0, result.stderr
    stats = json.loads((tmp_path / "out" / "two.stats.json").read_text())
    assert stats["text_tokens_method"] == "estimate"
    said = [r for r in caplog.records if "text_tokens_method=estimate" in r.getMessage()]
    assert len(said) == 1


# --- the fake against what a real vLLM 0.26.0 answered (benchmarks/gpu/results) --------------

REAL_VLLM = Path(__file__).resolve().parents[1] / "benchmarks/gpu/results/conformance-run2.json"


@pytest.mark.parametrize(
    ("case", "max_tokens", "text_tokens"),
    [
        ("max_tokens_9000", 9000, 11),
        ("library_default_request_8192", 7201, 11),
        ("max_tokens_eq_max_model_len", 4096, 11),
        ("max_tokens_eq_max_model_len_plus_1", 4097, 11),
        ("prompt_too_long", 64, 4040),
    ],
)
def test_fake_refuses_with_the_real_vllm_026_messages(
    case: str, max_tokens: int, text_tokens: int
) -> None:
    """Each refusal the real server sent (recorded on an H200) is what the fake sends for the
    same request, word for word, so the client's recovery is tested against the real text."""
    from ocr_loaders.testing.versions import judge_context

    real = json.loads(REAL_VLLM.read_text())["c_limits"]
    prompt_chars = len("<｜begin▁of▁sentence｜><image>\n") + len(GROUNDING_PROMPT)
    verdict = judge_context("vllm-0.26", 4096, 913, text_tokens, max_tokens, prompt_chars)
    assert verdict.error == real[case]["message"]


def test_fake_clamps_silently_as_real_vllm_026_does() -> None:
    from ocr_loaders.testing.versions import judge_context

    real = json.loads(REAL_VLLM.read_text())["c_limits"]["over_by_5"]
    verdict = judge_context("vllm-0.26", 4096, real["prompt_tokens"], 11, real["max_tokens_sent"])
    assert verdict.error is None
    assert verdict.effective_max_tokens == real["completion_tokens"]


REAL_RUN4 = REAL_VLLM.with_name("conformance-run4-fixed-client.json")


def _a4_messages() -> list[dict[str, object]]:
    """The A4 request of the real run: an image of 1190x1684 px and the grounding prompt."""
    buf = io.BytesIO()
    Image.new("RGB", (1190, 1684), "white").save(buf, "PNG")
    image = {"type": "image_url", "image_url": {"url": data_url(buf.getvalue())}}
    return [{"role": "user", "content": [image, {"type": "text", "text": GROUNDING_PROMPT}]}]


def test_fake_counts_prompt_tokens_as_the_real_vllm_026_server_did() -> None:
    """``/tokenize`` and ``usage.prompt_tokens`` for the same requests as on the H200: the A4
    page with the grounding prompt (913 tokens), and the prompt alone, piece by piece."""
    real = json.loads(REAL_RUN4.read_text())["tokenize"]
    with FakeOCRServer(static_responder("x"), max_model_len=4096) as server:
        root = server.base_url.removesuffix("/v1")
        page = httpx.post(f"{root}/tokenize", json={"messages": _a4_messages()}).json()
        text = httpx.post(
            f"{root}/tokenize",
            json={
                "messages": [{"role": "user", "content": GROUNDING_PROMPT}],
                "return_token_strs": True,
            },
        ).json()
        usage = OpenAI(base_url=server.base_url, api_key="x").chat.completions.create(
            model=DEFAULT_MODEL,
            messages=_a4_messages(),
            max_tokens=8,  # type: ignore[arg-type]
        )
    assert page["count"] == real["a4_multimodal"]["count"] == 913
    assert page["max_model_len"] == 4096 and page["tokens"][:2] == [0, 128815]
    assert text["count"] == real["text_only_prompt"]["count"]
    assert text["token_strs"] == real["text_only_prompt"]["token_strs"]
    assert usage.usage is not None and usage.usage.prompt_tokens == 913


def test_fake_metrics_count_tokens_and_finish_reasons_as_vllm_does() -> None:
    """The counters a real vLLM 0.26 exposes (``results/``, run 2), kept by the fake: tokens in
    and out, answers by finish reason; nothing running when idle (the scrape is not counted)."""
    with FakeOCRServer(static_responder("word " * 50), max_model_len=4096) as server:
        client = OpenAI(base_url=server.base_url, api_key="x")
        answers = [
            client.chat.completions.create(
                model=DEFAULT_MODEL,
                messages=_a4_messages(),  # type: ignore[arg-type]
                max_tokens=limit,
            )
            for limit in (500, 5)
        ]
        metrics = httpx.get(server.base_url.removesuffix("/v1") + "/metrics").text

    def value(name: str) -> float:
        line = next(x for x in metrics.splitlines() if x.startswith(name))
        return float(line.rsplit(" ", 1)[1])

    assert value("vllm:num_requests_running") == 0
    assert value("vllm:prompt_tokens_total") == sum(
        a.usage.prompt_tokens for a in answers if a.usage
    )
    assert value("vllm:generation_tokens_total") == sum(
        a.usage.completion_tokens for a in answers if a.usage
    )
    assert value('vllm:request_success_total{finished_reason="stop"') == 1
    assert value('vllm:request_success_total{finished_reason="length"') == 1


def test_the_client_reads_the_vision_tokens_exactly_from_real_usage() -> None:
    """The real server's ``usage.prompt_tokens`` for the A4 request (913, recorded on the H200)
    minus what the client knows of the prompt is exactly the formula's 903."""
    from ocr_loaders._model import RawPage
    from ocr_loaders._stats import server_vision_tokens

    real = json.loads(REAL_RUN4.read_text())["tokenize"]["a4_multimodal"]["count"]
    raw = RawPage("", "stop", "openai", DEFAULT_MODEL, GROUNDING_PROMPT, prompt_tokens=real)
    assert server_vision_tokens(raw) == _tokens.vision_tokens(1190, 1684) == 903
