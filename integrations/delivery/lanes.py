"""Sending a chunk's requests side by side, each person's requests still in order.

A worker spends much of a delivery waiting for the vendor's answer. Lanes overlap those
waits: the requests of a chunk are spread over up to ``DELIVERY_CONCURRENCY`` threads, and
requests that concern the same person (they share a user id, anonymous id or previous id)
stay in one lane, in the order they were planned, so an identify still reaches the vendor
before the track that follows it. The caller's thread receives the outcomes as they come
and does all the bookkeeping: lane threads only run the work they are given.
"""

import queue
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

from integrations.delivery.signal_mask import leave_stop_signals_to_the_main_thread


@dataclass(frozen=True)
class Outcome:
    """What became of one item: its result, the exception it raised, or skipped."""

    index: int
    result: Any = None
    error: BaseException | None = None
    skipped: bool = False


def group_by_shared_keys(keys: Sequence[Iterable[Hashable]]) -> list[list[int]]:
    """Indexes of items grouped so that items sharing any key are in one group, in order."""
    parent = list(range(len(keys)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[Hashable, int] = {}
    for index, item_keys in enumerate(keys):
        for key in item_keys:
            if key in owner:
                parent[root(index)] = root(owner[key])
            else:
                owner[key] = index
    groups: dict[int, list[int]] = {}
    for index in range(len(keys)):
        groups.setdefault(root(index), []).append(index)
    return list(groups.values())


def assign_lanes(groups: list[list[int]], lanes: int) -> list[list[int]]:
    """Spread groups over at most ``lanes`` lanes, largest first onto the least loaded."""
    assigned: list[list[int]] = [[] for _ in range(min(lanes, len(groups)))]
    for group in sorted(groups, key=len, reverse=True):
        min(assigned, key=len).extend(group)
    return [sorted(lane) for lane in assigned]


@cache
def _pool(size: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=size,
        thread_name_prefix="delivery-lane",
        initializer=leave_stop_signals_to_the_main_thread,
    )


def run(
    count: int,
    keys: Callable[[int], Iterable[Hashable]],
    work: Callable[[int], Any],
    proceed: Callable[[], bool],
    lanes: int,
    tick: float = 1.0,
    started: Callable[[], None] | None = None,
) -> Iterator[Outcome | None]:
    """Run ``work(i)`` for items ``0..count-1`` and yield each outcome as it finishes.

    An item whose turn comes when ``proceed()`` is false is skipped, not run. With more
    than one lane the work runs on pool threads, and ``None`` is yielded whenever no item
    has finished for ``tick`` seconds, so the caller can do periodic work (renew leases).
    ``started`` runs in the caller's thread once the work is handed to the lanes (before
    any, with one lane: the work then runs in the caller's thread).
    """
    if lanes <= 1 or count <= 1:
        if started is not None:
            started()
        yield from _run_lane(range(count), work, proceed)
        return
    groups = group_by_shared_keys([list(keys(i)) for i in range(count)])
    finished: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
    # Set when the caller stops listening (an error on its side): lanes skip what is left.
    abandoned = threading.Event()

    def go_on() -> bool:
        return not abandoned.is_set() and proceed()

    def lane(indexes: list[int]) -> None:
        for outcome in _run_lane(indexes, work, go_on):
            finished.put(outcome)

    for indexes in assign_lanes(groups, lanes):
        _pool(lanes).submit(lane, indexes)
    try:
        if started is not None:
            started()
        for _ in range(count):
            while True:
                try:
                    yield finished.get(timeout=tick)
                    break
                except queue.Empty:
                    yield None
    finally:
        abandoned.set()


def _run_lane(
    indexes: Iterable[int], work: Callable[[int], Any], proceed: Callable[[], bool]
) -> Iterator[Outcome]:
    for index in indexes:
        if not proceed():
            yield Outcome(index, skipped=True)
            continue
        try:
            yield Outcome(index, result=work(index))
        except Exception as exc:  # reported to the caller, which records it
            yield Outcome(index, error=exc)
