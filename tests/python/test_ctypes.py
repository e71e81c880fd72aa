"""The C ABI from Python through ctypes: consumers written in Python, one of
them crashes (by verdict, or by raising), the message is re-routed; options
objects and a deadline; callback objects stay alive until their free_user ran.

Run: python3 tests/python/test_ctypes.py [path/to/libliminal.so]
"""
import ctypes as C
import json
import os
import sys
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_LIB = os.path.join(HERE, "..", "..", "target", "release", "libliminal.so")
if __name__ == "__main__" and len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
    LIB_PATH = sys.argv.pop(1)
else:
    LIB_PATH = os.environ.get("LIMINAL_LIB", DEFAULT_LIB)

lib = C.CDLL(LIB_PATH)

OK, NULL_ARGUMENT, INVALID_ARGUMENT, EXPIRED = 0, 1, 2, 21
# Verdicts are non-zero: a callback that raises returns 0, which is a crash.
VERDICT_ACK, VERDICT_CRASH, VERDICT_DEFER, VERDICT_RELEASE = 1, 2, 3, 4
CRASH_VERDICT = 1
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
sig("liminal_routing_builtin", C.c_int, C.c_int32, C.c_char_p, C.POINTER(P))
sig("liminal_routing_new", C.c_int, P, RouteCallback, C.c_char_p, C.c_size_t, C.c_char_p, C.POINTER(P))
sig("liminal_routing_free", None, P)
sig("liminal_group_options_new", C.c_int, C.POINTER(P))
sig("liminal_group_options_free", None, P)
sig("liminal_group_options_set_name", C.c_int, P, C.c_char_p)
sig("liminal_group_options_set_waiting_room", C.c_int, P, C.c_size_t)
sig("liminal_group_new", C.c_int, P, P, P, C.POINTER(P))
sig("liminal_group_free", None, P)
sig("liminal_group_consumer_count", C.c_int, P, C.POINTER(C.c_size_t))
sig("liminal_consumer_options_new", C.c_int, C.POINTER(P))
sig("liminal_consumer_options_free", None, P)
sig("liminal_consumer_options_set_max_in_flight", C.c_int, P, C.c_uint32)
sig("liminal_consumer_register", C.c_int, P, C.c_char_p, DeliveryCallback, CrashCallback, P, C.POINTER(P))
sig("liminal_consumer_free", None, P)
sig("liminal_message_new", C.c_int, C.POINTER(P))
sig("liminal_message_free", None, P)
sig("liminal_message_set_int", C.c_int, P, C.c_char_p, C.c_int64)
sig("liminal_message_get_int", C.c_int, P, C.c_char_p, C.POINTER(C.c_int64))
sig("liminal_message_set_payload", C.c_int, P, C.c_char_p, C.c_size_t)
sig("liminal_dispatch_options_new", C.c_int, C.POINTER(P))
sig("liminal_dispatch_options_free", None, P)
sig("liminal_dispatch_options_set_deadline_ms", C.c_int, P, C.c_uint64)
sig("liminal_group_dispatch", C.c_int, P, P, P, C.POINTER(P))
sig("liminal_group_dispatch_async", C.c_int, P, P, P, CompletionCallback, C.POINTER(C.c_uint64))
sig("liminal_outcome_delivered_to", C.c_char_p, P)
sig("liminal_outcome_rerouted_count", C.c_size_t, P)
sig("liminal_outcome_rerouted_from", C.c_char_p, P, C.c_size_t)
sig("liminal_outcome_reroute_ns", C.c_int, P, C.c_size_t, C.POINTER(C.c_uint64))
sig("liminal_outcome_crashed_handling", C.c_uint32, P)
sig("liminal_outcome_status", C.c_int, P)
sig("liminal_outcome_free", None, P)
sig("liminal_delivery_message", P, P)
sig("liminal_delivery_redelivered", C.c_bool, P)
sig("liminal_delivery_attempt", C.c_uint32, P)
sig("liminal_status_name", C.c_char_p, C.c_int)
sig("liminal_last_error", C.c_char_p)
sig("liminal_version", C.c_char_p)


def check(status):
    if status != OK:
        raise AssertionError(f"{lib.liminal_status_name(status).decode()}: {lib.liminal_last_error().decode()}")


def stats(runtime):
    length = C.c_size_t()
    lib.liminal_runtime_stats_json(runtime, None, 0, C.byref(length))
    buffer = C.create_string_buffer(length.value + 4096)  # room for figures that grew meanwhile
    check(lib.liminal_runtime_stats_json(runtime, buffer, len(buffer), C.byref(length)))
    return json.loads(buffer.value.decode())


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
    def __init__(self, keeper, name, crash_on_first=False, raise_on_first=False):
        self.name = name
        self.crash_on_first = crash_on_first
        self.raise_on_first = raise_on_first
        self.seen = []
        self.crashes = []
        self.delivery_fn = DELIVERY_FN(self._deliver)
        self.crash_fn = CRASH_FN(self._crash)
        self.delivery_user = keeper.keep(self.delivery_fn)
        self.crash_user = keeper.keep(self.crash_fn)
        self.keeper = keeper

    def _deliver(self, user, delivery):
        n = C.c_int64()
        check(lib.liminal_message_get_int(lib.liminal_delivery_message(delivery), b"n", C.byref(n)))
        self.seen.append((n.value, lib.liminal_delivery_attempt(delivery), lib.liminal_delivery_redelivered(delivery)))
        first = len(self.seen) == 1
        if self.raise_on_first and first:
            raise ValueError("python consumer failed")  # ctypes returns 0: a crash
        return VERDICT_CRASH if self.crash_on_first and first else VERDICT_ACK

    def _crash(self, user, consumer_id, kind, reason, alive):
        self.crashes.append((consumer_id.decode(), kind, reason.decode(), alive))

    def register(self, group, options=None):
        handle = P()
        check(lib.liminal_consumer_register(
            group, self.name.encode(),
            DeliveryCallback(self.delivery_fn, self.delivery_user, self.keeper.free_fn),
            CrashCallback(self.crash_fn, self.crash_user, self.keeper.free_fn),
            options, C.byref(handle)))
        return handle


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
        raised = []
        previous = sys.unraisablehook
        # ctypes reports the exception here; the value the callback then
        # returns is whatever its return slot held (CPython does not zero
        # it: not reliably 0). Any value but a verdict is a crash. A robust
        # Python host catches its exceptions and returns VERDICT_CRASH.
        sys.unraisablehook = lambda unraisable: raised.append(unraisable.exc_type)
        try:
            reason = self.dispatch_rerouted_from_a(PythonConsumer(self.keeper, "a", raise_on_first=True),
                                                   PythonConsumer(self.keeper, "b"))
        finally:
            sys.unraisablehook = previous
        self.assertEqual(raised, [ValueError])
        self.assertRegex(reason, r"returned -?\d+, which is not a verdict")

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
