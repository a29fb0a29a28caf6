"""The README's first command (`make demo`): qbucket's main job on the embedded default.

Starts the embedded SeaweedFS server (or reuses the running one), syncs a sample tree up, changes
it (a same-size edit, a deletion, an addition, a duplicate), syncs again, downloads everything
back, and checks that the copy equals the tree byte for byte. Then the same from the shell:
``qbucket sync --dry-run``, ``qbucket sync`` and ``qbucket ls`` (run as ``python -m qbucket``).
"""

from __future__ import annotations

import filecmp
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import qbucket

WORK = Path(".demo")
BUCKET = "qbucket-demo"


def make_sample(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
    for i in range(200):
        path = root / f"dir{i % 5}" / f"file{i:03d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"sample file {i:03d}\n" * (i % 7 + 1))
    (root / "results.csv").write_text("step,value\n1,0.5\n2,0.75\n")


def step(title: str) -> None:
    print(f"\n== {title}")


def show(summary: qbucket.SyncSummary) -> None:
    print(
        f"   uploaded {summary.uploaded}, copied server-side {summary.copied}, "
        f"deleted {summary.deleted}, unchanged {summary.unchanged} "
        f"({summary.bytes_uploaded} bytes sent, {summary.seconds:.2f} s)"
    )


def same_tree(left: Path, right: Path) -> bool:
    compared = filecmp.dircmp(left, right)
    if compared.left_only or compared.right_only or compared.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(left, right, compared.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(same_tree(left / sub, right / sub) for sub in compared.common_dirs)


def cli(*args: str) -> bool:
    """Run ``qbucket ARGS`` as a user would, output shown as it comes; True if it exit 0."""
    print(f"   $ qbucket {shlex.join(args)}", flush=True)
    done = subprocess.run([sys.executable, "-m", "qbucket", *args], check=False)
    return done.returncode == 0


def command_line(sample: Path) -> bool:
    """The command line on the same tree: a change, a dry run, the sync, a listing."""
    step("the same from the shell (qbucket = python -m qbucket): change a file, dry run, sync")
    with (sample / "results.csv").open("a") as stream:
        stream.write("3,0.9\n")
    remote = f"{BUCKET}/sample"
    results = [
        cli("sync", str(sample), remote, "--dry-run"),
        cli("sync", str(sample), remote),
        cli("ls", f"{remote}/"),
    ]
    return all(results)


def main() -> int:
    sample, download = WORK / "sample", WORK / "download"
    make_sample(sample)

    step("starting the embedded SeaweedFS server (first start takes a few seconds)")
    started = time.perf_counter()
    with qbucket.Connection() as connection:
        print(f"   endpoint {connection.storage_url}  ({time.perf_counter() - started:.1f} s)")
        if any(existing.uuid == BUCKET for existing in connection.buckets()):
            connection.retrieve_bucket(BUCKET).delete()  # start from an empty bucket each run
        bucket = connection.create_bucket(BUCKET)

        step(f"sync {sample}/ -> s3://{BUCKET}/sample/ (201 files)")
        show(bucket.sync_directory(sample, remote="sample"))

        step("sync again, nothing changed: nothing is sent")
        show(bucket.sync_directory(sample, remote="sample"))

        step("change the tree: a same-size edit, a deletion, a new file, a duplicate")
        edited = sample / "results.csv"
        stat = edited.stat()
        edited.write_text("step,value\n1,0.5\n2,0.80\n")  # same size, same mtime restored below
        os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        (sample / "dir0" / "file000.txt").unlink()
        (sample / "new.txt").write_text("a brand new file\n")
        shutil.copy(sample / "dir1" / "file001.txt", sample / "copy-of-file001.txt")
        show(bucket.sync_directory(sample, remote="sample", verbose=True))

        step(f"download s3://{BUCKET}/ -> {download}/")
        shutil.rmtree(download, ignore_errors=True)
        written = bucket.get_all_files(download)
        print(f"   {len(written)} files written")

        step("verify")
        ok = same_tree(sample, download / "sample")
        print("   the download equals the local tree byte for byte" if ok else "   MISMATCH")
        print(f"   {len(bucket.directory('sample/'))} objects under s3://{BUCKET}/sample/")
    ok = command_line(sample) and ok
    print("\nThe embedded server keeps running (data persists): stop it with `make server-stop`.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
