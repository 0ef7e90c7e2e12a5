"""HTTP plumbing of the fake server: a threading HTTP/1.1 server on loopback, the handler
that reads bodies and writes JSON, bytes and event streams, and the two ways a request ends
early (an error answer, or a dropped connection)."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import select
import socket
import struct
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

MAX_BODY_BYTES = 64 * 1024 * 1024


class HTTPError(Exception):
    """Short-circuit: answer with this status and JSON body."""

    def __init__(
        self, status: int, body: Any, headers: Mapping[str, str] | None = None, message: str = ""
    ) -> None:
        super().__init__(message or str(body))
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        self.message = message


class Dropped(Exception):
    """The connection is gone (reset on purpose, server stopping, or client went away)."""


class Connections:
    """The open client connections, so that stopping the server can drop them all at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()

    def add(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)

    def discard(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.discard(conn)

    def shutdown_all(self) -> None:
        """Shut every open connection down now (their handlers then see EOF and end)."""
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


Dispatch = Callable[["Handler", str], None]
"""Answers one request: ``(handler, HTTP method)``."""


class HTTPServer(ThreadingHTTPServer):
    """One thread per connection; requests go to ``dispatch``, set before serving starts."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(
        self,
        address: tuple[str, int],
        dispatch: Dispatch,
        connections: Connections,
        keep_alive_timeout: float | None,
    ) -> None:
        super().__init__(address, Handler)
        self.dispatch = dispatch
        self.connections = connections
        self.keep_alive_timeout = keep_alive_timeout

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that dropped its connection (a cancelled request) is routine, as for a
        real server: not printed. Anything else is, as ``socketserver`` does."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class HTTPServer6(HTTPServer):
    address_family = socket.AF_INET6


def client_gone(h: BaseHTTPRequestHandler) -> bool:
    """Whether the client closed its connection: readable with nothing to read means EOF
    (a client waiting for its answer sends nothing more on the connection)."""
    try:
        readable, _, _ = select.select([h.connection], [], [], 0)
        return bool(readable) and h.connection.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def http_server(self) -> HTTPServer:
        return cast(HTTPServer, self.server)

    def version_string(self) -> str:
        return "uvicorn"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):  # no Nagle delay between headers and body
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # uvicorn (under both vLLM and SGLang) closes a connection idle for 5 s
        self.connection.settimeout(self.http_server.keep_alive_timeout)
        self.http_server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.http_server.connections.discard(self.connection)

    def do_GET(self) -> None:
        self.http_server.dispatch(self, "GET")

    def do_POST(self) -> None:
        self.http_server.dispatch(self, "POST")

    def do_PUT(self) -> None:
        self.http_server.dispatch(self, "PUT")

    def do_DELETE(self) -> None:
        self.http_server.dispatch(self, "DELETE")

    # -- helpers used by the server --

    def read_body(self) -> bytes:
        """The request body (Content-Length or chunked); raises ``HTTPError`` if too big."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            total = 0
            while True:
                try:
                    line = self.rfile.readline(1024)
                except OSError as exc:
                    raise Dropped(str(exc)) from None
                if not line:
                    raise Dropped("client closed the connection mid-body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    raise HTTPError(413, {"detail": "Request Entity Too Large"})
                parts.append(self._read_exact(size))
                self.rfile.readline(1024)
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise HTTPError(413, {"detail": "Request Entity Too Large"})
        return self._read_exact(length) if length else b""

    def _read_exact(self, n: int) -> bytes:
        try:
            data = self.rfile.read(n)
        except OSError as exc:  # timeout or reset while the body was arriving
            raise Dropped(str(exc)) from None
        if len(data) < n:
            raise Dropped("client closed the connection mid-body")
        return data

    def send_bytes(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        try:
            self.send_response(status)
            if payload or status not in (204, 304):
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            # headers and body in one write: one segment for small answers
            self._headers_buffer.append(b"\r\n" + payload)  # type: ignore[attr-defined]
            self.flush_headers()
        except OSError as exc:  # the client went away
            self.close_connection = True
            raise Dropped(str(exc)) from None

    def send_json(self, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        payload = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.send_bytes(status, payload, "application/json", headers)

    def send_event_stream(self, frames: Sequence[bytes]) -> None:
        """A 200 ``text/event-stream`` answer, chunked, one chunk per frame."""
        self.start_event_stream()
        self.end_event_stream(frames)

    def start_event_stream(self) -> None:
        """The head of a 200 ``text/event-stream`` answer whose frames follow over time."""
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
        except OSError as exc:
            self.close_connection = True
            raise Dropped(str(exc)) from None

    def write_event(self, frame: bytes) -> None:
        """One frame of a started event stream, sent now."""
        try:
            self.wfile.write(f"{len(frame):x}\r\n".encode() + frame + b"\r\n")
            self.wfile.flush()
        except OSError as exc:
            self.close_connection = True
            raise Dropped(str(exc)) from None

    def end_event_stream(self, frames: Sequence[bytes]) -> None:
        """The last frames of a started event stream, and its end."""
        for frame in frames:
            self.write_event(frame)
        self.write_event(b"")  # the chunked encoding's terminating zero-length chunk

    def reset(self) -> None:
        """Close the connection with a TCP RST and no response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        try:
            self.rfile.close()  # drop makefile's reference so close() is immediate
        finally:
            self.connection.close()


def check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"FakeOCRServer only listens on loopback addresses, not {host!r}")
