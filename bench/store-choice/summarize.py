#!/usr/bin/env python3
"""Median and spread (min-max) of every RESULT field over the rounds of a
run.sh log, per engine and test; liminal's durable_bench lines likewise.
   summarize.py LOG [--quiet-only]"""
import re, statistics, sys
from collections import defaultdict

quiet_only = "--quiet-only" in sys.argv
vals = defaultdict(list)
for line in open(sys.argv[1]):
    m = re.match(r"RESULT round=(\d+) engine=(\S+) (.*?)test=(\S+) (.*)", line)
    if m:
        _, engine, tags, test, rest = m.groups()
        if quiet_only and "gate=busy" in tags:
            continue
        for k, v in re.findall(r"(\w+)=([\d.]+)", rest):
            vals[(engine, test, k)].append(float(v))
        continue
    m = re.match(r"LIMINAL round=(\d+): (.*)", line)
    if m:
        text = m.group(2)
        label = text.split(":")[0].strip()
        if label.startswith("fsyncs"):
            label = "D1 fsyncs (mean, max)"
        nums = re.findall(r"([\d.]+) (us|msg/s|s \(|MB|fsyncs|per million)", text)
        for i, (v, unit) in enumerate(nums):
            vals[("liminal", label, f"{i}:{unit.strip(' (')}")].append(float(v))
for key in sorted(vals):
    xs = vals[key]
    print(f"{key[0]:8} {key[1][:58]:58} {key[2]:24} median {statistics.median(xs):11.3f} min {min(xs):11.3f} max {max(xs):11.3f} n={len(xs)}")
