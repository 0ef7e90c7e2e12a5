"""What a server is: vLLM or SGLang, and its context length. Asked once per engine and
endpoint, over plain blocking HTTP."""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from dataclasses import dataclass

from .._defaults import ServerDialect

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What one endpoint said about itself."""

    dialect: ServerDialect
    max_model_len: int | None
    """``data[i].max_model_len`` of ``GET /v1/models`` (vLLM and SGLang list it); ``None``
    when not listed."""


def probe_server(
    base_url: str,
    api_key: str | None = None,
    timeout: float = 10.0,
    model: str | None = None,
    dialect: ServerDialect | None = None,
) -> ServerInfo | None:
    """The server's dialect and context length; ``None`` if unreachable.

    Both servers list their models with ``owned_by`` set to their own name and the context as
    ``max_model_len``; failing ``owned_by``, SGLang answers ``/get_model_info`` and vLLM
    ``/version``. A server that answers none of these is treated as vLLM (whose request shape
    is the OpenAI one). A known ``dialect`` skips those extra probes.
    """
    root = re.sub(r"/v\d+$", "", base_url.rstrip("/"))
    reached = False
    max_model_len: int | None = None
    try:
        models = _get_json(f"{base_url.rstrip('/')}/models", api_key, timeout)
        reached = True
        listed = models.get("data", []) if isinstance(models, dict) else []
        cards = [m for m in listed if isinstance(m, dict)]
        max_model_len = listed_max_model_len(cards, model)
        owners = {str(m.get("owned_by", "")).lower() for m in cards}
        if dialect is None and "sglang" in owners:
            dialect = "sglang"
        elif dialect is None and "vllm" in owners:
            dialect = "vllm"
    except Exception as exc:
        reached = reached or _answered(exc)
        log.debug("probe of %s/models failed: %s", base_url, exc)
    if dialect is not None:
        return ServerInfo(dialect, max_model_len) if reached else None
    probes: tuple[tuple[str, ServerDialect], ...] = (
        ("/get_model_info", "sglang"),
        ("/version", "vllm"),
    )
    for path, answer in probes:
        try:
            _get_json(root + path, api_key, timeout)
            return ServerInfo(answer, max_model_len)
        except Exception as exc:
            reached = reached or _answered(exc)
            log.debug("dialect probe %s failed: %s", path, exc)
    if not reached:
        return None
    log.warning(
        "could not tell whether %s is vLLM or SGLang; using the vLLM request shape", base_url
    )
    return ServerInfo("vllm", max_model_len)


def listed_max_model_len(cards: list[dict[str, object]], model: str | None) -> int | None:
    """``max_model_len`` of the card named ``model`` (else of the first card listing one)."""
    ordered = sorted(cards, key=lambda c: c.get("id") != model)
    for card in ordered:
        value = card.get("max_model_len")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def detect_dialect(
    base_url: str, api_key: str | None = None, timeout: float = 10.0
) -> ServerDialect | None:
    """``vllm`` or ``sglang`` (see :func:`probe_server`); ``None`` if unreachable."""
    info = probe_server(base_url, api_key, timeout)
    return info.dialect if info is not None else None


def _get_json(url: str, api_key: str | None, timeout: float) -> object:
    """The decoded JSON body of a GET (``ValueError`` if it is not JSON)."""
    headers = {"Authorization": f"Bearer {api_key or 'EMPTY'}"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) checked
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        decoded: object = json.loads(response.read())
        return decoded


def _answered(exc: BaseException) -> bool:
    """The server answered (an HTTP error or a bad body), as opposed to being unreachable."""
    return isinstance(exc, (urllib.error.HTTPError, ValueError))


__all__ = ["ServerInfo", "detect_dialect", "listed_max_model_len", "probe_server"]
