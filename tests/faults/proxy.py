"""A fault-injecting HTTP/1.1 proxy for tests: sits between qbucket and SeaweedFS on loopback.

It forwards requests one by one (keep-alive on both sides) and, for requests that match a rule,
injects a fault instead of, or in the middle of, the real answer:

* ``reset``: close the client connection at once with a TCP reset (SO_LINGER 0);
* ``status``: answer a canned S3 error (503 SlowDown, 500 InternalError, 400 RequestTimeout...);
* ``cut_body``: forward the request, relay the response head and the first ``after`` body bytes,
  then close;
* ``cut_head``: send half a status line and close;
* ``hang``: read the request and never answer (the client's timeout must fire).

Rules match on the method and a regex over the request target, and fire ``times`` times (None:
forever). The proxy runs its own event loop in a daemon thread, so synchronous tests drive it.
Only stdlib: no packaged proxy of this kind was available.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Literal

Kind = Literal["reset", "status", "cut_body", "cut_head", "hang"]

_ERRORS = {
    503: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    400: (
        "RequestTimeout",
        "Your socket connection to the server was not read from or written to.",
    ),
}


@dataclasses.dataclass
class Rule:
    kind: Kind
    method: str | None = None  # None: any
    target: str = ""  # regex searched in the request target (path and query)
    times: int | None = 1  # None: every matching request
    status: int = 503
    after: int = 0  # cut_body: body bytes relayed before the cut
    fired: int = 0

    def matches(self, method: str, target: str) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if self.method is not None and self.method != method:
            return False
        return re.search(self.target, target) is not None


class _Closed(Exception):
    pass


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise _Closed from exc


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    out: dict[str, str] = {}
    for line in lines:
        if ":" in line:
            name, value = line.split(":", 1)
            out[name.strip().lower()] = value.strip()
    return out


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """The body as sent (chunked bodies keep their framing)."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            parts.append(size_line)
            size = int(size_line.split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            parts.append(data)
            if size == 0:
                # Trailers end with an empty line; the data read above was that line.
                return b"".join(parts)
    length = int(headers.get("content-length", "0") or 0)
    return await reader.readexactly(length) if length else b""


def _error_response(status: int) -> bytes:
    code, message = _ERRORS.get(status, ("InternalError", "injected"))
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{message}</Message></Error>"
    ).encode()
    reason = {503: "Slow Down", 500: "Internal Server Error", 400: "Bad Request"}.get(status, "X")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head + body


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """``with FaultProxy(upstream_port) as proxy: ... proxy.endpoint ... proxy.add(Rule(...))``"""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self._upstream = (upstream_host, upstream_port)
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.requests: list[tuple[str, str]] = []  # (method, target) of every request seen
        self.port = 0
        self._hung: list[asyncio.StreamWriter] = []

    # -- control, from the test's thread ---------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def fired(self, kind: Kind | None = None) -> int:
        with self._lock:
            return sum(rule.fired for rule in self._rules if kind is None or rule.kind == kind)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self.port = future.result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    # -- the proxy, on its loop ------------------------------------------------------------

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _stop(self) -> None:
        for writer in self._hung:
            writer.transport.abort()
        if self._server is not None:
            self._server.close()

    def _rule_for(self, method: str, target: str) -> Rule | None:
        with self._lock:
            self.requests.append((method, target))
            for rule in self._rules:
                if rule.matches(method, target):
                    rule.fired += 1
                    return rule
        return None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                head = await _read_head(reader)
                headers = _headers(head)
                method, target = head.split(b" ", 2)[:2]
                if headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    await writer.drain()
                    head = head.replace(b"Expect: 100-continue\r\n", b"").replace(
                        b"expect: 100-continue\r\n", b""
                    )
                body = await _read_body(reader, headers)
                rule = self._rule_for(method.decode(), target.decode("latin-1"))
                if rule is not None and rule.kind != "cut_body":
                    await self._inject(rule, writer)
                    return
                if upstream is None:
                    upstream = await asyncio.open_connection(*self._upstream)
                up_reader, up_writer = upstream
                up_writer.write(head + body)
                await up_writer.drain()
                if not await self._relay(up_reader, writer, method, rule):
                    return
        except (_Closed, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if upstream is not None:
                upstream[1].transport.abort()
            if not writer.is_closing() and writer not in self._hung:
                writer.close()

    async def _inject(self, rule: Rule, writer: asyncio.StreamWriter) -> None:
        if rule.kind == "reset":
            _reset(writer)
        elif rule.kind == "status":
            writer.write(_error_response(rule.status))
            await writer.drain()
            writer.close()
        elif rule.kind == "cut_head":
            writer.write(b"HTTP/1.1 20")
            await writer.drain()
            _reset(writer)
        elif rule.kind == "hang":
            self._hung.append(writer)  # never answered; closed when the proxy stops

    async def _relay(
        self,
        up_reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        method: bytes,
        rule: Rule | None,
    ) -> bool:
        """Relay one response; False when the connection must end (a cut, or Connection:
        close)."""
        head = await _read_head(up_reader)
        headers = _headers(head)
        writer.write(head)
        no_body = method == b"HEAD" or head.split(b" ", 2)[1] in (b"204", b"304")
        if not no_body:
            if headers.get("transfer-encoding", "").lower() == "chunked":
                body = await _read_body(up_reader, headers)
            else:
                length = int(headers.get("content-length", "0") or 0)
                body = await up_reader.readexactly(length) if length else b""
            if rule is not None:  # cut_body
                writer.write(body[: rule.after])
                await writer.drain()
                _reset(writer)
                return False
            writer.write(body)
        await writer.drain()
        return headers.get("connection", "").lower() != "close"


@contextlib.contextmanager
def fault_proxy(upstream_port: int) -> Iterator[FaultProxy]:
    with FaultProxy(upstream_port) as proxy:
        yield proxy
