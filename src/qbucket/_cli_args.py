"""Command-line arguments: the shared options, and ``BUCKET[/KEY]`` arguments made sense of.

Anything that cannot mean a valid command raises :class:`UsageError` (exit code 2) before a
single request is made.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

from ._exceptions import InvalidBucketNameError, InvalidKeyError
from ._filters import FilterRule, PathFilter
from ._keys import normalize_key, normalize_prefix, validate_bucket_name

SCHEME = "s3://"


class UsageError(Exception):
    """A command line that means nothing valid: exit code 2, nothing was done."""


class Remote(NamedTuple):
    """A ``[s3://]BUCKET[/KEY]`` argument: the bucket, and the rest as typed (maybe "")."""

    text: str
    bucket: str
    rest: str

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.rest}"

    def key(self) -> str:
        """The object key; :class:`UsageError` when there is none or it is not valid."""
        if not self.rest:
            raise UsageError(f"{self.text!r} names no object: expected BUCKET/KEY")
        try:
            return normalize_key(self.rest, bucket=self.bucket, allow_control=True)
        except InvalidKeyError as exc:
            raise UsageError(str(exc)) from None

    def prefix(self) -> str:
        """The key prefix of a directory-like argument: "" or ``"a/b/"``."""
        try:
            return normalize_prefix(self.rest, bucket=self.bucket)
        except InvalidKeyError as exc:
            raise UsageError(str(exc)) from None

    @property
    def names_a_directory(self) -> bool:
        """True for ``BUCKET``, ``BUCKET/`` and ``BUCKET/prefix/``."""
        return self.rest == "" or self.rest.endswith("/")


def parse_remote(text: str) -> Remote:
    """``text`` as ``[s3://]BUCKET[/KEY]``, with a valid bucket name."""
    body = text[len(SCHEME) :] if text.startswith(SCHEME) else text
    bucket, _, rest = body.partition("/")
    if not bucket:
        raise UsageError(f"{text!r} is not BUCKET[/KEY]")
    try:
        validate_bucket_name(bucket)
    except InvalidBucketNameError as exc:
        raise UsageError(f"{text!r}: {exc}") from None
    return Remote(text, bucket, rest)


def sync_direction(source: str, destination: str) -> Literal["up", "down"]:
    """Which side of ``qbucket sync SOURCE DESTINATION`` is the bucket.

    ``s3://`` marks a bucket; otherwise a SOURCE that exists locally is uploaded, and any other
    SOURCE is a bucket to download from. When both exist locally the command is refused rather
    than guessed: an upload deletes remote extras.
    """
    if source.startswith(SCHEME) and destination.startswith(SCHEME):
        raise UsageError("sync copies between a local directory and a bucket, not two buckets")
    if source.startswith(SCHEME):
        return "down"
    if destination.startswith(SCHEME):
        return "up"
    if os.path.exists(source) and os.path.exists(destination):
        raise UsageError(
            f"both {source!r} and {destination!r} exist locally: write the bucket side as "
            "s3://BUCKET[/PREFIX]"
        )
    if os.path.exists(source):
        return "up"
    try:
        parse_remote(source)
    except UsageError:
        raise UsageError(f"{source!r} does not exist locally, nor is it BUCKET[/PREFIX]") from None
    return "down"


# -- options --------------------------------------------------------------------------------


def global_options(*, suppress: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after its name.

    The subcommands' copies default to SUPPRESS, so that an option given before the command
    name is not reset by the subcommand's default.
    """

    def default(value: object) -> Any:
        return argparse.SUPPRESS if suppress else value

    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("global options")
    group.add_argument(
        "--endpoint", metavar="URL", default=default(None), help="S3 endpoint (storage URL)"
    )
    group.add_argument(
        "--profile", metavar="NAME", default=default(None), help="[profiles.NAME] of the config"
    )
    group.add_argument(
        "-q", "--quiet", action="store_true", default=default(False), help="no progress, no summary"
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", default=default(False), help="log each operation"
    )
    group.add_argument(
        "--debug", action="store_true", default=default(False), help="show Python tracebacks"
    )
    group.add_argument(
        "--json", action="store_true", default=default(False), help="one JSON document on stdout"
    )
    return parent


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def jobs_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-j",
        "--jobs",
        type=positive_int,
        metavar="N",
        default=None,
        help="transfers in flight at once (default 64)",
    )


class _RuleAction(argparse.Action):
    """``--exclude``/``--include``: one ordered list of rules, in command-line order."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        rules: list[FilterRule] = list(getattr(namespace, self.dest, None) or [])
        rule: FilterRule = (self.const, str(values))
        try:
            PathFilter([rule])
        except ValueError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None
        rules.append(rule)
        setattr(namespace, self.dest, rules)


def filter_options(parser: argparse.ArgumentParser) -> None:
    for action in ("exclude", "include"):
        parser.add_argument(
            f"--{action}",
            dest="rules",
            action=_RuleAction,
            const=action,
            default=[],
            metavar="GLOB",
            help=f"{action} paths matching GLOB (repeatable; the first matching rule wins)",
        )
