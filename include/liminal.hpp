// liminal.hpp: header-only C++17 RAII wrapper over the liminal C ABI.
//
// - Owning types (Runtime, Group, Consumer, Routing, Message) free their
//   handle in the destructor and are movable, not copyable.
// - A failing status becomes a liminal::Error exception (status + detail).
// - Callbacks are std::function. An exception thrown by a consumer's
//   callback becomes a crash of that consumer (its deliveries are re-routed);
//   exceptions never cross into the C library.
#ifndef LIMINAL_HPP
#define LIMINAL_HPP

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "liminal.h"

namespace liminal {

/// A failed call: the status and the library's detail message.
class Error : public std::runtime_error {
public:
    Error(liminal_status status, const std::string &detail)
        : std::runtime_error(std::string(liminal_status_name(status)) + ": " + detail),
          status_(status) {}
    liminal_status status() const noexcept { return status_; }
    bool retriable() const noexcept { return liminal_status_is_retriable(status_); }

private:
    liminal_status status_;
};

/// Throws liminal::Error unless `status` is LIMINAL_OK.
inline void check(liminal_status status) {
    if (status != LIMINAL_OK) throw Error(status, liminal_last_error());
}

namespace detail {
template <class T, void (*Free)(T *)> struct Deleter {
    void operator()(T *p) const noexcept { Free(p); }
};
inline void free_runtime(liminal_runtime *r) { (void)liminal_runtime_free(r); }
template <class F> void delete_fn(void *user) { delete static_cast<F *>(user); }
}  // namespace detail

/// Read-only access to a message (borrowed or owned).
class MessageView {
public:
    explicit MessageView(const liminal_message *m) : m_(m) {}
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
        size_t len = 0;
        (void)liminal_message_fields_json(m_, nullptr, 0, &len);
        std::string out(len + 1, '\0');
        check(liminal_message_fields_json(m_, &out[0], out.size(), &len));
        out.resize(len);
        return out;
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
    std::unique_ptr<liminal_message, detail::Deleter<liminal_message, liminal_message_free>> m_;
};

/// How a dispatch ended (a value copy of liminal_outcome).
struct Outcome {
    liminal_status status = LIMINAL_OK;
    uint64_t dispatch_id = 0;
    uint32_t attempts = 0;
    std::string delivered_to;                ///< empty if not delivered
    std::vector<std::string> rerouted_from;  ///< consumers that crashed holding it
    std::vector<uint64_t> reroute_ns;        ///< EXIT observed -> re-route initiated

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
        return out;
    }
};

/// A delivery answered later, from any thread.
class KeptDelivery {
public:
    explicit KeptDelivery(liminal_delivery *d) : d_(d) {}
    void ack() { check(liminal_delivery_ack(d_.get())); }
    void crash(const std::string &reason) { check(liminal_delivery_crash(d_.get(), reason.c_str())); }
    MessageView message() const { return MessageView(liminal_delivery_message(d_.get())); }
    uint64_t dispatch_id() const { return liminal_delivery_dispatch_id(d_.get()); }
    uint32_t attempt() const { return liminal_delivery_attempt(d_.get()); }
    bool redelivered() const { return liminal_delivery_redelivered(d_.get()); }

private:
    std::unique_ptr<liminal_delivery, detail::Deleter<liminal_delivery, liminal_delivery_free>> d_;
};

/// The delivery a consumer callback receives (valid during the call).
class Delivery {
public:
    explicit Delivery(liminal_delivery *d) : d_(d) {}
    MessageView message() const { return MessageView(liminal_delivery_message(d_)); }
    uint64_t dispatch_id() const { return liminal_delivery_dispatch_id(d_); }
    uint32_t attempt() const { return liminal_delivery_attempt(d_); }
    bool redelivered() const { return liminal_delivery_redelivered(d_); }
    std::string consumer_id() const { return liminal_delivery_consumer_id(d_); }
    /// Keep it to acknowledge later (return Verdict::Defer).
    KeptDelivery keep() const {
        liminal_delivery *kept = nullptr;
        check(liminal_delivery_keep(d_, &kept));
        return KeptDelivery(kept);
    }

private:
    liminal_delivery *d_;
};

enum class Verdict : int32_t {
    Ack = LIMINAL_VERDICT_ACK,
    Crash = LIMINAL_VERDICT_CRASH,
    Defer = LIMINAL_VERDICT_DEFER,
};

/// A consumer as routing functions see it.
struct ConsumerView {
    std::string id;
    uint32_t in_flight, max_in_flight, buffer_depth;
    std::vector<std::string> tags;
};

class Runtime {
public:
    explicit Runtime(uint32_t scheduler_threads = 0, uint64_t routing_timeout_ms = 0) {
        liminal_runtime *r = nullptr;
        check(liminal_runtime_new(scheduler_threads, routing_timeout_ms, &r));
        r_.reset(r);
    }
    liminal_metrics metrics() const {
        liminal_metrics m{};
        check(liminal_runtime_metrics(r_.get(), &m));
        return m;
    }
    void shutdown() { check(liminal_runtime_shutdown(r_.get())); }
    liminal_runtime *get() const noexcept { return r_.get(); }

private:
    std::unique_ptr<liminal_runtime, detail::Deleter<liminal_runtime, detail::free_runtime>> r_;
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
    /// A function identified by `identity` (content-addressed). An exception
    /// inside it is a routing crash.
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
            for (size_t i = 0; i < count; i++) {
                ConsumerView v{views[i].id, views[i].in_flight, views[i].max_in_flight, views[i].buffer_depth, {}};
                for (size_t t = 0; t < views[i].tag_count; t++) v.tags.emplace_back(views[i].tags[t]);
                list.push_back(std::move(v));
            }
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
            return LIMINAL_ROUTE_FAILED;
        }
    }
    std::unique_ptr<liminal_routing, detail::Deleter<liminal_routing, liminal_routing_free>> r_;
};

/// A registered consumer (the handle; the consumer lives until it leaves or crashes).
class Consumer {
public:
    explicit Consumer(liminal_consumer *c) : c_(c) {}
    std::string id() const { return liminal_consumer_id(c_.get()); }
    bool alive() const { return liminal_consumer_is_alive(c_.get()); }
    uint32_t in_flight() const {
        uint32_t n = 0;
        check(liminal_consumer_in_flight(c_.get(), &n));
        return n;
    }
    void crash(const std::string &reason) { check(liminal_consumer_crash(c_.get(), reason.c_str())); }
    void crash_at_next_delivery() { check(liminal_consumer_crash_at_next_delivery(c_.get())); }
    void leave() { check(liminal_consumer_leave(c_.get())); }
    void set_buffer_depth(uint32_t depth) { check(liminal_consumer_set_buffer_depth(c_.get(), depth)); }
    /// Pull mode: the next delivery, or std::nullopt on timeout.
    std::optional<KeptDelivery> next_delivery(uint64_t timeout_ms) {
        liminal_delivery *d = nullptr;
        liminal_status s = liminal_consumer_next_delivery(c_.get(), timeout_ms, &d);
        if (s == LIMINAL_TIMED_OUT) return std::nullopt;
        check(s);
        return KeptDelivery(d);
    }
    const liminal_consumer *get() const noexcept { return c_.get(); }

private:
    std::unique_ptr<liminal_consumer, detail::Deleter<liminal_consumer, liminal_consumer_free>> c_;
};

class Group {
public:
    using OnDelivery = std::function<Verdict(Delivery &)>;
    using OnCrash = std::function<void(const std::string &id, const std::string &reason)>;
    using OnComplete = std::function<void(const Outcome &)>;
    using OnDeadLetter = std::function<void(const MessageView &, const Outcome &)>;

    Group(Runtime &runtime, const Routing &routing, uint32_t max_attempts = 0, uint64_t handoff_window_ms = 0) {
        liminal_group *g = nullptr;
        check(liminal_group_new(runtime.get(), routing.get(), max_attempts, handoff_window_ms, &g));
        g_.reset(g);
    }

    /// Register a push consumer (or, with an empty `on_delivery`, a pull one).
    Consumer add(const std::string &id, uint32_t max_in_flight, OnDelivery on_delivery,
                 OnCrash on_crash = {}, const std::vector<std::string> &tags = {}, uint32_t buffer_depth = 0) {
        std::vector<const char *> tag_ptrs;
        for (const auto &t : tags) tag_ptrs.push_back(t.c_str());
        liminal_delivery_callback d{nullptr, nullptr, nullptr};
        if (on_delivery) d = {&Group::deliver, new OnDelivery(std::move(on_delivery)), &detail::delete_fn<OnDelivery>};
        liminal_crash_callback c{nullptr, nullptr, nullptr};
        if (on_crash) c = {&Group::crashed, new OnCrash(std::move(on_crash)), &detail::delete_fn<OnCrash>};
        liminal_consumer *out = nullptr;
        check(liminal_consumer_register(g_.get(), id.c_str(), max_in_flight, buffer_depth,
                                        tag_ptrs.empty() ? nullptr : tag_ptrs.data(), tag_ptrs.size(), d, c, &out));
        return Consumer(out);
    }

    /// Blocking dispatch; throws liminal::Error when not delivered.
    Outcome dispatch(const Message &message) {
        liminal_outcome *o = nullptr;
        check(liminal_group_dispatch(g_.get(), message.get(), &o));
        Outcome out = Outcome::from(o);
        liminal_outcome_free(o);
        return out;
    }

    /// Asynchronous dispatch; `done` runs exactly once (see the C contract).
    uint64_t dispatch_async(const Message &message, OnComplete done) {
        liminal_completion_callback cb{&Group::completed, new OnComplete(std::move(done)), &detail::delete_fn<OnComplete>};
        uint64_t id = 0;
        check(liminal_group_dispatch_async(g_.get(), message.get(), cb, &id));
        return id;
    }

    void deploy(const Routing &routing) { check(liminal_group_deploy(g_.get(), routing.get())); }

    void on_dead_letter(OnDeadLetter fn) {
        liminal_dead_letter_callback cb{&Group::dead_letter, new OnDeadLetter(std::move(fn)), &detail::delete_fn<OnDeadLetter>};
        check(liminal_group_set_dead_letter(g_.get(), cb));
    }

    size_t size() const {
        size_t n = 0;
        check(liminal_group_consumer_count(g_.get(), &n));
        return n;
    }
    const liminal_group *get() const noexcept { return g_.get(); }

private:
    static liminal_verdict deliver(void *user, liminal_delivery *delivery) noexcept {
        try {
            Delivery d(delivery);
            return static_cast<liminal_verdict>((*static_cast<OnDelivery *>(user))(d));
        } catch (const std::exception &e) {
            (void)liminal_delivery_crash(delivery, (std::string("exception: ") + e.what()).c_str());
        } catch (...) {
            (void)liminal_delivery_crash(delivery, "exception: unknown");
        }
        return LIMINAL_VERDICT_CRASH;
    }
    static void crashed(void *user, const char *id, const char *reason) noexcept {
        try { (*static_cast<OnCrash *>(user))(id, reason); } catch (...) {}
    }
    static void completed(void *user, liminal_status, const liminal_outcome *o) noexcept {
        try { (*static_cast<OnComplete *>(user))(Outcome::from(o)); } catch (...) {}
    }
    static void dead_letter(void *user, const liminal_message *m, const liminal_outcome *o) noexcept {
        try { (*static_cast<OnDeadLetter *>(user))(MessageView(m), Outcome::from(o)); } catch (...) {}
    }
    std::unique_ptr<liminal_group, detail::Deleter<liminal_group, liminal_group_free>> g_;
};

}  // namespace liminal

#endif  // LIMINAL_HPP
