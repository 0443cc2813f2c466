"""A real HTTP file server on 127.0.0.1 for download tests: Range support and injectable faults.

with FileServer(folder) as server:
    server.cut_after = 1000      # next GET sends 1000 body bytes, then drops the connection
    server.ignore_range = True   # answer 200 with the whole file even when asked for a range
    server.omit_length = True    # send no Content-Length (the body ends when the socket closes)
    download(RemoteFile(server.url("a.zip"), "a.zip"), dest)
    server.requests              # what was asked: path, Range header, status, bytes sent
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote


@dataclass
class Request:
    path: str
    range: str | None
    status: int
    bytes_sent: int


class FileServer:
    """Serves the files of `root`; stop it with `close()` or use it as a context manager."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.cut_after: int | None = None  # one-shot: cut the next body after N bytes
        self.fail_status: int | None = None  # one-shot: answer the next GET with this status
        self.ignore_range = False
        self.omit_length = False
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    @property
    def bytes_sent(self) -> int:
        return sum(r.bytes_sent for r in self.requests)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FileServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _take(self, attr: str) -> int | None:
        with self._lock:
            value = getattr(self, attr)
            setattr(self, attr, None)
            return value

    def _log(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a connection we cut on purpose is not an error worth a traceback


def closed_port_url(name: str = "file") -> str:
    """A URL on 127.0.0.1 where nothing listens (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


def _handler_for(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            range_header = self.headers.get("Range")
            path = server.root / unquote(self.path.lstrip("/"))
            fail = server._take("fail_status")
            if fail is not None:
                self._answer(fail, b"", range_header)
                return
            if not path.is_file() or not path.resolve().is_relative_to(server.root.resolve()):
                self._answer(404, b"not found", range_header)
                return
            data = path.read_bytes()
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header or "")
            if match is not None and not server.ignore_range:
                start = int(match.group(1))
                if start >= len(data):
                    self._answer(416, b"", range_header, {"Content-Range": f"bytes */{len(data)}"})
                    return
                end = int(match.group(2)) if match.group(2) else len(data) - 1
                end = min(end, len(data) - 1)
                content_range = f"bytes {start}-{end}/{len(data)}"
                self._answer(
                    206, data[start : end + 1], range_header, {"Content-Range": content_range}
                )
                return
            self._answer(200, data, range_header)

        def _answer(
            self,
            status: int,
            body: bytes,
            range_header: str | None,
            extra: dict[str, str] | None = None,
        ) -> None:
            cut = server._take("cut_after") if status in (200, 206) else None
            sent = body if cut is None else body[:cut]
            server._log(Request(self.path, range_header, status, len(sent)))  # before the client
            self.send_response(status)  # can see the answer, so tests may assert at once
            if not server.omit_length:
                self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(sent)
            self.wfile.flush()
            if cut is not None:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

    return Handler
