/* Every status has a distinct name and a description; classification; the
 * header's version macros match the library and Cargo.toml. */
#include "check.h"

#ifndef EXPECTED_VERSION
#error "EXPECTED_VERSION (from Cargo.toml) must be defined by the build"
#endif

int main(void) {
    const char *names[LIMINAL_PANIC + 1];
    for (int s = LIMINAL_OK; s <= LIMINAL_PANIC; s++) {
        names[s] = liminal_status_name(s);
        CHECK(strncmp(names[s], "LIMINAL_", 8) == 0);
        CHECK(strcmp(names[s], "LIMINAL_UNKNOWN_STATUS") != 0);
        CHECK(strlen(liminal_status_str(s)) > 0);
        for (int t = 0; t < s; t++) CHECK(strcmp(names[s], names[t]) != 0);
    }
    CHECK(strcmp(liminal_status_name(LIMINAL_PANIC + 1), "LIMINAL_UNKNOWN_STATUS") == 0);
    CHECK(strcmp(liminal_status_str(-1), "unknown status") == 0);
    CHECK(strcmp(liminal_status_name(LIMINAL_NO_CONSUMER_AVAILABLE), "LIMINAL_NO_CONSUMER_AVAILABLE") == 0);
    CHECK(liminal_status_is_retriable(LIMINAL_NO_CONSUMER_AVAILABLE));
    CHECK(!liminal_status_is_retriable(LIMINAL_INVALID_ARGUMENT));
    CHECK(liminal_status_is_fatal(LIMINAL_SHUT_DOWN));
    CHECK(!liminal_status_is_fatal(LIMINAL_OK));
    CHECK(strcmp(liminal_last_error(), "") == 0);

    char header[32];
    snprintf(header, sizeof header, "%d.%d.%d", LIMINAL_VERSION_MAJOR, LIMINAL_VERSION_MINOR,
             LIMINAL_VERSION_PATCH);
    CHECK(strcmp(header, liminal_version()) == 0);
    CHECK(strcmp(header, EXPECTED_VERSION) == 0);
    printf("test_status_version: all passed (%s)\n", header);
    return 0;
}
