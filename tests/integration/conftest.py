"""Fixtures of the integration tests (the server and bucket fixtures are in tests/conftest.py)."""

from __future__ import annotations

import pytest

from qbucket._server import ServerInfo

from .cli_runner import Runner, in_process, server_env


@pytest.fixture
def run(
    s3_server: ServerInfo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Runner:
    for name, value in server_env(s3_server).items():
        monkeypatch.setenv(name, value)
    return in_process(capsys, s3_server.secret_key)
