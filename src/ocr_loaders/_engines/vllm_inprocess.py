"""DeepSeek-OCR run by vLLM inside this process (``engine="vllm"``, the ``vllm`` extra).

The seed recipe's offline mode: ``vllm.LLM(..., enable_prefix_caching=False,
mm_processor_cache_gb=0, logits_processors=[NGramPerReqLogitsProcessor])`` and
``SamplingParams(temperature=0, skip_special_tokens=False, extra_args={ngram_size, window_size,
whitelist_token_ids})``. Pages arrive one at a time from the streaming pipeline, as for any
engine; here they wait in a queue and go to ``LLM.generate`` in batches of at most
``max_batch``: whatever has arrived while the previous batch ran. So at most ``max_batch`` page
images are held, never the whole document, and the GPU is fed as fast as the pipeline renders.

``LLM.generate`` blocks, so it runs on one worker thread, one batch at a time (the ``LLM`` object
is not thread-safe). Answers go through the same output policy as the endpoint path
(:mod:`.output_policy`): a page that loops or comes back empty is tried again with a tighter
guard, then with ``Free OCR.``. ``usage`` comes from the token ids vLLM returns, so the vision
tokens are cross-checked against the formula as for a server.

CI has no GPU: tests drive this engine with a stand-in object that has ``LLM.generate``'s
signature (:class:`Generator`), and a sampling factory that needs no vLLM.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .._defaults import DEFAULT_MODEL, GROUNDING_PROMPT
from .._errors import ConfigError, EngineError
from .._model import PageImage, RawPage
from .._tokens import vision_tokens
from .base import PageHook
from .output_policy import NO_ANSWER, Answer, Guard, TryFailed, best_of_tries, output_plan
from .settings import TD_TOKEN_IDS

log = logging.getLogger(__name__)


# -- what this engine needs from vLLM ---------------------------------------------------------


class Completion(Protocol):
    """One output of a request (``vllm.CompletionOutput``)."""

    @property
    def text(self) -> str: ...
    @property
    def finish_reason(self) -> str | None: ...
    @property
    def token_ids(self) -> Sequence[int]: ...


class RequestOutput(Protocol):
    """The result of one prompt (``vllm.RequestOutput``)."""

    @property
    def prompt_token_ids(self) -> Sequence[int] | None: ...
    @property
    def outputs(self) -> Sequence[Completion]: ...


class Generator(Protocol):
    """``vllm.LLM`` as this engine uses it: one call, a batch of prompts, one result each."""

    def generate(
        self, prompts: list[dict[str, object]], sampling_params: list[object], use_tqdm: bool
    ) -> Sequence[RequestOutput]: ...


SamplingFactory = Callable[[int, Guard, tuple[int, ...]], object]
"""``(max_tokens, guard, whitelist_token_ids) -> SamplingParams``."""


@dataclass(frozen=True, slots=True)
class InProcessSettings:
    """How to run the model here. Defaults follow DeepSeek's offline recipe."""

    model: str = DEFAULT_MODEL
    """A hub id or a local folder with the model."""
    prompt: str = GROUNDING_PROMPT
    max_batch: int = 64
    """Pages per ``generate`` call at most (and so page images held while the GPU works)."""
    output_retries: int = 2
    ngram_size: int = 30
    window_size: int = 90
    whitelist_token_ids: tuple[int, ...] = TD_TOKEN_IDS
    max_model_len: int = 8192
    llm_options: tuple[tuple[str, object], ...] = ()
    """More keyword arguments for ``vllm.LLM`` (``gpu_memory_utilization``, ``load_format``...)."""

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_model_len < 64:
            raise ConfigError("max_batch must be >= 1 and max_model_len >= 64")


def check_vllm_available() -> None:
    """Fail early, and clearly, where vLLM or a GPU is missing.

    The GPU is looked for through vLLM's platform detection (NVML), never through
    ``torch.cuda``: asking torch for its devices initialises CUDA in this process, after which
    the engine process vLLM forks cannot use the GPU ("Cannot re-initialize CUDA in forked
    subprocess", seen on the H200 run).
    """
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError(
            "engine='vllm' runs DeepSeek-OCR in this process and needs vLLM: "
            "pip install 'ocr-loaders[vllm]' (Linux, NVIDIA GPU). Or serve the model and set "
            "base_url, or leave both unset for the embedded CPU engine."
        )
    from vllm.platforms import current_platform

    if not current_platform.is_cuda_alike():
        raise ConfigError(
            "engine='vllm' needs a CUDA GPU, and vLLM sees none "
            "(check CUDA_VISIBLE_DEVICES and the driver)"
        )


def build_llm(settings: InProcessSettings) -> tuple[Generator, int]:
    """``vllm.LLM`` with the recipe's settings, and the context length it was built with."""
    import vllm
    from vllm.model_executor.models.deepseek_ocr import NGramPerReqLogitsProcessor

    options: dict[str, object] = {
        "model": settings.model,
        "enable_prefix_caching": False,
        "mm_processor_cache_gb": 0,
        "logits_processors": [NGramPerReqLogitsProcessor],
        "max_model_len": settings.max_model_len,
        "max_num_seqs": settings.max_batch,
    }
    options.update(dict(settings.llm_options))
    llm = vllm.LLM(**options)
    try:  # what the engine really got (vLLM may lower it to fit memory)
        max_len = int(llm.llm_engine.model_config.max_model_len)
    except AttributeError:  # an engine layout this code does not know: trust the request
        max_len = settings.max_model_len
    generator: Generator = llm
    return generator, max_len


def vllm_sampling(max_tokens: int, guard: Guard, whitelist: tuple[int, ...]) -> object:
    """``vllm.SamplingParams`` of one try, as in DeepSeek's recipe."""
    from vllm import SamplingParams

    extra: dict[str, object] = {}
    if guard.ngram_size is not None and guard.window_size is not None:
        extra = {
            "ngram_size": guard.ngram_size,
            "window_size": guard.window_size,
            "whitelist_token_ids": set(whitelist),
        }
    params: object = SamplingParams(
        temperature=0.0, max_tokens=max_tokens, skip_special_tokens=False, extra_args=extra
    )
    return params


def max_tokens_left(page: PageImage, prompt: str, max_model_len: int, model: str) -> int:
    """The context left after the image and the prompt (BOS, ``<image>\\n`` and the prompt's
    UTF-8 bytes: a byte-level tokenizer never makes more tokens than bytes)."""
    used = vision_tokens(page.image_width, page.image_height, model)
    used += len(prompt.encode("utf-8")) + 8
    return max(16, max_model_len - used)


# -- the engine -------------------------------------------------------------------------------


@dataclass(eq=False)
class _Job:
    page: PageImage
    prompt: str
    guard: Guard
    done: asyncio.Future[Answer]


class _BatchFailed(TryFailed):
    """``generate`` raised for the batch a page was in."""


class VLLMEngine:
    """DeepSeek-OCR through vLLM in this process; see the module docstring."""

    name = "vllm"

    def __init__(
        self,
        settings: InProcessSettings | None = None,
        *,
        llm: Generator | None = None,
        sampling: SamplingFactory | None = None,
    ) -> None:
        self.settings = settings or InProcessSettings()
        if llm is None:
            check_vllm_available()
        self.model = self.settings.model
        self.prompt = self.settings.prompt
        self._llm = llm
        self._max_model_len = self.settings.max_model_len
        self._sampling = sampling or vllm_sampling
        self._queue: list[_Job] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task[None] | None = None
        self._build_lock = asyncio.Lock()
        self._build_error: EngineError | None = None
        self.batch_sizes: list[int] = []
        """Pages in each ``generate`` call so far, in order."""

    # -- Engine protocol --------------------------------------------------------------------

    @property
    def page_hook(self) -> PageHook | None:
        return None

    @property
    def cache_identity(self) -> str:
        s = self.settings
        return f"vllm|{s.model}|{s.prompt}|{s.ngram_size}/{s.window_size}|{s.max_model_len}"

    def drain(self) -> None:
        """Nothing to gain: one GPU, and the queue already takes every page."""

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        for job in self._queue:
            job.done.cancel()
        self._queue.clear()

    async def recognize(self, page: PageImage) -> RawPage:
        """OCR one page, with the output policy's second chances; see the module docstring."""
        await self._ensure_llm()
        s = self.settings
        plan = output_plan(s.prompt, s.ngram_size, s.window_size, s.output_retries)

        async def attempt(prompt: str, guard: Guard) -> tuple[Answer, int]:
            return await self._submit(page, prompt, guard), 1

        return await best_of_tries(plan, attempt, engine=self.name, model=self.model)

    # -- batching ---------------------------------------------------------------------------

    def _bind_loop(self) -> None:
        """The engine outlives event loops (each sync load runs on a loop of its own): the
        queue's event, lock and worker belong to the loop that is running now."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            self._queue = []
            self._worker = None
            self._build_lock = asyncio.Lock()

    async def _ensure_llm(self) -> None:
        """Build ``vllm.LLM`` on first use. A build that failed is not tried again by every
        waiting page (each try costs minutes and GPU memory): they all get its error."""
        self._bind_loop()
        if self._llm is not None:
            return
        async with self._build_lock:
            if self._build_error is not None:
                raise self._build_error
            if self._llm is None:
                log.info("ocr_loaders: starting vLLM in this process (model %s)", self.model)
                try:
                    self._llm, self._max_model_len = await asyncio.to_thread(
                        build_llm, self.settings
                    )
                except Exception as exc:
                    self._build_error = EngineError(f"vLLM could not start {self.model}: {exc}")
                    raise self._build_error from exc

    async def _submit(self, page: PageImage, prompt: str, guard: Guard) -> Answer:
        job = _Job(page, prompt, guard, asyncio.get_running_loop().create_future())
        self._queue.append(job)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run_batches(), name="ocr-loaders-vllm")
        return await job.done

    async def _run_batches(self) -> None:
        """Send what is queued, batch after batch; end when the queue is empty (the next page
        starts a new worker), so no task outlives the pages of its event loop."""
        while self._queue:
            await asyncio.sleep(0)  # let pages submitted in the same turn join the batch
            jobs = self._queue[: self.settings.max_batch]
            del self._queue[: len(jobs)]
            jobs = [j for j in jobs if not j.done.cancelled()]
            if not jobs:
                continue
            self.batch_sizes.append(len(jobs))
            try:
                answers = await asyncio.to_thread(self._generate, jobs)
            except Exception as exc:  # a failed batch fails its pages, not the run
                log.warning("ocr_loaders: vLLM failed a batch of %d pages: %s", len(jobs), exc)
                for job in jobs:
                    if not job.done.done():
                        job.done.set_exception(
                            _BatchFailed(f"vLLM failed: {type(exc).__name__}: {exc}")
                        )
                continue
            for job, answer in zip(jobs, answers, strict=True):
                if not job.done.done():
                    job.done.set_result(answer)

    def _generate(self, jobs: list[_Job]) -> list[Answer]:
        """One ``generate`` call for a batch (runs on the worker thread)."""
        from PIL import Image

        assert self._llm is not None
        prompts: list[dict[str, object]] = []
        params: list[object] = []
        for job in jobs:
            image = Image.open(io.BytesIO(job.page.image)).convert("RGB")
            prompts.append(
                {"prompt": f"<image>\n{job.prompt}", "multi_modal_data": {"image": image}}
            )
            budget = max_tokens_left(job.page, job.prompt, self._max_model_len, self.model)
            params.append(self._sampling(budget, job.guard, self.settings.whitelist_token_ids))
        results = self._llm.generate(prompts, params, use_tqdm=False)
        if len(results) != len(jobs):
            raise EngineError(f"vLLM returned {len(results)} results for {len(jobs)} prompts")
        return [_answer(r) for r in results]


def _answer(result: RequestOutput) -> Answer:
    if not result.outputs:
        return NO_ANSWER
    out = result.outputs[0]
    ids = result.prompt_token_ids
    return Answer(
        text=out.text,
        finish_reason=out.finish_reason,
        prompt_tokens=len(ids) if ids is not None else None,
        completion_tokens=len(out.token_ids),
    )


__all__ = [
    "Generator",
    "InProcessSettings",
    "RequestOutput",
    "SamplingFactory",
    "VLLMEngine",
    "build_llm",
    "check_vllm_available",
    "max_tokens_left",
    "vllm_sampling",
]
