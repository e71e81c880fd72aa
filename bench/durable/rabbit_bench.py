#!/usr/bin/env python3
"""RabbitMQ peer for liminal's durable-group benchmark, driven by pika.

  rabbit_bench.py latency   --queue-type classic|quorum|transient [-n 2000]
  rabbit_bench.py pipelined --queue-type ... [-n 200000]
  rabbit_bench.py backlog   --queue-type ... [-n 200000]

Every run deletes and redeclares its queue. Durable queues get persistent
messages (delivery_mode 2); "transient" is a non-durable classic queue with
non-persistent messages (delivery_mode 1), to show the client's own cost.
"classic" is a durable classic queue, version 2 (x-queue-version 2);
"classic-v1" the same with version 1 (3.10's default).
Publisher confirms are always on; consumers use manual acks, prefetch 256.

Every phase prints one JSON line with its wall-clock window (t0, t1, epoch
seconds) so fsyncs traced in the broker can be attributed to it.
"""

import argparse
import collections
import json
import multiprocessing as mp
import statistics
import sys
import threading
import time

import pika

PAYLOAD = b"x" * 200
QUEUE = "liminal-bench"
PREFETCH = 256
CONSUMERS = 4


def params(args):
    return pika.ConnectionParameters(host=args.host, port=args.port, heartbeat=0)


def declare(args):
    conn = pika.BlockingConnection(params(args))
    ch = conn.channel()
    ch.queue_delete(queue=QUEUE)
    if args.queue_type == "quorum":
        ch.queue_declare(queue=QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    elif args.queue_type == "classic":
        ch.queue_declare(queue=QUEUE, durable=True, arguments={"x-queue-version": 2})
    elif args.queue_type == "classic-v1":
        ch.queue_declare(queue=QUEUE, durable=True, arguments={"x-queue-version": 1})
    else:
        ch.queue_declare(queue=QUEUE, durable=False, arguments={"x-queue-version": 2})
    conn.close()


def properties(args):
    return pika.BasicProperties(delivery_mode=1 if args.queue_type == "transient" else 2)


def queue_depth(args):
    conn = pika.BlockingConnection(params(args))
    ch = conn.channel()
    depth = ch.queue_declare(queue=QUEUE, passive=True).method.message_count
    conn.close()
    return depth


TAG = ""


def emit(record):
    record["tag"] = TAG
    print(json.dumps(record), flush=True)


def pct(samples, p):
    s = sorted(samples)
    return s[round((len(s) - 1) * p)]


# --- (a) one message at a time -------------------------------------------


def latency(args):
    declare(args)
    acked = threading.Event()
    ack_times = {}
    ready = threading.Event()
    stop = threading.Event()

    def consume():
        conn = pika.BlockingConnection(params(args))
        ch = conn.channel()
        ch.basic_qos(prefetch_count=PREFETCH)

        def on_message(channel, method, _props, body):
            channel.basic_ack(delivery_tag=method.delivery_tag)
            ack_times[int(body[:12])] = time.perf_counter()
            acked.set()

        ch.basic_consume(queue=QUEUE, on_message_callback=on_message, auto_ack=False)
        ready.set()
        while not stop.is_set():
            conn.process_data_events(time_limit=0.05)
        conn.close()

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    ready.wait(10)

    conn = pika.BlockingConnection(params(args))
    ch = conn.channel()
    ch.confirm_delivery()
    props = properties(args)
    confirm, to_ack = [], []
    t0 = time.time()
    for i in range(args.n):
        body = b"%012d" % i + PAYLOAD[12:]
        acked.clear()
        started = time.perf_counter()
        ch.basic_publish(exchange="", routing_key=QUEUE, body=body, properties=props)
        confirmed = time.perf_counter()
        if not acked.wait(10):
            sys.exit(f"message {i} was never delivered")
        confirm.append(confirmed - started)
        to_ack.append(ack_times[i] - started)
    t1 = time.time()
    stop.set()
    consumer.join(5)
    conn.close()
    us = lambda s: round(s * 1e6)
    emit({
        "broker": "rabbitmq", "queue": args.queue_type, "phase": "latency", "n": args.n,
        "confirm_p50_us": us(pct(confirm, 0.5)), "confirm_p99_us": us(pct(confirm, 0.99)),
        "ack_p50_us": us(pct(to_ack, 0.5)), "ack_p99_us": us(pct(to_ack, 0.99)),
        "t0": t0, "t1": t1,
    })


# --- pipelined publisher and the consumer process ----------------------------


class Publisher:
    """Publishes n messages keeping at most `window` unconfirmed."""

    def __init__(self, args, n, window):
        self.args, self.n, self.window = args, n, window
        self.props = properties(args)
        self.sent = 0
        self.unconfirmed = collections.deque()
        self.confirmed = 0
        self.nacked = 0
        self.conn = pika.SelectConnection(params(args), on_open_callback=self.on_open)

    def run(self):
        self.conn.ioloop.start()

    def on_open(self, conn):
        conn.channel(on_open_callback=self.on_channel)

    def on_channel(self, ch):
        self.ch = ch
        ch.confirm_delivery(ack_nack_callback=self.on_confirm, callback=lambda _f: self.pump())

    def pump(self):
        while self.sent < self.n and len(self.unconfirmed) < self.window:
            self.ch.basic_publish("", QUEUE, PAYLOAD, self.props)
            self.sent += 1
            self.unconfirmed.append(self.sent)

    def on_confirm(self, frame):
        method = frame.method
        if isinstance(method, pika.spec.Basic.Nack):
            self.nacked += 1
        tag = method.delivery_tag
        if method.multiple:
            while self.unconfirmed and self.unconfirmed[0] <= tag:
                self.unconfirmed.popleft()
                self.confirmed += 1
        else:
            self.unconfirmed.remove(tag)
            self.confirmed += 1
        if self.confirmed == self.n:
            self.conn.close()
            self.conn.ioloop.stop()
        else:
            self.pump()


def consumer_process(args, target, ready, go, done):
    """CONSUMERS consumers (one channel each, one connection), manual acks."""
    state = {"acked": 0, "opened": 0, "channels": []}

    def on_message(ch, method, _props, _body):
        ch.basic_ack(delivery_tag=method.delivery_tag)
        state["acked"] += 1
        if state["acked"] == target:
            done.put(time.perf_counter())
            conn.close()

    def start_consuming():
        if not go.is_set():
            conn.ioloop.call_later(0.001, start_consuming)
            return
        for ch in state["channels"]:
            ch.basic_consume(QUEUE, on_message, auto_ack=False)

    def on_qos(_frame):
        state["opened"] += 1
        if state["opened"] == CONSUMERS:
            ready.set()
            start_consuming()

    def on_channel(ch):
        state["channels"].append(ch)
        ch.basic_qos(prefetch_count=PREFETCH, callback=on_qos)

    def on_open(c):
        for _ in range(CONSUMERS):
            c.channel(on_open_callback=on_channel)

    conn = pika.SelectConnection(
        params(args), on_open_callback=on_open,
        on_close_callback=lambda *_: conn.ioloop.stop())
    conn.ioloop.start()


def start_consumers(args, target):
    ctx = mp.get_context("fork")
    ready, go, done = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=consumer_process, args=(args, target, ready, go, done))
    proc.start()
    if not ready.wait(30):
        sys.exit("consumers did not start")
    return proc, go, done


def pipelined(args):
    """(b), or (d) with --queue-type transient: 4 consumers attached."""
    declare(args)
    proc, go, done = start_consumers(args, args.n)
    go.set()
    time.sleep(0.2)  # let basic.consume land
    t0, started = time.time(), time.perf_counter()
    pub = Publisher(args, args.n, args.window)
    pub.run()
    confirmed = time.perf_counter()
    finished = done.get(timeout=600)
    t1 = time.time()
    proc.join(10)
    emit({
        "broker": "rabbitmq", "queue": args.queue_type, "phase": "pipelined", "n": args.n,
        "window": args.window, "nacked": pub.nacked,
        "msg_per_s": round(args.n / (finished - started)),
        "confirm_msg_per_s": round(args.n / (confirmed - started)),
        "left": queue_depth(args), "t0": t0, "t1": t1,
    })


def backlog(args):
    """(c): publish n with no consumer (confirms), then time 4 consumers draining."""
    declare(args)
    t0, started = time.time(), time.perf_counter()
    pub = Publisher(args, args.n, args.window)
    pub.run()
    published = time.perf_counter()
    t_pub = time.time()
    proc, go, done = start_consumers(args, args.n)
    t_drain, drain_started = time.time(), time.perf_counter()
    go.set()
    finished = done.get(timeout=600)
    t1 = time.time()
    proc.join(10)
    emit({
        "broker": "rabbitmq", "queue": args.queue_type, "phase": "backlog", "n": args.n,
        "nacked": pub.nacked,
        "publish_msg_per_s": round(args.n / (published - started)),
        "drain_msg_per_s": round(args.n / (finished - drain_started)),
        "left": queue_depth(args), "t0": t0, "t_pub": t_pub, "t_drain": t_drain, "t1": t1,
    })


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["latency", "pipelined", "backlog"])
    ap.add_argument("--queue-type", choices=["classic", "classic-v1", "quorum", "transient"], default="classic")
    ap.add_argument("-n", type=int, default=None)
    ap.add_argument("--window", type=int, default=1024)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5672)
    ap.add_argument("--tag", default="", help="copied into the output record")
    args = ap.parse_args()
    global TAG
    TAG = args.tag
    if args.n is None:
        args.n = 2000 if args.phase == "latency" else 200_000
    {"latency": latency, "pipelined": pipelined, "backlog": backlog}[args.phase](args)


if __name__ == "__main__":
    main()
