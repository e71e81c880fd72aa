"""The Pythonic API over the C ABI. See the package docstring."""

from __future__ import annotations

import atexit
import ctypes as C
import enum
import json
import logging
import math
import os
import threading
import weakref
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union,
                    cast)

from . import _ffi
from ._ffi import FREE, P, lib

log = logging.getLogger("liminal")


# ---- enumerations (values from include/liminal.h) -----------------------

class Status(enum.IntEnum):
    """`liminal_status`: the result of every fallible call."""
    OK = 0
    NULL_ARGUMENT = 1
    INVALID_ARGUMENT = 2
    DUPLICATE_CONSUMER = 3
    UNKNOWN_CONSUMER = 4
    NO_CONSUMER_AVAILABLE = 5
    UNKNOWN_CONSUMER_SELECTED = 6
    ROUTING_CRASHED = 7
    ROUTING_TIMED_OUT = 8
    SPAWN_FAILED = 9
    CONVERSATION_FAILED = 10
    ATTEMPTS_EXHAUSTED = 11
    STALE_DELIVERY = 12
    SHUT_DOWN = 13
    TIMED_OUT = 14
    WOULD_DEADLOCK = 15
    BUFFER_TOO_SMALL = 16
    NOT_FOUND = 17
    PANIC = 18
    CONSUMER_GONE = 19
    QUEUE_FULL = 20
    EXPIRED = 21
    DROPPED = 22
    DRAINING = 23
    UNSUPPORTED = 24
    STORE_LOCKED = 25
    STORE_FAILED = 26


class Verdict(enum.IntEnum):
    """A delivery handler's answer (`LIMINAL_VERDICT_*`)."""
    ACK = 1  #: processed: the dispatch completes as delivered to this consumer
    CRASH = 2  #: this consumer is broken: it dies, what it holds is re-routed
    DEFER = 3  #: answer later through `Delivery.keep()` (or answered already)
    RELEASE = 4  #: hand the message back without dying: routed to another consumer


class CrashKind(enum.IntEnum):
    """Why a consumer is reported to its crash callback (`liminal_crash_kind`)."""
    VERDICT = 1
    PANICKED = 2
    DECLARED = 3
    INJECTED = 4
    EXITED = 5
    LEASE_EXPIRED = 6
    CONNECTION_LOST = 7
    SESSION_EXPIRED = 8


class Overflow(enum.IntEnum):
    """What a dispatch does when its group's waiting room is full."""
    REJECT = 1
    BLOCK = 2
    DROP_OLDEST = 3


class LeasePolicy(enum.IntEnum):
    """What happens to a consumer that lets an acknowledgement lease expire."""
    CRASH = 1
    QUARANTINE = 2


class Builtin(enum.IntEnum):
    """Built-in routers (`LIMINAL_BUILTIN_*`)."""
    FIRST_WITH_CAPACITY = 0
    LEAST_LOADED = 1
    AFFINITY = 2
    STICKY_KEY = 3


class FieldType(enum.IntEnum):
    TEXT = 0
    INT = 1
    DOUBLE = 2
    BOOL = 3
    NULL = 4


_ROUTE_SELECTED, _ROUTE_NONE, _ROUTE_FAILED = 0, 1, 2
_TEXT_MAX = 1 << 31

FieldValue = Union[str, int, float, bool, None]
Fields = Mapping[str, FieldValue]
#: A message of `Group.dispatch_batch`: its fields, or (fields, payload).
BatchMessage = Union[Fields, Tuple[Optional[Fields], Optional[bytes]]]


# ---- errors -------------------------------------------------------------

def status_name(status: int) -> str:
    """The enumerator name of a status, e.g. "LIMINAL_QUEUE_FULL"."""
    return cast(bytes, lib.liminal_status_name(int(status))).decode()


class LiminalError(Exception):
    """A call failed. `status` is the `Status` (an int for values this
    binding does not know), `name` its enumerator name from
    `liminal_status_name` (e.g. "LIMINAL_QUEUE_FULL"), `detail` the
    library's `liminal_last_error()` text, `outcome` the trail of a failed
    asynchronous dispatch (None otherwise)."""

    def __init__(self, status: int, detail: str = "", outcome: Optional["Outcome"] = None):
        try:
            self.status: Union[Status, int] = Status(status)
        except ValueError:
            self.status = status
        self.name = status_name(status)
        self.detail = detail
        self.outcome = outcome
        super().__init__(f"{self.name}: {detail}" if detail else self.name)

    @property
    def retriable(self) -> bool:
        """Whether trying again later may succeed (`liminal_status_is_retriable`)."""
        return bool(lib.liminal_status_is_retriable(int(self.status)))

    @property
    def fatal(self) -> bool:
        """Whether the handle that returned it can no longer be used."""
        return bool(lib.liminal_status_is_fatal(int(self.status)))


def _error(status: int) -> LiminalError:
    detail = cast(bytes, lib.liminal_last_error()).decode("utf-8", "replace")
    return LiminalError(status, detail)


def _check(status: int) -> None:
    # liminal_last_error() is per thread: read it right after the call.
    if status != 0:
        raise _error(status)


# ---- small helpers ------------------------------------------------------

def _text(value: str, what: str = "text") -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    return value.encode("utf-8")


def _ms(seconds: Optional[float], what: str, minimum: int = 0) -> int:
    """Seconds (the Python convention) to the library's milliseconds, rounded up."""
    if seconds is None:
        return 0
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0 \
            or math.isnan(seconds):
        raise ValueError(f"{what} must be a non-negative number of seconds, not {seconds!r}")
    return max(minimum, math.ceil(seconds * 1000))


def _reason_bytes(text: str) -> bytes:
    return text.encode("utf-8", "replace").replace(b"\0", b"\\0") or b"(no reason)"


def _next_delivery(call: Any, ptr: Any, timeout: Optional[float]) -> Optional["Delivery"]:
    """Pull mode, for a consumer or a worker (`call` is its next-delivery
    function): wait up to `timeout` seconds (None: forever, in hour-long
    waits) for the next delivery, owned; None when none came."""
    out = P()
    wait = _ms(timeout, "timeout") if timeout is not None else 3_600_000
    while True:
        status = call(ptr, wait, C.byref(out))
        if status == Status.TIMED_OUT and timeout is None:
            continue
        if status == Status.TIMED_OUT:
            return None
        _check(status)
        return Delivery(out.value, owned=True)


def _exception_reason(error: BaseException) -> str:
    try:
        text = str(error)
        return f"{type(error).__name__}: {text}" if text else type(error).__name__
    except BaseException:  # noqa: BLE001 - a __str__ that raises
        return f"{type(error).__name__} (its text could not be read)"


def _copied_text(function: Callable[..., int], handle: Any, guess: int = 0) -> str:
    """Text from a snprintf-style copy (`buffer`, `capacity`, `*len_out`);
    with a `guess` of its length, one call when the guess is enough."""
    length = C.c_size_t()
    if guess > 0:
        buffer = C.create_string_buffer(guess)
        status = function(handle, buffer, guess, C.byref(length))
        if status == Status.OK:
            return buffer.raw[:length.value].decode("utf-8")
    else:
        status = function(handle, None, 0, C.byref(length))
    if status not in (Status.OK, Status.BUFFER_TOO_SMALL):
        raise _error(status)
    for _ in range(16):
        buffer = C.create_string_buffer(length.value + 1)
        status = function(handle, buffer, len(buffer), C.byref(length))
        if status == Status.OK:
            return buffer.raw[:length.value].decode("utf-8")
        if status != Status.BUFFER_TOO_SMALL:
            raise _error(status)
    raise LiminalError(Status.BUFFER_TOO_SMALL, "the text kept growing")


def _report_callback_error(where: str) -> None:
    """An exception escaped a callback that has no way to report it to the
    library (crash, completion, dead letter, stats, routing): log it."""
    try:
        log.error("exception in a liminal %s callback", where, exc_info=True)
    except BaseException:  # noqa: BLE001 - never let anything cross into C
        pass


def _tags_array(tags: Sequence[str]) -> Tuple[Any, int]:
    encoded = [_text(tag, "a tag") for tag in tags]
    array = (C.c_char_p * max(1, len(encoded)))(*encoded)
    return array, len(encoded)


# ---- messages -----------------------------------------------------------

def _new_message(fields: Optional[Fields], payload: Optional[bytes]) -> P:
    handle = P()
    _check(lib.liminal_message_new(C.byref(handle)))
    try:
        for name, value in (fields or {}).items():
            key = _text(name, "a field name")
            if value is None:
                _check(lib.liminal_message_set_null(handle, key))
            elif isinstance(value, bool):
                _check(lib.liminal_message_set_bool(handle, key, value))
            elif isinstance(value, int):
                _check(lib.liminal_message_set_int(handle, key, value))
            elif isinstance(value, float):
                _check(lib.liminal_message_set_double(handle, key, value))
            elif isinstance(value, str):
                _check(lib.liminal_message_set_text(handle, key, _text(value)))
            else:
                raise TypeError(f"field {name!r}: {type(value).__name__} is not one of "
                                "str, int, float, bool, None")
        if payload is not None:
            data = bytes(payload)
            _check(lib.liminal_message_set_payload(handle, data, len(data)))
    except BaseException:
        lib.liminal_message_free(handle)
        raise
    return handle


@dataclass(frozen=True)
class ReceivedMessage:
    """A copy of a delivered message: its fields (in order), payload and
    ordering key (None for an unordered message)."""
    fields: Dict[str, FieldValue]
    payload: bytes
    key: Optional[str] = None

    def __getitem__(self, name: str) -> FieldValue:
        return self.fields[name]

    def get(self, name: str, default: FieldValue = None) -> FieldValue:
        return self.fields.get(name, default)

    @classmethod
    def _read(cls, message: Any) -> "ReceivedMessage":
        names = json.loads(_copied_text(lib.liminal_message_fields_json, message),
                           object_pairs_hook=lambda pairs: [name for name, _ in pairs])
        fields: Dict[str, FieldValue] = {}
        for name in names:
            key = name.encode("utf-8")
            kind = C.c_int()
            _check(lib.liminal_message_field_type(message, key, C.byref(kind)))
            if kind.value == FieldType.TEXT:
                fields[name] = _copied_text(
                    lambda m, b, c, n, key=key: lib.liminal_message_get_text(m, key, b, c, n), message)
            elif kind.value == FieldType.INT:
                i = C.c_int64()
                _check(lib.liminal_message_get_int(message, key, C.byref(i)))
                fields[name] = i.value
            elif kind.value == FieldType.DOUBLE:
                d = C.c_double()
                _check(lib.liminal_message_get_double(message, key, C.byref(d)))
                fields[name] = d.value
            elif kind.value == FieldType.BOOL:
                b = C.c_bool()
                _check(lib.liminal_message_get_bool(message, key, C.byref(b)))
                fields[name] = b.value
            else:
                fields[name] = None
        data = C.POINTER(C.c_uint8)()
        length = C.c_size_t()
        _check(lib.liminal_message_payload(message, C.byref(data), C.byref(length)))
        payload = C.string_at(data, length.value) if data and length.value else b""
        key: Optional[str] = None
        try:
            key = _copied_text(lib.liminal_message_ordering_key, message)
        except LiminalError as error:
            if error.status != Status.NOT_FOUND:  # NOT_FOUND: unordered
                raise
        return cls(fields, payload, key)


@dataclass(frozen=True)
class WaitingKey:
    """An ordering key with messages waiting behind its head."""
    key: str
    #: Its messages not completed: the head plus those behind it.
    depth: int
    #: Seconds its head has been its head.
    head_age: float


# ---- outcomes -----------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """How a dispatch ended, and its trail (a copy of `liminal_outcome`)."""
    status: Union[Status, int]
    dispatch_id: int
    attempts: int
    delivered_to: Optional[str]
    rerouted_from: Tuple[str, ...]
    reroute_ns: Tuple[int, ...]
    crashed_handling: int
    crashed_holding: int
    released: int
    lease_expired: int
    waited_ns: int
    #: Dead-lettered as poison: ATTEMPTS_EXHAUSTED, and every failed attempt
    #: was a consumer dying while handling it (no release, no expired lease).
    poison: bool = False

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    @classmethod
    def _read(cls, outcome: Any) -> "Outcome":
        raw_status = lib.liminal_outcome_status(outcome)
        try:
            status: Union[Status, int] = Status(raw_status)
        except ValueError:
            status = raw_status
        delivered = lib.liminal_outcome_delivered_to(outcome)
        count = lib.liminal_outcome_rerouted_count(outcome)
        rerouted = tuple(cast(bytes, lib.liminal_outcome_rerouted_from(outcome, i)).decode()
                         for i in range(count))
        timings = []
        for i in range(count):
            ns = C.c_uint64()
            # The last failure of a message that used up its attempts has no timing.
            if lib.liminal_outcome_reroute_ns(outcome, i, C.byref(ns)) != Status.OK:
                break
            timings.append(ns.value)
        return cls(
            status=status,
            dispatch_id=lib.liminal_outcome_dispatch_id(outcome),
            attempts=lib.liminal_outcome_attempts(outcome),
            delivered_to=delivered.decode() if delivered is not None else None,
            rerouted_from=rerouted,
            reroute_ns=tuple(timings),
            crashed_handling=lib.liminal_outcome_crashed_handling(outcome),
            crashed_holding=lib.liminal_outcome_crashed_holding(outcome),
            released=lib.liminal_outcome_released(outcome),
            lease_expired=lib.liminal_outcome_lease_expired(outcome),
            waited_ns=lib.liminal_outcome_waited_ns(outcome),
            poison=bool(lib.liminal_outcome_is_poison(outcome)),
        )


class DispatchFuture(Future[Outcome]):
    """The result of `Group.dispatch_async`: a `concurrent.futures.Future`
    whose result is the `Outcome` (or whose exception is a `LiminalError`
    carrying it), plus the `dispatch_id`. It completes on a library thread:
    callbacks added with `add_done_callback` run there, under the
    completion callback's contract (no blocking library calls)."""
    dispatch_id: int = 0


def _new_future() -> DispatchFuture:
    future = DispatchFuture()
    future.set_running_or_notify_cancel()  # it cannot be cancelled
    return future


def _complete_future(future: DispatchFuture, on_complete: Optional[Callable[[Outcome], Any]],
                     status: int, outcome_ptr: Any) -> None:
    """A completion callback's work (on a library thread): `on_complete`
    first, then the future; nothing raises into the library."""
    try:
        outcome: Optional[Outcome] = None
        try:
            outcome = Outcome._read(outcome_ptr)
        except BaseException:  # noqa: BLE001
            _report_callback_error("completion")
        if on_complete is not None and outcome is not None:
            try:
                on_complete(outcome)
            except BaseException:  # noqa: BLE001
                _report_callback_error("completion")
        if status == Status.OK and outcome is not None:
            future.set_result(outcome)
        else:
            detail = cast(bytes, lib.liminal_status_str(status)).decode()
            future.set_exception(LiminalError(status, detail, outcome))
    except BaseException:  # noqa: BLE001
        _report_callback_error("completion")


# ---- deliveries ---------------------------------------------------------

@dataclass(frozen=True)
class CrashReport:
    """What a crash callback is told (`liminal_crash_fn`)."""
    consumer_id: str
    kind: Union[CrashKind, int]
    reason: str
    alive: bool  #: True when it survived an expired lease (quarantine)


class Delivery:
    """One delivery (one attempt of one dispatch).

    Inside a handler it is *borrowed*: usable until the handler returns
    (then every call raises). `keep()` makes an owned copy to answer later
    from any thread; owned deliveries (kept, or pulled with
    `next_delivery`) are context managers that free the copy."""

    __slots__ = ("_ptr", "_owned", "_answered", "message", "message_id", "dispatch_id", "id", "attempt",
                 "redelivered", "crashed_handling", "crashed_holding", "consumer_id", "__weakref__")

    def __init__(self, ptr: Any, owned: bool):
        self._ptr: Optional[int] = ptr
        self._owned = owned
        self._answered = False
        try:
            self.message = ReceivedMessage._read(lib.liminal_delivery_message(ptr))
            #: The message's stable id, the same for every attempt
            #: (`liminal_delivery_message_id`): the dispatch id in decimal
            #: for a local delivery, `<host incarnation>-<dispatch id>` on a
            #: remote worker, `<store id>-<sequence number>` for a durable
            #: group's message (across host restarts): deduplicate on it.
            self.message_id: str = _copied_text(lib.liminal_delivery_message_id, ptr, 64)
            self.dispatch_id: int = lib.liminal_delivery_dispatch_id(ptr)
            self.id: int = lib.liminal_delivery_id(ptr)
            self.attempt: int = lib.liminal_delivery_attempt(ptr)
            self.redelivered: bool = bool(lib.liminal_delivery_redelivered(ptr))
            self.crashed_handling: int = lib.liminal_delivery_crashed_handling(ptr)
            self.crashed_holding: int = lib.liminal_delivery_crashed_holding(ptr)
            consumer = lib.liminal_delivery_consumer_id(ptr)
            self.consumer_id: str = consumer.decode() if consumer is not None else ""
        except BaseException:
            if owned:
                lib.liminal_delivery_free(ptr)
            self._ptr = None
            raise

    def __repr__(self) -> str:
        return (f"<liminal.Delivery dispatch {self.dispatch_id} attempt {self.attempt} "
                f"to {self.consumer_id!r}>")

    @property
    def fields(self) -> Dict[str, FieldValue]:
        return self.message.fields

    @property
    def payload(self) -> bytes:
        return self.message.payload

    def _live(self) -> int:
        ptr = self._ptr
        if ptr is None:
            raise RuntimeError("this delivery is no longer usable: a borrowed delivery only inside "
                               "its handler (keep() it to answer later), an owned one until closed")
        return ptr

    def _answer(self, status: int) -> None:
        _check(status)
        self._answered = True

    def ack(self) -> None:
        """Acknowledge: the dispatch completes as delivered to this consumer.
        Raises `LiminalError` STALE_DELIVERY if this attempt was already
        answered, re-routed or withdrawn."""
        self._answer(lib.liminal_delivery_ack(self._live()))

    def crash(self, reason: str) -> None:
        """Declare the consumer holding it crashed: it dies, what it holds is re-routed."""
        self._answer(lib.liminal_delivery_crash(self._live(), _reason_bytes(reason)))

    def release(self, delay: float = 0.0) -> None:
        """Hand the message back without dying: routed to another consumer
        no sooner than `delay` seconds from now."""
        self._answer(lib.liminal_delivery_release(self._live(), _ms(delay, "delay")))

    def extend_lease(self, seconds: float) -> None:
        """Keep this delivery `seconds` more from now (at least 1 ms)."""
        _check(lib.liminal_delivery_extend_lease(self._live(), _ms(seconds, "lease", minimum=1)))

    def keep(self) -> "Delivery":
        """An owned copy, to answer later from any thread."""
        out = P()
        _check(lib.liminal_delivery_keep(self._live(), C.byref(out)))
        return Delivery(out.value, owned=True)

    def close(self) -> None:
        """Free an owned delivery (nothing for a borrowed one). Unanswered,
        its attempt stays held until its consumer crashes or leaves, or its
        lease or deadline ends."""
        ptr, self._ptr = self._ptr, None
        if ptr is not None and self._owned:
            lib.liminal_delivery_free(ptr)

    def __enter__(self) -> "Delivery":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_owned", False):
            self.close()


Handler = Callable[[Delivery], Optional[Verdict]]
_VERDICTS = frozenset(int(v) for v in Verdict)


def _delivery_function(handler: Handler) -> Any:
    """Wrap a Python handler as a `liminal_delivery_fn`.

    The handler returns a `Verdict`. After answering the borrowed delivery
    itself (ack/crash/release) it may return None (DEFER is answered for it).
    Anything else is a crash. A handler that raises (any BaseException) is a
    crash verdict with the exception's text as the reason: the delivery is
    answered with `liminal_delivery_crash(reason)` and the callback returns
    `LIMINAL_VERDICT_CRASH`, never ACK or DEFER, so the message is re-routed
    to another consumer and never lost to a Python exception."""

    def deliver(user: Any, ptr: Any) -> int:
        delivery: Optional[Delivery] = None
        try:
            delivery = Delivery(ptr, owned=False)
            result = handler(delivery)
            if result is None and delivery._answered:
                return int(Verdict.DEFER)
            if isinstance(result, bool) or not isinstance(result, int) or int(result) not in _VERDICTS:
                raise TypeError(f"the handler returned {result!r}, which is not a liminal.Verdict")
            return int(result)
        except BaseException as error:  # noqa: BLE001 - everything becomes a crash verdict
            try:
                reason = _exception_reason(error)
                log.warning("a liminal delivery handler raised: its consumer is declared crashed "
                            "(%s)", reason, exc_info=True)
                lib.liminal_delivery_crash(ptr, _reason_bytes(reason))
            except BaseException:  # noqa: BLE001
                pass
            return int(Verdict.CRASH)
        finally:
            if delivery is not None:
                delivery._ptr = None  # borrowed: unusable once the handler returned

    return _ffi.DELIVERY_FN(deliver)


def _crash_function(on_crash: Callable[[CrashReport], Any]) -> Any:
    def crashed(user: Any, consumer_id: bytes, kind: int, reason: bytes, alive: bool) -> None:
        try:
            try:
                crash_kind: Union[CrashKind, int] = CrashKind(kind)
            except ValueError:
                crash_kind = kind
            on_crash(CrashReport(consumer_id.decode("utf-8", "replace"), crash_kind,
                                 (reason or b"").decode("utf-8", "replace"), bool(alive)))
        except BaseException:  # noqa: BLE001
            _report_callback_error("crash")

    return _ffi.CRASH_FN(crashed)


def _delivery_callback(handler: Optional[Handler]) -> Tuple[Any, Optional[int]]:
    if handler is None:  # pull mode
        return _ffi.DeliveryCallback(_ffi.DELIVERY_FN(), None, _ffi.FREE_FN()), None
    function = _delivery_function(handler)
    key = _ffi.keep(function, handler)
    return _ffi.DeliveryCallback(function, key, FREE), key


def _crash_callback(on_crash: Optional[Callable[[CrashReport], Any]]) -> Tuple[Any, Optional[int]]:
    if on_crash is None:
        return _ffi.CrashCallback(_ffi.CRASH_FN(), None, _ffi.FREE_FN()), None
    function = _crash_function(on_crash)
    key = _ffi.keep(function, on_crash)
    return _ffi.CrashCallback(function, key, FREE), key


def _consumer_options(max_in_flight: Optional[int], buffer_depth: Optional[int],
                      tags: Optional[Sequence[str]], ack_lease: Optional[float]) -> P:
    options = P()
    _check(lib.liminal_consumer_options_new(C.byref(options)))
    try:
        if max_in_flight is not None:
            _check(lib.liminal_consumer_options_set_max_in_flight(options, max_in_flight))
        if buffer_depth is not None:
            _check(lib.liminal_consumer_options_set_buffer_depth(options, buffer_depth))
        if tags is not None:
            array, count = _tags_array(tags)
            _check(lib.liminal_consumer_options_set_tags(options, array, count))
        if ack_lease is not None:
            _check(lib.liminal_consumer_options_set_ack_lease_ms(options, _ms(ack_lease, "ack_lease", 1)))
    except BaseException:
        lib.liminal_consumer_options_free(options)
        raise
    return options


class _Handle:
    """A library handle freed by close(), `with` or garbage collection."""
    _ptr: Optional[int] = None

    def _live(self) -> int:
        ptr = self._ptr
        if ptr is None:
            raise ValueError(f"{type(self).__name__} is closed")
        return ptr

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if self._ptr is not None:
                self._release_handle()
        except BaseException:  # noqa: BLE001 - never from a finaliser
            pass

    def _release_handle(self) -> None:
        self.close()


def _size(function: Callable[..., int], handle: int) -> int:
    out = C.c_size_t()
    _check(function(handle, C.byref(out)))
    return out.value


class Consumer(_Handle):
    """A registered consumer. `close()` (and leaving a `with` block) makes it
    leave its group (what it holds is re-routed; nothing if it already
    crashed or left) and frees the handle; `detach()` frees the handle only
    (the consumer stays until it leaves, crashes, or its group closes)."""

    def __init__(self, group: "Group", ptr: int, consumer_id: str,
                 delivery_key: Optional[int], crash_key: Optional[int]):
        self._group = group
        self._ptr = ptr
        self.id = consumer_id
        self._delivery_key = delivery_key
        self._crash_key = crash_key

    def __repr__(self) -> str:
        return f"<liminal.Consumer {self.id!r}{' closed' if self.closed else ''}>"

    @property
    def is_alive(self) -> bool:
        return bool(lib.liminal_consumer_is_alive(self._live()))

    @property
    def is_paused(self) -> bool:
        """Paused after an expired lease under `LeasePolicy.QUARANTINE`."""
        return bool(lib.liminal_consumer_is_paused(self._live()))

    @property
    def in_flight(self) -> int:
        out = C.c_uint32()
        _check(lib.liminal_consumer_in_flight(self._live(), C.byref(out)))
        return out.value

    @property
    def callbacks_released(self) -> bool:
        """Whether the library has released this consumer's Python callbacks
        (their free_user ran: it crashed, left, or its group or runtime closed)."""
        return all(key is None or not _ffi.is_kept(key) for key in (self._delivery_key, self._crash_key))

    def set_buffer_depth(self, depth: int) -> None:
        _check(lib.liminal_consumer_set_buffer_depth(self._live(), depth))

    def set_tags(self, tags: Sequence[str]) -> None:
        array, count = _tags_array(tags)
        _check(lib.liminal_consumer_set_tags(self._live(), array, count))

    def set_max_in_flight(self, max_in_flight: int) -> None:
        _check(lib.liminal_consumer_set_max_in_flight(self._live(), max_in_flight))

    def crash(self, reason: str) -> None:
        """Declare it crashed now (its crash callback runs on this thread)."""
        _check(lib.liminal_consumer_crash(self._live(), _reason_bytes(reason)))

    def crash_at_next_delivery(self) -> None:
        """Fault injection: crash at the next delivery, before the handler sees it."""
        _check(lib.liminal_consumer_crash_at_next_delivery(self._live()))

    def leave(self) -> None:
        """Leave the group now; what it holds is re-routed (not as a crash)."""
        _check(lib.liminal_consumer_leave(self._live()))

    def next_delivery(self, timeout: Optional[float] = None) -> Optional[Delivery]:
        """Pull mode: wait up to `timeout` seconds (None: forever) for the
        next delivery; None when none came. The result is owned: answer it,
        then close it (or use `with`)."""
        return _next_delivery(lib.liminal_consumer_next_delivery, self._live(), timeout)

    def detach(self) -> None:
        """Free the handle only; the consumer itself stays in its group."""
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            lib.liminal_consumer_free(ptr)

    def close(self) -> None:
        ptr = self._ptr
        if ptr is None:
            return
        status = lib.liminal_consumer_leave(ptr)
        if status not in (Status.OK, Status.CONSUMER_GONE, Status.SHUT_DOWN):
            log.warning("liminal: consumer %r could not leave: %s", self.id, status_name(status))
        self.detach()

    def _release_handle(self) -> None:
        self.detach()  # garbage collection never removes a consumer


@dataclass(frozen=True)
class ConsumerInfo:
    """What a routing function (or a snapshot) sees of one consumer."""
    id: str
    in_flight: int
    max_in_flight: int
    buffer_depth: int
    tags: Tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def _read(cls, view: Any) -> "ConsumerInfo":
        return cls(view.id.decode(), view.in_flight, view.max_in_flight, view.buffer_depth,
                   tuple(view.tags[i].decode() for i in range(view.tag_count)))


# ---- routing ------------------------------------------------------------

RouteFunction = Callable[[ReceivedMessage, List[ConsumerInfo]], Optional[str]]


class Routing(_Handle):
    """A routing function: `Routing.builtin(...)` or `Runtime.routing(fn, ...)`.
    Groups keep their own reference; close the handle when done with it."""

    def __init__(self, ptr: int, key: Optional[int] = None):
        self._ptr = ptr
        self._key = key

    @classmethod
    def builtin(cls, kind: Builtin = Builtin.FIRST_WITH_CAPACITY, field: Optional[str] = None) -> "Routing":
        """A built-in router; `field` names the message field for AFFINITY and STICKY_KEY."""
        out = P()
        _check(lib.liminal_routing_builtin(int(kind), _text(field) if field is not None else None,
                                           C.byref(out)))
        return cls(cast(int, out.value))

    @property
    def hash(self) -> int:
        """The routing function's 64-bit content hash."""
        return int(lib.liminal_routing_hash(self._live()))

    def close(self) -> None:
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            lib.liminal_routing_free(ptr)


def _route_function(function: RouteFunction) -> Any:
    selected: List[Any] = [None]  # calls never overlap: one routing thread

    def route(user: Any, message: Any, views: Any, count: int, out: Any) -> int:
        try:
            consumers = [ConsumerInfo._read(views[i]) for i in range(count)]
            choice = function(ReceivedMessage._read(message), consumers)
            if choice is None:
                return _ROUTE_NONE
            buffer = C.create_string_buffer(_text(choice, "the selected consumer id"))
            selected[0] = buffer  # valid until the next call; the library copies it
            out[0] = C.cast(buffer, C.c_void_p)
            return _ROUTE_SELECTED
        except BaseException:  # noqa: BLE001 - the dispatch fails with ROUTING_CRASHED
            _report_callback_error("routing")
            return _ROUTE_FAILED

    return _ffi.ROUTE_FN(route)


# ---- groups -------------------------------------------------------------

DeadLetterFunction = Callable[[ReceivedMessage, Outcome], Any]
RecoveredFunction = Callable[[ReceivedMessage, Outcome], Any]


def _recovered_callback(function: RecoveredFunction) -> Any:
    """A `liminal_recovered_callback` calling `function(message, outcome)`;
    kept alive until the library runs its free_user."""

    def recovered(user: Any, message: Any, outcome: Any) -> None:
        try:
            function(ReceivedMessage._read(message), Outcome._read(outcome))
        except BaseException:  # noqa: BLE001 - never into the library
            _report_callback_error("recovered")

    c_function = _ffi.RECOVERED_FN(recovered)
    key = _ffi.keep(c_function, function)
    return _ffi.RecoveredCallback(c_function, key, FREE)


class Group(_Handle):
    """A consumer group. `close()` (or leaving a `with` block) closes it:
    every consumer leaves and what waits or is held fails with
    NO_CONSUMER_AVAILABLE (a durable group's messages that fail so stay in
    its store for the next group opened on it, and the store is let go)."""

    def __init__(self, runtime: "Runtime", ptr: int, name: Optional[str], store: Optional[str] = None):
        self._runtime = runtime
        self._ptr = ptr
        self.name = name
        #: The store's directory of a durable group (None: not durable).
        self.store = store

    def __repr__(self) -> str:
        return f"<liminal.Group {self.name!r}{' closed' if self.closed else ''}>"

    # -- consumers
    def consumer(self, consumer_id: str, handler: Optional[Handler] = None, *,
                 on_crash: Optional[Callable[[CrashReport], Any]] = None,
                 max_in_flight: Optional[int] = None, buffer_depth: Optional[int] = None,
                 tags: Optional[Sequence[str]] = None, ack_lease: Optional[float] = None) -> Consumer:
        """Register consumer `consumer_id`. `handler(delivery)` runs on a
        library thread for each delivery (push mode) and returns a
        `Verdict`; without a handler the consumer pulls (`next_delivery`).
        `on_crash(report)` is told when it crashes or survives an expired
        lease. `ack_lease` (seconds) overrides the group's."""
        group = self._live()
        key_bytes = _text(consumer_id, "consumer id")
        options = _consumer_options(max_in_flight, buffer_depth, tags, ack_lease)
        try:
            delivery, delivery_key = _delivery_callback(handler)
            crash, crash_key = _crash_callback(on_crash)
            out = P()
            # The library owns both callbacks from here on, even on failure.
            _check(lib.liminal_consumer_register(group, key_bytes, delivery, crash, options,
                                                 C.byref(out)))
        finally:
            lib.liminal_consumer_options_free(options)
        return Consumer(self, cast(int, out.value), consumer_id, delivery_key, crash_key)

    def find_consumer(self, consumer_id: str) -> Consumer:
        """A new handle to the live consumer `consumer_id` (close() it: it leaves)."""
        out = P()
        _check(lib.liminal_group_consumer(self._live(), _text(consumer_id), C.byref(out)))
        return Consumer(self, cast(int, out.value), consumer_id, None, None)

    def snapshot(self) -> List[ConsumerInfo]:
        """The group's consumers, in id order."""
        out = P()
        _check(lib.liminal_group_snapshot(self._live(), C.byref(out)))
        try:
            views = []
            for i in range(lib.liminal_snapshot_count(out)):
                view = _ffi.ConsumerView()
                _check(lib.liminal_snapshot_get(out, i, C.byref(view)))
                views.append(ConsumerInfo._read(view))
            return views
        finally:
            lib.liminal_snapshot_free(out)

    @property
    def consumer_count(self) -> int:
        return _size(lib.liminal_group_consumer_count, self._live())

    @property
    def waiting(self) -> int:
        """Messages waiting for a consumer now (the waiting room, messages
        behind their ordering key's head included)."""
        return _size(lib.liminal_group_waiting, self._live())

    @property
    def in_flight(self) -> int:
        """Accepted dispatches not completed yet."""
        return _size(lib.liminal_group_in_flight, self._live())

    @property
    def routing_hash(self) -> int:
        return int(lib.liminal_group_routing_hash(self._live()))

    def deploy(self, routing: Routing) -> None:
        """Hot-deploy another routing function."""
        _check(lib.liminal_group_deploy(self._live(), routing._live()))

    def release_key(self, key: str) -> bool:
        """Let `key`, held after its head was dead-lettered (a group made
        with `hold_failed_keys=True`), move on: its next message is routed.
        Returns False when the key was not held. Safe from any callback."""
        status = lib.liminal_group_release_key(self._live(), _text(key, "key"))
        if status == Status.NOT_FOUND:
            return False
        _check(status)
        return True

    # -- dispatch
    def waiting_keys(self, max_keys: int = 16) -> Tuple[List[WaitingKey], int]:
        """At most `max_keys` of the ordering keys that have messages waiting
        behind their head, deepest first, and how many such keys there are."""
        out = P()
        _check(lib.liminal_group_waiting_keys(self._live(), max_keys, C.byref(out)))
        try:
            keys = []
            for i in range(lib.liminal_key_list_count(out)):
                key = C.c_char_p()
                depth = C.c_size_t()
                age = C.c_uint64()
                _check(lib.liminal_key_list_get(out, i, C.byref(key), C.byref(depth), C.byref(age)))
                keys.append(WaitingKey(cast(bytes, key.value).decode(), depth.value, age.value / 1e9))
            return keys, int(lib.liminal_key_list_total(out))
        finally:
            lib.liminal_key_list_free(out)

    def _dispatch_options(self, deadline: Optional[float], timeout: Optional[float],
                          key: Optional[str] = None) -> Optional[P]:
        if deadline is None and timeout is None and key is None:
            return None
        options = P()
        _check(lib.liminal_dispatch_options_new(C.byref(options)))
        try:
            if deadline is not None:
                _check(lib.liminal_dispatch_options_set_deadline_ms(options, _ms(deadline, "deadline", 1)))
            if timeout is not None:
                _check(lib.liminal_dispatch_options_set_timeout_ms(options, _ms(timeout, "timeout", 1)))
            if key is not None:
                _check(lib.liminal_dispatch_options_set_key(options, _text(key, "ordering key")))
        except BaseException:
            lib.liminal_dispatch_options_free(options)
            raise
        return options

    def dispatch(self, fields: Optional[Fields] = None, payload: Optional[bytes] = None, *,
                 deadline: Optional[float] = None, timeout: Optional[float] = None,
                 key: Optional[str] = None) -> Outcome:
        """Dispatch a message and wait for its outcome. Raises `LiminalError`
        when it was not delivered (ATTEMPTS_EXHAUSTED, EXPIRED, TIMED_OUT
        for `timeout`, …) or was refused (QUEUE_FULL, DRAINING, …).
        `deadline` and `timeout` are in seconds; `key` orders it behind the
        messages with the same key (overriding the group's `key_field`).
        Not from a handler."""
        group = self._live()
        message = _new_message(fields, payload)
        options = None
        try:
            options = self._dispatch_options(deadline, timeout, key)
            out = P()
            _check(lib.liminal_group_dispatch(group, message, options, C.byref(out)))
        finally:
            lib.liminal_message_free(message)
            lib.liminal_dispatch_options_free(options)
        try:
            return Outcome._read(out)
        finally:
            lib.liminal_outcome_free(out)

    def dispatch_async(self, fields: Optional[Fields] = None, payload: Optional[bytes] = None, *,
                       deadline: Optional[float] = None, key: Optional[str] = None,
                       on_complete: Optional[Callable[[Outcome], Any]] = None) -> DispatchFuture:
        """Dispatch a message and return at once. The returned future
        completes exactly once, on a library thread: with the `Outcome`
        when delivered, else with a `LiminalError` carrying it.
        `on_complete(outcome)`, if given, runs first, on that thread (no
        blocking library calls there). Raises `LiminalError` at once when
        the dispatch is refused (QUEUE_FULL, DRAINING, SHUT_DOWN, or
        INVALID_ARGUMENT for a bad ordering `key`)."""
        group = self._live()
        future = _new_future()

        def complete(user: Any, status: int, outcome_ptr: Any) -> None:
            _complete_future(future, on_complete, status, outcome_ptr)

        # Options and message first: a bad argument raises before the
        # library owns the callback (it frees it even when it refuses).
        options = self._dispatch_options(deadline, None, key)
        try:
            message = _new_message(fields, payload)
        except BaseException:
            lib.liminal_dispatch_options_free(options)
            raise
        function = _ffi.COMPLETION_FN(complete)
        user = _ffi.keep(function, future)
        try:
            dispatch_id = C.c_uint64()
            _check(lib.liminal_group_dispatch_async(group, message, options,
                                                    _ffi.CompletionCallback(function, user, FREE),
                                                    C.byref(dispatch_id)))
        finally:
            lib.liminal_message_free(message)
            lib.liminal_dispatch_options_free(options)
        future.dispatch_id = dispatch_id.value
        return future

    def dispatch_batch(self, messages: Iterable[BatchMessage], *, deadline: Optional[float] = None,
                       key: Optional[str] = None, on_complete: Optional[Callable[[Outcome], Any]] = None
                       ) -> List[Union[DispatchFuture, LiminalError]]:
        """Dispatch many messages in one call (`liminal_group_dispatch_batch`)
        and return at once, as as many `dispatch_async` calls would, in that
        order; to a durable group the whole batch is stored with one sync
        before this returns (the fast way for one thread to dispatch durable
        messages). Each message is a fields mapping, or a `(fields, payload)`
        pair; `deadline` (seconds) and the ordering `key` apply to every
        message of the batch.

        Returns one entry per message, in order: a `DispatchFuture` (with
        its `dispatch_id`) for an accepted one, which completes exactly once
        as `dispatch_async`'s does, `on_complete(outcome)` first; or, for a
        refused one, the `LiminalError` saying why (not raised: QUEUE_FULL
        for the messages a full waiting room had no place for, DRAINING,
        SHUT_DOWN, STORE_FAILED, …), whose completion never runs. Raises
        (nothing dispatched) for a bad argument: a field value or `key`
        the library cannot take, a closed group."""
        group = self._live()
        items = list(messages)
        if not items:
            return []
        options = self._dispatch_options(deadline, None, key)
        handles: List[P] = []
        try:
            for item in items:
                if isinstance(item, tuple):
                    if len(item) != 2:
                        raise TypeError("a batch message is a fields mapping or a (fields, payload) pair")
                    fields, payload = item
                else:
                    fields, payload = item, None
                handles.append(_new_message(fields, payload))
        except BaseException:
            for handle in handles:
                lib.liminal_message_free(handle)
            lib.liminal_dispatch_options_free(options)
            raise

        count = len(handles)
        futures = [_new_future() for _ in range(count)]
        pending: Dict[int, DispatchFuture] = {}  # by `user` key, until completed

        # One C function for the batch; `user` (each completion's own key,
        # freed by the library's free_user) tells whose future it is. pop():
        # a second call for one key would find nothing and be logged.
        def complete(user: Any, status: int, outcome_ptr: Any) -> None:
            try:
                future = pending.pop(user)
            except BaseException:  # noqa: BLE001
                _report_callback_error("completion")
                return
            _complete_future(future, on_complete, status, outcome_ptr)

        function = _ffi.COMPLETION_FN(complete)
        array = (P * count)(*(handle.value for handle in handles))
        completions = (_ffi.CompletionCallback * count)()
        statuses = (C.c_int * count)()
        ids = (C.c_uint64 * count)()
        keys = []
        for i, future in enumerate(futures):
            user = _ffi.keep(function, future)
            pending[user] = future
            keys.append(user)
            completions[i] = _ffi.CompletionCallback(function, user, FREE)
        try:
            # The library owns every completion from here on, even on failure.
            status = lib.liminal_group_dispatch_batch(group, array, count, options, completions,
                                                      statuses, ids)
            detail = cast(bytes, lib.liminal_last_error()).decode("utf-8", "replace")
        finally:
            for handle in handles:
                lib.liminal_message_free(handle)
            lib.liminal_dispatch_options_free(options)
        if status == Status.NULL_ARGUMENT:  # nothing dispatched (not expected from here)
            pending.clear()
            raise LiminalError(status, detail)
        results: List[Union[DispatchFuture, LiminalError]] = []
        for i, user in enumerate(keys):
            if statuses[i] == Status.OK:
                futures[i].dispatch_id = ids[i]
                results.append(futures[i])
            else:
                pending.pop(user, None)  # refused: its completion never runs
                text = cast(bytes, lib.liminal_status_str(statuses[i])).decode()
                results.append(LiminalError(statuses[i], text))
        return results

    def drain(self, timeout: float) -> int:
        """Stop accepting dispatches, then wait up to `timeout` seconds for
        the accepted ones; returns how many had not completed."""
        left = C.c_size_t()
        _check(lib.liminal_group_drain(self._live(), _ms(timeout, "timeout"), C.byref(left)))
        return left.value

    def set_dead_letter(self, function: Optional[DeadLetterFunction]) -> None:
        """`function(message, outcome)` for each dispatch that ends without
        a delivery (None clears it). Runs on a library thread: keep it short."""
        if function is None:
            _check(lib.liminal_group_set_dead_letter(
                self._live(), _ffi.DeadLetterCallback(_ffi.DEAD_LETTER_FN(), None, _ffi.FREE_FN())))
            return

        def dead_letter(user: Any, message: Any, trail: Any) -> None:
            try:
                function(ReceivedMessage._read(message), Outcome._read(trail))
            except BaseException:  # noqa: BLE001
                _report_callback_error("dead_letter")

        c_function = _ffi.DEAD_LETTER_FN(dead_letter)
        key = _ffi.keep(c_function, function)
        _check(lib.liminal_group_set_dead_letter(self._live(),
                                                 _ffi.DeadLetterCallback(c_function, key, FREE)))

    # -- remote
    def open_remote(self, name: str, listen: Sequence[str], *,
                    on_crash: Optional[Callable[[CrashReport], Any]] = None,
                    tls: Optional[Tuple[str, str, str]] = None,
                    credentials: Optional[Tuple[str, str]] = None,
                    users_file: Optional[str] = None, lease: Optional[float] = None,
                    allow_insecure: bool = False) -> "RemoteHost":
        """Open this group to remote workers (over Zenoh) under `name`,
        listening on `listen` endpoints (e.g. "tcp/127.0.0.1:7447").
        `tls` = (ca, certificate, private key) PEM files; `lease` the
        longest session lease (seconds) a worker may advertise. Needs a
        library built with remote consumers (`liminal.has_remote()`)."""
        group = self._live()
        options = _remote_options(listen=listen, connect=(), tls=tls, credentials=credentials,
                                  users_file=users_file, lease=lease, allow_insecure=allow_insecure)
        try:
            crash, _key = _crash_callback(on_crash)
            out = P()
            _check(lib.liminal_group_open_remote(group, _text(name, "group name"), options, crash,
                                                 C.byref(out)))
        finally:
            lib.liminal_remote_options_free(options)
        return RemoteHost(self, cast(int, out.value))

    def close(self) -> None:
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            lib.liminal_group_free(ptr)


# ---- remote -------------------------------------------------------------

def _remote_options(*, listen: Iterable[str], connect: Iterable[str],
                    tls: Optional[Tuple[str, str, str]], credentials: Optional[Tuple[str, str]],
                    users_file: Optional[str], lease: Optional[float], allow_insecure: bool) -> P:
    options = P()
    _check(lib.liminal_remote_options_new(C.byref(options)))
    try:
        for endpoint in listen:
            _check(lib.liminal_remote_options_add_listen(options, _text(endpoint, "endpoint")))
        for endpoint in connect:
            _check(lib.liminal_remote_options_add_connect(options, _text(endpoint, "endpoint")))
        if tls is not None:
            ca, certificate, key = tls
            _check(lib.liminal_remote_options_set_tls(options, _text(ca), _text(certificate), _text(key)))
        if credentials is not None:
            user, password = credentials
            _check(lib.liminal_remote_options_set_credentials(options, _text(user), _text(password)))
        if users_file is not None:
            _check(lib.liminal_remote_options_set_users_file(options, _text(users_file)))
        if lease is not None:
            _check(lib.liminal_remote_options_set_lease_ms(options, _ms(lease, "lease", 1)))
        if allow_insecure:
            _check(lib.liminal_remote_options_set_allow_insecure(options, True))
    except BaseException:
        lib.liminal_remote_options_free(options)
        raise
    return options


class RemoteHost(_Handle):
    """A group opened to remote workers. `close()` tells the workers and
    closes the session (blocks: not from a callback)."""

    def __init__(self, group: Group, ptr: int):
        self._group = group
        self._ptr = ptr

    @property
    def workers(self) -> int:
        """Remote consumers joined now."""
        return _size(lib.liminal_remote_workers, self._live())

    def close(self) -> None:
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            lib.liminal_remote_free(ptr)


class Worker(_Handle):
    """A consumer in this process of group `group_name` on a remote host,
    reached at the `connect` endpoints. With a `handler` it is pushed
    deliveries on its own thread (the same verdict rules as
    `Group.consumer`, exceptions included); without one it pulls
    (`next_delivery`). `close()` leaves gracefully (blocks)."""

    def __init__(self, group_name: str, consumer_id: str, handler: Optional[Handler] = None, *,
                 connect: Sequence[str], max_in_flight: Optional[int] = None,
                 buffer_depth: Optional[int] = None, tags: Optional[Sequence[str]] = None,
                 tls: Optional[Tuple[str, str, str]] = None,
                 credentials: Optional[Tuple[str, str]] = None, lease: Optional[float] = None,
                 allow_insecure: bool = False):
        self.group_name = group_name
        self.id = consumer_id
        consumer_options = _consumer_options(max_in_flight, buffer_depth, tags, None)
        try:
            remote_options = _remote_options(listen=(), connect=connect, tls=tls,
                                             credentials=credentials, users_file=None, lease=lease,
                                             allow_insecure=allow_insecure)
            try:
                delivery, self._delivery_key = _delivery_callback(handler)
                out = P()
                _check(lib.liminal_worker_new(_text(group_name, "group name"),
                                              _text(consumer_id, "consumer id"), delivery,
                                              consumer_options, remote_options, C.byref(out)))
            finally:
                lib.liminal_remote_options_free(remote_options)
        finally:
            lib.liminal_consumer_options_free(consumer_options)
        self._ptr = out.value

    def __repr__(self) -> str:
        return f"<liminal.Worker {self.id!r} of {self.group_name!r}>"

    def wait_joined(self, timeout: float) -> None:
        """Wait up to `timeout` seconds until the host accepted this worker;
        raises `LiminalError` (TIMED_OUT, UNKNOWN_CONSUMER when refused, SHUT_DOWN).
        The host makes the worker a consumer just after it sends the
        acceptance: it counts it (`RemoteGroup.workers`) once it is one."""
        _check(lib.liminal_worker_wait_joined(self._live(), _ms(timeout, "timeout")))

    def next_delivery(self, timeout: Optional[float] = None) -> Optional[Delivery]:
        """Pull mode: the next delivery (owned), or None after `timeout` seconds."""
        return _next_delivery(lib.liminal_worker_next_delivery, self._live(), timeout)

    @property
    def incarnation(self) -> str:
        """The current incarnation's id."""
        return _copied_text(lib.liminal_worker_incarnation, self._live())

    def close(self) -> None:
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            lib.liminal_worker_free(ptr)


# ---- runtime ------------------------------------------------------------

_runtimes: "weakref.WeakSet[Runtime]" = weakref.WeakSet()


class Runtime(_Handle):
    """A runtime: one beamr scheduler and everything in it.

    `close()` (or leaving a `with` block) shuts it down and frees it: every
    accepted dispatch not completed completes with SHUT_DOWN, and every
    callback of the library is released before it returns. Runtimes still
    open at interpreter exit are closed then. Not from a callback."""

    def __init__(self, *, scheduler_threads: Optional[int] = None,
                 routing_timeout: Optional[float] = None, spin_us: Optional[int] = None,
                 linger_us: Optional[int] = None):
        options = P()
        _check(lib.liminal_runtime_options_new(C.byref(options)))
        try:
            if scheduler_threads is not None:
                _check(lib.liminal_runtime_options_set_scheduler_threads(options, scheduler_threads))
            if routing_timeout is not None:
                _check(lib.liminal_runtime_options_set_routing_timeout_ms(
                    options, _ms(routing_timeout, "routing_timeout", 1)))
            if spin_us is not None:
                _check(lib.liminal_runtime_options_set_spin_us(options, spin_us))
            if linger_us is not None:
                _check(lib.liminal_runtime_options_set_linger_us(options, linger_us))
            out = P()
            _check(lib.liminal_runtime_new(options, C.byref(out)))
        finally:
            lib.liminal_runtime_options_free(options)
        self._ptr = out.value
        self._stats_key: Optional[int] = None
        _runtimes.add(self)

    def group(self, routing: Union[Routing, Builtin, None] = None, *, name: Optional[str] = None,
              max_attempts: Optional[int] = None, count_holding_crashes: Optional[bool] = None,
              auto_ack: Optional[float] = None, waiting_room: Optional[int] = None,
              overflow: Optional[Overflow] = None, block_timeout: Optional[float] = None,
              deadline: Optional[float] = None, ack_lease: Optional[float] = None,
              lease_policy: Optional[LeasePolicy] = None,
              key_field: Optional[str] = None,
              hold_failed_keys: Optional[bool] = None,
              sticky_keys: Optional[bool] = None,
              store: Union[str, "os.PathLike[str]", None] = None,
              store_sync_interval: Optional[float] = None,
              on_recovered: Optional[RecoveredFunction] = None) -> Group:
        """A new consumer group, routed by `routing` (a `Routing`, a
        `Builtin`, default FIRST_WITH_CAPACITY). Durations in seconds:
        `auto_ack`, `block_timeout` (with `Overflow.BLOCK`), `deadline`
        (each message's default), `ack_lease`. `key_field` names the field
        whose value (text, or an int in decimal) is a message's ordering
        key: messages that share a key are handled one at a time, in the
        order accepted, through every re-route (docs/ORDERING.md).
        `hold_failed_keys`: a key whose head is dead-lettered waits until
        `Group.release_key(key)` (default: it moves on at once).
        `sticky_keys`: a key's next message goes to the consumer its
        previous one went to while that one has room (default: the routing
        function chooses every time).

        With `store` (a directory, created if missing) the group is
        **durable**: a dispatch returns (a `dispatch_async` future is
        handed back) only once its message is on stable storage, and a
        group opened later on the same store brings back every message
        accepted and not completed, in acceptance order, flagged
        `redelivered`, with the same `Delivery.message_id`
        (`<store id>-<sequence number>`): delivery is at least once.
        `store_sync_interval` (seconds; None or 0: sync every commit) lets
        a dispatch return once written to the operating system and syncs
        that often (an OS crash may lose the last interval).
        `on_recovered(message, outcome)` is called once for each recovered
        message when it ends, on a library thread (no blocking library
        calls there), possibly before this returns: `outcome.ok` when a
        consumer acknowledged it, else why not (EXPIRED, ATTEMPTS_EXHAUSTED,
        …; NO_CONSUMER_AVAILABLE or SHUT_DOWN when this group or its
        runtime closes first: then it stays in the store and comes back at
        the next opening). An exception in it is logged on the `liminal`
        logger, never raised into the library. Raises
        `LiminalError` STORE_LOCKED while another group (in this process
        or another) holds the store, STORE_FAILED when it cannot be
        opened or read."""
        runtime = self._live()
        store_path = None
        if store is not None:
            store_path = _text(os.fspath(store), "store path")  # type: ignore[arg-type]
        sync_ms = None
        if store_sync_interval is not None:
            sync_ms = _ms(store_sync_interval, "store_sync_interval")
            if sync_ms > 0xFFFF_FFFF:
                raise ValueError(f"store_sync_interval must be at most {0xFFFF_FFFF / 1000} seconds")
        owned_routing = None
        if routing is None or isinstance(routing, Builtin):
            owned_routing = Routing.builtin(routing if routing is not None else Builtin.FIRST_WITH_CAPACITY)
            routing = owned_routing
        options = P()
        try:
            _check(lib.liminal_group_options_new(C.byref(options)))
            if name is not None:
                _check(lib.liminal_group_options_set_name(options, _text(name, "group name")))
            if max_attempts is not None:
                _check(lib.liminal_group_options_set_max_attempts(options, max_attempts))
            if count_holding_crashes is not None:
                _check(lib.liminal_group_options_set_count_holding_crashes(options, count_holding_crashes))
            if auto_ack is not None:
                _check(lib.liminal_group_options_set_auto_ack_ms(options, _ms(auto_ack, "auto_ack")))
            if waiting_room is not None:
                _check(lib.liminal_group_options_set_waiting_room(options, waiting_room))
            if overflow is not None:
                _check(lib.liminal_group_options_set_overflow(
                    options, int(overflow), _ms(block_timeout, "block_timeout") or 1000))
            if deadline is not None:
                _check(lib.liminal_group_options_set_deadline_ms(options, _ms(deadline, "deadline")))
            if ack_lease is not None:
                _check(lib.liminal_group_options_set_ack_lease_ms(options, _ms(ack_lease, "ack_lease")))
            if lease_policy is not None:
                _check(lib.liminal_group_options_set_lease_policy(options, int(lease_policy)))
            if key_field is not None:
                _check(lib.liminal_group_options_set_key_field(options, _text(key_field, "key field")))
            if hold_failed_keys is not None:
                _check(lib.liminal_group_options_set_hold_failed_keys(options, hold_failed_keys))
            if sticky_keys is not None:
                _check(lib.liminal_group_options_set_sticky_keys(options, sticky_keys))
            if store_path is not None:
                _check(lib.liminal_group_options_set_store(options, store_path))
            if sync_ms is not None:
                _check(lib.liminal_group_options_set_store_sync_interval_ms(options, sync_ms))
            if on_recovered is not None:
                # The options own it from this call on, even if it fails;
                # its free_user runs once they and the group are freed.
                _check(lib.liminal_group_options_set_recovered(options, _recovered_callback(on_recovered)))
            out = P()
            _check(lib.liminal_group_new(runtime, routing._live(), options, C.byref(out)))
        finally:
            lib.liminal_group_options_free(options)
            if owned_routing is not None:
                owned_routing.close()  # the group keeps its own reference
        return Group(self, cast(int, out.value), name,
                     store=os.fspath(store) if store is not None else None)

    def routing(self, function: RouteFunction, identity: bytes, name: Optional[str] = None) -> Routing:
        """A routing function in Python: `function(message, consumers)`
        returns the chosen consumer's id, or None to let the message wait.
        It runs on the runtime's routing thread; if it raises, the dispatch
        fails with ROUTING_CRASHED. `identity` (non-empty bytes) names its
        version: loading the same identity again returns the same function."""
        c_function = _route_function(function)
        key = _ffi.keep(c_function, function)
        identity = bytes(identity)
        out = P()
        _check(lib.liminal_routing_new(self._live(), _ffi.RouteCallback(c_function, key, FREE),
                                       identity, len(identity),
                                       _text(name) if name is not None else None, C.byref(out)))
        return Routing(cast(int, out.value), key)

    def metrics(self) -> Dict[str, int]:
        """Counters and latency percentiles (`liminal_metrics`) as a dict."""
        figures = _ffi.Metrics()
        _check(lib.liminal_runtime_metrics(self._live(), C.byref(figures)))
        return {name: getattr(figures, name) for name in _ffi.METRIC_NAMES}

    def stats(self) -> Dict[str, Any]:
        """The runtime's statistics (`liminal_runtime_stats_json`) as a dict."""
        return cast(Dict[str, Any], json.loads(_copied_text(lib.liminal_runtime_stats_json, self._live())))

    def stats_prometheus(self) -> str:
        """The same statistics in the Prometheus text exposition format."""
        return _copied_text(lib.liminal_runtime_stats_prometheus, self._live())

    def on_stats(self, function: Optional[Callable[[Dict[str, Any]], Any]], interval: float = 1.0) -> None:
        """Call `function(stats dict)` every `interval` seconds (at least
        0.01) on the runtime's timer thread; None stops it."""
        if function is None:
            _check(lib.liminal_runtime_set_stats_callback(
                self._live(), 10, _ffi.StatsCallback(_ffi.STATS_FN(), None, _ffi.FREE_FN())))
            return

        def stats(user: Any, text: bytes, length: int) -> None:
            try:
                function(json.loads(text[:length].decode("utf-8")))
            except BaseException:  # noqa: BLE001
                _report_callback_error("stats")

        c_function = _ffi.STATS_FN(stats)
        key = _ffi.keep(c_function, function)
        _check(lib.liminal_runtime_set_stats_callback(self._live(), _ms(interval, "interval", 10),
                                                      _ffi.StatsCallback(c_function, key, FREE)))

    def drain(self, timeout: float) -> int:
        """Stop accepting dispatches on every group, then wait up to
        `timeout` seconds; returns how many had not completed."""
        left = C.c_size_t()
        _check(lib.liminal_runtime_drain(self._live(), _ms(timeout, "timeout"), C.byref(left)))
        return left.value

    def shutdown(self) -> None:
        """Shut down without freeing (idempotent)."""
        _check(lib.liminal_runtime_shutdown(self._live()))

    def close(self) -> None:
        ptr = self._ptr
        if ptr is None:
            return
        status = lib.liminal_runtime_free(ptr)
        if status == Status.WOULD_DEADLOCK:
            raise _error(status)  # from a callback: nothing was freed
        self._ptr = None
        _runtimes.discard(self)

    def _release_handle(self) -> None:
        # Garbage collection may run on a library thread, where freeing a
        # runtime is refused: then it is freed at interpreter exit.
        ptr = self._ptr
        self._ptr = None
        if ptr is not None and lib.liminal_runtime_free(ptr) == Status.WOULD_DEADLOCK:
            with _orphans_lock:
                _orphans.append(ptr)


_orphans: List[int] = []
_orphans_lock = threading.Lock()


@atexit.register
def _close_runtimes() -> None:
    # Library threads must not call into an interpreter being torn down.
    for runtime in list(_runtimes):
        try:
            runtime.close()
        except BaseException:  # noqa: BLE001
            pass
    with _orphans_lock:
        orphans = list(_orphans)
        _orphans.clear()
    for ptr in orphans:
        lib.liminal_runtime_free(ptr)


def version() -> str:
    """The library's version, "MAJOR.MINOR.PATCH"."""
    return cast(bytes, lib.liminal_version()).decode()


def has_remote() -> bool:
    """Whether the loaded library was built with remote consumers."""
    return bool(lib.liminal_has_remote())
