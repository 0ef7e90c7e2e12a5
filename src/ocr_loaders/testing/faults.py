"""Fault injection for reliability tests: random faults at seeded rates, or a scripted sequence.

Each chat request gets exactly one outcome. A scripted outcome (by request number, 0-based)
wins; past the end of the script, outcomes are drawn from the rates with a seeded RNG, so a run
is reproducible. A client may also force one outcome per request with the
``x-fake-ocr-fault`` header (handy in tests that drive the server through a library).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

Fault = Literal[
    "ok", "500", "503", "429", "reset", "hang", "bad_json", "error_200", "empty", "length"
]
"""One request's outcome.

``ok`` normal answer; ``500``/``503``/``429`` that HTTP error (429 with ``Retry-After``);
``reset`` the connection is closed without a response (TCP RST); ``hang`` the server waits
``hang_seconds`` and then answers normally; ``bad_json`` HTTP 200 whose body is not JSON;
``error_200`` HTTP 200 whose JSON is an error object; ``empty`` a normal answer with empty
content; ``length`` a normal answer cut at ``max_tokens`` with ``finish_reason="length"`` (the
responder's text is repeated until it is long enough, like a repetition loop).
"""

FAULTS: tuple[Fault, ...] = get_args(Fault)
FAULT_HEADER = "x-fake-ocr-fault"
MAX_HANG_SECONDS = 300.0

# Order in which rates are laid out on [0, 1): fixed so a seed always means the same run.
RATE_ORDER: tuple[tuple[str, Fault], ...] = (
    ("error_500", "500"),
    ("error_503", "503"),
    ("error_429", "429"),
    ("reset", "reset"),
    ("hang", "hang"),
    ("bad_json", "bad_json"),
    ("error_200", "error_200"),
    ("empty", "empty"),
    ("length", "length"),
)
"""``(FaultPlan field, fault)`` for every rate; ``python -m ocr_loaders.testing`` names its
``--fault-*`` flags after the faults."""


def parse_fault(name: str) -> Fault:
    """Validate a fault name (``"500"``, ``"reset"``...); raises ``ValueError`` if unknown."""
    value = name.strip().lower()
    for fault in FAULTS:
        if value == fault:
            return fault
    raise ValueError(f"unknown fault {name!r}; expected one of {', '.join(FAULTS)}")


@dataclass(frozen=True)
class FaultPlan:
    """Which faults to inject: rates in [0, 1] (their sum at most 1) and/or a script.

    ``script`` lists outcomes for requests 0, 1, 2... (e.g. ``("500", "429", "ok")``); later
    requests draw from the rates. ``retry_after`` is the ``Retry-After`` header value (seconds)
    sent with 429 (and 503); ``hang_seconds`` how long a ``hang`` waits, capped at 300 s.
    """

    error_500: float = 0.0
    error_503: float = 0.0
    error_429: float = 0.0
    reset: float = 0.0
    hang: float = 0.0
    bad_json: float = 0.0
    error_200: float = 0.0
    empty: float = 0.0
    length: float = 0.0
    script: Sequence[str] = ()
    retry_after: float = 1.0
    hang_seconds: float = 10.0
    seed: int | None = None
    """RNG seed for the rates; ``None`` uses the server's ``seed``."""
    _script: tuple[Fault, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        total = 0.0
        for attr, _fault in RATE_ORDER:
            rate = getattr(self, attr)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"FaultPlan.{attr} must be within [0, 1], got {rate}")
            total += rate
        if total > 1.0 + 1e-9:
            raise ValueError(f"FaultPlan rates add up to {total:.3f}, more than 1")
        if self.retry_after < 0:
            raise ValueError("FaultPlan.retry_after must be >= 0")
        if not 0.0 <= self.hang_seconds <= MAX_HANG_SECONDS:
            raise ValueError(f"FaultPlan.hang_seconds must be within [0, {MAX_HANG_SECONDS}]")
        object.__setattr__(self, "_script", tuple(parse_fault(s) for s in self.script))

    @property
    def scripted(self) -> tuple[Fault, ...]:
        """The script, validated."""
        return self._script

    @property
    def any_rate(self) -> bool:
        """True when at least one rate is non-zero."""
        return any(getattr(self, attr) > 0 for attr, _ in RATE_ORDER)

    def retry_after_header(self) -> str:
        """The ``Retry-After`` value: whole seconds when integral, else a decimal."""
        value = self.retry_after
        return str(int(value)) if float(value).is_integer() else f"{value:g}"


class FaultPicker:
    """Thread-safe chooser of per-request outcomes for one :class:`FaultPlan`."""

    def __init__(self, plan: FaultPlan, seed: int) -> None:
        self.plan = plan
        self._rng = random.Random(plan.seed if plan.seed is not None else seed)
        self._lock = threading.Lock()

    def pick(self, seq: int) -> Fault:
        """The outcome for request number ``seq`` (0-based)."""
        script = self.plan.scripted
        if seq < len(script):
            return script[seq]
        if not self.plan.any_rate:
            return "ok"
        with self._lock:
            u = self._rng.random()
        edge = 0.0
        for attr, fault in RATE_ORDER:
            edge += getattr(self.plan, attr)
            if u < edge:
                return fault
        return "ok"
