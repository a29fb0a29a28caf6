"""qbucket._splice on connected socket pairs: bytes reach the file at their offsets, the end of
the stream and a silent peer are told apart, and a file that refuses splice still gets them."""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qbucket import _splice
from qbucket._splice import SocketToFile

pytestmark = pytest.mark.skipif(not _splice.AVAILABLE, reason="splice(2) is Linux's")


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    sender, receiver = socket.socketpair()
    receiver.settimeout(5)  # non-blocking underneath, as a download's socket
    yield sender, receiver
    sender.close()
    receiver.close()


def _move(pipe: SocketToFile, sock: socket.socket, fd: int, offset: int, count: int) -> None:
    while count:
        received = pipe.receive(sock, count)
        assert received, "the stream ended early"
        pipe.deliver(fd, offset, received)
        offset += received
        count -= received


def test_bytes_from_the_socket_land_in_the_file_at_their_offset(
    pair: tuple[socket.socket, socket.socket], tmp_path: Path
) -> None:
    sender, receiver = pair
    data = os.urandom(3 << 20)
    threading.Thread(target=sender.sendall, args=(data,), daemon=True).start()
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        with SocketToFile() as pipe:
            assert pipe.capacity >= 4096
            _move(pipe, receiver, fd, 1000, len(data))  # an offset, as a range has
        assert os.pread(fd, 1000, 0) == bytes(1000)  # the hole before it
        assert os.pread(fd, len(data), 1000) == data
    finally:
        os.close(fd)


def test_the_end_of_the_stream_is_zero_bytes(pair: tuple[socket.socket, socket.socket]) -> None:
    sender, receiver = pair
    sender.sendall(b"last")
    sender.close()
    with SocketToFile() as pipe:
        assert pipe.receive(receiver, 100) == 4
        assert pipe.receive(receiver, 100) == 0


def test_a_silent_peer_times_out_as_the_socket_says(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    _sender, receiver = pair
    receiver.settimeout(0.3)
    started = time.monotonic()
    with SocketToFile() as pipe, pytest.raises(TimeoutError):
        pipe.receive(receiver, 100)
    assert 0.25 < time.monotonic() - started < 5


def test_a_file_that_refuses_splice_gets_the_bytes_written(
    pair: tuple[socket.socket, socket.socket], tmp_path: Path
) -> None:
    # splice(2) into a file open for appending fails with EINVAL, as on file systems without
    # it: the bytes already in the pipe are read out and written.
    sender, receiver = pair
    data = os.urandom(200_000)
    threading.Thread(target=sender.sendall, args=(data,), daemon=True).start()
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        with SocketToFile() as pipe:
            _move(pipe, receiver, fd, 0, len(data))
            assert not pipe._splice_into_file  # the way round was taken
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == data


def test_the_file_s_own_error_is_raised(
    pair: tuple[socket.socket, socket.socket], tmp_path: Path
) -> None:
    sender, receiver = pair
    sender.sendall(b"x" * 10)
    (tmp_path / "f").write_bytes(b"")
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        with SocketToFile() as pipe:
            received = pipe.receive(receiver, 10)
            with pytest.raises(OSError) as caught:
                pipe.deliver(fd, 0, received)
    finally:
        os.close(fd)
    assert caught.value.errno == errno.EBADF
