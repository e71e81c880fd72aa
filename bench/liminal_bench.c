/* liminal measured through its C ABI, the way users use it. Prints one JSON
 * object per result line. Usage: liminal_bench WORKLOAD [options]
 *   w1 N            blocking dispatch latency, 4 consumers
 *   w2 N WINDOW     asynchronous throughput, 4 consumers, WINDOW in flight
 *   w3 N            crash -> re-routed -> acknowledged latency
 *   w4 N            w1 while consumers join and leave (~1000 changes/s)
 *   w5 N CONSUMERS ROUTER   w1 and w2 with CONSUMERS consumers
 *                   (ROUTER: first|least|affinity|sticky|callback)
 *   w6 N1,N2,N3     resident memory after N1, N2, N3 dispatches
 *   w7 N WINDOW_MS  auto-acknowledgement (the reference's hand-off window)
 *                   beside acknowledged mode
 * LIMINAL_BENCH_THREADS sets the runtime's scheduler threads,
 * LIMINAL_BENCH_SPIN_US and LIMINAL_BENCH_LINGER_US its spin and linger. */
#include <pthread.h>
#include <stdatomic.h>

#include "bench_util.h"
#include "liminal.h"

#define TRY(expr)                                                              \
    do {                                                                       \
        liminal_status s_ = (expr);                                            \
        if (s_ != LIMINAL_OK) {                                                \
            fprintf(stderr, "%s:%d %s: %s (%s)\n", __FILE__, __LINE__, #expr,  \
                    liminal_status_name(s_), liminal_last_error());            \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

static liminal_runtime *runtime;

static liminal_verdict ack(void *user, liminal_delivery *d) {
    (void)user; (void)d;
    return LIMINAL_VERDICT_ACK;
}
static liminal_verdict crash(void *user, liminal_delivery *d) {
    (void)user; (void)d;
    return LIMINAL_VERDICT_CRASH;
}
static liminal_verdict defer(void *user, liminal_delivery *d) {
    (void)user; (void)d;
    return LIMINAL_VERDICT_DEFER;
}

static liminal_consumer *add(liminal_group *g, const char *id, uint32_t max, liminal_delivery_fn fn,
                             const char *tag) {
    liminal_delivery_callback d = {fn, NULL, NULL};
    liminal_crash_callback c = {NULL, NULL, NULL};
    liminal_consumer_options *options = NULL;
    TRY(liminal_consumer_options_new(&options));
    TRY(liminal_consumer_options_set_max_in_flight(options, max));
    if (tag) TRY(liminal_consumer_options_set_tags(options, &tag, 1));
    liminal_consumer *consumer = NULL;
    TRY(liminal_consumer_register(g, id, d, c, options, &consumer));
    liminal_consumer_options_free(options);
    return consumer;
}

/* A C routing callback: least-loaded, written by a host. */
static liminal_route_result c_least_loaded(void *user, const liminal_message *m,
                                           const liminal_consumer_view *v, size_t n,
                                           const char **selected) {
    (void)user; (void)m;
    long best = -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i].in_flight >= v[i].max_in_flight) continue;
        if (best < 0 || v[i].in_flight < v[best].in_flight) best = (long)i;
        if (v[i].in_flight == 0) break;
    }
    if (best < 0) return LIMINAL_ROUTE_NONE;
    *selected = v[best].id;
    return LIMINAL_ROUTE_SELECTED;
}

static liminal_routing *router(const char *name) {
    liminal_routing *r = NULL;
    if (strcmp(name, "first") == 0) TRY(liminal_routing_builtin(LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, NULL, &r));
    else if (strcmp(name, "least") == 0) TRY(liminal_routing_builtin(LIMINAL_BUILTIN_LEAST_LOADED, NULL, &r));
    else if (strcmp(name, "affinity") == 0) TRY(liminal_routing_builtin(LIMINAL_BUILTIN_AFFINITY, "pool", &r));
    else if (strcmp(name, "sticky") == 0) TRY(liminal_routing_builtin(LIMINAL_BUILTIN_STICKY_KEY, "key", &r));
    else if (strcmp(name, "callback") == 0) {
        liminal_route_callback cb = {c_least_loaded, NULL, NULL};
        TRY(liminal_routing_new(runtime, cb, (const uint8_t *)"bench.c_least_loaded", 20, "c", &r));
    } else {
        fprintf(stderr, "unknown router %s\n", name);
        exit(2);
    }
    return r;
}

/* A group with the default options, or auto-acknowledgement after `auto_ack_ms`. */
static liminal_group *group_with(const char *router_name, uint64_t auto_ack_ms) {
    liminal_routing *r = router(router_name);
    liminal_group_options *options = NULL;
    if (auto_ack_ms > 0) {
        TRY(liminal_group_options_new(&options));
        TRY(liminal_group_options_set_auto_ack_ms(options, auto_ack_ms));
    }
    liminal_group *g = NULL;
    TRY(liminal_group_new(runtime, r, options, &g));
    liminal_group_options_free(options);
    liminal_routing_free(r);
    return g;
}

static liminal_message *bench_message(int64_t key) {
    liminal_message *m = NULL;
    TRY(liminal_message_new(&m));
    TRY(liminal_message_set_int(m, "key", key));
    TRY(liminal_message_set_text(m, "pool", "p"));
    return m;
}

/* Blocking dispatch latency over n messages. */
static void measure_blocking(const char *workload, liminal_group *g, size_t n, const char *extra) {
    uint64_t *samples = malloc(n * sizeof *samples);
    liminal_message *m = bench_message(0);
    size_t warm = n / 10 + 1;
    for (size_t i = 0; i < warm; i++) {
        liminal_outcome *o = NULL;
        TRY(liminal_group_dispatch(g, m, NULL, &o));
        liminal_outcome_free(o);
    }
    uint64_t start = now_ns();
    for (size_t i = 0; i < n; i++) {
        TRY(liminal_message_set_int(m, "key", (int64_t)i));
        uint64_t t0 = now_ns();
        liminal_outcome *o = NULL;
        TRY(liminal_group_dispatch(g, m, NULL, &o));
        samples[i] = now_ns() - t0;
        liminal_outcome_free(o);
    }
    double seconds = (now_ns() - start) / 1e9;
    sort_samples(samples, n);
    printf("{\"system\":\"liminal\",\"workload\":\"%s\",\"n\":%zu,\"p50_ns\":%llu,\"p99_ns\":%llu,"
           "\"p999_ns\":%llu,\"max_ns\":%llu,\"rate\":%.0f%s}\n",
           workload, n, (unsigned long long)quantile(samples, n, 0.5),
           (unsigned long long)quantile(samples, n, 0.99), (unsigned long long)quantile(samples, n, 0.999),
           (unsigned long long)samples[n - 1], n / seconds, extra ? extra : "");
    fflush(stdout);
    liminal_message_free(m);
    free(samples);
}

/* Asynchronous throughput: at most `window` in flight. Flow control with
 * two watermarks, as a host would write it: the producer sleeps only when
 * the window is full, and is woken once half of it has drained. */
typedef struct window_state {
    atomic_long in_flight;
    atomic_long completed;
    atomic_long failed;
    atomic_int waiting;
    long low_watermark;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
} window_state;

static void on_done(void *user, liminal_status status, const liminal_outcome *o) {
    (void)o;
    window_state *w = user;
    if (status != LIMINAL_OK) atomic_fetch_add(&w->failed, 1);
    atomic_fetch_add(&w->completed, 1);
    long left = atomic_fetch_sub(&w->in_flight, 1) - 1;
    if (left <= w->low_watermark && atomic_load(&w->waiting)) {
        pthread_mutex_lock(&w->mutex);
        atomic_store(&w->waiting, 0);
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->mutex);
    }
}

static void wait_below(window_state *w, long limit) {
    pthread_mutex_lock(&w->mutex);
    atomic_store(&w->waiting, 1);
    while (atomic_load(&w->in_flight) > limit) {
        atomic_store(&w->waiting, 1);
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 1; /* a missed signal costs at most this */
        pthread_cond_timedwait(&w->cond, &w->mutex, &deadline);
    }
    atomic_store(&w->waiting, 0);
    pthread_mutex_unlock(&w->mutex);
}

static double run_async(liminal_group *g, size_t n, long window) {
    window_state w;
    atomic_init(&w.in_flight, 0);
    atomic_init(&w.completed, 0);
    atomic_init(&w.failed, 0);
    atomic_init(&w.waiting, 0);
    w.low_watermark = window / 2;
    pthread_mutex_init(&w.mutex, NULL);
    pthread_cond_init(&w.cond, NULL);
    liminal_message *m = bench_message(0);
    uint64_t start = now_ns();
    for (size_t i = 0; i < n; i++) {
        if (atomic_load(&w.in_flight) >= window) wait_below(&w, w.low_watermark);
        atomic_fetch_add(&w.in_flight, 1);
        TRY(liminal_message_set_int(m, "key", (int64_t)i));
        liminal_completion_callback cb = {on_done, &w, NULL};
        TRY(liminal_group_dispatch_async(g, m, NULL, cb, NULL));
    }
    w.low_watermark = 0;
    wait_below(&w, 0);
    double seconds = (now_ns() - start) / 1e9;
    liminal_message_free(m);
    if (atomic_load(&w.failed)) {
        fprintf(stderr, "%ld dispatches failed\n", atomic_load(&w.failed));
        exit(1);
    }
    return n / seconds;
}

static void add_consumers(liminal_group *g, int count, uint32_t max) {
    for (int i = 0; i < count; i++) {
        char id[32];
        snprintf(id, sizeof id, "c%05d", i);
        liminal_consumer_free(add(g, id, max, ack, "p"));
    }
}

static void w1(size_t n) {
    liminal_group *g = group_with("least", 0);
    add_consumers(g, 4, 4096);
    measure_blocking("w1", g, n, NULL);
    liminal_group_free(g);
}

static void w2(size_t n, long window) {
    liminal_group *g = group_with("least", 0);
    add_consumers(g, 4, 4096);
    run_async(g, n / 10 + 1, window);
    double rate = run_async(g, n, window);
    printf("{\"system\":\"liminal\",\"workload\":\"w2\",\"n\":%zu,\"window\":%ld,\"rate\":%.0f}\n", n, window, rate);
    liminal_group_free(g);
}

static void w3(size_t n) {
    liminal_group *g = group_with("first", 0);
    liminal_consumer_free(add(g, "z-survivor", 4096, ack, NULL));
    uint64_t *samples = malloc(n * sizeof *samples);
    uint64_t *reroute = malloc(n * sizeof *reroute);
    liminal_message *m = bench_message(0);
    for (size_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "a-victim-%zu", i); /* sorts first: selected first */
        liminal_consumer *victim = add(g, id, 4, crash, NULL);
        uint64_t t0 = now_ns();
        liminal_outcome *o = NULL;
        TRY(liminal_group_dispatch(g, m, NULL, &o));
        samples[i] = now_ns() - t0;
        if (liminal_outcome_rerouted_count(o) != 1) {
            fprintf(stderr, "w3: expected one re-route\n");
            exit(1);
        }
        TRY(liminal_outcome_reroute_ns(o, 0, &reroute[i]));
        liminal_outcome_free(o);
        liminal_consumer_free(victim);
    }
    sort_samples(samples, n);
    sort_samples(reroute, n);
    printf("{\"system\":\"liminal\",\"workload\":\"w3\",\"n\":%zu,\"p50_ns\":%llu,\"p99_ns\":%llu,"
           "\"p999_ns\":%llu,\"exit_to_reroute_p50_ns\":%llu,\"exit_to_reroute_p99_ns\":%llu}\n",
           n, (unsigned long long)quantile(samples, n, 0.5), (unsigned long long)quantile(samples, n, 0.99),
           (unsigned long long)quantile(samples, n, 0.999), (unsigned long long)quantile(reroute, n, 0.5),
           (unsigned long long)quantile(reroute, n, 0.99));
    liminal_message_free(m);
    free(samples);
    free(reroute);
    liminal_group_free(g);
}

typedef struct churn {
    liminal_group *group;
    atomic_int stop;
    long changes;
} churn;

static void *churn_thread(void *arg) {
    churn *c = arg;
    liminal_consumer *extra[8] = {0};
    long i = 0;
    while (!atomic_load(&c->stop)) {
        int slot = (int)(i % 8);
        if (extra[slot]) {
            TRY(liminal_consumer_leave(extra[slot]));
            liminal_consumer_free(extra[slot]);
            extra[slot] = NULL;
        } else {
            char id[32];
            snprintf(id, sizeof id, "churn-%ld", i);
            extra[slot] = add(c->group, id, 4096, ack, "p");
        }
        c->changes += 1;
        i += 1;
        struct timespec pace = {0, 1000000}; /* ~1000 membership changes per second */
        nanosleep(&pace, NULL);
    }
    for (int s = 0; s < 8; s++)
        if (extra[s]) {
            liminal_consumer_leave(extra[s]);
            liminal_consumer_free(extra[s]);
        }
    return NULL;
}

static void w4(size_t n) {
    liminal_group *g = group_with("least", 0);
    add_consumers(g, 4, 4096);
    churn c = {g, 0, 0};
    pthread_t thread;
    pthread_create(&thread, NULL, churn_thread, &c);
    uint64_t start = now_ns();
    measure_blocking("w4", g, n, NULL);
    double seconds = (now_ns() - start) / 1e9;
    atomic_store(&c.stop, 1);
    pthread_join(thread, NULL);
    printf("{\"system\":\"liminal\",\"workload\":\"w4-churn\",\"changes_per_s\":%.0f}\n", c.changes / seconds);
    liminal_group_free(g);
}

static void w5(size_t n, int consumers, const char *router_name) {
    liminal_group *g = group_with(router_name, 0);
    add_consumers(g, consumers, 4096);
    char extra[96];
    snprintf(extra, sizeof extra, ",\"consumers\":%d,\"router\":\"%s\"", consumers, router_name);
    measure_blocking("w5-w1", g, n, extra);
    double rate = run_async(g, n, 1024);
    printf("{\"system\":\"liminal\",\"workload\":\"w5-w2\",\"n\":%zu,\"rate\":%.0f%s}\n", n, rate, extra);
    fflush(stdout);
    liminal_group_free(g);
}

static void w6(const char *points) {
    liminal_group *g = group_with("least", 0);
    add_consumers(g, 4, 4096);
    size_t done = 0;
    char *copy = strdup(points);
    for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
        size_t target = strtoull(tok, NULL, 10);
        if (target > done) run_async(g, target - done, 1024);
        done = target;
        printf("{\"system\":\"liminal\",\"workload\":\"w6\",\"dispatches\":%zu,\"rss_kib\":%ld}\n", done, rss_kib());
        fflush(stdout);
    }
    free(copy);
    liminal_group_free(g);
}

static void w7(size_t n, uint64_t window_ms) {
    liminal_group *g = group_with("least", window_ms);
    for (int i = 0; i < 4; i++) {
        char id[32];
        snprintf(id, sizeof id, "never-acks-%d", i);
        liminal_consumer_free(add(g, id, 4096, defer, NULL));
    }
    char extra[64]; /* the report still calls it the hand-off window */
    snprintf(extra, sizeof extra, ",\"handoff_window_ms\":%llu", (unsigned long long)window_ms);
    measure_blocking("w7-window", g, n, extra);
    double rate = run_async(g, 4096, 1024);
    printf("{\"system\":\"liminal\",\"workload\":\"w7-window-async\",\"rate\":%.0f%s}\n", rate, extra);
    liminal_group_free(g);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: liminal_bench w1|w2|w3|w4|w5|w6|w7 ...\n");
        return 2;
    }
    liminal_runtime_options *options = NULL;
    TRY(liminal_runtime_options_new(&options));
    const char *env = getenv("LIMINAL_BENCH_THREADS");
    if (env) TRY(liminal_runtime_options_set_scheduler_threads(options, (uint32_t)atoi(env)));
    env = getenv("LIMINAL_BENCH_SPIN_US");
    if (env) TRY(liminal_runtime_options_set_spin_us(options, strtoull(env, NULL, 10)));
    env = getenv("LIMINAL_BENCH_LINGER_US");
    if (env) TRY(liminal_runtime_options_set_linger_us(options, strtoull(env, NULL, 10)));
    TRY(liminal_runtime_new(options, &runtime));
    liminal_runtime_options_free(options);
    const char *w = argv[1];
    size_t n = strtoull(argv[2], NULL, 10);
    if (strcmp(w, "w1") == 0) w1(n);
    else if (strcmp(w, "w2") == 0) w2(n, argc > 3 ? atol(argv[3]) : 1024);
    else if (strcmp(w, "w3") == 0) w3(n);
    else if (strcmp(w, "w4") == 0) w4(n);
    else if (strcmp(w, "w5") == 0) w5(n, argc > 3 ? atoi(argv[3]) : 4, argc > 4 ? argv[4] : "least");
    else if (strcmp(w, "w6") == 0) w6(argv[2]);
    else if (strcmp(w, "w7") == 0) w7(n, argc > 3 ? strtoull(argv[3], NULL, 10) : 250);
    else {
        fprintf(stderr, "unknown workload %s\n", w);
        return 2;
    }
    TRY(liminal_runtime_free(runtime));
    return 0;
}
