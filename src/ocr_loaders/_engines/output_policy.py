"""What to do when the model's output goes wrong: the tries at one page and how to rank them.

Shared by every engine that runs DeepSeek-OCR (an endpoint or vLLM in this process), so a
looping or empty page gets the same second chances whichever way the model is reached: the
configured prompt and repetition guard; then a tighter guard over a wider window; then the plain
``Free OCR.`` prompt. The best answer is kept: one that ended cleanly, then one that is grounded,
then the one that kept the most text.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .._defaults import FREE_PROMPT
from .._grounding import cut_repetition_loop
from .._model import RawPage


@dataclass(frozen=True, slots=True)
class Guard:
    """The repetition guard of one try (``None`` values: no guard)."""

    ngram_size: int | None
    window_size: int | None


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer of the model, whichever engine produced it."""

    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None


NO_ANSWER = Answer(text="", finish_reason=None, prompt_tokens=None, completion_tokens=None)

Quality = tuple[int, int, int]


def output_plan(
    prompt: str, ngram_size: int, window_size: int, output_retries: int
) -> list[tuple[str, Guard]]:
    """The prompt and guard of each try at a page's output (``output_retries`` extra tries at
    most: a tighter guard, then ``Free OCR.``)."""
    tighter = Guard(max(10, ngram_size * 2 // 3), window_size * 2)
    plan = [(prompt, Guard(ngram_size, window_size))]
    if output_retries >= 1:
        plan.append((prompt, tighter))
    if output_retries >= 2 and prompt != FREE_PROMPT:
        plan.append((FREE_PROMPT, tighter))
    return plan


def quality(answer: Answer, prompt: str) -> Quality:
    """Rank answers: ended cleanly first, then grounded, then the most text kept."""
    kept, loop = cut_repetition_loop(answer.text)
    clean = answer.finish_reason == "stop" and loop is None and bool(answer.text.strip())
    tagged = "<|ref|>" in answer.text or "<|det|>" in answer.text
    grounded = tagged or not prompt.startswith("<|grounding|>")
    return (int(clean), int(grounded), len(kept.strip()))


def good_enough(score: Quality) -> bool:
    """A clean, grounded answer: no further try can beat it."""
    return score[0] == 1 and score[1] == 1


class TryFailed(Exception):
    """One try at a page cannot succeed; no later try is made. ``attempts`` counts the
    requests it took (transport retries included)."""

    def __init__(self, message: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


Attempt = Callable[[str, Guard], Awaitable[tuple[Answer, int]]]
"""One try: ``(prompt, guard) -> (answer, requests it took)``; raises :class:`TryFailed`."""


async def best_of_tries(
    plan: list[tuple[str, Guard]], attempt: Attempt, *, engine: str, model: str
) -> RawPage:
    """Make the plan's tries in order until one is clean and grounded; the page keeps the
    best answer. A try that fails for good ends the page with its error."""
    started = time.perf_counter()
    best: tuple[Quality, Answer, str] | None = None
    attempts = 0
    error = ""
    for prompt, guard in plan:
        try:
            answer, tries = await attempt(prompt, guard)
        except TryFailed as exc:
            attempts += exc.attempts
            error = str(exc)
            break
        attempts += tries
        score = quality(answer, prompt)
        if best is None or score > best[0]:
            best = (score, answer, prompt)
        if good_enough(score):
            break
    _score, answer, prompt = best or ((0, 0, 0), NO_ANSWER, plan[0][0])
    return RawPage(
        text=answer.text,
        finish_reason=answer.finish_reason,
        error="" if answer.text.strip() else (error or "the model returned no text"),
        prompt=prompt,
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
        attempts=attempts,
        latency_s=time.perf_counter() - started,
        engine=engine,
        model=model,
    )


__all__ = [
    "NO_ANSWER",
    "Answer",
    "Attempt",
    "Guard",
    "Quality",
    "TryFailed",
    "best_of_tries",
    "good_enough",
    "output_plan",
    "quality",
]
