"""Acknowledgement leases (expiry, extension, quarantine) and release.

No test measures time: a lease's expiry is observed through the crash
report it raises, and an extension is shown to work because a lease that
started later, without one, expired first."""

from __future__ import annotations

import pytest

import liminal
from conftest import Recorder, result, wait_for

Kind, Status, Verdict = liminal.CrashKind, liminal.Status, liminal.Verdict


def test_an_expired_lease_takes_the_delivery_back(runtime):
    with runtime.group(ack_lease=0.1) as group:
        a, b = Recorder("keep"), Recorder()  # a keeps it and never answers
        consumer = a.register(group, "a")
        b.register(group, "b")
        outcome = group.dispatch({"n": 5})
        kept = a.next_kept()
        assert (outcome.delivered_to, outcome.lease_expired, outcome.rerouted_from, outcome.attempts) == (
            "b", 1, ("a",), 2)
        assert b.seen == [(5, 2, True)]
        wait_for(a.crashed)
        # The default lease policy (crash) declared it dead.
        assert [(r.consumer_id, r.kind, r.alive) for r in a.crashes] == [("a", Kind.LEASE_EXPIRED, False)]
        assert not consumer.is_alive
        with pytest.raises(liminal.LiminalError) as stale:
            kept.ack()  # fenced off
        assert stale.value.status == Status.STALE_DELIVERY
        kept.close()
        metrics = runtime.metrics()
        assert (metrics["delivered"], metrics["lease_expired"]) == (1, 1)


def test_an_extended_lease_keeps_the_delivery(runtime):
    def extend_and_keep(delivery):
        delivery.extend_lease(3600)
        extended.kept.put(delivery.keep())
        return Verdict.DEFER

    extended = Recorder()
    canary, acker = Recorder("keep"), Recorder()
    with runtime.group(ack_lease=0.2) as group:
        holder = group.consumer("a", extend_and_keep, on_crash=extended.on_crash, max_in_flight=1)
        canary.register(group, "canary", max_in_flight=1)
        first = group.dispatch_async({"n": 1})
        held = extended.next_kept()  # a holds it, lease extended
        second = group.dispatch_async({"n": 2})  # a is full: to the canary, whose lease started later
        canary_kept = canary.next_kept()
        wait_for(canary.crashed, "the canary's lease expiry")
        assert [(r.kind, r.alive) for r in canary.crashes] == [(Kind.LEASE_EXPIRED, False)]
        # The canary's lease started after a's and has expired; a's, extended, has not.
        assert holder.is_alive and extended.crashes == []
        acker.register(group, "z")  # takes the canary's message
        with held:
            held.ack()
        outcome = result(first)
        assert (outcome.delivered_to, outcome.lease_expired, outcome.rerouted_from) == ("a", 0, ())
        second_outcome = result(second)
        assert (second_outcome.delivered_to, second_outcome.lease_expired) == ("z", 1)
        assert second_outcome.rerouted_from == ("canary",)
        canary_kept.close()


def test_the_quarantine_policy_keeps_the_consumer_but_pauses_it(runtime):
    with runtime.group(ack_lease=0.1, lease_policy=liminal.LeasePolicy.QUARANTINE) as group:
        a, b = Recorder("keep"), Recorder()
        consumer = a.register(group, "a")
        b.register(group, "b")
        outcome = group.dispatch({"n": 8})
        assert (outcome.delivered_to, outcome.lease_expired) == ("b", 1)
        wait_for(a.crashed)
        assert [(r.kind, r.alive) for r in a.crashes] == [(Kind.LEASE_EXPIRED, True)]
        assert consumer.is_alive and consumer.is_paused
        with a.next_kept() as kept:
            with pytest.raises(liminal.LiminalError):
                kept.ack()  # taken back already


def test_a_released_message_goes_to_another_consumer(runtime):
    with runtime.group() as group:
        a, b = Recorder(Verdict.RELEASE), Recorder()
        consumer = a.register(group, "a")
        b.register(group, "b")
        outcome = group.dispatch({"n": 9})
        assert (outcome.delivered_to, outcome.released, outcome.attempts) == ("b", 1, 2)
        assert (outcome.crashed_handling, outcome.rerouted_from) == (0, ())  # a release is no failure
        assert a.seen == [(9, 1, False)] and b.seen == [(9, 2, True)]
        assert a.crashes == [] and consumer.is_alive
        metrics = runtime.metrics()
        assert (metrics["released"], metrics["consumer_crashes"]) == (1, 0)


def test_a_release_with_a_delay_from_inside_the_handler(runtime):
    def release_later(delivery):
        delivery.release(delay=0.01)  # answered: returning None defers for us
        return None

    with runtime.group() as group:
        group.consumer("a", release_later)
        b = Recorder()
        b.register(group, "b")
        outcome = group.dispatch({"n": 3})
        assert (outcome.delivered_to, outcome.released) == ("b", 1)
        assert b.seen == [(3, 2, True)]


def test_a_kept_delivery_released_from_another_thread(runtime):
    with runtime.group() as group:
        a, b = Recorder("keep"), Recorder()
        a.register(group, "a")
        future = group.dispatch_async({"n": 6})
        with a.next_kept() as kept:
            b.register(group, "b")
            kept.release()
        outcome = result(future)
        assert (outcome.delivered_to, outcome.released) == ("b", 1)
