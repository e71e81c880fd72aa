// liminal.hpp: header-only C++17 RAII wrapper over the liminal C ABI.
//
// - Owning types (Runtime, Group, Consumer, Routing, Message, KeptDelivery,
//   Remote, Worker) free their handle in the destructor and are movable,
//   not copyable.
// - Settings are value types with one chainable setter per C option
//   (RuntimeOptions, GroupOptions, ConsumerOptions, DispatchOptions,
//   RemoteOptions); an
//   option never set keeps the library's default. The library validates
//   them when they are used: an invalid value throws liminal::Error there.
// - A failing status becomes a liminal::Error exception (status + detail).
// - Callbacks are std::function and follow the contracts of liminal.h
//   (thread, overlap, what they may call). Exceptions never cross into the
//   C library:
//     * thrown by a consumer's delivery callback: that consumer crashes
//       (its crash reason carries what()) and its deliveries are re-routed;
//     * thrown by a routing function: that evaluation fails
//       (LIMINAL_ROUTING_CRASHED);
//     * thrown anywhere else (completion, dead-letter, crash report, stats,
//       host lost), and by a routing function too, the exception goes to the callback
//       error handler (liminal::set_callback_error_handler), whose default
//       writes one line to stderr.
#ifndef LIMINAL_HPP
#define LIMINAL_HPP

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "liminal.h"

namespace liminal {

using std::chrono::microseconds;
using std::chrono::milliseconds;

/// A failed call: the status and the library's detail message.
///
/// The wrapper throws it for every non-OK status it gets from the C library
/// (and with LIMINAL_INVALID_ARGUMENT for a negative duration, before any
/// call). Exceptions: Consumer::next_delivery (LIMINAL_TIMED_OUT) and
/// Group::consumer (LIMINAL_UNKNOWN_CONSUMER) return std::nullopt for that
/// one status; MessageView's field getters return std::nullopt for any
/// failure.
class Error : public std::runtime_error {
public:
    /// An error for `status`; what() is its enumerator name, ": ", then
    /// `detail` (the wrapper passes liminal_last_error()).
    Error(liminal_status status, const std::string &detail)
        : std::runtime_error(std::string(liminal_status_name(status)) + ": " + detail),
          status_(status) {}
    /// The status that failed.
    liminal_status status() const noexcept { return status_; }
    /// Trying again later may succeed (liminal_status_is_retriable).
    bool retriable() const noexcept { return liminal_status_is_retriable(status_); }
    /// The handle that failed can no longer be used (liminal_status_is_fatal).
    bool fatal() const noexcept { return liminal_status_is_fatal(status_); }
    /// The static description of the status (liminal_status_str).
    const char *description() const noexcept { return liminal_status_str(status_); }

private:
    liminal_status status_;
};

/// Throws liminal::Error unless `status` is LIMINAL_OK, with the calling
/// thread's liminal_last_error() as its detail.
inline void check(liminal_status status) {
    if (status != LIMINAL_OK) throw Error(status, liminal_last_error());
}

/// The library's version at run time ("MAJOR.MINOR.PATCH").
inline std::string version() { return liminal_version(); }

/// Receives an exception thrown by a callback that has no way to report it
/// to the library: `where` is "completion", "dead_letter", "recovered", "crash", "stats",
/// "host_lost" or "routing". Runs on the thread of that callback, under its contract
/// (no blocking calls); it must not throw (if it does, the default runs).
using CallbackErrorHandler = std::function<void(const char *where, std::exception_ptr error)>;

namespace detail {
struct CallbackErrors {
    std::mutex mutex;
    std::shared_ptr<const CallbackErrorHandler> handler;
};
// Never destroyed: library threads may report while statics are torn down.
inline CallbackErrors &callback_errors() {
    static CallbackErrors *errors = new CallbackErrors;
    return *errors;
}
}  // namespace detail

/// The default callback error handler: one line on stderr.
inline void default_callback_error_handler(const char *where, std::exception_ptr error) noexcept {
    const char *what = "an exception that is not a std::exception";
    std::string text;
    try {
        if (error) std::rethrow_exception(error);
    } catch (const std::exception &e) {
        try {
            text = e.what();
            what = text.c_str();
        } catch (...) {
        }
    } catch (...) {
    }
    std::fprintf(stderr, "liminal: exception escaped a %s callback: %s\n", where, what);
}

/// Route exceptions thrown by callbacks (see CallbackErrorHandler). An empty
/// function restores the default. Thread-safe.
inline void set_callback_error_handler(CallbackErrorHandler handler) {
    auto shared = handler ? std::make_shared<const CallbackErrorHandler>(std::move(handler)) : nullptr;
    auto &errors = detail::callback_errors();
    std::lock_guard<std::mutex> lock(errors.mutex);
    errors.handler = std::move(shared);
}

namespace detail {
/// Call from a catch block: hands the current exception to the handler.
inline void report_callback_error(const char *where) noexcept {
    std::exception_ptr error = std::current_exception();
    std::shared_ptr<const CallbackErrorHandler> handler;
    {
        auto &errors = callback_errors();
        std::lock_guard<std::mutex> lock(errors.mutex);
        handler = errors.handler;
    }
    if (handler) {
        try {
            (*handler)(where, error);
            return;
        } catch (...) {
        }
    }
    default_callback_error_handler(where, error);
}

template <class T, void (*Free)(T *)> struct Deleter {
    void operator()(T *p) const noexcept { Free(p); }
};
template <class T, void (*Free)(T *)> using Owned = std::unique_ptr<T, Deleter<T, Free>>;
/// Frees a runtime from a destructor. liminal_runtime_free refuses inside a
/// callback (LIMINAL_WOULD_DEADLOCK): a destructor cannot throw, so the
/// refusal goes to the callback error handler, and the runtime is left
/// running (destroy the Runtime outside callbacks).
inline void free_runtime(liminal_runtime *r) {
    const liminal_status status = liminal_runtime_free(r);
    if (status == LIMINAL_OK) return;
    try {
        throw Error(status, "liminal::Runtime destroyed where liminal_runtime_free refuses; the runtime was not freed");
    } catch (...) {
        report_callback_error("Runtime destructor");
    }
}
template <class F> void delete_fn(void *user) { delete static_cast<F *>(user); }

template <class Duration> uint64_t count(Duration d, const char *what) {
    if (d.count() < 0) throw Error(LIMINAL_INVALID_ARGUMENT, std::string(what) + " must not be negative");
    return static_cast<uint64_t>(d.count());
}

/// Copy text out of an snprintf-style call (retried if it grew meanwhile).
template <class Call> std::string text(Call call) {
    std::string out;
    size_t len = 0;
    for (;;) {
        liminal_status s = call(out.empty() ? nullptr : &out[0], out.size(), &len);
        if (s == LIMINAL_OK) break;
        if (s != LIMINAL_BUFFER_TOO_SMALL) check(s);
        out.assign(len + 1, '\0');
    }
    out.resize(len);
    return out;
}
}  // namespace detail

// ---------------------------------------------------------------- options

/// Runtime settings (liminal_runtime_options_*).
class RuntimeOptions {
public:
    /// Scheduler worker threads, 1 to 64 (default 1).
    RuntimeOptions &scheduler_threads(uint32_t threads) { threads_ = threads; return *this; }
    /// How long a routing callback may run (default 5 s, at least 1 ms).
    RuntimeOptions &routing_timeout(milliseconds timeout) {
        routing_timeout_ms_ = detail::count(timeout, "routing_timeout");
        return *this;
    }
    /// How long a waiting thread spins before it sleeps (default 20 µs; 0: sleep at once).
    RuntimeOptions &spin(microseconds spin) {
        spin_us_ = detail::count(spin, "spin");
        return *this;
    }
    /// How long a worker out of work waits for more before it parks (default 50 ms; 0: at once).
    RuntimeOptions &linger(microseconds linger) {
        linger_us_ = detail::count(linger, "linger");
        return *this;
    }

    /// The C options (NULL when nothing was set: the defaults).
    detail::Owned<liminal_runtime_options, liminal_runtime_options_free> to_c() const {
        detail::Owned<liminal_runtime_options, liminal_runtime_options_free> o;
        if (!threads_ && !routing_timeout_ms_ && !spin_us_ && !linger_us_) return o;
        liminal_runtime_options *raw = nullptr;
        check(liminal_runtime_options_new(&raw));
        o.reset(raw);
        if (threads_) check(liminal_runtime_options_set_scheduler_threads(raw, *threads_));
        if (routing_timeout_ms_) check(liminal_runtime_options_set_routing_timeout_ms(raw, *routing_timeout_ms_));
        if (spin_us_) check(liminal_runtime_options_set_spin_us(raw, *spin_us_));
        if (linger_us_) check(liminal_runtime_options_set_linger_us(raw, *linger_us_));
        return o;
    }

private:
    std::optional<uint32_t> threads_;
    std::optional<uint64_t> routing_timeout_ms_, spin_us_, linger_us_;
};

/// What a dispatch does when its group's waiting room is full.
enum class Overflow : int32_t {
    Reject = LIMINAL_OVERFLOW_REJECT,         ///< refuse at once: LIMINAL_QUEUE_FULL (the default)
    Block = LIMINAL_OVERFLOW_BLOCK,           ///< block the caller up to a timeout
    DropOldest = LIMINAL_OVERFLOW_DROP_OLDEST ///< fail the oldest waiting one with LIMINAL_DROPPED
};

/// What happens to a consumer that lets an acknowledgement lease expire.
enum class LeasePolicy : int32_t {
    Crash = LIMINAL_LEASE_CRASH,          ///< declared crashed (the default)
    Quarantine = LIMINAL_LEASE_QUARANTINE ///< kept, given nothing new until it answers
};

/// Group settings (liminal_group_options_*).
class GroupOptions {
public:
    /// Its name in statistics (default `group-<n>`).
    GroupOptions &name(std::string name) { name_ = std::move(name); return *this; }
    /// Failed attempts before a message is dead-lettered (default 3).
    GroupOptions &max_attempts(uint32_t attempts) { max_attempts_ = attempts; return *this; }
    /// Count consumers that died merely holding a message too (default false).
    GroupOptions &count_holding_crashes(bool count) { count_holding_ = count; return *this; }
    /// Delivered once the consumer stayed alive this long (default off).
    GroupOptions &auto_ack(milliseconds window) { auto_ack_ms_ = detail::count(window, "auto_ack"); return *this; }
    /// How many messages may wait for a consumer at once (default 65,536).
    GroupOptions &waiting_room(size_t capacity) { waiting_room_ = capacity; return *this; }
    /// The overflow policy; `block_timeout` (at least 1 ms) for
    /// Overflow::Block, ignored otherwise. Overflow::Block with the default
    /// 0 makes the Group constructor throw LIMINAL_INVALID_ARGUMENT.
    GroupOptions &overflow(Overflow policy, milliseconds block_timeout = milliseconds(0)) {
        overflow_ = std::make_pair(policy, detail::count(block_timeout, "block_timeout"));
        return *this;
    }
    /// Default deadline of each message (default none).
    GroupOptions &deadline(milliseconds deadline) { deadline_ms_ = detail::count(deadline, "deadline"); return *this; }
    /// Acknowledgement lease (default none).
    GroupOptions &ack_lease(milliseconds lease) { ack_lease_ms_ = detail::count(lease, "ack_lease"); return *this; }
    /// What an expired lease does to its holder (default LeasePolicy::Crash).
    GroupOptions &lease_policy(LeasePolicy policy) { lease_policy_ = policy; return *this; }
    /// Ordered keys: the routing field whose value (text, or an integer in
    /// decimal) is each message's ordering key. Messages that share a key
    /// are delivered one at a time, in acceptance order; whatever brings a
    /// message back (crash, lease expiry, release) puts it at the front of
    /// its key; other keys pass it (liminal_group_options_set_key_field).
    /// Cannot go with auto_ack(): the Group constructor throws
    /// LIMINAL_INVALID_ARGUMENT.
    GroupOptions &key_field(std::string field) { key_field_ = std::move(field); return *this; }
    /// Hold a key whose head is dead-lettered until Group::release_key
    /// (default false: the key moves on; liminal_group_options_set_hold_failed_keys).
    GroupOptions &hold_failed_keys(bool hold) { hold_failed_keys_ = hold; return *this; }
    /// A key's next message goes to the consumer its previous one went to
    /// while that one has room (default false; liminal_group_options_set_sticky_keys).
    GroupOptions &sticky_keys(bool sticky) { sticky_keys_ = sticky; return *this; }
    /// Durable: keep accepted messages in the store at directory `dir` until
    /// completed; a dispatch returns once its message is fsync'd, and a new
    /// Group on the same store brings back what was not completed
    /// (liminal_group_options_set_store; see Group's on_recovered).
    GroupOptions &store(std::string dir) { store_ = std::move(dir); return *this; }
    /// A durable group's sync interval (default 0: every commit is synced
    /// before its dispatches return; liminal_group_options_set_store_sync_interval_ms).
    GroupOptions &store_sync_interval(milliseconds interval) {
        store_sync_ms_ = static_cast<uint32_t>(detail::count(interval, "store_sync_interval"));
        return *this;
    }

    /// The C options (NULL when nothing was set: the defaults).
    detail::Owned<liminal_group_options, liminal_group_options_free> to_c() const {
        detail::Owned<liminal_group_options, liminal_group_options_free> o;
        if (!name_ && !max_attempts_ && !count_holding_ && !auto_ack_ms_ && !waiting_room_ && !overflow_ &&
            !deadline_ms_ && !ack_lease_ms_ && !lease_policy_ && !key_field_ && !hold_failed_keys_ &&
            !sticky_keys_ && !store_)
            return o;
        liminal_group_options *raw = nullptr;
        check(liminal_group_options_new(&raw));
        o.reset(raw);
        if (name_) check(liminal_group_options_set_name(raw, name_->c_str()));
        if (max_attempts_) check(liminal_group_options_set_max_attempts(raw, *max_attempts_));
        if (count_holding_) check(liminal_group_options_set_count_holding_crashes(raw, *count_holding_));
        if (auto_ack_ms_) check(liminal_group_options_set_auto_ack_ms(raw, *auto_ack_ms_));
        if (waiting_room_) check(liminal_group_options_set_waiting_room(raw, *waiting_room_));
        if (overflow_)
            check(liminal_group_options_set_overflow(raw, static_cast<int32_t>(overflow_->first), overflow_->second));
        if (deadline_ms_) check(liminal_group_options_set_deadline_ms(raw, *deadline_ms_));
        if (ack_lease_ms_) check(liminal_group_options_set_ack_lease_ms(raw, *ack_lease_ms_));
        if (lease_policy_) check(liminal_group_options_set_lease_policy(raw, static_cast<int32_t>(*lease_policy_)));
        if (key_field_) check(liminal_group_options_set_key_field(raw, key_field_->c_str()));
        if (hold_failed_keys_) check(liminal_group_options_set_hold_failed_keys(raw, *hold_failed_keys_));
        if (sticky_keys_) check(liminal_group_options_set_sticky_keys(raw, *sticky_keys_));
        if (store_) check(liminal_group_options_set_store(raw, store_->c_str()));
        if (store_ && store_sync_ms_) check(liminal_group_options_set_store_sync_interval_ms(raw, *store_sync_ms_));
        return o;
    }

private:
    std::optional<std::string> name_, key_field_, store_;
    std::optional<uint32_t> max_attempts_, store_sync_ms_;
    std::optional<bool> count_holding_, hold_failed_keys_, sticky_keys_;
    std::optional<uint64_t> auto_ack_ms_, deadline_ms_, ack_lease_ms_;
    std::optional<size_t> waiting_room_;
    std::optional<std::pair<Overflow, uint64_t>> overflow_;
    std::optional<LeasePolicy> lease_policy_;
};

/// Consumer settings (liminal_consumer_options_*).
class ConsumerOptions {
public:
    /// Most deliveries it may hold at once (default 64).
    ConsumerOptions &max_in_flight(uint32_t max) { max_in_flight_ = max; return *this; }
    /// The buffer depth routing functions see at first (default 0).
    ConsumerOptions &buffer_depth(uint32_t depth) { buffer_depth_ = depth; return *this; }
    /// Affinity tags (non-empty strings).
    ConsumerOptions &tags(std::vector<std::string> tags) { tags_ = std::move(tags); return *this; }
    /// Its own acknowledgement lease, overriding the group's.
    ConsumerOptions &ack_lease(milliseconds lease) { ack_lease_ms_ = detail::count(lease, "ack_lease"); return *this; }

    /// The C options (NULL when nothing was set: the defaults).
    detail::Owned<liminal_consumer_options, liminal_consumer_options_free> to_c() const {
        detail::Owned<liminal_consumer_options, liminal_consumer_options_free> o;
        if (!max_in_flight_ && !buffer_depth_ && !tags_ && !ack_lease_ms_) return o;
        liminal_consumer_options *raw = nullptr;
        check(liminal_consumer_options_new(&raw));
        o.reset(raw);
        if (max_in_flight_) check(liminal_consumer_options_set_max_in_flight(raw, *max_in_flight_));
        if (buffer_depth_) check(liminal_consumer_options_set_buffer_depth(raw, *buffer_depth_));
        if (tags_) {
            std::vector<const char *> ptrs;
            for (const auto &t : *tags_) ptrs.push_back(t.c_str());
            check(liminal_consumer_options_set_tags(raw, ptrs.empty() ? nullptr : ptrs.data(), ptrs.size()));
        }
        if (ack_lease_ms_) check(liminal_consumer_options_set_ack_lease_ms(raw, *ack_lease_ms_));
        return o;
    }

private:
    std::optional<uint32_t> max_in_flight_, buffer_depth_;
    std::optional<std::vector<std::string>> tags_;
    std::optional<uint64_t> ack_lease_ms_;
};

/// Per-dispatch settings (liminal_dispatch_options_*).
class DispatchOptions {
public:
    /// This message's deadline from acceptance (default: the group's).
    DispatchOptions &deadline(milliseconds deadline) { deadline_ms_ = detail::count(deadline, "deadline"); return *this; }
    /// Blocking dispatch only: how long to wait before withdrawing it.
    DispatchOptions &timeout(milliseconds timeout) { timeout_ms_ = detail::count(timeout, "timeout"); return *this; }
    /// This message's ordering key, overriding the group's key field
    /// (liminal_dispatch_options_set_key): non-empty, at most
    /// LIMINAL_ORDERING_KEY_MAX bytes of UTF-8; the dispatch throws
    /// LIMINAL_INVALID_ARGUMENT otherwise.
    DispatchOptions &key(std::string key) { key_ = std::move(key); return *this; }

    /// The C options (NULL when nothing was set: the defaults).
    detail::Owned<liminal_dispatch_options, liminal_dispatch_options_free> to_c() const {
        detail::Owned<liminal_dispatch_options, liminal_dispatch_options_free> o;
        if (!deadline_ms_ && !timeout_ms_ && !key_) return o;
        liminal_dispatch_options *raw = nullptr;
        check(liminal_dispatch_options_new(&raw));
        o.reset(raw);
        if (deadline_ms_) check(liminal_dispatch_options_set_deadline_ms(raw, *deadline_ms_));
        if (timeout_ms_) check(liminal_dispatch_options_set_timeout_ms(raw, *timeout_ms_));
        if (key_) check(liminal_dispatch_options_set_key(raw, key_->c_str()));
        return o;
    }

private:
    std::optional<uint64_t> deadline_ms_, timeout_ms_;
    std::optional<std::string> key_;
};

// --------------------------------------------------------------- messages

/// Read-only access to a message (borrowed or owned).
///
/// It does not own the message and is valid only while that message is: a
/// Message's until it is destroyed, a delivery's while the delivery is, a
/// callback's during the call. Every getter returns a copy.
class MessageView {
public:
    /// View `m` (borrowed: never freed through the view).
    explicit MessageView(const liminal_message *m) : m_(m) {}
    /// The type of field `name`, or std::nullopt when there is no such field
    /// (any failure reads as std::nullopt).
    std::optional<liminal_field_type> field_type(const char *name) const {
        liminal_field_type t = LIMINAL_FIELD_NULL;
        return liminal_message_field_type(m_, name, &t) == LIMINAL_OK ? std::optional<liminal_field_type>(t)
                                                                      : std::nullopt;
    }
    /// Number of fields. Throws liminal::Error on failure.
    size_t field_count() const {
        size_t n = 0;
        check(liminal_message_field_count(m_, &n));
        return n;
    }
    /// Integer field `name`, or std::nullopt when there is none or it is of
    /// another type (any failure reads as std::nullopt).
    std::optional<int64_t> get_int(const char *name) const {
        int64_t v = 0;
        return liminal_message_get_int(m_, name, &v) == LIMINAL_OK ? std::optional<int64_t>(v) : std::nullopt;
    }
    /// Double field `name`, or std::nullopt when there is none or it is of
    /// another type (any failure reads as std::nullopt).
    std::optional<double> get_double(const char *name) const {
        double v = 0;
        return liminal_message_get_double(m_, name, &v) == LIMINAL_OK ? std::optional<double>(v) : std::nullopt;
    }
    /// Boolean field `name`, or std::nullopt when there is none or it is of
    /// another type (any failure reads as std::nullopt).
    std::optional<bool> get_bool(const char *name) const {
        bool v = false;
        return liminal_message_get_bool(m_, name, &v) == LIMINAL_OK ? std::optional<bool>(v) : std::nullopt;
    }
    /// A copy of text field `name` (UTF-8), or std::nullopt when there is
    /// none or it is of another type (any failure of the first read reads as
    /// std::nullopt; of the copy, throws liminal::Error).
    std::optional<std::string> get_text(const char *name) const {
        size_t len = 0;
        liminal_status s = liminal_message_get_text(m_, name, nullptr, 0, &len);
        if (s != LIMINAL_BUFFER_TOO_SMALL) return std::nullopt;
        std::string out(len + 1, '\0');
        check(liminal_message_get_text(m_, name, &out[0], out.size(), &len));
        out.resize(len);
        return out;
    }
    /// A copy of the ordering key its dispatch gave it, or std::nullopt for
    /// an unordered (or not yet dispatched) message (any failure of the
    /// first read reads as std::nullopt; of the copy, throws liminal::Error).
    std::optional<std::string> ordering_key() const {
        size_t len = 0;
        liminal_status s = liminal_message_ordering_key(m_, nullptr, 0, &len);
        if (s != LIMINAL_BUFFER_TOO_SMALL) return std::nullopt;
        std::string out(len + 1, '\0');
        check(liminal_message_ordering_key(m_, &out[0], out.size(), &len));
        out.resize(len);
        return out;
    }
    /// A copy of the payload bytes (empty when there is none). Throws
    /// liminal::Error on failure.
    std::string payload() const {
        const uint8_t *data = nullptr;
        size_t len = 0;
        check(liminal_message_payload(m_, &data, &len));
        return data ? std::string(reinterpret_cast<const char *>(data), len) : std::string();
    }
    /// The fields as one JSON object (non-finite doubles as null). Throws
    /// liminal::Error on failure.
    std::string fields_json() const {
        return detail::text([&](char *buf, size_t cap, size_t *len) {
            return liminal_message_fields_json(m_, buf, cap, len);
        });
    }
    /// The viewed C message (borrowed).
    const liminal_message *get() const noexcept { return m_; }

private:
    const liminal_message *m_;
};

/// An owned message with typed routing fields and a payload.
///
/// Movable, not copyable; not safe to modify from two threads at once.
/// Dispatching takes a snapshot, so the message may be changed or destroyed
/// as soon as the dispatch call returns. Each setter replaces any field of
/// that name and throws liminal::Error when the library refuses it (a NULL
/// name or text: LIMINAL_NULL_ARGUMENT; an empty name, or a name or text
/// that is not UTF-8: LIMINAL_INVALID_ARGUMENT).
class Message {
public:
    /// An empty message. Throws liminal::Error on failure.
    Message() {
        liminal_message *m = nullptr;
        check(liminal_message_new(&m));
        m_.reset(m);
    }
    /// Set integer field `name`.
    Message &set(const char *name, int64_t v) { check(liminal_message_set_int(m_.get(), name, v)); return *this; }
    /// Set integer field `name` (an `int` is stored as a 64-bit integer).
    Message &set(const char *name, int v) { return set(name, static_cast<int64_t>(v)); }
    /// Set double field `name` (non-finite values allowed; JSON shows them as null).
    Message &set(const char *name, double v) { check(liminal_message_set_double(m_.get(), name, v)); return *this; }
    /// Set boolean field `name`.
    Message &set(const char *name, bool v) { check(liminal_message_set_bool(m_.get(), name, v)); return *this; }
    /// Set text field `name` (UTF-8; the text ends at its first NUL byte).
    Message &set(const char *name, const std::string &v) { check(liminal_message_set_text(m_.get(), name, v.c_str())); return *this; }
    /// Set text field `name` to the NUL-terminated UTF-8 text `v`.
    Message &set(const char *name, const char *v) { check(liminal_message_set_text(m_.get(), name, v)); return *this; }
    /// Set field `name` to null.
    Message &set(const char *name, std::nullptr_t) { check(liminal_message_set_null(m_.get(), name)); return *this; }
    /// Set the payload to a copy of `bytes` (any bytes; empty sets an empty
    /// payload). Throws liminal::Error on failure.
    Message &payload(const std::string &bytes) {
        check(liminal_message_set_payload(m_.get(), reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size()));
        return *this;
    }
    /// A read-only view of this message (valid while this Message lives).
    MessageView view() const { return MessageView(m_.get()); }
    /// The C handle, still owned by this Message.
    const liminal_message *get() const noexcept { return m_.get(); }

private:
    detail::Owned<liminal_message, liminal_message_free> m_;
};

/// How a dispatch ended, and its trail (a value copy of liminal_outcome).
struct Outcome {
    liminal_status status = LIMINAL_OK;      ///< LIMINAL_OK if delivered, otherwise why not
    uint64_t dispatch_id = 0;                ///< the dispatch id (the same across attempts)
    uint32_t attempts = 0;                   ///< forwards made, the successful one included
    std::string delivered_to;                ///< empty if not delivered
    std::vector<std::string> rerouted_from;  ///< consumers that failed holding it
    /// Nanoseconds from each failure noticed to its re-route initiated, in
    /// the order of rerouted_from; it may be one shorter when the message
    /// used up its attempts (the last failure then has no timing).
    std::vector<uint64_t> reroute_ns;
    uint32_t crashed_handling = 0;           ///< consumers that died handling it
    uint32_t crashed_holding = 0;            ///< consumers that died merely holding it
    uint32_t released = 0;                   ///< times a consumer released it
    uint32_t lease_expired = 0;              ///< times its lease expired
    uint64_t waited_ns = 0;                  ///< time in the waiting room
    /// Dead-lettered as poison: LIMINAL_ATTEMPTS_EXHAUSTED with every failed
    /// attempt a consumer dying handling it (liminal_outcome_is_poison).
    bool poison = false;

    /// Whether it was delivered (status is LIMINAL_OK).
    bool delivered() const noexcept { return status == LIMINAL_OK; }

    /// Copy a C outcome (borrowed, not NULL) into a value.
    static Outcome from(const liminal_outcome *o) {
        Outcome out;
        out.status = liminal_outcome_status(o);
        out.dispatch_id = liminal_outcome_dispatch_id(o);
        out.attempts = liminal_outcome_attempts(o);
        if (const char *to = liminal_outcome_delivered_to(o)) out.delivered_to = to;
        for (size_t i = 0; i < liminal_outcome_rerouted_count(o); i++) {
            out.rerouted_from.emplace_back(liminal_outcome_rerouted_from(o, i));
            uint64_t ns = 0;
            if (liminal_outcome_reroute_ns(o, i, &ns) == LIMINAL_OK) out.reroute_ns.push_back(ns);
        }
        out.crashed_handling = liminal_outcome_crashed_handling(o);
        out.crashed_holding = liminal_outcome_crashed_holding(o);
        out.released = liminal_outcome_released(o);
        out.lease_expired = liminal_outcome_lease_expired(o);
        out.waited_ns = liminal_outcome_waited_ns(o);
        out.poison = liminal_outcome_is_poison(o);
        return out;
    }
};

/// What a consumer's crash callback is told.
struct CrashReport {
    std::string consumer_id;  ///< the consumer's id
    liminal_crash_kind kind;  ///< why; a delivery callback that threw gives LIMINAL_CRASH_DECLARED
    std::string reason;       ///< human-readable; for a thrown exception "exception: " and its what()
    bool alive;  ///< survived (a lease expiry under LeasePolicy::Quarantine)
};

// ------------------------------------------------------------- deliveries

namespace detail {
/// The accessors and answers shared by borrowed and kept deliveries.
template <class Self> class DeliveryOps {
public:
    /// The message (valid while the delivery is).
    MessageView message() const { return MessageView(liminal_delivery_message(d())); }
    /// The dispatch id (the same across attempts).
    uint64_t dispatch_id() const { return liminal_delivery_dispatch_id(d()); }
    /// This attempt's id, unique per runtime.
    uint64_t delivery_id() const { return liminal_delivery_id(d()); }
    /// The attempt number: 1 for the first forward.
    uint32_t attempt() const { return liminal_delivery_attempt(d()); }
    /// An earlier attempt may have been processed: be idempotent.
    bool redelivered() const { return liminal_delivery_redelivered(d()); }
    /// Earlier attempts whose consumer died handling this message.
    uint32_t crashed_handling() const { return liminal_delivery_crashed_handling(d()); }
    /// Earlier attempts whose consumer died merely holding it.
    uint32_t crashed_holding() const { return liminal_delivery_crashed_holding(d()); }
    /// The message's stable id, the same for every attempt (deduplicate on
    /// it): on a remote worker `<host incarnation>-<dispatch id>`.
    std::string message_id() const {
        return detail::text([&](char *b, size_t c, size_t *l) { return liminal_delivery_message_id(d(), b, c, l); });
    }
    /// The receiving consumer's id.
    std::string consumer_id() const { return liminal_delivery_consumer_id(d()); }
    /// Hand it back without dying, to another consumer (never this one
    /// again), no sooner than `delay` from now. Counts as a failed attempt,
    /// not a crash. Throws liminal::Error: LIMINAL_STALE_DELIVERY (already
    /// answered, re-routed or withdrawn), LIMINAL_SHUT_DOWN.
    void release(milliseconds delay = milliseconds(0)) const {
        check(liminal_delivery_release(d(), count(delay, "delay")));
    }
    /// Work on it begins: dying before answering counts as dying handling
    /// it (pull mode, kept deliveries; see liminal_delivery_started).
    /// Throws liminal::Error: LIMINAL_STALE_DELIVERY, LIMINAL_SHUT_DOWN.
    void started() const { check(liminal_delivery_started(d())); }
    /// Keep it `lease` (at least 1 ms) more from now, when an acknowledgement
    /// lease applies. Throws liminal::Error: LIMINAL_INVALID_ARGUMENT,
    /// LIMINAL_STALE_DELIVERY (the lease already expired), LIMINAL_SHUT_DOWN.
    void extend_lease(milliseconds lease) const { check(liminal_delivery_extend_lease(d(), count(lease, "lease"))); }

private:
    liminal_delivery *d() const { return static_cast<const Self *>(this)->get(); }
};
}  // namespace detail

/// A delivery answered later, from any thread.
///
/// Owns its liminal_delivery (from Delivery::keep() or
/// Consumer::next_delivery()); movable, not copyable, thread-safe. Besides
/// ack() and crash() it has the accessors and answers of Delivery:
/// message(), dispatch_id(), delivery_id(), attempt(), redelivered(),
/// crashed_handling(), crashed_holding(), consumer_id(), release(delay) and
/// extend_lease(lease). Answer it once; an answer to an attempt already
/// answered, re-routed or withdrawn is fenced off and throws liminal::Error
/// (LIMINAL_STALE_DELIVERY). Destroying it unanswered leaves the attempt
/// held until its consumer crashes or leaves, or its lease or deadline ends.
class KeptDelivery : public detail::DeliveryOps<KeptDelivery> {
public:
    /// Take ownership of an owned delivery (as liminal_delivery_keep or
    /// liminal_consumer_next_delivery return it), freed by the destructor.
    explicit KeptDelivery(liminal_delivery *d) : d_(d) {}
    /// Acknowledge: the dispatch completes as delivered to this consumer.
    /// Throws liminal::Error: LIMINAL_STALE_DELIVERY, LIMINAL_SHUT_DOWN.
    void ack() const { check(liminal_delivery_ack(d_.get())); }
    /// Declare the consumer holding it crashed, with `reason`: it dies,
    /// everything it holds is re-routed, and this delivery counts against
    /// the message. Throws liminal::Error: LIMINAL_STALE_DELIVERY,
    /// LIMINAL_SHUT_DOWN.
    void crash(const std::string &reason) const { check(liminal_delivery_crash(d_.get(), reason.c_str())); }
    /// The C handle, still owned by this KeptDelivery.
    liminal_delivery *get() const noexcept { return d_.get(); }

private:
    detail::Owned<liminal_delivery, liminal_delivery_free> d_;
};

/// The delivery a consumer callback receives (valid during the call). After
/// release() or an answer through keep(), return Verdict::Defer.
///
/// Borrowed, not owned. Its accessors: message(), dispatch_id(),
/// delivery_id() (this attempt), attempt() (1 for the first forward),
/// redelivered() (an earlier attempt may have been processed: be
/// idempotent), crashed_handling(), crashed_holding(), consumer_id(); its
/// answers besides the callback's Verdict: release(delay) (hand it back to
/// another consumer, after a delay) and extend_lease(lease). Both throw
/// liminal::Error (LIMINAL_STALE_DELIVERY, LIMINAL_SHUT_DOWN, and for
/// extend_lease LIMINAL_INVALID_ARGUMENT).
class Delivery : public detail::DeliveryOps<Delivery> {
public:
    /// Wrap the borrowed delivery a delivery callback received (never freed).
    explicit Delivery(liminal_delivery *d) : d_(d) {}
    /// Keep it to answer later, from any thread (return Verdict::Defer).
    /// Throws liminal::Error on failure.
    KeptDelivery keep() const {
        liminal_delivery *kept = nullptr;
        check(liminal_delivery_keep(d_, &kept));
        return KeptDelivery(kept);
    }
    /// The borrowed C delivery (never free it).
    liminal_delivery *get() const noexcept { return d_; }

private:
    liminal_delivery *d_;
};

/// A delivery callback's answer.
enum class Verdict : int32_t {
    Ack = LIMINAL_VERDICT_ACK,         ///< processed
    Crash = LIMINAL_VERDICT_CRASH,     ///< this consumer is broken: it dies
    Defer = LIMINAL_VERDICT_DEFER,     ///< answered later (or already, by release())
    Release = LIMINAL_VERDICT_RELEASE, ///< hand it back at once, without dying
};

/// A consumer as routing functions and snapshots see it (a value copy).
struct ConsumerView {
    std::string id;                 ///< the consumer id
    uint32_t in_flight,             ///< deliveries reserved for or held by it (not yet answered)
        max_in_flight,              ///< the most it may hold
        buffer_depth;               ///< its reported buffer depth (Consumer::set_buffer_depth)
    std::vector<std::string> tags;  ///< its affinity tags

    /// Copy a C view (whose pointers are borrowed) into a value.
    static ConsumerView from(const liminal_consumer_view &v) {
        ConsumerView out{v.id, v.in_flight, v.max_in_flight, v.buffer_depth, {}};
        for (size_t t = 0; t < v.tag_count; t++) out.tags.emplace_back(v.tags[t]);
        return out;
    }
};

// ---------------------------------------------------------------- runtime

/// A runtime: one scheduler and everything in it (owns a liminal_runtime).
/// Thread-safe; movable, not copyable.
///
/// The destructor shuts it down and frees it (liminal_runtime_free): every
/// dispatch not completed yet completes with LIMINAL_SHUT_DOWN, and when it
/// returns every callback handed to the library through it (delivery, crash,
/// completion, dead-letter, stats, routing functions) has been destroyed,
/// except a routing function whose call timed out and still runs (it goes
/// when that call returns) and a callback another thread's own call is
/// running at that moment (a completion or dead letter run by its
/// acknowledgement, release or declared crash: it goes when it returns, on
/// that thread). Groups, consumers, routings and deliveries made
/// from it may outlive it: they stay safe to destroy, and their calls that
/// return a status fail with LIMINAL_SHUT_DOWN. Do not destroy a Runtime
/// inside a callback: liminal_runtime_free refuses there
/// (LIMINAL_WOULD_DEADLOCK): the destructor reports that to the callback
/// error handler ("Runtime destructor"), and the runtime is never freed.
class Runtime {
public:
    /// Receives the statistics as JSON (as stats_json()); `json` is valid
    /// only during the call. Runs on the runtime's timer thread, calls never
    /// overlap; must not block (deadlines and leases wait behind it):
    /// blocking calls made from it throw liminal::Error
    /// (LIMINAL_WOULD_DEADLOCK). An exception it throws goes to the callback
    /// error handler ("stats").
    using OnStats = std::function<void(std::string_view json)>;

    /// Start a runtime with `options` (unset ones keep the defaults). Throws
    /// liminal::Error: LIMINAL_INVALID_ARGUMENT for an invalid option,
    /// LIMINAL_SPAWN_FAILED.
    explicit Runtime(const RuntimeOptions &options = RuntimeOptions()) {
        auto o = options.to_c();
        liminal_runtime *r = nullptr;
        check(liminal_runtime_new(o.get(), &r));
        r_.reset(r);
    }
    /// Counters and latency percentiles (nanoseconds). Works after shutdown
    /// too (the last figures). Throws liminal::Error on failure.
    liminal_metrics metrics() const {
        liminal_metrics m{};
        check(liminal_runtime_metrics(r_.get(), &m));
        return m;
    }
    /// Statistics as one JSON object: runtime counters and percentiles, then
    /// per group its waiting room and per-consumer figures. Throws
    /// liminal::Error on failure.
    std::string stats_json() const {
        return detail::text([&](char *b, size_t c, size_t *l) { return liminal_runtime_stats_json(r_.get(), b, c, l); });
    }
    /// The same statistics in the Prometheus text format. Throws
    /// liminal::Error on failure.
    std::string stats_prometheus() const {
        return detail::text(
            [&](char *b, size_t c, size_t *l) { return liminal_runtime_stats_prometheus(r_.get(), b, c, l); });
    }
    /// The statistics as JSON to `fn` every `interval` (at least 10 ms), on
    /// the timer thread (see OnStats); replaces an earlier one, which is
    /// destroyed once its last call returned. Throws liminal::Error:
    /// LIMINAL_INVALID_ARGUMENT, LIMINAL_SHUT_DOWN.
    void on_stats(milliseconds interval, OnStats fn) {
        const uint64_t ms = detail::count(interval, "interval");  // may throw: before the allocation
        liminal_stats_callback cb{&Runtime::stats, new OnStats(std::move(fn)), &detail::delete_fn<OnStats>};
        check(liminal_runtime_set_stats_callback(r_.get(), ms, cb));
    }
    /// Stop the periodic statistics (the function is destroyed once its last
    /// call returned). Throws liminal::Error (LIMINAL_SHUT_DOWN).
    void stop_stats() { check(liminal_runtime_set_stats_callback(r_.get(), 0, {nullptr, nullptr, nullptr})); }
    /// Stop accepting dispatches on every group (new ones fail with
    /// LIMINAL_DRAINING); wait up to `timeout` for the accepted ones (waiting
    /// messages still fail by their deadlines). Returns how many had not
    /// completed. Throws liminal::Error: LIMINAL_SHUT_DOWN;
    /// LIMINAL_WOULD_DEADLOCK from a callback.
    size_t drain(milliseconds timeout) {
        size_t left = 0;
        check(liminal_runtime_drain(r_.get(), detail::count(timeout, "timeout"), &left));
        return left;
    }
    /// Shut down without freeing: every accepted dispatch not completed yet
    /// completes with LIMINAL_SHUT_DOWN, exactly once, on this thread, except
    /// one whose delivery callback is running (the shutdown waits for that
    /// callback, and its answer counts); worker threads are joined. Idempotent. Throws liminal::Error
    /// (LIMINAL_WOULD_DEADLOCK) from a callback, and does nothing then.
    void shutdown() { check(liminal_runtime_shutdown(r_.get())); }
    /// The C handle, still owned by this Runtime.
    liminal_runtime *get() const noexcept { return r_.get(); }

private:
    static void stats(void *user, const char *json, size_t len) noexcept {
        try {
            (*static_cast<OnStats *>(user))(std::string_view(json, len));
        } catch (...) {
            detail::report_callback_error("stats");
        }
    }
    detail::Owned<liminal_runtime, detail::free_runtime> r_;
};

/// A routing function: a built-in, or a C++ function hot-deployable by identity.
///
/// Owns a liminal_routing; movable, not copyable, thread-safe. A group keeps
/// its own reference to the function it uses, so a Routing may be destroyed
/// once its groups are made or it is deployed.
class Routing {
public:
    /// A C++ routing function: given the message and the eligible consumers
    /// (id order, figures taken just before the call; both valid only during
    /// the call), return the chosen consumer's id, or std::nullopt to leave
    /// the message waiting for the next change (an answer, a join, a tag or
    /// capacity change) or its deadline. An id that is no eligible consumer
    /// fails the dispatch (LIMINAL_UNKNOWN_CONSUMER_SELECTED); a consumer at
    /// its max_in_flight leaves the message waiting. Runs on the runtime's
    /// routing thread, calls never overlap; it may block up to the routing
    /// timeout (past it the dispatch fails with LIMINAL_ROUTING_TIMED_OUT);
    /// blocking calls made from it throw liminal::Error
    /// (LIMINAL_WOULD_DEADLOCK). An exception it throws fails the dispatch
    /// with LIMINAL_ROUTING_CRASHED and goes to the callback error handler
    /// ("routing").
    using Function = std::function<std::optional<std::string>(const MessageView &, const std::vector<ConsumerView> &)>;

    /// A built-in router: `kind` is one of LIMINAL_BUILTIN_FIRST_WITH_CAPACITY,
    /// LIMINAL_BUILTIN_LEAST_LOADED, LIMINAL_BUILTIN_AFFINITY (the tag is in
    /// text field `field`) or LIMINAL_BUILTIN_STICKY_KEY (consistent hashing
    /// on text, integer or boolean field `field`). `field` is required for
    /// the last two, ignored otherwise. Throws liminal::Error:
    /// LIMINAL_INVALID_ARGUMENT (unknown kind, empty field),
    /// LIMINAL_NULL_ARGUMENT (field missing).
    static Routing builtin(liminal_builtin kind, const char *field = nullptr) {
        liminal_routing *r = nullptr;
        check(liminal_routing_builtin(kind, field, &r));
        return Routing(r);
    }
    /// A function identified by `identity` (content-addressed). It returns
    /// the chosen id, or std::nullopt to let the message wait. An exception
    /// inside it is a routing crash (and goes to the callback error handler).
    ///
    /// `identity` must be non-empty and UTF-8 (it is also the function's
    /// diagnostic name). While a function loaded with the same identity is
    /// alive, this returns that one and `fn` is destroyed unused. `fn` is
    /// otherwise destroyed when the last holder lets go or the runtime shuts
    /// down. Throws liminal::Error: LIMINAL_INVALID_ARGUMENT,
    /// LIMINAL_SHUT_DOWN.
    static Routing function(Runtime &runtime, const std::string &identity, Function fn) {
        auto *boxed = new Function(std::move(fn));
        liminal_route_callback cb{&Routing::trampoline, boxed, &detail::delete_fn<Function>};
        liminal_routing *r = nullptr;
        check(liminal_routing_new(runtime.get(), cb, reinterpret_cast<const uint8_t *>(identity.data()),
                                  identity.size(), identity.c_str(), &r));
        return Routing(r);
    }
    /// The function's 64-bit content hash (compare Group::routing_hash()).
    uint64_t hash() const { return liminal_routing_hash(r_.get()); }
    /// The C handle, still owned by this Routing.
    const liminal_routing *get() const noexcept { return r_.get(); }

private:
    explicit Routing(liminal_routing *r) : r_(r) {}
    static liminal_route_result trampoline(void *user, const liminal_message *message,
                                           const liminal_consumer_view *views, size_t count,
                                           const char **selected) noexcept {
        try {
            std::vector<ConsumerView> list;
            list.reserve(count);
            for (size_t i = 0; i < count; i++) list.push_back(ConsumerView::from(views[i]));
            auto choice = (*static_cast<Function *>(user))(MessageView(message), list);
            if (!choice) return LIMINAL_ROUTE_NONE;
            for (size_t i = 0; i < count; i++) {
                if (*choice == views[i].id) {
                    *selected = views[i].id;
                    return LIMINAL_ROUTE_SELECTED;
                }
            }
            thread_local std::string unknown;
            unknown = *choice;
            *selected = unknown.c_str();
            return LIMINAL_ROUTE_SELECTED;
        } catch (...) {
            detail::report_callback_error("routing");
            return LIMINAL_ROUTE_FAILED;
        }
    }
    detail::Owned<liminal_routing, liminal_routing_free> r_;
};

// -------------------------------------------------------------- consumers

/// A handle to a registered consumer (the consumer lives until it leaves or
/// crashes, or its group goes; dropping the handle does not remove it).
/// Thread-safe; movable, not copyable.
class Consumer {
public:
    /// Take ownership of a consumer handle (as liminal_consumer_register or
    /// liminal_group_consumer return it); the destructor frees the handle.
    explicit Consumer(liminal_consumer *c) : c_(c) {}
    /// The consumer's id.
    std::string id() const { return liminal_consumer_id(c_.get()); }
    /// Registered, not crashed, not left, and the runtime is up.
    bool alive() const { return liminal_consumer_is_alive(c_.get()); }
    /// Quarantined after an expired lease (LeasePolicy::Quarantine).
    bool paused() const { return liminal_consumer_is_paused(c_.get()); }
    /// Deliveries reserved for or held by it now. Throws liminal::Error
    /// (LIMINAL_SHUT_DOWN).
    uint32_t in_flight() const {
        uint32_t n = 0;
        check(liminal_consumer_in_flight(c_.get(), &n));
        return n;
    }
    /// Declare it crashed: it dies now, on this thread (its crash callback
    /// runs here: LIMINAL_CRASH_DECLARED, `reason`), and every delivery it
    /// held is re-routed at once (a still-running callback's later answer is
    /// fenced off). Safe from its own callback. Throws liminal::Error:
    /// LIMINAL_CONSUMER_GONE if it is already gone, LIMINAL_SHUT_DOWN.
    void crash(const std::string &reason) { check(liminal_consumer_crash(c_.get(), reason.c_str())); }
    /// Fault injection: it crashes (LIMINAL_CRASH_INJECTED) at its next
    /// delivery, before its callback sees it; that message is re-routed as if
    /// never delivered (not redelivered, not counted against it). Throws
    /// liminal::Error: LIMINAL_CONSUMER_GONE, LIMINAL_SHUT_DOWN.
    void crash_at_next_delivery() { check(liminal_consumer_crash_at_next_delivery(c_.get())); }
    /// Leave the group now: no new deliveries; what it held is re-routed
    /// (flagged redelivered if it had seen it, not counted as a crash); a
    /// running callback finishes and its answer counts. Its crash callback is
    /// destroyed without being called. Safe from its own callback. Throws
    /// liminal::Error: LIMINAL_CONSUMER_GONE if already gone, LIMINAL_SHUT_DOWN.
    void leave() { check(liminal_consumer_leave(c_.get())); }
    /// Update the buffer depth routing functions see. Throws liminal::Error:
    /// LIMINAL_CONSUMER_GONE, LIMINAL_SHUT_DOWN.
    void set_buffer_depth(uint32_t depth) { check(liminal_consumer_set_buffer_depth(c_.get(), depth)); }
    /// Change how many deliveries it may hold (at least 1): raising it lets
    /// waiting messages in at once; lowering it below what it holds takes
    /// nothing away. Throws liminal::Error: LIMINAL_INVALID_ARGUMENT,
    /// LIMINAL_CONSUMER_GONE, LIMINAL_SHUT_DOWN.
    void set_max_in_flight(uint32_t max) { check(liminal_consumer_set_max_in_flight(c_.get(), max)); }
    /// Replace its affinity tags (non-empty UTF-8 strings, copied); waiting
    /// messages are looked at again. Throws liminal::Error:
    /// LIMINAL_INVALID_ARGUMENT, LIMINAL_CONSUMER_GONE, LIMINAL_SHUT_DOWN.
    void set_tags(const std::vector<std::string> &tags) {
        std::vector<const char *> ptrs;
        for (const auto &t : tags) ptrs.push_back(t.c_str());
        check(liminal_consumer_set_tags(c_.get(), ptrs.empty() ? nullptr : ptrs.data(), ptrs.size()));
    }
    /// Pull mode: the next delivery, or std::nullopt on timeout. Throws
    /// liminal::Error (LIMINAL_CONSUMER_GONE) once the consumer is gone.
    /// Also throws LIMINAL_SHUT_DOWN, LIMINAL_INVALID_ARGUMENT for a
    /// push-mode consumer, LIMINAL_WOULD_DEADLOCK from a callback with a
    /// timeout above 0. Answer the delivery (see KeptDelivery).
    std::optional<KeptDelivery> next_delivery(milliseconds timeout) {
        liminal_delivery *d = nullptr;
        liminal_status s = liminal_consumer_next_delivery(c_.get(), detail::count(timeout, "timeout"), &d);
        if (s == LIMINAL_TIMED_OUT) return std::nullopt;
        check(s);
        return KeptDelivery(d);
    }
    /// The C handle, still owned by this Consumer.
    const liminal_consumer *get() const noexcept { return c_.get(); }

private:
    detail::Owned<liminal_consumer, liminal_consumer_free> c_;
};

// ----------------------------------------------------------------- groups

/// A consumer group: consumers, the routing function that picks one for
/// each message, and a waiting room for messages none has taken yet (owns a
/// liminal_group). Thread-safe; movable, not copyable.
///
/// The destructor closes the group (liminal_group_free): it accepts nothing
/// more, every consumer leaves, and messages waiting or held fail with
/// LIMINAL_NO_CONSUMER_AVAILABLE (a running delivery callback finishes, and
/// its answer counts). Safe from any callback, its own consumers' included.
/// Consumer handles stay safe to destroy.
class Group {
public:
    /// A push consumer's delivery callback: answer with a Verdict. Runs on a
    /// scheduler worker thread, one delivery at a time per consumer
    /// (different consumers may run at once with more than one scheduler
    /// thread). Must not block: it holds a worker, and the push consumers on
    /// that worker wait behind it; defer (Delivery::keep) and finish
    /// elsewhere, or use pull mode. Blocking calls made from it
    /// (Group::dispatch, drain, Runtime::shutdown, Consumer::next_delivery
    /// with a timeout) throw liminal::Error (LIMINAL_WOULD_DEADLOCK). The
    /// Delivery is valid only during the call. An exception it throws
    /// crashes the consumer (see add()).
    using OnDelivery = std::function<Verdict(Delivery &)>;
    /// A consumer's crash callback: called for each lease expiry it survives
    /// (CrashReport::alive true) and at most once when it dies (alive false);
    /// never for a graceful leave. Runs on the thread that noticed (the one
    /// calling Consumer::crash or KeptDelivery::crash, the consumer's worker,
    /// the timer thread for a lease: see liminal_crash_fn); never overlaps
    /// for one consumer. Must not block: blocking calls made from it throw
    /// liminal::Error (LIMINAL_WOULD_DEADLOCK). An exception it throws goes
    /// to the callback error handler ("crash").
    using OnCrash = std::function<void(const CrashReport &)>;
    /// An asynchronous dispatch's completion: runs exactly once with the
    /// Outcome, delivered or not (check Outcome::status). Runs on the thread
    /// that ended the dispatch (a scheduler worker, a thread answering or
    /// crashing, the timer or routing thread, the thread shutting the
    /// runtime down, or the dispatching thread itself before dispatch_async
    /// returns: see liminal_completion_fn); completions of different
    /// dispatches may overlap. Must not block: blocking calls made from it
    /// throw liminal::Error (LIMINAL_WOULD_DEADLOCK). It is destroyed right
    /// after its call. An exception it throws goes to the callback error
    /// handler ("completion").
    using OnComplete = std::function<void(const Outcome &)>;
    /// A dispatch ended without a delivery (attempts used up, deadline
    /// passed, dropped at overflow, blocking timeout, routing failed, group
    /// closed; never for shutdown): the message (valid only during the call)
    /// and its trail, whose status says why. Runs on the thread that ends
    /// the dispatch, right before its completion; calls may overlap on
    /// different threads. Must not block: blocking calls made from it throw
    /// liminal::Error (LIMINAL_WOULD_DEADLOCK). An exception it throws goes
    /// to the callback error handler ("dead_letter").
    using OnDeadLetter = std::function<void(const MessageView &, const Outcome &)>;

    /// Create a group on `runtime`, routed by `routing` (the group keeps its
    /// own reference to the function), with `options` (unset ones keep the
    /// defaults). Throws liminal::Error: LIMINAL_INVALID_ARGUMENT for an
    /// invalid option, LIMINAL_SHUT_DOWN.
    Group(Runtime &runtime, const Routing &routing, const GroupOptions &options = GroupOptions()) {
        auto o = options.to_c();
        liminal_group *g = nullptr;
        check(liminal_group_new(runtime.get(), routing.get(), o.get(), &g));
        g_.reset(g);
    }

    /// A durable group's recovered-message callback: the end of a message
    /// its store gave back when the group was created (accepted by an
    /// earlier host, not completed), once per message; the outcome's status
    /// is LIMINAL_OK when acknowledged. Same threads and rules as
    /// OnDeadLetter; an exception goes to the callback error handler
    /// ("recovered").
    using OnRecovered = std::function<void(const MessageView &, const Outcome &)>;

    /// Create a durable group (`options` with a store) whose recovered
    /// messages end in `on_recovered` (liminal_group_options_set_recovered).
    /// Throws liminal::Error as the constructor above, and
    /// LIMINAL_STORE_LOCKED, LIMINAL_STORE_FAILED.
    Group(Runtime &runtime, const Routing &routing, const GroupOptions &options, OnRecovered on_recovered) {
        auto o = options.to_c();
        if (!o.get()) {
            liminal_group_options *raw = nullptr;
            check(liminal_group_options_new(&raw));
            o.reset(raw);
        }
        liminal_recovered_callback cb{&Group::recovered, new OnRecovered(std::move(on_recovered)),
                                      &detail::delete_fn<OnRecovered>};
        check(liminal_group_options_set_recovered(o.get(), cb));
        liminal_group *g = nullptr;
        check(liminal_group_new(runtime.get(), routing.get(), o.get(), &g));
        g_.reset(g);
    }

    /// Let `key`, held after its head failed (GroupOptions::hold_failed_keys),
    /// move on; false when it was not held (liminal_group_release_key).
    bool release_key(const std::string &key) const {
        liminal_status s = liminal_group_release_key(g_.get(), key.c_str());
        if (s == LIMINAL_NOT_FOUND) return false;
        check(s);
        return true;
    }

    /// Register a push consumer (or, with an empty `on_delivery`, a pull one).
    /// An exception thrown by `on_delivery` crashes the consumer.
    ///
    /// The crash is declared (LIMINAL_CRASH_DECLARED, reason "exception: "
    /// and what()): everything it holds is re-routed, and the delivery counts
    /// against its message (died handling it). `id` is non-empty UTF-8,
    /// unique in the group; `on_crash` is optional. The callbacks are destroyed once the
    /// consumer is gone (crashed, left, group destroyed, runtime shut down),
    /// or at once if this throws liminal::Error: LIMINAL_INVALID_ARGUMENT,
    /// LIMINAL_DUPLICATE_CONSUMER, LIMINAL_SHUT_DOWN, LIMINAL_SPAWN_FAILED.
    Consumer add(const std::string &id, OnDelivery on_delivery, const ConsumerOptions &options = ConsumerOptions(),
                 OnCrash on_crash = {}) {
        auto o = options.to_c();
        liminal_delivery_callback d{nullptr, nullptr, nullptr};
        if (on_delivery) d = {&Group::deliver, new OnDelivery(std::move(on_delivery)), &detail::delete_fn<OnDelivery>};
        liminal_crash_callback c{nullptr, nullptr, nullptr};
        if (on_crash) c = {&Group::crashed, new OnCrash(std::move(on_crash)), &detail::delete_fn<OnCrash>};
        liminal_consumer *out = nullptr;
        check(liminal_consumer_register(g_.get(), id.c_str(), d, c, o.get(), &out));
        return Consumer(out);
    }
    /// Register a pull-mode consumer (see Consumer::next_delivery).
    Consumer add_pull(const std::string &id, const ConsumerOptions &options = ConsumerOptions(), OnCrash on_crash = {}) {
        return add(id, OnDelivery(), options, std::move(on_crash));
    }

    /// A new handle to the live consumer `id`, or std::nullopt. Throws
    /// liminal::Error (LIMINAL_SHUT_DOWN).
    std::optional<Consumer> consumer(const std::string &id) const {
        liminal_consumer *c = nullptr;
        liminal_status s = liminal_group_consumer(g_.get(), id.c_str(), &c);
        if (s == LIMINAL_UNKNOWN_CONSUMER) return std::nullopt;
        check(s);
        return Consumer(c);
    }

    /// Blocking dispatch; throws liminal::Error when not delivered.
    ///
    /// Dispatches a snapshot of `message` and waits for the outcome (returned
    /// only when delivered). Throws why not: LIMINAL_ATTEMPTS_EXHAUSTED,
    /// LIMINAL_EXPIRED, LIMINAL_TIMED_OUT (DispatchOptions::timeout: the
    /// message was withdrawn), LIMINAL_UNKNOWN_CONSUMER_SELECTED,
    /// LIMINAL_ROUTING_CRASHED, LIMINAL_ROUTING_TIMED_OUT,
    /// LIMINAL_NO_CONSUMER_AVAILABLE (group closed), LIMINAL_DROPPED, ...; or
    /// refused, nothing dispatched: LIMINAL_QUEUE_FULL, LIMINAL_DRAINING,
    /// LIMINAL_SHUT_DOWN, LIMINAL_WOULD_DEADLOCK (from a callback).
    Outcome dispatch(const Message &message, const DispatchOptions &options = DispatchOptions()) {
        auto opts = options.to_c();
        liminal_outcome *o = nullptr;
        check(liminal_group_dispatch(g_.get(), message.get(), opts.get(), &o));
        detail::Owned<liminal_outcome, liminal_outcome_free> owned(o);
        return Outcome::from(o);
    }

    /// Asynchronous dispatch; `done` runs exactly once (see the C contract)
    /// unless this throws (refused). Returns the dispatch id.
    ///
    /// Dispatches a snapshot of `message`; `done` may run before this
    /// returns (see OnComplete). Refused, it throws liminal::Error
    /// (LIMINAL_QUEUE_FULL, LIMINAL_DRAINING, LIMINAL_SHUT_DOWN, bad
    /// arguments) and `done` is destroyed without being called. Under
    /// Overflow::Block it blocks while the waiting room is full (from a
    /// callback it refuses at once instead).
    uint64_t dispatch_async(const Message &message, OnComplete done,
                            const DispatchOptions &options = DispatchOptions()) {
        auto opts = options.to_c();
        liminal_completion_callback cb{&Group::completed, new OnComplete(std::move(done)), &detail::delete_fn<OnComplete>};
        uint64_t id = 0;
        check(liminal_group_dispatch_async(g_.get(), message.get(), opts.get(), cb, &id));
        return id;
    }

    /// Hot-deploy `routing` (the group keeps its own reference): evaluations
    /// already running keep the version they started with, the next one uses
    /// this, and waiting messages are looked at again. Throws liminal::Error
    /// (LIMINAL_SHUT_DOWN).
    void deploy(const Routing &routing) { check(liminal_group_deploy(g_.get(), routing.get())); }
    /// The content hash of the routing function in use (see Routing::hash()).
    uint64_t routing_hash() const { return liminal_group_routing_hash(g_.get()); }

    /// Install the dead-letter callback (replacing an earlier one).
    /// The replaced one is destroyed once its last call returned; `fn` goes
    /// when replaced or cleared, when the group is destroyed, or at the
    /// runtime's shutdown. Throws liminal::Error (LIMINAL_SHUT_DOWN).
    void on_dead_letter(OnDeadLetter fn) {
        liminal_dead_letter_callback cb{&Group::dead_letter, new OnDeadLetter(std::move(fn)), &detail::delete_fn<OnDeadLetter>};
        check(liminal_group_set_dead_letter(g_.get(), cb));
    }
    /// Remove the dead-letter callback (destroyed once its last call
    /// returned). Throws liminal::Error (LIMINAL_SHUT_DOWN).
    void clear_dead_letter() { check(liminal_group_set_dead_letter(g_.get(), {nullptr, nullptr, nullptr})); }

    /// Stop accepting dispatches; wait up to `timeout` for the accepted ones.
    /// Returns how many had not completed.
    /// New dispatches then fail with LIMINAL_DRAINING; waiting messages
    /// still fail by their deadlines. Throws liminal::Error:
    /// LIMINAL_SHUT_DOWN; LIMINAL_WOULD_DEADLOCK from a callback.
    size_t drain(milliseconds timeout) {
        size_t left = 0;
        check(liminal_group_drain(g_.get(), detail::count(timeout, "timeout"), &left));
        return left;
    }

    /// Number of live consumers. Throws liminal::Error (LIMINAL_SHUT_DOWN),
    /// as do waiting() and in_flight().
    size_t size() const { return read_count(liminal_group_consumer_count); }
    /// Messages waiting for a consumer now (in the waiting room, behind their
    /// ordering key's head included, released with a delay, or being routed).
    size_t waiting() const { return read_count(liminal_group_waiting); }
    /// Accepted dispatches not completed yet.
    size_t in_flight() const { return read_count(liminal_group_in_flight); }

    /// The consumers now, in id order. Throws liminal::Error
    /// (LIMINAL_SHUT_DOWN).
    std::vector<ConsumerView> snapshot() const {
        liminal_snapshot *s = nullptr;
        check(liminal_group_snapshot(g_.get(), &s));
        detail::Owned<liminal_snapshot, liminal_snapshot_free> owned(s);
        std::vector<ConsumerView> out;
        for (size_t i = 0; i < liminal_snapshot_count(s); i++) {
            liminal_consumer_view v{};
            check(liminal_snapshot_get(s, i, &v));
            out.push_back(ConsumerView::from(v));
        }
        return out;
    }
    /// One ordering key with messages waiting behind its head.
    struct WaitingKey {
        std::string key;  ///< the key
        size_t depth;     ///< its messages not completed: the head and those behind it
        uint64_t head_age_ns; ///< how long its head has been its head
    };
    /// At most `max_keys` (1 to LIMINAL_KEY_LIST_MAX) of the ordering keys
    /// with messages waiting behind their head, deepest first; `*total`
    /// (optional) receives how many were waiting in all. Throws
    /// liminal::Error (LIMINAL_INVALID_ARGUMENT, LIMINAL_SHUT_DOWN).
    std::vector<WaitingKey> waiting_keys(size_t max_keys, size_t *total = nullptr) const {
        liminal_key_list *list = nullptr;
        check(liminal_group_waiting_keys(g_.get(), max_keys, &list));
        detail::Owned<liminal_key_list, liminal_key_list_free> owned(list);
        std::vector<WaitingKey> out;
        for (size_t i = 0; i < liminal_key_list_count(list); i++) {
            const char *key = nullptr;
            WaitingKey k{std::string(), 0, 0};
            check(liminal_key_list_get(list, i, &key, &k.depth, &k.head_age_ns));
            k.key = key;
            out.push_back(std::move(k));
        }
        if (total) *total = liminal_key_list_total(list);
        return out;
    }
    /// The C handle, still owned by this Group.
    const liminal_group *get() const noexcept { return g_.get(); }

private:
    friend class Remote;
    friend class Worker;
    size_t read_count(liminal_status (*fn)(const liminal_group *, size_t *)) const {
        size_t n = 0;
        check(fn(g_.get(), &n));
        return n;
    }
    static liminal_verdict deliver(void *user, liminal_delivery *delivery) noexcept {
        const char *reason = "exception: not a std::exception";
        std::string text;
        try {
            Delivery d(delivery);
            return static_cast<liminal_verdict>((*static_cast<OnDelivery *>(user))(d));
        } catch (const std::exception &e) {
            try {
                text = std::string("exception: ") + e.what();
                reason = text.c_str();
            } catch (...) {
            }
        } catch (...) {
        }
        (void)liminal_delivery_crash(delivery, reason);
        return LIMINAL_VERDICT_CRASH;
    }
    static void crashed(void *user, const char *id, liminal_crash_kind kind, const char *reason, bool alive) noexcept {
        try {
            (*static_cast<OnCrash *>(user))(CrashReport{id, kind, reason, alive});
        } catch (...) {
            detail::report_callback_error("crash");
        }
    }
    static void completed(void *user, liminal_status, const liminal_outcome *o) noexcept {
        try {
            (*static_cast<OnComplete *>(user))(Outcome::from(o));
        } catch (...) {
            detail::report_callback_error("completion");
        }
    }
    static void recovered(void *user, const liminal_message *m, const liminal_outcome *o) noexcept {
        try {
            (*static_cast<OnRecovered *>(user))(MessageView(m), Outcome::from(o));
        } catch (...) {
            detail::report_callback_error("recovered");
        }
    }
    static void dead_letter(void *user, const liminal_message *m, const liminal_outcome *o) noexcept {
        try {
            (*static_cast<OnDeadLetter *>(user))(MessageView(m), Outcome::from(o));
        } catch (...) {
            detail::report_callback_error("dead_letter");
        }
    }
    detail::Owned<liminal_group, liminal_group_free> g_;
};

// ------------------------------------------------------- remote consumers

/// How a remote host or worker reaches the other side
/// (liminal_remote_options_*; see docs/PROTOCOL.md).
class RemoteOptions {
public:
    /// An endpoint to listen on, e.g. "tcp/127.0.0.1:7447".
    RemoteOptions &listen(std::string endpoint) { listen_.push_back(std::move(endpoint)); return *this; }
    /// An endpoint to connect to.
    RemoteOptions &connect(std::string endpoint) { connect_.push_back(std::move(endpoint)); return *this; }
    /// Mutual TLS: PEM files of the CA, this side's certificate and key.
    RemoteOptions &tls(std::string ca, std::string certificate, std::string key) {
        tls_ = {std::move(ca), std::move(certificate), std::move(key)};
        return *this;
    }
    /// The user and password this side presents.
    RemoteOptions &credentials(std::string user, std::string password) {
        credentials_ = {std::move(user), std::move(password)};
        return *this;
    }
    /// A file of accepted "user:password" lines (host side).
    RemoteOptions &users_file(std::string path) { users_file_ = std::move(path); return *this; }
    /// The session lease (default 1000 ms, at least 50): on a host the
    /// longest a worker may advertise, on a worker its own.
    RemoteOptions &lease(milliseconds lease) { lease_ms_ = detail::count(lease, "lease"); return *this; }
    /// Allow endpoints that are neither loopback, a unix socket, nor TLS.
    RemoteOptions &allow_insecure(bool allow = true) { allow_insecure_ = allow; return *this; }

    /// The C options.
    detail::Owned<liminal_remote_options, liminal_remote_options_free> to_c() const {
        liminal_remote_options *raw = nullptr;
        check(liminal_remote_options_new(&raw));
        detail::Owned<liminal_remote_options, liminal_remote_options_free> o(raw);
        for (const auto &e : listen_) check(liminal_remote_options_add_listen(raw, e.c_str()));
        for (const auto &e : connect_) check(liminal_remote_options_add_connect(raw, e.c_str()));
        if (tls_) check(liminal_remote_options_set_tls(raw, (*tls_)[0].c_str(), (*tls_)[1].c_str(), (*tls_)[2].c_str()));
        if (credentials_)
            check(liminal_remote_options_set_credentials(raw, credentials_->first.c_str(), credentials_->second.c_str()));
        if (users_file_) check(liminal_remote_options_set_users_file(raw, users_file_->c_str()));
        if (lease_ms_) check(liminal_remote_options_set_lease_ms(raw, *lease_ms_));
        if (allow_insecure_) check(liminal_remote_options_set_allow_insecure(raw, *allow_insecure_));
        return o;
    }

private:
    std::vector<std::string> listen_, connect_;
    std::optional<std::vector<std::string>> tls_;
    std::optional<std::pair<std::string, std::string>> credentials_;
    std::optional<std::string> users_file_;
    std::optional<uint64_t> lease_ms_;
    std::optional<bool> allow_insecure_;
};

/// A group opened to remote workers (host side; liminal_group_open_remote).
/// Destroying it closes it: workers are told, what they held is re-routed.
class Remote {
public:
    /// Told of every remote consumer of this group that fails (as
    /// Group::OnCrash; the C contract of liminal_group_open_remote says on
    /// which thread).
    using OnCrash = Group::OnCrash;

    /// Open `group` to workers under the name `name`. `on_crash` is told of
    /// every remote consumer that fails (see the C contract).
    Remote(Group &group, const std::string &name, const RemoteOptions &options, OnCrash on_crash = {}) {
        auto o = options.to_c();
        liminal_crash_callback c{nullptr, nullptr, nullptr};
        if (on_crash) c = {&Group::crashed, new OnCrash(std::move(on_crash)), &detail::delete_fn<OnCrash>};
        liminal_remote *r = nullptr;
        check(liminal_group_open_remote(group.get(), name.c_str(), o.get(), c, &r));
        r_.reset(r);
    }
    /// Remote consumers joined now.
    size_t workers() const {
        size_t n = 0;
        check(liminal_remote_workers(r_.get(), &n));
        return n;
    }
    /// This opening's incarnation (32 hex digits, never reused).
    std::string incarnation() const {
        return detail::text([&](char *b, size_t c, size_t *l) { return liminal_remote_incarnation(r_.get(), b, c, l); });
    }
    /// Answers received and never applied (stale), so far.
    uint64_t stale_answers() const {
        uint64_t n = 0;
        check(liminal_remote_stale_answers(r_.get(), &n));
        return n;
    }
    /// The C handle, still owned by this object.
    const liminal_remote *get() const noexcept { return r_.get(); }

private:
    detail::Owned<liminal_remote, liminal_remote_free> r_;
};

/// A worker: a consumer in this process of a group on a remote host
/// (liminal_worker_new). Destroying it leaves the group gracefully.
class Worker {
public:
    /// Handles a delivery, as a local consumer's Group::OnDelivery (runs on
    /// the worker's delivery thread).
    using OnDelivery = Group::OnDelivery;
    /// Told, with the reason, when the host this worker served is lost (on
    /// the worker's delivery thread); the worker rejoins the next host by
    /// itself. An exception it throws goes to the callback error handler.
    using OnHostLost = std::function<void(std::string_view reason)>;

    /// Connect as consumer `id` of the host's group `group_name`; an empty
    /// `on_delivery` makes a pull-mode worker (next_delivery). An exception
    /// thrown by `on_delivery` is a crash answer.
    Worker(const std::string &group_name, const std::string &id, OnDelivery on_delivery,
           const RemoteOptions &remote, const ConsumerOptions &options = ConsumerOptions()) {
        auto r = remote.to_c();
        auto o = options.to_c();
        liminal_delivery_callback d{nullptr, nullptr, nullptr};
        if (on_delivery) d = {&Group::deliver, new OnDelivery(std::move(on_delivery)), &detail::delete_fn<OnDelivery>};
        liminal_worker *w = nullptr;
        check(liminal_worker_new(group_name.c_str(), id.c_str(), d, o.get(), r.get(), &w));
        w_.reset(w);
    }
    /// Wait until the host accepted it; throws liminal::Error otherwise
    /// (LIMINAL_TIMED_OUT, LIMINAL_UNKNOWN_CONSUMER when refused, …). The
    /// host makes it a consumer just after it sends the acceptance (see
    /// liminal_worker_wait_joined).
    void wait_joined(milliseconds timeout) const {
        check(liminal_worker_wait_joined(w_.get(), detail::count(timeout, "timeout")));
    }
    /// Be told when the host it served is lost (worker's delivery thread);
    /// it rejoins the next host by itself. Replaces an earlier one.
    void on_host_lost(OnHostLost fn) {
        liminal_host_lost_callback cb{&Worker::host_lost, new OnHostLost(std::move(fn)), &detail::delete_fn<OnHostLost>};
        check(liminal_worker_set_host_lost(w_.get(), cb));
    }
    /// The current worker incarnation.
    std::string incarnation() const {
        return detail::text([&](char *b, size_t c, size_t *l) { return liminal_worker_incarnation(w_.get(), b, c, l); });
    }
    /// The host incarnation that joined it ("" while not joined).
    std::string host_incarnation() const {
        return detail::text(
            [&](char *b, size_t c, size_t *l) { return liminal_worker_host_incarnation(w_.get(), b, c, l); });
    }
    /// Pull mode: the next delivery, or std::nullopt on timeout.
    std::optional<KeptDelivery> next_delivery(milliseconds timeout) {
        liminal_delivery *d = nullptr;
        liminal_status s = liminal_worker_next_delivery(w_.get(), detail::count(timeout, "timeout"), &d);
        if (s == LIMINAL_TIMED_OUT) return std::nullopt;
        check(s);
        return KeptDelivery(d);
    }
    /// The C handle, still owned by this object.
    const liminal_worker *get() const noexcept { return w_.get(); }

private:
    static void host_lost(void *user, const char *, const char *reason) noexcept {
        try {
            (*static_cast<OnHostLost *>(user))(reason);
        } catch (...) {
            detail::report_callback_error("host_lost");
        }
    }
    detail::Owned<liminal_worker, liminal_worker_free> w_;
};

}  // namespace liminal

#endif  // LIMINAL_HPP
