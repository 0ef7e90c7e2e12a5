"""The ``password`` option: one password, a mapping from file name or path, or a function of
the path; so a folder of PDFs locked with different passwords loads in one call."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from ._errors import ConfigError


class Named(Protocol):
    """An input as far as passwords care: its name as given, and its path if it has one."""

    @property
    def name(self) -> str: ...
    @property
    def path(self) -> Path | None: ...


PasswordLookup = Callable[[str], str | None]
"""A function of a file's path (or, for bytes, its name) returning its password or ``None``."""

Password = str | Mapping[str, str] | PasswordLookup | None
"""The ``password`` option: one password for every encrypted PDF, a mapping from file name or
path to password, or a :data:`PasswordLookup`; so a folder of PDFs locked with different
passwords loads in one call."""


def password_for(password: Password, src: Named) -> str | None:
    """The password to open ``src`` with (``None``: none given for this file).

    A mapping is looked up by path first (``src``'s name as given, or a key naming the same
    file once resolved), then by file name.
    """
    if password is None or isinstance(password, str):
        return password
    if isinstance(password, Mapping):
        return _password_from_mapping(password, src)
    found = password(str(src.path) if src.path is not None else src.name)
    if found is not None and not isinstance(found, str):
        raise ConfigError(
            f"the password function returned {type(found).__name__} for {src.name}; "
            "expected a str or None"
        )
    return found


def _password_from_mapping(passwords: Mapping[str, str], src: Named) -> str | None:
    resolved = src.path.resolve() if src.path is not None else None
    file_name = src.path.name if src.path is not None else Path(src.name).name
    by_name: str | None = None
    for key, value in passwords.items():
        if key == src.name:
            return value
        if resolved is not None and ("/" in key or os.sep in key):
            if Path(key).expanduser().resolve() == resolved:
                return value
        elif key == file_name and by_name is None:
            by_name = value
    return by_name
