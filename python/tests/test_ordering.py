"""Ordered keys: messages that share a key are handled one at a time, in the
order accepted, and a message that comes back (its consumer raised) goes to
the front of its key; other keys pass; bad keys are refused."""

from __future__ import annotations

import queue

import pytest

import liminal
from conftest import Recorder, result

Status = liminal.Status


def test_a_key_is_handled_one_at_a_time_in_order_and_other_keys_pass(runtime):
    with runtime.group(key_field="account") as group:
        keeper = Recorder("keep")
        keeper.register(group, "keeper", max_in_flight=8)
        futures = [group.dispatch_async({"account": "k", "n": n}) for n in range(3)]
        futures.append(group.dispatch_async({"account": 7, "n": 9}))  # an int key: "7"
        first, other = keeper.next_kept(), keeper.next_kept()
        assert (first.fields["n"], first.message.key) == (0, "k")
        assert (other.fields["n"], other.message.key) == (9, "7")
        assert group.waiting == 2  # behind the head of "k", with room to spare
        keys, total = group.waiting_keys()
        assert total == 1 and [(w.key, w.depth) for w in keys] == [("k", 3)]
        assert keys[0].head_age >= 0
        order = []
        held = first
        for _ in range(3):
            order.append(held.fields["n"])
            with held:
                held.ack()
            if len(order) < 3:
                held = keeper.next_kept()
        with other:
            other.ack()
        assert order == [0, 1, 2]
        assert all(result(f).delivered_to == "keeper" for f in futures)
        assert group.waiting_keys() == ([], 0)


def test_a_message_whose_consumer_raised_goes_back_to_the_front_of_its_key(runtime):
    with runtime.group() as group:
        doomed = Recorder("raise")
        doomed.register(group, "doomed", max_in_flight=1)
        futures = [group.dispatch_async({"n": n}, key="k") for n in range(3)]
        steady = Recorder()
        steady.register(group, "steady")
        outcomes = [result(f) for f in futures]
        assert [o.delivered_to for o in outcomes] == ["steady"] * 3
        assert outcomes[0].rerouted_from == ("doomed",)
        # The head came back first: the steady consumer saw the key in order.
        assert [n for n, _, _ in steady.seen] == [0, 1, 2]
        assert steady.seen[0][2]  # redelivered


def test_bad_keys_are_refused_with_nothing_dispatched(runtime):
    with runtime.group(key_field="account") as group:
        with pytest.raises(liminal.LiminalError) as error:
            group.dispatch_async({"n": 1}, key="")
        assert error.value.status == Status.INVALID_ARGUMENT
        with pytest.raises(liminal.LiminalError) as error:
            group.dispatch_async({"account": 2.5})  # a double is no key
        assert error.value.status == Status.INVALID_ARGUMENT
        assert (group.waiting, group.in_flight) == (0, 0)
    with pytest.raises(liminal.LiminalError) as error:
        runtime.group(key_field="")
    assert error.value.status == Status.INVALID_ARGUMENT



def test_a_held_key_waits_after_its_head_fails_until_released(runtime):
    with runtime.group(key_field="account", max_attempts=1, hold_failed_keys=True) as group:
        seen = queue.Queue()

        def handle(delivery):
            seen.put((delivery.fields["account"], delivery.fields["n"]))
            return liminal.Verdict.RELEASE if delivery.fields["n"] == 1 else liminal.Verdict.ACK

        group.consumer("c", handle)
        first = group.dispatch_async({"account": "a", "n": 1})
        second = group.dispatch_async({"account": "a", "n": 2})
        with pytest.raises(liminal.LiminalError):
            first.result(timeout=30)
        group.dispatch({"account": "b", "n": 3}, timeout=30)
        assert [seen.get(timeout=30), seen.get(timeout=30)] == [("a", 1), ("b", 3)]
        assert not second.done()  # b passed; a's next waits behind the held key
        assert not group.release_key("b")
        assert group.release_key("a")
        second.result(timeout=30)
        assert seen.get(timeout=30) == ("a", 2)
