"""Crash re-route: a consumer that crashes (by verdict, by raising, by
returning something that is not a verdict, declared by the host) loses
what it held to another consumer, never to itself again; an exception in a
Python handler is a crash with its text as the reason, never an ACK or a
DEFER, so no message is lost to it."""

from __future__ import annotations

import threading

import pytest

import liminal
from conftest import Recorder, result, wait_for

Verdict, Kind = liminal.Verdict, liminal.CrashKind


def test_a_crash_verdict_reroutes_and_never_back_to_the_crashed_consumer(runtime):
    with runtime.group() as group:
        a, b, c = Recorder(Verdict.CRASH), Recorder(), Recorder()
        consumers = [a.register(group, "a"), b.register(group, "b"), c.register(group, "c")]
        outcomes = [group.dispatch({"n": n}) for n in range(10)]
        # The first went to a (first in id order), which crashed with it.
        assert (outcomes[0].delivered_to, outcomes[0].rerouted_from, outcomes[0].attempts) == ("b", ("a",), 2)
        assert outcomes[0].crashed_handling == 1
        assert all(o.delivered_to != "a" for o in outcomes)
        assert a.seen == [(0, 1, False)]
        assert b.seen[0] == (0, 2, True)  # the re-route, flagged redelivered
        assert len(b.seen) + len(c.seen) == 10  # each delivered once, the first after its crash
        wait_for(a.crashed, "a's crash report")
        assert [(r.consumer_id, r.kind, r.alive) for r in a.crashes] == [("a", Kind.VERDICT, False)]
        assert "LIMINAL_VERDICT_CRASH" in a.crashes[0].reason
        assert not consumers[0].is_alive and consumers[0].callbacks_released
        assert group.consumer_count == 2
        assert [i.id for i in group.snapshot()] == ["b", "c"]
        metrics = runtime.metrics()
        assert (metrics["consumer_crashes"], metrics["rerouted"], metrics["delivered"]) == (1, 1, 10)


def test_a_handler_that_raises_is_a_crash_with_the_exception_text_as_reason(runtime):
    with runtime.group() as group:
        a, b = Recorder("raise"), Recorder()
        handles = [a.register(group, "a"), b.register(group, "b")]
        outcome = group.dispatch({"n": 41})
        assert (outcome.delivered_to, outcome.rerouted_from, outcome.crashed_handling) == ("b", ("a",), 1)
        assert a.seen == [(41, 1, False)]
        assert b.seen == [(41, 2, True)]
        wait_for(a.crashed)
        assert len(a.crashes) == 1
        report = a.crashes[0]
        assert (report.consumer_id, report.kind, report.alive) == ("a", Kind.DECLARED, False)
        assert report.reason == "ValueError: consumer failed on message 41"
        assert not handles[0].is_alive and handles[0].callbacks_released
        assert handles[1].is_alive and not handles[1].callbacks_released
        metrics = runtime.metrics()
        assert (metrics["delivered"], metrics["consumer_crashes"], metrics["dead_lettered"]) == (1, 1, 0)


def test_every_kind_of_exception_is_a_crash_never_an_ack(runtime):
    class Odd(BaseException):
        pass

    def raise_keyboard_interrupt(delivery):
        raise KeyboardInterrupt("stop")

    def raise_base_exception(delivery):
        raise Odd()

    def raise_with_a_broken_str(delivery):
        class Broken(Exception):
            def __str__(self):
                raise RuntimeError("no text")
        raise Broken()

    def answer_then_raise(delivery):
        delivery.release()  # answered already: the exception still crashes the consumer
        raise ValueError("after the answer")

    handlers = [raise_keyboard_interrupt, raise_base_exception, raise_with_a_broken_str, answer_then_raise]
    reports = []
    all_reported = threading.Event()

    def report(crash):
        reports.append(crash)
        if len(reports) == len(handlers):
            all_reported.set()
    with runtime.group(max_attempts=10) as group:
        for i, handler in enumerate(handlers):
            group.consumer(f"{i}", handler, on_crash=report)
        last = Recorder()
        group.consumer("z", last)
        outcome = group.dispatch({"n": 5})
    assert outcome.delivered_to == "z"
    assert last.seen == [(5, 5, True)]
    wait_for(all_reported, "four crash reports")  # "3"'s may come after the dispatch ended
    assert [r.consumer_id for r in reports] == ["0", "1", "2", "3"]
    assert [r.reason for r in reports[:3]] == ["KeyboardInterrupt: stop", "Odd",
                                               "Broken (its text could not be read)"]
    assert outcome.rerouted_from == ("0", "1", "2")  # "3" released it before raising
    assert outcome.released == 1
    assert runtime.metrics()["consumer_crashes"] == 4


def test_a_message_every_consumer_raises_on_is_dead_lettered_not_lost(runtime):
    dead = []
    with runtime.group(max_attempts=3) as group:
        group.set_dead_letter(lambda message, outcome: dead.append((message, outcome)))
        recorders = [Recorder("raise") for _ in range(3)]
        for i, r in enumerate(recorders):
            r.register(group, f"c{i}")
        with pytest.raises(liminal.LiminalError) as error:
            group.dispatch({"n": 9}, b"keep me")
    assert error.value.status == liminal.Status.ATTEMPTS_EXHAUSTED
    for r in recorders:  # the last report may come after the dispatch ended
        wait_for(r.crashed)
    assert len(dead) == 1
    message, outcome = dead[0]
    assert (message.fields, message.payload) == ({"n": 9}, b"keep me")
    assert (outcome.status, outcome.crashed_handling, outcome.delivered_to) == (
        liminal.Status.ATTEMPTS_EXHAUSTED, 3, None)
    assert outcome.poison  # every attempt killed its consumer
    assert outcome.rerouted_from == ("c0", "c1", "c2")
    assert [len(r.crashes) for r in recorders] == [1, 1, 1]
    assert all(r.crashes[0].reason == "ValueError: consumer failed on message 9" for r in recorders)
    metrics = runtime.metrics()
    assert (metrics["delivered"], metrics["attempts_exhausted"]) == (0, 1)


def test_a_handler_that_returns_no_verdict_crashes_its_consumer(runtime):
    with runtime.group() as group:
        a, b = Recorder(None), Recorder()
        a.register(group, "a")
        b.register(group, "b")
        outcome = group.dispatch({"n": 1})
        assert (outcome.delivered_to, outcome.rerouted_from) == ("b", ("a",))
        wait_for(a.crashed)
        assert "TypeError: the handler returned None, which is not a liminal.Verdict" == a.crashes[0].reason


def test_a_crash_declared_by_the_host_reroutes_what_the_consumer_holds(runtime):
    with runtime.group() as group:
        a, b = Recorder("keep"), Recorder()
        consumer = a.register(group, "a")
        future = group.dispatch_async({"n": 2})
        kept = a.next_kept()
        b.register(group, "b")
        consumer.crash("declared by the test")  # its crash callback runs on this thread
        assert [(r.kind, r.reason) for r in a.crashes] == [(Kind.DECLARED, "declared by the test")]
        outcome = result(future)
        assert (outcome.delivered_to, outcome.rerouted_from) == ("b", ("a",))
        # Holding it, or still handling it if its handler had not returned yet.
        assert outcome.crashed_holding + outcome.crashed_handling == 1
        with pytest.raises(liminal.LiminalError) as stale:
            kept.ack()  # the dead consumer's late answer is fenced off
        assert stale.value.status == liminal.Status.STALE_DELIVERY
        kept.close()
        with pytest.raises(liminal.LiminalError) as gone:
            consumer.crash("again")
        assert gone.value.status == liminal.Status.CONSUMER_GONE


def test_fault_injection_crashes_before_the_handler_sees_the_message(runtime):
    with runtime.group() as group:
        a, b = Recorder(), Recorder()
        consumer = a.register(group, "a")
        b.register(group, "b")
        consumer.crash_at_next_delivery()
        outcome = group.dispatch({"n": 4})
        assert outcome.delivered_to == "b"
        assert a.seen == []
        assert b.seen == [(4, 2, False)]  # not flagged redelivered: a never saw it
        wait_for(a.crashed)
        assert a.crashes[0].kind == Kind.INJECTED
