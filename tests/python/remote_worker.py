#!/usr/bin/env python3
"""A liminal remote worker written with the eclipse-zenoh package alone,
from docs/PROTOCOL.md (protocol version 2; no liminal code, no ctypes).

    remote_worker.py ENDPOINT GROUP ID MODE [LEASE_MS]

Environment: LIMINAL_WORKER_TLS="<ca pem>;<certificate pem>;<key pem>" for
mutual TLS (with a tls/ endpoint), LIMINAL_WORKER_CREDENTIALS="<user>:<password>"
for user/password authentication.

MODE: ``ack`` sends ``started`` then answers ack to every delivery (crash to
one whose field ``poison`` is true; and exits the process at once, as a
segfault would, on one whose field ``exit`` is true); ``hold`` (or
``defer``) answers nothing. Prints one line per event on stdout:
``joined <incarnation> <host incarnation>``, ``got <dispatch_id> <fields as
JSON> <payload as hex>``, ``held <dispatch_id> <message_id> <key or ->``, ``crashed
<dispatch_id>``, ``refused <kind> <reason>``, ``host-lost <reason>``,
``left``. Reads commands on stdin: ``ack-all`` acknowledges every held
delivery; ``ack-stale`` sends, on purpose, an ack for every delivery it
dropped when its host was lost, naming that lost host, on the *current*
incarnation's key (what a careless worker would do; the host must count
each as stale) and says ``sent-stale <count>``; end of input leaves
gracefully.
"""

import base64
import json
import os
import secrets
import sys
import threading
import time

import zenoh


def say(line):
    print(line, flush=True)


class Worker:
    def __init__(self, endpoint, group, consumer_id, mode, lease_ms):
        self.prefix = f"liminal/v2/{group}"
        self.id = consumer_id
        self.mode = mode
        self.lease_ms = lease_ms
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.held = []  # (incarnation, host, delivery_id)
        self.stale = []  # (host, delivery_id): dropped when their host was lost
        self.status = "joining"
        self.declared = []
        # Held by a reincarnation and by leaving: a leaving worker does not
        # come back, and leaves the incarnation that was last announced.
        self.life = threading.Lock()
        self.incarnation = None
        self.host = None  # the host incarnation that joined the current one
        self.host_closed = False
        config = zenoh.Config()
        # Client mode, no scouting, no listening: the worker only connects
        # to the host's endpoint (PROTOCOL.md, Opening the session).
        config.insert_json5("mode", '"client"')
        config.insert_json5("scouting/multicast/enabled", "false")
        config.insert_json5("scouting/gossip/enabled", "false")
        config.insert_json5("connect/endpoints", json.dumps([endpoint]))
        # Mutual TLS (a tls/ endpoint) and user/password: PROTOCOL.md, Security.
        tls = os.environ.get("LIMINAL_WORKER_TLS")
        if tls:
            ca, certificate, key = tls.split(";")
            config.insert_json5("transport/link/tls/root_ca_certificate", json.dumps(ca))
            config.insert_json5("transport/link/tls/connect_certificate", json.dumps(certificate))
            config.insert_json5("transport/link/tls/connect_private_key", json.dumps(key))
            config.insert_json5("transport/link/tls/enable_mtls", "true")
        credentials = os.environ.get("LIMINAL_WORKER_CREDENTIALS")
        if credentials:
            user, password = credentials.split(":", 1)
            config.insert_json5("transport/auth/usrpwd/user", json.dumps(user))
            config.insert_json5("transport/auth/usrpwd/password", json.dumps(password))
        config.insert_json5("transport/link/tx/lease", str(lease_ms))
        config.insert_json5("transport/link/tx/keep_alive", "4")
        # Reconnect every quarter lease (a restarted host): PROTOCOL.md.
        retry = max(10, lease_ms // 4)
        config.insert_json5("connect/retry", json.dumps(
            {"period_init_ms": retry, "period_max_ms": retry, "period_increase_factor": 1.0}))
        self.session = zenoh.open(config)
        # Watch the host's token: a new host incarnation, or the loss of
        # the one served, ends the current incarnation.
        self.watcher = self.session.liveliness().declare_subscriber(
            f"{self.prefix}/host/*", self.on_host_token, history=True
        )
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
        incarnation = secrets.token_hex(16)
        subscriber = self.session.declare_subscriber(
            self.key("to", incarnation), lambda sample: self.on_message(incarnation, sample)
        )
        queryable = self.session.declare_queryable(
            self.key("info", incarnation), lambda query: self.on_info(incarnation, query)
        )
        with self.lock:
            self.incarnation = incarnation
            self.host = None
            self.host_closed = False
            self.status = "joining"
        token = self.session.liveliness().declare_token(self.key("alive", incarnation))
        self.declared = [subscriber, queryable, token]

    def on_info(self, incarnation, query):
        with self.lock:
            host = self.host if incarnation == self.incarnation else None
        info = {
            "protocol": 2,
            "max_in_flight": 1000,
            "tags": ["python"],
            "lease_ms": self.lease_ms,
            "host": host,
        }
        query.reply(query.key_expr, json.dumps(info))

    def beat(self):
        while True:
            with self.lock:
                if self.status in ("left", "closed"):
                    return
                incarnation = self.incarnation
            self.put(incarnation, {"type": "beat"})
            with self.lock:
                self.changed.wait(self.lease_ms / 4000.0)

    def on_host_token(self, sample):
        host = str(sample.key_expr).rsplit("/", 1)[-1]
        with self.lock:
            served, incarnation, closed = self.host, self.incarnation, self.host_closed
        if served is None:
            return
        if sample.kind == zenoh.SampleKind.PUT and host != served and closed:
            threading.Thread(target=self.reincarnate, args=(incarnation,), daemon=True).start()
            return
        if sample.kind == zenoh.SampleKind.PUT and host != served:
            reason = f"host incarnation {host} replaced {served}"
        elif sample.kind == zenoh.SampleKind.DELETE and host == served and not closed:
            reason = f"host incarnation {served} was lost"
        else:
            return
        self.lose_host(incarnation, reason)
        threading.Thread(target=self.reincarnate, args=(incarnation,), daemon=True).start()

    def lose_host(self, incarnation, reason):
        """Drop what the lost host's incarnation held: answers to it are stale."""
        with self.lock:
            if self.incarnation != incarnation:
                return
            kept = []
            for entry in self.held:
                if entry[0] == incarnation:
                    self.stale.append((entry[1], entry[2]))
                else:
                    kept.append(entry)
            self.held = kept
        say(f"host-lost {reason}")

    def on_message(self, incarnation, sample):
        message = json.loads(sample.payload.to_bytes())
        kind = message.get("type")
        with self.lock:
            if incarnation != self.incarnation:
                return
            if self.host is not None and message.get("host") != self.host:
                return  # from another host incarnation: stale
        if kind == "joined":
            with self.lock:
                if self.status == "leaving":
                    return
                self.host = message["host"]
                self.status = "joined"
                self.changed.notify_all()
            say(f"joined {incarnation} {message['host']}")
        elif kind == "bye":
            with self.lock:
                self.host_closed = True
                # Answering our leave, or the host closing the group (a new
                # host incarnation, when one appears, is joined anew).
                self.status = "left" if self.status == "leaving" else "host-closed"
                self.changed.notify_all()
        elif kind == "refused":
            refusal = message.get("kind")
            say(f"refused {refusal} {message.get('reason')}")
            if refusal == "dead":
                # Declared dead: never come back as this incarnation.
                threading.Thread(target=self.reincarnate, args=(incarnation,), daemon=True).start()
            elif refusal == "temporary":
                delay = message.get("retry_after_ms", 0) / 1000.0
                timer = threading.Timer(delay, self.reincarnate, args=(incarnation,))
                timer.daemon = True
                timer.start()
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
        host = delivery["host"]
        fields = {f["name"]: [f["type"], f["value"]] for f in delivery["fields"]}
        payload = delivery.get("payload")
        raw = base64.b64decode(payload) if payload is not None else b""
        answer = {"type": "answer", "host": host, "delivery_id": delivery["delivery_id"]}
        if self.mode == "hold":
            with self.lock:
                self.held.append((incarnation, host, delivery["delivery_id"]))
            say(f"held {dispatch_id} {delivery['message_id']} {delivery.get('key') or '-'}")
            return
        # Work begins: dying from now on counts against the message.
        self.put(
            incarnation,
            {"type": "started", "host": host, "delivery_id": delivery["delivery_id"]},
        )
        if fields.get("exit", [None, False])[1] is True:
            # Some work, then a hard death. (A put leaves asynchronously: a
            # process that dies microseconds after it may take it along.)
            time.sleep(0.05)
            os._exit(1)
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
        for incarnation, host, delivery_id in held:
            self.put(
                incarnation,
                {"type": "answer", "host": host, "delivery_id": delivery_id, "verdict": "ack"},
            )
        say(f"acked {len(held)}")

    def ack_stale(self):
        with self.lock:
            stale, self.stale = self.stale, []
            incarnation = self.incarnation
        for host, delivery_id in stale:
            self.put(
                incarnation,
                {"type": "answer", "host": host, "delivery_id": delivery_id, "verdict": "ack"},
            )
        say(f"sent-stale {len(stale)}")

    def leave(self):
        with self.life:
            with self.lock:
                incarnation = self.incarnation
                self.status = "leaving"
        self.put(incarnation, {"type": "leave"})
        # Wait for the bye before the token goes (PROTOCOL.md, Leaving).
        with self.lock:
            self.changed.wait_for(lambda: self.status == "left", self.lease_ms / 1000.0)
            self.status = "closed"
            self.changed.notify_all()
        for entity in self.declared:
            entity.undeclare()
        self.watcher.undeclare()
        self.session.close()
        say("left")


def main():
    endpoint, group, consumer_id, mode = sys.argv[1:5]
    mode = "hold" if mode == "defer" else mode
    lease_ms = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
    worker = Worker(endpoint, group, consumer_id, mode, lease_ms)
    for line in sys.stdin:
        command = line.strip()
        if command == "ack-all":
            worker.ack_all()
        elif command == "ack-stale":
            worker.ack_stale()
    worker.leave()


if __name__ == "__main__":
    main()
