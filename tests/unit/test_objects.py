"""The records qbucket hands back."""

from __future__ import annotations

from qbucket import SyncSummary


def test_sync_summary_repr_shows_the_counts_not_the_plan_or_failures() -> None:
    summary = SyncSummary(1, 0, 0, 2, 10, 0.5, plan=None, failures=(ValueError("x" * 50),))
    text = repr(summary)
    assert text.startswith("SyncSummary(uploaded=1, copied=0, deleted=0, unchanged=2,")
    assert "dry_run=False" in text
    assert "plan" not in text and "failures" not in text and "xxxx" not in text
