"""The embedded SeaweedFS server that Connection() starts when nothing is configured.

These tests start their own servers under a module-private QBUCKET_HOME (not the session's
``s3_server``), so they see the embedded default exactly as a user does: buckets not created on
PUT, generated credentials, one server shared by every process. Every server started here is
stopped by the module fixture's teardown.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import qbucket
from qbucket._server import EmbeddedServer, ServerInfo

from .helpers import unique_name

AUTH_CODES = {"AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "403"}


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A QBUCKET_HOME shared by this module's tests; its server is stopped at the end."""
    path = tmp_path_factory.mktemp("embedded-home")
    yield path
    server = EmbeddedServer(path / "data" / "server")
    running = server.running()
    server.stop()
    if running is not None:
        _kill_if_alive(running.pid)
    for pid in _weed_pids_under(path):  # anything that escaped the state file
        _kill_if_alive(pid)


@pytest.fixture
def env_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """QBUCKET_HOME = the module's home for this test (the autouse fixture cleared the rest)."""
    monkeypatch.setenv("QBUCKET_HOME", str(home))
    return home


@pytest.fixture
def server(env_home: Path) -> ServerInfo:
    """The module's embedded server, started if a previous test stopped it."""
    return EmbeddedServer().ensure_running()


def _subprocess_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "QBUCKET_"))}
    env["QBUCKET_HOME"] = str(home)
    return env


def _run_python(code: str, home: Path, timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=_subprocess_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- processes and sockets ----------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie does not)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def _kill_if_alive(pid: int) -> None:
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)


def _weed_pids_under(root: Path) -> list[int]:
    """The live ``weed mini`` processes whose data dir is below ``root``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        is_weed = len(argv) > 1 and argv[0].endswith(b"weed") and argv[1] == b"mini"
        ours = any(a.startswith(f"-dir={root}".encode()) for a in argv)
        if is_weed and ours and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _decode_address(hex_address: str) -> str:
    """An address of /proc/net/tcp{,6}: 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(hex_address)
    swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(swapped)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _listening_addresses(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket that ``pid`` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A = LISTEN
                address, port = local.split(":")
                listening.append((_decode_address(address), int(port, 16)))
    return listening


# -- the first use ------------------------------------------------------------------------------


def test_connection_with_nothing_configured_starts_embedded_server(
    env_home: Path, tmp_path: Path
) -> None:
    root = env_home / "data" / "server"
    assert EmbeddedServer().root == root
    assert EmbeddedServer().running() is None  # this module's home: nothing started yet

    with qbucket.Connection() as conn:
        assert conn.embedded
        assert conn.settings.storage_url is None
        assert set(conn.settings.sources.values()) == {"embedded server"}
        assert "embedded" in repr(conn)
        bucket = conn.create_bucket("embedded-round-trip")
        source = tmp_path / "in.bin"
        source.write_bytes(b"embedded payload")
        bucket.add_file(str(source), "sub/in.bin")
        bucket.flush()
        assert [s.key for s in bucket.list_files()] == ["sub/in.bin"]
        out = bucket.get_file("sub/in.bin", tmp_path / "out.bin")
        assert Path(out).read_bytes() == b"embedded payload"
        assert "embedded-round-trip" in [b.name for b in conn.buckets()]
        endpoint = conn.storage_url

    info = EmbeddedServer().running()
    assert info is not None
    assert info.endpoint == endpoint
    assert endpoint.startswith("http://127.0.0.1:")
    assert _alive(info.pid)


def test_state_directory_and_credentials_are_private(server: ServerInfo, env_home: Path) -> None:
    root = env_home / "data" / "server"
    assert server.root == root
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    credentials = root / "credentials.json"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    stored = json.loads(credentials.read_text())
    assert stored == {"access_key": server.access_key, "secret_key": server.secret_key}
    assert len(server.secret_key) >= 20
    assert server.secret_key not in repr(server)
    assert (root / "data").is_dir()
    assert "weed" in (root / "weed.log").read_text(errors="replace").lower()


def test_server_listens_only_on_loopback(server: ServerInfo) -> None:
    listening = _listening_addresses(server.pid)
    s3_port = int(server.endpoint.rsplit(":", 1)[1])
    assert s3_port in {port for _, port in listening}, listening
    assert len(listening) >= 4, listening  # master, volume, filer, s3 at least
    for address, port in listening:
        assert address == "127.0.0.1", (address, port, listening)
        assert address not in ("0.0.0.0", "::")
    # and other local users cannot read the credentials from the command line
    cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes()
    assert server.secret_key.encode() not in cmdline


def test_unsigned_and_wrongly_signed_requests_are_refused(
    server: ServerInfo, env_home: Path
) -> None:
    import boto3
    import botocore.exceptions
    from botocore.config import Config

    name = unique_name("auth")
    with qbucket.Connection() as conn:
        conn.create_bucket(name)

    for request in (
        urllib.request.Request(f"{server.endpoint}/{name}?list-type=2"),
        urllib.request.Request(f"{server.endpoint}/{name}"),
        urllib.request.Request(f"{server.endpoint}/"),
        urllib.request.Request(f"{server.endpoint}/{name}/unsigned", data=b"x", method="PUT"),
    ):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == 403, (request.get_method(), request.full_url)

    wrong = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key + "x",
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
    for call in (
        lambda: wrong.list_objects_v2(Bucket=name),
        lambda: wrong.put_object(Bucket=name, Key="wrongly-signed", Body=b"x"),
        lambda: wrong.list_buckets(),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as boto_info:
            call()
        error = boto_info.value.response
        assert (
            error["Error"]["Code"] in AUTH_CODES
            or error["ResponseMetadata"]["HTTPStatusCode"] == 403
        )

    with qbucket.Connection() as conn:
        assert conn.retrieve_bucket(name).list_files() == []  # nothing got in


def test_missing_bucket_is_not_created_on_upload(
    server: ServerInfo, env_home: Path, tmp_path: Path
) -> None:
    import botocore.exceptions

    name = unique_name("nocreate")
    source = tmp_path / "f.txt"
    source.write_bytes(b"data")
    with qbucket.Connection() as conn:
        bucket = qbucket.Bucket(conn, name, create=False)
        with pytest.raises(qbucket.MissingBucketException) as info:
            bucket.add_file(str(source), "f.txt")
            bucket.flush()
        assert name in str(info.value)
        # the server itself refuses too (-s3.autoCreateBucket=false), whoever uploads
        with pytest.raises(botocore.exceptions.ClientError) as boto_info:
            conn.s3client.put_object(Bucket=name, Key="raw", Body=b"x")
        assert boto_info.value.response["Error"]["Code"] == "NoSuchBucket"
        assert name not in [b.name for b in conn.buckets()]
        assert not bucket.exists()


def test_credentials_in_the_environment_are_ignored_by_the_embedded_server(
    server: ServerInfo, env_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keys meant for another server (no endpoint given): the embedded server still works.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFORAWS")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-for-aws")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token-for-aws")
    with qbucket.Connection() as conn:
        assert conn.embedded
        assert conn.storage_url == server.endpoint
        name = unique_name("envkeys")
        bucket = conn.create_bucket(name)
        bucket["k"] = _write(env_home / "envkeys.txt", b"v")
        bucket.flush()
        assert [s.key for s in bucket.list_files()] == ["k"]
        bucket.delete()


# -- between processes --------------------------------------------------------------------------


def test_server_is_shared_with_other_processes(server: ServerInfo, env_home: Path) -> None:
    name = unique_name("shared")
    with qbucket.Connection() as conn:
        bucket = conn.create_bucket(name)
        bucket["from-parent.txt"] = _write(env_home / "parent.txt", b"written by the parent")

    output = _run_python(
        f"""
        import json, tempfile, os, qbucket
        from qbucket._server import EmbeddedServer
        with qbucket.Connection() as conn:
            bucket = conn.retrieve_bucket({name!r})
            out = bucket.get_file("from-parent.txt", os.path.join(tempfile.mkdtemp(), "f"))
            with open(out, "rb") as stream:
                seen = stream.read().decode()
            child = os.path.join(tempfile.mkdtemp(), "child.txt")
            with open(child, "wb") as stream:
                stream.write(b"written by the child")
            bucket.add_file(child, "from-child.txt")
            print(json.dumps({{
                "embedded": conn.embedded,
                "endpoint": conn.storage_url,
                "pid": EmbeddedServer().running().pid,
                "seen": seen,
            }}))
        """,
        env_home,
    )
    child = json.loads(output.strip().splitlines()[-1])
    assert child == {
        "embedded": True,
        "endpoint": server.endpoint,
        "pid": server.pid,
        "seen": "written by the parent",
    }
    with qbucket.Connection() as conn:
        out = conn.retrieve_bucket(name).get_file("from-child.txt", env_home / "back.txt")
        assert Path(out).read_bytes() == b"written by the child"
    running = EmbeddedServer().running()
    assert running is not None and running.pid == server.pid  # the child started no other


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_stop_then_start_keeps_the_data(server: ServerInfo, env_home: Path) -> None:
    name = unique_name("persist")
    with qbucket.Connection() as conn:
        bucket = conn.create_bucket(name)
        bucket["kept.txt"] = _write(env_home / "kept.txt", b"survives a restart")

    embedded = EmbeddedServer()
    assert embedded.stop() is True
    deadline = time.monotonic() + 30
    while _alive(server.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(server.pid)
    assert embedded.running() is None
    assert not (server.root / "state.json").exists()
    assert embedded.stop() is False  # nothing left to stop

    with qbucket.Connection() as conn:
        out = conn.retrieve_bucket(name).get_file("kept.txt", env_home / "kept-back.txt")
        assert Path(out).read_bytes() == b"survives a restart"
        restarted = embedded.running()
        assert restarted is not None and restarted.pid != server.pid
        assert restarted.access_key == server.access_key  # same generated credentials


def test_simultaneous_starts_start_one_server(env_home: Path) -> None:
    EmbeddedServer().stop()
    assert EmbeddedServer().running() is None
    go = env_home / "go"
    go.unlink(missing_ok=True)
    code = f"""
        import os, time
        from qbucket._server import EmbeddedServer
        while not os.path.exists({str(go)!r}):
            time.sleep(0.005)
        print(EmbeddedServer().ensure_running().pid)
        """
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            env=_subprocess_env(env_home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        time.sleep(1.0)  # let every interpreter get to the starting line
        go.touch()
        results = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (_out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err
    pids = {int(out.strip()) for out, _err in results}
    assert len(pids) == 1, pids
    (pid,) = pids
    # the server outlived the processes that started it, and it is the only one of this home
    running = EmbeddedServer().running()
    assert running is not None and running.pid == pid
    assert _weed_pids_under(env_home) == [pid]


# -- a weed that cannot start -------------------------------------------------------------------


def test_weed_that_fails_reports_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "fake-weed"
    fake.write_text("#!/bin/sh\necho 'boom: cannot start' >&2\nexit 1\n")
    fake.chmod(0o755)
    embedded = EmbeddedServer(tmp_path / "state", weed=str(fake))
    started = time.monotonic()
    with pytest.raises(qbucket.EmbeddedServerError) as info:
        embedded.ensure_running(timeout=5)
    assert time.monotonic() - started < 60
    assert isinstance(info.value, RuntimeError)
    assert "boom: cannot start" in str(info.value)
    assert embedded.running() is None
    assert not (tmp_path / "state" / "state.json").exists()


def test_connection_reports_failing_weed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "fake-weed"
    fake.write_text("#!/bin/sh\necho 'boom: no luck' \nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("QBUCKET_HOME", str(tmp_path / "other-home"))
    monkeypatch.setenv("QBUCKET_WEED", str(fake))
    conn = qbucket.Connection()
    assert conn.embedded
    with pytest.raises(qbucket.EmbeddedServerError) as info:
        conn.buckets()
    assert "boom: no luck" in str(info.value)
