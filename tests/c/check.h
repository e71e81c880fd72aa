/* Minimal test helpers for the C suite: checks that report the library's
 * last error, and a latch to wait for callbacks (no sleeps). */
#ifndef LIMINAL_TEST_CHECK_H
#define LIMINAL_TEST_CHECK_H

#include <errno.h>
#include <pthread.h>
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

static inline void latch_wait(latch *l, int target) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 30;
    pthread_mutex_lock(&l->mutex);
    while (l->count < target) {
        if (pthread_cond_timedwait(&l->cond, &l->mutex, &deadline) == ETIMEDOUT) {
            fprintf(stderr, "latch: timed out waiting for %d (at %d)\n", target,
                    l->count);
            exit(1);
        }
    }
    pthread_mutex_unlock(&l->mutex);
}

static inline liminal_delivery_callback no_delivery(void) {
    liminal_delivery_callback cb = {NULL, NULL, NULL};
    return cb;
}

static inline liminal_crash_callback no_crash(void) {
    liminal_crash_callback cb = {NULL, NULL, NULL};
    return cb;
}

#endif
