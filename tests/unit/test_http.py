"""qbucket._http against a scripted HTTP server on loopback: each accepted request is answered
with the next scripted bytes, so framing, keep-alive and broken answers are exact."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from qbucket._error_mapping import HTTPProtocolError, translate
from qbucket._exceptions import BucketStorageUnavailableException
from qbucket._http import HTTPConnection

HOST = {"Host": "example:1"}


class ScriptedServer:
    """Answers the n-th request with ``answers[n]``; an answer ending in ``CLOSE`` closes the
    connection after it is sent."""

    CLOSE = b"<close>"

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                self._answer_requests(conn)

    def _answer_requests(self, conn: socket.socket) -> None:
        pending = b""
        while self.answers:
            while b"\r\n\r\n" not in pending:
                data = conn.recv(65536)
                if not data:
                    return
                pending += data
            request, pending = pending.split(b"\r\n\r\n", 1)
            self.requests.append(request)
            answer = self.answers.pop(0)
            closing = answer.endswith(self.CLOSE)
            conn.sendall(answer.removesuffix(self.CLOSE))
            if closing:
                return

    def close(self) -> None:
        self._listener.close()


Serve = Callable[..., tuple["ScriptedServer", HTTPConnection]]


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[ScriptedServer] = []

    def start(*answers: bytes) -> tuple[ScriptedServer, HTTPConnection]:
        server = ScriptedServer(list(answers))
        servers.append(server)
        return server, HTTPConnection("127.0.0.1", server.port, https=False, timeout=5)

    yield start
    for server in servers:
        server.close()


def ok(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return b"HTTP/1.1 200 OK\r\n" + head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body


def test_two_requests_share_one_kept_alive_connection(serve: Serve) -> None:
    server, connection = serve(ok(b"first"), ok(b"second"))
    connection.request("GET", "/b?list-type=2", HOST)
    assert connection.getresponse().read() == b"first"
    connection.request("GET", "/b/k", HOST)
    response = connection.getresponse()
    assert (response.status, response.reason, response.read()) == (200, "OK", b"second")
    assert server.connections == 1
    first = server.requests[0].decode().split("\r\n")
    assert first[0] == "GET /b?list-type=2 HTTP/1.1"
    assert "Host: example:1" in first and "Accept-Encoding: identity" in first


def test_a_chunked_body_is_joined_and_its_trailer_skipped(serve: Serve) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    server, connection = serve(chunked, ok(b"next"))
    connection.request("GET", "/", HOST)
    assert connection.getresponse().read() == b"hello world"
    connection.request("GET", "/", HOST)
    assert connection.getresponse().read() == b"next"
    assert server.connections == 1


def test_a_body_without_length_is_read_to_the_close_then_a_new_connection_opens(
    serve: Serve,
) -> None:
    server, connection = serve(
        b"HTTP/1.1 200 OK\r\n\r\nuntil the end" + ScriptedServer.CLOSE, ok(b"again")
    )
    connection.request("GET", "/", HOST)
    response = connection.getresponse()
    assert response.will_close
    assert response.read() == b"until the end"
    connection.request("GET", "/", HOST)
    assert connection.getresponse().read() == b"again"
    assert server.connections == 2


def test_connection_close_and_http_1_0_are_honoured(serve: Serve) -> None:
    server, connection = serve(
        ok(b"a", "Connection: close") + ScriptedServer.CLOSE,
        b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nb" + ScriptedServer.CLOSE,
        ok(b"c"),
    )
    for expected in (b"a", b"b", b"c"):
        connection.request("GET", "/", HOST)
        assert connection.getresponse().read() == expected
    assert server.connections == 3


def test_a_head_answer_has_no_body_whatever_its_length_says(serve: Serve) -> None:
    server, connection = serve(
        b'HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nETag: "e"\r\n\r\n', ok(b"body")
    )
    connection.request("HEAD", "/b/k", HOST)
    response = connection.getresponse()
    assert response.getheader("etag") == '"e"'
    assert response.read() == b""
    connection.request("GET", "/b/k", HOST)
    assert connection.getresponse().read() == b"body"
    assert server.connections == 1


def test_interim_answers_are_skipped(serve: Serve) -> None:
    _server, connection = serve(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"done"))
    connection.request("GET", "/", HOST)
    response = connection.getresponse()
    assert (response.status, response.read()) == (200, b"done")


def test_headers_are_found_in_any_case_repeated_ones_joined_folded_ones_unfolded(
    serve: Serve,
) -> None:
    _server, connection = serve(
        ok(b"", "X-Amz-Meta-Sha1: abc", "x-amz-meta-sha1: def", "X-Long: one", "\ttwo")
    )
    connection.request("GET", "/", HOST)
    response = connection.getresponse()
    assert response.getheader("X-AMZ-META-SHA1") == "abc, def"
    assert response.getheader("x-long") == "one two"
    assert response.getheader("missing") is None
    assert response.getheader("missing", "default") == "default"


def test_readinto_fills_the_buffer_and_returns_zero_at_the_end(serve: Serve) -> None:
    body = bytes(range(256)) * 40
    _server, connection = serve(
        b"HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    connection.request("GET", "/", HOST)
    response = connection.getresponse()
    buffer = memoryview(bytearray(4096))
    received = b""
    while n := response.readinto(buffer):
        received += bytes(buffer[:n])
    assert received == body
    assert response.readinto(buffer) == 0


@pytest.mark.parametrize("reading", ["read", "readinto"])
def test_a_body_shorter_than_its_length_is_an_error_not_a_short_file(
    serve: Serve, reading: str
) -> None:
    _server, connection = serve(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort" + ScriptedServer.CLOSE
    )
    connection.request("GET", "/", HOST)
    response = connection.getresponse()
    with pytest.raises(HTTPProtocolError, match="ended 5 bytes early"):
        if reading == "read":
            response.read()
        else:
            buffer = memoryview(bytearray(64))
            while response.readinto(buffer):
                pass


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Le",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"",
    ],
)
def test_a_broken_answer_is_a_protocol_error_and_closes_the_connection(
    serve: Serve, answer: bytes
) -> None:
    _server, connection = serve(answer + ScriptedServer.CLOSE)
    connection.request("GET", "/", HOST)
    with pytest.raises(HTTPProtocolError):
        connection.getresponse().read()
    assert connection.sock is None


def test_too_many_headers_or_too_long_a_line_is_refused(serve: Serve) -> None:
    many = b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n"
    long = b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000 + b"\r\n\r\n"
    _server, connection = serve(many + ScriptedServer.CLOSE, long + ScriptedServer.CLOSE)
    connection.request("GET", "/", HOST)
    with pytest.raises(HTTPProtocolError, match="more than 100 headers"):
        connection.getresponse()
    connection.request("GET", "/", HOST)
    with pytest.raises(HTTPProtocolError, match="too long"):
        connection.getresponse()


def test_a_request_before_the_last_answer_was_read_is_refused(serve: Serve) -> None:
    _server, connection = serve(ok(b"unread body"))
    connection.request("GET", "/", HOST)
    with pytest.raises(HTTPProtocolError, match="before the last answer was read"):
        connection.request("GET", "/", HOST)
    connection.getresponse().read()


def test_a_detached_body_is_its_buffered_head_and_the_socket_that_carries_the_rest(
    serve: Serve,
) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB: much more than the reader buffers
    _server, connection = serve(
        b"HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    connection.request("GET", "/", HOST)
    detached = connection.getresponse().detach_body()
    assert detached is not None
    head, sock = detached
    assert sock is connection.sock
    assert 0 < len(head) < len(body)
    received = bytearray(head)
    while len(received) < len(body):
        received += sock.recv(len(body) - len(received))
    assert bytes(received) == body
    with pytest.raises(HTTPProtocolError, match="before the last answer was read"):
        connection.request("GET", "/", HOST)  # the socket is the caller's now
    connection.close()


def test_bodies_that_are_not_plain_stay_attached(serve: Serve) -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    to_close = b"HTTP/1.1 200 OK\r\n\r\nuntil the end" + ScriptedServer.CLOSE
    _server, connection = serve(chunked, ok(b""), to_close)
    for expected in (b"abc", b"", b"until the end"):
        connection.request("GET", "/", HOST)
        response = connection.getresponse()
        assert response.detach_body() is None
        assert response.read() == expected  # nothing was taken from it


def test_a_body_that_ends_before_its_head_is_a_protocol_error(serve: Serve) -> None:
    _server, connection = serve(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" + ScriptedServer.CLOSE
    )
    connection.request("GET", "/", HOST)
    response = connection.getresponse()
    with pytest.raises(HTTPProtocolError, match="10 bytes early"):
        response.detach_body()
    assert connection.sock is None  # closed


def test_a_dead_endpoint_is_an_os_error() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    connection = HTTPConnection("127.0.0.1", port, https=False, timeout=5)
    with pytest.raises(ConnectionRefusedError):
        connection.request("GET", "/", HOST)


def test_a_protocol_error_reads_as_a_storage_error_naming_the_object() -> None:
    error = translate(
        HTTPProtocolError("body ended 5 bytes early"), action="download", bucket="b", key="k"
    )
    assert isinstance(error, BucketStorageUnavailableException)
    assert str(error) == (
        "cannot download s3://b/k: the storage server answered badly (body ended 5 bytes early)"
    )
