"""Download-direction sync: make a local directory mirror the objects under a bucket prefix.

scan (one listing of the prefix, one walk of the directory) -> plan (pure: :func:`remote_files`
and :func:`plan_pull`) -> fetch the new and changed objects (atomic, checked downloads) -> only
when asked, and only if every fetch succeeded, delete the local files that have no object.

Comparison, as in the upload direction, without a request per unchanged file:

* no local file, or one of another size: fetch;
* same size: the local file's digests (from the digest cache, else one read) decide against the
  ETag when it is a plain MD5, else against the SHA-1 that qbucket stores in the object's metadata
  (one HEAD, only for such objects); an object with neither is fetched again.

Every key becomes a path below the directory by the rules of :mod:`qbucket._keys`: ``../x``,
``/etc/x`` and friends are refused, each with its own error, and a symlink inside the directory
never carries a file out of it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from . import _transfer
from ._download import download_jobs
from ._error_mapping import translate
from ._exceptions import QBucketError, UnsafeKeyError
from ._hashcache import HashCache
from ._hashing import Digests
from ._keys import is_directory_marker, key_to_relative_path
from ._objects import ObjectSummary, SyncSummary
from ._planner import RemoteEntry, same_content
from ._progress import ProgressSink
from ._scan import LocalFile, SourceFile, walk_files
from ._sync import check_max_delete, hash_all

if TYPE_CHECKING:
    from ._filters import PathFilter
    from ._transport import Transport

Reporter = Callable[[str], None]


class RemoteFile(NamedTuple):
    """An object to mirror, at ``relative`` (a safe ``/``-separated path) below the directory."""

    relative: str
    summary: ObjectSummary
    sha1: str | None = None  # the stored SHA-1 once read: "" when the object has none


class PullPlan(NamedTuple):
    """What a download-direction sync does.

    Attributes:
        fetches: objects to download (new, or changed).
        deletes: local files with no object, to delete (only when deleting was asked for).
        unchanged: relative paths of the files that already hold their object's content.
        to_hash: relative paths whose local digests must be known before deciding.
        unresolved: relative paths whose object's stored SHA-1 must be read before deciding.
        failures: keys refused (unsafe as paths) and files that could not be read.
    """

    fetches: list[RemoteFile]
    deletes: list[LocalFile]
    unchanged: list[str]
    to_hash: list[str]
    unresolved: list[str]
    failures: list[QBucketError]

    @property
    def is_noop(self) -> bool:
        return not (self.fetches or self.deletes)

    @property
    def bytes_to_fetch(self) -> int:
        return sum(item.summary.size for item in self.fetches)


def remote_files(
    summaries: Iterable[ObjectSummary],
    prefix: str,
    *,
    bucket: str,
    keep: Callable[[str], bool] | None = None,
) -> tuple[dict[str, RemoteFile], list[QBucketError], int]:
    """The listed objects under ``prefix`` as files below the directory.

    Returns:
        The files by relative path; one :class:`UnsafeKeyError` per key that cannot be a path
        below the directory; and how many objects ``keep`` excluded. ``dir/`` markers are
        ignored.
    """
    found: dict[str, RemoteFile] = {}
    refused: list[QBucketError] = []
    excluded = 0
    for summary in summaries:
        if is_directory_marker(summary.key) or not summary.key.startswith(prefix):
            continue
        try:
            # The prefix has only plain segments: the key is safe exactly when the part of it
            # below the prefix is, and the error then names the whole key.
            key_to_relative_path(summary.key, bucket=bucket)
        except UnsafeKeyError as exc:
            refused.append(exc)
            continue
        relative = summary.key[len(prefix) :]
        if keep is not None and not keep(relative):
            excluded += 1
            continue
        found[relative] = RemoteFile(relative, summary)
    return found, refused, excluded


def plan_pull(
    remote: Mapping[str, RemoteFile],
    local: Mapping[str, LocalFile],
    digests: Mapping[str, Digests],
    *,
    delete: bool = False,
) -> PullPlan:
    """The downloads (and, with ``delete``, local deletes) that make ``local`` mirror ``remote``.

    When a same-size file's digests are not in ``digests`` it is listed in ``to_hash``; when only
    its object's stored SHA-1 can decide, in ``unresolved``. Either way the plan then holds no
    operation: the caller finds out, and plans again.
    """
    fetches: list[RemoteFile] = []
    unchanged: list[str] = []
    to_hash: list[str] = []
    unresolved: list[str] = []
    for relative in sorted(remote):
        wanted = remote[relative]
        have = local.get(relative)
        if have is None or have.size != wanted.summary.size:
            fetches.append(wanted)
            continue
        known = digests.get(relative)
        if known is None:
            to_hash.append(relative)
            continue
        entry = RemoteEntry(wanted.summary.key, wanted.summary.size, wanted.summary.e_tag)
        verdict = same_content(known, entry._replace(sha1=wanted.sha1))
        if verdict is None:
            unresolved.append(relative)
        elif verdict:
            unchanged.append(relative)
        else:
            fetches.append(wanted)
    if to_hash or unresolved:
        return PullPlan([], [], unchanged, to_hash, unresolved, [])
    deletes = [local[path] for path in sorted(local) if path not in remote] if delete else []
    return PullPlan(fetches, deletes, unchanged, [], [], [])


# -- execution ------------------------------------------------------------------------------


class PullContext(NamedTuple):
    transport: Transport
    bucket: str
    report: Reporter | None
    cache: HashCache
    sink: ProgressSink


def scan_local(root: Path, path_filter: PathFilter | None) -> dict[str, LocalFile]:
    """The files below ``root`` that the filter keeps, by relative path ({} if ``root`` is
    missing: a download creates it). Blocking."""
    if not root.exists():
        return {}
    prune = path_filter.prunes if path_filter else None
    found: dict[str, LocalFile] = {}
    for file in walk_files(root, prune=prune):
        if path_filter is None or path_filter.allows(file.relative):
            found[file.relative] = file
    return found


async def _digests(
    ctx: PullContext, local: Mapping[str, LocalFile], paths: Sequence[str]
) -> tuple[dict[str, Digests], list[QBucketError]]:
    files = [
        SourceFile(path, local[path].path, local[path].size, local[path].stamp) for path in paths
    ]
    entries, failures = await _transfer.in_thread(hash_all, files, ctx.bucket, ctx.cache)
    return {entry.key: entry.digests for entry in entries}, failures


async def _stored_sha1s(
    ctx: PullContext, remote: dict[str, RemoteFile], paths: Sequence[str]
) -> None:
    import asyncio

    async def one(path: str) -> None:
        key = remote[path].summary.key
        sha1 = await ctx.transport.bounded(_transfer.head_sha1(ctx.transport, ctx.bucket, key))
        remote[path] = remote[path]._replace(sha1=sha1 or "")

    await asyncio.gather(*(one(path) for path in paths))


async def plan_with_scan(
    ctx: PullContext,
    root: Path,
    prefix: str,
    *,
    delete: bool,
    path_filter: PathFilter | None,
) -> tuple[PullPlan, int]:
    """List, walk, hash what must be, plan. Returns the plan and how many objects the filter
    excluded. Changes nothing."""
    import asyncio

    keep = path_filter.allows if path_filter else None
    walk = asyncio.ensure_future(_transfer.in_thread(scan_local, root, path_filter))
    try:
        listed = [s async for s in _transfer.list_objects(ctx.transport, ctx.bucket, prefix)]
    finally:
        local = await walk
    remote, failures, excluded = remote_files(listed, prefix, bucket=ctx.bucket, keep=keep)
    plan = plan_pull(remote, local, {}, delete=delete)
    digests: dict[str, Digests] = {}
    if plan.to_hash:
        digests, unreadable = await _digests(ctx, local, plan.to_hash)
        failures += unreadable
        for error in unreadable:  # neither fetched over nor deleted: reported instead
            relative = error.key or ""
            gone = remote.pop(relative, None)
            local.pop(relative, None)
            error.key = gone.summary.key if gone else None
        plan = plan_pull(remote, local, digests, delete=delete)
    if plan.unresolved:
        await _stored_sha1s(ctx, remote, plan.unresolved)
        plan = plan_pull(remote, local, digests, delete=delete)
    if failures:  # part of the tree could not be compared: nothing is deleted
        plan = plan._replace(deletes=[], failures=failures)
    return plan, excluded


async def run_pull(
    ctx: PullContext,
    root: Path,
    prefix: str,
    *,
    delete: bool = False,
    dry_run: bool = False,
    max_delete: int | None = None,
    path_filter: PathFilter | None = None,
) -> tuple[PullPlan, SyncSummary, list[QBucketError]]:
    """Make ``root`` mirror the objects under ``prefix``.

    Returns:
        The plan, the summary, and every failure (refused keys, unreadable local files, failed
        downloads and deletes). With failures, no local file was deleted.

    Raises:
        TooManyDeletesError: more deletes than ``max_delete``; nothing was changed.
    """
    started = time.perf_counter()
    plan, excluded = await plan_with_scan(ctx, root, prefix, delete=delete, path_filter=path_filter)
    check_max_delete(len(plan.deletes), max_delete, str(root), [item.path for item in plan.deletes])
    if dry_run:
        summary = _summary(plan, plan.fetches, len(plan.deletes), excluded, started, dry_run=True)
        return plan, summary, []
    failures = list(plan.failures)
    ctx.sink.add_total(len(plan.fetches), plan.bytes_to_fetch)
    fetched, errors = await fetch_all(ctx, root, plan.fetches)
    failures += errors
    deleted = 0
    if plan.deletes and not failures:
        deleted, errors = await _transfer.in_thread(_delete_local, ctx, root, plan.deletes)
        failures += errors
    return plan, _summary(plan, fetched, deleted, excluded, started, dry_run=False), failures


def _summary(
    plan: PullPlan,
    fetched: Sequence[RemoteFile],
    deleted: int,
    excluded: int,
    started: float,
    *,
    dry_run: bool,
) -> SyncSummary:
    return SyncSummary(
        uploaded=0,
        copied=0,
        deleted=deleted,
        unchanged=len(plan.unchanged),
        bytes_uploaded=0,
        seconds=time.perf_counter() - started,
        downloaded=len(fetched),
        bytes_downloaded=sum(item.summary.size for item in fetched),
        excluded=excluded,
        dry_run=dry_run,
    )


async def run_get(
    ctx: PullContext, root: Path, prefix: str
) -> tuple[SyncSummary, list[QBucketError]]:
    """Download every object under ``prefix`` below ``root``, compared with nothing.

    Returns the summary and every failure (refused keys, failed downloads).
    """
    started = time.perf_counter()
    listed = [s async for s in _transfer.list_objects(ctx.transport, ctx.bucket, prefix)]
    remote, refused, _ = remote_files(listed, prefix, bucket=ctx.bucket)
    plan = PullPlan([remote[path] for path in sorted(remote)], [], [], [], [], [])
    ctx.sink.add_total(len(plan.fetches), plan.bytes_to_fetch)
    fetched, failures = await fetch_all(ctx, root, plan.fetches)
    return _summary(plan, fetched, 0, 0, started, dry_run=False), [*refused, *failures]


async def fetch_all(
    ctx: PullContext, root: Path, fetches: Sequence[RemoteFile]
) -> tuple[list[RemoteFile], list[QBucketError]]:
    """Download each object to its path below ``root``; returns (fetched, per-key failures)."""
    jobs = [(item.summary, root.joinpath(*item.relative.split("/"))) for item in fetches]
    by_job = {id(job): item for job, item in zip(jobs, fetches, strict=True)}
    done, failures = await download_jobs(
        ctx.transport, ctx.bucket, jobs, root, ctx.sink, ctx.report
    )
    return [by_job[id(job)] for job in done], failures


def _delete_local(
    ctx: PullContext, root: Path, extras: Sequence[LocalFile]
) -> tuple[int, list[QBucketError]]:
    """Delete the local extras, then the directories that this left empty (never ``root``)."""
    deleted = 0
    failures: list[QBucketError] = []
    parents: set[Path] = set()
    for extra in extras:
        try:
            os.unlink(extra.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            failures.append(translate(exc, action="delete", path=extra.path))
            continue
        deleted += 1
        parents.add(Path(extra.path).parent)
        if ctx.report:
            ctx.report(f"delete {extra.path}")
    for directory in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        while directory != root and root in directory.parents:
            with contextlib.suppress(OSError):  # not empty: other files live there
                directory.rmdir()
            if directory.exists():
                break
            directory = directory.parent
    return deleted, failures
