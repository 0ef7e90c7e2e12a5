"""Rendering in worker processes: child processes that own open documents and rasterize pages.

Why processes: PyMuPDF is not thread-safe, a malformed page can hang or crash MuPDF, and
rendering is CPU work that should not compete with the event loop for the GIL. Each worker is
``python -m ocr_loaders._rendering.process`` talking length-prefixed pickle frames over its
stdin/stdout (plain subprocesses, so a user's unguarded script is never re-imported the way
``multiprocessing`` spawn does). A render that exceeds ``render_timeout`` kills its worker; the
page fails with :class:`~ocr_loaders._errors.PageRenderError` and a fresh worker re-opens the
documents it needs. A worker that dies (segfault, out of memory) is replaced the same way.

The pool is shared by every pipeline in the process, started on first use and stopped at exit.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import IO, Any, Literal

from .._engines.base import PageHook
from .._errors import InputError, PageRenderError, UnreadableInputError
from .._model import Crop, PageImage
from .._mupdf_setup import import_pymupdf_without_addons
from .._sources import DocumentOutline, DocumentSource, describe
from .crops import CropSettings, CropTarget, clip_pdf
from .raster import RasterDocument, RenderSettings, open_document
from .thread import Offload

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!Q")


@dataclass(frozen=True)
class _Open:
    key: str
    src: DocumentSource
    password: str | None
    doc_hash: str


@dataclass(frozen=True)
class _Render:
    key: str
    number: int
    settings: RenderSettings
    hook: PageHook | None


@dataclass(frozen=True)
class _Crop:
    key: str
    number: int
    targets: tuple[CropTarget, ...]
    settings: CropSettings
    zoom: float


@dataclass(frozen=True)
class _Close:
    key: str


_Request = _Open | _Render | _Crop | _Close
"""What the parent asks a worker; each request gets one :class:`_Reply`."""


@dataclass(frozen=True)
class _Reply:
    """``ok`` with the rendered image or crops (if any), ``error`` raised in the parent, or
    ``dead``: the pipe broke (made up by the parent's reader thread, never sent)."""

    status: Literal["ok", "error", "dead"]
    image: PageImage | None = None
    error: BaseException | None = None
    crops: tuple[Crop, ...] = ()


def _write_frame(stream: IO[bytes], obj: _Request | _Reply) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_frame(stream: IO[bytes]) -> Any:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError("worker pipe closed")
    (size,) = _HEADER.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("worker pipe closed mid-frame")
    return pickle.loads(data)  # noqa: S301 - frames come from our own child process


# --- the child side -------------------------------------------------------------------------


def _serve(inp: IO[bytes], out: IO[bytes]) -> None:
    """Worker loop: open / render / close requests until the pipe closes."""
    docs: dict[str, RasterDocument] = {}
    while True:
        try:
            request = _read_frame(inp)
        except EOFError:
            return
        try:
            reply = _handle(docs, request)
        except Exception as exc:  # sent back and raised in the parent
            reply = _Reply("error", error=exc)
        try:
            _write_frame(out, reply)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            error = PageRenderError(f"result not transferable: {exc}")
            _write_frame(out, _Reply("error", error=error))


def _handle(docs: dict[str, RasterDocument], request: object) -> _Reply:
    """Carry out one request on the documents this worker has open."""
    if isinstance(request, _Open):
        if request.key not in docs:
            docs[request.key] = open_document(
                request.src, request.password, known_hash=request.doc_hash
            )
        return _Reply("ok")
    if isinstance(request, _Render):
        image = docs[request.key].render(request.number, request.settings, request.hook)
        return _Reply("ok", image=image)
    if isinstance(request, _Crop):
        doc = docs[request.key]
        crops = clip_pdf(doc, request.number, request.targets, request.settings, request.zoom)
        return _Reply("ok", crops=crops)
    if isinstance(request, _Close):
        if request.key in docs:
            docs.pop(request.key).close()
        return _Reply("ok")
    return _Reply("error", error=UnreadableInputError(f"unknown worker request {request!r}"))


def main() -> None:
    """Entry point of ``python -m ocr_loaders._rendering.process``."""
    proto_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt frames
    try:
        pymupdf = import_pymupdf_without_addons()
        pymupdf.TOOLS.mupdf_display_errors(False)
    except Exception:  # noqa: S110 - quieter logs are a nicety
        pass
    _serve(sys.stdin.buffer, proto_out)


# --- the parent side ------------------------------------------------------------------------


class _Worker:
    """One child process; one request at a time (callers hold ``lock``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.replies: queue.Queue[_Reply] = queue.Queue()
        self.opened: set[str] = set()

    def _start(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "ocr_loaders._rendering.process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            env=env,
            close_fds=True,
        )
        self.replies = queue.Queue()
        stdout = proc.stdout
        assert stdout is not None

        def pump(stream: IO[bytes], box: queue.Queue[_Reply]) -> None:
            while True:
                try:
                    box.put(_read_frame(stream))
                except Exception as exc:
                    box.put(_Reply("dead", error=exc))
                    return

        threading.Thread(
            target=pump, args=(stdout, self.replies), daemon=True, name="ocr-loaders-worker-reader"
        ).start()
        self.opened = set()
        return proc

    def call(self, request: _Request, timeout: float | None) -> _Reply:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            _write_frame(stdin, request)
            reply = self.replies.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise TimeoutError from None
        except (BrokenPipeError, OSError) as exc:
            self.kill()
            raise ChildProcessError(f"render worker died ({exc})") from exc
        if reply.status == "dead":
            self.kill()
            raise ChildProcessError(f"render worker died ({reply.error})")
        if reply.error is not None:
            raise reply.error
        return reply

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        self.opened = set()
        if proc is None:
            return
        try:
            proc.kill()
            proc.wait(timeout=5)
        except Exception:  # noqa: S110 - best effort
            pass
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except Exception:  # noqa: S110 - best effort
                pass


@dataclass
class _Doc:
    key: str
    src: DocumentSource
    password: str | None
    doc_hash: str


class RenderPool:
    """A pool of render workers shared by the pipelines of this process."""

    def __init__(self, size: int = 1) -> None:
        self.size = max(1, size)
        self._workers = [_Worker() for _ in range(self.size)]
        self._free: queue.Queue[_Worker] = queue.Queue()
        for w in self._workers:
            self._free.put(w)
        self._docs: dict[str, _Doc] = {}
        self._lock = threading.Lock()
        self._counter = 0

    def _checkout(self) -> _Worker:
        return self._free.get()

    def _checkin(self, worker: _Worker) -> None:
        self._free.put(worker)

    def _ensure_open(self, worker: _Worker, doc: _Doc, timeout: float | None) -> None:
        worker.call(_Open(doc.key, doc.src, doc.password, doc.doc_hash), timeout)
        worker.opened.add(doc.key)

    # -- blocking operations (run in threads by the async wrappers) ----------------------

    def register(self, src: DocumentSource, password: str | None, doc_hash: str) -> str:
        """Make a document known to the pool; workers open it on its first render."""
        with self._lock:
            self._counter += 1
            key = f"d{self._counter}"
            self._docs[key] = _Doc(key, src, password, doc_hash)
        return key

    def render(
        self,
        key: str,
        number: int,
        settings: RenderSettings,
        hook: PageHook | None,
        timeout: float | None,
    ) -> PageImage:
        image = self._call(key, number, _Render(key, number, settings, hook), timeout).image
        assert image is not None
        return image

    def crop(
        self,
        key: str,
        number: int,
        targets: tuple[CropTarget, ...],
        settings: CropSettings,
        zoom: float,
        timeout: float | None,
    ) -> tuple[Crop, ...]:
        request = _Crop(key, number, targets, settings, zoom)
        return self._call(key, number, request, timeout).crops

    def _call(
        self, key: str, number: int, request: _Render | _Crop, timeout: float | None
    ) -> _Reply:
        """One request about page ``number`` on a worker that has the document open."""
        doc = self._docs[key]
        worker = self._checkout()
        try:
            if key not in worker.opened:
                self._ensure_open(worker, doc, timeout)
            return worker.call(request, timeout)
        except TimeoutError:
            raise PageRenderError(
                f"rendering took longer than {timeout:.0f} s; skipped",
                path=doc.src.name,
                page=number,
            ) from None
        except ChildProcessError as exc:
            raise PageRenderError(
                f"the renderer crashed on this page ({exc})", path=doc.src.name, page=number
            ) from None
        except InputError as exc:
            if isinstance(exc, PageRenderError):
                raise
            raise PageRenderError(exc.reason, path=doc.src.name, page=number) from None
        finally:
            self._checkin(worker)

    def close(self, key: str) -> None:
        with self._lock:
            self._docs.pop(key, None)
        for _ in range(self.size):
            worker = self._checkout()
            try:
                if key in worker.opened:
                    try:
                        worker.call(_Close(key), 30.0)
                    except Exception:  # a dead worker has nothing open
                        worker.kill()
                    worker.opened.discard(key)
            finally:
                self._checkin(worker)
            if not any(key in w.opened for w in self._workers):
                break

    def shutdown(self) -> None:
        for w in self._workers:
            w.kill()


_POOLS: dict[int, RenderPool] = {}
_POOLS_LOCK = threading.Lock()


def shared_pool(size: int) -> RenderPool:
    """The process-wide pool of ``size`` workers (started lazily, stopped at exit)."""
    with _POOLS_LOCK:
        pool = _POOLS.get(size)
        if pool is None:
            pool = _POOLS[size] = RenderPool(size)
        return pool


@atexit.register
def _shutdown_pools() -> None:
    for pool in list(_POOLS.values()):
        pool.shutdown()


class RemoteDocument:
    """A document registered with the render workers: its outline here, its handle there."""

    def __init__(self, outline: DocumentOutline, key: str, renderer: ProcessRenderer) -> None:
        self._outline = outline
        self.key = key
        self._renderer = renderer

    @property
    def outline(self) -> DocumentOutline:
        return self._outline

    async def render(
        self, number: int, settings: RenderSettings, hook: PageHook | None
    ) -> PageImage:
        r = self._renderer
        return await r.threads.run(
            r.pool.render, self.key, number, settings, hook, r.render_timeout
        )

    async def crop(
        self, number: int, targets: tuple[CropTarget, ...], settings: CropSettings, zoom: float
    ) -> tuple[Crop, ...]:
        r = self._renderer
        return await r.threads.run(
            r.pool.crop, self.key, number, targets, settings, zoom, r.render_timeout
        )

    async def close(self) -> None:
        r = self._renderer
        await r.threads.run(r.pool.close, self.key)


class ProcessRenderer:
    """Async face of the pool for one pipeline run: open, render, close documents."""

    def __init__(self, pool: RenderPool, render_timeout: float | None) -> None:
        self.pool = pool
        self.render_timeout = render_timeout
        self.threads = Offload(pool.size + 1, "ocr-loaders-io")

    async def open(self, src: DocumentSource, password: str | None) -> RemoteDocument:
        """Check the input and read its outline here; workers open it when a page is
        rendered, so a run served entirely from the cache starts no worker at all."""
        outline = await self.threads.run(_inspect, src, password)
        return await self.adopt(src, password, outline)

    async def adopt(
        self, src: DocumentSource, password: str | None, outline: DocumentOutline
    ) -> RemoteDocument:
        """A document whose outline is already known: registered, not opened."""
        key = self.pool.register(src, password, outline.info.doc_hash)
        return RemoteDocument(outline, key, self)

    def shutdown(self) -> None:
        self.threads.shutdown()


_INSPECT_LOCK = threading.Lock()


def _inspect(src: DocumentSource, password: str | None) -> DocumentOutline:
    """Open a document in this process just long enough to read its outline."""
    with _INSPECT_LOCK:  # PyMuPDF is not thread-safe; this is its only use in the parent
        return describe(src, password)


if __name__ == "__main__":
    # Run the imported module's main, so pickled classes are ocr_loaders._rendering.process.*,
    # not __main__.* (which the parent could not unpickle).
    from ocr_loaders._rendering.process import main as _main

    _main()
