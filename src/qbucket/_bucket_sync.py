"""The sync and bulk-transfer methods of :class:`qbucket.Bucket`, in both directions.

A mixin, so that ``_bucket.py`` keeps the seed's single-object API and this module the many-file
one: :meth:`sync_directory`, :meth:`sync_files` and :meth:`plan_sync_directory` (up, the seed's),
:meth:`sync_to_directory` (down), :meth:`put_files` and :meth:`get_directory`. Each one scans,
plans (pure) and executes through :mod:`qbucket._sync`, :mod:`qbucket._pull` or
:mod:`qbucket._put`.
"""

from __future__ import annotations

import functools
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ._config import cache_dir
from ._error_mapping import mapped_errors
from ._exceptions import BatchError, InvalidKeyError, LocalFileNotFoundError, QBucketError
from ._filters import FilterRule, PathFilter, make_filter
from ._keys import normalize_key, normalize_prefix
from ._objects import SyncSummary
from ._progress import ProgressCallback, make_sink
from ._scan import SourceFile, check_directory, walk_files

if TYPE_CHECKING:
    from ._planner import Plan
    from ._pull import PullPlan
    from ._sync import LocalDigests
    from ._transport import Transport

Progress = bool | ProgressCallback | None
Verbose = bool | Callable[[str], None]


class _Options(NamedTuple):
    """How an upload-direction sync runs, besides its files and scope."""

    delete: bool = True
    max_delete: int | None = None
    path_filter: PathFilter | None = None
    progress: Progress = None


_DEFAULT_OPTIONS = _Options()


class SyncMethods:
    """Many files at once, in both directions. Mixed into :class:`qbucket.Bucket`."""

    if TYPE_CHECKING:
        _name: str

        @property
        def _transport(self) -> Transport: ...

        def _run(self, coro: Any) -> Any: ...

        def _settle(self) -> None: ...

        def _require_bucket(self) -> None: ...

    # -- upload direction (the seed API) --------------------------------------------------

    def sync_directory(
        self,
        directory: str | os.PathLike[str],
        verbose: Verbose = False,
        remote: str | None = None,
        *,
        dry_run: bool = False,
        delete: bool = True,
        max_delete: int | None = None,
        exclude: Iterable[str] = (),
        include: Iterable[str] = (),
        rules: Iterable[FilterRule] = (),
        progress: Progress = None,
    ) -> SyncSummary:
        """Make the bucket (or ``remote`` in it) mirror a local directory.

        Files are compared by name, size and content (SHA-1; the MD5 ETag where the server has
        one); new or changed files are uploaded, identical contents sent once and copied
        server-side, and objects under the scope with no local file are deleted, after every
        upload succeeded. Symlinks are skipped.

        Args:
            directory: the local directory.
            verbose: print each operation (or pass each line to this callable).
            remote: the key prefix to mirror into (default: the whole bucket). ``"data"`` means
                ``data/...``, and never touches ``data2/``.
            dry_run: plan only; change nothing. The summary counts what would be done, its
                ``plan`` says what, and its ``failures`` what would fail.
            delete: delete the objects under the scope that have no local file (the default).
            max_delete: refuse, before any change, a sync that would delete more objects.
            exclude: glob patterns (``.gitignore`` syntax) of paths, relative to ``directory``,
                to leave out: neither uploaded nor deleted remotely.
            include: patterns that win over ``exclude``.
            rules: ordered ``("include" | "exclude", pattern)`` pairs, tried before both: the
                first that matches a path decides (see :mod:`qbucket._filters`).
            progress: a callback ``(read, total, filename)``, or True for a progress bar.

        Raises:
            LocalFileNotFoundError, LocalNotADirectoryError, IncompleteScanError: the directory
                cannot be read completely; nothing was changed.
            TooManyDeletesError: more deletes than ``max_delete``; nothing was changed.
            BatchError: some files failed; nothing was deleted.
        """
        reporter = _reporter(verbose)
        path_filter = make_filter(exclude, include, rules) or None
        prefix = normalize_prefix(remote, bucket=self._name)
        root = check_directory(directory)  # a missing directory is reported before any request

        def walk(files: LocalDigests) -> int:
            return self._walk_directory(root, prefix, reporter, path_filter, files.add)

        options = _Options(delete, max_delete, path_filter, progress)
        return self._sync(walk, prefix, reporter, dry_run, options)

    def _walk_directory(
        self,
        root: str,
        prefix: str,
        reporter: Callable[[str], None] | None,
        path_filter: PathFilter | None,
        add: Callable[[SourceFile], None],
    ) -> int:
        """``add`` every regular file below ``root`` that the filter keeps, with its key; return
        how many the filter excluded. Raises, before any change, if the tree cannot be read
        completely or a name cannot be a key."""

        def skipped(path: str, reason: str) -> None:
            if reporter:
                reporter(f"skip {path}: {reason}")

        failures: list[QBucketError] = []
        excluded = 0
        prune = path_filter.prunes if path_filter else None
        for found in walk_files(root, on_skip=skipped, prune=prune):
            if path_filter and not path_filter.allows(found.relative):
                excluded += 1
                continue
            try:
                key = normalize_key(prefix + found.relative, bucket=self._name)
            except InvalidKeyError as exc:
                exc.path = found.path
                failures.append(exc)
                continue
            add(SourceFile(key, found.path, found.size, found.stamp))
        if failures:
            raise BatchError(
                f"cannot sync {root}: some file names are not valid keys",
                failures,
                bucket=self._name,
            )
        return excluded

    def sync_files(
        self,
        files: Mapping[str, str | os.PathLike[str]],
        verbose: Verbose = False,
        remote: str | None = None,
        *,
        dry_run: bool = False,
        delete: bool = True,
        max_delete: int | None = None,
        progress: Progress = None,
    ) -> SyncSummary:
        """Make the bucket (or ``remote`` in it) hold exactly ``files``: {remote name: local path}.

        Same rules and options as :meth:`sync_directory`; objects under the scope that are not in
        ``files`` are deleted (unless ``delete=False``).

        Raises:
            LocalFileNotFoundError: a local file does not exist; nothing was changed.
            TooManyDeletesError: more deletes than ``max_delete``; nothing was changed.
            BatchError: some files failed; nothing was deleted.
        """
        prefix = normalize_prefix(remote, bucket=self._name)
        chosen = self._chosen_files(files, prefix)

        def feed(files: LocalDigests) -> int:
            for file in chosen:
                files.add(file)
            return 0

        options = _Options(delete, max_delete, None, progress)
        return self._sync(feed, prefix, _reporter(verbose), dry_run, options)

    def _chosen_files(
        self, files: Mapping[str, str | os.PathLike[str]], prefix: str
    ) -> list[SourceFile]:
        """``files`` with their keys below ``prefix``; raises if one is not a regular file or
        two map to one key."""
        chosen: dict[str, SourceFile] = {}
        for name, local in files.items():
            key = normalize_key(prefix + name, bucket=self._name)
            path = os.fspath(local)
            if key in chosen:
                raise InvalidKeyError(
                    f"{name!r} and another name both map to s3://{self._name}/{key}",
                    bucket=self._name,
                    key=key,
                    path=path,
                )
            try:
                info = os.stat(path)
            except OSError:
                info = None
            if info is None or not stat.S_ISREG(info.st_mode):
                raise LocalFileNotFoundError(
                    f"cannot sync {path} to s3://{self._name}/{key}: not a file",
                    bucket=self._name,
                    key=key,
                    path=path,
                )
            chosen[key] = SourceFile(key, path, info.st_size)
        return list(chosen.values())

    def plan_sync_directory(
        self,
        directory: str | os.PathLike[str],
        remote: str | None = None,
        *,
        delete: bool = True,
        exclude: Iterable[str] = (),
        include: Iterable[str] = (),
        rules: Iterable[FilterRule] = (),
    ) -> Plan:
        """The plan :meth:`sync_directory` would carry out, without changing anything."""
        summary = self.sync_directory(
            directory,
            remote=remote,
            dry_run=True,
            delete=delete,
            exclude=exclude,
            include=include,
            rules=rules,
        )
        from ._planner import Plan

        assert isinstance(summary.plan, Plan)
        return summary.plan

    def _sync(
        self,
        feed: Callable[[LocalDigests], int],
        prefix: str,
        reporter: Callable[[str], None] | None,
        dry_run: bool,
        options: _Options = _DEFAULT_OPTIONS,
    ) -> SyncSummary:
        return self._sync_with_plan(feed, prefix, reporter, dry_run, options)[1]

    def _sync_with_plan(
        self,
        feed: Callable[[LocalDigests], int],
        prefix: str,
        reporter: Callable[[str], None] | None,
        dry_run: bool,
        options: _Options = _DEFAULT_OPTIONS,
    ) -> tuple[Plan, SyncSummary]:
        """Mirror onto ``prefix`` the files that ``feed`` adds (it returns how many a filter
        excluded). The scope's listing starts first, so that it runs while ``feed`` walks the
        tree and looks its files up in the digest cache; it is stopped if ``feed`` fails."""
        from ._hashcache import HashCache
        from ._sync import LocalDigests, ScopeListing, SyncContext, run_sync

        started = time.perf_counter()
        self._settle()
        self._require_bucket()
        listing = ScopeListing(self._transport, self._name, prefix)
        cache: HashCache | None = None
        try:
            cache = HashCache(cache_dir() / "digests.sqlite")
            # A file to read is most likely one to send: obstore and the bucket's store then
            # start at once, beside the walk and the listing (a no-op sync never loads them).
            # The transfer loop starts only when a file is sent in parts (see
            # _sync.on_threads).
            start = None
            if not dry_run:
                start = functools.partial(self._transport.start, self._name, loop=False)
            files = LocalDigests(self._name, cache, listing.hashed, on_read=start)
            excluded = feed(files)
            sink = make_sink(
                None if dry_run else options.progress, f"sync to s3://{self._name}/{prefix}"
            )
        except BaseException:
            listing.abandon()
            if cache is not None:
                cache.close()
            raise
        keep = options.path_filter.allows if options.path_filter else None
        try:  # run_sync waits for the listing, or abandons it, itself
            plan, summary = run_sync(
                SyncContext(self._transport, self._name, reporter, sink),
                files,
                prefix,
                listing,
                delete_extras=options.delete,
                dry_run=dry_run,
                max_delete=options.max_delete,
                keep=keep,
            )
        finally:
            sink.close()
            cache.close()
        seconds = time.perf_counter() - started
        return plan, summary._replace(excluded=excluded, plan=plan, seconds=seconds)

    # -- download direction ---------------------------------------------------------------

    def sync_to_directory(
        self,
        directory: str | os.PathLike[str],
        remote: str | None = None,
        *,
        delete: bool = False,
        dry_run: bool = False,
        max_delete: int | None = None,
        exclude: Iterable[str] = (),
        include: Iterable[str] = (),
        rules: Iterable[FilterRule] = (),
        progress: Progress = None,
        verbose: Verbose = False,
    ) -> SyncSummary:
        """Make a local directory mirror the bucket (or the objects under ``remote``).

        New and changed objects are downloaded (atomically: a file appears under its name only
        complete and checked), unchanged files are left alone: compared by size, then by
        content (the MD5 ETag, or the SHA-1 qbucket stores) using the digest cache. Keys that
        would land outside ``directory`` are refused, each with its own error.

        Args:
            directory: the local directory (created if needed).
            remote: the key prefix to mirror (default: the whole bucket); ``"data"`` means
                ``data/...``, whose keys become paths relative to ``directory``.
            delete: also delete the local files that have no object (default: keep them), only
                after every download succeeded.
            dry_run: plan only; change nothing (see :meth:`sync_directory`).
            max_delete: refuse, before any change, a sync that would delete more local files.
            exclude, include, rules: which relative paths take part, as in
                :meth:`sync_directory`; excluded local files are never deleted.
            progress: a callback ``(read, total, filename)``, or True for a progress bar.
            verbose: print each operation (or pass each line to this callable).

        Raises:
            MissingBucketException: the bucket does not exist.
            TooManyDeletesError: more deletes than ``max_delete``; nothing was changed.
            BatchError: some objects could not be downloaded (or keys were refused); the others
                were, and no local file was deleted.
        """
        root = Path(directory)
        prefix = normalize_prefix(remote, bucket=self._name)
        path_filter = make_filter(exclude, include, rules) or None
        self._settle()
        self._require_bucket()
        from ._hashcache import HashCache
        from ._pull import PullContext, run_pull  # the download side: imported when used

        cache = HashCache(cache_dir() / "digests.sqlite")
        sink = make_sink(None if dry_run else progress, f"sync from s3://{self._name}/{prefix}")
        ctx = PullContext(self._transport, self._name, _reporter(verbose), cache, sink)
        try:
            outcome: tuple[PullPlan, SyncSummary, list[QBucketError]] = self._run(
                run_pull(
                    ctx,
                    root,
                    prefix,
                    delete=delete,
                    dry_run=dry_run,
                    max_delete=max_delete,
                    path_filter=path_filter,
                )
            )
        finally:
            sink.close()
            cache.close()
        plan, summary, failures = outcome
        if dry_run:
            return summary._replace(plan=plan, failures=tuple(plan.failures))
        if failures:
            raise BatchError(
                f"sync of s3://{self._name}/{prefix} to {root} failed for {len(failures)} "
                "file(s); no local file was deleted",
                failures,
                bucket=self._name,
            )
        return summary._replace(plan=plan)

    # -- plain transfers of many files ------------------------------------------------------

    def put_files(
        self,
        files: Mapping[str, str | os.PathLike[str]],
        *,
        progress: Progress = None,
        verbose: Verbose = False,
    ) -> SyncSummary:
        """Upload ``files`` ({key: local path}) now and wait: every file is sent, nothing is
        compared or deleted (``qbucket put``).

        Raises:
            LocalFileNotFoundError: a local file does not exist; nothing was sent.
            BatchError: some uploads failed; the others are done.
        """
        chosen = self._chosen_files(files, "")
        self._settle()
        self._require_bucket()
        started = time.perf_counter()
        sink = make_sink(progress, f"put to s3://{self._name}")
        from ._put import put_all

        try:
            sent, failures = self._run(
                put_all(self._transport, self._name, chosen, sink, _reporter(verbose))
            )
        finally:
            sink.close()
        if failures:
            raise BatchError(
                f"{len(failures)} of {len(chosen)} upload(s) to bucket {self._name!r} failed",
                failures,
                bucket=self._name,
            )
        return SyncSummary(len(sent), 0, 0, 0, sum(sent), time.perf_counter() - started)

    def get_directory(
        self,
        remote: str | None,
        output_dir: str | os.PathLike[str],
        *,
        progress: Progress = None,
        verbose: Verbose = False,
    ) -> SyncSummary:
        """Download every object under ``remote`` (a prefix, ``"data"`` meaning ``data/...``;
        None for all) below ``output_dir``, keys relative to the prefix as paths. Existing files
        are replaced; nothing is compared or deleted (``qbucket get BUCKET/PREFIX DIR``).

        Raises:
            MissingBucketException: the bucket does not exist.
            BatchError: some objects could not be downloaded (or keys were refused); the others
                were.
        """
        root = Path(output_dir)
        prefix = normalize_prefix(remote, bucket=self._name)
        self._settle()
        self._require_bucket()
        with mapped_errors("create directory", bucket=self._name, path=str(root)):
            root.mkdir(parents=True, exist_ok=True)
        sink = make_sink(progress, f"get from s3://{self._name}/{prefix}")
        from ._hashcache import HashCache
        from ._pull import PullContext, run_get

        ctx = PullContext(self._transport, self._name, _reporter(verbose), HashCache(None), sink)
        try:
            summary, failures = self._run(run_get(ctx, root, prefix))
        finally:
            sink.close()
        if failures:
            raise BatchError(
                f"{len(failures)} object(s) of s3://{self._name}/{prefix} were not downloaded "
                f"to {root}",
                failures,
                bucket=self._name,
            )
        result: SyncSummary = summary
        return result


def _reporter(verbose: Verbose) -> Callable[[str], None] | None:
    if callable(verbose):
        return verbose
    if not verbose:
        return None

    def report(line: str) -> None:
        print(line, file=sys.stdout, flush=True)

    return report
