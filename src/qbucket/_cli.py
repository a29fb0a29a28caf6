"""The ``qbucket`` command line: every Bucket operation from the shell. The only code that prints.

Commands: ``ls``, ``mb``, ``rb``, ``put``, ``get``, ``cp``, ``rm``, ``sync`` (both directions),
``server start|stop|status|env`` and ``config``; ``qbucket COMMAND --help`` shows each one with an
example. Exit codes: 0 success, 1 some operation failed (each failure one line on stderr), 2 usage
error (nothing was done), 3 ``server status`` of a stopped server, 130 interrupted. No Python
traceback unless ``--debug``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Sequence

from ._cli_args import UsageError
from ._cli_output import Ui, error
from ._exceptions import MissingBucketException, QBucketError

Command = Callable[[argparse.Namespace], int]


def _server(args: argparse.Namespace) -> int:
    from ._server import EmbeddedServer

    server = EmbeddedServer()
    if args.action == "start":
        info = server.ensure_running()
        print(
            f"embedded SeaweedFS running at {info.endpoint} (pid {info.pid}, data in {info.root})"
        )
    elif args.action == "stop":
        stopped = server.stop()
        print("embedded SeaweedFS stopped" if stopped else "embedded SeaweedFS was not running")
    elif args.action == "status":
        running = server.running()
        if running is None:
            print(f"embedded SeaweedFS not running (state in {server.root})")
            return 3
        print(
            f"embedded SeaweedFS running at {running.endpoint} (pid {running.pid}, data in {running.root})"
        )
    else:  # env: the one command whose purpose is to show the credentials
        info = server.ensure_running()
        for name, value in (
            ("AWS_ENDPOINT_URL", info.endpoint),
            ("AWS_ACCESS_KEY_ID", info.access_key),
            ("AWS_SECRET_ACCESS_KEY", info.secret_key),
            ("AWS_REGION", info.region),
        ):
            print(f"export {name}={shlex.quote(value)}")
    return 0


def _config(args: argparse.Namespace) -> int:
    from ._config import resolve

    settings = resolve(args.endpoint, profile=args.profile)
    if settings.embedded:
        print("endpoint:   embedded SeaweedFS server (nothing configured)")
    else:
        print(f"endpoint:   {settings.storage_url}   (from {settings.sources['storage_url']})")
        print(f"access key: {settings.access_key}   (from {settings.sources['access_key']})")
        print(f"secret key: ****   (from {settings.sources['secret_key']})")
        print(f"region:     {settings.region}   (from {settings.sources['region']})")
    print(f"config file: {settings.config_path}")
    return 0


def _with_connection(name: str) -> Command:
    """The command ``name`` of the bucket modules, run with a Connection of the options."""

    def run(args: argparse.Namespace) -> int:
        from . import _cli_objects, _cli_transfer
        from ._connection import Connection

        command = getattr(_cli_objects, name, None) or getattr(_cli_transfer, name)
        ui = Ui(quiet=args.quiet, verbose=args.verbose, json=args.json)
        jobs = getattr(args, "jobs", None)
        with Connection(args.endpoint, profile=args.profile, concurrency=jobs) as conn:
            code: int = command(args, conn, ui)
        return code

    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line; returns the exit code (never raises SystemExit)."""
    from ._cli_parser import build_parser

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse has reported
        return exc.code if isinstance(exc.code, int) else 2
    try:
        run: Command = args.run
        return run(args)
    except UsageError as exc:
        print(f"qbucket {args.command}: error: {exc}", file=sys.stderr)
        print(f"(see: qbucket {args.command} --help)", file=sys.stderr)
        return 2
    except QBucketError as exc:
        if args.debug:
            raise
        error(str(exc) + _hint(exc))
        return 1
    except KeyboardInterrupt:
        print("qbucket: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`qbucket ls ... | head`): stop quietly, as ls or cat would, and
        # keep Python from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        if args.debug:
            raise
        error(f"{type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return 1


def _hint(exc: QBucketError) -> str:
    if isinstance(exc, MissingBucketException) and exc.bucket:
        return f" (create it with: qbucket mb {exc.bucket})"
    return ""
