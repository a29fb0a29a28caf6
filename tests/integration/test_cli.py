"""The ``qbucket`` command line, run as ``python -m qbucket`` in a subprocess.

The ``server`` commands manage the embedded SeaweedFS server of a module-private QBUCKET_HOME;
one start serves the whole module and its teardown stops it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import qbucket
from qbucket._server import EmbeddedServer

from .helpers import unique_name

RUNNING = re.compile(r"running at (http://127\.0\.0\.1:\d+) \(pid (\d+)")


def qbucket_cli(
    *args: str, home: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "QBUCKET_"))}
    env["QBUCKET_HOME"] = str(home)
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "qbucket", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )


@dataclass(frozen=True)
class Started:
    home: Path
    endpoint: str
    pid: int
    output: str


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    """``qbucket server start`` in a module-private home; stopped (in-process) at the end."""
    home = tmp_path_factory.mktemp("cli-home")
    try:
        done = qbucket_cli("server", "start", home=home)
        assert done.returncode == 0, done.stderr
        match = RUNNING.search(done.stdout)
        assert match, done.stdout
        yield Started(home, match.group(1), int(match.group(2)), done.stdout)
    finally:
        EmbeddedServer(home / "data" / "server").stop()


# -- usage --------------------------------------------------------------------------------------


def test_help_exits_0(tmp_path: Path) -> None:
    done = qbucket_cli("--help", home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "server" in done.stdout and "config" in done.stdout
    server_help = qbucket_cli("server", "--help", home=tmp_path)
    assert server_help.returncode == 0
    for action in ("start", "stop", "status", "env"):
        assert action in server_help.stdout


def test_installed_console_script_runs(tmp_path: Path) -> None:
    # The `qbucket` command pip installs beside the interpreter, not only `python -m qbucket`.
    script = Path(sys.executable).with_name("qbucket")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "QBUCKET_"))}
    env["QBUCKET_HOME"] = str(tmp_path)
    done = subprocess.run(
        [str(script), "sync", "--help"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "--dry-run" in done.stdout and "--max-delete" in done.stdout


def test_unknown_command_exits_2(tmp_path: Path) -> None:
    done = qbucket_cli("frobnicate", home=tmp_path)
    assert done.returncode == 2
    assert "frobnicate" in done.stderr
    assert done.stdout == ""
    unknown_action = qbucket_cli("server", "explode", home=tmp_path)
    assert unknown_action.returncode == 2
    assert "explode" in unknown_action.stderr
    no_command = qbucket_cli(home=tmp_path)
    assert no_command.returncode == 2


# -- config -------------------------------------------------------------------------------------


def test_config_shows_sources_and_masks_the_secret(tmp_path: Path) -> None:
    secret = "TopSecretValue-" + os.urandom(8).hex()
    done = qbucket_cli(
        "config",
        home=tmp_path,
        extra_env={
            "QBUCKET_STORAGE_URL": "http://storage.example:9000",
            "QBUCKET_ACCESS_KEY": "AKIAEXAMPLE",
            "QBUCKET_SECRET_KEY": secret,
        },
    )
    assert done.returncode == 0, done.stderr
    assert secret not in done.stdout and secret not in done.stderr
    assert "http://storage.example:9000" in done.stdout
    assert "env QBUCKET_STORAGE_URL" in done.stdout
    assert "AKIAEXAMPLE" in done.stdout and "env QBUCKET_ACCESS_KEY" in done.stdout
    assert "****" in done.stdout and "env QBUCKET_SECRET_KEY" in done.stdout
    assert "us-east-1" in done.stdout


def test_config_from_aws_variables_and_file(tmp_path: Path) -> None:
    secret = "AwsSecret-" + os.urandom(8).hex()
    done = qbucket_cli(
        "config",
        home=tmp_path,
        extra_env={
            "AWS_ENDPOINT_URL": "https://s3.example.com",
            "AWS_ACCESS_KEY_ID": "AKIAAWS",
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_REGION": "eu-west-3",
        },
    )
    assert done.returncode == 0, done.stderr
    assert secret not in done.stdout + done.stderr
    assert "https://s3.example.com" in done.stdout and "env AWS_ENDPOINT_URL" in done.stdout
    assert "eu-west-3" in done.stdout and "env AWS_REGION" in done.stdout
    assert "****" in done.stdout

    file_secret = "FileSecret-" + os.urandom(8).hex()
    config = tmp_path / "config.toml"  # the default path: $QBUCKET_HOME/config.toml
    config.write_text(
        'storage_url = "http://10.1.2.3:8333"\n'
        'access_key = "filekey"\n'
        f'secret_key = "{file_secret}"\n'
        "[profiles.other]\n"
        'storage_url = "http://10.9.9.9:8333"\n'
        'access_key = "otherkey"\n'
        f'secret_key = "{file_secret}"\n'
    )
    from_file = qbucket_cli("config", home=tmp_path)
    assert from_file.returncode == 0, from_file.stderr
    assert file_secret not in from_file.stdout + from_file.stderr
    assert "http://10.1.2.3:8333" in from_file.stdout
    assert f"config file {config}" in from_file.stdout
    profile = qbucket_cli("config", "--profile", "other", home=tmp_path)
    assert profile.returncode == 0, profile.stderr
    assert "http://10.9.9.9:8333" in profile.stdout and "otherkey" in profile.stdout
    assert file_secret not in profile.stdout + profile.stderr


def test_config_with_nothing_configured_names_the_embedded_server(tmp_path: Path) -> None:
    done = qbucket_cli("config", home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "embedded" in done.stdout.lower()


def test_config_errors_exit_1_without_traceback(tmp_path: Path) -> None:
    done = qbucket_cli("config", "--profile", "nope", home=tmp_path)
    assert done.returncode == 1
    assert "qbucket: error:" in done.stderr
    assert "Traceback" not in done.stderr
    bad_url = qbucket_cli(
        "config",
        home=tmp_path,
        extra_env={"QBUCKET_STORAGE_URL": "ftp://nope", "QBUCKET_ACCESS_KEY": "a"},
    )
    assert bad_url.returncode == 1
    assert "ftp://nope" in bad_url.stderr and "Traceback" not in bad_url.stderr


# -- server -------------------------------------------------------------------------------------


def test_server_status_exits_3_when_not_running(tmp_path: Path) -> None:
    done = qbucket_cli("server", "status", home=tmp_path)
    assert done.returncode == 3
    assert "not running" in done.stdout
    assert not (tmp_path / "data" / "server" / "state.json").exists()  # status starts nothing


def test_server_start_prints_endpoint(started: Started) -> None:
    assert started.endpoint.startswith("http://127.0.0.1:")
    assert str(started.home / "data" / "server") in started.output
    again = qbucket_cli("server", "start", home=started.home)  # already running: same server
    assert again.returncode == 0, again.stderr
    match = RUNNING.search(again.stdout)
    assert match and (match.group(1), int(match.group(2))) == (started.endpoint, started.pid)


def test_server_status_exits_0_when_running(started: Started) -> None:
    done = qbucket_cli("server", "status", home=started.home)
    assert done.returncode == 0, done.stderr
    match = RUNNING.search(done.stdout)
    assert match and (match.group(1), int(match.group(2))) == (started.endpoint, started.pid)


def test_server_env_is_usable_by_boto3(started: Started, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from botocore.config import Config

    done = qbucket_cli("server", "env", home=started.home)
    assert done.returncode == 0, done.stderr
    exported: dict[str, str] = {}
    for line in done.stdout.splitlines():
        words = shlex.split(line)
        assert words[0] == "export" and len(words) == 2, line
        name, _, value = words[1].partition("=")
        exported[name] = value
    assert set(exported) == {
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
    }
    assert exported["AWS_ENDPOINT_URL"] == started.endpoint

    # boto3 configured from nothing but those variables
    for name, value in exported.items():
        monkeypatch.setenv(name, value)
    client = boto3.client(
        "s3",
        config=Config(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
    name = unique_name("cli-env")
    client.create_bucket(Bucket=name)
    assert name in [b["Name"] for b in client.list_buckets()["Buckets"]]

    # and so is a plain qbucket.Connection(), which then sees the same buckets
    with qbucket.Connection() as conn:
        assert not conn.embedded
        assert conn.settings.sources["storage_url"] == "env AWS_ENDPOINT_URL"
        assert name in [b.name for b in conn.buckets()]
        conn.retrieve_bucket(name).delete()


def test_server_stop(started: Started) -> None:
    done = qbucket_cli("server", "stop", home=started.home)
    assert done.returncode == 0, done.stderr
    assert "stopped" in done.stdout
    status = qbucket_cli("server", "status", home=started.home)
    assert status.returncode == 3
    assert "not running" in status.stdout
    again = qbucket_cli("server", "stop", home=started.home)
    assert again.returncode == 0
    assert "not running" in again.stdout
    assert not _alive(started.pid)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie does not)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"
