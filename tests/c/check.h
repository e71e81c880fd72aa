/* Minimal test helpers for the C suite: checks that report the library's
 * last error, a latch to wait for callbacks (no sleeps), a way to report a
 * library bug, and small helpers (monotonic clock, valgrind scaling). */
#ifndef LIMINAL_TEST_CHECK_H
#define LIMINAL_TEST_CHECK_H

/* clock_gettime, nanosleep, pthread barriers in strict C11 too. */
#if !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "liminal.h"

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

#define CHECK_STATUS(expr, expected)                                          \
    do {                                                                      \
        liminal_status check_status_ = (expr);                                \
        if (check_status_ != (expected)) {                                    \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (%s)\n",      \
                    __FILE__, __LINE__, #expr,                                \
                    liminal_status_name(check_status_),                       \
                    liminal_status_name(expected), liminal_last_error());     \
            exit(1);                                                          \
        }                                                                     \
    } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, LIMINAL_OK)

/* A failed promise of the header (a library bug): said plainly, counted,
 * and the test goes on where that is safe; `bugs_exit` makes the binary
 * fail when any was found. Mark each such check with a BUG comment. */
static inline int *bug_counter(void) {
    static int bugs = 0;
    return &bugs;
}

#define BUG_IF(cond, ...)                                                    \
    do {                                                                     \
        if (cond) {                                                          \
            fprintf(stderr, "%s:%d: LIBRARY BUG: ", __FILE__, __LINE__);     \
            fprintf(stderr, __VA_ARGS__);                                    \
            fprintf(stderr, "\n");                                           \
            *bug_counter() += 1;                                             \
        }                                                                    \
    } while (0)

/* A status the header's contract fixes: a mismatch is a library bug. */
#define BUG_UNLESS_STATUS(expr, expected, what)                               \
    do {                                                                      \
        liminal_status bug_status_ = (expr);                                  \
        BUG_IF(bug_status_ != (expected), "%s: %s returned %s, expected %s (%s)", \
               what, #expr, liminal_status_name(bug_status_),                 \
               liminal_status_name(expected), liminal_last_error());          \
    } while (0)

/* The exit code of a test binary: 1 when a library bug was found. */
static inline int bugs_exit(const char *name) {
    if (*bug_counter() > 0) {
        fprintf(stderr, "%s: %d LIBRARY BUG(S) found (see LIBRARY BUG lines above)\n", name,
                *bug_counter());
        return 1;
    }
    printf("%s: all passed\n", name);
    return 0;
}

/* Counts events; waiters block until a count is reached (30 s = a hang). */
typedef struct latch {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int count;
} latch;

static inline void latch_init(latch *l) {
    pthread_mutex_init(&l->mutex, NULL);
    pthread_cond_init(&l->cond, NULL);
    l->count = 0;
}

static inline void latch_destroy(latch *l) {
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->mutex);
}

static inline void latch_add(latch *l) {
    pthread_mutex_lock(&l->mutex);
    l->count += 1;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->mutex);
}

static inline int latch_count(latch *l) {
    pthread_mutex_lock(&l->mutex);
    int count = l->count;
    pthread_mutex_unlock(&l->mutex);
    return count;
}

static inline void latch_wait_at(latch *l, int target, const char *file, int line) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 30;
    pthread_mutex_lock(&l->mutex);
    while (l->count < target) {
        if (pthread_cond_timedwait(&l->cond, &l->mutex, &deadline) == ETIMEDOUT) {
            fprintf(stderr, "%s:%d: latch: timed out (30 s) waiting for %d (at %d)\n",
                    file, line, target, l->count);
            exit(1);
        }
    }
    pthread_mutex_unlock(&l->mutex);
}

#define latch_wait(l, target) latch_wait_at((l), (target), __FILE__, __LINE__)

/* Wait up to `seconds` for the count; 0 if it was not reached. */
static inline int latch_wait_for(latch *l, int target, int seconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    int reached = 1;
    pthread_mutex_lock(&l->mutex);
    while (l->count < target) {
        if (pthread_cond_timedwait(&l->cond, &l->mutex, &deadline) == ETIMEDOUT) {
            reached = l->count >= target;
            break;
        }
    }
    pthread_mutex_unlock(&l->mutex);
    return reached;
}

/* A one-way gate: threads wait until it is opened (30 s = a hang). */
typedef latch gate;
#define gate_init latch_init
#define gate_destroy latch_destroy
#define gate_open(g) latch_add(g)
#define gate_wait(g) latch_wait((g), 1)

static inline liminal_delivery_callback no_delivery(void) {
    liminal_delivery_callback cb = {NULL, NULL, NULL};
    return cb;
}

static inline liminal_crash_callback no_crash(void) {
    liminal_crash_callback cb = {NULL, NULL, NULL};
    return cb;
}

/* Monotonic time in nanoseconds. */
static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t ms_since(int64_t start_ns) { return (now_ns() - start_ns) / 1000000; }

/* Pace load (never what makes an assertion true). */
static inline void pace_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static inline int under_valgrind(void) { return getenv("LIMINAL_UNDER_VALGRIND") != NULL; }

/* `normal` iterations, or `valgrind` under valgrind. */
static inline int scaled(int normal, int valgrind) { return under_valgrind() ? valgrind : normal; }

/* Runtime / group / consumer shorthands used by most tests. */
static inline liminal_runtime *new_runtime(void) {
    liminal_runtime *runtime = NULL;
    CHECK_OK(liminal_runtime_new(NULL, &runtime));
    return runtime;
}

static inline liminal_message *new_message(int64_t n) {
    liminal_message *message = NULL;
    CHECK_OK(liminal_message_new(&message));
    CHECK_OK(liminal_message_set_int(message, "n", n));
    return message;
}

static inline int64_t message_n(const liminal_message *message) {
    int64_t n = -1;
    CHECK_OK(liminal_message_get_int(message, "n", &n));
    return n;
}

/* A group routed by a built-in, with options (may be NULL). */
static inline liminal_group *new_group_with(liminal_runtime *runtime, liminal_builtin kind,
                                            const liminal_group_options *options) {
    liminal_routing *routing = NULL;
    CHECK_OK(liminal_routing_builtin(kind, NULL, &routing));
    liminal_group *group = NULL;
    CHECK_OK(liminal_group_new(runtime, routing, options, &group));
    liminal_routing_free(routing);
    return group;
}

static inline liminal_consumer_options *consumer_options(uint32_t max_in_flight) {
    liminal_consumer_options *options = NULL;
    CHECK_OK(liminal_consumer_options_new(&options));
    CHECK_OK(liminal_consumer_options_set_max_in_flight(options, max_in_flight));
    return options;
}

/* Register with a max in flight and the given callbacks. */
static inline liminal_consumer *register_consumer(liminal_group *group, const char *id,
                                                  uint32_t max_in_flight,
                                                  liminal_delivery_callback on_delivery,
                                                  liminal_crash_callback on_crash) {
    liminal_consumer_options *options = consumer_options(max_in_flight);
    liminal_consumer *consumer = NULL;
    CHECK_OK(liminal_consumer_register(group, id, on_delivery, on_crash, options, &consumer));
    liminal_consumer_options_free(options);
    return consumer;
}

static inline liminal_verdict settle_ack(void *user, liminal_delivery *delivery) {
    (void)user; (void)delivery;
    return LIMINAL_VERDICT_ACK;
}

/* Wait until every delivery callback that has started on `runtime` has
 * returned. With one scheduler thread (the default) push callbacks never
 * overlap: a callback that starts after this one returns proves it. (A
 * callback that signalled the test has not necessarily returned yet: a
 * consumer crashed then still counts as having died *handling* it.) */
static inline void settle(liminal_runtime *runtime) {
    liminal_group *group = new_group_with(runtime, LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, NULL);
    liminal_delivery_callback d = {settle_ack, NULL, NULL};
    liminal_consumer *consumer = register_consumer(group, "settle", 1, d, no_crash());
    liminal_message *message = new_message(0);
    liminal_outcome *outcome = NULL;
    CHECK_OK(liminal_group_dispatch(group, message, NULL, &outcome));
    liminal_outcome_free(outcome);
    liminal_message_free(message);
    liminal_consumer_free(consumer);
    liminal_group_free(group);
}

/* Keeps every delivery it gets (the test answers them, or not) and frees
 * them all at the end. In ack mode it acknowledges in the callback instead. */
#define KEEPER_CAPACITY 256
typedef struct keeper {
    latch kept_latch;
    pthread_mutex_t mutex;
    liminal_delivery *all[KEEPER_CAPACITY];
    int count;
    atomic_int ack_mode;
    atomic_int acked_in_callback;
} keeper;

static inline void keeper_init(keeper *k) {
    memset(k, 0, sizeof *k);
    latch_init(&k->kept_latch);
    pthread_mutex_init(&k->mutex, NULL);
}

static inline void keeper_destroy(keeper *k) {
    for (int i = 0; i < k->count; i++) liminal_delivery_free(k->all[i]);
    latch_destroy(&k->kept_latch);
    pthread_mutex_destroy(&k->mutex);
}

/* The i-th delivery kept. */
static inline liminal_delivery *keeper_get(keeper *k, int i) {
    pthread_mutex_lock(&k->mutex);
    CHECK(i >= 0 && i < k->count);
    liminal_delivery *d = k->all[i];
    pthread_mutex_unlock(&k->mutex);
    return d;
}

/* The last delivery kept. */
static inline liminal_delivery *keeper_last(keeper *k) {
    pthread_mutex_lock(&k->mutex);
    CHECK(k->count > 0);
    liminal_delivery *d = k->all[k->count - 1];
    pthread_mutex_unlock(&k->mutex);
    return d;
}

static inline liminal_verdict keep(void *user, liminal_delivery *delivery) {
    keeper *k = user;
    if (atomic_load(&k->ack_mode)) {
        atomic_fetch_add(&k->acked_in_callback, 1);
        return LIMINAL_VERDICT_ACK;
    }
    liminal_delivery *kept = NULL;
    CHECK_OK(liminal_delivery_keep(delivery, &kept));
    pthread_mutex_lock(&k->mutex);
    CHECK(k->count < KEEPER_CAPACITY);
    k->all[k->count++] = kept;
    pthread_mutex_unlock(&k->mutex);
    latch_add(&k->kept_latch);
    return LIMINAL_VERDICT_DEFER;
}

static inline liminal_delivery_callback keeping(keeper *k) {
    liminal_delivery_callback cb = {keep, k, NULL};
    return cb;
}

#endif
