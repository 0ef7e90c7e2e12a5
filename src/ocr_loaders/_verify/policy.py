"""The verification policy: options, a page's verdict, when to repair, the request budget."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from .._errors import ConfigError
from .._model import Page, VerificationStatus
from .matching import PageCheck

VerifyMode = Literal["off", "flag", "repair"]
VERIFY_MODES: tuple[VerifyMode, ...] = ("off", "flag", "repair")


REPAIR_BUDGET = 0.2
"""The default ``repair_budget``."""


@dataclass(frozen=True, slots=True)
class VerifySettings:
    """How pages are checked against their text layer and repaired (docs/verification.md)."""

    verify: VerifyMode = "flag"
    """``flag`` by default: it costs a few percent of the client's CPU per page (under the
    10 % a default may cost; docs/verification.md) and no request; ``off`` skips the text
    layer, ``repair`` re-reads pages at risk."""
    verify_min_coverage: float = 0.85
    """A page whose OCR text holds less of the text layer than this is flagged."""
    verify_max_unsupported: float = 0.25
    """A page with a larger share of OCR words absent from the text layer is flagged."""
    repair_max_requests: int = 4
    """Extra requests one page may spend on repair (tiles)."""
    repair_tile_ratio: float = 5.0
    """Text tokens per vision token each tile should carry (half the ``at_risk`` band's 10):
    a denser page is cut into more bands, within ``repair_max_requests``."""
    repair_budget: float = REPAIR_BUDGET
    """Extra requests the whole run may spend, as a share of its pages started so far (0.2:
    20 % more requests; a repair by tiles needs 2, so a run repairs its first page once it has
    started 10 pages; 2.0 lets every page be repaired)."""
    gap_fill: bool = False
    """``repair``: add text-layer words no block covers as ``text`` blocks
    (``source="text_layer"`` in ``regions``)."""

    def __post_init__(self) -> None:
        if self.verify not in VERIFY_MODES:
            raise ConfigError(f"verify must be 'off', 'flag' or 'repair', got {self.verify!r}")
        if not isinstance(self.repair_budget, (int, float)) or self.repair_budget < 0:
            raise ConfigError(f"repair_budget must be >= 0, got {self.repair_budget!r}")
        for name in ("verify_min_coverage", "verify_max_unsupported"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be within [0, 1], got {value!r}")
        if not isinstance(self.repair_tile_ratio, (int, float)) or self.repair_tile_ratio <= 0:
            raise ConfigError(f"repair_tile_ratio must be > 0, got {self.repair_tile_ratio!r}")
        if not isinstance(self.repair_max_requests, int) or self.repair_max_requests < 0:
            raise ConfigError(
                f"repair_max_requests must be an int >= 0, got {self.repair_max_requests!r}"
            )


def verdict(check: PageCheck, settings: VerifySettings) -> VerificationStatus:
    """``ok`` or ``flagged`` for a page with a usable text layer: flagged below the coverage
    threshold, above the unsupported one, or with a block the page does not hold at all."""
    if check.layer_tokens == 0:
        return "ok"
    low = check.coverage < settings.verify_min_coverage
    made_up = check.unsupported > settings.verify_max_unsupported or check.invented > 0
    return "flagged" if low or made_up else "ok"


def risk_reasons(
    page: Page, risk: str, check: PageCheck | None, settings: VerifySettings
) -> tuple[str, ...]:
    """Why a page is worth re-reading (empty: it is not)."""
    reasons: list[str] = []
    if risk in ("at_risk", "lossy"):
        reasons.append(risk)
    if page.loop_cut:
        reasons.append("loop")
    elif page.status == "truncated":
        reasons.append("truncated")
    if check is not None and check.layer_tokens:
        if check.coverage < settings.verify_min_coverage:
            reasons.append("coverage")
        if check.unsupported > settings.verify_max_unsupported or check.invented:
            reasons.append("unsupported")
    return tuple(reasons)


@dataclass
class RepairBudget:
    """The run's allowance of extra requests: at every moment, requests spent on repair are
    at most ``floor(share * pages started)``, so the whole run spends at most ``share`` more
    requests than it has pages. Single event loop: no lock needed."""

    share: float
    pages: int = 0
    spent: int = 0
    refused: int = field(default=0)

    def page_started(self) -> None:
        self.pages += 1

    @property
    def left(self) -> int:
        return max(0, math.floor(self.share * self.pages + 1e-9) - self.spent)

    def take(self, n: int) -> bool:
        """Spend ``n`` requests if the allowance has them; all or nothing."""
        if n <= 0 or n > self.left:
            self.refused += n > 0
            return False
        self.spent += n
        return True
