#!/usr/bin/env python3
"""The reverse conformance check: a fake liminal host (eclipse-zenoh only)
that checks a *worker* against docs/PROTOCOL.md (version 2): joining,
answers, and a host restart.

    fake_host.py WORKER_COMMAND ...

The worker command is run with four more arguments, ENDPOINT GROUP ID ack,
and must join the group as consumer ID and acknowledge every delivery
(``tests/python/remote_worker.py`` and this project's test worker take them
so). Prints ``ok <check>`` per check; exits non-zero at the first failure.
"""

import json
import os
import queue
import secrets
import socket
import subprocess
import sys
import time
import traceback

import zenoh

WAIT = 20.0
GROUP = "fake"
CONSUMER = "w"
P = f"liminal/v2/{GROUP}"


def free_endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp/127.0.0.1:{s.getsockname()[1]}"


class FakeHost:
    """One host incarnation: a peer listening on the endpoint."""

    def __init__(self, endpoint):
        config = zenoh.Config()
        config.insert_json5("mode", '"peer"')
        config.insert_json5("scouting/multicast/enabled", "false")
        config.insert_json5("scouting/gossip/enabled", "false")
        config.insert_json5("listen/endpoints", json.dumps([endpoint]))
        self.session = zenoh.open(config)
        self.incarnation = secrets.token_hex(16)
        self.events = queue.Queue()
        self.token = self.session.liveliness().declare_token(f"{P}/host/{self.incarnation}")
        self.alive = self.session.liveliness().declare_subscriber(
            f"{P}/alive/*/*", lambda s: self.events.put(("token", str(s.kind), str(s.key_expr))),
            history=True,
        )
        self.answers = self.session.declare_subscriber(
            f"{P}/from/*/*",
            lambda s: self.events.put(("from", str(s.key_expr), json.loads(s.payload.to_bytes()))),
        )

    def next(self, want):
        """The next event `want` accepts (others, beats among them, skipped)."""
        deadline = time.monotonic() + WAIT
        while True:
            event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            if want(event):
                return event

    def wait_token(self):
        event = self.next(lambda e: e[0] == "token" and e[1] == "SampleKind.PUT")
        consumer, inc = event[2].rsplit("/", 2)[-2:]
        assert consumer == CONSUMER, event
        return inc

    def info(self, inc):
        replies = list(self.session.get(f"{P}/info/{CONSUMER}/{inc}?host={self.incarnation}", timeout=5.0))
        assert len(replies) == 1 and replies[0].ok is not None, "one info reply"
        info = json.loads(replies[0].ok.payload.to_bytes())
        assert info.get("protocol") == 2, info
        assert isinstance(info.get("max_in_flight"), int) and info["max_in_flight"] >= 1, info
        assert isinstance(info.get("lease_ms"), int) and 50 <= info["lease_ms"] <= 1000, info
        return info

    def send(self, inc, message):
        message = dict(message, host=self.incarnation)
        self.session.put(f"{P}/to/{CONSUMER}/{inc}", json.dumps(message),
                         congestion_control=zenoh.CongestionControl.BLOCK)

    def join(self, inc, info):
        self.send(inc, {"type": "joined", "ack_lease_ms": None, "lease_policy": "crash",
                        "lease_ms": info["lease_ms"], "silence_ms": info["lease_ms"] * 7 // 8})

    def deliver(self, inc, delivery_id, dispatch_id):
        self.send(inc, {
            "type": "delivery", "delivery_id": delivery_id, "dispatch_id": dispatch_id,
            "message_id": f"{self.incarnation}-{dispatch_id}", "attempt": 1,
            "redelivered": False, "crashed_handling": 0, "crashed_holding": 0,
            "lease_ms": None, "fields": [{"name": "order", "type": "int", "value": dispatch_id}],
            "payload": None,
        })

    def answer(self, inc):
        """The next final answer of incarnation `inc`."""
        event = self.next(lambda e: e[0] == "from" and e[1].endswith(f"/{inc}")
                          and e[2].get("type") == "answer")
        return event[2]

    def close(self):
        self.session.close()


def main():
    command = sys.argv[1:]
    endpoint = free_endpoint()
    host = FakeHost(endpoint)
    worker = subprocess.Popen(command + [endpoint, GROUP, CONSUMER, "ack"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        # Join: token, info reply, joined.
        inc = host.wait_token()
        info = host.info(inc)
        assert info.get("host") is None, f"a fresh incarnation names no host: {info}"
        host.join(inc, info)
        print("ok join", flush=True)
        # Answers: each names this host and the delivery; a beat arrives.
        for n in (1, 2):
            host.deliver(inc, delivery_id=n, dispatch_id=n)
            answer = host.answer(inc)
            assert answer == dict(answer, host=host.incarnation, delivery_id=n, verdict="ack"), answer
        host.next(lambda e: e[0] == "from" and e[2].get("type") == "beat")
        print("ok answers", flush=True)
        # Host restart: the old host goes, a new incarnation opens on the
        # same endpoint. The worker must come back as a new incarnation
        # that names no host, and answer the new host's delivery 1 naming it.
        old_host = host.incarnation
        host.close()
        host = FakeHost(endpoint)
        fresh = host.wait_token()
        while fresh == inc:  # the old token, seen again before it went
            fresh = host.wait_token()
        info = host.info(fresh)
        assert info.get("host") in (None, host.incarnation), f"a new incarnation: {info}"
        host.join(fresh, info)
        host.deliver(fresh, delivery_id=1, dispatch_id=1)
        answer = host.answer(fresh)
        assert answer["host"] == host.incarnation != old_host, answer
        assert answer["delivery_id"] == 1 and answer["verdict"] == "ack", answer
        print("ok host_restart", flush=True)
        print("fake host: 3 checks passed", flush=True)
    finally:
        worker.kill()
        worker.wait()
    os._exit(0)


if __name__ == "__main__":
    try:
        main()
    except BaseException:  # noqa: BLE001
        # Report and leave at once: Zenoh's threads would otherwise keep
        # the interpreter from exiting, and the test waiting on it hangs.
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
