// cpp_remote_example: the remote consumers through the C++17 wrapper. A host
// opens a group to workers over Zenoh (loopback TCP); a worker in this same
// process (it could be anywhere) joins, acknowledges each delivery, and
// prints its stable message id, which starts with the host's incarnation.
// RAII throughout: the worker leaves when it goes out of scope, the host
// closes when it does. Exits non-zero on a failure; without the remote
// feature it says so and exits 0.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "liminal.hpp"

using namespace std::chrono_literals;

namespace {

int failures = 0;
void expect(bool ok, const char *what) {
    std::printf("  %s  %s\n", ok ? "ok  " : "FAIL", what);
    failures += ok ? 0 : 1;
}

/// A free loopback TCP endpoint.
std::string free_endpoint() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof address;
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr *>(&address), len) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr *>(&address), &len) != 0)
        throw std::runtime_error("no free loopback port");
    close(fd);
    return "tcp/127.0.0.1:" + std::to_string(ntohs(address.sin_port));
}

}  // namespace

int main() {
    if (!liminal_has_remote()) {
        std::printf("this liminal was built without remote consumers\n");
        return 0;
    }
    try {
        const std::string endpoint = free_endpoint();
        liminal::Runtime runtime;
        liminal::Group group(runtime, liminal::Routing::builtin(LIMINAL_BUILTIN_LEAST_LOADED));
        liminal::Remote host(group, "orders", liminal::RemoteOptions().listen(endpoint),
                             [](const liminal::CrashReport &r) {
                                 std::printf("  worker %s failed: %s\n", r.consumer_id.c_str(), r.reason.c_str());
                             });
        const std::string incarnation = host.incarnation();
        std::printf("host incarnation %s\n", incarnation.c_str());
        expect(incarnation.size() == 32, "the host incarnation is 32 hex digits");

        std::atomic<int> handled{0};
        std::atomic<bool> ids_ok{true};
        {
            liminal::Worker worker(
                "orders", "cpp-worker",
                [&](liminal::Delivery &d) {
                    std::string id = d.message_id();
                    std::printf("  delivery %llu, message id %s\n",
                                static_cast<unsigned long long>(d.dispatch_id()), id.c_str());
                    if (id != incarnation + "-" + std::to_string(d.dispatch_id())) ids_ok = false;
                    handled++;
                    return liminal::Verdict::Ack;
                },
                liminal::RemoteOptions().connect(endpoint), liminal::ConsumerOptions().max_in_flight(4));
            worker.on_host_lost([](std::string_view reason) {
                std::printf("  host lost: %.*s\n", static_cast<int>(reason.size()), reason.data());
            });
            worker.wait_joined(10s);
            expect(worker.host_incarnation() == incarnation, "the worker names the host that joined it");
            // wait_joined returns on the host's acceptance, which the host
            // sends just before it makes the worker a consumer: a dispatch
            // now waits in the group's waiting room for that, and once one
            // is delivered the host counts the worker.
            for (int order = 1; order <= 5; order++) {
                liminal::Outcome outcome = group.dispatch(liminal::Message().set("order", order));
                expect(outcome.delivered_to == "cpp-worker", "delivered to the remote worker");
            }
            expect(host.workers() == 1, "one remote consumer joined");
            expect(handled == 5 && ids_ok, "five deliveries, each with <host incarnation>-<dispatch id>");
        }  // the worker leaves gracefully here
        expect(host.stale_answers() == 0, "no stale answer");
    } catch (const liminal::Error &e) {
        std::printf("FAIL: %s\n", e.what());
        return 1;
    }
    std::printf(failures ? "%d checks FAILED\n" : "all checks passed\n", failures);
    return failures ? 1 : 0;
}
