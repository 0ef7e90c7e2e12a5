"""The in-process vLLM engine, driven by a stand-in with ``LLM.generate``'s signature (no GPU).

What is checked here is this project's code: batching bounded by ``max_batch``, every page
getting its own answer, the output-retry policy, usage from token ids, failures kept per page.
The same code ran against real vLLM on an H200 (docs/real-vllm.md).
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

from ocr_loaders import ConfigError, PageImage, vision_tokens
from ocr_loaders._engines.output_policy import Guard
from ocr_loaders._engines.vllm_inprocess import InProcessSettings, VLLMEngine
from ocr_loaders._model import SourceInfo
from ocr_loaders._tokens import prompt_text_tokens

from .conftest import make_pdf


@dataclass(frozen=True)
class Sampling:
    """What the engine asked for one prompt (stands in for ``vllm.SamplingParams``)."""

    max_tokens: int
    guard: Guard


def sampling(max_tokens: int, guard: Guard, whitelist: tuple[int, ...]) -> Sampling:
    assert whitelist == (128821, 128822)
    return Sampling(max_tokens, guard)


@dataclass(frozen=True)
class Out:
    text: str
    finish_reason: str | None
    token_ids: list[int]


@dataclass(frozen=True)
class Result:
    prompt_token_ids: list[int]
    outputs: list[Out]


Reply = Callable[[int, str, Sampling], tuple[str, str]]
"""(page number read from the image width, prompt, sampling) -> (text, finish_reason)."""


def grounded(number: int, prompt: str, params: Sampling) -> tuple[str, str]:
    box = "[[60, 300, 940, 700]]"  # the body of the page, not its edges (running headers)
    return f"<|ref|>text<|/ref|><|det|>{box}<|/det|>\npage {number} read", "stop"


@dataclass
class StandInLLM:
    """``generate(prompts, sampling_params, use_tqdm)`` answering from ``reply``."""

    reply: Reply = grounded
    gate: threading.Event | None = None
    entered: threading.Event = field(default_factory=threading.Event)
    calls: list[list[tuple[int, str, Sampling]]] = field(default_factory=list)

    def generate(
        self, prompts: list[dict[str, object]], sampling_params: list[object], use_tqdm: bool
    ) -> list[Result]:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        batch, results = [], []
        for prompt, params in zip(prompts, sampling_params, strict=True):
            assert isinstance(params, Sampling)
            text = str(prompt["prompt"])
            assert text.startswith("<image>\n")
            image = prompt["multi_modal_data"]["image"]  # type: ignore[index]
            assert isinstance(image, Image.Image) and image.mode == "RGB"
            number = image.width - 100
            batch.append((number, text.removeprefix("<image>\n"), params))
            answer, finish = self.reply(number, text.removeprefix("<image>\n"), params)
            # as vLLM counts: BOS, the image's tokens, its "\n" and the prompt's tokens
            prompt_ids = [0] * (1 + vision_tokens(image.width, image.height))
            prompt_ids += [1] * prompt_text_tokens(text.removeprefix("<image>\n"))
            results.append(Result(prompt_ids, [Out(answer, finish, [7] * len(answer.split()))]))
        self.calls.append(batch)
        return results


def page_image(number: int) -> PageImage:
    """A page whose image width tells the stand-in which page it is."""
    width, height = 100 + number, 140
    buf = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buf, "PNG")
    info = SourceInfo(
        source="doc.pdf",
        file_name="doc.pdf",
        file_path="doc.pdf",
        doc_hash="0" * 64,
        kind="pdf",
        total_pages=99,
    )
    return PageImage(
        source=info,
        number=number,
        label=str(number),
        width=float(width),
        height=float(height),
        image=buf.getvalue(),
        mime="image/png",
        image_width=width,
        image_height=height,
    )


def engine(llm: StandInLLM, **settings: object) -> VLLMEngine:
    return VLLMEngine(InProcessSettings(**settings), llm=llm, sampling=sampling)  # type: ignore[arg-type]


async def recognize_all(eng: VLLMEngine, numbers: range) -> list[str]:
    pages = await asyncio.gather(*(eng.recognize(page_image(n)) for n in numbers))
    await eng.aclose()
    return [p.text for p in pages]


def test_batches_are_bounded_and_every_page_gets_its_own_answer() -> None:
    llm = StandInLLM()
    eng = engine(llm, max_batch=4)
    texts = asyncio.run(recognize_all(eng, range(1, 11)))
    assert [t.rsplit("\n", 1)[1] for t in texts] == [f"page {n} read" for n in range(1, 11)]
    assert eng.batch_sizes == [4, 4, 2]  # all ten were waiting: full batches, then the rest
    assert all(len(batch) <= 4 for batch in llm.calls)
    assert sorted(n for batch in llm.calls for n, _, _ in batch) == list(range(1, 11))


def test_pages_arriving_while_a_batch_runs_form_the_next_batch() -> None:
    gate = threading.Event()
    llm = StandInLLM(gate=gate)
    eng = engine(llm, max_batch=8)

    async def main() -> list[str]:
        first = asyncio.ensure_future(eng.recognize(page_image(1)))
        assert await asyncio.to_thread(llm.entered.wait, 10)  # page 1 alone is at the "GPU"
        rest = [asyncio.ensure_future(eng.recognize(page_image(n))) for n in range(2, 6)]
        await asyncio.sleep(0)  # the four reach the queue while the first batch runs
        gate.set()
        pages = await asyncio.gather(first, *rest)
        await eng.aclose()
        return [p.text for p in pages]

    texts = asyncio.run(main())
    assert eng.batch_sizes == [1, 4]
    assert all(f"page {n} read" in t for n, t in zip(range(1, 6), texts, strict=True))


def test_a_looping_page_is_tried_again_with_a_tighter_guard_then_free_ocr() -> None:
    loop = "<|ref|>text<|/ref|><|det|>[[1, 1, 9, 9]]<|/det|>\n" + "la " * 400

    def reply(number: int, prompt: str, params: Sampling) -> tuple[str, str]:
        if number == 2:  # always loops: three tries, the best kept, the page truncated
            return loop, "length"
        if number == 3 and params.guard.ngram_size == 30:  # loops only under the loose guard
            return loop, "length"
        return grounded(number, prompt, params)

    llm = StandInLLM(reply)
    eng = engine(llm, max_batch=16)

    async def main() -> list[object]:
        pages = await asyncio.gather(*(eng.recognize(page_image(n)) for n in (1, 2, 3)))
        await eng.aclose()
        return list(pages)

    one, two, three = asyncio.run(main())
    tries = {
        n: [(p, s.guard) for m, p, s in (x for b in llm.calls for x in b) if m == n]
        for n in (1, 2, 3)
    }
    assert tries[1] == [("<|grounding|>Convert the document to markdown.", Guard(30, 90))]
    assert [g for _, g in tries[3]] == [Guard(30, 90), Guard(20, 180)]
    assert tries[2] == [
        ("<|grounding|>Convert the document to markdown.", Guard(30, 90)),
        ("<|grounding|>Convert the document to markdown.", Guard(20, 180)),
        ("Free OCR.", Guard(20, 180)),
    ]
    assert one.attempts == 1 and three.attempts == 2 and two.attempts == 3  # type: ignore[attr-defined]
    assert three.finish_reason == "stop" and two.finish_reason == "length"  # type: ignore[attr-defined]


def test_max_tokens_is_the_context_left_after_image_and_prompt() -> None:
    llm = StandInLLM()
    eng = engine(llm, max_model_len=4096)
    asyncio.run(recognize_all(eng, range(1, 2)))
    ((_, prompt, params),) = llm.calls[0]
    used = vision_tokens(101, 140) + len(prompt.encode()) + 8
    assert params.max_tokens == 4096 - used


def test_a_failed_batch_fails_its_pages_and_the_engine_goes_on() -> None:
    calls = {"n": 0}

    class Flaky(StandInLLM):
        def generate(self, prompts, sampling_params, use_tqdm):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("CUDA out of memory")
            return super().generate(prompts, sampling_params, use_tqdm)

    eng = engine(Flaky(), max_batch=2)

    async def main() -> list[object]:
        first = await asyncio.gather(*(eng.recognize(page_image(n)) for n in (1, 2)))
        later = await eng.recognize(page_image(3))
        await eng.aclose()
        return [*first, later]

    p1, p2, p3 = asyncio.run(main())
    for failed in (p1, p2):
        assert failed.text == "" and "CUDA out of memory" in failed.error  # type: ignore[attr-defined]
    assert "page 3 read" in p3.text and p3.error == ""  # type: ignore[attr-defined]


def test_through_the_loader_pages_in_order_with_usage_cross_checked(tmp_path: Path) -> None:
    from ocr_loaders import DeepSeekOCRLoader

    pdf = make_pdf(tmp_path / "doc.pdf", 5)
    llm = StandInLLM()
    eng = engine(llm, max_batch=3)
    loader = DeepSeekOCRLoader(pdf, engine=eng, mode="pages", concurrency=3, dpi=36)
    docs = loader.load()
    assert [d.metadata["page"] for d in docs] == [0, 1, 2, 3, 4]
    assert all(d.metadata["ocr_engine"] == "vllm" for d in docs)
    assert all(d.metadata["ocr_status"] == "ok" for d in docs)
    assert max(eng.batch_sizes) <= 3 and sum(eng.batch_sizes) == 5
    stats = loader.last_stats
    assert stats is not None and stats.pages_ok == 5


def test_vision_tokens_are_cross_checked_against_the_prompt_token_ids(tmp_path: Path) -> None:
    from ocr_loaders import LoaderOptions, PageResult, Pipeline

    pdf = make_pdf(tmp_path / "doc.pdf", 2)
    eng = engine(StandInLLM())
    pipeline = Pipeline(LoaderOptions.from_kwargs(engine=eng, dpi=72, render_workers=0))

    async def pages() -> list[PageResult]:
        return [e async for e in pipeline.events(pdf) if isinstance(e, PageResult)]

    results = asyncio.run(pages())
    assert len(results) == 2
    for r in results:  # the stand-in's ids hold exactly the formula's image tokens
        assert r.stats.server_vision_tokens == r.stats.vision_tokens > 0


def test_without_vllm_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where vLLM cannot be imported, making the engine says which extra to install (vLLM is
    hidden here, so the check runs whether or not it is installed)."""
    import importlib.util

    from ocr_loaders._engines import vllm_inprocess

    real_find_spec = importlib.util.find_spec

    def without_vllm(name: str, *args: object) -> object:
        return None if name == "vllm" else real_find_spec(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(vllm_inprocess.importlib.util, "find_spec", without_vllm)
    with pytest.raises(ConfigError, match=r"ocr-loaders\[vllm\]"):
        VLLMEngine(InProcessSettings())


def test_one_engine_serves_loads_on_different_event_loops(tmp_path: Path) -> None:
    from ocr_loaders import DeepSeekOCRLoader

    pdf = make_pdf(tmp_path / "doc.pdf", 2)
    eng = engine(StandInLLM(), max_batch=2)
    first = DeepSeekOCRLoader(pdf, engine=eng, mode="pages").load()  # a private loop
    second = asyncio.run(recognize_all(eng, range(1, 3)))  # another loop
    assert len(first) == 2 and all("read" in t for t in second)


def test_engine_vllm_option_builds_one_shared_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """``engine="vllm"`` makes the in-process engine from the loader's options, once per
    process for the same options (the model loads once); bad names are refused."""
    from ocr_loaders import LoaderOptions
    from ocr_loaders._engines import select, vllm_inprocess

    monkeypatch.setattr(vllm_inprocess, "check_vllm_available", lambda: None)
    monkeypatch.setattr(select, "_INPROCESS", {})
    options = LoaderOptions.from_kwargs(
        engine="vllm", concurrency=8, ngram_size=20, vllm_options={"max_model_len": 4096}
    )
    first, second = select.make_engine(options), select.make_engine(options)
    assert isinstance(first, VLLMEngine) and first is second
    assert first.settings.max_batch == 8 and first.settings.ngram_size == 20
    assert first.settings.max_model_len == 4096 and first.settings.llm_options == ()
    with pytest.raises(ConfigError, match="engine must be"):
        LoaderOptions.from_kwargs(engine="sglang")


def test_a_failed_start_is_tried_once_and_every_waiting_page_gets_its_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On the H200, vLLM's engine process died at start; each of the 16 pages in flight then
    built ``vllm.LLM`` again, for 9 minutes. One failed build now fails every page at once."""
    from ocr_loaders import EngineError
    from ocr_loaders._engines import vllm_inprocess

    builds: list[InProcessSettings] = []

    def failing_build(settings: InProcessSettings) -> tuple[StandInLLM, int]:
        builds.append(settings)
        raise RuntimeError("Engine core initialization failed")

    monkeypatch.setattr(vllm_inprocess, "check_vllm_available", lambda: None)
    monkeypatch.setattr(vllm_inprocess, "build_llm", failing_build)
    eng = VLLMEngine(InProcessSettings(max_batch=4), sampling=sampling)  # type: ignore[arg-type]

    async def main() -> list[BaseException | object]:
        pages = (eng.recognize(page_image(n)) for n in range(1, 9))
        return list(await asyncio.gather(*pages, return_exceptions=True))

    outcomes = asyncio.run(main())
    assert len(builds) == 1
    assert all(isinstance(o, EngineError) for o in outcomes)
    assert all("Engine core initialization failed" in str(o) for o in outcomes)


def test_the_gpu_check_asks_vllm_not_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking ``torch.cuda`` for devices initialises CUDA here, and the engine process vLLM
    then forks cannot use the GPU; the check goes through vLLM's NVML-based platform."""
    import importlib.util
    import sys
    import types

    from ocr_loaders._engines import vllm_inprocess

    class Platform:
        gpu = True

        def is_cuda_alike(self) -> bool:
            return self.gpu

    class NoTorch(types.ModuleType):
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"torch.{name} was used by the GPU check")

    platform = Platform()
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = platform  # type: ignore[attr-defined]
    vllm = types.ModuleType("vllm")
    vllm.platforms = platforms  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.platforms", platforms)
    monkeypatch.setitem(sys.modules, "torch", NoTorch("torch"))
    real_find_spec = importlib.util.find_spec

    def with_vllm(name: str, *args: object) -> object:
        return object() if name == "vllm" else real_find_spec(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(vllm_inprocess.importlib.util, "find_spec", with_vllm)
    vllm_inprocess.check_vllm_available()  # a GPU: no error, torch untouched
    platform.gpu = False
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        vllm_inprocess.check_vllm_available()
