"""Dispatch: blocking and asynchronous, fields and payload through the
library intact, Python routing, pull consumers, errors with status names."""

from __future__ import annotations

import math
import os
import re
import threading

import pytest

import liminal
from conftest import WAIT, Recorder, failure, result

Verdict = liminal.Verdict


def test_version_and_library():
    assert re.fullmatch(r"\d+\.\d+\.\d+", liminal.version())
    assert liminal.__version__ == liminal.version()
    if "LIMINAL_LIBRARY" not in os.environ:  # the wheel's own copy
        assert os.path.dirname(liminal.LIBRARY_PATH) == os.path.dirname(liminal.__file__)


def test_blocking_dispatch_carries_fields_and_payload(runtime):
    fields = {"n": 7, "text": "grüße ✓", "neg": -2**63, "ratio": 0.25, "flag": True, "off": False,
              "nothing": None, "inf": math.inf}
    got = []

    def handle(delivery):
        got.append((delivery.message.fields, delivery.payload, delivery.attempt, delivery.redelivered,
                    delivery.consumer_id, delivery.dispatch_id))
        return Verdict.ACK

    with runtime.group(name="orders") as group:
        group.consumer("only", handle)
        outcome = group.dispatch(fields, b"\x00payload\xff")
    assert outcome.ok and outcome.status == liminal.Status.OK
    assert (outcome.delivered_to, outcome.attempts, outcome.rerouted_from) == ("only", 1, ())
    assert (outcome.crashed_handling, outcome.released, outcome.lease_expired) == (0, 0, 0)
    assert len(got) == 1
    seen_fields, payload, attempt, redelivered, consumer_id, dispatch_id = got[0]
    assert seen_fields == fields
    assert list(seen_fields) == list(fields)  # in order
    assert type(seen_fields["n"]) is int and type(seen_fields["ratio"]) is float
    assert type(seen_fields["flag"]) is bool
    assert payload == b"\x00payload\xff"
    assert (attempt, redelivered, consumer_id, dispatch_id) == (1, False, "only", outcome.dispatch_id)


def test_async_dispatch_completes_each_future_once(runtime):
    completed = []
    lock = threading.Lock()

    def on_complete(outcome):
        with lock:
            completed.append(outcome.dispatch_id)

    with runtime.group() as group:
        recorder = Recorder()
        group.consumer("only", recorder)
        futures = [group.dispatch_async({"n": n}, on_complete=on_complete) for n in range(50)]
        outcomes = [result(f) for f in futures]
    assert [o.delivered_to for o in outcomes] == ["only"] * 50
    assert [o.dispatch_id for o in outcomes] == [f.dispatch_id for f in futures]
    assert len(set(f.dispatch_id for f in futures)) == 50
    assert sorted(completed) == sorted(f.dispatch_id for f in futures)  # on_complete once each
    assert sorted(n for n, _, _ in recorder.seen) == list(range(50))


def test_a_python_routing_function_chooses_the_consumer(runtime):
    calls = []

    def route(message, consumers):
        calls.append((message["n"], [c.id for c in consumers]))
        return "b" if message["n"] % 2 else "a"

    routing = runtime.routing(route, b"odd-to-b", name="odd-to-b")
    assert routing.hash != 0
    with routing, runtime.group(routing) as group:
        assert group.routing_hash == routing.hash
        a, b = Recorder(), Recorder()
        group.consumer("a", a)
        group.consumer("b", b, tags=["odd"])
        outcomes = [group.dispatch({"n": n}) for n in range(6)]
        assert [c.tags for c in group.snapshot()] == [(), ("odd",)]
    assert [o.delivered_to for o in outcomes] == ["a", "b"] * 3
    assert [n for n, _, _ in a.seen] == [0, 2, 4]
    assert [n for n, _, _ in b.seen] == [1, 3, 5]
    assert [ids for _, ids in calls] == [["a", "b"]] * 6


def test_a_routing_function_that_raises_fails_the_dispatch(runtime):
    def route(message, consumers):
        raise RuntimeError("no idea")

    with runtime.routing(route, b"raises") as routing, runtime.group(routing) as group:
        group.consumer("a", Recorder())
        with pytest.raises(liminal.LiminalError) as error:
            group.dispatch({"n": 1})
    assert error.value.status == liminal.Status.ROUTING_CRASHED
    assert error.value.name == "LIMINAL_ROUTING_CRASHED"


def test_a_pull_consumer_takes_deliveries_itself(runtime):
    with runtime.group() as group:
        consumer = group.consumer("puller")  # no handler: pull mode
        future = group.dispatch_async({"n": 3}, b"pulled")
        with consumer:
            delivery = consumer.next_delivery(timeout=WAIT)
            assert delivery is not None
            with delivery:
                assert (delivery.fields, delivery.payload, delivery.consumer_id) == ({"n": 3}, b"pulled",
                                                                                    "puller")
                delivery.ack()
                with pytest.raises(liminal.LiminalError) as stale:
                    delivery.ack()  # never counted twice
            assert stale.value.status == liminal.Status.STALE_DELIVERY
            assert consumer.next_delivery(timeout=0) is None  # nothing else waits
        assert result(future).delivered_to == "puller"


def test_errors_carry_the_status_and_its_name(runtime):
    with runtime.group() as group:
        group.consumer("a", Recorder())
        with pytest.raises(liminal.LiminalError) as duplicate:
            group.consumer("a", Recorder())
        assert duplicate.value.status == liminal.Status.DUPLICATE_CONSUMER
        assert duplicate.value.name == "LIMINAL_DUPLICATE_CONSUMER"
        assert str(duplicate.value).startswith("LIMINAL_DUPLICATE_CONSUMER")
        assert not duplicate.value.retriable
        with pytest.raises(liminal.LiminalError) as unknown:
            group.find_consumer("nobody")
        assert unknown.value.status == liminal.Status.UNKNOWN_CONSUMER
    with pytest.raises(liminal.LiminalError) as invalid:
        runtime.group(waiting_room=0)
    assert invalid.value.status == liminal.Status.INVALID_ARGUMENT
    assert "waiting" in invalid.value.detail
    with pytest.raises(TypeError):
        runtime.group().dispatch({"n": object()})  # type: ignore[dict-item]
    assert liminal.status_name(liminal.Status.QUEUE_FULL) == "LIMINAL_QUEUE_FULL"


def test_a_dispatch_without_consumers_fails_by_its_deadline(runtime):
    with runtime.group(name="empty") as group:
        with pytest.raises(liminal.LiminalError) as expired:
            group.dispatch({"n": 1}, deadline=0.02)
        assert expired.value.status == liminal.Status.EXPIRED and expired.value.retriable
        error = failure(group.dispatch_async({"n": 2}, deadline=0.02))
        assert error.status == liminal.Status.EXPIRED
        assert error.outcome is not None and error.outcome.status == liminal.Status.EXPIRED
        assert error.outcome.delivered_to is None
    assert runtime.metrics()["expired"] == 2


def test_closing_the_runtime_completes_what_is_pending_with_shut_down():
    rt = liminal.Runtime()
    group = rt.group()
    future = group.dispatch_async({"n": 1})  # no consumer: it waits
    rt.close()
    assert failure(future).status == liminal.Status.SHUT_DOWN
    with pytest.raises(liminal.LiminalError) as error:
        group.dispatch({"n": 2})
    assert error.value.status == liminal.Status.SHUT_DOWN and error.value.fatal
    group.close()
    with pytest.raises(ValueError):
        group.dispatch({"n": 3})  # a closed handle is refused in Python


def test_closing_a_consumer_leaves_while_detaching_keeps_it(runtime):
    with runtime.group() as group:
        with group.consumer("a", Recorder()) as a:
            assert group.consumer_count == 1 and a.is_alive
        assert a.closed and group.consumer_count == 0
        b = group.consumer("b", Recorder())
        b.detach()  # the handle only: b stays
        assert group.consumer_count == 1
        assert group.dispatch({"n": 1}).delivered_to == "b"
        with group.find_consumer("b") as again:
            assert again.id == "b" and again.is_alive
        assert group.consumer_count == 0
        with pytest.raises(ValueError):
            b.leave()  # a closed handle is refused in Python
