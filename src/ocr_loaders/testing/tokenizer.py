"""The fake server's stand-in for DeepSeek-OCR's tokenizer: how many tokens a prompt costs.

The real tokenizer is not shipped (it comes with the weights). The prompts DeepSeek's recipes
send are tokenized here exactly as the real one does (pieces measured with the model's own
``tokenizer.json`` and confirmed by a real vLLM 0.26 server's ``/tokenize`` and
``usage.prompt_tokens``: BOS + 903 image tokens + ``\\n`` + 8 = 913 for an A4 page with the
grounding prompt). Other text is counted with tiktoken ``cl100k_base``, DeepSeek's special tags
as one token each: close, not exact.
"""

from __future__ import annotations

from .._defaults import FREE_PROMPT, GROUNDING_PROMPT
from .._tokens import text_encoder

SPECIAL_TAGS = ("<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>", "<|grounding|>")
"""DeepSeek-OCR's tags; its tokenizer holds each as one special token."""
BOS_ID, IMAGE_ID = 0, 128815
"""Token ids of ``<｜begin▁of▁sentence｜>`` and of one image position, as the real server
returns them."""
BOS_TEXT = "<｜begin▁of▁sentence｜>"
NEWLINE = "Ċ"
"""The tokenizer's piece for the ``\\n`` that follows ``<image>`` in DeepSeek-OCR's prompt."""

KNOWN_PIECES: dict[str, tuple[str, ...]] = {
    GROUNDING_PROMPT: (
        "<|grounding|>",
        "Convert",
        "Ġthe",
        "Ġdocument",
        "Ġto",
        "Ġmark",
        "down",
        ".",
    ),
    FREE_PROMPT: ("Free", "ĠOCR", "."),
}
"""The recipes' prompts as DeepSeek-OCR's tokenizer splits them (measured)."""


def prompt_pieces(prompt: str) -> tuple[str, ...]:
    """The prompt's token pieces: exact for the recipes' prompts, else a close stand-in."""
    known = KNOWN_PIECES.get(prompt)
    if known is not None:
        return known
    pieces: list[str] = []
    encoder = text_encoder()
    rest = prompt
    while rest:
        at, tag = min(((rest.find(t), t) for t in SPECIAL_TAGS if t in rest), default=(-1, ""))
        text, rest = (rest, "") if at < 0 else (rest[:at], rest[at + len(tag) :])
        if text:
            pieces.extend(encoder.decode([t]) for t in encoder.encode_ordinary(text))
        if tag:
            pieces.append(tag)
    return tuple(pieces)


def prompt_text_tokens(prompt: str, *, after_image: bool = True) -> int:
    """Tokens of the text part of a request, without BOS: the ``\\n`` after the image (when
    there is one) and the prompt."""
    return len(prompt_pieces(prompt)) + (1 if after_image else 0)


def tokenize(prompt: str, image_tokens: int | None) -> tuple[list[int], list[str]]:
    """Ids and pieces of a whole request (BOS, the image positions, ``\\n``, the prompt) as
    vLLM's ``/tokenize`` lists them; the ids of text pieces are stand-ins."""
    strs = [BOS_TEXT]
    ids = [BOS_ID]
    if image_tokens is not None:
        strs += ["<image>"] * image_tokens + [NEWLINE]
        ids += [IMAGE_ID] * image_tokens + [201]
    for piece in prompt_pieces(prompt):
        strs.append(piece)
        ids.append(1000 + sum(piece.encode("utf-8")) % 100000)
    return ids, strs
