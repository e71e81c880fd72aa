// cpp_example: the C++17 wrapper. Owning RAII types, std::function
// callbacks; a consumer that throws is a consumer crash (its message is
// re-routed); failures become liminal::Error exceptions.
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <stdexcept>

#include "liminal.hpp"

int main() {
    try {
        liminal::Runtime runtime;
        liminal::Group group(runtime, liminal::Routing::builtin(LIMINAL_BUILTIN_FIRST_WITH_CAPACITY));

        std::atomic<int> crashes{0};
        auto flaky = group.add(
            "flaky", 8,
            [](liminal::Delivery &d) -> liminal::Verdict {
                throw std::runtime_error("cannot parse order " + std::to_string(*d.message().get_int("order")));
            },
            [&](const std::string &id, const std::string &reason) {
                std::printf("consumer %s crashed: %s\n", id.c_str(), reason.c_str());
                crashes++;
            });
        // Room for all 100 asynchronous dispatches below: at capacity a
        // dispatch fails with LIMINAL_NO_CONSUMER_AVAILABLE (retriable).
        auto steady = group.add("steady", 128, [](liminal::Delivery &d) {
            if (d.redelivered())
                std::printf("steady got order %lld (attempt %u, redelivered)\n",
                            static_cast<long long>(*d.message().get_int("order")), d.attempt());
            return liminal::Verdict::Ack;
        });

        liminal::Outcome outcome = group.dispatch(liminal::Message().set("order", 42).payload("{}"));
        std::printf("order 42 -> %s (re-routed from %s in %.1f us)\n", outcome.delivered_to.c_str(),
                    outcome.rerouted_from.at(0).c_str(), outcome.reroute_ns.at(0) / 1000.0);

        std::mutex mutex;
        std::condition_variable cv;
        int completed = 0, delivered = 0;
        for (int i = 0; i < 100; i++) {
            group.dispatch_async(liminal::Message().set("order", i), [&](const liminal::Outcome &o) {
                std::lock_guard<std::mutex> lock(mutex);
                completed += 1;
                delivered += o.status == LIMINAL_OK && o.delivered_to == "steady";
                cv.notify_one();
            });
        }
        {
            std::unique_lock<std::mutex> lock(mutex);
            cv.wait(lock, [&] { return completed == 100; });
        }

        steady.leave();
        try {
            group.dispatch(liminal::Message().set("order", 7));
            std::fprintf(stderr, "expected no consumer\n");
            return 1;
        } catch (const liminal::Error &e) {
            std::printf("as expected: %s (retriable=%d)\n", e.what(), e.retriable());
            if (e.status() != LIMINAL_NO_CONSUMER_AVAILABLE) return 1;
        }
        bool ok = outcome.delivered_to == "steady" && crashes == 1 && !flaky.alive() && delivered == 100;
        std::printf("cpp_example: %s\n", ok ? "ok" : "FAILED");
        return ok ? 0 : 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "cpp_example: %s\n", e.what());
        return 1;
    }
}
