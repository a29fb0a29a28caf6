"""The ``qbucket`` command line. The only module that prints for a living.

For now it manages the embedded server (``qbucket server start|stop|status|env``) and shows the
resolved configuration (``qbucket config``). Exit codes: 0 success, 1 failure, 2 usage error.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from ._exceptions import QBucketError


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
    else:  # env
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

    settings = resolve(profile=args.profile)
    if settings.embedded:
        print("endpoint:   embedded SeaweedFS server (nothing configured)")
    else:
        print(f"endpoint:   {settings.storage_url}   (from {settings.sources['storage_url']})")
        print(f"access key: {settings.access_key}   (from {settings.sources['access_key']})")
        print(f"secret key: ****   (from {settings.sources['secret_key']})")
        print(f"region:     {settings.region}   (from {settings.sources['region']})")
    print(f"config file: {settings.config_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qbucket",
        description="Object-storage buckets from the shell.",
        epilog="example: qbucket server start",
    )
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser(
        "server",
        help="manage the embedded SeaweedFS server",
        epilog='example: eval "$(qbucket server env)" && aws s3 ls',
    )
    server.add_argument("action", choices=["start", "stop", "status", "env"])
    server.set_defaults(run=_server)
    config = commands.add_parser(
        "config", help="show the resolved endpoint and where it came from (secret masked)"
    )
    config.add_argument("--profile", help="a [profiles.NAME] table of the config file")
    config.set_defaults(run=_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except QBucketError as exc:
        if args.debug:
            raise
        print(f"qbucket: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("qbucket: interrupted", file=sys.stderr)
        return 130
