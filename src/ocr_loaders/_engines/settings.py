"""How to talk to a DeepSeek-OCR server: plain settings, no engine.

:class:`EndpointSettings` sits inside :class:`~ocr_loaders._config.LoaderOptions` (as
``endpoint``), where no URL means the local engine runs; the endpoint engine itself refuses
settings without one. Defaults follow DeepSeek's recipes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .._defaults import DEFAULT_MODEL, GROUNDING_PROMPT, Dialect
from .._errors import ConfigError

TD_TOKEN_IDS = (128821, 128822)
"""``<td>`` and ``</td>``: table cells repeat legitimately, so the n-gram guard ignores them."""


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    """Everything about talking to the server."""

    base_urls: tuple[str, ...] = ()
    """Empty: no endpoint (the options then pick the local engine)."""
    model: str = DEFAULT_MODEL
    api_key: str | None = field(default=None, repr=False)
    dialect: Dialect = "auto"
    prompt: str = GROUNDING_PROMPT
    timeout: float = 300.0
    """Seconds for one whole request (a dense page can generate ~7000 tokens)."""
    connect_timeout: float = 10.0
    max_attempts: int = 6
    """Tries per request for transport faults (429, 5xx, resets, timeouts, bad bodies)."""
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    unavailable_after: float = 45.0
    """Seconds of nothing but connection failures after which the run stops."""
    backup_requests: bool = True
    """Once every page is in flight, copy requests waiting on a busy endpoint to an idle one
    (first answer wins). Off: each request is sent once."""
    stream: bool = False
    """Read answers as they are generated and stop one as soon as it loops: the server aborts
    it and frees its slot, and the tighter-guard retry starts seconds, not minutes, later
    (docs/benchmarks.md, "Saturation under variance"). Off: one JSON answer per request."""
    output_retries: int = 2
    """Extra tries for a page that hit max_tokens or came back empty: tighter guard, then
    ``Free OCR.``."""
    max_model_len: int = 8192
    """The context assumed for a server that does not list one in ``/v1/models`` (until a
    refusal names it), and a cap on the one it lists."""
    ngram_size: int = 30
    window_size: int = 90
    whitelist_token_ids: tuple[int, ...] = TD_TOKEN_IDS
    sglang_logit_processor: str | None = field(default=None, repr=False)
    """SGLang only: a serialized custom logit processor to send instead of the client's own
    ``DeepseekOCRNoRepeatNGramLogitProcessor`` reference (the server must run with
    ``--enable-custom-logit-processor``; without it the guard is dropped, with one warning)."""

    def __post_init__(self) -> None:
        if self.dialect not in ("vllm", "sglang", "auto"):
            raise ConfigError(f"dialect must be 'vllm', 'sglang' or 'auto', got {self.dialect!r}")
        if self.max_attempts < 1 or self.timeout <= 0:
            raise ConfigError("max_attempts must be >= 1 and timeout > 0")


def split_base_urls(urls: str | Iterable[str]) -> tuple[str, ...]:
    """One URL, several, or comma-separated ones (as in ``DEEPSEEK_OCR_BASE_URL``), flattened,
    stripped, empty entries dropped."""
    items = [urls] if isinstance(urls, str) else list(urls)
    return tuple(u.strip() for item in items for u in item.split(",") if u.strip())


__all__ = ["TD_TOKEN_IDS", "EndpointSettings", "split_base_urls"]
