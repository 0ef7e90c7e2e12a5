"""What to do when the model's output goes wrong: the tries at one page and how to rank them.

Shared by every engine that runs DeepSeek-OCR (an endpoint or vLLM in this process), so a
looping or empty page gets the same second chances whichever way the model is reached: the
configured prompt and repetition guard; then a tighter guard over a wider window; then the plain
``Free OCR.`` prompt. The best answer is kept: one that ended cleanly, then one that is grounded,
then the one that kept the most text.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._defaults import FREE_PROMPT
from .._grounding import cut_repetition_loop


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


__all__ = ["NO_ANSWER", "Answer", "Guard", "Quality", "good_enough", "output_plan", "quality"]
