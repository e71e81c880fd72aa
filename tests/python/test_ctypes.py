"""The C ABI from Python through ctypes: consumers written in Python, one of
them crashes (by verdict, by returning no verdict, or by raising), the
message is re-routed; options objects and a deadline; the waiting room and
its overflow policy; deferred deliveries answered later from the test
thread; the acknowledgement lease; release; drain; statistics as JSON and
Prometheus text. Callback objects stay alive until their free_user ran.

Run: python3 tests/python/test_ctypes.py [path/to/libliminal.so]
"""
import ctypes as C
import json
import os
import queue
import re
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_LIB = os.path.join(HERE, "..", "..", "target", "release", "libliminal.so")
if __name__ == "__main__" and len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
    LIB_PATH = sys.argv.pop(1)
else:
    LIB_PATH = os.environ.get("LIMINAL_LIB", DEFAULT_LIB)

lib = C.CDLL(LIB_PATH)

# liminal_status
OK, NULL_ARGUMENT, INVALID_ARGUMENT, EXPIRED = 0, 1, 2, 21
STALE_DELIVERY, BUFFER_TOO_SMALL, QUEUE_FULL, DRAINING = 12, 16, 20, 23
# Verdicts are non-zero: 0, or any value that is not a verdict, is a crash.
# A callback that raises returns an undefined value (it may be a verdict):
# PythonConsumer catches its exceptions and answers VERDICT_CRASH instead.
VERDICT_ACK, VERDICT_CRASH, VERDICT_DEFER, VERDICT_RELEASE = 1, 2, 3, 4
CRASH_VERDICT, CRASH_LEASE_EXPIRED = 1, 6
OVERFLOW_REJECT = 1
BUILTIN_FIRST_WITH_CAPACITY = 0
ROUTE_SELECTED, ROUTE_NONE = 0, 1

FREE_FN = C.CFUNCTYPE(None, C.c_void_p)
DELIVERY_FN = C.CFUNCTYPE(C.c_int32, C.c_void_p, C.c_void_p)
# (user, consumer_id, liminal_crash_kind kind, reason, bool alive)
CRASH_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_char_p, C.c_int, C.c_char_p, C.c_bool)
COMPLETION_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_int, C.c_void_p)


class ConsumerView(C.Structure):
    _fields_ = [("id", C.c_char_p), ("in_flight", C.c_uint32), ("max_in_flight", C.c_uint32),
                ("buffer_depth", C.c_uint32), ("tags", C.POINTER(C.c_char_p)), ("tag_count", C.c_size_t)]


ROUTE_FN = C.CFUNCTYPE(C.c_int32, C.c_void_p, C.c_void_p, C.POINTER(ConsumerView), C.c_size_t,
                       C.POINTER(C.c_void_p))


class Metrics(C.Structure):
    """struct liminal_metrics: 28 uint64_t, in the header's order."""
    _fields_ = [(name, C.c_uint64) for name in (
        "dispatched", "delivered", "rerouted", "consumer_crashes", "dead_lettered", "attempts_exhausted",
        "expired", "timed_out", "dropped", "group_closed", "routing_failures", "shut_down", "rejected",
        "released", "lease_expired", "in_flight", "waiting", "dispatch_p50_ns", "dispatch_p99_ns",
        "dispatch_p999_ns", "dispatch_max_ns", "reroute_count", "reroute_p50_ns", "reroute_p99_ns",
        "reroute_max_ns", "waiting_p50_ns", "waiting_p99_ns", "waiting_max_ns")]


class DeliveryCallback(C.Structure):
    _fields_ = [("function", DELIVERY_FN), ("user", C.c_void_p), ("free_user", FREE_FN)]


class CrashCallback(C.Structure):
    _fields_ = [("function", CRASH_FN), ("user", C.c_void_p), ("free_user", FREE_FN)]


class CompletionCallback(C.Structure):
    _fields_ = [("function", COMPLETION_FN), ("user", C.c_void_p), ("free_user", FREE_FN)]


class RouteCallback(C.Structure):
    _fields_ = [("function", ROUTE_FN), ("user", C.c_void_p), ("free_user", FREE_FN)]


def sig(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype, f.argtypes = restype, list(argtypes)


P = C.c_void_p
sig("liminal_runtime_options_new", C.c_int, C.POINTER(P))
sig("liminal_runtime_options_free", None, P)
sig("liminal_runtime_options_set_scheduler_threads", C.c_int, P, C.c_uint32)
sig("liminal_runtime_options_set_routing_timeout_ms", C.c_int, P, C.c_uint64)
sig("liminal_runtime_new", C.c_int, P, C.POINTER(P))
sig("liminal_runtime_free", C.c_int, P)
sig("liminal_runtime_shutdown", C.c_int, P)
sig("liminal_runtime_stats_json", C.c_int, P, C.c_char_p, C.c_size_t, C.POINTER(C.c_size_t))
sig("liminal_runtime_stats_prometheus", C.c_int, P, C.c_char_p, C.c_size_t, C.POINTER(C.c_size_t))
sig("liminal_runtime_metrics", C.c_int, P, C.POINTER(Metrics))
sig("liminal_routing_builtin", C.c_int, C.c_int32, C.c_char_p, C.POINTER(P))
sig("liminal_routing_new", C.c_int, P, RouteCallback, C.c_char_p, C.c_size_t, C.c_char_p, C.POINTER(P))
sig("liminal_routing_free", None, P)
sig("liminal_group_options_new", C.c_int, C.POINTER(P))
sig("liminal_group_options_free", None, P)
sig("liminal_group_options_set_name", C.c_int, P, C.c_char_p)
sig("liminal_group_options_set_waiting_room", C.c_int, P, C.c_size_t)
sig("liminal_group_options_set_overflow", C.c_int, P, C.c_int32, C.c_uint64)
sig("liminal_group_options_set_ack_lease_ms", C.c_int, P, C.c_uint64)
sig("liminal_group_new", C.c_int, P, P, P, C.POINTER(P))
sig("liminal_group_free", None, P)
sig("liminal_group_consumer_count", C.c_int, P, C.POINTER(C.c_size_t))
sig("liminal_group_waiting", C.c_int, P, C.POINTER(C.c_size_t))
sig("liminal_group_in_flight", C.c_int, P, C.POINTER(C.c_size_t))
sig("liminal_group_drain", C.c_int, P, C.c_uint64, C.POINTER(C.c_size_t))
sig("liminal_consumer_options_new", C.c_int, C.POINTER(P))
sig("liminal_consumer_options_free", None, P)
sig("liminal_consumer_options_set_max_in_flight", C.c_int, P, C.c_uint32)
sig("liminal_consumer_register", C.c_int, P, C.c_char_p, DeliveryCallback, CrashCallback, P, C.POINTER(P))
sig("liminal_consumer_free", None, P)
sig("liminal_consumer_is_alive", C.c_bool, P)
sig("liminal_consumer_in_flight", C.c_int, P, C.POINTER(C.c_uint32))
sig("liminal_message_new", C.c_int, C.POINTER(P))
sig("liminal_message_free", None, P)
sig("liminal_message_set_int", C.c_int, P, C.c_char_p, C.c_int64)
sig("liminal_message_get_int", C.c_int, P, C.c_char_p, C.POINTER(C.c_int64))
sig("liminal_message_set_payload", C.c_int, P, C.c_char_p, C.c_size_t)
sig("liminal_dispatch_options_new", C.c_int, C.POINTER(P))
sig("liminal_dispatch_options_free", None, P)
sig("liminal_dispatch_options_set_deadline_ms", C.c_int, P, C.c_uint64)
sig("liminal_dispatch_options_set_timeout_ms", C.c_int, P, C.c_uint64)
sig("liminal_group_dispatch", C.c_int, P, P, P, C.POINTER(P))
sig("liminal_group_dispatch_async", C.c_int, P, P, P, CompletionCallback, C.POINTER(C.c_uint64))
sig("liminal_outcome_delivered_to", C.c_char_p, P)
sig("liminal_outcome_rerouted_count", C.c_size_t, P)
sig("liminal_outcome_rerouted_from", C.c_char_p, P, C.c_size_t)
sig("liminal_outcome_reroute_ns", C.c_int, P, C.c_size_t, C.POINTER(C.c_uint64))
sig("liminal_outcome_crashed_handling", C.c_uint32, P)
sig("liminal_outcome_status", C.c_int, P)
sig("liminal_outcome_dispatch_id", C.c_uint64, P)
sig("liminal_outcome_attempts", C.c_uint32, P)
sig("liminal_outcome_released", C.c_uint32, P)
sig("liminal_outcome_lease_expired", C.c_uint32, P)
sig("liminal_outcome_waited_ns", C.c_uint64, P)
sig("liminal_outcome_free", None, P)
sig("liminal_delivery_message", P, P)
sig("liminal_delivery_redelivered", C.c_bool, P)
sig("liminal_delivery_attempt", C.c_uint32, P)
sig("liminal_delivery_dispatch_id", C.c_uint64, P)
sig("liminal_delivery_keep", C.c_int, P, C.POINTER(P))
sig("liminal_delivery_ack", C.c_int, P)
sig("liminal_delivery_free", None, P)
sig("liminal_status_name", C.c_char_p, C.c_int)
sig("liminal_status_is_retriable", C.c_bool, C.c_int32)
sig("liminal_last_error", C.c_char_p)
sig("liminal_version", C.c_char_p)


def check(status):
    if status != OK:
        raise AssertionError(f"{lib.liminal_status_name(status).decode()}: {lib.liminal_last_error().decode()}")


def copied_text(function, handle):
    """Text from a snprintf-style copy (`buffer`, `capacity`, `*len_out`):
    ask for the length with capacity 0 (LIMINAL_BUFFER_TOO_SMALL), then copy
    into length + 1 bytes; again if the text grew meanwhile."""
    length = C.c_size_t()
    status = function(handle, None, 0, C.byref(length))
    assert status == BUFFER_TOO_SMALL, lib.liminal_status_name(status)
    for _ in range(10):
        buffer = C.create_string_buffer(length.value + 1)
        status = function(handle, buffer, len(buffer), C.byref(length))
        if status == OK:
            assert length.value == len(buffer.value)
            return buffer.value.decode()
        assert status == BUFFER_TOO_SMALL, lib.liminal_status_name(status)
    raise AssertionError("the text kept growing")


def stats(runtime):
    return json.loads(copied_text(lib.liminal_runtime_stats_json, runtime))


def metrics(runtime):
    figures = Metrics()
    check(lib.liminal_runtime_metrics(runtime, C.byref(figures)))
    return figures


def size_of(function, handle):
    """A `(handle, size_t *out)` getter's value."""
    out = C.c_size_t()
    check(function(handle, C.byref(out)))
    return out.value


class Keeper:
    """Keeps ctypes callback objects alive until the library's free_user ran:
    each callback gets its own `user` key, released by its own free_user."""

    def __init__(self):
        self.alive = {}
        self.freed = []
        self.lock = threading.Lock()
        self.next = 1
        self.free_fn = FREE_FN(self._free)

    def keep(self, *objects):
        with self.lock:
            key = self.next
            self.next += 1
            self.alive[key] = objects
        return C.c_void_p(key)

    def _free(self, user):
        with self.lock:
            self.alive.pop(user, None)
            self.freed.append(user)


class PythonConsumer:
    """A push consumer. `first` is its answer to its first delivery and
    `verdict` to every later one: a verdict, "defer" (keep an owned copy, put
    `(n, kept)` on `self.kept` for the test thread to answer, and return
    VERDICT_DEFER), "raise" or a raw value that is not a verdict."""

    def __init__(self, keeper, name, crash_on_first=False, raise_on_first=False, verdict=VERDICT_ACK,
                 first=None):
        self.name = name
        self.verdict = verdict
        self.first = VERDICT_CRASH if crash_on_first else "raise" if raise_on_first else first
        self.seen = []
        self.crashes = []
        self.crashed = threading.Event()
        self.raised = []
        self.kept = queue.Queue()
        self.delivery_fn = DELIVERY_FN(self._deliver)
        self.crash_fn = CRASH_FN(self._crash)
        self.delivery_user = keeper.keep(self.delivery_fn)
        self.crash_user = keeper.keep(self.crash_fn)
        self.keeper = keeper

    def _deliver(self, user, delivery):
        # What a callback that raises returns is undefined (it may read as a
        # verdict): catch everything and answer crash, as the header asks.
        try:
            return self._handle(delivery)
        except Exception as error:  # noqa: BLE001 - reported through the crash verdict
            self.raised.append(error)
            return VERDICT_CRASH

    def _handle(self, delivery):
        n = C.c_int64()
        check(lib.liminal_message_get_int(lib.liminal_delivery_message(delivery), b"n", C.byref(n)))
        self.seen.append((n.value, lib.liminal_delivery_attempt(delivery), lib.liminal_delivery_redelivered(delivery)))
        answer = self.first if len(self.seen) == 1 and self.first is not None else self.verdict
        if answer == "raise":
            raise ValueError("python consumer failed")
        if answer == "defer":
            kept = P()
            check(lib.liminal_delivery_keep(delivery, C.byref(kept)))
            self.kept.put((n.value, kept))
            return VERDICT_DEFER
        return answer

    def next_kept(self, timeout=10):
        """The next delivery this consumer kept: `(n, owned delivery)`."""
        try:
            return self.kept.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.name}: no delivery within {timeout} s") from None

    def _crash(self, user, consumer_id, kind, reason, alive):
        self.crashes.append((consumer_id.decode(), kind, reason.decode(), alive))
        self.crashed.set()

    def register(self, group, options=None):
        handle = P()
        check(lib.liminal_consumer_register(
            group, self.name.encode(),
            DeliveryCallback(self.delivery_fn, self.delivery_user, self.keeper.free_fn),
            CrashCallback(self.crash_fn, self.crash_user, self.keeper.free_fn),
            options, C.byref(handle)))
        return handle


class Completions:
    """Completion callbacks of async dispatches; records, per completion,
    the status and what its (borrowed) outcome says."""

    def __init__(self, keeper):
        self.keeper = keeper
        self.results = []
        self.changed = threading.Condition()
        self.function = COMPLETION_FN(self._complete)

    def callback(self):
        return CompletionCallback(self.function, self.keeper.keep(self.function), self.keeper.free_fn)

    def _complete(self, user, status, outcome):
        result = {
            "user": user, "status": status, "outcome_status": lib.liminal_outcome_status(outcome),
            "dispatch_id": lib.liminal_outcome_dispatch_id(outcome),
            "delivered_to": lib.liminal_outcome_delivered_to(outcome),
            "attempts": lib.liminal_outcome_attempts(outcome),
            "released": lib.liminal_outcome_released(outcome),
            "waited_ns": lib.liminal_outcome_waited_ns(outcome),
        }
        with self.changed:
            self.results.append(result)
            self.changed.notify_all()

    def wait_for(self, count, timeout=10):
        with self.changed:
            self.changed.wait_for(lambda: len(self.results) >= count, timeout)
            return list(self.results)


class LiminalFromPython(unittest.TestCase):
    def setUp(self):
        self.keeper = Keeper()
        self.runtime = P()
        check(lib.liminal_runtime_new(None, C.byref(self.runtime)))  # NULL options: defaults

    def tearDown(self):
        check(lib.liminal_runtime_free(self.runtime))
        # Every callback object was released by the library, exactly once.
        self.assertEqual(self.keeper.alive, {})
        self.assertEqual(len(self.keeper.freed), len(set(self.keeper.freed)))

    def group(self, routing=None, options=None):
        if routing is None:
            routing = P()
            check(lib.liminal_routing_builtin(BUILTIN_FIRST_WITH_CAPACITY, None, C.byref(routing)))
        group = P()
        check(lib.liminal_group_new(self.runtime, routing, options, C.byref(group)))
        lib.liminal_routing_free(routing)
        return group

    def message(self, n):
        msg = P()
        check(lib.liminal_message_new(C.byref(msg)))
        check(lib.liminal_message_set_int(msg, b"n", n))
        check(lib.liminal_message_set_payload(msg, b"payload", 7))
        return msg

    def group_options(self, waiting_room=None, overflow=None, ack_lease_ms=None, name=None):
        options = P()
        check(lib.liminal_group_options_new(C.byref(options)))
        if waiting_room is not None:
            check(lib.liminal_group_options_set_waiting_room(options, waiting_room))
        if overflow is not None:
            check(lib.liminal_group_options_set_overflow(options, overflow, 0))
        if ack_lease_ms is not None:
            check(lib.liminal_group_options_set_ack_lease_ms(options, ack_lease_ms))
        if name is not None:
            check(lib.liminal_group_options_set_name(options, name))
        group = self.group(options=options)
        lib.liminal_group_options_free(options)  # the group copied what it needs
        return group

    def register(self, consumer, group, max_in_flight=None):
        if max_in_flight is None:
            return consumer.register(group)
        options = P()
        check(lib.liminal_consumer_options_new(C.byref(options)))
        check(lib.liminal_consumer_options_set_max_in_flight(options, max_in_flight))
        handle = consumer.register(group, options)
        lib.liminal_consumer_options_free(options)
        return handle

    def dispatch_async(self, group, n, completions):
        """Dispatch a message `n` asynchronously; (status, dispatch id, the
        completion's `user` key)."""
        msg = self.message(n)
        callback = completions.callback()
        dispatch_id = C.c_uint64()
        status = lib.liminal_group_dispatch_async(group, msg, None, callback, C.byref(dispatch_id))
        lib.liminal_message_free(msg)  # the dispatch took a snapshot
        return status, dispatch_id.value, callback.user

    def dispatch_bounded(self, group, n):
        """A blocking dispatch of message `n` that cannot hang the test:
        its own timeout is 10 s. Returns (status, outcome or None)."""
        options = P()
        check(lib.liminal_dispatch_options_new(C.byref(options)))
        check(lib.liminal_dispatch_options_set_timeout_ms(options, 10_000))
        msg = self.message(n)
        outcome = P()
        status = lib.liminal_group_dispatch(group, msg, options, C.byref(outcome))
        lib.liminal_message_free(msg)
        lib.liminal_dispatch_options_free(options)
        return status, outcome

    def assertStatus(self, status, expected):
        self.assertEqual(lib.liminal_status_name(status).decode(), lib.liminal_status_name(expected).decode(),
                         lib.liminal_last_error().decode())

    def dispatch_rerouted_from_a(self, a, b):
        """One blocking dispatch on a group of `a` (first) and `b`; returns
        the outcome's reason for a's crash after checking the re-route."""
        group = self.group()
        handles = [a.register(group), b.register(group)]
        msg = self.message(41)
        outcome = P()
        check(lib.liminal_group_dispatch(group, msg, None, C.byref(outcome)))
        self.assertEqual(lib.liminal_outcome_delivered_to(outcome), b"b")
        self.assertEqual(lib.liminal_outcome_rerouted_count(outcome), 1)
        self.assertEqual(lib.liminal_outcome_rerouted_from(outcome, 0), b"a")
        self.assertEqual(lib.liminal_outcome_crashed_handling(outcome), 1)
        ns = C.c_uint64()
        check(lib.liminal_outcome_reroute_ns(outcome, 0, C.byref(ns)))
        self.assertGreater(ns.value, 0)
        self.assertEqual(a.seen, [(41, 1, False)])
        self.assertEqual(b.seen, [(41, 2, True)])
        self.assertEqual(len(a.crashes), 1)
        consumer_id, kind, reason, alive = a.crashes[0]
        self.assertEqual((consumer_id, kind, alive), ("a", CRASH_VERDICT, False))
        count = C.c_size_t()
        check(lib.liminal_group_consumer_count(group, C.byref(count)))
        self.assertEqual(count.value, 1)
        # The crashed consumer's callbacks were released; b's still live.
        self.assertNotIn(a.delivery_user.value, self.keeper.alive)
        self.assertNotIn(a.crash_user.value, self.keeper.alive)
        self.assertIn(b.delivery_user.value, self.keeper.alive)
        lib.liminal_outcome_free(outcome)
        lib.liminal_message_free(msg)
        for h in handles:
            lib.liminal_consumer_free(h)
        lib.liminal_group_free(group)
        return reason

    def test_version(self):
        self.assertRegex(lib.liminal_version().decode(), r"^\d+\.\d+\.\d+$")

    def test_crash_is_rerouted_to_another_python_consumer(self):
        reason = self.dispatch_rerouted_from_a(PythonConsumer(self.keeper, "a", crash_on_first=True),
                                               PythonConsumer(self.keeper, "b"))
        self.assertIn("LIMINAL_VERDICT_CRASH", reason)

    def test_a_callback_that_raises_crashes_its_consumer(self):
        # An exception escaping a ctypes callback leaves its return value
        # undefined (CPython does not zero the slot; here it read as a
        # verdict that kept the delivery): the consumer catches it and
        # answers VERDICT_CRASH, as the header asks of Python hosts.
        a = PythonConsumer(self.keeper, "a", raise_on_first=True)
        reason = self.dispatch_rerouted_from_a(a, PythonConsumer(self.keeper, "b"))
        self.assertEqual([type(error) for error in a.raised], [ValueError])
        self.assertIn("LIMINAL_VERDICT_CRASH", reason)

    def test_a_callback_that_returns_no_verdict_crashes_its_consumer(self):
        # 0 (a C callback that fell off its end) is never an acknowledgement.
        reason = self.dispatch_rerouted_from_a(PythonConsumer(self.keeper, "a", first=0),
                                               PythonConsumer(self.keeper, "b"))
        self.assertRegex(reason, r"returned 0, which is not a verdict")

    def test_async_dispatch_and_python_routing(self):
        def route(user, message, views, count, selected):
            names = [views[i].id for i in range(count)]
            if b"b" in names:
                selected[0] = C.cast(C.c_char_p(views[names.index(b"b")].id), C.c_void_p)
                return ROUTE_SELECTED
            return ROUTE_NONE

        route_fn = ROUTE_FN(route)
        routing = P()
        check(lib.liminal_routing_new(self.runtime, RouteCallback(route_fn, self.keeper.keep(route_fn),
                                                                  self.keeper.free_fn),
                                      b"python-route-b", 14, b"py", C.byref(routing)))
        group = self.group(routing)
        consumers = [PythonConsumer(self.keeper, name) for name in ("a", "b")]
        handles = [c.register(group) for c in consumers]
        done = threading.Event()
        results = []

        def complete(user, status, outcome):
            results.append((status, lib.liminal_outcome_delivered_to(outcome)))
            if len(results) == 50:
                done.set()

        completion_fn = COMPLETION_FN(complete)
        msg = self.message(1)
        for _ in range(50):
            check(lib.liminal_group_dispatch_async(
                group, msg, None, CompletionCallback(completion_fn, self.keeper.keep(completion_fn),
                                                     self.keeper.free_fn), None))
        self.assertTrue(done.wait(30))
        self.assertEqual(results, [(OK, b"b")] * 50)
        self.assertEqual(len(consumers[1].seen), 50)
        self.assertEqual(consumers[0].seen, [])
        lib.liminal_message_free(msg)
        for h in handles:
            lib.liminal_consumer_free(h)
        lib.liminal_group_free(group)

    def test_options_objects_and_a_deadline(self):
        options = P()
        check(lib.liminal_group_options_new(C.byref(options)))
        # Each setter validates its value and changes nothing when it is bad.
        self.assertEqual(lib.liminal_group_options_set_waiting_room(options, 0), INVALID_ARGUMENT)
        self.assertIn(b"waiting", lib.liminal_last_error())
        self.assertEqual(lib.liminal_group_options_set_name(None, b"x"), NULL_ARGUMENT)
        check(lib.liminal_group_options_set_name(options, b"py-orders"))
        group = self.group(options=options)
        lib.liminal_group_options_free(options)  # the group copied what it needs

        # No consumer: the message waits until its deadline, then fails.
        dispatch_options = P()
        check(lib.liminal_dispatch_options_new(C.byref(dispatch_options)))
        check(lib.liminal_dispatch_options_set_deadline_ms(dispatch_options, 30))
        msg = self.message(7)
        outcome = P()
        self.assertEqual(lib.liminal_group_dispatch(group, msg, dispatch_options, C.byref(outcome)), EXPIRED)
        self.assertEqual(outcome.value, None)  # written only on success
        lib.liminal_dispatch_options_free(dispatch_options)

        figures = stats(self.runtime)
        self.assertEqual(figures["liminal.dispatch.failed"]["expired"], 1)
        self.assertEqual([g["messaging.consumer.group.name"] for g in figures["groups"]], ["py-orders"])
        lib.liminal_message_free(msg)
        lib.liminal_group_free(group)

    def test_waiting_room_holds_what_a_full_consumer_cannot_take(self):
        group = self.group()
        only = PythonConsumer(self.keeper, "only", verdict="defer")  # answers later, from this thread
        handle = self.register(only, group, max_in_flight=1)
        completions = Completions(self.keeper)
        dispatch_ids = {}
        for n in range(3):
            status, dispatch_id, _ = self.dispatch_async(group, n, completions)
            self.assertStatus(status, OK)
            dispatch_ids[n] = dispatch_id
        self.assertEqual(len(set(dispatch_ids.values())), 3)
        order = []
        kept_deliveries = []
        for answered in range(3):
            n, kept = only.next_kept()
            order.append(n)
            kept_deliveries.append(kept)
            self.assertEqual(lib.liminal_delivery_dispatch_id(kept), dispatch_ids[n])
            # One delivered and held; the others wait for its only slot.
            self.assertEqual(size_of(lib.liminal_group_waiting, group), 2 - answered)
            self.assertEqual(metrics(self.runtime).waiting, 2 - answered)
            self.assertEqual(size_of(lib.liminal_group_in_flight, group), 3 - answered)
            held = C.c_uint32()
            check(lib.liminal_consumer_in_flight(handle, C.byref(held)))
            self.assertEqual(held.value, 1)
            self.assertEqual(len(completions.results), answered)  # none completes before its ack
            check(lib.liminal_delivery_ack(kept))  # from the test thread, after the callback returned
            # The completion ran on the answering thread (this one), once.
            self.assertEqual(len(completions.results), answered + 1)
            self.assertStatus(lib.liminal_delivery_ack(kept), STALE_DELIVERY)  # never counted twice
        self.assertEqual(sorted(order), [0, 1, 2])
        self.assertEqual(only.seen, [(n, 1, False) for n in order])  # each delivered once, first attempt
        results = completions.wait_for(3)
        self.assertEqual(len(results), 3)
        self.assertEqual([(r["status"], r["outcome_status"], r["delivered_to"], r["attempts"]) for r in results],
                         [(OK, OK, b"only", 1)] * 3)
        self.assertEqual([r["dispatch_id"] for r in results], [dispatch_ids[n] for n in order])
        self.assertEqual(len({r["user"] for r in results}), 3)  # each completion exactly once
        for r in results[1:]:  # these two waited for the slot
            self.assertGreater(r["waited_ns"], 0)
        figures = metrics(self.runtime)
        self.assertEqual((figures.dispatched, figures.delivered, figures.waiting, figures.in_flight), (3, 3, 0, 0))
        self.assertEqual(size_of(lib.liminal_group_waiting, group), 0)
        for kept in kept_deliveries:
            lib.liminal_delivery_free(kept)
        lib.liminal_consumer_free(handle)
        lib.liminal_group_free(group)

    def test_a_full_waiting_room_rejects_with_queue_full(self):
        group = self.group_options(waiting_room=1, overflow=OVERFLOW_REJECT)
        only = PythonConsumer(self.keeper, "only", verdict="defer")
        handle = self.register(only, group, max_in_flight=1)
        completions = Completions(self.keeper)
        self.assertStatus(self.dispatch_async(group, 0, completions)[0], OK)
        first = only.next_kept()  # the consumer is full now
        self.assertStatus(self.dispatch_async(group, 1, completions)[0], OK)
        self.assertEqual(size_of(lib.liminal_group_waiting, group), 1)  # and so is the waiting room

        status, _, user = self.dispatch_async(group, 2, completions)
        self.assertStatus(status, QUEUE_FULL)
        self.assertTrue(lib.liminal_status_is_retriable(status))
        # Refused: its completion is never called, and was released before the call returned.
        self.assertNotIn(user, self.keeper.alive)
        self.assertEqual(size_of(lib.liminal_group_waiting, group), 1)
        self.assertEqual(size_of(lib.liminal_group_in_flight, group), 2)
        self.assertEqual(metrics(self.runtime).rejected, 1)
        self.assertEqual(stats(self.runtime)["groups"][0]["liminal.dispatch.rejected"], 1)

        # The accepted two are unaffected.
        check(lib.liminal_delivery_ack(first[1]))
        second = only.next_kept()
        check(lib.liminal_delivery_ack(second[1]))
        self.assertEqual((first[0], second[0]), (0, 1))
        results = completions.wait_for(2)
        self.assertEqual([(r["status"], r["delivered_to"]) for r in results], [(OK, b"only")] * 2)
        self.assertEqual(only.seen, [(0, 1, False), (1, 1, False)])
        for _, kept in (first, second):
            lib.liminal_delivery_free(kept)
        lib.liminal_consumer_free(handle)
        lib.liminal_group_free(group)
        self.assertEqual(len(completions.results), 2)  # the refused one never completed

    def test_an_expired_ack_lease_takes_the_delivery_back(self):
        group = self.group_options(ack_lease_ms=100)
        a = PythonConsumer(self.keeper, "a", verdict="defer")  # keeps it and never answers
        b = PythonConsumer(self.keeper, "b")
        handles = [a.register(group), b.register(group)]
        started = time.monotonic()
        status, outcome = self.dispatch_bounded(group, 5)
        elapsed = time.monotonic() - started
        self.assertStatus(status, OK)
        n, kept = a.next_kept(timeout=0)  # a had it first (first in id order with capacity)
        self.assertEqual(n, 5)
        self.assertEqual(lib.liminal_outcome_delivered_to(outcome), b"b")
        self.assertEqual(lib.liminal_outcome_lease_expired(outcome), 1)
        self.assertEqual(lib.liminal_outcome_rerouted_count(outcome), 1)
        self.assertEqual(lib.liminal_outcome_rerouted_from(outcome, 0), b"a")
        self.assertEqual(lib.liminal_outcome_attempts(outcome), 2)
        self.assertGreaterEqual(elapsed, 0.095)  # b got it only once a's lease ran out
        self.assertEqual(a.seen, [(5, 1, False)])
        self.assertEqual(b.seen, [(5, 2, True)])  # a's callback saw it: flagged redelivered
        self.assertTrue(a.crashed.wait(10))
        self.assertEqual(len(a.crashes), 1)
        consumer_id, kind, reason, alive = a.crashes[0]
        # The default lease policy (crash) declared it dead.
        self.assertEqual((consumer_id, kind, alive), ("a", CRASH_LEASE_EXPIRED, False), reason)
        self.assertFalse(lib.liminal_consumer_is_alive(handles[0]))
        self.assertEqual(b.crashes, [])
        # The late answer of the kept delivery is fenced off.
        self.assertStatus(lib.liminal_delivery_ack(kept), STALE_DELIVERY)
        figures = metrics(self.runtime)
        self.assertEqual((figures.delivered, figures.lease_expired), (1, 1))
        lib.liminal_delivery_free(kept)
        lib.liminal_outcome_free(outcome)
        for h in handles:
            lib.liminal_consumer_free(h)
        lib.liminal_group_free(group)

    def test_a_released_message_goes_to_another_consumer(self):
        group = self.group()
        a = PythonConsumer(self.keeper, "a", verdict=VERDICT_RELEASE)
        b = PythonConsumer(self.keeper, "b")
        handles = [a.register(group), b.register(group)]
        status, outcome = self.dispatch_bounded(group, 9)
        self.assertStatus(status, OK)
        self.assertEqual(lib.liminal_outcome_delivered_to(outcome), b"b")
        self.assertEqual(lib.liminal_outcome_released(outcome), 1)
        self.assertEqual(lib.liminal_outcome_attempts(outcome), 2)
        self.assertEqual(lib.liminal_outcome_crashed_handling(outcome), 0)
        self.assertEqual(lib.liminal_outcome_rerouted_count(outcome), 0)  # a release is no failure of a's
        self.assertEqual(a.seen, [(9, 1, False)])
        self.assertEqual(b.seen, [(9, 2, True)])
        # Handing it back is not dying.
        self.assertEqual(a.crashes, [])
        self.assertTrue(lib.liminal_consumer_is_alive(handles[0]))
        figures = metrics(self.runtime)
        self.assertEqual((figures.released, figures.consumer_crashes, figures.delivered), (1, 0, 1))
        lib.liminal_outcome_free(outcome)
        for h in handles:
            lib.liminal_consumer_free(h)
        lib.liminal_group_free(group)

    def test_drain_waits_for_what_is_in_flight_then_refuses(self):
        group = self.group()
        only = PythonConsumer(self.keeper, "only", verdict="defer")
        handle = only.register(group)
        completions = Completions(self.keeper)
        for n in range(3):
            self.assertStatus(self.dispatch_async(group, n, completions)[0], OK)
        kept = [only.next_kept() for _ in range(3)]

        # A drain that runs out of time reports what had not completed.
        left = C.c_size_t(99)
        started = time.monotonic()
        check(lib.liminal_group_drain(group, 50, C.byref(left)))
        self.assertGreaterEqual(time.monotonic() - started, 0.045)
        self.assertEqual(left.value, 3)
        self.assertEqual(completions.results, [])
        status, _, user = self.dispatch_async(group, 3, completions)
        self.assertStatus(status, DRAINING)  # no new dispatches from the first drain on
        self.assertNotIn(user, self.keeper.alive)

        # Answered from another thread while this one drains.
        errors = []

        def answer():
            try:
                for _, delivery in kept:
                    check(lib.liminal_delivery_ack(delivery))
            except AssertionError as error:
                errors.append(error)

        acker = threading.Thread(target=answer)
        acker.start()
        left = C.c_size_t(99)
        check(lib.liminal_group_drain(group, 10_000, C.byref(left)))
        self.assertEqual(left.value, 0)
        self.assertEqual(size_of(lib.liminal_group_in_flight, group), 0)
        acker.join(10)
        self.assertFalse(acker.is_alive())
        self.assertEqual(errors, [])
        results = completions.wait_for(3)
        self.assertEqual([(r["status"], r["delivered_to"]) for r in results], [(OK, b"only")] * 3)

        # After the drain: still refused, async and blocking alike.
        status, _, user = self.dispatch_async(group, 4, completions)
        self.assertStatus(status, DRAINING)
        self.assertFalse(lib.liminal_status_is_retriable(status))
        self.assertNotIn(user, self.keeper.alive)
        status, outcome = self.dispatch_bounded(group, 5)
        self.assertStatus(status, DRAINING)
        self.assertEqual(outcome.value, None)
        self.assertTrue(stats(self.runtime)["groups"][0]["liminal.group.draining"])
        self.assertEqual(len(completions.results), 3)
        self.assertEqual(len(only.seen), 3)
        for _, delivery in kept:
            lib.liminal_delivery_free(delivery)
        lib.liminal_consumer_free(handle)
        lib.liminal_group_free(group)

    def test_statistics_as_json_and_prometheus_text(self):
        group = self.group_options(name=b"py-stats")
        handle = PythonConsumer(self.keeper, "only").register(group)
        status, outcome = self.dispatch_bounded(group, 1)
        self.assertStatus(status, OK)
        lib.liminal_outcome_free(outcome)

        text = copied_text(lib.liminal_runtime_stats_json, self.runtime)
        figures = json.loads(text)
        self.assertEqual(figures["messaging.system"], "liminal")
        self.assertEqual(figures["messaging.client.sent.messages"], 1)
        self.assertEqual([g["messaging.consumer.group.name"] for g in figures["groups"]], ["py-stats"])
        # snprintf-style: a short buffer gets a NUL-terminated prefix, the
        # full length, and LIMINAL_BUFFER_TOO_SMALL.
        short, length = C.create_string_buffer(8), C.c_size_t()
        self.assertStatus(lib.liminal_runtime_stats_json(self.runtime, short, len(short), C.byref(length)),
                          BUFFER_TOO_SMALL)
        self.assertEqual(short.value, text.encode()[:7])
        self.assertGreater(length.value, 7)

        prometheus = copied_text(lib.liminal_runtime_stats_prometheus, self.runtime)
        samples = re.findall(r"(?m)^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", prometheus)
        self.assertTrue(samples, prometheus)
        for name, labels, value in samples:
            float(value)  # every sample's value is a number
        self.assertRegex(prometheus, r"(?m)^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|summary|histogram)$")
        self.assertIn('"py-stats"', prometheus)
        lib.liminal_consumer_free(handle)
        lib.liminal_group_free(group)

    def test_runtime_options(self):
        options = P()
        check(lib.liminal_runtime_options_new(C.byref(options)))
        self.assertEqual(lib.liminal_runtime_options_set_scheduler_threads(options, 0), INVALID_ARGUMENT)
        check(lib.liminal_runtime_options_set_scheduler_threads(options, 2))
        check(lib.liminal_runtime_options_set_routing_timeout_ms(options, 1000))
        runtime = P()
        check(lib.liminal_runtime_new(options, C.byref(runtime)))
        lib.liminal_runtime_options_free(options)
        group = P()
        routing = P()
        check(lib.liminal_routing_builtin(BUILTIN_FIRST_WITH_CAPACITY, None, C.byref(routing)))
        check(lib.liminal_group_new(runtime, routing, None, C.byref(group)))
        lib.liminal_routing_free(routing)
        consumer_options = P()
        check(lib.liminal_consumer_options_new(C.byref(consumer_options)))
        check(lib.liminal_consumer_options_set_max_in_flight(consumer_options, 1))
        consumer = PythonConsumer(self.keeper, "only")
        handle = consumer.register(group, consumer_options)
        lib.liminal_consumer_options_free(consumer_options)
        msg = self.message(3)
        outcome = P()
        check(lib.liminal_group_dispatch(group, msg, None, C.byref(outcome)))
        self.assertEqual(lib.liminal_outcome_delivered_to(outcome), b"only")
        lib.liminal_outcome_free(outcome)
        lib.liminal_message_free(msg)
        lib.liminal_consumer_free(handle)
        lib.liminal_group_free(group)
        check(lib.liminal_runtime_free(runtime))


if __name__ == "__main__":
    unittest.main(verbosity=2)
