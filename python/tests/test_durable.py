"""Durable groups and batch dispatch: messages accepted by a durable group
and not completed come back, in order and flagged redelivered, in a group
opened later on the same store (on_recovered ends each once, with the
same `<store id>-<sequence>` message id); a live group's store is locked;
`dispatch_batch` completes each accepted message exactly once and refuses
what a full waiting room has no place for. Synchronised on queues, events
and futures, never on sleeps."""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections import Counter
from typing import Any, List, Tuple

import pytest

import liminal
from liminal import _ffi
from conftest import WAIT, Recorder, failure, result

Status = liminal.Status
Verdict = liminal.Verdict
MESSAGE_ID = re.compile(r"([0-9a-f]{16})-(\d+)")


class Recovered:
    """An on_recovered callback that records (message, outcome) on a queue."""

    def __init__(self) -> None:
        self.calls: "queue.Queue[Tuple[liminal.ReceivedMessage, liminal.Outcome]]" = queue.Queue()

    def __call__(self, message: liminal.ReceivedMessage, outcome: liminal.Outcome) -> None:
        self.calls.put((message, outcome))

    def take(self, count: int) -> List[Tuple[liminal.ReceivedMessage, liminal.Outcome]]:
        taken = []
        for _ in range(count):
            try:
                taken.append(self.calls.get(timeout=WAIT))
            except queue.Empty:
                raise AssertionError(f"on_recovered was called {len(taken)} times, not {count}") from None
        return taken


class Acker:
    """A handler that acknowledges and records what it saw, message ids included."""

    def __init__(self) -> None:
        self.seen: List[Tuple[Any, bytes, bool, str, int]] = []
        self.lock = threading.Lock()

    def __call__(self, delivery: liminal.Delivery) -> Verdict:
        with self.lock:
            self.seen.append((delivery.fields.get("n"), delivery.payload, delivery.redelivered,
                              delivery.message_id, delivery.dispatch_id))
        return Verdict.ACK


class Completions:
    """An on_complete callback counting each dispatch id's completions."""

    def __init__(self, expected: int) -> None:
        self.counts: "Counter[int]" = Counter()
        self.statuses: List[Any] = []
        self.lock = threading.Lock()
        self.expected = expected
        self.all_done = threading.Event()

    def __call__(self, outcome: liminal.Outcome) -> None:
        with self.lock:
            self.counts[outcome.dispatch_id] += 1
            self.statuses.append(outcome.status)
            if sum(self.counts.values()) >= self.expected:
                self.all_done.set()


def accept_without_consumer(store: Any, count: int) -> None:
    """A host (its own runtime) whose durable group accepts `count`
    messages with no consumer, then closes: they fail here with
    NO_CONSUMER_AVAILABLE and stay in the store."""
    with liminal.Runtime() as host:
        with host.group(name="orders", store=store) as group:
            assert group.store == str(store)
            futures = [group.dispatch_async({"n": n}, b"payload-%d" % n) for n in range(count)]
            # Each returned once stored; no consumer, so none completed.
            assert (group.in_flight, group.waiting) == (count, count)
            assert not any(f.done() for f in futures)
        assert [failure(f).status for f in futures] == [Status.NO_CONSUMER_AVAILABLE] * count


def test_a_new_host_recovers_what_the_store_accepted_in_order(runtime, tmp_path):
    store = tmp_path / "orders"
    accept_without_consumer(store, 5)

    recovered = Recovered()
    acker = Acker()
    with runtime.group(name="orders", store=store, on_recovered=recovered) as group:
        # Brought back before group() returned: waiting for a consumer.
        assert (group.in_flight, group.waiting) == (5, 5)
        group.consumer("c", acker)
        calls = recovered.take(5)
        assert (group.in_flight, group.waiting) == (0, 0)

    # Every one delivered once, in acceptance order, flagged redelivered,
    # payload intact.
    assert [(n, payload, again) for n, payload, again, _, _ in acker.seen] == \
        [(n, b"payload-%d" % n, True) for n in range(5)]
    # Message ids: one store id, sequence numbers rising in acceptance order.
    ids = [MESSAGE_ID.fullmatch(message_id) for _, _, _, message_id, _ in acker.seen]
    assert all(ids), [message_id for _, _, _, message_id, _ in acker.seen]
    assert len({m.group(1) for m in ids if m}) == 1
    sequences = [int(m.group(2)) for m in ids if m]
    assert sequences == sorted(set(sequences))

    # on_recovered: once per message, each acknowledged by "c".
    assert sorted(message["n"] for message, _ in calls) == list(range(5))
    for message, outcome in calls:
        assert isinstance(message, liminal.ReceivedMessage)
        assert message.payload == b"payload-%d" % message["n"]
        assert message.key is None
        assert outcome.ok and outcome.status == Status.OK and not outcome.poison
        assert (outcome.delivered_to, outcome.attempts) == ("c", 1)
    by_n = {n: dispatch_id for n, _, _, _, dispatch_id in acker.seen}
    assert {message["n"]: outcome.dispatch_id for message, outcome in calls} == by_n

    # Reopened: nothing comes back, and on_recovered is not called again.
    again = Recovered()
    with runtime.group(name="orders", store=store, on_recovered=again) as group:
        assert (group.in_flight, group.waiting) == (0, 0)
    assert again.calls.empty() and recovered.calls.empty()


def test_an_exception_in_on_recovered_is_logged_and_goes_no_further(runtime, tmp_path):
    store = tmp_path / "orders"
    accept_without_consumer(store, 3)

    logged: "queue.Queue[logging.LogRecord]" = queue.Queue()

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logged.put(record)

    handler = Handler(level=logging.ERROR)
    logger = logging.getLogger("liminal")
    logger.addHandler(handler)
    calls: List[Any] = []

    def on_recovered(message: liminal.ReceivedMessage, outcome: liminal.Outcome) -> None:
        calls.append((message["n"], outcome.ok))
        raise KeyError("the ledger is gone")

    try:
        acker = Acker()
        with runtime.group(store=store, on_recovered=on_recovered) as group:
            group.consumer("c", acker)
            records = [logged.get(timeout=WAIT) for _ in range(3)]
            # The raising callback did not hurt the library: a new message
            # still goes through this group.
            assert group.dispatch({"n": 99}).delivered_to == "c"
    finally:
        logger.removeHandler(handler)
    assert sorted(calls) == [(0, True), (1, True), (2, True)]
    assert all("recovered callback" in r.getMessage() for r in records)
    assert all(r.exc_info and r.exc_info[0] is KeyError for r in records)
    assert [n for n, _, _, _, _ in acker.seen] == [0, 1, 2, 99]


def test_a_second_group_on_a_held_store_is_refused_with_store_locked(runtime, tmp_path):
    store = tmp_path / "held"
    with runtime.group(store=store) as holder:
        holder.dispatch_async({"n": 1})  # stored, waiting
        before = _ffi.kept_count()
        with pytest.raises(liminal.LiminalError) as here:
            runtime.group(store=store, on_recovered=Recovered())
        assert here.value.status == Status.STORE_LOCKED
        assert here.value.name == "LIMINAL_STORE_LOCKED"
        # The refused group's on_recovered was released with its options.
        assert _ffi.kept_count() == before
        with liminal.Runtime() as other:
            with pytest.raises(liminal.LiminalError) as elsewhere:
                other.group(store=store)
            assert elsewhere.value.status == Status.STORE_LOCKED
        assert holder.in_flight == 1  # the holder is unharmed
    # Let go with its group: the store opens again, its message back.
    recovered = Recovered()
    with runtime.group(store=store, on_recovered=recovered) as again:
        assert again.waiting == 1
        acker = Acker()
        again.consumer("c", acker)
        [(message, outcome)] = recovered.take(1)
        assert (message.fields, outcome.ok) == ({"n": 1}, True)


def test_a_batch_to_a_durable_group_completes_each_message_once(runtime, tmp_path):
    store = tmp_path / "batch"
    completions = Completions(50)
    a, b = Acker(), Acker()
    with runtime.group(store=store) as group:
        group.consumer("a", a)
        group.consumer("b", b)
        results = group.dispatch_batch([({"n": n}, b"p%d" % n) for n in range(50)],
                                       on_complete=completions)
        assert len(results) == 50
        assert all(isinstance(r, liminal.DispatchFuture) for r in results), results
        futures = [r for r in results if isinstance(r, liminal.DispatchFuture)]
        outcomes = [result(f) for f in futures]
        assert completions.all_done.wait(WAIT)
    assert all(o.ok for o in outcomes)
    assert {o.delivered_to for o in outcomes} <= {"a", "b"}
    dispatch_ids = [f.dispatch_id for f in futures]
    assert len(set(dispatch_ids)) == 50 and 0 not in dispatch_ids
    assert [o.dispatch_id for o in outcomes] == dispatch_ids
    # Each completion ran exactly once, for these dispatches.
    assert completions.counts == Counter(dispatch_ids)
    seen = a.seen + b.seen
    assert sorted(n for n, _, _, _, _ in seen) == list(range(50))
    assert all(payload == b"p%d" % n and not again for n, payload, again, _, _ in seen)
    assert all(MESSAGE_ID.fullmatch(message_id) for _, _, _, message_id, _ in seen)
    assert len({message_id for _, _, _, message_id, _ in seen}) == 50

    # All acknowledged: nothing is recovered from the store.
    recovered = Recovered()
    with runtime.group(store=store, on_recovered=recovered) as group:
        assert group.in_flight == 0
    assert recovered.calls.empty()


def test_a_durable_batch_is_stored_with_one_sync(runtime, tmp_path):
    def store_figures() -> Any:
        [group_stats] = runtime.stats()["groups"]
        return group_stats["store"]

    with runtime.group(store=tmp_path / "one-sync") as group:
        syncs = store_figures()["liminal.store.syncs"]
        results = group.dispatch_batch([{"n": n} for n in range(50)])
        assert all(isinstance(r, liminal.DispatchFuture) for r in results)
        # Stored before it returned, with one sync; no consumer, nothing else to write.
        figures = store_figures()
        assert figures["liminal.store.syncs"] == syncs + 1
        assert figures["liminal.store.pending"] == 50
        assert figures["liminal.store.failed"] is None


@pytest.mark.parametrize("durable", [False, True], ids=["memory", "durable"])
def test_a_batch_into_a_full_waiting_room_refuses_its_tail(runtime, tmp_path, durable):
    store = tmp_path / "small" if durable else None
    completions = Completions(3)
    with runtime.group(waiting_room=3, overflow=liminal.Overflow.REJECT, store=store) as group:
        callbacks = _ffi.kept_count()
        results = group.dispatch_batch([{"n": n} for n in range(5)], on_complete=completions)
        accepted = results[:3]
        assert all(isinstance(r, liminal.DispatchFuture) for r in accepted), results
        refused = results[3:]
        assert all(isinstance(r, liminal.LiminalError) for r in refused), results
        assert [r.status for r in refused] == [Status.QUEUE_FULL] * 2  # type: ignore[union-attr]
        assert all(r.retriable for r in refused)  # type: ignore[union-attr]
        # The refused completions were released before it returned; the
        # accepted ones are held until they complete.
        assert _ffi.kept_count() == callbacks + 3
        assert (group.waiting, group.in_flight) == (3, 3)
        assert runtime.metrics()["rejected"] == 2
        assert not any(f.done() for f in accepted)  # type: ignore[union-attr]
        if not durable:
            recorder = Recorder()
            group.consumer("late", recorder)
            outcomes = [result(f) for f in accepted]  # type: ignore[arg-type]
            assert [o.delivered_to for o in outcomes] == ["late"] * 3
            assert sorted(n for n, _, _ in recorder.seen) == [0, 1, 2]
    if durable:
        # Closed with no consumer: the three accepted fail here (once each)...
        statuses = [failure(f).status for f in accepted]  # type: ignore[arg-type]
        assert statuses == [Status.NO_CONSUMER_AVAILABLE] * 3
    assert completions.all_done.wait(WAIT)
    assert completions.counts == Counter(f.dispatch_id for f in accepted)  # type: ignore[union-attr]
    if durable:
        # ...and only they were stored: the refused tail never was.
        recovered = Recovered()
        acker = Acker()
        with runtime.group(store=store, on_recovered=recovered) as group:
            assert group.waiting == 3
            group.consumer("c", acker)
            calls = recovered.take(3)
        assert [n for n, _, _, _, _ in acker.seen] == [0, 1, 2]
        assert sorted(message["n"] for message, _ in calls) == [0, 1, 2]
        assert recovered.calls.empty()


def test_store_sync_interval_and_bad_store_options(runtime, tmp_path):
    with runtime.group(store=tmp_path / "interval", store_sync_interval=0.005) as group:
        acker = Acker()
        group.consumer("c", acker)
        assert group.dispatch({"n": 1}).ok
        results = group.dispatch_batch([{"n": 2}, {"n": 3}])
        assert all(result(r).ok for r in results)  # type: ignore[arg-type]
    with pytest.raises(liminal.LiminalError) as no_store:
        runtime.group(store_sync_interval=0.01)
    assert no_store.value.status == Status.INVALID_ARGUMENT
    with pytest.raises(ValueError):
        runtime.group(store=tmp_path / "x", store_sync_interval=-1)
    (tmp_path / "file").write_bytes(b"not a directory")
    with pytest.raises(liminal.LiminalError) as not_a_directory:
        runtime.group(store=tmp_path / "file")
    assert not_a_directory.value.status == Status.STORE_FAILED


def test_a_local_message_id_is_its_dispatch_id(runtime):
    acker = Acker()
    with runtime.group() as group:
        group.consumer("c", acker)
        outcome = group.dispatch({"n": 1})
    [(_, _, _, message_id, dispatch_id)] = acker.seen
    assert message_id == str(dispatch_id) == str(outcome.dispatch_id)


def test_an_empty_batch_and_a_bad_batch_dispatch_nothing(runtime):
    with runtime.group() as group:
        assert group.dispatch_batch([]) == []
        callbacks = _ffi.kept_count()
        with pytest.raises(TypeError):
            group.dispatch_batch([{"n": 1}, {"n": object()}])  # type: ignore[dict-item]
        with pytest.raises(liminal.LiminalError) as bad_key:
            group.dispatch_batch([{"n": 1}], key="")
        assert bad_key.value.status == Status.INVALID_ARGUMENT
        assert _ffi.kept_count() == callbacks
        assert (group.in_flight, runtime.metrics()["dispatched"]) == (0, 0)
