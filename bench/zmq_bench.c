/* libzmq peer: in-process PUSH/PULL load balancing to 4 worker threads, each
 * acknowledging on a return PUSH socket. It has no redelivery: a message
 * queued to a worker that dies is lost. Usage: zmq_bench w1 N | w2 N WINDOW */
#include <pthread.h>
#include <zmq.h>

#include "bench_util.h"

#define WORKERS 4

static void *ctx;

static void *worker(void *arg) {
    (void)arg;
    void *pull = zmq_socket(ctx, ZMQ_PULL);
    void *acks = zmq_socket(ctx, ZMQ_PUSH);
    zmq_connect(pull, "inproc://work");
    zmq_connect(acks, "inproc://acks");
    uint64_t id;
    for (;;) {
        int n = zmq_recv(pull, &id, sizeof id, 0);
        if (n < 0) break;
        if (id == UINT64_MAX) break;
        zmq_send(acks, &id, sizeof id, 0);
    }
    zmq_close(pull);
    zmq_close(acks);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *w = argv[1];
    size_t n = strtoull(argv[2], NULL, 10);
    long window = argc > 3 ? atol(argv[3]) : 1024;
    ctx = zmq_ctx_new();
    void *push = zmq_socket(ctx, ZMQ_PUSH);
    void *acks = zmq_socket(ctx, ZMQ_PULL);
    int hwm = 0;
    zmq_setsockopt(push, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_bind(push, "inproc://work");
    zmq_bind(acks, "inproc://acks");
    pthread_t threads[WORKERS];
    for (int i = 0; i < WORKERS; i++) pthread_create(&threads[i], NULL, worker, NULL);
    uint64_t id, ack;
    /* warm-up; also makes sure every worker is connected */
    for (id = 0; id < 1000; id++) {
        zmq_send(push, &id, sizeof id, 0);
        zmq_recv(acks, &ack, sizeof ack, 0);
    }
    if (strcmp(w, "w1") == 0) {
        uint64_t *samples = malloc(n * sizeof *samples);
        uint64_t start = now_ns();
        for (size_t i = 0; i < n; i++) {
            uint64_t t0 = now_ns();
            id = i;
            zmq_send(push, &id, sizeof id, 0);
            zmq_recv(acks, &ack, sizeof ack, 0);
            samples[i] = now_ns() - t0;
        }
        double seconds = (now_ns() - start) / 1e9;
        sort_samples(samples, n);
        printf("{\"system\":\"libzmq\",\"workload\":\"w1\",\"n\":%zu,\"p50_ns\":%llu,\"p99_ns\":%llu,"
               "\"p999_ns\":%llu,\"max_ns\":%llu,\"rate\":%.0f}\n",
               n, (unsigned long long)quantile(samples, n, 0.5), (unsigned long long)quantile(samples, n, 0.99),
               (unsigned long long)quantile(samples, n, 0.999), (unsigned long long)samples[n - 1], n / seconds);
        free(samples);
    } else {
        long in_flight = 0;
        size_t sent = 0, received = 0;
        uint64_t start = now_ns();
        while (received < n) {
            while (sent < n && in_flight < window) {
                id = sent++;
                zmq_send(push, &id, sizeof id, 0);
                in_flight++;
            }
            zmq_recv(acks, &ack, sizeof ack, 0);
            received++;
            in_flight--;
        }
        double seconds = (now_ns() - start) / 1e9;
        printf("{\"system\":\"libzmq\",\"workload\":\"w2\",\"n\":%zu,\"window\":%ld,\"rate\":%.0f}\n", n, window,
               n / seconds);
    }
    id = UINT64_MAX;
    for (int i = 0; i < WORKERS; i++) zmq_send(push, &id, sizeof id, 0);
    for (int i = 0; i < WORKERS; i++) pthread_join(threads[i], NULL);
    zmq_close(push);
    zmq_close(acks);
    zmq_ctx_term(ctx);
    return 0;
}
