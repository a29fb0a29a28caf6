"""Running the ``qbucket`` command line in tests: in-process (``main(argv)``, fast) or as
``python -m qbucket`` in a subprocess, with the checks every run must pass: no secret and no
traceback in any output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from qbucket._cli import main
from qbucket._server import ServerInfo


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Runner = Callable[..., Ran]


def server_env(server: ServerInfo) -> dict[str, str]:
    return {
        "QBUCKET_STORAGE_URL": server.endpoint,
        "QBUCKET_ACCESS_KEY": server.access_key,
        "QBUCKET_SECRET_KEY": server.secret_key,
    }


def check_output(ran: Ran, secret: str, *, traceback: bool = False) -> Ran:
    assert secret not in ran.out and secret not in ran.err, "a secret was printed"
    if not traceback:
        assert "Traceback" not in ran.err, ran.err
    return ran


def in_process(capsys: pytest.CaptureFixture[str], secret: str) -> Runner:
    """``run("ls", "--json")`` -> Ran, through ``main(argv)`` (settings from the environment)."""

    def run(*args: str) -> Ran:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return check_output(Ran(code, out, err), secret)

    return run


def subprocess_runner(env: dict[str, str], secret: str) -> Runner:
    """``run("ls")`` -> Ran, through ``python -m qbucket`` with exactly ``env``'s settings."""

    def run(*args: str, traceback: bool = False) -> Ran:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "QBUCKET_"))}
        done = subprocess.run(
            [sys.executable, "-m", "qbucket", *args],
            env={**clean, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return check_output(
            Ran(done.returncode, done.stdout, done.stderr), secret, traceback=traceback
        )

    return run
