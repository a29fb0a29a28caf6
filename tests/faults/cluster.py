"""A multi-node SeaweedFS cluster on loopback for the tests (issue 6, case 16).

One master, ``volumes`` volume servers, a filer and an S3 gateway, each its own ``weed`` process
bound to 127.0.0.1 on free ports, with data and logs below ``root``. The S3 gateway reads an
identities file with generated keys, so every request must be signed with them: no anonymous
access, as on a real deployment.

Ready means: the master sees every volume server, and an authenticated create-bucket, put and
delete go through the gateway (which needs master, filer and volume servers to work together).
Any failure to start raises :class:`ClusterError` with the tail of every process's log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qbucket._server import _port_free, find_weed

from ..integration.helpers import s3_client

LOOPBACK = "127.0.0.1"


class ClusterError(RuntimeError):
    """The cluster did not start (or stop) as expected; the message carries the logs' tails."""


@dataclasses.dataclass
class Node:
    """One ``weed`` process of the cluster."""

    name: str
    argv: list[str]
    log: Path
    http_port: int
    grpc_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``ip:port.grpcPort``, SeaweedFS's notation for a peer with a non-default gRPC port."""
        return f"{LOOPBACK}:{self.http_port}.{self.grpc_port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, limit: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace")[-limit:]
        except OSError:
            return ""


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports, below the ephemeral range when there is room.

    Twelve ports stay unbound for a few seconds while the processes start one after the other,
    and meanwhile every outgoing connection (weed's own, between its processes) takes an
    ephemeral source port: picked from that range, one of ours could be taken by such a
    connection before its server binds it.
    """
    low, _high = _ephemeral_range()
    rng = random.Random()
    ports: list[int] = []
    if low - 10000 >= 1000:
        for _ in range(100 * count):
            port = rng.randrange(10000, low)
            if port not in ports and _port_free(port):
                ports.append(port)
                if len(ports) == count:
                    return ports
    held: list[socket.socket] = []  # fallback: ephemeral ports, held together while picked
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((LOOPBACK, 0))
            held.append(sock)
        return [sock.getsockname()[1] for sock in held]
    finally:
        for sock in held:
            sock.close()


class Cluster:
    """Start with :meth:`start`, stop with :meth:`stop` (or use it as a context manager).

    Args:
        root: a directory of its own (a pytest tmp dir): data, logs and the identities file.
        volumes: how many volume servers.
        replication: the master's ``-defaultReplication`` (``001``: two copies on two servers
            of one rack; ``010``: on two racks, and each volume server then gets a rack of its
            own).
        volume_size_limit_mb: the master's ``-volumeSizeLimitMB``: small, so that volumes fill
            and new ones are grown during a test as on a long-lived cluster.
        max_volumes: each volume server's ``-max``: room for the volumes grown after one of the
            servers is gone.
    """

    def __init__(
        self,
        root: Path,
        *,
        volumes: int = 3,
        replication: str = "001",
        volume_size_limit_mb: int = 64,
        max_volumes: int = 30,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.replication = replication
        self.access_key = "cluster" + secrets.token_hex(8)
        self.secret_key = secrets.token_urlsafe(30)
        self._weed = find_weed()
        self._probe_client: Any = None
        # AF_UNIX paths are limited to ~107 bytes: the sockets live in a short directory.
        self._sockets = Path(tempfile.mkdtemp(prefix="qbucket-cluster-"))
        ports = iter(free_ports(2 * (volumes + 3)))
        self.master = self._node("master", ports)
        self.volumes = [self._node(f"volume{i}", ports) for i in range(volumes)]
        self.filer = self._node("filer", ports)
        self.s3 = self._node("s3", ports)

        master_dir = self._dir("master")
        self.master.argv = [
            "master",
            f"-mdir={master_dir}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-port={self.master.http_port}",
            f"-port.grpc={self.master.grpc_port}",
            "-peers=none",
            f"-defaultReplication={replication}",
            f"-volumeSizeLimitMB={volume_size_limit_mb}",
            "-telemetry=false",
        ]
        for i, node in enumerate(self.volumes):
            node.argv = [
                "volume",
                f"-dir={self._dir(node.name)}",
                f"-ip={LOOPBACK}",
                f"-ip.bind={LOOPBACK}",
                f"-port={node.http_port}",
                f"-port.grpc={node.grpc_port}",
                f"-master={self.master.address}",
                f"-max={max_volumes}",
                "-preStopSeconds=0",  # SIGTERM stops at once (the default waits 10 s)
                f"-rack=rack{i if replication[1] != '0' else 0}",
                "-minFreeSpace=1MiB",  # a nearly full /tmp must not turn volumes read-only
            ]
        self.filer.argv = [
            "filer",
            f"-defaultStoreDir={self._dir('filer')}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-port={self.filer.http_port}",
            f"-port.grpc={self.filer.grpc_port}",
            f"-master={self.master.address}",
            f"-localSocket={self._sockets / 'filer.sock'}",
        ]
        identities = self.root / "s3-identities.json"
        fd = os.open(identities, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as stream:
            json.dump(
                {
                    "identities": [
                        {
                            "name": "qbucket-test",
                            "credentials": [
                                {"accessKey": self.access_key, "secretKey": self.secret_key}
                            ],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                },
                stream,
            )
        self.s3.argv = [
            "s3",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-port={self.s3.http_port}",
            f"-port.grpc={self.s3.grpc_port}",
            f"-filer={self.filer.address}",
            f"-config={identities}",
            "-autoCreateBucket=false",
            "-iam=false",
            "-port.iceberg=0",
            "-port.lance=0",
            f"-localSocket={self._sockets / 's3.sock'}",
        ]

    def _node(self, name: str, ports: Any) -> Node:
        return Node(name, [], self.root / "logs" / f"{name}.log", next(ports), next(ports))

    def _dir(self, name: str) -> Path:
        path = self.root / "data" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def nodes(self) -> list[Node]:
        return [self.master, *self.volumes, self.filer, self.s3]

    @property
    def endpoint(self) -> str:
        """The S3 gateway's URL: the one address a client needs."""
        return f"http://{LOOPBACK}:{self.s3.http_port}"

    # -- processes ------------------------------------------------------------------------

    def _launch(self, node: Node) -> None:
        node.log.parent.mkdir(parents=True, exist_ok=True)
        # Nothing inherited that would change weed's identities or configuration: no AWS_*
        # variables, and its working directory (where it looks for security.toml) is ours.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "QBUCKET_"))}
        with open(node.log, "ab") as log:
            log.write(f"--- {time.ctime()}: weed {' '.join(node.argv)}\n".encode())
            log.flush()
            node.process = subprocess.Popen(
                [self._weed, *node.argv],
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of the test run is ours to forward
            )

    def start(self, timeout: float = 90.0) -> Cluster:
        """Start the processes in dependency order and wait until the cluster serves
        authenticated S3 requests.

        Each stage waits for the one before (weed would retry its peers on its own, but with a
        backoff that can cost seconds): the master; then the volume servers and the filer,
        until the master knows every volume server and the filer's gRPC port answers; then the
        gateway, until a signed create-bucket, put and delete work.

        Raises:
            ClusterError: a process exited, or a stage was not reached within ``timeout``
                (in all); the message has the tail of every log.
        """
        deadline = time.monotonic() + timeout
        try:
            self._launch(self.master)
            self._poll(deadline, "the master answers", self._master_up)
            for node in [*self.volumes, self.filer]:
                self._launch(node)
            self._poll(deadline, "the master knows every volume server", self._volumes_known)
            self._poll(deadline, "the filer accepts gRPC", lambda: _port_open(self.filer.grpc_port))
            self._launch(self.s3)
            self._poll(deadline, "signed S3 requests work", self._s3_works)
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self, node: Node) -> None:
        """SIGKILL ``node``: no clean shutdown, no goodbye to the master."""
        self.kill_nowait(node)
        self.reap(node)

    def kill_nowait(self, node: Node) -> None:
        """SIGKILL ``node`` and return at once (safe to call from any thread)."""
        assert node.process is not None
        node.process.send_signal(signal.SIGKILL)

    def reap(self, node: Node) -> None:
        """Wait for a killed ``node`` to be gone."""
        assert node.process is not None
        node.process.wait(timeout=10)

    def stop(self, timeout: float = 2.0) -> None:
        """SIGTERM every process still running, all at once, and SIGKILL any that outlives
        ``timeout``: the data is a test's, and the filer's graceful stop alone can wait 15 s
        for its own metadata subscription to end."""
        for node in reversed(self.nodes):  # the gateway first, the master last
            if node.alive:
                assert node.process is not None
                node.process.terminate()
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                node.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(timeout=10)
        shutil.rmtree(self._sockets, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- readiness ------------------------------------------------------------------------

    def logs(self) -> str:
        """The tail of every process's log, for failure messages."""
        parts = []
        for node in self.nodes:
            state = "running" if node.alive else f"exited ({self._returncode(node)})"
            parts.append(f"--- {node.name} [{state}] {node.log} ---\n{node.log_tail()}")
        return "\n".join(parts)

    def port_taken(self) -> bool:
        """True if a process of the cluster exited because one of its ports was taken."""
        for node in self.nodes:
            try:
                if "address already in use" in node.log.read_text(errors="replace"):
                    return True
            except OSError:
                pass
        return False

    @staticmethod
    def _returncode(node: Node) -> object:
        return None if node.process is None else node.process.returncode

    def data_nodes(self) -> list[str]:
        """The volume servers the master currently knows (``ip:port``), from /dir/status."""
        url = f"http://{LOOPBACK}:{self.master.http_port}/dir/status"
        with urllib.request.urlopen(url, timeout=5) as response:
            status = json.load(response)
        found = []
        for center in status.get("Topology", {}).get("DataCenters") or []:
            for rack in center.get("Racks") or []:
                for node in rack.get("DataNodes") or []:
                    found.append(str(node.get("Url")))
        return found

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client of the gateway, signed with the cluster's keys."""
        return s3_client(self.endpoint, self.access_key, self.secret_key, **config)

    def _poll(self, deadline: float, what: str, condition: Any) -> None:
        """Call ``condition()`` until it returns true; an exception it raises means "not yet"
        (the last one is reported). Fails at once if a process of the cluster has exited."""
        error = "no answer"
        while True:
            dead = [node.name for node in self.nodes if node.process and not node.alive]
            if dead:
                raise ClusterError(f"weed {', '.join(dead)} exited before {what}\n{self.logs()}")
            try:
                if condition():
                    return
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out waiting until {what} ({error})\n{self.logs()}")
            time.sleep(0.1)

    def _master_up(self) -> bool:
        url = f"http://{LOOPBACK}:{self.master.http_port}/cluster/status"
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)

    def _volumes_known(self) -> bool:
        return len(self.data_nodes()) == len(self.volumes)

    def _s3_works(self) -> bool:
        if self._probe_client is None:
            self._probe_client = self.client(
                retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5
            )
        client, probe = self._probe_client, "cluster-readiness-probe"
        client.create_bucket(Bucket=probe)
        client.put_object(Bucket=probe, Key="probe", Body=b"x")
        client.delete_object(Bucket=probe, Key="probe")
        client.delete_bucket(Bucket=probe)
        return True


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1):
            return True
    except OSError:
        return False


def wait_for(condition: Any, timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``condition()`` until it is true, or raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not so after {timeout:.0f} s")
        time.sleep(interval)


@contextlib.contextmanager
def running_cluster(root: Path, attempts: int = 3, **options: Any) -> Iterator[Cluster]:
    """``with running_cluster(tmp_path) as cluster:`` — started, then stopped whatever happens.

    A port picked free can still be taken by another process before weed binds it: then the
    cluster is started again on new ports (in a new directory below ``root``), up to
    ``attempts`` times. Any other failure is raised at once.
    """
    for attempt in range(1, attempts + 1):
        cluster = Cluster(Path(root) / f"attempt{attempt}", **options)
        try:
            cluster.start()
        except ClusterError:
            if attempt == attempts or not cluster.port_taken():
                raise
            continue
        try:
            yield cluster
        finally:
            cluster.stop()
        return
