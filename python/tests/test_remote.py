"""Remote workers over Zenoh (a library built with the `remote` feature):
a worker in this process, push and pull; a worker whose handler raises (a
crash verdict carrying the exception text to the host, the message
re-routed); a worker process killed with SIGKILL while holding a message."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import liminal
from conftest import WAIT, Recorder, result, wait_for

if not liminal.has_remote():
    if os.environ.get("LIMINAL_REQUIRE_REMOTE"):
        raise RuntimeError("LIMINAL_REQUIRE_REMOTE is set but the library was built without `remote`")
    pytest.skip("the library was built without remote consumers (LIMINAL_REMOTE=OFF)",
                allow_module_level=True)

HERE = os.path.dirname(os.path.abspath(__file__))
Kind = liminal.CrashKind


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp/127.0.0.1:{s.getsockname()[1]}"


class Host:
    """A group opened to workers on a free loopback endpoint; crash reports on a queue."""

    def __init__(self, runtime: liminal.Runtime, name: str):
        self.endpoint = free_endpoint()
        self.crashes: "queue.Queue[liminal.CrashReport]" = queue.Queue()
        self.group = runtime.group(name=name)
        self.remote = self.group.open_remote(name, [self.endpoint], on_crash=self.crashes.put)

    def next_crash(self) -> liminal.CrashReport:
        try:
            return self.crashes.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError("no crash report") from None

    def close(self) -> None:
        self.remote.close()
        self.group.close()

    def wait_workers(self, n: int) -> None:
        """Until the host counts `n` workers as consumers. A worker's
        wait_joined returns when the host's acceptance arrives, which the
        host sends just before it makes the worker a consumer (see
        liminal_worker_wait_joined): a dispatch must wait for this."""
        deadline = time.monotonic() + WAIT
        while self.remote.workers != n:
            assert time.monotonic() < deadline, f"the host never counted {n} workers"
            time.sleep(0.001)


@pytest.fixture
def host(runtime, request):
    h = Host(runtime, request.node.name.replace("_", "-")[:40])
    yield h
    h.close()


def test_a_worker_in_this_process_takes_deliveries(host):
    got = []

    def handle(delivery):
        got.append((delivery.fields, delivery.payload, delivery.consumer_id))
        return liminal.Verdict.ACK

    with liminal.Worker(host.group.name, "w", handle,
                        connect=[host.endpoint]) as worker:
        worker.wait_joined(timeout=WAIT)
        assert worker.incarnation
        host.wait_workers(1)
        assert [c.id for c in host.group.snapshot()] == ["w"]
        outcome = host.group.dispatch({"n": 1, "text": "über"}, b"\x00\x01", timeout=WAIT)
    assert (outcome.delivered_to, outcome.attempts) == ("w", 1)
    assert got == [({"n": 1, "text": "über"}, b"\x00\x01", "w")]
    assert host.crashes.empty()  # leaving is not crashing


def test_a_pull_worker_takes_deliveries_itself(host):
    with liminal.Worker(host.group.name, "puller", connect=[host.endpoint]) as worker:
        worker.wait_joined(timeout=WAIT)
        host.wait_workers(1)
        future = host.group.dispatch_async({"n": 2})
        delivery = worker.next_delivery(timeout=WAIT)
        assert delivery is not None
        with delivery:
            assert delivery.fields == {"n": 2}
            delivery.ack()
        assert result(future).delivered_to == "puller"


def test_a_worker_handler_that_raises_crashes_it_and_the_message_is_rerouted(host):
    def fail(delivery):
        raise RuntimeError(f"remote handler failed on {delivery.message['n']}")

    local = Recorder()
    local.register(host.group, "z-local")
    with liminal.Worker(host.group.name, "a-remote", fail, connect=[host.endpoint]) as worker:
        worker.wait_joined(timeout=WAIT)
        host.wait_workers(1)
        outcome = host.group.dispatch({"n": 3}, timeout=WAIT)  # to a-remote first (id order)
        report = host.next_crash()
    assert (outcome.delivered_to, outcome.rerouted_from, outcome.crashed_handling) == (
        "z-local", ("a-remote",), 1)
    assert local.seen == [(3, 2, True)]
    assert (report.consumer_id, report.kind, report.alive) == ("a-remote", Kind.VERDICT, False)
    assert "RuntimeError: remote handler failed on 3" in report.reason


def test_a_killed_worker_process_loses_what_it_held_to_another_consumer(host):
    local = Recorder()
    local.register(host.group, "z-local")
    process = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "worker_process.py"), host.endpoint, host.group.name,
         "a-proc", "hold"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines: "queue.Queue[str]" = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.strip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert lines.get(timeout=WAIT) == "joined"
        host.wait_workers(1)
        future = host.group.dispatch_async({"n": 4})  # to a-proc first (id order), which holds it
        assert lines.get(timeout=WAIT) == "got 4"
        assert not future.done()
        process.send_signal(signal.SIGKILL)
        process.wait(WAIT)
        report = host.next_crash()
        assert report.consumer_id == "a-proc" and not report.alive
        assert report.kind in (Kind.CONNECTION_LOST, Kind.SESSION_EXPIRED)
        outcome = result(future)
        assert (outcome.delivered_to, outcome.rerouted_from) == ("z-local", ("a-proc",))
        assert local.seen == [(4, 2, True)]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(WAIT)
        reader.join(WAIT)
