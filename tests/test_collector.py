"""The garbage collector runs between sends, never between a release and its write."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import Iterator

import pytest

from watui.cli.mock import collect_while_idle
from watui.engine.collector import MAX_POSTPONED, QUIET_TURNS, YOUNG_THRESHOLD, CollectorBetweenSends


@pytest.fixture
def collections() -> Iterator[list[str]]:
    """The name of the function that was running when each collection started: ``_collect``
    for ours, anything else for one the interpreter started by itself."""
    started: list[str] = []

    def note(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            started.append(sys._getframe(1).f_code.co_name)

    gc.callbacks.append(note)
    yield started
    gc.callbacks.remove(note)


def make_a_collection_due() -> list[list[int]]:
    """Allocate more tracked objects than generation 0's threshold (kept alive by the caller)."""
    return [[index] for index in range(YOUNG_THRESHOLD + 100)]


async def turns(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


def test_automatic_collection_is_off_while_sending_and_back_after() -> None:
    assert gc.isenabled()
    with CollectorBetweenSends():
        assert not gc.isenabled()
        with CollectorBetweenSends():  # two campaigns in one process
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_process_that_had_turned_collection_off_keeps_it_off() -> None:
    gc.disable()
    try:
        with CollectorBetweenSends():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


async def test_a_due_collection_waits_for_quiet_turns_after_the_last_release(
    collections: list[str],
) -> None:
    loop = asyncio.get_running_loop()
    with CollectorBetweenSends() as collector:
        garbage = make_a_collection_due()
        collector.released(loop)
        await turns(QUIET_TURNS - 2)
        collector.released(loop)  # another request, not written yet: start counting again
        await turns(QUIET_TURNS - 1)
        assert collector.collections == 0
        await turns(1)
        assert collector.collections == 1
    assert collections == ["_collect"]
    del garbage


async def test_releases_on_every_turn_cannot_postpone_a_collection_forever() -> None:
    loop = asyncio.get_running_loop()
    with CollectorBetweenSends() as collector:
        garbage = make_a_collection_due()
        for _ in range(MAX_POSTPONED + 1):
            collector.released(loop)
            await turns(1)
        assert collector.collections == 1
    del garbage


async def test_no_collection_when_none_is_due() -> None:
    loop = asyncio.get_running_loop()
    with CollectorBetweenSends() as collector:
        gc.collect()
        collector.released(loop)
        await turns(QUIET_TURNS * 2)
        collector.collect_if_idle()
        assert collector.collections == 0


async def test_the_control_tick_collects_only_while_the_dispatcher_is_idle() -> None:
    with CollectorBetweenSends() as collector:
        garbage = make_a_collection_due()
        collector.collect_if_idle()
        assert collector.collections == 0
        collector.idle()
        collector.collect_if_idle()
        assert collector.collections == 1
    del garbage


async def test_the_mock_collects_only_after_a_quiet_second(collections: list[str]) -> None:
    requests = [0]

    async def traffic() -> None:
        for _ in range(20):
            requests[0] += 1
            await asyncio.sleep(0.01)

    gc.disable()
    task = asyncio.create_task(collect_while_idle(lambda: requests[0], quiet=0.03))
    try:
        garbage = make_a_collection_due()
        await traffic()
        assert collections == []
        await asyncio.sleep(0.1)
        assert collections == ["collect_while_idle"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        gc.unfreeze()
        gc.enable()
    del garbage
