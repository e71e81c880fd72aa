"""liminal: fault-aware message dispatch, from Python.

A thin, typed layer over the C ABI of libliminal (include/liminal.h) with
ctypes; the wheel carries the library. A runtime holds groups; a group
routes each dispatched message to one of its consumers and re-routes it
when that consumer crashes, releases it, or lets its lease expire::

    import liminal

    def handle(delivery: liminal.Delivery) -> liminal.Verdict:
        print(delivery.message["order"], delivery.payload)
        return liminal.Verdict.ACK

    with liminal.Runtime() as runtime, runtime.group(name="orders") as group:
        group.consumer("a", handle)
        outcome = group.dispatch({"order": 42}, b"payload")
        print(outcome.delivered_to, outcome.attempts)

Handlers run on library threads. A handler that raises is a crash verdict
with the exception's text as its reason: its consumer dies and the message
is re-routed to another consumer, never acknowledged or parked. Durations
are in seconds. Failures raise `LiminalError` (`.status`, `.name`).
"""

from ._core import (Builtin, Consumer, ConsumerInfo, CrashKind, CrashReport, Delivery, DispatchFuture,
                    FieldType, Group, LeasePolicy, LiminalError, Outcome, Overflow, ReceivedMessage,
                    RemoteHost, Routing, Runtime, Status, Verdict, WaitingKey, Worker, has_remote,
                    status_name, version)
from ._ffi import LIBRARY_PATH

__version__ = version()

__all__ = [
    "Builtin", "Consumer", "ConsumerInfo", "CrashKind", "CrashReport", "Delivery", "DispatchFuture",
    "FieldType", "Group", "LeasePolicy", "LiminalError", "Outcome", "Overflow", "ReceivedMessage",
    "RemoteHost", "Routing", "Runtime", "Status", "Verdict", "WaitingKey", "Worker", "has_remote", "status_name",
    "version", "LIBRARY_PATH", "__version__",
]
