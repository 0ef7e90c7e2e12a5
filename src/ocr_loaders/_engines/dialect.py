"""Is this server vLLM or SGLang? Asked once per engine, over plain blocking HTTP."""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request

from .._defaults import ServerDialect

log = logging.getLogger(__name__)


def detect_dialect(
    base_url: str, api_key: str | None = None, timeout: float = 10.0
) -> ServerDialect | None:
    """``vllm`` or ``sglang``, from what the server says about itself; ``None`` if unreachable.

    Both list their models with ``owned_by`` set to their own name; failing that, SGLang
    answers ``/get_model_info`` and vLLM ``/version``. A server that answers none of these is
    treated as vLLM (whose request shape is the OpenAI one).
    """
    root = re.sub(r"/v\d+$", "", base_url.rstrip("/"))
    reached = False
    try:
        models = _get_json(f"{base_url.rstrip('/')}/models", api_key, timeout)
        reached = True
        listed = models.get("data", []) if isinstance(models, dict) else []
        owners = {str(m.get("owned_by", "")).lower() for m in listed if isinstance(m, dict)}
        if "sglang" in owners:
            return "sglang"
        if "vllm" in owners:
            return "vllm"
    except Exception as exc:
        reached = reached or _answered(exc)
        log.debug("dialect probe /models failed: %s", exc)
    probes: tuple[tuple[str, ServerDialect], ...] = (
        ("/get_model_info", "sglang"),
        ("/version", "vllm"),
    )
    for path, dialect in probes:
        try:
            _get_json(root + path, api_key, timeout)
            return dialect
        except Exception as exc:
            reached = reached or _answered(exc)
            log.debug("dialect probe %s failed: %s", path, exc)
    if not reached:
        return None
    log.warning(
        "could not tell whether %s is vLLM or SGLang; using the vLLM request shape", base_url
    )
    return "vllm"


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


__all__ = ["detect_dialect"]
