"""Shared fixtures: a runtime per test that, once closed, must have released
every Python callback the test handed to the library; a scriptable Python
consumer. Tests wait on events (queues, futures, threading.Event) and assert
counts, order and structure, never durations. Timeouts below only bound a
wait so that a broken build fails instead of hanging."""

from __future__ import annotations

import queue
import threading
from typing import Any, Iterator, List, Optional, Tuple

import pytest

import liminal
from liminal import _ffi

WAIT = 30.0  # seconds: an upper bound for waits, never an assertion


@pytest.fixture
def runtime() -> Iterator[liminal.Runtime]:
    before = _ffi.kept_count()
    rt = liminal.Runtime()
    try:
        yield rt
    finally:
        rt.close()
    # liminal_runtime_free returned: every free_user ran, exactly once each.
    assert _ffi.kept_count() == before


class Recorder:
    """A push consumer's handler. `script` gives its answer to each delivery
    in turn (the last one repeats): a `Verdict`, "keep" (keep an owned copy,
    put it on `kept`, return DEFER), "raise" (raise ValueError), or any other
    value (returned as is). Records what it saw and its crash reports."""

    def __init__(self, *script: Any):
        self.script = list(script) or [liminal.Verdict.ACK]
        self.seen: List[Tuple[Any, int, bool]] = []
        self.kept: "queue.Queue[liminal.Delivery]" = queue.Queue()
        self.crashes: List[liminal.CrashReport] = []
        self.crashed = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, delivery: liminal.Delivery) -> Any:
        with self.lock:
            self.seen.append((delivery.message.get("n"), delivery.attempt, delivery.redelivered))
            answer = self.script[min(len(self.seen), len(self.script)) - 1]
        if answer == "raise":
            raise ValueError(f"consumer failed on message {delivery.message.get('n')}")
        if answer == "keep":
            self.kept.put(delivery.keep())
            return liminal.Verdict.DEFER
        return answer

    def on_crash(self, report: liminal.CrashReport) -> None:
        self.crashes.append(report)
        self.crashed.set()

    def next_kept(self) -> liminal.Delivery:
        try:
            return self.kept.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError("no delivery was kept") from None

    def register(self, group: liminal.Group, consumer_id: str, **options: Any) -> liminal.Consumer:
        return group.consumer(consumer_id, self, on_crash=self.on_crash, **options)


def wait_for(event: threading.Event, what: str = "the event") -> None:
    assert event.wait(WAIT), f"{what} did not happen"


def result(future: "liminal.DispatchFuture") -> liminal.Outcome:
    return future.result(timeout=WAIT)


def failure(future: "liminal.DispatchFuture") -> liminal.LiminalError:
    error = future.exception(timeout=WAIT)
    assert isinstance(error, liminal.LiminalError), error
    return error


def optional(value: Optional[Any]) -> Any:
    assert value is not None
    return value
