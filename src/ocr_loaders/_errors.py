"""The project's exceptions: one small tree, every message naming the file and page.

```
OCRLoadersError
├── InputError                 bad input; raised before or while reading a file
│   ├── InputNotFoundError     missing path, or a glob/folder matching nothing
│   ├── UnreadableInputError   permission denied, a directory where a file was expected
│   ├── UnsupportedInputError  not a PDF or an image we can read
│   ├── CorruptInputError      zero-byte, truncated beyond repair, undecodable
│   ├── EmptyDocumentError     a valid PDF with no pages
│   ├── PasswordError          encrypted: no password, or the wrong one
│   └── PageRenderError        one page cannot be rendered (too slow, broken content)
├── EngineError                the OCR engine failed
│   ├── EndpointError          the server answered with an error we cannot retry (4xx)
│   ├── EndpointUnavailableError  the server is down or kept failing after retries
│   └── PageFailedError        a page ended ``failed`` while ``on_error="raise"``
└── ConfigError                invalid options (bad page range, unknown dialect, ...)
```
"""

from __future__ import annotations

from collections.abc import Sequence


class OCRLoadersError(Exception):
    """Base of every error this project raises on purpose.

    ``documents``: when a load that returns a list (``load_data``, ``aload_data``, ``load``,
    ``aload``) raises, the framework documents it had produced before the error, in order, so
    the finished work is not lost. Empty elsewhere (a streaming caller already has them).
    """

    documents: Sequence[object] = ()


class InputError(OCRLoadersError):
    """Bad input. ``path`` names the file, ``page`` the 1-based page when one is at fault."""

    def __init__(self, message: str, *, path: str = "", page: int | None = None) -> None:
        self.path = path
        self.page = page
        where = path
        if page is not None:
            where = f"{path}, page {page}" if path else f"page {page}"
        super().__init__(f"{where}: {message}" if where else message)
        self.reason = message


class InputNotFoundError(InputError):
    """The path does not exist, or a folder or glob matched no readable file."""


class UnreadableInputError(InputError):
    """The file exists but cannot be read (permissions, a directory, an I/O error)."""


class UnsupportedInputError(InputError):
    """Not a PDF or an image format the project reads."""


class CorruptInputError(InputError):
    """The file is damaged beyond what MuPDF can repair, or empty."""


class EmptyDocumentError(InputError):
    """A readable PDF with zero pages."""


class PasswordError(InputError):
    """An encrypted PDF opened with no password or the wrong one."""


class PageRenderError(InputError):
    """A single page could not be rendered."""


class EngineError(OCRLoadersError):
    """The OCR engine failed."""


class EndpointError(EngineError):
    """The server rejected a request in a way retrying cannot fix (e.g. 400, 401, 404)."""


class EndpointUnavailableError(EngineError):
    """The server is unreachable, or kept failing after every retry."""


class PageFailedError(EngineError):
    """A page ended ``failed`` and the caller asked for ``on_error="raise"``."""

    def __init__(self, message: str, *, path: str = "", page: int | None = None) -> None:
        self.path = path
        self.page = page
        super().__init__(f"{path}, page {page}: {message}" if path else message)


class ConfigError(OCRLoadersError, ValueError):
    """Invalid options: a bad page range, an unknown dialect, a negative size."""
