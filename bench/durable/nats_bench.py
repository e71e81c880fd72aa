#!/usr/bin/env python3
"""NATS JetStream peer for liminal's durable-group benchmark, driven by nats-py.

  nats_bench.py latency   --storage file|memory [-n 2000]
  nats_bench.py pipelined --storage file|memory [-n 200000]
  nats_bench.py backlog   --storage file|memory [-n 200000]

Every run deletes and recreates a stream (work-queue retention) and one
durable pull consumer with explicit acks (max_ack_pending 1024). Four pull
subscribers bind to that durable, each fetching up to 256 at a time (the
analogue of prefetch 256) and acking every message with msg.ack().
"file" storage is the durable case; "memory" storage shows the client's own
cost. The publisher's "confirm" is JetStream's PubAck.

Every phase prints one JSON line with its wall-clock window (t0, t1, epoch
seconds) so fsyncs traced in the server can be attributed to it.
"""

import argparse
import asyncio
import json
import multiprocessing as mp
import sys
import time

import nats
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig

PAYLOAD = b"x" * 200
STREAM = "LIMINALBENCH"
SUBJECT = "liminal.bench"
DURABLE = "workers"
PREFETCH = 256
CONSUMERS = 4


TAG = ""


def emit(record):
    record["tag"] = TAG
    print(json.dumps(record), flush=True)


def pct(samples, p):
    s = sorted(samples)
    return s[round((len(s) - 1) * p)]


async def connect(args, window=1024):
    nc = await nats.connect(args.url)
    return nc, nc.jetstream(publish_async_max_pending=window)


async def declare(args):
    nc, js = await connect(args)
    try:
        await js.delete_stream(STREAM)
    except Exception:
        pass
    await js.add_stream(StreamConfig(
        name=STREAM, subjects=[SUBJECT], retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE if args.storage == "file" else StorageType.MEMORY))
    await js.add_consumer(STREAM, ConsumerConfig(
        durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT,
        max_ack_pending=PREFETCH * CONSUMERS))
    await nc.close()


async def left(args):
    nc, js = await connect(args)
    info = await js.stream_info(STREAM)
    await nc.close()
    return info.state.messages


async def pull_loop(js, stop, on_message):
    sub = await js.pull_subscribe(SUBJECT, durable=DURABLE, stream=STREAM)
    while not stop.is_set():
        try:
            msgs = await sub.fetch(PREFETCH, timeout=0.5)
        except (asyncio.TimeoutError, nats.errors.TimeoutError):
            continue
        for msg in msgs:
            await msg.ack()
            on_message(msg)


# --- (a) one message at a time -------------------------------------------


async def latency(args):
    await declare(args)
    nc, js = await connect(args)
    cnc, cjs = await connect(args)
    acked = asyncio.Event()
    ack_times = {}
    stop = asyncio.Event()

    def on_message(msg):
        ack_times[int(msg.data[:12])] = time.perf_counter()
        acked.set()

    consumer = asyncio.create_task(pull_loop(cjs, stop, on_message))
    await asyncio.sleep(0.3)
    confirm, to_ack = [], []
    t0 = time.time()
    for i in range(args.n):
        body = b"%012d" % i + PAYLOAD[12:]
        acked.clear()
        started = time.perf_counter()
        await js.publish(SUBJECT, body)
        confirmed = time.perf_counter()
        await asyncio.wait_for(acked.wait(), 10)
        confirm.append(confirmed - started)
        to_ack.append(ack_times[i] - started)
    t1 = time.time()
    stop.set()
    await consumer
    await cnc.close()
    await nc.close()
    us = lambda s: round(s * 1e6)
    emit({
        "broker": "nats", "storage": args.storage, "phase": "latency", "n": args.n,
        "confirm_p50_us": us(pct(confirm, 0.5)), "confirm_p99_us": us(pct(confirm, 0.99)),
        "ack_p50_us": us(pct(to_ack, 0.5)), "ack_p99_us": us(pct(to_ack, 0.99)),
        "t0": t0, "t1": t1,
    })


# --- pipelined publisher and the consumer process ----------------------------


async def publish_pipelined(args, n):
    """n messages, at most args.window PubAcks outstanding."""
    nc, js = await connect(args, args.window)
    futures = []
    for _ in range(n):
        futures.append(await js.publish_async(SUBJECT, PAYLOAD))
    await js.publish_async_completed()
    errors = sum(1 for f in futures if f.exception() is not None)
    await nc.close()
    return errors


def consumer_process(args, target, ready, go, done):
    async def run():
        nc, js = await connect(args)
        stop = asyncio.Event()
        count = [0]

        def on_message(_msg):
            count[0] += 1
            if count[0] == target:
                done.put(time.perf_counter())
                stop.set()

        ready.set()
        while not go.is_set():
            await asyncio.sleep(0.001)
        await asyncio.gather(*(pull_loop(js, stop, on_message) for _ in range(CONSUMERS)))
        await nc.close()

    asyncio.run(run())


def start_consumers(args, target):
    ctx = mp.get_context("fork")
    ready, go, done = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=consumer_process, args=(args, target, ready, go, done))
    proc.start()
    if not ready.wait(30):
        sys.exit("consumers did not start")
    return proc, go, done


def pipelined(args):
    asyncio.run(declare(args))
    proc, go, done = start_consumers(args, args.n)
    go.set()
    time.sleep(0.3)  # let the pull requests land
    t0, started = time.time(), time.perf_counter()
    errors = asyncio.run(publish_pipelined(args, args.n))
    confirmed = time.perf_counter()
    finished = done.get(timeout=600)
    t1 = time.time()
    proc.join(10)
    emit({
        "broker": "nats", "storage": args.storage, "phase": "pipelined", "n": args.n,
        "window": args.window, "errors": errors,
        "msg_per_s": round(args.n / (finished - started)),
        "confirm_msg_per_s": round(args.n / (confirmed - started)),
        "left": asyncio.run(left(args)), "t0": t0, "t1": t1,
    })


def backlog(args):
    asyncio.run(declare(args))
    t0, started = time.time(), time.perf_counter()
    errors = asyncio.run(publish_pipelined(args, args.n))
    published = time.perf_counter()
    t_pub = time.time()
    proc, go, done = start_consumers(args, args.n)
    t_drain, drain_started = time.time(), time.perf_counter()
    go.set()
    finished = done.get(timeout=600)
    t1 = time.time()
    proc.join(10)
    emit({
        "broker": "nats", "storage": args.storage, "phase": "backlog", "n": args.n,
        "errors": errors,
        "publish_msg_per_s": round(args.n / (published - started)),
        "drain_msg_per_s": round(args.n / (finished - drain_started)),
        "left": asyncio.run(left(args)), "t0": t0, "t_pub": t_pub, "t_drain": t_drain, "t1": t1,
    })


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["latency", "pipelined", "backlog"])
    ap.add_argument("--storage", choices=["file", "memory"], default="file")
    ap.add_argument("-n", type=int, default=None)
    ap.add_argument("--window", type=int, default=1024)
    ap.add_argument("--url", default="nats://127.0.0.1:4222")
    ap.add_argument("--tag", default="", help="copied into the output record")
    args = ap.parse_args()
    global TAG
    TAG = args.tag
    if args.n is None:
        args.n = 2000 if args.phase == "latency" else 200_000
    if args.phase == "latency":
        asyncio.run(latency(args))
    else:
        {"pipelined": pipelined, "backlog": backlog}[args.phase](args)


if __name__ == "__main__":
    main()
