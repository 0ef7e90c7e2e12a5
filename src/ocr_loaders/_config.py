"""Loader options: one frozen dataclass built from keyword arguments and the environment.

Both adapters and the CLI accept the same options (docs/usage.md lists them). Unknown names
are an error, not silently ignored.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast

from ._chunking import ChunkOptions
from ._defaults import DEFAULT_MODEL
from ._engines.base import Engine
from ._engines.settings import EndpointSettings, split_base_urls
from ._errors import ConfigError
from ._passwords import Password
from ._rendering.raster import RenderSettings
from ._sources import PageSelection
from ._verify.policy import VerifySettings

ENV_BASE_URL = "DEEPSEEK_OCR_BASE_URL"
ENV_API_KEY = "DEEPSEEK_OCR_API_KEY"
ENV_MODEL = "DEEPSEEK_OCR_MODEL"

OnError = Literal["continue", "raise"]


@dataclass(frozen=True)
class LoaderOptions:
    """Everything that shapes a load. Build with :meth:`from_kwargs`."""

    endpoint: EndpointSettings = EndpointSettings()
    """The server to use; no ``base_urls``: the embedded local engine runs."""
    pages: PageSelection = PageSelection()
    password: Password = field(default=None, repr=False)
    """One password, a mapping (file name or path -> password) or a function of the path."""
    concurrency: int = 16
    render: RenderSettings = RenderSettings()
    chunk: ChunkOptions = ChunkOptions()
    render_workers: int = 1
    """Render processes; 0 renders on a thread of this process (no render timeout)."""
    render_timeout: float = 120.0
    """Seconds one page may take to render before it is given up as ``failed``."""
    on_error: OnError = "continue"
    """``continue``: an unreadable file or a failed page is logged, listed in the stats'
    ``failures`` and left out; ``raise``: the first one is raised (docs/reliability.md)."""
    show_progress: bool = False
    """The Python API shows a progress bar over pages on stderr (the CLI has its own)."""
    cache: bool = False
    cache_dir: Path | None = None
    cache_max_bytes: int = 2 * 1024**3
    engine: Engine | Literal["vllm"] | None = None
    """An engine instance to use instead of the one the other options describe, or
    ``"vllm"``: DeepSeek-OCR run by vLLM in this process (the ``vllm`` extra, a GPU)."""
    vllm_options: tuple[tuple[str, object], ...] = ()
    """With ``engine="vllm"``: more keyword arguments for ``vllm.LLM`` (a dict is accepted),
    e.g. ``{"gpu_memory_utilization": 0.8, "max_model_len": 8192}``."""
    verification: VerifySettings = VerifySettings()
    """The text-layer cross-check and repair: ``verify``, its thresholds and budgets, taken
    flat (docs/verification.md)."""
    force_ocr: bool = False
    """The local engine OCRs every page, even one with a good text layer."""

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.render_workers < 0 or self.render_timeout <= 0:
            raise ConfigError("render_workers must be >= 0 and render_timeout > 0")
        if isinstance(self.engine, str) and self.engine != "vllm":
            raise ConfigError(f"engine must be an Engine or 'vllm', got {self.engine!r}")
        if isinstance(self.vllm_options, Mapping):
            object.__setattr__(self, "vllm_options", tuple(dict(self.vllm_options).items()))
        if self.on_error not in ("continue", "raise"):
            raise ConfigError(f"on_error must be 'continue' or 'raise', got {self.on_error!r}")
        object.__setattr__(self, "password", _checked_password(self.password))

    @property
    def base_urls(self) -> tuple[str, ...]:
        return self.endpoint.base_urls

    @property
    def model(self) -> str:
        return self.endpoint.model

    @property
    def prompt(self) -> str:
        return self.endpoint.prompt

    @property
    def uses_endpoint(self) -> bool:
        return bool(self.endpoint.base_urls)

    @classmethod
    def from_kwargs(
        cls,
        base_url: str | list[str] | tuple[str, ...] | None = None,
        model: str | None = None,
        api_key: str | None = None,
        **options: Any,
    ) -> LoaderOptions:
        """Options from the public keyword arguments, falling back to the environment.

        ``base_url`` (or ``DEEPSEEK_OCR_BASE_URL``) may hold several comma-separated URLs.
        Endpoint (``dialect``, ``prompt``, ``timeout``, ``max_attempts``, ...), rendering
        (``dpi``, ``image_format``, ``max_pixels``, ``jpeg_quality``) and chunking
        (``chunk_size``, ``chunk_overlap``, ``mode``, ``tables``) options are accepted flat.
        """
        endpoint_keys = _field_names(EndpointSettings) - {"base_urls"}
        render_keys = _field_names(RenderSettings)
        chunk_keys = _field_names(ChunkOptions)
        verify_keys = _field_names(VerifySettings)
        own_keys = _field_names(cls) - {"endpoint"}
        endpoint_kw = _take(options, endpoint_keys)
        render_kw = _take(options, render_keys)
        chunk_kw = _take(options, chunk_keys)
        verify_kw = _take(options, verify_keys)
        if verify_kw:
            options["verification"] = VerifySettings(**verify_kw)
        unknown = set(options) - own_keys
        if unknown:
            valid = sorted(
                own_keys | endpoint_keys | render_keys | chunk_keys | verify_keys | {"base_url"}
            )
            raise TypeError(f"unknown option(s) {sorted(unknown)}; valid options: {valid}")
        url = base_url if base_url is not None else os.environ.get(ENV_BASE_URL, "")
        if "pages" in options:
            options["pages"] = PageSelection.parse(options["pages"])
        if options.get("cache_dir") is not None:
            options["cache_dir"] = Path(options["cache_dir"]).expanduser()
        try:
            endpoint = EndpointSettings(
                base_urls=split_base_urls(url),
                model=model or os.environ.get(ENV_MODEL) or DEFAULT_MODEL,
                api_key=api_key if api_key is not None else os.environ.get(ENV_API_KEY),
                **endpoint_kw,
            )
            return cls(
                endpoint=endpoint,
                render=RenderSettings(**render_kw),
                chunk=ChunkOptions(**chunk_kw),
                **options,
            )
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc)) from exc


def _checked_password(password: object) -> Password:
    """The ``password`` option validated; a mapping is copied (keys as str, read-only)."""
    if password is None or isinstance(password, str):
        return password
    if isinstance(password, Mapping):
        copied: dict[str, str] = {}
        for key, value in password.items():
            if not isinstance(key, (str, os.PathLike)) or not isinstance(value, str):
                raise ConfigError("a password mapping maps file names or paths to str passwords")
            copied[os.fspath(key)] = value
        return MappingProxyType(copied)
    if callable(password):
        return cast(Password, password)
    raise ConfigError(
        "password must be a str, a mapping of file name or path to password, or a function "
        f"of the path; got {type(password).__name__}"
    )


def _field_names(settings: type[Any]) -> set[str]:
    return {f.name for f in dataclasses.fields(settings)}


def _take(options: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    """Remove and return the entries of ``options`` named in ``keys``."""
    return {k: options.pop(k) for k in list(options) if k in keys}
