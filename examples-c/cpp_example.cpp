// cpp_example: a tour of the C++17 wrapper. Owning RAII types, settings as
// chainable options, std::function callbacks; a consumer that throws is a
// consumer crash (its message is re-routed); failures become liminal::Error;
// an exception thrown by a completion or dead-letter callback reaches the
// callback error handler. Every check prints; exits non-zero on a failure.
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "liminal.hpp"

using namespace std::chrono_literals;
using liminal::ConsumerOptions, liminal::CrashReport, liminal::Delivery, liminal::DispatchOptions,
    liminal::GroupOptions, liminal::Message, liminal::Outcome, liminal::Routing, liminal::Verdict;

namespace {

int failures = 0;
void expect(bool ok, const char *what) {
    std::printf("  %s  %s\n", ok ? "ok  " : "FAIL", what);
    failures += ok ? 0 : 1;
}

/// Events seen by callbacks, waited for without sleeping. Shared by
/// pointer, so a late callback never touches a dead object.
struct Events {
    std::mutex mutex;
    std::condition_variable cv;
    std::vector<std::string> seen;

    void add(std::string event) {
        std::lock_guard<std::mutex> lock(mutex);
        seen.push_back(std::move(event));
        cv.notify_all();
    }
    std::vector<std::string> wait_for(size_t n) {
        std::unique_lock<std::mutex> lock(mutex);
        cv.wait(lock, [&] { return seen.size() >= n; });
        return seen;
    }
};

liminal::Routing first_with_capacity() { return Routing::builtin(LIMINAL_BUILTIN_FIRST_WITH_CAPACITY); }

// A consumer that throws crashes; its message goes to another, and many
// more messages than the consumers hold wait in the group's waiting room.
void crash_and_reroute(liminal::Runtime &runtime) {
    std::printf("crash and re-route\n");
    auto events = std::make_shared<Events>();
    liminal::Group group(runtime, first_with_capacity(), GroupOptions().name("orders").deadline(10s));
    auto flaky = group.add(
        "flaky",
        [](Delivery &d) -> Verdict {
            throw std::runtime_error("cannot parse order " + std::to_string(*d.message().get_int("order")));
        },
        ConsumerOptions().max_in_flight(8),
        [events](const CrashReport &r) { events->add(r.consumer_id + ": " + r.reason); });
    auto steady = group.add("steady", [](Delivery &) { return Verdict::Ack; }, ConsumerOptions().max_in_flight(8));

    Outcome outcome = group.dispatch(Message().set("order", 42).payload("{}"));
    std::printf("  order 42 -> %s (re-routed from %s in %.1f us)\n", outcome.delivered_to.c_str(),
                outcome.rerouted_from.at(0).c_str(), outcome.reroute_ns.at(0) / 1000.0);
    expect(outcome.delivered_to == "steady" && outcome.crashed_handling == 1 && !flaky.alive(),
           "the exception crashed flaky; steady got the order");
    expect(events->wait_for(1).at(0) == "flaky: exception: cannot parse order 42", "crash reason carries what()");

    auto done = std::make_shared<Events>();
    for (int i = 0; i < 100; i++) {
        group.dispatch_async(Message().set("order", i), [done](const Outcome &o) {
            done->add(o.delivered() ? o.delivered_to + " " + std::to_string(o.waited_ns) : "failed");
        });
    }
    auto results = done->wait_for(100);
    int delivered = 0;
    for (const auto &r : results) delivered += r.rfind("steady ", 0) == 0;
    expect(delivered == 100, "100 asynchronous dispatches delivered (max 8 in flight, the rest waited)");

    auto found = group.consumer("steady");
    expect(found && found->alive() && !group.consumer("flaky"), "consumer lookup by id finds only the live one");
    found->set_max_in_flight(16);
    found->set_tags({"eu"});
    auto snapshot = group.snapshot();
    expect(snapshot.size() == 1 && snapshot[0].max_in_flight == 16 && snapshot[0].tags.at(0) == "eu",
           "set_max_in_flight and set_tags show in a snapshot");
    expect(group.drain(1s) == 0 && group.in_flight() == 0, "drain: nothing left");
}

// A consumer releases the message (after a delay), the next one holds it
// past its acknowledgement lease, the third acknowledges it.
void release_and_lease(liminal::Runtime &runtime) {
    std::printf("release and lease\n");
    auto events = std::make_shared<Events>();
    auto held = std::make_shared<std::optional<liminal::KeptDelivery>>();
    liminal::Group group(runtime, first_with_capacity(), GroupOptions().ack_lease(50ms));
    auto a = group.add("a-releaser", [](Delivery &d) {
        d.release(5ms);
        return Verdict::Defer;
    });
    auto b = group.add(
        "b-sleeper",
        [held](Delivery &d) {
            d.extend_lease(60ms);
            *held = d.keep(); // ... and never answers
            return Verdict::Defer;
        },
        ConsumerOptions(), [events](const CrashReport &r) {
            events->add(r.kind == LIMINAL_CRASH_LEASE_EXPIRED && !r.alive ? "lease expired" : r.reason);
        });
    auto c = group.add("c-worker", [](Delivery &) { return Verdict::Ack; });

    Outcome o = group.dispatch(Message().set("order", 7));
    expect(o.delivered_to == "c-worker" && o.released == 1 && o.lease_expired == 1 && o.attempts == 3,
           "released by a, lease expired at b, acknowledged by c");
    expect(events->wait_for(1).at(0) == "lease expired", "b's crash callback: lease expired, not alive");
    try {
        held->value().ack();
        expect(false, "a late ack is fenced");
    } catch (const liminal::Error &e) {
        expect(e.status() == LIMINAL_STALE_DELIVERY, "a late ack is fenced (LIMINAL_STALE_DELIVERY)");
    }
}

// No consumer at all: deadlines, a full waiting room, draining, dropping
// the oldest; exceptions in dead-letter and completion callbacks reach the
// callback error handler instead of vanishing.
void waiting_room_limits(liminal::Runtime &runtime) {
    std::printf("waiting room limits and the callback error handler\n");
    auto errors = std::make_shared<Events>();
    liminal::set_callback_error_handler([errors](const char *where, std::exception_ptr error) {
        try {
            std::rethrow_exception(error);
        } catch (const std::exception &e) {
            errors->add(std::string(where) + ": " + e.what());
        }
    });
    auto throwing_dead_letter = [](const liminal::MessageView &, const Outcome &o) {
        throw std::runtime_error(std::string("dead letter ") + liminal_status_name(o.status));
    };
    {
        liminal::Group nobody(runtime, first_with_capacity(), GroupOptions().waiting_room(1));
        nobody.on_dead_letter(throwing_dead_letter);
        try {
            nobody.dispatch(Message(), DispatchOptions().deadline(20ms));
            expect(false, "nobody takes it: LIMINAL_EXPIRED");
        } catch (const liminal::Error &e) {
            expect(e.status() == LIMINAL_EXPIRED, "nobody takes it: LIMINAL_EXPIRED");
        }
        nobody.dispatch_async(Message(), [](const Outcome &o) {
            throw std::runtime_error(std::string("completion ") + liminal_status_name(o.status));
        });
        try {
            nobody.dispatch(Message());
            expect(false, "the waiting room holds one: LIMINAL_QUEUE_FULL");
        } catch (const liminal::Error &e) {
            expect(e.status() == LIMINAL_QUEUE_FULL && e.retriable(),
                   "the waiting room holds one: LIMINAL_QUEUE_FULL (retriable)");
        }
        expect(nobody.waiting() == 1 && nobody.drain(20ms) == 1, "drain gives up with one left");
        try {
            nobody.dispatch_async(Message(), [](const Outcome &) {});
            expect(false, "a draining group refuses: LIMINAL_DRAINING");
        } catch (const liminal::Error &e) {
            expect(e.status() == LIMINAL_DRAINING, "a draining group refuses: LIMINAL_DRAINING");
        }
    }  // the group goes: its waiting message fails

    auto reports = errors->wait_for(3);
    std::sort(reports.begin(), reports.end());
    expect(reports == std::vector<std::string>{"completion: completion LIMINAL_NO_CONSUMER_AVAILABLE",
                                               "dead_letter: dead letter LIMINAL_EXPIRED",
                                               "dead_letter: dead letter LIMINAL_NO_CONSUMER_AVAILABLE"},
           "every callback exception reached the handler");
    liminal::set_callback_error_handler({});  // back to the default: one line on stderr

    liminal::Group dropper(runtime, first_with_capacity(),
                           GroupOptions().waiting_room(1).overflow(liminal::Overflow::DropOldest));
    auto first = std::make_shared<Events>();
    dropper.dispatch_async(Message(), [first](const Outcome &o) { first->add(liminal_status_name(o.status)); });
    dropper.dispatch_async(Message(), [](const Outcome &) {});
    expect(first->wait_for(1).at(0) == std::string("LIMINAL_DROPPED"), "overflow drop-oldest: LIMINAL_DROPPED");
}

// Ordered keys: events of one account are handled one at a time, in order;
// other accounts pass. The consumer keeps each delivery; the tour answers.
void ordered_keys(liminal::Runtime &runtime) {
    std::printf("ordered keys\n");
    liminal::Group group(runtime, first_with_capacity(), GroupOptions().key_field("account"));
    auto events = std::make_shared<Events>();
    auto kept = std::make_shared<std::vector<liminal::KeptDelivery>>();
    kept->reserve(8);  // never reallocated: answers are given outside the lock
    auto consumer = group.add(
        "ledger",
        [events, kept](Delivery &d) {
            std::string seen = d.message().ordering_key().value_or("-") + std::to_string(*d.message().get_int("n"));
            {
                std::lock_guard<std::mutex> lock(events->mutex);
                kept->push_back(d.keep());
            }
            events->add(seen);
            return Verdict::Defer;
        },
        ConsumerOptions().max_in_flight(8));
    for (int n = 1; n <= 3; n++) group.dispatch_async(Message().set("account", "a").set("n", n), [](const Outcome &) {});
    group.dispatch_async(Message().set("n", 1), [](const Outcome &) {}, DispatchOptions().key("b"));
    expect(events->wait_for(2) == std::vector<std::string>{"a1", "b1"}, "a1 and b1 delivered; a2, a3 wait behind a1");
    size_t total = 0;
    auto keys = group.waiting_keys(10, &total);
    expect(total == 1 && keys.at(0).key == "a" && keys.at(0).depth == 3, "waiting_keys: a, depth 3");
    auto answer = [&](size_t i) {
        const liminal::KeptDelivery *delivery = nullptr;
        {
            std::lock_guard<std::mutex> lock(events->mutex);
            delivery = &kept->at(i);
        }
        delivery->ack();
    };
    answer(0);
    expect(events->wait_for(3).at(2) == "a2", "a1 acknowledged: a2 is next");
    answer(2);
    expect(events->wait_for(4).at(3) == "a3", "then a3");
    answer(3);
    answer(1);
    try {
        group.dispatch(Message(), DispatchOptions().key(""));
        expect(false, "an empty key: LIMINAL_INVALID_ARGUMENT");
    } catch (const liminal::Error &e) {
        expect(e.status() == LIMINAL_INVALID_ARGUMENT, "an empty key: LIMINAL_INVALID_ARGUMENT");
    }
}

// Durable groups: messages accepted while no consumer is there survive the
// group (as they would the host's kill -9); a new group on the same store
// brings them back, in order, and their ends reach on_recovered.
void durable(liminal::Runtime &runtime) {
    std::printf("durable group\n");
    char dir[] = "/tmp/liminal-cpp-example-XXXXXX";
    if (!mkdtemp(dir)) throw std::runtime_error("mkdtemp failed");
    std::string store = std::string(dir) + "/store";
    {
        liminal::Group group(runtime, first_with_capacity(), GroupOptions().store(store));
        for (int n = 1; n <= 3; n++) group.dispatch_async(Message().set("n", n), [](const Outcome &) {});
    }  // freed with nothing delivered: the three stay in the store
    auto recovered = std::make_shared<Events>();
    auto handled = std::make_shared<Events>();
    liminal::Group group(runtime, first_with_capacity(), GroupOptions().store(store),
                         [recovered](const liminal::MessageView &m, const Outcome &o) {
                             recovered->add(std::to_string(*m.get_int("n")) + (o.status == LIMINAL_OK ? " ok" : " failed"));
                         });
    auto consumer = group.add("c", [handled](Delivery &d) {
        handled->add(std::to_string(*d.message().get_int("n")) + (d.redelivered() ? " again" : ""));
        return Verdict::Ack;
    });
    expect(handled->wait_for(3) == std::vector<std::string>{"1 again", "2 again", "3 again"},
           "the store gave back 1, 2, 3 in order, redelivered");
    auto ends = recovered->wait_for(3);
    std::sort(ends.begin(), ends.end());
    expect(ends == std::vector<std::string>{"1 ok", "2 ok", "3 ok"}, "each ended in on_recovered, acknowledged");
    try {
        liminal::Group second(runtime, first_with_capacity(), GroupOptions().store(store));
        expect(false, "a second group on a held store: LIMINAL_STORE_LOCKED");
    } catch (const liminal::Error &e) {
        expect(e.status() == LIMINAL_STORE_LOCKED, "a second group on a held store: LIMINAL_STORE_LOCKED");
    }
    std::filesystem::remove_all(dir);
}

// A key whose head is dead-lettered is held until the host releases it.
void held_keys(liminal::Runtime &runtime) {
    std::printf("held keys\n");
    liminal::Group group(runtime, first_with_capacity(),
                         GroupOptions().key_field("account").max_attempts(1).hold_failed_keys(true));
    auto events = std::make_shared<Events>();
    auto consumer = group.add("c", [events](Delivery &d) {
        int64_t n = *d.message().get_int("n");
        events->add(*d.message().ordering_key() + std::to_string(n));
        return n == 1 ? Verdict::Release : Verdict::Ack;  // a1 fails: one attempt
    });
    auto dead = std::make_shared<Events>();
    group.on_dead_letter([dead](const liminal::MessageView &m, const Outcome &) { dead->add(*m.ordering_key()); });
    group.dispatch_async(Message().set("account", "a").set("n", 1), [](const Outcome &) {});
    group.dispatch_async(Message().set("account", "a").set("n", 2), [](const Outcome &) {});
    expect(dead->wait_for(1).at(0) == "a", "a1 dead-lettered");
    group.dispatch(Message().set("account", "b").set("n", 3));
    expect(events->wait_for(2) == std::vector<std::string>{"a1", "b3"}, "b passes; a2 waits behind the held key");
    expect(!group.release_key("b") && group.release_key("a"), "release_key: a was held, b was not");
    expect(events->wait_for(3).at(2) == "a2", "a2 delivered once a is released");
}

void statistics(liminal::Runtime &runtime) {
    std::printf("statistics\n");
    liminal::Group group(runtime, first_with_capacity(), GroupOptions().name("billing"));
    auto ticks = std::make_shared<Events>();
    runtime.on_stats(10ms, [ticks](std::string_view json) { ticks->add(std::string(json)); });
    std::string json = ticks->wait_for(1).at(0);
    runtime.stop_stats();
    expect(json.find("\"billing\"") != std::string::npos, "periodic JSON names the group");
    expect(runtime.stats_prometheus().find("liminal_messages_sent_total") != std::string::npos,
           "Prometheus text");
    liminal_metrics m = runtime.metrics();
    std::printf("  dispatched=%llu delivered=%llu rerouted=%llu dead_lettered=%llu rejected=%llu\n",
                static_cast<unsigned long long>(m.dispatched), static_cast<unsigned long long>(m.delivered),
                static_cast<unsigned long long>(m.rerouted), static_cast<unsigned long long>(m.dead_lettered),
                static_cast<unsigned long long>(m.rejected));
}

}  // namespace

int main() {
    try {
        std::printf("liminal %s\n", liminal::version().c_str());
        liminal::Runtime runtime(liminal::RuntimeOptions().spin(10us).linger(20000us));
        crash_and_reroute(runtime);
        release_and_lease(runtime);
        waiting_room_limits(runtime);
        ordered_keys(runtime);
        durable(runtime);
        held_keys(runtime);
        statistics(runtime);
        expect(runtime.drain(1s) == 0, "runtime drained");
    } catch (const std::exception &e) {
        std::fprintf(stderr, "cpp_example: %s\n", e.what());
        return 1;
    }
    std::printf("cpp_example: %s\n", failures == 0 ? "ok" : "FAILED");
    return failures == 0 ? 0 : 1;
}
