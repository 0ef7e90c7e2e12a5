"""The vocabulary of DeepSeek-OCR's grounded output: its tags and the labels it emits."""

from __future__ import annotations

import re

REF, REF_END, DET, DET_END = "<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>"

KNOWN_LABELS = frozenset(
    {
        "text",
        "title",
        "sub_title",
        "image",
        "table",
        "image_caption",
        "table_caption",
        "equation",
        "table_footnote",
        "image_footnote",
        "figure_title",
    }
)
"""Labels DeepSeek-OCR (1 and 2) emits by design; anything else is kept verbatim."""

HEADING_LABELS = frozenset({"title", "sub_title"})
CAPTION_LABELS = frozenset(
    {
        "image_caption",
        "table_caption",
        "figure_title",
        "table_footnote",
        "image_footnote",
    }
)

TABLE_RE = re.compile(r"<table\b.*?(?:</table\s*>|\Z)", re.IGNORECASE | re.DOTALL)
"""One ``<table>`` of model HTML, to its end tag or, when the model was cut off, to the end."""
