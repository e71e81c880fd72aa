"""The C ABI of libliminal (include/liminal.h) declared for ctypes.

Internal: the public API is in `liminal`. Every function gets its argument
and result types here, so a wrong call fails in Python instead of in C.
"""

from __future__ import annotations

import ctypes as C
import os
import threading
from typing import Any, Dict, Optional

__all__ = ["lib", "LIBRARY_PATH", "P", "keep", "FREE"]

P = C.c_void_p


def _library_path() -> str:
    """`LIMINAL_LIBRARY` if set, else the libliminal.so installed with the package."""
    override = os.environ.get("LIMINAL_LIBRARY")
    if override:
        return override
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "libliminal.so")


LIBRARY_PATH = _library_path()
# CDLL releases the GIL around every call: library threads that run Python
# callbacks can take it while a Python thread blocks in the library.
lib = C.CDLL(LIBRARY_PATH)

FREE_FN = C.CFUNCTYPE(None, C.c_void_p)
DELIVERY_FN = C.CFUNCTYPE(C.c_int32, C.c_void_p, C.c_void_p)
# (user, consumer_id, liminal_crash_kind kind, reason, bool alive)
CRASH_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_char_p, C.c_int, C.c_char_p, C.c_bool)
COMPLETION_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_int, C.c_void_p)
DEAD_LETTER_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_void_p, C.c_void_p)
STATS_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_char_p, C.c_size_t)
HOST_LOST_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_char_p, C.c_char_p)
# (user, const liminal_message *, const liminal_outcome *): a durable group's recovered message ended.
RECOVERED_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_void_p, C.c_void_p)


class ConsumerView(C.Structure):
    _fields_ = [
        ("id", C.c_char_p),
        ("in_flight", C.c_uint32),
        ("max_in_flight", C.c_uint32),
        ("buffer_depth", C.c_uint32),
        ("tags", C.POINTER(C.c_char_p)),
        ("tag_count", C.c_size_t),
    ]


# selected_id is `const char **`: written with a pointer the callback keeps valid.
ROUTE_FN = C.CFUNCTYPE(C.c_int32, C.c_void_p, C.c_void_p, C.POINTER(ConsumerView), C.c_size_t,
                       C.POINTER(C.c_void_p))

METRIC_NAMES = (
    "dispatched", "delivered", "rerouted", "consumer_crashes", "dead_lettered", "attempts_exhausted",
    "expired", "timed_out", "dropped", "group_closed", "routing_failures", "shut_down", "rejected",
    "released", "lease_expired", "in_flight", "waiting", "dispatch_p50_ns", "dispatch_p99_ns",
    "dispatch_p999_ns", "dispatch_max_ns", "reroute_count", "reroute_p50_ns", "reroute_p99_ns",
    "reroute_max_ns", "waiting_p50_ns", "waiting_p99_ns", "waiting_max_ns",
)


class Metrics(C.Structure):
    """struct liminal_metrics: 28 uint64_t in the header's order."""
    _fields_ = [(name, C.c_uint64) for name in METRIC_NAMES]


def _callback_struct(name: str, fn_type: Any) -> Any:
    return type(name, (C.Structure,), {"_fields_": [("function", fn_type), ("user", C.c_void_p),
                                                     ("free_user", FREE_FN)]})


DeliveryCallback = _callback_struct("DeliveryCallback", DELIVERY_FN)
CrashCallback = _callback_struct("CrashCallback", CRASH_FN)
CompletionCallback = _callback_struct("CompletionCallback", COMPLETION_FN)
DeadLetterCallback = _callback_struct("DeadLetterCallback", DEAD_LETTER_FN)
StatsCallback = _callback_struct("StatsCallback", STATS_FN)
RouteCallback = _callback_struct("RouteCallback", ROUTE_FN)
HostLostCallback = _callback_struct("HostLostCallback", HOST_LOST_FN)
RecoveredCallback = _callback_struct("RecoveredCallback", RECOVERED_FN)


class StoreRecord(C.Structure):
    """struct liminal_store_record: a host store's record."""
    _fields_ = [("seq", C.c_uint64), ("data", C.POINTER(C.c_uint8)), ("len", C.c_size_t)]


STORE_COMMIT_FN = C.CFUNCTYPE(C.c_int32, C.c_void_p, C.POINTER(StoreRecord), C.c_size_t,
                              C.POINTER(C.c_uint64), C.c_size_t)
STORE_EMIT_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_uint64, C.POINTER(C.c_uint8), C.c_size_t)
STORE_SCAN_FN = C.CFUNCTYPE(C.c_int32, C.c_void_p, STORE_EMIT_FN, C.c_void_p)


class StoreCallbacks(C.Structure):
    """struct liminal_store_callbacks: a host's own store (declared for the
    ABI check; the package does not offer host stores yet)."""
    _fields_ = [("commit", STORE_COMMIT_FN), ("scan", STORE_SCAN_FN), ("user", C.c_void_p),
                ("free_user", FREE_FN)]


# ---- callback lifetimes -------------------------------------------------
# The library owns a callback from the call that takes it and runs its
# free_user exactly once, after its last call returned. Until then the
# ctypes function object (and whatever Python state it closes over) must
# stay alive: each callback passed gets its own `user` key in _alive, and
# FREE drops that key. A key is never reused.

_alive: Dict[int, Any] = {}
_alive_lock = threading.Lock()
_next_key = 1


def keep(*objects: Any) -> int:
    """Keep `objects` alive until the library calls FREE with the returned key."""
    global _next_key
    with _alive_lock:
        key = _next_key
        _next_key += 1
        _alive[key] = objects
    return key


def _free(user: Optional[int]) -> None:
    if user is None:
        return
    with _alive_lock:
        _alive.pop(user, None)


FREE = FREE_FN(_free)  # module-level: lives as long as the interpreter


def kept_count() -> int:
    """How many callbacks the library still owns (for tests)."""
    with _alive_lock:
        return len(_alive)


def is_kept(key: int) -> bool:
    with _alive_lock:
        return key in _alive


# ---- signatures ---------------------------------------------------------

def _sig(name: str, restype: Any, *argtypes: Any) -> None:
    function = getattr(lib, name)
    function.restype = restype
    function.argtypes = list(argtypes)


S = C.c_int  # enum liminal_status
SIZE_P = C.POINTER(C.c_size_t)
OUT = C.POINTER(P)

_sig("liminal_status_str", C.c_char_p, C.c_int32)
_sig("liminal_status_name", C.c_char_p, C.c_int32)
_sig("liminal_status_is_retriable", C.c_bool, C.c_int32)
_sig("liminal_status_is_fatal", C.c_bool, C.c_int32)
_sig("liminal_last_error", C.c_char_p)
_sig("liminal_version", C.c_char_p)
_sig("liminal_has_remote", C.c_bool)

_sig("liminal_runtime_options_new", S, OUT)
_sig("liminal_runtime_options_free", None, P)
_sig("liminal_runtime_options_set_scheduler_threads", S, P, C.c_uint32)
_sig("liminal_runtime_options_set_routing_timeout_ms", S, P, C.c_uint64)
_sig("liminal_runtime_options_set_spin_us", S, P, C.c_uint64)
_sig("liminal_runtime_options_set_linger_us", S, P, C.c_uint64)
_sig("liminal_runtime_new", S, P, OUT)
_sig("liminal_runtime_drain", S, P, C.c_uint64, SIZE_P)
_sig("liminal_runtime_shutdown", S, P)
_sig("liminal_runtime_free", S, P)
_sig("liminal_runtime_metrics", S, P, C.POINTER(Metrics))
_sig("liminal_runtime_stats_json", S, P, C.c_char_p, C.c_size_t, SIZE_P)
_sig("liminal_runtime_stats_prometheus", S, P, C.c_char_p, C.c_size_t, SIZE_P)
_sig("liminal_runtime_set_stats_callback", S, P, C.c_uint64, StatsCallback)

_sig("liminal_message_new", S, OUT)
_sig("liminal_message_free", None, P)
_sig("liminal_message_set_text", S, P, C.c_char_p, C.c_char_p)
_sig("liminal_message_set_int", S, P, C.c_char_p, C.c_int64)
_sig("liminal_message_set_double", S, P, C.c_char_p, C.c_double)
_sig("liminal_message_set_bool", S, P, C.c_char_p, C.c_bool)
_sig("liminal_message_set_null", S, P, C.c_char_p)
_sig("liminal_message_set_payload", S, P, C.c_char_p, C.c_size_t)
_sig("liminal_message_field_type", S, P, C.c_char_p, C.POINTER(C.c_int))
_sig("liminal_message_get_text", S, P, C.c_char_p, C.c_char_p, C.c_size_t, SIZE_P)
_sig("liminal_message_get_int", S, P, C.c_char_p, C.POINTER(C.c_int64))
_sig("liminal_message_get_double", S, P, C.c_char_p, C.POINTER(C.c_double))
_sig("liminal_message_get_bool", S, P, C.c_char_p, C.POINTER(C.c_bool))
_sig("liminal_message_field_count", S, P, SIZE_P)
_sig("liminal_message_payload", S, P, C.POINTER(C.POINTER(C.c_uint8)), SIZE_P)
_sig("liminal_message_fields_json", S, P, C.c_char_p, C.c_size_t, SIZE_P)

_sig("liminal_routing_new", S, P, RouteCallback, C.c_char_p, C.c_size_t, C.c_char_p, OUT)
_sig("liminal_routing_builtin", S, C.c_int32, C.c_char_p, OUT)
_sig("liminal_routing_hash", C.c_uint64, P)
_sig("liminal_routing_free", None, P)

_sig("liminal_group_options_new", S, OUT)
_sig("liminal_group_options_free", None, P)
_sig("liminal_group_options_set_name", S, P, C.c_char_p)
_sig("liminal_group_options_set_max_attempts", S, P, C.c_uint32)
_sig("liminal_group_options_set_count_holding_crashes", S, P, C.c_bool)
_sig("liminal_group_options_set_auto_ack_ms", S, P, C.c_uint64)
_sig("liminal_group_options_set_waiting_room", S, P, C.c_size_t)
_sig("liminal_group_options_set_overflow", S, P, C.c_int32, C.c_uint64)
_sig("liminal_group_options_set_deadline_ms", S, P, C.c_uint64)
_sig("liminal_group_options_set_ack_lease_ms", S, P, C.c_uint64)
_sig("liminal_group_options_set_lease_policy", S, P, C.c_int32)
# Ordered keys.
_sig("liminal_group_options_set_key_field", S, P, C.c_char_p)
_sig("liminal_group_options_set_hold_failed_keys", S, P, C.c_bool)
_sig("liminal_group_release_key", S, P, C.c_char_p)
_sig("liminal_group_options_set_sticky_keys", S, P, C.c_bool)
_sig("liminal_dispatch_options_set_key", S, P, C.c_char_p)
_sig("liminal_message_ordering_key", S, P, C.c_char_p, C.c_size_t, SIZE_P)
_sig("liminal_group_waiting_keys", S, P, C.c_size_t, OUT)
_sig("liminal_key_list_count", C.c_size_t, P)
_sig("liminal_key_list_total", C.c_size_t, P)
_sig("liminal_key_list_get", S, P, C.c_size_t, C.POINTER(C.c_char_p), SIZE_P, C.POINTER(C.c_uint64))
_sig("liminal_key_list_free", None, P)
# Durable groups.
_sig("liminal_group_options_set_store", S, P, C.c_char_p)
_sig("liminal_group_options_set_store_sync_interval_ms", S, P, C.c_uint32)
_sig("liminal_group_options_set_recovered", S, P, RecoveredCallback)
_sig("liminal_group_options_set_store_callbacks", S, P, StoreCallbacks)
_sig("liminal_group_new", S, P, P, P, OUT)
_sig("liminal_group_free", None, P)
_sig("liminal_group_deploy", S, P, P)
_sig("liminal_group_routing_hash", C.c_uint64, P)
_sig("liminal_group_consumer_count", S, P, SIZE_P)
_sig("liminal_group_waiting", S, P, SIZE_P)
_sig("liminal_group_in_flight", S, P, SIZE_P)
_sig("liminal_group_consumer", S, P, C.c_char_p, OUT)
_sig("liminal_group_snapshot", S, P, OUT)
_sig("liminal_group_drain", S, P, C.c_uint64, SIZE_P)
_sig("liminal_group_set_dead_letter", S, P, DeadLetterCallback)
_sig("liminal_snapshot_count", C.c_size_t, P)
_sig("liminal_snapshot_get", S, P, C.c_size_t, C.POINTER(ConsumerView))
_sig("liminal_snapshot_free", None, P)

_sig("liminal_consumer_options_new", S, OUT)
_sig("liminal_consumer_options_free", None, P)
_sig("liminal_consumer_options_set_max_in_flight", S, P, C.c_uint32)
_sig("liminal_consumer_options_set_buffer_depth", S, P, C.c_uint32)
_sig("liminal_consumer_options_set_tags", S, P, C.POINTER(C.c_char_p), C.c_size_t)
_sig("liminal_consumer_options_set_ack_lease_ms", S, P, C.c_uint64)
_sig("liminal_consumer_register", S, P, C.c_char_p, DeliveryCallback, CrashCallback, P, OUT)
_sig("liminal_consumer_free", None, P)
_sig("liminal_consumer_id", C.c_char_p, P)
_sig("liminal_consumer_is_alive", C.c_bool, P)
_sig("liminal_consumer_is_paused", C.c_bool, P)
_sig("liminal_consumer_in_flight", S, P, C.POINTER(C.c_uint32))
_sig("liminal_consumer_set_buffer_depth", S, P, C.c_uint32)
_sig("liminal_consumer_set_tags", S, P, C.POINTER(C.c_char_p), C.c_size_t)
_sig("liminal_consumer_set_max_in_flight", S, P, C.c_uint32)
_sig("liminal_consumer_crash", S, P, C.c_char_p)
_sig("liminal_consumer_crash_at_next_delivery", S, P)
_sig("liminal_consumer_leave", S, P)
_sig("liminal_consumer_next_delivery", S, P, C.c_uint64, OUT)

_sig("liminal_delivery_keep", S, P, OUT)
_sig("liminal_delivery_ack", S, P)
_sig("liminal_delivery_crash", S, P, C.c_char_p)
_sig("liminal_delivery_release", S, P, C.c_uint64)
_sig("liminal_delivery_extend_lease", S, P, C.c_uint64)
_sig("liminal_delivery_free", None, P)
_sig("liminal_delivery_message", P, P)
_sig("liminal_delivery_dispatch_id", C.c_uint64, P)
_sig("liminal_delivery_id", C.c_uint64, P)
_sig("liminal_delivery_attempt", C.c_uint32, P)
_sig("liminal_delivery_redelivered", C.c_bool, P)
_sig("liminal_delivery_crashed_handling", C.c_uint32, P)
_sig("liminal_delivery_crashed_holding", C.c_uint32, P)
_sig("liminal_delivery_consumer_id", C.c_char_p, P)
_sig("liminal_delivery_message_id", S, P, C.c_char_p, C.c_size_t, SIZE_P)

_sig("liminal_dispatch_options_new", S, OUT)
_sig("liminal_dispatch_options_free", None, P)
_sig("liminal_dispatch_options_set_deadline_ms", S, P, C.c_uint64)
_sig("liminal_dispatch_options_set_timeout_ms", S, P, C.c_uint64)
_sig("liminal_group_dispatch", S, P, P, P, OUT)
_sig("liminal_group_dispatch_async", S, P, P, P, CompletionCallback, C.POINTER(C.c_uint64))
# (group, messages[count], count, options, completions[count], statuses[count], dispatch_ids[count])
_sig("liminal_group_dispatch_batch", S, P, C.POINTER(P), C.c_size_t, P, C.POINTER(CompletionCallback),
     C.POINTER(S), C.POINTER(C.c_uint64))

_sig("liminal_outcome_status", S, P)
_sig("liminal_outcome_dispatch_id", C.c_uint64, P)
_sig("liminal_outcome_attempts", C.c_uint32, P)
_sig("liminal_outcome_delivered_to", C.c_char_p, P)
_sig("liminal_outcome_rerouted_count", C.c_size_t, P)
_sig("liminal_outcome_rerouted_from", C.c_char_p, P, C.c_size_t)
_sig("liminal_outcome_reroute_ns", S, P, C.c_size_t, C.POINTER(C.c_uint64))
_sig("liminal_outcome_crashed_handling", C.c_uint32, P)
_sig("liminal_outcome_crashed_holding", C.c_uint32, P)
_sig("liminal_outcome_released", C.c_uint32, P)
_sig("liminal_outcome_lease_expired", C.c_uint32, P)
_sig("liminal_outcome_waited_ns", C.c_uint64, P)
_sig("liminal_outcome_is_poison", C.c_bool, P)
_sig("liminal_outcome_free", None, P)

_sig("liminal_remote_options_new", S, OUT)
_sig("liminal_remote_options_free", None, P)
_sig("liminal_remote_options_add_listen", S, P, C.c_char_p)
_sig("liminal_remote_options_add_connect", S, P, C.c_char_p)
_sig("liminal_remote_options_set_tls", S, P, C.c_char_p, C.c_char_p, C.c_char_p)
_sig("liminal_remote_options_set_credentials", S, P, C.c_char_p, C.c_char_p)
_sig("liminal_remote_options_set_users_file", S, P, C.c_char_p)
_sig("liminal_remote_options_set_lease_ms", S, P, C.c_uint64)
_sig("liminal_remote_options_set_allow_insecure", S, P, C.c_bool)
_sig("liminal_group_open_remote", S, P, C.c_char_p, P, CrashCallback, OUT)
_sig("liminal_remote_workers", S, P, SIZE_P)
_sig("liminal_remote_free", None, P)
_sig("liminal_worker_new", S, C.c_char_p, C.c_char_p, DeliveryCallback, P, P, OUT)
_sig("liminal_worker_wait_joined", S, P, C.c_uint64)
_sig("liminal_worker_next_delivery", S, P, C.c_uint64, OUT)
_sig("liminal_worker_incarnation", S, P, C.c_char_p, C.c_size_t, SIZE_P)
_sig("liminal_worker_free", None, P)
# Remote protocol 2 (declared; the Pythonic API does not offer them yet).
_sig("liminal_remote_incarnation", S, P, C.c_char_p, C.c_size_t, SIZE_P)
_sig("liminal_remote_stale_answers", S, P, C.POINTER(C.c_uint64))
_sig("liminal_worker_host_incarnation", S, P, C.c_char_p, C.c_size_t, SIZE_P)
_sig("liminal_worker_set_host_lost", S, P, HostLostCallback)
_sig("liminal_delivery_started", S, P)
