#!/usr/bin/env python3
"""Turns the Markdown table examples/churn.rs prints into W10 result rows
(one JSON object per kind). Usage: churn_json.py TABLE --run LABEL --exit-code RC"""
import argparse
import json
import re
import sys

parser = argparse.ArgumentParser()
parser.add_argument("table")
parser.add_argument("--run", required=True)
parser.add_argument("--exit-code", type=int, default=0)
args = parser.parse_args()



def number(text):
    return float(re.sub(r"[^0-9.+-]", "", text))


rows = 0
for line in open(args.table, encoding="utf-8"):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) < 10 or not cells[1].isdigit():
        continue  # header, separator or anything else
    threads = [int(t) for t in cells[8].split("->")]
    processes = [int(p) for p in cells[9].split("->")]
    print(json.dumps({
        "system": "liminal",
        "workload": "w10",
        "run": args.run,
        "kind": cells[0],
        "rounds": int(cells[1]),
        "first_us": number(cells[2]),
        "last_us": number(cells[3]),
        "cost_ratio": number(cells[4].split()[0]),  # "1.2x" or "2.4x (cost over the 2x target)"
        "rss_warm_mib": number(cells[5]),
        "rss_end_mib": number(cells[6]),
        "rss_growth_pct": number(cells[7]),
        "threads_warm": threads[0],
        "threads_end": threads[1],
        "processes_warm": processes[0],
        "processes_end": processes[1],
        "ok": "FAIL" not in line,
        "exit_code": args.exit_code,
    }))
    rows += 1
if rows == 0:
    # No table (the example did not build or run): one row that says so.
    print(json.dumps({"system": "liminal", "workload": "w10", "run": args.run, "kind": "none",
                      "exit_code": args.exit_code, "ok": False, "error": "no table"}))
    sys.exit(0)
