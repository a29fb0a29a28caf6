"""Which engine carries out a sync's plan (qbucket._sync.on_threads): plain threads for a few
operations on small files, the transfer loop for anything else."""

from __future__ import annotations

from typing import Any

import pytest

from qbucket import _sync, _transfer
from qbucket._hashing import Digests
from qbucket._planner import Copy, Plan, Upload

SMALL = Digests(4096, "m" * 32, "s" * 40)


def _plan(uploads: int = 0, copies: int = 0, deletes: tuple[str, ...] = (), **kw: Any) -> Plan:
    digests = kw.get("digests", SMALL)
    return Plan(
        uploads=[Upload(f"u{i}", f"/tree/u{i}", digests) for i in range(uploads)],
        copies=[Copy(kw.get("source", "u0"), f"c{i}", digests, True) for i in range(copies)],
        deletes=list(deletes),
        unchanged=[],
        unresolved=[],
    )


def test_a_few_small_operations_go_on_threads() -> None:
    for plan in (
        _plan(uploads=40, deletes=("gone",) * 20),
        _plan(uploads=1, copies=_sync.SMALL_PLAN - 1),
        _plan(deletes=("gone",) * 5000),
    ):
        assert _sync.on_threads(plan, loop_started=False)


@pytest.mark.parametrize(
    "plan",
    [
        _plan(uploads=_sync.SMALL_PLAN + 1),
        _plan(uploads=1, copies=_sync.SMALL_PLAN),
        _plan(uploads=1, digests=SMALL._replace(size=_transfer.SINGLE_PUT_LIMIT + 1)),
        _plan(uploads=1, deletes=("dir/",)),  # keys obstore cannot name: boto3, on the loop
        _plan(uploads=1, copies=1, source="a//b"),
    ],
    ids=["many", "many-copies", "large-file", "odd-delete", "odd-copy-source"],
)
def test_anything_else_goes_on_the_loop(plan: Plan) -> None:
    assert not _sync.on_threads(plan, loop_started=False)


def test_a_loop_already_running_takes_every_plan() -> None:
    assert not _sync.on_threads(_plan(uploads=1), loop_started=True)
