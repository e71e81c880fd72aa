"""The waiting room: messages no consumer can take yet wait (in order) and
are placed as capacity frees up; a full waiting room rejects, blocks or
drops the oldest as its overflow policy says; drain."""

from __future__ import annotations

import threading

import pytest

import liminal
from conftest import WAIT, Recorder, failure, result

Status = liminal.Status


def test_messages_wait_for_a_full_consumer_and_are_placed_in_order(runtime):
    with runtime.group() as group:
        only = Recorder("keep")
        consumer = only.register(group, "only", max_in_flight=1)
        futures = [group.dispatch_async({"n": n}) for n in range(3)]
        order = []
        for answered in range(3):
            kept = only.next_kept()
            order.append(kept.fields["n"])
            # One held, the others wait for its only slot.
            assert group.waiting == 2 - answered
            assert runtime.metrics()["waiting"] == 2 - answered
            assert group.in_flight == 3 - answered
            assert consumer.in_flight == 1
            assert sum(f.done() for f in futures) == answered  # none completes before its ack
            with kept:
                kept.ack()  # from this thread; the completion runs here
            assert sum(f.done() for f in futures) == answered + 1
        assert order == [0, 1, 2]
        outcomes = [result(f) for f in futures]
        assert [o.delivered_to for o in outcomes] == ["only"] * 3
        assert all(o.waited_ns > 0 for o in outcomes[1:])  # these two waited
        assert (group.waiting, group.in_flight) == (0, 0)
        metrics = runtime.metrics()
        assert (metrics["dispatched"], metrics["delivered"], metrics["waiting"]) == (3, 3, 0)


def test_messages_wait_for_a_consumer_to_join(runtime):
    with runtime.group() as group:
        futures = [group.dispatch_async({"n": n}) for n in range(5)]
        assert group.waiting == 5
        late = Recorder()
        group.consumer("late", late)
        assert [result(f).delivered_to for f in futures] == ["late"] * 5
        assert sorted(n for n, _, _ in late.seen) == list(range(5))


def test_a_full_waiting_room_rejects_with_queue_full(runtime):
    with runtime.group(waiting_room=1, overflow=liminal.Overflow.REJECT) as group:
        only = Recorder("keep")
        only.register(group, "only", max_in_flight=1)
        first = group.dispatch_async({"n": 0})
        held = only.next_kept()  # the consumer is full now
        second = group.dispatch_async({"n": 1})
        assert group.waiting == 1  # and so is the waiting room
        from liminal import _ffi
        callbacks = _ffi.kept_count()
        with pytest.raises(liminal.LiminalError) as refused:
            group.dispatch_async({"n": 2})
        assert refused.value.status == Status.QUEUE_FULL and refused.value.retriable
        assert _ffi.kept_count() == callbacks  # its completion was released at once
        with pytest.raises(liminal.LiminalError) as blocking:
            group.dispatch({"n": 3})
        assert blocking.value.name == "LIMINAL_QUEUE_FULL"
        assert (group.waiting, group.in_flight) == (1, 2)
        assert runtime.metrics()["rejected"] == 2
        assert runtime.stats()["groups"][0]["liminal.dispatch.rejected"] == 2
        with held:
            held.ack()
        with only.next_kept() as next_held:
            assert next_held.fields == {"n": 1}
            next_held.ack()
        assert [result(f).delivered_to for f in (first, second)] == ["only", "only"]
        assert [n for n, _, _ in only.seen] == [0, 1]


def test_drop_oldest_fails_the_oldest_waiting_message(runtime):
    dead = []
    with runtime.group(waiting_room=2, overflow=liminal.Overflow.DROP_OLDEST) as group:
        group.set_dead_letter(lambda message, outcome: dead.append((message["n"], outcome.status)))
        futures = [group.dispatch_async({"n": n}) for n in range(4)]
        assert [failure(f).status for f in futures[:2]] == [Status.DROPPED] * 2
        assert group.waiting == 2
        consumer = Recorder()
        group.consumer("c", consumer)
        assert [result(f).delivered_to for f in futures[2:]] == ["c", "c"]
    assert dead == [(0, Status.DROPPED), (1, Status.DROPPED)]
    assert sorted(n for n, _, _ in consumer.seen) == [2, 3]
    assert runtime.metrics()["dropped"] == 2


def test_block_overflow_waits_for_room(runtime):
    with runtime.group(waiting_room=1, overflow=liminal.Overflow.BLOCK, block_timeout=WAIT) as group:
        first = group.dispatch_async({"n": 0})  # waits: no consumer
        dispatched = threading.Event()
        second = []

        def dispatch_second():
            second.append(group.dispatch_async({"n": 1}))  # blocks until there is room
            dispatched.set()

        thread = threading.Thread(target=dispatch_second)
        thread.start()
        late = Recorder()
        group.consumer("late", late)  # takes the first: room for the second
        assert dispatched.wait(WAIT)
        thread.join(WAIT)
        assert [result(f).delivered_to for f in (first, second[0])] == ["late", "late"]
        assert sorted(n for n, _, _ in late.seen) == [0, 1]


def test_drain_waits_for_what_is_in_flight_then_refuses(runtime):
    with runtime.group() as group:
        only = Recorder("keep")
        only.register(group, "only")
        futures = [group.dispatch_async({"n": n}) for n in range(3)]
        kept = [only.next_kept() for _ in range(3)]
        assert group.drain(timeout=0) == 3  # nothing completed yet
        with pytest.raises(liminal.LiminalError) as draining:
            group.dispatch_async({"n": 3})
        assert draining.value.status == Status.DRAINING

        def answer():
            for delivery in kept:
                delivery.ack()
                delivery.close()

        acker = threading.Thread(target=answer)
        acker.start()
        assert group.drain(timeout=WAIT) == 0
        acker.join(WAIT)
        assert [result(f).delivered_to for f in futures] == ["only"] * 3
        assert runtime.stats()["groups"][0]["liminal.group.draining"] is True
