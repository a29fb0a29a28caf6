"""Include/exclude rules (qbucket._filters): gitignore patterns, first matching rule wins."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qbucket._filters import FilterRule, PathFilter, make_filter


def kept(rules: list[FilterRule], paths: list[str]) -> list[str]:
    path_filter = PathFilter(rules)
    return [path for path in paths if path_filter.allows(path)]


PATHS = [
    "a.txt",
    "a.tmp",
    "src/main.py",
    "src/util/x.py",
    "src/util/x.tmp",
    "build/out.o",
    "docs/build/page.html",
    "logs/keep.txt",
    "logs/run.log",
    "cache",
    "deep/cache/blob",
]


def test_no_rule_keeps_everything() -> None:
    assert kept([], PATHS) == PATHS
    assert not PathFilter([])


def test_name_pattern_matches_at_any_depth() -> None:
    assert kept([("exclude", "*.tmp")], PATHS) == [p for p in PATHS if not p.endswith(".tmp")]


def test_name_pattern_matching_a_directory_covers_its_contents() -> None:
    # "cache" is a file at the top and a directory below deep/: both go.
    assert "cache" not in kept([("exclude", "cache")], PATHS)
    assert "deep/cache/blob" not in kept([("exclude", "cache")], PATHS)


def test_trailing_slash_matches_directories_only() -> None:
    result = kept([("exclude", "cache/")], PATHS)
    assert "cache" in result  # a file
    assert "deep/cache/blob" not in result


def test_slash_anchors_at_the_root() -> None:
    assert "build/out.o" not in kept([("exclude", "/build")], PATHS)
    assert "docs/build/page.html" in kept([("exclude", "/build")], PATHS)
    assert "docs/build/page.html" in kept([("exclude", "build/out.o")], PATHS)
    assert "build/out.o" not in kept([("exclude", "build/out.o")], PATHS)
    # without the slash, "build" is a name anywhere
    assert kept([("exclude", "build")], ["build/out.o", "docs/build/page.html"]) == []


def test_star_stays_within_a_segment_and_double_star_crosses() -> None:
    assert kept([("exclude", "src/*.py")], PATHS).count("src/util/x.py") == 1
    assert "src/main.py" not in kept([("exclude", "src/*.py")], PATHS)
    assert "src/util/x.py" not in kept([("exclude", "src/**/*.py")], PATHS)
    assert "src/main.py" not in kept([("exclude", "src/**/*.py")], PATHS)
    assert kept([("exclude", "**/x.*")], PATHS) == [p for p in PATHS if "/x." not in p]
    assert kept([("exclude", "src/**")], PATHS) == [p for p in PATHS if not p.startswith("src/")]


def test_question_mark_and_character_classes() -> None:
    paths = ["a1", "a2", "ab", "a/b"]
    assert kept([("exclude", "a?")], paths) == ["a/b"]
    assert kept([("exclude", "a[12]")], paths) == ["ab", "a/b"]
    assert kept([("exclude", "a[!12]")], paths) == ["a1", "a2", "a/b"]


def test_regex_characters_are_literal() -> None:
    assert kept([("exclude", "a+b(1).txt")], ["a+b(1).txt", "aab1.txt"]) == ["aab1.txt"]


def test_first_matching_rule_wins() -> None:
    only_python = [("include", "*.py"), ("exclude", "*")]
    assert kept(only_python, PATHS) == ["src/main.py", "src/util/x.py"]  # type: ignore[arg-type]
    # rsync's order trap: an exclude first hides what a later include names
    assert kept([("exclude", "logs/"), ("include", "logs/keep.txt")], PATHS) == [
        p for p in PATHS if not p.startswith("logs/")
    ]
    assert "logs/keep.txt" in kept([("include", "logs/keep.txt"), ("exclude", "logs/")], PATHS)
    assert "logs/run.log" not in kept([("include", "logs/keep.txt"), ("exclude", "logs/")], PATHS)


def test_make_filter_puts_includes_before_excludes() -> None:
    path_filter = make_filter(exclude=["logs/"], include=["logs/keep.txt"])
    assert path_filter.allows("logs/keep.txt")
    assert not path_filter.allows("logs/run.log")
    assert path_filter.allows("other.txt")
    ordered = make_filter(exclude=["*.py"], rules=[("include", "main.py")])
    assert ordered.rules[0] == ("include", "main.py")
    assert ordered.allows("src/main.py") and not ordered.allows("src/x.py")
    assert not make_filter()


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        PathFilter([("exclude", "")])
    with pytest.raises(ValueError, match="empty"):
        PathFilter([("exclude", "/")])
    with pytest.raises(ValueError, match="include"):
        PathFilter([("drop", "*")])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        make_filter(exclude="*.tmp")


def test_prunes_only_directories_nothing_below_can_be_kept_from() -> None:
    assert PathFilter([("exclude", "node_modules/")]).prunes("web/node_modules")
    assert PathFilter([("exclude", "/build")]).prunes("build")
    assert not PathFilter([("exclude", "/build")]).prunes("docs/build")
    assert not PathFilter([("exclude", "*.tmp")]).prunes("src")
    # an include before the exclude may still keep something below
    assert not PathFilter([("include", "*.py"), ("exclude", "build/")]).prunes("build")
    assert PathFilter([("exclude", "*.tmp"), ("exclude", "build/")]).prunes("build")
    assert not PathFilter([("include", "build/"), ("exclude", "*")]).prunes("build")


def test_walk_files_does_not_enter_pruned_directories(tmp_path: Path) -> None:
    from qbucket._scan import walk_files

    for relative in ("keep.txt", "node_modules/x.js", "src/node_modules/y.js", "src/a.py"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x")
    blocked = tmp_path / "src" / "node_modules"
    blocked.chmod(0)  # entering it would fail (for non-root users)
    try:
        path_filter = PathFilter([("exclude", "node_modules/")])
        found = [f.relative for f in walk_files(tmp_path, prune=path_filter.prunes)]
    finally:
        blocked.chmod(0o755)
    assert found == ["keep.txt", "src/a.py"]


SEGMENT = st.text(alphabet="ab.x_", min_size=1, max_size=4).filter(lambda s: s not in (".", ".."))
PATH = st.lists(SEGMENT, min_size=1, max_size=4).map("/".join)
PATTERN = st.sampled_from(["*.x", "a*", "/a", "a/", "**/b", "a/**", "?", "b.x", "*"])
RULES = st.lists(st.tuples(st.sampled_from(["include", "exclude"]), PATTERN), max_size=4)


@given(rules=RULES, path=PATH)
def test_a_pruned_directory_holds_nothing_the_filter_keeps(
    rules: list[FilterRule], path: str
) -> None:
    path_filter = PathFilter(rules)
    parts = path.split("/")
    for depth in range(1, len(parts)):
        if path_filter.prunes("/".join(parts[:depth])):
            assert not path_filter.allows(path)
