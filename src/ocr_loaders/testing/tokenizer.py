"""The fake server's ``POST /tokenize``: a request's token ids and pieces as vLLM lists them.

Counts come from the library's own knowledge of DeepSeek-OCR's tokenizer
(:func:`ocr_loaders._tokens.prompt_text_tokens`: the recipes' prompts exactly, other text
closely), so the fake's ``usage`` and the client's cross-check agree with a real server.
"""

from __future__ import annotations

from .._tokens import SPECIAL_TAGS, prompt_pieces, prompt_text_tokens

BOS_ID, IMAGE_ID = 0, 128815
"""Token ids of ``<｜begin▁of▁sentence｜>`` and of one image position, as the real server
returns them."""
BOS_TEXT = "<｜begin▁of▁sentence｜>"
NEWLINE = "Ċ"
"""The tokenizer's piece for the ``\\n`` that follows ``<image>`` in DeepSeek-OCR's prompt."""


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


__all__ = ["SPECIAL_TAGS", "prompt_pieces", "prompt_text_tokens", "tokenize"]
