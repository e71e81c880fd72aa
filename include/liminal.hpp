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
class Error : public std::runtime_error {
public:
    Error(liminal_status status, const std::string &detail)
        : std::runtime_error(std::string(liminal_status_name(status)) + ": " + detail),
          status_(status) {}
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

/// Throws liminal::Error unless `status` is LIMINAL_OK.
inline void check(liminal_status status) {
    if (status != LIMINAL_OK) throw Error(status, liminal_last_error());
}

/// The library's version at run time ("MAJOR.MINOR.PATCH").
inline std::string version() { return liminal_version(); }

/// Receives an exception thrown by a callback that has no way to report it
/// to the library: `where` is "completion", "dead_letter", "crash", "stats",
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
inline void free_runtime(liminal_runtime *r) { (void)liminal_runtime_free(r); }
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
    /// The overflow policy; `block_timeout` for Overflow::Block.
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

    /// The C options (NULL when nothing was set: the defaults).
    detail::Owned<liminal_group_options, liminal_group_options_free> to_c() const {
        detail::Owned<liminal_group_options, liminal_group_options_free> o;
        if (!name_ && !max_attempts_ && !count_holding_ && !auto_ack_ms_ && !waiting_room_ && !overflow_ &&
            !deadline_ms_ && !ack_lease_ms_ && !lease_policy_)
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
        return o;
    }

private:
    std::optional<std::string> name_;
    std::optional<uint32_t> max_attempts_;
    std::optional<bool> count_holding_;
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

    /// The C options (NULL when nothing was set: the defaults).
    detail::Owned<liminal_dispatch_options, liminal_dispatch_options_free> to_c() const {
        detail::Owned<liminal_dispatch_options, liminal_dispatch_options_free> o;
        if (!deadline_ms_ && !timeout_ms_) return o;
        liminal_dispatch_options *raw = nullptr;
        check(liminal_dispatch_options_new(&raw));
        o.reset(raw);
        if (deadline_ms_) check(liminal_dispatch_options_set_deadline_ms(raw, *deadline_ms_));
        if (timeout_ms_) check(liminal_dispatch_options_set_timeout_ms(raw, *timeout_ms_));
        return o;
    }

private:
    std::optional<uint64_t> deadline_ms_, timeout_ms_;
};

// --------------------------------------------------------------- messages

/// Read-only access to a message (borrowed or owned).
class MessageView {
public:
    explicit MessageView(const liminal_message *m) : m_(m) {}
    std::optional<liminal_field_type> field_type(const char *name) const {
        liminal_field_type t = LIMINAL_FIELD_NULL;
        return liminal_message_field_type(m_, name, &t) == LIMINAL_OK ? std::optional<liminal_field_type>(t)
                                                                      : std::nullopt;
    }
    size_t field_count() const {
        size_t n = 0;
        check(liminal_message_field_count(m_, &n));
        return n;
    }
    std::optional<int64_t> get_int(const char *name) const {
        int64_t v = 0;
        return liminal_message_get_int(m_, name, &v) == LIMINAL_OK ? std::optional<int64_t>(v) : std::nullopt;
    }
    std::optional<double> get_double(const char *name) const {
        double v = 0;
        return liminal_message_get_double(m_, name, &v) == LIMINAL_OK ? std::optional<double>(v) : std::nullopt;
    }
    std::optional<bool> get_bool(const char *name) const {
        bool v = false;
        return liminal_message_get_bool(m_, name, &v) == LIMINAL_OK ? std::optional<bool>(v) : std::nullopt;
    }
    std::optional<std::string> get_text(const char *name) const {
        size_t len = 0;
        liminal_status s = liminal_message_get_text(m_, name, nullptr, 0, &len);
        if (s != LIMINAL_BUFFER_TOO_SMALL) return std::nullopt;
        std::string out(len + 1, '\0');
        check(liminal_message_get_text(m_, name, &out[0], out.size(), &len));
        out.resize(len);
        return out;
    }
    std::string payload() const {
        const uint8_t *data = nullptr;
        size_t len = 0;
        check(liminal_message_payload(m_, &data, &len));
        return data ? std::string(reinterpret_cast<const char *>(data), len) : std::string();
    }
    std::string fields_json() const {
        return detail::text([&](char *buf, size_t cap, size_t *len) {
            return liminal_message_fields_json(m_, buf, cap, len);
        });
    }
    const liminal_message *get() const noexcept { return m_; }

private:
    const liminal_message *m_;
};

/// An owned message with typed routing fields and a payload.
class Message {
public:
    Message() {
        liminal_message *m = nullptr;
        check(liminal_message_new(&m));
        m_.reset(m);
    }
    Message &set(const char *name, int64_t v) { check(liminal_message_set_int(m_.get(), name, v)); return *this; }
    Message &set(const char *name, int v) { return set(name, static_cast<int64_t>(v)); }
    Message &set(const char *name, double v) { check(liminal_message_set_double(m_.get(), name, v)); return *this; }
    Message &set(const char *name, bool v) { check(liminal_message_set_bool(m_.get(), name, v)); return *this; }
    Message &set(const char *name, const std::string &v) { check(liminal_message_set_text(m_.get(), name, v.c_str())); return *this; }
    Message &set(const char *name, const char *v) { check(liminal_message_set_text(m_.get(), name, v)); return *this; }
    Message &set(const char *name, std::nullptr_t) { check(liminal_message_set_null(m_.get(), name)); return *this; }
    Message &payload(const std::string &bytes) {
        check(liminal_message_set_payload(m_.get(), reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size()));
        return *this;
    }
    MessageView view() const { return MessageView(m_.get()); }
    const liminal_message *get() const noexcept { return m_.get(); }

private:
    detail::Owned<liminal_message, liminal_message_free> m_;
};

/// How a dispatch ended, and its trail (a value copy of liminal_outcome).
struct Outcome {
    liminal_status status = LIMINAL_OK;
    uint64_t dispatch_id = 0;
    uint32_t attempts = 0;                   ///< forwards made, the successful one included
    std::string delivered_to;                ///< empty if not delivered
    std::vector<std::string> rerouted_from;  ///< consumers that failed holding it
    std::vector<uint64_t> reroute_ns;        ///< failure noticed -> re-route initiated
    uint32_t crashed_handling = 0;           ///< consumers that died handling it
    uint32_t crashed_holding = 0;            ///< consumers that died merely holding it
    uint32_t released = 0;                   ///< times a consumer released it
    uint32_t lease_expired = 0;              ///< times its lease expired
    uint64_t waited_ns = 0;                  ///< time in the waiting room

    bool delivered() const noexcept { return status == LIMINAL_OK; }

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
        return out;
    }
};

/// What a consumer's crash callback is told.
struct CrashReport {
    std::string consumer_id;
    liminal_crash_kind kind;
    std::string reason;
    bool alive;  ///< survived (a lease expiry under LeasePolicy::Quarantine)
};

// ------------------------------------------------------------- deliveries

namespace detail {
/// The accessors and answers shared by borrowed and kept deliveries.
template <class Self> class DeliveryOps {
public:
    MessageView message() const { return MessageView(liminal_delivery_message(d())); }
    uint64_t dispatch_id() const { return liminal_delivery_dispatch_id(d()); }
    uint64_t delivery_id() const { return liminal_delivery_id(d()); }
    uint32_t attempt() const { return liminal_delivery_attempt(d()); }
    bool redelivered() const { return liminal_delivery_redelivered(d()); }
    uint32_t crashed_handling() const { return liminal_delivery_crashed_handling(d()); }
    uint32_t crashed_holding() const { return liminal_delivery_crashed_holding(d()); }
    /// The message's stable id, the same for every attempt (deduplicate on
    /// it): on a remote worker `<host incarnation>-<dispatch id>`.
    std::string message_id() const {
        return detail::text([&](char *b, size_t c, size_t *l) { return liminal_delivery_message_id(d(), b, c, l); });
    }
    std::string consumer_id() const { return liminal_delivery_consumer_id(d()); }
    /// Hand it back without dying, to another consumer, after `delay`.
    void release(milliseconds delay = milliseconds(0)) const {
        check(liminal_delivery_release(d(), count(delay, "delay")));
    }
    /// Work on it begins: dying before answering counts as dying handling
    /// it (pull mode, kept deliveries; see liminal_delivery_started).
    void started() const { check(liminal_delivery_started(d())); }
    /// Keep it `lease` more from now (when a lease applies).
    void extend_lease(milliseconds lease) const { check(liminal_delivery_extend_lease(d(), count(lease, "lease"))); }

private:
    liminal_delivery *d() const { return static_cast<const Self *>(this)->get(); }
};
}  // namespace detail

/// A delivery answered later, from any thread.
class KeptDelivery : public detail::DeliveryOps<KeptDelivery> {
public:
    explicit KeptDelivery(liminal_delivery *d) : d_(d) {}
    void ack() const { check(liminal_delivery_ack(d_.get())); }
    void crash(const std::string &reason) const { check(liminal_delivery_crash(d_.get(), reason.c_str())); }
    liminal_delivery *get() const noexcept { return d_.get(); }

private:
    detail::Owned<liminal_delivery, liminal_delivery_free> d_;
};

/// The delivery a consumer callback receives (valid during the call). After
/// release() or an answer through keep(), return Verdict::Defer.
class Delivery : public detail::DeliveryOps<Delivery> {
public:
    explicit Delivery(liminal_delivery *d) : d_(d) {}
    /// Keep it to answer later, from any thread (return Verdict::Defer).
    KeptDelivery keep() const {
        liminal_delivery *kept = nullptr;
        check(liminal_delivery_keep(d_, &kept));
        return KeptDelivery(kept);
    }
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

/// A consumer as routing functions and snapshots see it.
struct ConsumerView {
    std::string id;
    uint32_t in_flight, max_in_flight, buffer_depth;
    std::vector<std::string> tags;

    static ConsumerView from(const liminal_consumer_view &v) {
        ConsumerView out{v.id, v.in_flight, v.max_in_flight, v.buffer_depth, {}};
        for (size_t t = 0; t < v.tag_count; t++) out.tags.emplace_back(v.tags[t]);
        return out;
    }
};

// ---------------------------------------------------------------- runtime

class Runtime {
public:
    using OnStats = std::function<void(std::string_view json)>;

    explicit Runtime(const RuntimeOptions &options = RuntimeOptions()) {
        auto o = options.to_c();
        liminal_runtime *r = nullptr;
        check(liminal_runtime_new(o.get(), &r));
        r_.reset(r);
    }
    liminal_metrics metrics() const {
        liminal_metrics m{};
        check(liminal_runtime_metrics(r_.get(), &m));
        return m;
    }
    /// Statistics as one JSON object.
    std::string stats_json() const {
        return detail::text([&](char *b, size_t c, size_t *l) { return liminal_runtime_stats_json(r_.get(), b, c, l); });
    }
    /// Statistics in the Prometheus text format.
    std::string stats_prometheus() const {
        return detail::text(
            [&](char *b, size_t c, size_t *l) { return liminal_runtime_stats_prometheus(r_.get(), b, c, l); });
    }
    /// The statistics as JSON to `fn` every `interval` (timer thread;
    /// replaces an earlier one).
    void on_stats(milliseconds interval, OnStats fn) {
        liminal_stats_callback cb{&Runtime::stats, new OnStats(std::move(fn)), &detail::delete_fn<OnStats>};
        check(liminal_runtime_set_stats_callback(r_.get(), detail::count(interval, "interval"), cb));
    }
    void stop_stats() { check(liminal_runtime_set_stats_callback(r_.get(), 0, {nullptr, nullptr, nullptr})); }
    /// Stop accepting dispatches on every group; wait up to `timeout` for
    /// the accepted ones. Returns how many had not completed.
    size_t drain(milliseconds timeout) {
        size_t left = 0;
        check(liminal_runtime_drain(r_.get(), detail::count(timeout, "timeout"), &left));
        return left;
    }
    void shutdown() { check(liminal_runtime_shutdown(r_.get())); }
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
class Routing {
public:
    using Function = std::function<std::optional<std::string>(const MessageView &, const std::vector<ConsumerView> &)>;

    static Routing builtin(liminal_builtin kind, const char *field = nullptr) {
        liminal_routing *r = nullptr;
        check(liminal_routing_builtin(kind, field, &r));
        return Routing(r);
    }
    /// A function identified by `identity` (content-addressed). It returns
    /// the chosen id, or std::nullopt to let the message wait. An exception
    /// inside it is a routing crash (and goes to the callback error handler).
    static Routing function(Runtime &runtime, const std::string &identity, Function fn) {
        auto *boxed = new Function(std::move(fn));
        liminal_route_callback cb{&Routing::trampoline, boxed, &detail::delete_fn<Function>};
        liminal_routing *r = nullptr;
        check(liminal_routing_new(runtime.get(), cb, reinterpret_cast<const uint8_t *>(identity.data()),
                                  identity.size(), identity.c_str(), &r));
        return Routing(r);
    }
    uint64_t hash() const { return liminal_routing_hash(r_.get()); }
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
class Consumer {
public:
    explicit Consumer(liminal_consumer *c) : c_(c) {}
    std::string id() const { return liminal_consumer_id(c_.get()); }
    bool alive() const { return liminal_consumer_is_alive(c_.get()); }
    /// Quarantined after an expired lease (LeasePolicy::Quarantine).
    bool paused() const { return liminal_consumer_is_paused(c_.get()); }
    uint32_t in_flight() const {
        uint32_t n = 0;
        check(liminal_consumer_in_flight(c_.get(), &n));
        return n;
    }
    void crash(const std::string &reason) { check(liminal_consumer_crash(c_.get(), reason.c_str())); }
    void crash_at_next_delivery() { check(liminal_consumer_crash_at_next_delivery(c_.get())); }
    void leave() { check(liminal_consumer_leave(c_.get())); }
    void set_buffer_depth(uint32_t depth) { check(liminal_consumer_set_buffer_depth(c_.get(), depth)); }
    void set_max_in_flight(uint32_t max) { check(liminal_consumer_set_max_in_flight(c_.get(), max)); }
    void set_tags(const std::vector<std::string> &tags) {
        std::vector<const char *> ptrs;
        for (const auto &t : tags) ptrs.push_back(t.c_str());
        check(liminal_consumer_set_tags(c_.get(), ptrs.empty() ? nullptr : ptrs.data(), ptrs.size()));
    }
    /// Pull mode: the next delivery, or std::nullopt on timeout. Throws
    /// liminal::Error (LIMINAL_CONSUMER_GONE) once the consumer is gone.
    std::optional<KeptDelivery> next_delivery(milliseconds timeout) {
        liminal_delivery *d = nullptr;
        liminal_status s = liminal_consumer_next_delivery(c_.get(), detail::count(timeout, "timeout"), &d);
        if (s == LIMINAL_TIMED_OUT) return std::nullopt;
        check(s);
        return KeptDelivery(d);
    }
    const liminal_consumer *get() const noexcept { return c_.get(); }

private:
    detail::Owned<liminal_consumer, liminal_consumer_free> c_;
};

// ----------------------------------------------------------------- groups

class Group {
public:
    using OnDelivery = std::function<Verdict(Delivery &)>;
    using OnCrash = std::function<void(const CrashReport &)>;
    using OnComplete = std::function<void(const Outcome &)>;
    using OnDeadLetter = std::function<void(const MessageView &, const Outcome &)>;

    Group(Runtime &runtime, const Routing &routing, const GroupOptions &options = GroupOptions()) {
        auto o = options.to_c();
        liminal_group *g = nullptr;
        check(liminal_group_new(runtime.get(), routing.get(), o.get(), &g));
        g_.reset(g);
    }

    /// Register a push consumer (or, with an empty `on_delivery`, a pull one).
    /// An exception thrown by `on_delivery` crashes the consumer.
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

    /// A new handle to the live consumer `id`, or std::nullopt.
    std::optional<Consumer> consumer(const std::string &id) const {
        liminal_consumer *c = nullptr;
        liminal_status s = liminal_group_consumer(g_.get(), id.c_str(), &c);
        if (s == LIMINAL_UNKNOWN_CONSUMER) return std::nullopt;
        check(s);
        return Consumer(c);
    }

    /// Blocking dispatch; throws liminal::Error when not delivered.
    Outcome dispatch(const Message &message, const DispatchOptions &options = DispatchOptions()) {
        auto opts = options.to_c();
        liminal_outcome *o = nullptr;
        check(liminal_group_dispatch(g_.get(), message.get(), opts.get(), &o));
        detail::Owned<liminal_outcome, liminal_outcome_free> owned(o);
        return Outcome::from(o);
    }

    /// Asynchronous dispatch; `done` runs exactly once (see the C contract)
    /// unless this throws (refused). Returns the dispatch id.
    uint64_t dispatch_async(const Message &message, OnComplete done,
                            const DispatchOptions &options = DispatchOptions()) {
        auto opts = options.to_c();
        liminal_completion_callback cb{&Group::completed, new OnComplete(std::move(done)), &detail::delete_fn<OnComplete>};
        uint64_t id = 0;
        check(liminal_group_dispatch_async(g_.get(), message.get(), opts.get(), cb, &id));
        return id;
    }

    void deploy(const Routing &routing) { check(liminal_group_deploy(g_.get(), routing.get())); }
    uint64_t routing_hash() const { return liminal_group_routing_hash(g_.get()); }

    /// Install the dead-letter callback (replacing an earlier one).
    void on_dead_letter(OnDeadLetter fn) {
        liminal_dead_letter_callback cb{&Group::dead_letter, new OnDeadLetter(std::move(fn)), &detail::delete_fn<OnDeadLetter>};
        check(liminal_group_set_dead_letter(g_.get(), cb));
    }
    void clear_dead_letter() { check(liminal_group_set_dead_letter(g_.get(), {nullptr, nullptr, nullptr})); }

    /// Stop accepting dispatches; wait up to `timeout` for the accepted ones.
    /// Returns how many had not completed.
    size_t drain(milliseconds timeout) {
        size_t left = 0;
        check(liminal_group_drain(g_.get(), detail::count(timeout, "timeout"), &left));
        return left;
    }

    size_t size() const { return read_count(liminal_group_consumer_count); }
    /// Messages waiting for a consumer now.
    size_t waiting() const { return read_count(liminal_group_waiting); }
    /// Accepted dispatches not completed yet.
    size_t in_flight() const { return read_count(liminal_group_in_flight); }

    /// The consumers now, in id order.
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
    const liminal_remote *get() const noexcept { return r_.get(); }

private:
    detail::Owned<liminal_remote, liminal_remote_free> r_;
};

/// A worker: a consumer in this process of a group on a remote host
/// (liminal_worker_new). Destroying it leaves the group gracefully.
class Worker {
public:
    using OnDelivery = Group::OnDelivery;
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
    /// (LIMINAL_TIMED_OUT, LIMINAL_UNKNOWN_CONSUMER when refused, …).
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
