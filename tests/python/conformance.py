#!/usr/bin/env python3
"""Conformance checks of a liminal host against docs/PROTOCOL.md (version 2),
written with the eclipse-zenoh package alone: a scripted fake worker drives
a host through each rule and asserts the host's answer.

    conformance.py HOST_PROGRAM [CHECK ...]

HOST_PROGRAM is started once per check (and again for the restart check)
with the environment variable LIMINAL_TEST_HOST set to
``<endpoint>;<group>;<max lease ms>;<ack lease ms, 0: none>``; it must open
the group as a liminal host listening on the endpoint, say ``host
<incarnation>`` on stdout, and take commands on stdin: ``dispatch <n>``
(say ``completed <dispatch id> <consumer>`` per completion), ``stale``
(say ``stale <count>``). The liminal test binary is such a program
(tests/common/remote.rs, ``host_main``); run from ``cargo test --features
remote --test remote conformance``. Prints ``ok <check>`` per check; exits
non-zero at the first failure.
"""

import json
import os
import queue
import secrets
import socket
import subprocess
import sys
import threading
import time
import traceback

import zenoh

WAIT = 20.0  # seconds: any single expected event


def free_endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp/127.0.0.1:{s.getsockname()[1]}"


class Host:
    """The host under test: a process speaking lines."""

    def __init__(self, program, endpoint, group, lease_ms=1000, ack_lease_ms=0):
        env = dict(os.environ, LIMINAL_TEST_HOST=f"{endpoint};{group};{lease_ms};{ack_lease_ms}")
        self.process = subprocess.Popen(
            [program, "--exact", "worker_process", "--nocapture"],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self.read, daemon=True).start()
        self.incarnation = self.expect("host ")

    def read(self):
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def expect(self, prefix, forbid=None):
        deadline = time.monotonic() + WAIT
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if forbid and forbid in line:
                raise AssertionError(f"host said {line!r}")
            at = line.find(prefix)
            if at >= 0:
                return line[at + len(prefix):].strip()

    def command(self, line):
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def stale(self, forbid=None):
        self.command("stale")
        return int(self.expect("stale ", forbid))

    def kill(self):
        self.process.kill()
        self.process.wait()


class FakeWorker:
    """One worker session; incarnations are declared by hand."""

    def __init__(self, endpoint, group, consumer_id, version=2):
        self.prefix = f"liminal/v{version}/{group}"
        self.id = consumer_id
        config = zenoh.Config()
        config.insert_json5("mode", '"client"')
        config.insert_json5("scouting/multicast/enabled", "false")
        config.insert_json5("scouting/gossip/enabled", "false")
        config.insert_json5("connect/endpoints", json.dumps([endpoint]))
        self.session = zenoh.open(config)
        self.inbox = {}
        self.entities = {}
        self.served = {}  # incarnation -> the host incarnation that joined it
        self.lock = threading.Lock()
        threading.Thread(target=self.beat, daemon=True).start()
        self.hosts = queue.Queue()
        self.entities["watch"] = [self.session.liveliness().declare_subscriber(
            f"{self.prefix}/host/*",
            lambda s: self.hosts.put((str(s.kind), str(s.key_expr).rsplit("/", 1)[-1])),
            history=True,
        )]

    def beat(self):
        """A beat for every declared incarnation, four per second (lease 1 s)."""
        while True:
            with self.lock:
                live = [inc for inc in self.entities if inc != "watch"]
            for inc in live:
                try:
                    self.put(inc, {"type": "beat"})
                except Exception:  # the session closed
                    return
            time.sleep(0.2)

    def on_message(self, inc, box, sample):
        message = json.loads(sample.payload.to_bytes())
        if message.get("type") == "joined":
            with self.lock:
                self.served[inc] = message["host"]
        box.put(message)

    def key(self, kind, inc):
        return f"{self.prefix}/{kind}/{self.id}/{inc}"

    def announce(self, info, late=False):
        """Declare a new incarnation answering its info query with `info`
        (a dict or raw bytes); `late`: reply after the callback returned."""
        inc = secrets.token_hex(16)
        box = queue.Queue()
        self.inbox[inc] = box
        sub = self.session.declare_subscriber(
            self.key("to", inc), lambda s: self.on_message(inc, box, s)
        )
        kept = []

        def on_query(query):
            payload = info
            if isinstance(info, dict):
                with self.lock:
                    # A worker incarnation names the host that joined it.
                    payload = json.dumps(dict({"host": self.served.get(inc)}, **info))
            if late:
                kept.append(query)
                threading.Timer(0.2, lambda: (query.reply(query.key_expr, payload), query.drop())).start()
            else:
                query.reply(query.key_expr, payload)

        qbl = self.session.declare_queryable(self.key("info", inc), on_query)
        token = self.session.liveliness().declare_token(self.key("alive", inc))
        with self.lock:
            self.entities[inc] = [sub, qbl, token]
        return inc

    def drop(self, inc):
        with self.lock:
            entities = self.entities.pop(inc, [])
        for entity in entities:
            entity.undeclare()

    def put(self, inc, message):
        self.session.put(self.key("from", inc), json.dumps(message),
                         congestion_control=zenoh.CongestionControl.BLOCK)

    def expect(self, inc, kind):
        deadline = time.monotonic() + WAIT
        while True:
            message = self.inbox[inc].get(timeout=max(0.0, deadline - time.monotonic()))
            if message.get("type") == kind:
                return message

    def close(self):
        with self.lock:
            incs = list(self.entities)
        for inc in incs:
            self.drop(inc)
        self.session.close()


def info(**changes):
    base = {"protocol": 2, "max_in_flight": 8, "lease_ms": 1000}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def refusal(worker, inc, kind):
    message = worker.expect(inc, "refused")
    assert message["kind"] == kind, message
    return message


# ---- checks ----------------------------------------------------------------

def check_join_answers_and_leave(program):
    """joined states the terms; started/ack complete; leave gets bye."""
    endpoint = free_endpoint()
    host = Host(program, endpoint, "c-join", ack_lease_ms=5000)
    worker = FakeWorker(endpoint, "c-join", "w")
    inc = worker.announce(info(tags=["x"], zone="unknown fields are ignored"))
    joined = worker.expect(inc, "joined")
    assert joined["host"] == host.incarnation, joined
    assert joined["ack_lease_ms"] == 5000 and joined["lease_policy"] == "crash", joined
    assert joined["lease_ms"] == 1000 and joined["silence_ms"] == 875, joined
    host.command("dispatch 1")
    delivery = worker.expect(inc, "delivery")
    assert delivery["host"] == host.incarnation, delivery
    assert delivery["message_id"] == f"{host.incarnation}-{delivery['dispatch_id']}", delivery
    assert delivery["lease_ms"] == 5000, delivery
    worker.put(inc, {"type": "started", "host": host.incarnation, "delivery_id": delivery["delivery_id"]})
    worker.put(inc, {"type": "answer", "host": host.incarnation,
                     "delivery_id": delivery["delivery_id"], "verdict": "ack"})
    assert host.expect("completed ").endswith(" w")
    worker.put(inc, {"type": "leave"})
    assert worker.expect(inc, "bye")["host"] == host.incarnation
    worker.close()
    host.kill()


def check_late_info_reply(program):
    """An info reply sent after the query callback returned is accepted."""
    endpoint = free_endpoint()
    host = Host(program, endpoint, "c-late-info")
    worker = FakeWorker(endpoint, "c-late-info", "w")
    inc = worker.announce(info(), late=True)
    worker.expect(inc, "joined")
    worker.close()
    host.kill()


def check_bad_info(program):
    """A bad info reply is refused, permanently, with the reason."""
    endpoint = free_endpoint()
    host = Host(program, endpoint, "c-bad-info")
    worker = FakeWorker(endpoint, "c-bad-info", "w")
    for bad, says in [
        (info(max_in_flight=None), "max_in_flight"),
        (info(max_in_flight=0), "max_in_flight"),
        (b"not json", "not JSON"),
        (info(tags=[""]), "tags"),
    ]:
        inc = worker.announce(bad)
        message = refusal(worker, inc, "permanent")
        assert says in message["reason"], message
        worker.drop(inc)
    worker.close()
    host.kill()


def check_wrong_version(program):
    """A version-1 worker (v1 keys, or protocol 1 in its info) is refused
    with a reason that names both versions."""
    endpoint = free_endpoint()
    host = Host(program, endpoint, "c-version")
    worker = FakeWorker(endpoint, "c-version", "w")
    inc = worker.announce(info(protocol=1))
    reason = refusal(worker, inc, "permanent")["reason"]
    assert "protocol 1" in reason and "protocol 2" in reason, reason
    old = FakeWorker(endpoint, "c-version", "old", version=1)
    inc = old.announce({"protocol": 1, "max_in_flight": 1, "lease_ms": 1000})
    message = old.expect(inc, "refused")
    assert "protocol 1" in message["reason"] and "protocol 2" in message["reason"], message
    assert message.get("dead") is False, message
    old.close()
    worker.close()
    host.kill()


def check_lease_out_of_bounds(program):
    """Below the 50 ms floor or above the host's maximum: refused,
    permanently, with a reason that names the bound."""
    endpoint = free_endpoint()
    host = Host(program, endpoint, "c-lease", lease_ms=1000)
    worker = FakeWorker(endpoint, "c-lease", "w")
    inc = worker.announce(info(lease_ms=40))
    assert "floor of 50 ms" in refusal(worker, inc, "permanent")["reason"]
    worker.drop(inc)
    inc = worker.announce(info(lease_ms=5000))
    assert "maximum of 1000 ms" in refusal(worker, inc, "permanent")["reason"]
    worker.close()
    host.kill()


def check_duplicate_id(program):
    """A second incarnation of a live id is refused temporarily, with
    retry_after_ms; once the first leaves, a new incarnation joins."""
    endpoint = free_endpoint()
    host = Host(program, endpoint, "c-dup")
    first = FakeWorker(endpoint, "c-dup", "w")
    one = first.announce(info())
    first.expect(one, "joined")
    second = FakeWorker(endpoint, "c-dup", "w")
    two = second.announce(info())
    message = refusal(second, two, "temporary")
    assert message["retry_after_ms"] > 0 and "duplicate" in message["reason"], message
    first.put(one, {"type": "leave"})
    first.expect(one, "bye")
    second.drop(two)
    three = second.announce(info())
    second.expect(three, "joined")
    first.close()
    second.close()
    host.kill()


def check_extend_without_lease(program):
    """extend to a group without an acknowledgement lease: an error
    message naming the delivery; nothing changes."""
    endpoint = free_endpoint()
    host = Host(program, endpoint, "c-extend", ack_lease_ms=0)
    worker = FakeWorker(endpoint, "c-extend", "w")
    inc = worker.announce(info())
    assert worker.expect(inc, "joined")["ack_lease_ms"] is None
    host.command("dispatch 1")
    delivery = worker.expect(inc, "delivery")
    assert delivery["lease_ms"] is None, delivery
    answer = {"type": "answer", "host": host.incarnation, "delivery_id": delivery["delivery_id"]}
    worker.put(inc, dict(answer, verdict="extend", lease_ms=1000))
    error = worker.expect(inc, "error")
    assert error["delivery_id"] == delivery["delivery_id"] and "lease" in error["reason"], error
    worker.put(inc, dict(answer, verdict="ack"))
    host.expect("completed ")
    worker.close()
    host.kill()


def check_late_answer(program):
    """A delivery not answered within its acknowledgement lease is taken
    back; the incarnation is declared dead (policy crash, refused kind dead,
    unprompted); its late ack is stale; the message completes once."""
    endpoint = free_endpoint()
    host = Host(program, endpoint, "c-late", ack_lease_ms=200)
    worker = FakeWorker(endpoint, "c-late", "w")
    inc = worker.announce(info())
    worker.expect(inc, "joined")
    host.command("dispatch 1")
    delivery = worker.expect(inc, "delivery")
    refusal(worker, inc, "dead")
    worker.put(inc, {"type": "answer", "host": host.incarnation,
                     "delivery_id": delivery["delivery_id"], "verdict": "ack"})
    deadline = time.monotonic() + WAIT
    while host.stale(forbid="completed") != 1:
        assert time.monotonic() < deadline, "the late answer was not counted stale"
    worker.drop(inc)
    fresh = worker.announce(info())
    worker.expect(fresh, "joined")
    again = worker.expect(fresh, "delivery")
    assert again["message_id"] == delivery["message_id"] and again["redelivered"], again
    worker.put(fresh, {"type": "answer", "host": host.incarnation,
                       "delivery_id": again["delivery_id"], "verdict": "ack"})
    host.expect("completed ")
    worker.close()
    host.kill()


def check_host_restart(program):
    """A host killed and restarted on the same endpoint is a new host
    incarnation: a worker incarnation that served the old one is refused
    (dead); answers naming the old host are stale even when their delivery
    ids collide with the new host's; the new messages complete once."""
    endpoint = free_endpoint()
    host = Host(program, endpoint, "c-restart")
    worker = FakeWorker(endpoint, "c-restart", "w")
    inc = worker.announce(info())
    old_host = worker.expect(inc, "joined")["host"]
    host.command("dispatch 2")
    old = [worker.expect(inc, "delivery") for _ in range(2)]
    host.kill()
    host = Host(program, endpoint, "c-restart")
    assert host.incarnation != old_host
    # The worker sees the new host's token.
    deadline = time.monotonic() + WAIT
    while worker.hosts.get(timeout=WAIT) != ("SampleKind.PUT", host.incarnation):
        assert time.monotonic() < deadline
    # An incarnation that served the old host is refused as dead, when its
    # info says so (after the old token is gone or not).
    stale_inc = worker.announce(info(host=old_host))
    refusal(worker, stale_inc, "dead")
    worker.drop(stale_inc)
    worker.drop(inc)
    fresh = worker.announce(info())
    assert worker.expect(fresh, "joined")["host"] == host.incarnation
    host.command("dispatch 2")
    new = [worker.expect(fresh, "delivery") for _ in range(2)]
    # The new host starts its delivery ids over, so these usually collide
    # with the old ones (not always: on a busy machine an attempt may be
    # counted in between). Either way, an answer naming the old host is stale.
    for d in old:
        worker.put(fresh, {"type": "answer", "host": old_host,
                           "delivery_id": d["delivery_id"], "verdict": "ack"})
    # An answer naming no host is stale too.
    worker.put(fresh, {"type": "answer", "delivery_id": new[0]["delivery_id"], "verdict": "ack"})
    deadline = time.monotonic() + WAIT
    while host.stale(forbid="completed") != 3:
        assert time.monotonic() < deadline, "old answers were not counted stale"
    for d in new:
        worker.put(fresh, {"type": "answer", "host": host.incarnation,
                           "delivery_id": d["delivery_id"], "verdict": "ack"})
    done = {host.expect("completed ").split()[0] for _ in range(2)}
    assert done == {str(d["dispatch_id"]) for d in new}, done
    assert host.stale() == 3
    worker.close()
    host.kill()


CHECKS = [name[len("check_"):] for name in dir() if name.startswith("check_")]


def main():
    program = sys.argv[1]
    chosen = sys.argv[2:] or CHECKS
    for name in chosen:
        try:
            globals()["check_" + name](program)
        except BaseException:  # noqa: BLE001
            # Report and leave at once: Zenoh's threads and the beat
            # threads would otherwise keep the interpreter from exiting.
            print(f"FAILED {name}", flush=True)
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)
        print(f"ok {name}", flush=True)
    print(f"conformance: {len(chosen)} checks passed", flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
