"""What the command line shows: results on stdout, logs and errors on stderr, or one JSON document.

* stdout carries the result: a listing, a summary, a plan, or with ``--json`` exactly one JSON
  document (stable keys; ``null`` where a count is unknown because the command failed);
* stderr carries the progress bar (only on a terminal), ``-v`` logs and errors, one line each.

Sizes in text are human-readable (KiB, MiB: powers of 1024); JSON has plain byte counts.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from ._exceptions import BatchError, QBucketError
from ._objects import SyncSummary
from ._planner import Plan
from ._pull import PullPlan


class Ui(NamedTuple):
    """The output switches of one command line."""

    quiet: bool = False
    verbose: bool = False
    json: bool = False

    def result(self, text: str) -> None:
        """A line of the command's result (a listing): always shown, unless ``--json``."""
        if not self.json:
            print(text, flush=True)

    def say(self, text: str) -> None:
        """A message for people (a summary): silenced by ``--quiet`` and ``--json``."""
        if not (self.quiet or self.json):
            print(text, flush=True)

    def log(self, line: str) -> None:
        """One operation, with ``-v``: on stderr, so that stdout stays the result."""
        if self.verbose:
            print(line, file=sys.stderr, flush=True)

    @property
    def reporter(self) -> Callable[[str], None] | bool:
        """The library's ``verbose`` argument: each operation to :meth:`log`."""
        return self.log if self.verbose else False

    @property
    def progress(self) -> bool | None:
        """The library's ``progress`` argument: a bar (drawn only if stderr is a terminal)."""
        return None if self.quiet else True

    def document(self, document: object) -> None:
        """The one JSON document of a ``--json`` run."""
        if self.json:
            print(json.dumps(document, indent=2, ensure_ascii=False), flush=True)


def error(text: str) -> None:
    print(f"qbucket: error: {text}", file=sys.stderr, flush=True)


def failure_line(failure: QBucketError) -> str:
    """One failed operation, naming its object and/or file and the reason."""
    text = str(failure)
    where = []
    if failure.key is not None and failure.key not in text:
        where.append(f"s3://{failure.bucket}/{failure.key}" if failure.bucket else failure.key)
    if failure.path is not None and failure.path not in text:
        where.append(failure.path)
    return f"{' '.join(where)}: {text}" if where else text


def report_failures(failures: Iterable[QBucketError]) -> None:
    for failure in failures:
        print(f"qbucket: failed: {failure_line(failure)}", file=sys.stderr, flush=True)


def failure_documents(failures: Iterable[QBucketError]) -> list[dict[str, str | None]]:
    return [{"bucket": f.bucket, "key": f.key, "path": f.path, "error": str(f)} for f in failures]


# -- sizes, rates -----------------------------------------------------------------------------


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def _rate(nbytes: int, seconds: float) -> float:
    return nbytes / seconds if seconds > 0 else 0.0


# -- summaries --------------------------------------------------------------------------------


def summary_text(summary: SyncSummary, *, download: bool, sync: bool = False) -> str:
    """One line: what was done, bytes, time and throughput (or what would be done)."""
    nbytes = summary.bytes_uploaded + summary.bytes_downloaded
    count = summary.downloaded if download else summary.uploaded
    done = [f"{'downloaded' if download else 'uploaded'} {count}"]
    if sync:
        skipped = summary.unchanged + summary.excluded
        done += [f"copied {summary.copied}"] if not download else []
        done += [
            f"deleted {summary.deleted}",
            f"skipped {skipped} ({summary.unchanged} unchanged, {summary.excluded} excluded)",
        ]
    if summary.dry_run:
        return f"dry run, nothing changed; would have {', '.join(done)}: {human_bytes(nbytes)}"
    rate = human_bytes(_rate(nbytes, summary.seconds))
    return f"{', '.join(done)}: {human_bytes(nbytes)} in {summary.seconds:.2f} s ({rate}/s)"


def summary_document(
    command: str,
    summary: SyncSummary | None,
    *,
    source: str,
    destination: str,
    direction: str,
    dry_run: bool = False,
    failures: Iterable[QBucketError] = (),
) -> dict[str, Any]:
    """The ``--json`` document of put, get and sync: the same keys every time."""
    listed = failure_documents(failures)
    counts: dict[str, Any] = dict.fromkeys(
        ("uploaded", "downloaded", "copied", "deleted", "unchanged", "excluded")
    )
    timing: dict[str, Any] = {"bytes": None, "seconds": None, "bytes_per_second": None}
    if summary is not None:
        counts = {name: getattr(summary, name) for name in counts}
        nbytes = summary.bytes_uploaded + summary.bytes_downloaded
        timing = {
            "bytes": nbytes,
            "seconds": round(summary.seconds, 3),
            "bytes_per_second": round(_rate(nbytes, summary.seconds)),
        }
        listed = listed or failure_documents(summary.failures)
    plan = summary.plan if summary is not None and summary.dry_run else None
    return {
        "command": command,
        "direction": direction,
        "source": source,
        "destination": destination,
        "dry_run": dry_run,
        "ok": not listed,
        **counts,
        **timing,
        "failed": len(listed),
        "failures": listed,
        "plan": plan_document(plan) if plan is not None else None,
    }


# -- plans ------------------------------------------------------------------------------------


def plan_document(plan: Plan | PullPlan) -> dict[str, list[dict[str, Any]]]:
    """A dry run's operations: the same four lists in both directions."""
    document: dict[str, list[dict[str, Any]]] = {
        "upload": [],
        "download": [],
        "copy": [],
        "delete": [],
    }
    if isinstance(plan, Plan):
        document["upload"] = [
            {"key": op.key, "path": op.path, "size": op.digests.size} for op in plan.uploads
        ]
        document["copy"] = [{"source": op.source, "key": op.key} for op in plan.copies]
        document["delete"] = [{"key": key, "path": None} for key in plan.deletes]
    else:
        document["download"] = [
            {"key": item.summary.key, "path": item.relative, "size": item.summary.size}
            for item in plan.fetches
        ]
        document["delete"] = [{"key": None, "path": item.path} for item in plan.deletes]
    return document


def plan_lines(plan: Plan | PullPlan, bucket: str, directory: str) -> list[str]:
    """A dry run's operations, one line each, as ``-v`` logs them in a real run."""
    if isinstance(plan, Plan):
        return [
            *(f"upload {op.path} -> s3://{bucket}/{op.key}" for op in plan.uploads),
            *(f"copy s3://{bucket}/{op.source} -> {op.key}" for op in plan.copies),
            *(f"delete s3://{bucket}/{key}" for key in plan.deletes),
        ]
    separator = "" if directory.endswith("/") else "/"
    return [
        *(
            f"download s3://{bucket}/{item.summary.key} -> {directory}{separator}{item.relative}"
            for item in plan.fetches
        ),
        *(f"delete {item.path}" for item in plan.deletes),
    ]


def batch_failed(ui: Ui, exc: BatchError, document: dict[str, Any] | None) -> int:
    """Exit code 1 after a batch of operations partly failed: every failure on stderr, and the
    JSON document (with the failures) on stdout."""
    report_failures(exc.failures)
    error(exc.summary)
    if document is not None:
        ui.document(document)
    return 1
