"""The text-layer cross-check and repair (docs/verification.md).

``words``: tokens on both sides (CJK, RTL, ligatures, hyphenation); ``matching``: coverage,
unsupported words, missed text; ``garbage``: poor OCR layers; ``textlayer``: the words of an
open PDF page (read by the renderer); ``tiling`` and ``gapfill``: the two repairs;
``policy``: options, verdicts, the request budget; ``apply``: one page through it all.
"""

from __future__ import annotations

from .apply import Verifier, flagged_summary
from .policy import VERIFY_MODES, RepairBudget, VerifyMode, VerifySettings
from .textlayer import TextLayer

__all__ = [
    "VERIFY_MODES",
    "RepairBudget",
    "TextLayer",
    "Verifier",
    "VerifyMode",
    "VerifySettings",
    "flagged_summary",
]
