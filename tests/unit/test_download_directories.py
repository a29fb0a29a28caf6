"""The directories of a download are made once each, and those that cannot take files say why."""

from __future__ import annotations

from pathlib import Path

from qbucket._download import _prepare_directories
from qbucket._exceptions import LocalPathError


def test_each_directory_is_made_and_the_unusable_ones_are_named(tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    (root / "taken").write_bytes(b"a file where a directory should be")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "link").symlink_to(elsewhere, target_is_directory=True)
    fine, deep = root / "a", root / "b" / "c" / "d"
    blocked, escaping = root / "taken" / "x", root / "link" / "y"

    problems = _prepare_directories(root, [fine, deep, blocked, escaping])

    assert fine.is_dir() and deep.is_dir()
    assert set(problems) == {blocked, escaping}
    assert isinstance(problems[blocked], OSError)
    assert isinstance(problems[escaping], LocalPathError)
    assert "leads outside" in str(problems[escaping])
    assert not (elsewhere / "y").exists()
