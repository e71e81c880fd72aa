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
 *   w9 MS [WORK_US [PREFETCH]]  producers outrun consumers 2:1: 4 consumers
 *                   whose callback busy-waits WORK_US (default 40), at most
 *                   PREFETCH (default 1) each in flight; their rate is
 *                   measured for 1 s, then 2 producers offer twice that rate
 *                   for MS milliseconds and the waiting room drains
 * With a C routing callback (w5 ... callback) the time spent inside the
 * callback itself is measured and reported beside the latency.
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

/* The host's selection: least-loaded over the views. */
static liminal_route_result pick_least_loaded(const liminal_consumer_view *v, size_t n, const char **selected) {
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

/* Time spent inside the C routing callback itself (entry to exit), summed:
 * W5 subtracts it from the callback router's latency (the library's cost). */
static atomic_ullong callback_ns;
static atomic_ullong callback_calls;

/* A C routing callback: least-loaded, written by a host. */
static liminal_route_result c_least_loaded(void *user, const liminal_message *m,
                                           const liminal_consumer_view *v, size_t n,
                                           const char **selected) {
    (void)user; (void)m;
    uint64_t t0 = now_ns();
    liminal_route_result r = pick_least_loaded(v, n, selected);
    atomic_fetch_add_explicit(&callback_ns, now_ns() - t0, memory_order_relaxed);
    atomic_fetch_add_explicit(&callback_calls, 1, memory_order_relaxed);
    return r;
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
    atomic_store(&callback_ns, 0);
    atomic_store(&callback_calls, 0);
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
    unsigned long long cb_ns = atomic_load(&callback_ns), cb_calls = atomic_load(&callback_calls);
    char callback[128] = "";
    if (cb_calls > 0) /* a C routing callback ran: its own time per dispatch */
        snprintf(callback, sizeof callback, ",\"callback_ns_per_dispatch\":%.0f,\"callback_calls_per_dispatch\":%.2f",
                 (double)cb_ns / (double)n, (double)cb_calls / (double)n);
    sort_samples(samples, n);
    printf("{\"system\":\"liminal\",\"workload\":\"%s\",\"n\":%zu,\"p50_ns\":%llu,\"p99_ns\":%llu,"
           "\"p999_ns\":%llu,\"max_ns\":%llu,\"rate\":%.0f%s%s}\n",
           workload, n, (unsigned long long)quantile(samples, n, 0.5),
           (unsigned long long)quantile(samples, n, 0.99), (unsigned long long)quantile(samples, n, 0.999),
           (unsigned long long)samples[n - 1], n / seconds, callback, extra ? extra : "");
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
    /* W2's stall detector (when track_gaps): the longest time between two
     * completions, and how many such gaps were 1 ms or longer. */
    int track_gaps;
    atomic_ullong last_done;
    atomic_ullong max_gap;
    atomic_long gaps_over_1ms;
} window_state;

static void note_gap(window_state *w) {
    uint64_t t = now_ns();
    uint64_t prev = atomic_exchange(&w->last_done, t);
    if (prev == 0 || t <= prev) return;
    uint64_t gap = t - prev, seen = atomic_load(&w->max_gap);
    if (gap >= 1000000) atomic_fetch_add(&w->gaps_over_1ms, 1);
    while (gap > seen && !atomic_compare_exchange_weak(&w->max_gap, &seen, gap)) {
    }
}

static void on_done(void *user, liminal_status status, const liminal_outcome *o) {
    (void)o;
    window_state *w = user;
    if (status != LIMINAL_OK) atomic_fetch_add(&w->failed, 1);
    if (w->track_gaps) note_gap(w);
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

static void window_init(window_state *w, long window) {
    atomic_init(&w->in_flight, 0);
    atomic_init(&w->completed, 0);
    atomic_init(&w->failed, 0);
    atomic_init(&w->waiting, 0);
    w->low_watermark = window / 2;
    pthread_mutex_init(&w->mutex, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->track_gaps = 0;
    atomic_init(&w->last_done, 0);
    atomic_init(&w->max_gap, 0);
    atomic_init(&w->gaps_over_1ms, 0);
}

/* Returns the rate; `gaps` (optional) receives the stall detector's figures. */
typedef struct gap_figures {
    uint64_t max_gap_ns;
    long gaps_over_1ms;
} gap_figures;

static double run_async(liminal_group *g, size_t n, long window, gap_figures *gaps) {
    window_state w;
    window_init(&w, window);
    w.track_gaps = gaps != NULL;
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
    if (gaps) {
        gaps->max_gap_ns = atomic_load(&w.max_gap);
        gaps->gaps_over_1ms = atomic_load(&w.gaps_over_1ms);
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
    run_async(g, n / 10 + 1, window, NULL);
    gap_figures gaps;
    double rate = run_async(g, n, window, &gaps);
    printf("{\"system\":\"liminal\",\"workload\":\"w2\",\"n\":%zu,\"window\":%ld,\"rate\":%.0f,"
           "\"max_gap_ns\":%llu,\"gaps_over_1ms\":%ld}\n",
           n, window, rate, (unsigned long long)gaps.max_gap_ns, gaps.gaps_over_1ms);
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
    double rate = run_async(g, n, 1024, NULL);
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
        if (target > done) run_async(g, target - done, 1024, NULL);
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
    double rate = run_async(g, 4096, 1024, NULL);
    printf("{\"system\":\"liminal\",\"workload\":\"w7-window-async\",\"rate\":%.0f%s}\n", rate, extra);
    liminal_group_free(g);
}

/* W9: producers outrun consumers 2:1. Each consumer's callback busy-waits a
 * fixed time, so what the consumers can take is known: measured first (one
 * producer at full speed, a window keeping every consumer busy), then two
 * producers offer twice that rate, paced by the monotonic clock, and the
 * waiting room drains. Waiting-room depth is sampled every 10 ms. */
static uint64_t w9_work_ns;

static liminal_verdict busy_ack(void *user, liminal_delivery *d) {
    (void)user; (void)d;
    uint64_t until = now_ns() + w9_work_ns;
    while (now_ns() < until) {
    }
    return LIMINAL_VERDICT_ACK;
}

static liminal_group *w9_group(uint32_t prefetch, size_t room) {
    liminal_routing *r = router("least");
    liminal_group_options *options = NULL;
    TRY(liminal_group_options_new(&options));
    TRY(liminal_group_options_set_waiting_room(options, room));
    liminal_group *g = NULL;
    TRY(liminal_group_new(runtime, r, options, &g));
    liminal_group_options_free(options);
    liminal_routing_free(r);
    for (int i = 0; i < 4; i++) {
        char id[32];
        snprintf(id, sizeof id, "slow-%d", i);
        liminal_consumer_free(add(g, id, prefetch, busy_ack, NULL));
    }
    return g;
}

/* What the consumers take per second: one producer at full speed, with a
 * window deep enough that no consumer ever waits for work. */
static double w9_capacity(uint32_t prefetch) {
    liminal_group *g = w9_group(prefetch, 65536);
    window_state w;
    long window = 1024;
    window_init(&w, window);
    liminal_message *m = bench_message(0);
    uint64_t start = now_ns(), warm_end = start + 200000000ull, end = warm_end + 1000000000ull;
    long at_warm = -1, at_end = -1;
    uint64_t t_warm = 0, t_end = 0;
    for (int64_t i = 0;; i++) {
        uint64_t t = now_ns();
        if (at_warm < 0 && t >= warm_end) at_warm = atomic_load(&w.completed), t_warm = t;
        if (t >= end) {
            at_end = atomic_load(&w.completed), t_end = t;
            break;
        }
        if (atomic_load(&w.in_flight) >= window) wait_below(&w, w.low_watermark);
        atomic_fetch_add(&w.in_flight, 1);
        TRY(liminal_message_set_int(m, "key", i));
        liminal_completion_callback cb = {on_done, &w, NULL};
        TRY(liminal_group_dispatch_async(g, m, NULL, cb, NULL));
    }
    w.low_watermark = 0;
    wait_below(&w, 0);
    liminal_message_free(m);
    liminal_group_free(g);
    if (atomic_load(&w.failed)) {
        fprintf(stderr, "w9: %ld calibration dispatches failed\n", atomic_load(&w.failed));
        exit(1);
    }
    return (double)(at_end - at_warm) / ((t_end - t_warm) / 1e9);
}

typedef struct w9_state {
    liminal_group *group;
    double rate_per_producer;
    uint64_t start, duration_ns;
    atomic_long dispatched;
    atomic_long completed;
    atomic_long failed;
    atomic_long target; /* total to wait for, once the producers are done */
    atomic_int sampling;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    size_t depth_max;
    double depth_sum;
    long depth_samples;
} w9_state;

static void w9_done(void *user, liminal_status status, const liminal_outcome *o) {
    (void)o;
    w9_state *s = user;
    if (status != LIMINAL_OK) atomic_fetch_add(&s->failed, 1);
    long done = atomic_fetch_add(&s->completed, 1) + 1;
    if (done >= atomic_load(&s->target)) {
        pthread_mutex_lock(&s->mutex);
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->mutex);
    }
}

static void sleep_until(uint64_t t) {
    struct timespec ts = {(time_t)(t / 1000000000ull), (long)(t % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
    }
}

/* One producer: as many dispatches as its rate says by now, then sleep to
 * the next millisecond tick (pacing by the schedule, so a late tick catches up). */
static void *w9_producer(void *arg) {
    w9_state *s = arg;
    liminal_message *m = bench_message(0);
    long sent = 0;
    for (uint64_t tick = s->start;; tick += 1000000ull) {
        uint64_t elapsed = now_ns() - s->start;
        if (elapsed >= s->duration_ns) break;
        long due = (long)(elapsed / 1e9 * s->rate_per_producer);
        for (; sent < due; sent++) {
            TRY(liminal_message_set_int(m, "key", sent));
            liminal_completion_callback cb = {w9_done, s, NULL};
            TRY(liminal_group_dispatch_async(s->group, m, NULL, cb, NULL));
            atomic_fetch_add(&s->dispatched, 1);
        }
        sleep_until(tick + 1000000ull);
    }
    liminal_message_free(m);
    return NULL;
}

static void *w9_sampler(void *arg) {
    w9_state *s = arg;
    for (uint64_t tick = now_ns(); atomic_load(&s->sampling); tick += 10000000ull) {
        size_t depth = 0;
        TRY(liminal_group_waiting(s->group, &depth));
        if (depth > s->depth_max) s->depth_max = depth;
        s->depth_sum += (double)depth;
        s->depth_samples += 1;
        sleep_until(tick + 10000000ull);
    }
    return NULL;
}

static liminal_runtime *new_runtime(void);

static void w9(uint64_t duration_ms, uint64_t work_us, uint32_t prefetch) {
    w9_work_ns = work_us * 1000;
    double capacity = w9_capacity(prefetch);
    /* A fresh runtime, so its waiting-time percentiles are this phase's only. */
    TRY(liminal_runtime_free(runtime));
    runtime = new_runtime();
    double offered = 2.0 * capacity;
    size_t room = (size_t)(offered * (double)duration_ms / 1000.0 * 1.5) + 4096; /* nothing rejected */
    w9_state s;
    memset(&s, 0, sizeof s);
    s.group = w9_group(prefetch, room);
    s.rate_per_producer = offered / 2;
    s.duration_ns = duration_ms * 1000000ull;
    atomic_init(&s.target, 0x7fffffffffffffffL);
    atomic_init(&s.sampling, 1);
    pthread_mutex_init(&s.mutex, NULL);
    pthread_cond_init(&s.cond, NULL);
    s.start = now_ns();
    pthread_t producers[2], sampler;
    pthread_create(&sampler, NULL, w9_sampler, &s);
    for (int i = 0; i < 2; i++) pthread_create(&producers[i], NULL, w9_producer, &s);
    for (int i = 0; i < 2; i++) pthread_join(producers[i], NULL);
    uint64_t produced_at = now_ns();
    long completed_at_end = atomic_load(&s.completed);
    long total = atomic_load(&s.dispatched);
    pthread_mutex_lock(&s.mutex);
    atomic_store(&s.target, total);
    uint64_t give_up = produced_at + 600000000000ull;
    while (atomic_load(&s.completed) < total && now_ns() < give_up) {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 1;
        pthread_cond_timedwait(&s.cond, &s.mutex, &deadline);
    }
    pthread_mutex_unlock(&s.mutex);
    uint64_t drained_at = now_ns();
    atomic_store(&s.sampling, 0);
    pthread_join(sampler, NULL);
    liminal_metrics metrics;
    TRY(liminal_runtime_metrics(runtime, &metrics));
    long completed = atomic_load(&s.completed), failed = atomic_load(&s.failed);
    if (completed < total || failed || metrics.rejected || metrics.dead_lettered ||
        metrics.delivered != (uint64_t)total) {
        fprintf(stderr, "w9: %ld dispatched, %ld completed, %ld failed, %llu rejected, %llu dead-lettered, "
                        "%llu delivered\n", total, completed, failed, (unsigned long long)metrics.rejected,
                (unsigned long long)metrics.dead_lettered, (unsigned long long)metrics.delivered);
        exit(1);
    }
    double produce_s = (produced_at - s.start) / 1e9, total_s = (drained_at - s.start) / 1e9;
    printf("{\"system\":\"liminal\",\"workload\":\"w9\",\"consumers\":4,\"work_us\":%llu,\"prefetch\":%u,"
           "\"producers\":2,\"duration_ms\":%llu,\"capacity_rate\":%.0f,\"offered_rate\":%.0f,\"rate\":%.0f,"
           "\"rate_overloaded\":%.0f,\"dispatched\":%ld,\"delivered\":%llu,\"failed\":%ld,\"rejected\":%llu,"
           "\"drain_ms\":%.0f,\"depth_max\":%zu,\"depth_mean\":%.0f,\"waiting_p50_ns\":%llu,"
           "\"waiting_p99_ns\":%llu,\"waiting_max_ns\":%llu}\n",
           (unsigned long long)work_us, prefetch, (unsigned long long)duration_ms, capacity, total / produce_s,
           completed / total_s, completed_at_end / produce_s, total, (unsigned long long)metrics.delivered, failed,
           (unsigned long long)metrics.rejected, (drained_at - produced_at) / 1e6, s.depth_max,
           s.depth_samples ? s.depth_sum / s.depth_samples : 0.0, (unsigned long long)metrics.waiting_p50_ns,
           (unsigned long long)metrics.waiting_p99_ns, (unsigned long long)metrics.waiting_max_ns);
    fflush(stdout);
    liminal_group_free(s.group);
}

static liminal_runtime *new_runtime(void) {
    liminal_runtime_options *options = NULL;
    TRY(liminal_runtime_options_new(&options));
    const char *env = getenv("LIMINAL_BENCH_THREADS");
    if (env) TRY(liminal_runtime_options_set_scheduler_threads(options, (uint32_t)atoi(env)));
    env = getenv("LIMINAL_BENCH_SPIN_US");
    if (env) TRY(liminal_runtime_options_set_spin_us(options, strtoull(env, NULL, 10)));
    env = getenv("LIMINAL_BENCH_LINGER_US");
    if (env) TRY(liminal_runtime_options_set_linger_us(options, strtoull(env, NULL, 10)));
    liminal_runtime *r = NULL;
    TRY(liminal_runtime_new(options, &r));
    liminal_runtime_options_free(options);
    return r;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: liminal_bench w1|w2|w3|w4|w5|w6|w7|w9 ...\n");
        return 2;
    }
    runtime = new_runtime();
    const char *w = argv[1];
    size_t n = strtoull(argv[2], NULL, 10);
    if (strcmp(w, "w1") == 0) w1(n);
    else if (strcmp(w, "w2") == 0) w2(n, argc > 3 ? atol(argv[3]) : 1024);
    else if (strcmp(w, "w3") == 0) w3(n);
    else if (strcmp(w, "w4") == 0) w4(n);
    else if (strcmp(w, "w5") == 0) w5(n, argc > 3 ? atoi(argv[3]) : 4, argc > 4 ? argv[4] : "least");
    else if (strcmp(w, "w6") == 0) w6(argv[2]);
    else if (strcmp(w, "w7") == 0) w7(n, argc > 3 ? strtoull(argv[3], NULL, 10) : 250);
    else if (strcmp(w, "w9") == 0)
        w9(n, argc > 3 ? strtoull(argv[3], NULL, 10) : 40, argc > 4 ? (uint32_t)atoi(argv[4]) : 1);
    else {
        fprintf(stderr, "unknown workload %s\n", w);
        return 2;
    }
    TRY(liminal_runtime_free(runtime));
    return 0;
}
