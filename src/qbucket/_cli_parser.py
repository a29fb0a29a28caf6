"""The argument parser of ``qbucket``: every command, its options, and an example of each."""

from __future__ import annotations

import argparse

from ._cli_args import filter_options, global_options, jobs_option, non_negative_int

DESCRIPTION = """\
Object-storage buckets from the shell: list, copy, upload, download and sync, on any S3 server or
on the embedded SeaweedFS server that qbucket starts when nothing is configured.

Configuration: --endpoint/--profile, then QBUCKET_STORAGE_URL, QBUCKET_ACCESS_KEY,
QBUCKET_SECRET_KEY (or the AWS_* variables), then ~/.config/qbucket/config.toml.
Exit codes: 0 success, 1 some operation failed, 2 usage error."""

EPILOG = """\
examples:
  qbucket mb results
  qbucket sync out/ results/run-1 --dry-run
  qbucket sync out/ results/run-1
  qbucket ls results/run-1/
  qbucket sync results/run-1 copy/"""

FILTERS = """\
filters: --exclude/--include take .gitignore-style globs on paths relative to the directory (or
the prefix): "*.tmp" matches a name at any depth, "/build" or "docs/*.md" are anchored at the top,
"cache/" matches directories only, "**" crosses directories. The rules are tried in the order
given and the FIRST that matches decides (as in rsync); a path no rule matches is included.
Excluded files are neither transferred nor deleted."""


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    example: str,
    *,
    connected: bool = True,
) -> argparse.ArgumentParser:
    from ._cli import _with_connection

    parser = commands.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=example,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[global_options(suppress=True)],
    )
    if connected:
        parser.set_defaults(run=_with_connection(name))
    return parser


def _listing_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ls = _command(
        commands,
        "ls",
        "list the buckets, or the objects of BUCKET[/PREFIX] (size, time, ETag)",
        "examples:\n  qbucket ls\n  qbucket ls results/run-1/ -r --json",
    )
    ls.add_argument("target", nargs="?", metavar="BUCKET[/PREFIX]")
    ls.add_argument("-r", "--recursive", action="store_true", help="every key, not one level")
    mb = _command(commands, "mb", "make a bucket", "example:\n  qbucket mb results")
    mb.add_argument("bucket", metavar="BUCKET")
    rb = _command(
        commands,
        "rb",
        "remove an empty bucket (--force: with everything in it)",
        "examples:\n  qbucket rb results\n  qbucket rb scratch --force",
    )
    rb.add_argument("bucket", metavar="BUCKET")
    rb.add_argument("--force", action="store_true", help="delete its objects first")


def _object_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    put = _command(
        commands,
        "put",
        "upload files and directories (a directory's tree goes below BUCKET/KEY)",
        "examples:\n  qbucket put notes.txt results/notes/today.txt\n"
        "  qbucket put a.csv b.csv out/ results/run-1/",
    )
    put.add_argument("paths", nargs="+", metavar="LOCAL... BUCKET[/KEY]")
    jobs_option(put)
    get = _command(
        commands,
        "get",
        "download an object, or with -r (or BUCKET/PREFIX/) everything under a prefix",
        "examples:\n  qbucket get results/run-1/metrics.csv .\n"
        "  qbucket get -r results/run-1 copy/",
    )
    get.add_argument("source", metavar="BUCKET/KEY")
    get.add_argument("local", nargs="?", metavar="LOCAL", help="file or directory (default: .)")
    get.add_argument("-r", "--recursive", action="store_true", help="everything under the prefix")
    jobs_option(get)
    cp = _command(
        commands,
        "cp",
        "copy an object server-side, within a bucket",
        "example:\n  qbucket cp results/run-1/model.bin results/best/model.bin",
    )
    cp.add_argument("source", metavar="BUCKET/SRC")
    cp.add_argument("destination", metavar="BUCKET/DST")
    rm = _command(
        commands,
        "rm",
        "delete objects (-r: everything under each prefix)",
        "examples:\n  qbucket rm results/run-1/tmp.txt\n  qbucket rm -r results/run-1",
    )
    rm.add_argument("targets", nargs="+", metavar="BUCKET/KEY")
    rm.add_argument("-r", "--recursive", action="store_true", help="delete under each prefix")


def _sync_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sync = _command(
        commands,
        "sync",
        "mirror a directory onto BUCKET[/PREFIX], or BUCKET[/PREFIX] onto a directory",
        "Upload (DIR BUCKET[/PREFIX]): new and changed files are sent, identical contents copied\n"
        "server-side, and objects with no local file deleted (unless --no-delete).\n"
        "Download (BUCKET[/PREFIX] DIR): new and changed objects are fetched; local files with\n"
        "no object are kept unless --delete. A SOURCE that exists locally is uploaded; write\n"
        "s3://BUCKET to be explicit.\n\n"
        f"{FILTERS}\n\n"
        "examples:\n  qbucket sync out/ results/run-1 --dry-run --exclude '*.tmp'\n"
        "  qbucket sync out/ results/run-1 --max-delete 10\n"
        "  qbucket sync s3://results/run-1 copy/ --delete",
    )
    sync.add_argument("source", metavar="SOURCE", help="DIR, or [s3://]BUCKET[/PREFIX]")
    sync.add_argument("destination", metavar="DESTINATION", help="[s3://]BUCKET[/PREFIX], or DIR")
    sync.add_argument("-n", "--dry-run", action="store_true", help="print the plan, change nothing")
    deletes = sync.add_mutually_exclusive_group()
    deletes.add_argument(
        "--delete",
        dest="delete",
        action="store_true",
        default=None,
        help="delete extras (the default when uploading)",
    )
    deletes.add_argument(
        "--no-delete",
        dest="delete",
        action="store_false",
        help="keep extras (the default when downloading)",
    )
    sync.add_argument(
        "--max-delete",
        type=non_negative_int,
        metavar="N",
        help="abort before any change if more than N files would be deleted",
    )
    filter_options(sync)
    jobs_option(sync)


def _admin_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ._cli import _config, _server

    server = _command(
        commands,
        "server",
        "manage the embedded SeaweedFS server",
        'example:\n  eval "$(qbucket server env)" && aws s3 ls',
        connected=False,
    )
    server.add_argument("action", choices=["start", "stop", "status", "env"])
    server.set_defaults(run=_server)
    config = _command(
        commands,
        "config",
        "show the resolved endpoint and where it came from (secret masked)",
        "example:\n  qbucket config --profile minio",
        connected=False,
    )
    config.set_defaults(run=_config)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qbucket",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[global_options(suppress=False)],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _listing_commands(commands)
    _object_commands(commands)
    _sync_command(commands)
    _admin_commands(commands)
    return parser
