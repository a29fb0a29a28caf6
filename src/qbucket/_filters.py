"""Include/exclude rules on relative paths, for syncs. Pure: no disk, no network.

Patterns use the ``.gitignore`` syntax, matched against a path relative to the synced directory
(or to the remote prefix), with ``/`` separators:

* ``*`` and ``?`` match within one path segment, ``[abc]`` a character class, ``**`` any number
  of segments (``logs/**/*.gz``);
* a pattern without a ``/`` (``*.tmp``, ``cache``) matches a file or directory name at any depth;
* a pattern with a ``/`` at its start or in its middle (``/build``, ``docs/*.md``) is anchored at
  the root of the sync;
* a trailing ``/`` (``build/``) matches directories only;
* a rule that matches a directory matches everything below it.

Rules are tried in the order given and the **first one that matches decides** (as in rsync); a
path that no rule matches is included. So ``--include '*.py' --exclude '*'`` keeps only the
Python files, and ``--exclude 'logs/' --include 'logs/keep.txt'`` keeps nothing of ``logs/``
(put the include first to keep that file).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple

Action = Literal["include", "exclude"]
FilterRule = tuple[Action, str]


class _Compiled(NamedTuple):
    include: bool
    regex: re.Pattern[str]
    anchored: bool  # matched against whole paths from the root, else against one name
    directories_only: bool


def _translate(pattern: str) -> str:
    """The regular expression (without anchors) of a gitignore-style glob."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out)


def _compile(action: Action, pattern: str) -> _Compiled:
    if action not in ("include", "exclude"):
        raise ValueError(f"a filter rule is 'include' or 'exclude', not {action!r}")
    if not pattern or pattern.strip("/") == "":
        raise ValueError(f"empty {action} pattern {pattern!r}")
    directories_only = pattern.endswith("/")
    body = pattern.rstrip("/")
    anchored = "/" in body
    body = body.lstrip("/")
    return _Compiled(
        action == "include", re.compile(_translate(body), re.DOTALL), anchored, directories_only
    )


class PathFilter:
    """Decides which relative paths a sync takes, from ordered include/exclude rules.

    Args:
        rules: ``("include" | "exclude", pattern)`` pairs, tried in order; the first that matches
            decides, and a path no rule matches is included.

    Raises:
        ValueError: an empty pattern or an unknown action.
    """

    def __init__(self, rules: Iterable[FilterRule]) -> None:
        self.rules: tuple[FilterRule, ...] = tuple(rules)
        self._compiled = [_compile(action, pattern) for action, pattern in self.rules]

    def __repr__(self) -> str:
        return f"PathFilter({list(self.rules)!r})"

    def __bool__(self) -> bool:
        return bool(self.rules)

    def _first_match(self, parts: Sequence[str], is_directory: bool) -> int | None:
        """The index of the first rule matching the path of ``parts`` (or a parent of it)."""
        for index, rule in enumerate(self._compiled):
            if _matches(rule, parts, is_directory):
                return index
        return None

    def allows(self, relative: str) -> bool:
        """True when the file at ``relative`` (``a/b/c.txt``) is part of the sync."""
        index = self._first_match(relative.strip("/").split("/"), False)
        return index is None or self._compiled[index].include

    def prunes(self, relative_directory: str) -> bool:
        """True when no file below the directory ``relative_directory`` can be allowed, so a walk
        may skip it: the first rule matching the directory excludes it, and no include rule comes
        before that one (a rule matching a directory matches every path below it)."""
        index = self._first_match(relative_directory.strip("/").split("/"), True)
        if index is None or self._compiled[index].include:
            return False
        return not any(rule.include for rule in self._compiled[:index])


def _matches(rule: _Compiled, parts: Sequence[str], is_directory: bool) -> bool:
    """Whether ``rule`` matches the path ``parts`` or one of its parent directories."""
    last = len(parts) - 1
    for depth in range(len(parts)):
        names_a_directory = depth < last or is_directory
        if rule.directories_only and not names_a_directory:
            continue
        subject = "/".join(parts[: depth + 1]) if rule.anchored else parts[depth]
        if rule.regex.fullmatch(subject):
            return True
    return False


def make_filter(
    exclude: Iterable[str] = (), include: Iterable[str] = (), rules: Iterable[FilterRule] = ()
) -> PathFilter:
    """One filter from the keyword arguments of the sync methods.

    ``rules`` (ordered) come first, then the ``include`` patterns, then the ``exclude`` ones:
    given as separate lists, an include beats an exclude
    (``exclude=["logs/"], include=["logs/keep.txt"]`` keeps that one file of ``logs/``).

    Raises:
        ValueError: an empty pattern or an unknown action.
    """
    if isinstance(exclude, str) or isinstance(include, str):
        raise TypeError("exclude and include take lists of patterns, not one str")
    ordered: list[FilterRule] = list(rules)
    ordered += [("include", pattern) for pattern in include]
    ordered += [("exclude", pattern) for pattern in exclude]
    return PathFilter(ordered)
