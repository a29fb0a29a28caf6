"""``qbucket put | get | sync``: many files at once, with progress and a summary."""

from __future__ import annotations

import argparse
import functools
import os
import time
from pathlib import Path

from ._bucket import Bucket
from ._cli_args import Remote, UsageError, parse_remote, sync_direction
from ._cli_output import (
    Ui,
    batch_failed,
    error,
    plan_lines,
    report_failures,
    summary_document,
    summary_text,
)
from ._connection import Connection
from ._exceptions import BatchError, MissingKeyError, TooManyDeletesError
from ._objects import SyncSummary
from ._scan import walk_files


def _finish(ui: Ui, summary: SyncSummary, document: functools.partial[dict[str, object]]) -> int:
    """The summary of a transfer that ran to its end (a dry run's failures make it exit 1)."""
    report_failures(summary.failures)
    described = document(summary, dry_run=summary.dry_run)
    ui.document(described)
    download = described["direction"] == "download"
    ui.say(summary_text(summary, download=download, sync=described["command"] == "sync"))
    return 1 if summary.failures else 0


# -- put --------------------------------------------------------------------------------------


def put(args: argparse.Namespace, conn: Connection, ui: Ui) -> int:
    if len(args.paths) < 2:
        raise UsageError("put takes LOCAL... BUCKET[/KEY]: at least one file and a destination")
    *sources, target_text = args.paths
    target = parse_remote(target_text)
    files = _put_files(sources, target)
    document = functools.partial(
        summary_document,
        "put",
        source=" ".join(sources),
        destination=target.url,
        direction="upload",
    )
    bucket = Bucket(conn, target.bucket, create=False)
    try:
        summary = bucket.put_files(files, progress=ui.progress, verbose=ui.reporter)
    except BatchError as exc:
        return batch_failed(ui, exc, document(None, failures=exc.failures))
    return _finish(ui, summary, document)


def _put_files(sources: list[str], target: Remote) -> dict[str, str]:
    """{key: local path}: one file to a key, else files and directory trees below a prefix."""
    if len(sources) == 1 and not os.path.isdir(sources[0]) and not target.names_a_directory:
        return {target.key(): sources[0]}
    prefix = target.prefix()
    files: dict[str, str] = {}
    for source in sources:
        if os.path.isdir(source):
            found = [(item.relative, item.path) for item in walk_files(source)]
        else:
            found = [(os.path.basename(os.path.normpath(source)), source)]
        for relative, path in found:
            key = prefix + relative
            if key in files:
                raise UsageError(
                    f"{files[key]} and {path} would both be s3://{target.bucket}/{key}"
                )
            files[key] = path
    return files


# -- get --------------------------------------------------------------------------------------


def get(args: argparse.Namespace, conn: Connection, ui: Ui) -> int:
    source = parse_remote(args.source)
    bucket = Bucket(conn, source.bucket, create=False)
    if args.recursive or source.names_a_directory:
        directory = args.local or "."
        document = functools.partial(
            summary_document, "get", source=source.url, destination=directory, direction="download"
        )
        try:
            summary = bucket.get_directory(
                source.prefix() or None, directory, progress=ui.progress, verbose=ui.reporter
            )
        except BatchError as exc:
            return batch_failed(ui, exc, document(None, failures=exc.failures))
        return _finish(ui, summary, document)
    return _get_one(bucket, source, args.local, ui)


def _get_one(bucket: Bucket, source: Remote, local: str | None, ui: Ui) -> int:
    key = source.key()
    destination = local or "."
    if destination.endswith(("/", os.sep)):
        Path(destination).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        path = bucket.get_file(key, destination, progress=ui.progress)
    except MissingKeyError as exc:
        raise MissingKeyError(
            f"{exc} (to download everything under a prefix, use get -r)",
            bucket=source.bucket,
            key=key,
        ) from exc
    ui.log(f"download s3://{source.bucket}/{key} -> {path}")
    summary = SyncSummary(
        uploaded=0,
        copied=0,
        deleted=0,
        unchanged=0,
        bytes_uploaded=0,
        seconds=time.perf_counter() - started,
        downloaded=1,
        bytes_downloaded=os.path.getsize(path),
    )
    document = functools.partial(
        summary_document, "get", source=source.url, destination=path, direction="download"
    )
    return _finish(ui, summary, document)


# -- sync -------------------------------------------------------------------------------------


def sync(args: argparse.Namespace, conn: Connection, ui: Ui) -> int:
    direction = sync_direction(args.source, args.destination)
    if direction == "up":
        directory, remote = args.source, parse_remote(args.destination)
    else:
        remote, directory = parse_remote(args.source), args.destination
    prefix = remote.prefix()
    delete = args.delete if args.delete is not None else direction == "up"
    document = functools.partial(
        summary_document,
        "sync",
        source=directory if direction == "up" else remote.url,
        destination=remote.url if direction == "up" else directory,
        direction="upload" if direction == "up" else "download",
    )
    bucket = Bucket(conn, remote.bucket, create=False)
    method = bucket.sync_directory if direction == "up" else bucket.sync_to_directory
    try:
        summary = method(
            directory,
            remote=prefix or None,
            dry_run=args.dry_run,
            delete=delete,
            max_delete=args.max_delete,
            rules=args.rules,
            progress=ui.progress,
            verbose=ui.reporter,
        )
    except BatchError as exc:
        return batch_failed(ui, exc, document(None, failures=exc.failures, dry_run=args.dry_run))
    except TooManyDeletesError as exc:  # nothing was changed
        error(str(exc))
        ui.document(document(None, failures=[exc], dry_run=args.dry_run))
        return 1
    if summary.dry_run and summary.plan is not None:
        for line in plan_lines(summary.plan, remote.bucket, directory):
            ui.result(line)
    return _finish(ui, summary, document)
