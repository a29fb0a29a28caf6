"""Shared fixtures: every test runs with a private QBUCKET_HOME and no inherited S3 settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

_INHERITED_PREFIXES = ("AWS_", "QBUCKET_")


@pytest.fixture(autouse=True)
def isolated_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """No test sees the user's config, data dir or S3 variables."""
    for name in list(os.environ):
        if name.startswith(_INHERITED_PREFIXES):
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("qbucket-home")
    monkeypatch.setenv("QBUCKET_HOME", str(home))
    yield home
