#!/usr/bin/env python3
"""Turns one bench/durable/run.sh output directory into the markdown table.

  report.py bench/durable/results/latest

Reads ours-<round>.txt (examples/durable_bench), peers.jsonl (the peers'
records, tagged round<k> or strace) and rabbitmq.strace / nats.strace (the
traced round: every fsync-family call with its epoch timestamp), and prints
median [min-max] over the rounds, with fsyncs per million messages from the
traced round.
"""

import bisect
import glob
import json
import os
import re
import statistics
import sys

SYNC = re.compile(r"^\d+\s+([\d.]+)\s+(fsync|fdatasync|sync_file_range|syncfs)\(")


def ours(out):
    runs = []
    for path in sorted(glob.glob(os.path.join(out, "ours-*.txt"))):
        text = open(path).read()
        r = {}
        m = re.search(r"fsync floor.*?p50 (\d+) us, p99 (\d+) us", text)
        if m:
            r["floor"] = (int(m[1]), int(m[2]))
        m = re.search(r"^D1 .*?p50 (\d+) us, p99 (\d+) us", text, re.M)
        if m:
            r["d1"] = (int(m[1]), int(m[2]))
        m = re.search(r"fsyncs (\d+) \(mean \d+ us, max \d+ us\) for (\d+) messages", text)
        if m:
            r["d1_fsync_per_m"] = int(m[1]) * 1e6 / int(m[2])
        for line in text.splitlines():
            m = re.match(r"D2 (.*?): (\d+) msg/s .*?\((\d+) per million", line)
            if m:
                r["d2:" + m[1]] = (int(m[2]), int(m[3]))
        m = re.search(r"D3 recovery: (\d+) pending back in ([\d.]+) s", text)
        if m:
            r["d3"] = (int(m[1]), float(m[2]))
        runs.append(r)
    return runs


def syncs(path):
    if not os.path.exists(path):
        return None
    stamps = []
    for line in open(path, errors="replace"):
        m = SYNC.match(line)
        if m:
            stamps.append(float(m[1]))
    stamps.sort()
    return stamps


def count(stamps, t0, t1):
    return bisect.bisect_right(stamps, t1) - bisect.bisect_left(stamps, t0)


def fmt(values, unit="", scale=1.0):
    values = [v * scale for v in values if v is not None]
    if not values:
        return "—"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:,.0f}{unit}"
    return f"{med:,.0f}{unit} [{min(values):,.0f}–{max(values):,.0f}]"


def fmt_s(values):
    if not values:
        return "—"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.2f} s"
    return f"{med:.2f} s [{min(values):.2f}–{max(values):.2f}]"


def main():
    out = sys.argv[1]
    records = [json.loads(l) for l in open(os.path.join(out, "peers.jsonl")) if l.strip()]
    rounds = [r for r in records if r["tag"].startswith("round")]
    traced = [r for r in records if r["tag"] == "strace"]
    stamps = {"rabbitmq": syncs(os.path.join(out, "rabbitmq.strace")),
              "nats": syncs(os.path.join(out, "nats.strace"))}

    def key(r):
        return (r["broker"], r.get("queue") or r.get("storage"), r["phase"])

    def pick(broker, kind, phase, field, src=None):
        return [r[field] for r in (src or rounds) if key(r) == (broker, kind, phase) and field in r]

    def per_m(broker, kind, phase, start="t0", end="t1"):
        for r in traced:
            if key(r) == (broker, kind, phase) and stamps[broker] is not None:
                return f"{count(stamps[broker], r[start], r[end]) * 1e6 / r['n']:,.0f}"
        return "—"

    policy = {
        ("rabbitmq", "classic"): "classic v2 durable queue, persistent msgs (see fsync counts)",
        ("rabbitmq", "classic-v1"): "classic v1 durable queue, persistent msgs (see fsync counts)",
        ("rabbitmq", "quorum"): "quorum queue (1 node): confirm after the Raft WAL's batched fdatasync",
        ("rabbitmq", "transient"): "non-durable queue, transient msgs: no fsync",
        ("nats", "file"): "file store, 2.9.10 default: write to the OS per message, fsync every 60 s",
        ("nats", "memory"): "memory store: no disk",
    }
    name = {"rabbitmq": "RabbitMQ 3.10.8", "nats": "NATS JetStream 2.9.10"}

    o = ours(out)
    n_rounds = len(o)
    rows = []
    if o:
        floor = fmt([r["floor"][0] for r in o if "floor" in r], " us")
        rows.append(("disk", "fsync floor p50 (256 B write + fdatasync)", "—", floor, "—"))
        rows.append(("(a) 1 in flight", "liminal D1: dispatch returns when durable; p50 / p99",
                     "fsync every commit",
                     fmt([r["d1"][0] for r in o], " us") + " / " + fmt([r["d1"][1] for r in o], " us"),
                     fmt([r.get("d1_fsync_per_m") for r in o])))
    for broker, kind in [("rabbitmq", "classic"), ("rabbitmq", "classic-v1"), ("rabbitmq", "quorum"), ("nats", "file")]:
        if pick(broker, kind, "latency", "confirm_p50_us"):
            rows.append(("(a) 1 in flight",
                         f"{name[broker]} {kind}: publish→confirm p50 / p99",
                         policy[(broker, kind)],
                         fmt(pick(broker, kind, "latency", "confirm_p50_us"), " us") + " / "
                         + fmt(pick(broker, kind, "latency", "confirm_p99_us"), " us"),
                         per_m(broker, kind, "latency")))
            rows.append(("(a) 1 in flight",
                         f"{name[broker]} {kind}: publish→consumer ack p50 / p99",
                         policy[(broker, kind)],
                         fmt(pick(broker, kind, "latency", "ack_p50_us"), " us") + " / "
                         + fmt(pick(broker, kind, "latency", "ack_p99_us"), " us"),
                         "(same run)"))
    if o:
        for label, text in [
            ("fsync every commit, 64 dispatching threads", "liminal D2, 64 threads dispatching"),
            ("one thread, batches of 256, 1024 in flight, fsync every commit",
             "liminal D2, 1 thread, batches of 256, 1,024 in flight"),
        ]:
            vals = [r["d2:" + label] for r in o if "d2:" + label in r]
            rows.append(("(b) with 4 consumers", text + " (until all acked)", "fsync every commit",
                         fmt([v[0] for v in vals], " msg/s"), fmt([v[1] for v in vals])))
    for broker, kind in [("rabbitmq", "classic"), ("rabbitmq", "classic-v1"), ("rabbitmq", "quorum"), ("nats", "file")]:
        if pick(broker, kind, "pipelined", "msg_per_s"):
            rows.append(("(b) with 4 consumers",
                         f"{name[broker]} {kind}: ≤1,024 unconfirmed, until all acked",
                         policy[(broker, kind)],
                         fmt(pick(broker, kind, "pipelined", "msg_per_s"), " msg/s"),
                         per_m(broker, kind, "pipelined")))
    for broker, kind in [("rabbitmq", "classic"), ("rabbitmq", "quorum"), ("nats", "file")]:
        if pick(broker, kind, "backlog", "publish_msg_per_s"):
            rows.append(("(c) backlog",
                         f"{name[broker]} {kind}: publish with no consumer (confirmed)",
                         policy[(broker, kind)],
                         fmt(pick(broker, kind, "backlog", "publish_msg_per_s"), " msg/s"),
                         per_m(broker, kind, "backlog", "t0", "t_pub")))
            rows.append(("(c) backlog",
                         f"{name[broker]} {kind}: then 4 consumers drain it",
                         policy[(broker, kind)],
                         fmt(pick(broker, kind, "backlog", "drain_msg_per_s"), " msg/s"),
                         per_m(broker, kind, "backlog", "t_drain", "t1")))
    if o:
        vals = [r["d3"] for r in o if "d3" in r]
        rows.append(("(c) backlog", "liminal D3: reopen a store with 1M pending (recovery, not a drain)",
                     "written with fsync every 100 ms",
                     fmt_s([v[1] for v in vals]), "—"))
        label = "fsync every 100 ms, 64 dispatching threads"
        vals = [r["d2:" + label] for r in o if "d2:" + label in r]
        rows.append(("(d) store's share", "liminal D2, 64 threads, fsync every 100 ms",
                     "fsync every 100 ms", fmt([v[0] for v in vals], " msg/s"),
                     fmt([v[1] for v in vals])))
    for broker, kind in [("rabbitmq", "transient"), ("nats", "memory")]:
        if pick(broker, kind, "pipelined", "msg_per_s"):
            rows.append(("(d) store's share",
                         f"{name[broker]} {kind}: (b) without the store",
                         policy[(broker, kind)],
                         fmt(pick(broker, kind, "pipelined", "msg_per_s"), " msg/s"),
                         per_m(broker, kind, "pipelined")))

    print(f"{n_rounds} rounds; median [min–max]; fsyncs per million messages from the traced round "
          "(peers) or the store's own counters (liminal).\n")
    print("| Shape | System, measurement | fsync policy | Result | fsyncs / 1M msgs |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")

    if traced:
        print("\nThroughput in the traced round (strace -f --seccomp-bpf, fsync family only), "
              "to show what tracing cost:\n")
        for r in traced:
            if r["phase"] == "pipelined":
                print(f"- {name[r['broker']]} {r.get('queue') or r.get('storage')} (b): {r['msg_per_s']:,} msg/s")
            elif r["phase"] == "latency":
                print(f"- {name[r['broker']]} {r.get('queue') or r.get('storage')} (a): "
                      f"confirm p50 {r['confirm_p50_us']} us, p99 {r['confirm_p99_us']} us")
            elif r["phase"] == "backlog":
                print(f"- {name[r['broker']]} {r.get('queue') or r.get('storage')} (c): publish "
                      f"{r['publish_msg_per_s']:,} msg/s, drain {r['drain_msg_per_s']:,} msg/s")
        for broker, st in stamps.items():
            if st is not None:
                print(f"- {name[broker]}: {len(st)} fsync-family calls in the whole traced session")
    lefts = [r for r in records if r.get("left")]
    errs = [r for r in records if r.get("nacked") or r.get("errors")]
    if lefts or errs:
        print("\nWARNING: runs with messages left or nacked:", lefts + errs)


if __name__ == "__main__":
    main()
