#!/usr/bin/env python3
"""A liminal remote worker written with the eclipse-zenoh package alone,
from docs/PROTOCOL.md (no liminal code, no ctypes).

    remote_worker.py ENDPOINT GROUP ID MODE [LEASE_MS]

MODE: ``ack`` answers ack to every delivery (and ``crash`` to one whose
field ``poison`` is true); ``hold`` (or ``defer``) answers nothing. Prints one line per
event on stdout: ``joined <incarnation>``, ``got <dispatch_id> <fields as
JSON> <payload as hex>``, ``held <dispatch_id>``, ``crashed <dispatch_id>``,
``left``. Reads commands on stdin: ``ack-all`` acknowledges every held
delivery; end of input leaves gracefully.
"""

import base64
import json
import secrets
import sys
import threading

import zenoh


def say(line):
    print(line, flush=True)


class Worker:
    def __init__(self, endpoint, group, consumer_id, mode, lease_ms):
        self.prefix = f"liminal/v1/{group}"
        self.id = consumer_id
        self.mode = mode
        self.lease_ms = lease_ms
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.held = []  # (incarnation, delivery_id)
        self.status = "joining"
        self.declared = []
        # Held by a reincarnation and by leaving: a leaving worker does not
        # come back, and leaves the incarnation that was last announced.
        self.life = threading.Lock()
        self.incarnation = None
        config = zenoh.Config()
        config.insert_json5("mode", '"peer"')
        config.insert_json5("scouting/multicast/enabled", "false")
        config.insert_json5("scouting/gossip/enabled", "false")
        config.insert_json5("connect/endpoints", json.dumps([endpoint]))
        # The lease the host checks against its maximum (PROTOCOL.md, Joining).
        config.insert_json5("transport/link/tx/lease", str(lease_ms))
        config.insert_json5("transport/link/tx/keep_alive", "4")
        self.session = zenoh.open(config)
        self.announce()
        self.beats = threading.Thread(target=self.beat, daemon=True)
        self.beats.start()

    def key(self, kind, incarnation=None):
        return f"{self.prefix}/{kind}/{self.id}/{incarnation or self.incarnation}"

    def put(self, incarnation, message):
        # Congestion control block: the default (drop) loses messages.
        self.session.put(
            self.key("from", incarnation),
            json.dumps(message),
            congestion_control=zenoh.CongestionControl.BLOCK,
        )

    def announce(self):
        """Steps 2-4 of Joining, for a fresh incarnation."""
        incarnation = secrets.token_hex(8)
        info = json.dumps(
            {"protocol": 1, "max_in_flight": 1000, "tags": ["python"], "lease_ms": self.lease_ms}
        )
        subscriber = self.session.declare_subscriber(
            self.key("to", incarnation), lambda sample: self.on_message(incarnation, sample)
        )
        queryable = self.session.declare_queryable(
            self.key("info", incarnation), lambda query: query.reply(query.key_expr, info)
        )
        with self.lock:
            self.incarnation = incarnation
            self.status = "joining"
        token = self.session.liveliness().declare_token(self.key("alive", incarnation))
        self.declared = [subscriber, queryable, token]

    def beat(self):
        while True:
            with self.lock:
                if self.status in ("left", "closed"):
                    return
                incarnation = self.incarnation
            self.put(incarnation, {"type": "beat"})
            with self.lock:
                self.changed.wait(self.lease_ms / 4000.0)

    def on_message(self, incarnation, sample):
        message = json.loads(sample.payload.to_bytes())
        kind = message.get("type")
        if kind == "joined":
            with self.lock:
                if self.status == "leaving":
                    return
                self.status = "joined"
                self.changed.notify_all()
            say(f"joined {incarnation}")
        elif kind == "bye":
            with self.lock:
                self.status = "left"
                self.changed.notify_all()
        elif kind == "refused":
            if message.get("dead"):
                # Declared dead: never come back as this incarnation.
                threading.Thread(target=self.reincarnate, args=(incarnation,), daemon=True).start()
            else:
                say(f"refused {message.get('reason')}")
        elif kind == "delivery":
            self.on_delivery(incarnation, message)

    def reincarnate(self, old):
        with self.life:
            with self.lock:
                if self.incarnation != old or self.status in ("leaving", "left", "closed"):
                    return
            for entity in self.declared:
                entity.undeclare()
            self.announce()

    def on_delivery(self, incarnation, delivery):
        dispatch_id = delivery["dispatch_id"]
        fields = {f["name"]: [f["type"], f["value"]] for f in delivery["fields"]}
        payload = delivery.get("payload")
        raw = base64.b64decode(payload) if payload is not None else b""
        answer = {"type": "answer", "delivery_id": delivery["delivery_id"]}
        if self.mode == "hold":
            with self.lock:
                self.held.append((incarnation, delivery["delivery_id"]))
            say(f"held {dispatch_id}")
            return
        if fields.get("poison", [None, False])[1] is True:
            answer.update(verdict="crash", reason="python worker: poison")
            say(f"crashed {dispatch_id}")
        else:
            answer.update(verdict="ack")
            say(f"got {dispatch_id} {json.dumps(fields, sort_keys=True)} {raw.hex()}")
        self.put(incarnation, answer)

    def ack_all(self):
        with self.lock:
            held, self.held = self.held, []
        for incarnation, delivery_id in held:
            self.put(incarnation, {"type": "answer", "delivery_id": delivery_id, "verdict": "ack"})
        say(f"acked {len(held)}")

    def leave(self):
        with self.life:
            with self.lock:
                incarnation = self.incarnation
                self.status = "leaving"
        self.put(incarnation, {"type": "leave"})
        # Wait for the bye before the token goes (PROTOCOL.md, leaving).
        with self.lock:
            self.changed.wait_for(lambda: self.status == "left", self.lease_ms / 1000.0)
            self.status = "closed"
            self.changed.notify_all()
        for entity in self.declared:
            entity.undeclare()
        self.session.close()
        say("left")


def main():
    endpoint, group, consumer_id, mode = sys.argv[1:5]
    mode = "hold" if mode == "defer" else mode
    lease_ms = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
    worker = Worker(endpoint, group, consumer_id, mode, lease_ms)
    for line in sys.stdin:
        if line.strip() == "ack-all":
            worker.ack_all()
    worker.leave()


if __name__ == "__main__":
    main()
