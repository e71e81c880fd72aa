"""The C ABI from Python through ctypes: consumers written in Python, one of
them crashes, the message is re-routed; callback objects stay alive until
their free_user ran.

Run: python3 tests/python/test_ctypes.py [path/to/libliminal.so]
"""
import ctypes as C
import os
import sys
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_LIB = os.path.join(HERE, "..", "..", "target", "release", "libliminal.so")
LIB_PATH = os.environ.get("LIMINAL_LIB", DEFAULT_LIB)

lib = C.CDLL(LIB_PATH)

OK, NO_CONSUMER_AVAILABLE, ATTEMPTS_EXHAUSTED, SHUT_DOWN = 0, 5, 11, 13
VERDICT_ACK, VERDICT_CRASH, VERDICT_DEFER = 0, 1, 2
BUILTIN_FIRST_WITH_CAPACITY = 0
ROUTE_SELECTED, ROUTE_NONE = 0, 1

FREE_FN = C.CFUNCTYPE(None, C.c_void_p)
DELIVERY_FN = C.CFUNCTYPE(C.c_int32, C.c_void_p, C.c_void_p)
CRASH_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_char_p, C.c_char_p)
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
sig("liminal_runtime_new", C.c_int, C.c_uint32, C.c_uint64, C.POINTER(P))
sig("liminal_runtime_free", C.c_int, P)
sig("liminal_runtime_shutdown", C.c_int, P)
sig("liminal_routing_builtin", C.c_int, C.c_int32, C.c_char_p, C.POINTER(P))
sig("liminal_routing_new", C.c_int, P, RouteCallback, C.c_char_p, C.c_size_t, C.c_char_p, C.POINTER(P))
sig("liminal_routing_free", None, P)
sig("liminal_group_new", C.c_int, P, P, C.c_uint32, C.c_uint64, C.POINTER(P))
sig("liminal_group_free", None, P)
sig("liminal_group_consumer_count", C.c_int, P, C.POINTER(C.c_size_t))
sig("liminal_consumer_register", C.c_int, P, C.c_char_p, C.c_uint32, C.c_uint32,
    C.POINTER(C.c_char_p), C.c_size_t, DeliveryCallback, CrashCallback, C.POINTER(P))
sig("liminal_consumer_free", None, P)
sig("liminal_message_new", C.c_int, C.POINTER(P))
sig("liminal_message_free", None, P)
sig("liminal_message_set_int", C.c_int, P, C.c_char_p, C.c_int64)
sig("liminal_message_get_int", C.c_int, P, C.c_char_p, C.POINTER(C.c_int64))
sig("liminal_message_set_payload", C.c_int, P, C.c_char_p, C.c_size_t)
sig("liminal_group_dispatch", C.c_int, P, P, C.POINTER(P))
sig("liminal_group_dispatch_async", C.c_int, P, P, CompletionCallback, C.POINTER(C.c_uint64))
sig("liminal_outcome_delivered_to", C.c_char_p, P)
sig("liminal_outcome_rerouted_count", C.c_size_t, P)
sig("liminal_outcome_rerouted_from", C.c_char_p, P, C.c_size_t)
sig("liminal_outcome_reroute_ns", C.c_int, P, C.c_size_t, C.POINTER(C.c_uint64))
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


class Keeper:
    """Keeps ctypes callback objects alive until the library's free_user ran."""

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
    def __init__(self, keeper, name, crash_on_first=False):
        self.name = name
        self.crash_on_first = crash_on_first
        self.seen = []
        self.crashes = []
        self.delivery_fn = DELIVERY_FN(self._deliver)
        self.crash_fn = CRASH_FN(self._crash)
        self.user = keeper.keep(self.delivery_fn, self.crash_fn)
        self.keeper = keeper

    def _deliver(self, user, delivery):
        n = C.c_int64()
        check(lib.liminal_message_get_int(lib.liminal_delivery_message(delivery), b"n", C.byref(n)))
        self.seen.append((n.value, lib.liminal_delivery_attempt(delivery), lib.liminal_delivery_redelivered(delivery)))
        return VERDICT_CRASH if self.crash_on_first and len(self.seen) == 1 else VERDICT_ACK

    def _crash(self, user, consumer_id, reason):
        self.crashes.append((consumer_id.decode(), reason.decode()))

    def register(self, group):
        handle = P()
        # Only the delivery callback owns `user` (free_user once); the crash
        # callback shares it without a destructor.
        check(lib.liminal_consumer_register(
            group, self.name.encode(), 16, 0, None, 0,
            DeliveryCallback(self.delivery_fn, self.user, self.keeper.free_fn),
            CrashCallback(self.crash_fn, self.user, FREE_FN()), C.byref(handle)))
        return handle


class LiminalFromPython(unittest.TestCase):
    def setUp(self):
        self.keeper = Keeper()
        self.runtime = P()
        check(lib.liminal_runtime_new(0, 0, C.byref(self.runtime)))

    def tearDown(self):
        check(lib.liminal_runtime_free(self.runtime))
        # Every callback object was released by the library, exactly once.
        self.assertEqual(self.keeper.alive, {})
        self.assertEqual(len(self.keeper.freed), len(set(self.keeper.freed)))

    def group(self, routing=None):
        if routing is None:
            routing = P()
            check(lib.liminal_routing_builtin(BUILTIN_FIRST_WITH_CAPACITY, None, C.byref(routing)))
        group = P()
        check(lib.liminal_group_new(self.runtime, routing, 0, 0, C.byref(group)))
        lib.liminal_routing_free(routing)
        return group

    def message(self, n):
        msg = P()
        check(lib.liminal_message_new(C.byref(msg)))
        check(lib.liminal_message_set_int(msg, b"n", n))
        check(lib.liminal_message_set_payload(msg, b"payload", 7))
        return msg

    def test_version(self):
        self.assertRegex(lib.liminal_version().decode(), r"^\d+\.\d+\.\d+$")

    def test_crash_is_rerouted_to_another_python_consumer(self):
        group = self.group()
        a = PythonConsumer(self.keeper, "a", crash_on_first=True)
        b = PythonConsumer(self.keeper, "b")
        handles = [a.register(group), b.register(group)]
        msg = self.message(41)
        outcome = P()
        check(lib.liminal_group_dispatch(group, msg, C.byref(outcome)))
        self.assertEqual(lib.liminal_outcome_delivered_to(outcome), b"b")
        self.assertEqual(lib.liminal_outcome_rerouted_count(outcome), 1)
        self.assertEqual(lib.liminal_outcome_rerouted_from(outcome, 0), b"a")
        ns = C.c_uint64()
        check(lib.liminal_outcome_reroute_ns(outcome, 0, C.byref(ns)))
        self.assertGreater(ns.value, 0)
        self.assertEqual(a.seen, [(41, 1, False)])
        self.assertEqual(b.seen, [(41, 2, True)])
        self.assertEqual(a.crashes[0][0], "a")
        self.assertIn("CRASH", a.crashes[0][1])
        count = C.c_size_t()
        check(lib.liminal_group_consumer_count(group, C.byref(count)))
        self.assertEqual(count.value, 1)
        # The crashed consumer's callbacks were released; b's still live.
        self.assertNotIn(a.user.value, self.keeper.alive)
        self.assertIn(b.user.value, self.keeper.alive)
        lib.liminal_outcome_free(outcome)
        lib.liminal_message_free(msg)
        for h in handles:
            lib.liminal_consumer_free(h)
        lib.liminal_group_free(group)

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
                group, msg, CompletionCallback(completion_fn, self.keeper.keep(completion_fn),
                                               self.keeper.free_fn), None))
        self.assertTrue(done.wait(30))
        self.assertEqual(results, [(OK, b"b")] * 50)
        self.assertEqual(len(consumers[1].seen), 50)
        self.assertEqual(consumers[0].seen, [])
        lib.liminal_message_free(msg)
        for h in handles:
            lib.liminal_consumer_free(h)
        lib.liminal_group_free(group)


if __name__ == "__main__":
    unittest.main(verbosity=2)
