"""The directories of a download are made once each, and those that cannot take files say why;
the files are taken from each directory in turn."""

from __future__ import annotations

import datetime
import itertools
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from qbucket._download import across_directories
from qbucket._download_batch import Job, prepare_directories
from qbucket._exceptions import LocalPathError
from qbucket._objects import ObjectSummary

WHEN = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)


def job(relative: str) -> Job:
    return ObjectSummary("bkt", relative, 1, '"tag"', WHEN), Path("/out", relative)


def test_each_directory_is_made_and_the_unusable_ones_are_named(tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    (root / "taken").write_bytes(b"a file where a directory should be")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "link").symlink_to(elsewhere, target_is_directory=True)
    fine, deep = root / "a", root / "b" / "c" / "d"
    blocked, escaping = root / "taken" / "x", root / "link" / "y"

    problems = prepare_directories(root, [fine, deep, blocked, escaping])

    assert fine.is_dir() and deep.is_dir()
    assert set(problems) == {blocked, escaping}
    assert isinstance(problems[blocked], OSError)
    assert isinstance(problems[escaping], LocalPathError)
    assert "leads outside" in str(problems[escaping])
    assert not (elsewhere / "y").exists()


def test_files_are_taken_from_each_directory_in_turn() -> None:
    jobs = [job(name) for name in ["a/1", "a/2", "a/3", "b/1", "c/1", "c/2", "top"]]
    order = [summary.key for summary, _ in across_directories(jobs)]
    assert order == ["a/1", "b/1", "c/1", "top", "a/2", "c/2", "a/3"]


@given(st.lists(st.tuples(st.sampled_from(["", "a/", "b/", "a/b/", "c/"]), st.integers(0, 50))))
def test_the_order_is_a_permutation_keeping_each_directorys_order(
    names: list[tuple[str, int]],
) -> None:
    jobs = [job(f"{directory}f{n}-{i}") for i, (directory, n) in enumerate(names)]
    ordered = across_directories(jobs)
    assert sorted(id(j) for j in ordered) == sorted(id(j) for j in jobs)
    for directory in {destination.parent for _, destination in jobs}:
        mine = [j for j in jobs if j[1].parent == directory]
        assert [j for j in ordered if j[1].parent == directory] == mine
    # No directory comes twice in a row while another one still has files waiting.
    for at, (first, second) in enumerate(itertools.pairwise(ordered), start=1):
        if first[1].parent == second[1].parent:
            assert {j[1].parent for j in ordered[at:]} == {first[1].parent}
