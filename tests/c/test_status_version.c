/* Every status has a distinct name and a description; classification; the
 * enumerations and verdicts have the values the header documents; the
 * header's version macros match the library and Cargo.toml. */
#include "check.h"

#ifndef EXPECTED_VERSION
#error "EXPECTED_VERSION (from Cargo.toml) must be defined by the build"
#endif

#define LAST_STATUS LIMINAL_STORE_FAILED

static int is_one_of(int s, const int *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (list[i] == s) return 1;
    return 0;
}

int main(void) {
    CHECK(strcmp(liminal_last_error(), "") == 0);

    const char *names[LAST_STATUS + 1];
    for (int s = LIMINAL_OK; s <= LAST_STATUS; s++) {
        names[s] = liminal_status_name(s);
        CHECK(strncmp(names[s], "LIMINAL_", 8) == 0);
        CHECK(strcmp(names[s], "LIMINAL_UNKNOWN_STATUS") != 0);
        CHECK(strlen(liminal_status_str(s)) > 0);
        CHECK(strcmp(liminal_status_str(s), "unknown status") != 0);
        for (int t = 0; t < s; t++) {
            CHECK(strcmp(names[s], names[t]) != 0);
            CHECK(strcmp(liminal_status_str(s), liminal_status_str(t)) != 0);
        }
    }
    /* The new statuses, by name. */
    CHECK(strcmp(liminal_status_name(LIMINAL_CONSUMER_GONE), "LIMINAL_CONSUMER_GONE") == 0);
    CHECK(strcmp(liminal_status_name(LIMINAL_QUEUE_FULL), "LIMINAL_QUEUE_FULL") == 0);
    CHECK(strcmp(liminal_status_name(LIMINAL_EXPIRED), "LIMINAL_EXPIRED") == 0);
    CHECK(strcmp(liminal_status_name(LIMINAL_DROPPED), "LIMINAL_DROPPED") == 0);
    CHECK(strcmp(liminal_status_name(LIMINAL_DRAINING), "LIMINAL_DRAINING") == 0);
    CHECK(strcmp(liminal_status_name(LIMINAL_UNSUPPORTED), "LIMINAL_UNSUPPORTED") == 0);
    CHECK(strcmp(liminal_status_name(LIMINAL_NO_CONSUMER_AVAILABLE), "LIMINAL_NO_CONSUMER_AVAILABLE") == 0);
    CHECK(LIMINAL_CONSUMER_GONE == 19 && LIMINAL_QUEUE_FULL == 20 && LIMINAL_EXPIRED == 21 &&
          LIMINAL_DROPPED == 22 && LIMINAL_DRAINING == 23 && LIMINAL_UNSUPPORTED == 24 &&
          LIMINAL_STORE_LOCKED == 25 && LIMINAL_STORE_FAILED == 26);

    /* Unknown values are safe. */
    CHECK(strcmp(liminal_status_name(LAST_STATUS + 1), "LIMINAL_UNKNOWN_STATUS") == 0);
    CHECK(strcmp(liminal_status_name(-1), "LIMINAL_UNKNOWN_STATUS") == 0);
    CHECK(strcmp(liminal_status_str(-1), "unknown status") == 0);
    CHECK(strcmp(liminal_status_str(INT32_MAX), "unknown status") == 0);
    CHECK(!liminal_status_is_retriable(-1) && !liminal_status_is_fatal(LAST_STATUS + 1));

    /* Classification: exactly the documented sets. */
    const int retriable[] = {LIMINAL_QUEUE_FULL, LIMINAL_TIMED_OUT, LIMINAL_ROUTING_TIMED_OUT,
                             LIMINAL_EXPIRED, LIMINAL_DROPPED};
    const int fatal[] = {LIMINAL_SHUT_DOWN, LIMINAL_PANIC};
    for (int s = LIMINAL_OK; s <= LAST_STATUS; s++) {
        if (liminal_status_is_retriable(s) != is_one_of(s, retriable, 5)) {
            fprintf(stderr, "retriable(%s) is wrong\n", liminal_status_name(s));
            CHECK(0);
        }
        if (liminal_status_is_fatal(s) != is_one_of(s, fatal, 2)) {
            fprintf(stderr, "fatal(%s) is wrong\n", liminal_status_name(s));
            CHECK(0);
        }
    }

    /* Verdicts are non-zero and distinct; route results and enums as documented. */
    CHECK(LIMINAL_VERDICT_ACK == 1 && LIMINAL_VERDICT_CRASH == 2 && LIMINAL_VERDICT_DEFER == 3 &&
          LIMINAL_VERDICT_RELEASE == 4);
    CHECK(LIMINAL_ROUTE_SELECTED == 0 && LIMINAL_ROUTE_NONE == 1 && LIMINAL_ROUTE_FAILED == 2);
    CHECK(LIMINAL_CRASH_VERDICT == 1 && LIMINAL_CRASH_PANICKED == 2 && LIMINAL_CRASH_DECLARED == 3 &&
          LIMINAL_CRASH_INJECTED == 4 && LIMINAL_CRASH_EXITED == 5 &&
          LIMINAL_CRASH_LEASE_EXPIRED == 6);
    CHECK(LIMINAL_OVERFLOW_REJECT == 1 && LIMINAL_OVERFLOW_BLOCK == 2 &&
          LIMINAL_OVERFLOW_DROP_OLDEST == 3);
    CHECK(LIMINAL_LEASE_CRASH == 1 && LIMINAL_LEASE_QUARANTINE == 2);
    CHECK(LIMINAL_FIELD_TEXT == 0 && LIMINAL_FIELD_NULL == 4);
    CHECK(LIMINAL_BUILTIN_FIRST_WITH_CAPACITY == 0 && LIMINAL_BUILTIN_STICKY_KEY == 3);

    /* Nothing failed on this thread yet. */
    CHECK(strcmp(liminal_last_error(), "") == 0);

    char header[32];
    snprintf(header, sizeof header, "%d.%d.%d", LIMINAL_VERSION_MAJOR, LIMINAL_VERSION_MINOR,
             LIMINAL_VERSION_PATCH);
    CHECK(strcmp(header, liminal_version()) == 0);
    CHECK(strcmp(header, EXPECTED_VERSION) == 0);
    printf("test_status_version: all passed (%s)\n", header);
    return 0;
}
