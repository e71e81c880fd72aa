"""Statistics: metrics as a dict, the JSON statistics as a dict, the
Prometheus text, and the periodic statistics callback."""

from __future__ import annotations

import queue
import re

import liminal
from liminal import _ffi
from conftest import WAIT, Recorder, wait_for


def test_metrics_count_what_happened(runtime):
    with runtime.group() as group:
        crashing = Recorder(liminal.Verdict.CRASH)
        crashing.register(group, "a")
        group.consumer("b", Recorder())
        for n in range(4):
            group.dispatch({"n": n})
        wait_for(crashing.crashed)
    metrics = runtime.metrics()
    assert set(metrics) == set(_ffi.METRIC_NAMES)
    assert (metrics["dispatched"], metrics["delivered"], metrics["rerouted"], metrics["consumer_crashes"]) == (
        4, 4, 1, 1)
    assert (metrics["in_flight"], metrics["waiting"], metrics["dead_lettered"]) == (0, 0, 0)


def test_statistics_as_a_dict(runtime):
    with runtime.group(name="py-stats") as group:
        group.consumer("only", Recorder())
        group.dispatch({"n": 1})
        stats = runtime.stats()
    assert stats["messaging.system"] == "liminal"
    assert stats["messaging.client.sent.messages"] == 1
    groups = stats["groups"]
    assert [g["messaging.consumer.group.name"] for g in groups] == ["py-stats"]
    assert isinstance(groups[0], dict)


def test_statistics_as_prometheus_text(runtime):
    with runtime.group(name="py-prom") as group:
        group.consumer("only", Recorder())
        group.dispatch({"n": 1})
        text = runtime.stats_prometheus()
    samples = re.findall(r"(?m)^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", text)
    assert samples
    for _, _, value in samples:
        float(value)
    assert '"py-prom"' in text


def test_periodic_statistics_reach_a_python_callback(runtime):
    reports: "queue.Queue[dict]" = queue.Queue()
    with runtime.group(name="periodic") as group:
        group.consumer("only", Recorder())
        group.dispatch({"n": 1})
        runtime.on_stats(reports.put, interval=0.01)
        report = reports.get(timeout=WAIT)
        assert report["messaging.system"] == "liminal"
        assert report["messaging.client.sent.messages"] == 1
        assert [g["messaging.consumer.group.name"] for g in report["groups"]] == ["periodic"]
        runtime.on_stats(None)  # stops them (the fixture checks the callback was released)


def test_an_exception_in_a_stats_callback_is_logged_not_raised_into_the_library(runtime, caplog):
    calls: "queue.Queue[int]" = queue.Queue()

    def broken(stats):
        calls.put(1)
        raise RuntimeError("broken stats consumer")

    runtime.on_stats(broken, interval=0.01)
    calls.get(timeout=WAIT)
    calls.get(timeout=WAIT)  # called again: the first exception did no harm
    runtime.on_stats(None)
    assert any("stats callback" in r.getMessage() for r in caplog.records)
