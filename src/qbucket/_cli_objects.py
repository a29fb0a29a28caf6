"""``qbucket ls | mb | rb | cp | rm``: buckets and single objects."""

from __future__ import annotations

import argparse
from typing import Any

from ._bucket import Bucket
from ._cli_args import Remote, UsageError, parse_remote
from ._cli_output import Ui, failure_documents, report_failures
from ._connection import Connection
from ._exceptions import BucketNotEmptyError, MissingKeyError, QBucketError
from ._objects import ObjectSummary

# -- ls ---------------------------------------------------------------------------------------


def ls(args: argparse.Namespace, conn: Connection, ui: Ui) -> int:
    if args.target is None:
        names = sorted(bucket.name for bucket in conn.buckets())
        ui.document({"buckets": names})
        for name in names:
            ui.result(name)
        return 0
    remote = parse_remote(args.target)
    prefix = remote.rest.lstrip("/")
    bucket = Bucket(conn, remote.bucket, create=False)
    prefixes: list[str] = []
    if args.recursive:
        shown = bucket.directory(prefix)
    else:
        prefixes, shown = bucket._list_level(prefix)
    ui.document(
        {
            "bucket": remote.bucket,
            "prefix": prefix,
            "recursive": args.recursive,
            "prefixes": sorted(prefixes),
            "objects": [_object_document(summary) for summary in shown],
        }
    )
    # Like `aws s3 ls`: names below the prefix's last "/", full keys with -r.
    base = "" if args.recursive else prefix[: prefix.rfind("/") + 1]
    for common in sorted(prefixes):
        ui.result(f"{'PRE':>32}  {common[len(base) :]}")
    for summary in shown:
        ui.result(_object_line(summary, summary.key[len(base) :]))
    return 0


def _object_document(summary: ObjectSummary) -> dict[str, Any]:
    return {
        "key": summary.key,
        "size": summary.size,
        "last_modified": summary.last_modified.isoformat(),
        "etag": summary.e_tag.strip('"'),
    }


def _object_line(summary: ObjectSummary, name: str) -> str:
    when = summary.last_modified.strftime("%Y-%m-%d %H:%M:%S")
    etag = summary.e_tag.strip('"')
    return f"{when} {summary.size:>12}  {etag:<34}  {name}"


# -- mb, rb -----------------------------------------------------------------------------------


def mb(args: argparse.Namespace, conn: Connection, ui: Ui) -> int:
    remote = _bucket_only(args.bucket)
    existed = Bucket(conn, remote.bucket, create=False).exists()
    if not existed:
        conn.create_bucket(remote.bucket)
    ui.log(f"make bucket s3://{remote.bucket}")
    ui.document({"bucket": remote.bucket, "created": not existed})
    ui.say(f"{'bucket already exists' if existed else 'created bucket'} s3://{remote.bucket}")
    return 0


def rb(args: argparse.Namespace, conn: Connection, ui: Ui) -> int:
    remote = _bucket_only(args.bucket)
    bucket = conn.retrieve_bucket(remote.bucket)
    objects = None
    if args.force:
        objects = len(bucket.list_files())
    elif not bucket.is_empty():
        raise BucketNotEmptyError(
            f"bucket {remote.bucket!r} is not empty: empty it first (qbucket rm -r "
            f"{remote.bucket}), or use --force to delete it with everything in it",
            bucket=remote.bucket,
        )
    bucket.delete()
    ui.log(f"remove bucket s3://{remote.bucket}")
    ui.document({"bucket": remote.bucket, "removed": True, "objects_deleted": objects or 0})
    ui.say(
        f"removed bucket s3://{remote.bucket}"
        + (f" and its {objects} object(s)" if objects else "")
    )
    return 0


def _bucket_only(text: str) -> Remote:
    remote = parse_remote(text)
    if remote.rest.strip("/"):
        raise UsageError(f"{text!r}: expected a bucket name, without a key")
    return remote


# -- cp ---------------------------------------------------------------------------------------


def cp(args: argparse.Namespace, conn: Connection, ui: Ui) -> int:
    source, target = parse_remote(args.source), parse_remote(args.destination)
    if source.bucket != target.bucket:
        raise UsageError("cp copies within one bucket: SOURCE and DESTINATION name two buckets")
    source_key = source.key()
    if target.names_a_directory:  # "b/dir/" or "b": keep the source's name
        name = source_key.rsplit("/", 1)[-1]
        target = Remote(target.text, target.bucket, target.prefix() + name)
    dest_key = target.key()
    Bucket(conn, source.bucket, create=False).copy_file(source_key, dest_key)
    line = f"copy s3://{source.bucket}/{source_key} -> s3://{target.bucket}/{dest_key}"
    ui.log(line)
    ui.document({"bucket": source.bucket, "source": source_key, "key": dest_key})
    ui.say(f"copied s3://{source.bucket}/{source_key} to s3://{target.bucket}/{dest_key}")
    return 0


# -- rm ---------------------------------------------------------------------------------------


def rm(args: argparse.Namespace, conn: Connection, ui: Ui) -> int:
    remotes = [parse_remote(text) for text in args.targets]
    plan = [(remote, remote.prefix() if args.recursive else remote.key()) for remote in remotes]
    deleted: list[str] = []
    failures: list[QBucketError] = []
    for remote, key_or_prefix in plan:
        bucket = Bucket(conn, remote.bucket, create=False)
        if args.recursive:
            keys = [summary.key for summary in bucket.directory(key_or_prefix)]
        elif key_or_prefix in bucket:
            keys = [key_or_prefix]
        else:
            keys = []
            failures.append(
                MissingKeyError(
                    f"no such key s3://{remote.bucket}/{key_or_prefix} (to delete everything "
                    "under a prefix, use rm -r)",
                    bucket=remote.bucket,
                    key=key_or_prefix,
                )
            )
        bucket.delete_files(keys)
        for key in keys:
            ui.log(f"delete s3://{remote.bucket}/{key}")
        deleted += [f"s3://{remote.bucket}/{key}" for key in keys]
    report_failures(failures)
    ui.document({"deleted": deleted, "failures": failure_documents(failures)})
    ui.say(f"deleted {len(deleted)} object(s)")
    return 1 if failures else 0
