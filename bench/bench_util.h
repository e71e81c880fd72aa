/* Shared helpers for the C benchmarks: clocks, sample statistics, RSS. */
#ifndef LIMINAL_BENCH_UTIL_H
#define LIMINAL_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts `samples` and returns the value at quantile q. */
static inline uint64_t quantile(uint64_t *samples, size_t n, double q) {
    if (n == 0) return 0;
    size_t index = (size_t)(q * (double)(n - 1) + 0.5);
    return samples[index];
}

static inline void sort_samples(uint64_t *samples, size_t n) { qsort(samples, n, sizeof *samples, cmp_u64); }

static inline long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kib = strtol(line + 6, NULL, 10);
    fclose(f);
    return kib;
}

#endif
