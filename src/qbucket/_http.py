"""The HTTP/1.1 client of the requests qbucket signs itself: the listing's pages and the large
downloads' ranges. GET and HEAD without a body, answers read by Content-Length, chunked
transfer coding or to the end of the connection (or handed over to be spliced from the socket),
and kept-alive connections.

Why not the stdlib's http.client: importing it costs ~40 ms on the reference machine (it imports
the ``email`` package to parse headers, and ``ssl``), a start-up that every command and every
``Bucket`` script paid before its first request: a tenth of a no-op resync's whole run. This
module imports only ``socket``, and ``ssl`` for https endpoints alone. Certificates are verified
as http.client does (``ssl.create_default_context()``: the system's trust store, or
``SSL_CERT_FILE``).
"""

from __future__ import annotations

import io
import socket
from typing import TYPE_CHECKING

from ._error_mapping import HTTPProtocolError

if TYPE_CHECKING:
    from collections.abc import Mapping

MAX_LINE = 65536  # a status, header or chunk-size line longer than this is no HTTP we read
MAX_HEADERS = 100


class HTTPResponse:
    """One answer: status, headers, and its body, read with :meth:`read` or :meth:`readinto`."""

    def __init__(self, connection: HTTPConnection, method: str) -> None:
        self._connection = connection
        self._reader = connection.reader()
        self.status, self.reason, version = self._status_line()
        while 100 <= self.status < 200:  # interim answers (100 Continue) precede the real one
            self._headers_block()
            self.status, self.reason, version = self._status_line()
        self.headers = self._headers_block()
        tokens = self.headers.get("connection", "").lower()
        self.will_close = "close" in tokens or (
            version == "HTTP/1.0" and "keep-alive" not in tokens
        )
        self._chunked = False
        self._remaining: int | None = None  # bytes of body still to read; None: to the end
        if method == "HEAD" or self.status in (204, 304):
            self._remaining = 0
        elif "chunked" in self.headers.get("transfer-encoding", "").lower():
            self._chunked = True
        elif "content-length" in self.headers:
            try:
                self._remaining = int(self.headers["content-length"])
            except ValueError:
                raise HTTPProtocolError(
                    f"bad Content-Length {self.headers['content-length']!r}"
                ) from None
            if self._remaining < 0:
                raise HTTPProtocolError(f"bad Content-Length {self._remaining}")
        else:
            self.will_close = True  # the body is all the server sends before it closes
        if self._remaining == 0:
            self._finished()

    def __repr__(self) -> str:
        return f"<HTTPResponse {self.status} {self.reason}>"

    def getheader(self, name: str, default: str | None = None) -> str | None:
        """The value of header ``name`` (any case); repeated headers joined with ``, ``."""
        return self.headers.get(name.lower(), default)

    def read(self) -> bytes:
        """The rest of the body, whole."""
        try:
            return self._read()
        except BaseException:  # where the next answer would start is unknown: never reused
            self._connection.close()
            raise

    def readinto(self, buffer: memoryview) -> int:
        """Fill ``buffer`` from the body (fewer bytes only at its end); 0 once it is all read."""
        try:
            return self._readinto(buffer)
        except BaseException:
            self._connection.close()
            raise

    def detach_body(self) -> tuple[bytes, socket.socket] | None:
        """Hand the body over to be read from the socket itself (with splice): the part of it
        already read into this answer's buffer (at least one byte), and the plain socket that
        carries the rest. None, with nothing read, when the body is not so simple: over TLS,
        chunked, of unknown length, or empty. The connection takes no further request; the
        caller reads at most the rest of the body from the socket, then closes the connection.
        """
        sock = self._connection.sock
        if type(sock) is not socket.socket or self._chunked or not self._remaining:
            return None
        try:
            # read1 returns what the buffer holds, or else makes one read of the socket: either
            # way nothing of the body stays in the buffer.
            head = self._reader.read1(self._remaining)
        except BaseException:
            self._connection.close()
            raise
        if not head:
            self._connection.close()
            raise HTTPProtocolError(f"body ended {self._remaining} bytes early")
        self._remaining = 0  # what follows is the caller's; the connection stays pending
        return head, sock

    def _read(self) -> bytes:
        if self._chunked:
            return self._read_chunked()
        if self._remaining is None:
            body = self._reader.read()
        else:
            body = self._reader.read(self._remaining)
            if len(body) < self._remaining:
                raise HTTPProtocolError(f"body ended {self._remaining - len(body)} bytes early")
        self._remaining = 0
        self._finished()
        return body

    def _readinto(self, buffer: memoryview) -> int:
        if self._chunked:
            raise HTTPProtocolError("a chunked body is read whole, with read()")
        if self._remaining == 0:
            return 0
        if self._remaining is not None and len(buffer) > self._remaining:
            buffer = buffer[: self._remaining]
        received = self._reader.readinto(buffer)
        if self._remaining is None:
            if not received:
                self._remaining = 0
                self._finished()
            return received
        if not received:
            raise HTTPProtocolError(f"body ended {self._remaining} bytes early")
        self._remaining -= received
        if not self._remaining:
            self._finished()
        return received

    def _finished(self) -> None:
        self._connection.answered(self.will_close)

    def _line(self) -> bytes:
        line = self._reader.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise HTTPProtocolError("a line of the answer is too long")
        return line

    def _status_line(self) -> tuple[int, str, str]:
        line = self._line()
        if not line:
            raise HTTPProtocolError("the server closed the connection without answering")
        version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise HTTPProtocolError(f"not an HTTP/1.x status line: {line[:80]!r}")
        return int(code), reason, version

    def _headers_block(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        name = ""
        for _ in range(MAX_HEADERS + 1):
            line = self._line()
            if line in (b"\r\n", b"\n"):
                return headers
            if not line:
                raise HTTPProtocolError("the answer ended inside its headers")
            text = line.decode("latin-1").rstrip("\r\n")
            if text[:1] in (" ", "\t") and name:  # an obsolete folded continuation line
                headers[name] += " " + text.strip()
                continue
            name, colon, value = text.partition(":")
            if not colon:
                raise HTTPProtocolError(f"not a header line: {line[:80]!r}")
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        raise HTTPProtocolError(f"more than {MAX_HEADERS} headers")

    def _read_chunked(self) -> bytes:
        pieces: list[bytes] = []
        while True:
            size_line = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise HTTPProtocolError(f"bad chunk size {size_line[:20]!r}") from None
            if size == 0:
                break
            chunk = self._reader.read(size)
            if len(chunk) < size or self._line() not in (b"\r\n", b"\n"):
                raise HTTPProtocolError("a chunk of the body ended early")
            pieces.append(chunk)
        while self._line() not in (b"\r\n", b"\n", b""):  # trailer fields, unused
            pass
        self._chunked = False
        self._remaining = 0
        self._finished()
        return b"".join(pieces)


class HTTPConnection:
    """One connection to ``host``:``port``, opened on the first request and again after the
    server closed it. One request at a time: the answer's body must be read before the next
    request is sent. Not thread-safe."""

    def __init__(self, host: str, port: int | None, *, https: bool, timeout: float) -> None:
        self._hostname = host
        self._port = port or (443 if https else 80)
        self._https = https
        self._timeout = timeout
        self.sock: socket.socket | None = None
        self._buffered: io.BufferedReader | None = None
        self._pending = False  # a request was sent whose answer is not read to its end
        self._method = "GET"  # of the request sent last

    def __repr__(self) -> str:
        return f"HTTPConnection({self._hostname!r}, {self._port})"

    def connect(self) -> None:
        """Open the connection (TCP, then TLS for https)."""
        # ASCII names go to getaddrinfo as bytes: a str would load the idna codec (~3 ms).
        host: str | bytes = self._hostname
        if self._hostname.isascii():
            host = self._hostname.encode("ascii")
        sock = socket.create_connection((host, self._port), self._timeout)  # type: ignore[arg-type]
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._https:
                import ssl

                sock = ssl.create_default_context().wrap_socket(
                    sock, server_hostname=self._hostname
                )
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._buffered = sock.makefile("rb")

    def settimeout(self, timeout: float) -> None:
        """The timeout of each further read and write on the open connection."""
        if self.sock is not None:
            self.sock.settimeout(timeout)

    def request(self, method: str, target: str, headers: Mapping[str, str]) -> None:
        """Send a bodiless request. ``headers`` must hold Host (the signed one)."""
        if self._pending:
            raise HTTPProtocolError("a request was sent before the last answer was read")
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        lines = [f"{method} {target} HTTP/1.1", "Accept-Encoding: identity"]
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        self._pending = True
        self._method = method
        try:
            self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        except BaseException:  # part of a request may be on the wire: never reused
            self.close()
            raise

    def getresponse(self) -> HTTPResponse:
        """The answer to the request sent last, its headers read."""
        if self.sock is None or not self._pending:
            raise HTTPProtocolError("no request waits for an answer")
        try:
            return HTTPResponse(self, self._method)
        except BaseException:
            self.close()
            raise

    def reader(self) -> io.BufferedReader:
        """The buffered reader of the open connection, which its answer reads from."""
        assert self._buffered is not None
        return self._buffered

    def answered(self, will_close: bool) -> None:
        """The last answer was read to its end: the connection takes a new request."""
        self._pending = False
        if will_close:
            self.close()

    def close(self) -> None:
        self._pending = False
        if self._buffered is not None:
            self._buffered.close()
            self._buffered = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None
