"""The writer threads of small downloads (qbucket._file_writer): off the loop, errors to their
own coroutine, a byte budget, and nothing written or running after close()."""

from __future__ import annotations

import asyncio
import functools
import threading

import pytest

from qbucket._file_writer import FileWriter


def test_writes_run_off_the_loop_and_each_coroutine_gets_its_own_outcome() -> None:
    ran: list[tuple[int, str]] = []

    def work(n: int) -> None:
        if n == 3:
            raise OSError(28, "No space left on device")
        ran.append((n, threading.current_thread().name))

    async def main() -> list[BaseException | None]:
        writer = FileWriter(budget=1 << 20)
        try:
            return await asyncio.gather(
                *(writer.write(functools.partial(work, n)) for n in range(8)),
                return_exceptions=True,
            )
        finally:
            writer.close()

    outcomes = asyncio.run(main())
    assert sorted(n for n, _ in ran) == [0, 1, 2, 4, 5, 6, 7]
    assert {name for _, name in ran} <= {"qbucket-writer"}
    assert [type(outcome) for outcome in outcomes] == [type(None)] * 3 + [OSError] + [
        type(None)
    ] * 4
    assert not [t for t in threading.enumerate() if t.name == "qbucket-writer"]


def test_a_reservation_beyond_the_budget_waits_for_a_release() -> None:
    async def main() -> None:
        writer = FileWriter(budget=10)
        await writer.reserve(6)
        second = asyncio.ensure_future(writer.reserve(6))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not second.done()  # 12 bytes would exceed the budget of 10
        writer.release(6)
        await asyncio.wait_for(second, 5)
        writer.release(6)
        # Anything passes when nothing is reserved, so an object larger than the budget is
        # fetched all the same, alone.
        await asyncio.wait_for(writer.reserve(100), 5)
        third = asyncio.ensure_future(writer.reserve(1))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not third.done()
        writer.release(100)
        await asyncio.wait_for(third, 5)

    asyncio.run(main())


def test_a_cancelled_waiter_leaves_the_others_waiting_their_turn() -> None:
    async def main() -> None:
        writer = FileWriter(budget=10)
        await writer.reserve(10)
        cancelled = asyncio.ensure_future(writer.reserve(5))
        waiting = asyncio.ensure_future(writer.reserve(5))
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.sleep(0)
        assert cancelled.cancelled() and not waiting.done()
        writer.release(10)
        await asyncio.wait_for(waiting, 5)

    asyncio.run(main())


@pytest.mark.parametrize("cancelled_first", [True, False], ids=["cancelled", "still-waiting"])
def test_close_drops_the_writes_not_started_and_leaves_no_thread(cancelled_first: bool) -> None:
    # Either their downloads were cancelled, or one of them failed and the others still wait:
    # then close() cancels those waiting, rather than leaving them pending forever.
    from qbucket._file_writer import THREADS

    unblock = threading.Event()
    started = threading.Semaphore(0)
    ran: list[str] = []
    lock = threading.Lock()

    def blocking() -> None:
        started.release()
        assert unblock.wait(10)
        with lock:
            ran.append("busy")

    async def main() -> list[bool]:
        writer = FileWriter(budget=1 << 20)
        busy = []
        for _ in range(THREADS):  # one at a time, so that each thread is inside one
            busy.append(asyncio.ensure_future(writer.write(blocking)))
            while not started.acquire(blocking=False):
                await asyncio.sleep(0.001)
        # Queued behind them.
        later = [
            asyncio.ensure_future(writer.write(functools.partial(ran.append, f"later-{n}")))
            for n in range(4)
        ]
        await asyncio.sleep(0)
        if cancelled_first:
            for task in [*busy, *later]:
                task.cancel()
        threading.Timer(0.2, unblock.set).start()
        writer.close()  # waits for the running writes, drops the rest
        await asyncio.wait(later, timeout=5)
        await asyncio.wait(busy, timeout=5)
        return [task.cancelled() for task in later]  # before asyncio.run cancels what is left

    later_cancelled = asyncio.run(main())
    assert ran == ["busy"] * THREADS
    assert later_cancelled == [True] * 4
    assert not [t for t in threading.enumerate() if t.name == "qbucket-writer"]


def test_a_writer_never_used_starts_no_thread() -> None:
    async def main() -> None:
        FileWriter(budget=1).close()

    before = threading.active_count()
    asyncio.run(main())
    assert threading.active_count() == before


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_many_writes_all_land_whatever_the_thread_count(
    threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qbucket import _file_writer

    monkeypatch.setattr(_file_writer, "THREADS", threads)
    ran: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        with lock:
            ran.append(n)

    async def main() -> None:
        writer = FileWriter(budget=1 << 20)
        try:
            await asyncio.gather(*(writer.write(functools.partial(work, n)) for n in range(500)))
        finally:
            writer.close()

    asyncio.run(main())
    assert sorted(ran) == list(range(500))
