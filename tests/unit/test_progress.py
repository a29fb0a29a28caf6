"""Progress sinks (qbucket._progress)."""

from __future__ import annotations

import io
import sys

import pytest

from qbucket._progress import BarSink, CallbackSink, ProgressSink, make_sink


@pytest.mark.parametrize("progress", [None, False])
def test_no_progress_ignores_updates(progress: bool | None) -> None:
    sink = make_sink(progress, "upload")
    assert type(sink) is ProgressSink
    sink.add_total(2, 100)
    sink.update("a", 10, 50)
    sink.update("a", 50, 50)
    sink.close()


def test_callback_receives_read_total_filename_in_order() -> None:
    calls: list[tuple[int, int, str]] = []

    def callback(read: int, total: int, filename: str) -> None:
        calls.append((read, total, filename))

    sink = make_sink(callback, "upload")
    assert isinstance(sink, CallbackSink)
    sink.add_total(2, 150)
    sink.update("a.txt", 0, 100)
    sink.update("a.txt", 40, 100)
    sink.update("b.txt", 50, 50)
    sink.update("a.txt", 100, 100)
    sink.close()
    assert calls == [
        (0, 100, "a.txt"),
        (40, 100, "a.txt"),
        (50, 50, "b.txt"),
        (100, 100, "a.txt"),
    ]


def test_callback_return_value_is_ignored() -> None:
    seen: list[int] = []

    def callback(read: int, total: int, filename: str) -> str:
        seen.append(read)
        return "ignored"

    sink = make_sink(callback, "x")
    sink.update("f", 3, 3)
    assert seen == [3]


def test_any_callable_is_a_callback() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[int, int, str]] = []

        def __call__(self, read: int, total: int, filename: str) -> None:
            self.calls.append((read, total, filename))

    recorder = Recorder()
    make_sink(recorder, "x").update("f", 1, 2)
    assert recorder.calls == [(1, 2, "f")]


def test_true_is_silent_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    sink = make_sink(True, "upload")
    assert type(sink) is ProgressSink
    sink.add_total(1, 10)
    sink.update("a", 10, 10)
    sink.close()
    assert stream.getvalue() == ""


def test_true_is_silent_without_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", None)
    assert type(make_sink(True, "upload")) is ProgressSink


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_true_draws_a_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = _Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    sink = make_sink(True, "uploading")
    try:
        assert isinstance(sink, BarSink)
        sink.add_total(2, 300)
        sink.update("a", 100, 100)
        sink.update("b", 50, 200)
        sink.update("b", 200, 200)
        task = sink._bar.tasks[sink._task]
        assert (task.total, task.completed, task.fields["files"]) == (300, 300, "2/2")
    finally:
        sink.close()
    assert "uploading" in stream.getvalue()
    assert "2/2 files" in stream.getvalue()


def test_bar_total_grows_with_files_nobody_announced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", _Terminal())
    sink = make_sink(True, "one download")
    try:
        assert isinstance(sink, BarSink)
        sink.update("a", 0, 1000)
        sink.update("a", 1000, 1000)
        task = sink._bar.tasks[sink._task]
        assert (task.total, task.completed, task.fields["files"]) == (1000, 1000, "1/1")
    finally:
        sink.close()


@pytest.mark.parametrize("progress", [1, 0, "yes", 3.5, [], object()])
def test_bad_type_is_a_type_error(progress: object) -> None:
    with pytest.raises(TypeError, match="progress must be None, a bool or a callable"):
        make_sink(progress, "upload")  # type: ignore[arg-type]
