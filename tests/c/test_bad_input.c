/* Bad input for every function returns its documented status and changes
 * nothing: NULL pointers, invalid UTF-8, empty ids and names, zero or
 * out-of-range values (each options setter names the option in
 * liminal_last_error()), duplicate and unknown consumers. Callbacks handed
 * to a failing call are released (free_user runs before it returns) and
 * never called. */
#include "check.h"

static const char BAD_UTF8[] = {(char)0xff, (char)0xfe, 0};

/* A bad value: LIMINAL_INVALID_ARGUMENT, and the last error names `what`. */
#define CHECK_INVALID(expr, what)                                              \
    do {                                                                       \
        CHECK_STATUS(expr, LIMINAL_INVALID_ARGUMENT);                          \
        if (strstr(liminal_last_error(), what) == NULL) {                      \
            fprintf(stderr, "%s:%d: last error \"%s\" does not name \"%s\"\n", \
                    __FILE__, __LINE__, liminal_last_error(), what);           \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

static int frees = 0;
static void count_free(void *user) { (void)user; frees += 1; }

/* Callbacks that must never run (the call that took them failed). */
static liminal_verdict never_delivered(void *user, liminal_delivery *delivery) {
    (void)user; (void)delivery;
    fprintf(stderr, "a delivery callback of a failed registration ran\n");
    exit(1);
}
static void never_crashed(void *user, const char *id, liminal_crash_kind kind, const char *reason,
                          bool alive) {
    (void)user; (void)id; (void)kind; (void)reason; (void)alive;
    fprintf(stderr, "a crash callback of a failed registration ran\n");
    exit(1);
}
static void never_completed(void *user, liminal_status status, const liminal_outcome *outcome) {
    (void)user; (void)status; (void)outcome;
    fprintf(stderr, "the completion of a refused dispatch ran\n");
    exit(1);
}
static void never_dead_letter(void *user, const liminal_message *m, const liminal_outcome *o) {
    (void)user; (void)m; (void)o;
    fprintf(stderr, "a dead-letter callback of a failed call ran\n");
    exit(1);
}
static void never_stats(void *user, const char *json, size_t len) {
    (void)user; (void)json; (void)len;
    fprintf(stderr, "a stats callback of a failed call ran\n");
    exit(1);
}
static liminal_route_result route_none(void *user, const liminal_message *message,
                                       const liminal_consumer_view *views, size_t count,
                                       const char **selected) {
    (void)user; (void)message; (void)views; (void)count; (void)selected;
    return LIMINAL_ROUTE_NONE;
}
static liminal_route_result route_bad_id(void *user, const liminal_message *message,
                                         const liminal_consumer_view *views, size_t count,
                                         const char **selected) {
    (void)user; (void)message; (void)views; (void)count;
    *selected = "nobody";
    return LIMINAL_ROUTE_SELECTED;
}
static liminal_verdict ack(void *user, liminal_delivery *delivery) {
    (void)user; (void)delivery;
    return LIMINAL_VERDICT_ACK;
}

typedef struct completion_box {
    latch done;
    liminal_status status;
    char delivered_to[32];
} completion_box;

static void on_complete(void *user, liminal_status status, const liminal_outcome *outcome) {
    completion_box *box = user;
    box->status = status;
    const char *to = liminal_outcome_delivered_to(outcome);
    snprintf(box->delivered_to, sizeof box->delivered_to, "%s", to ? to : "");
    latch_add(&box->done);
}

static void test_status_functions_are_total(void) {
    CHECK(liminal_status_str(-5) != NULL && liminal_status_name(1000) != NULL);
    CHECK(!liminal_status_is_retriable(1000) && !liminal_status_is_fatal(-1));
    CHECK(liminal_last_error() != NULL);
    CHECK(liminal_version() != NULL);
}

static void test_runtime_options(void) {
    CHECK_STATUS(liminal_runtime_options_new(NULL), LIMINAL_NULL_ARGUMENT);
    liminal_runtime_options_free(NULL);
    liminal_runtime_options *options = NULL;
    CHECK_OK(liminal_runtime_options_new(&options));
    CHECK_STATUS(liminal_runtime_options_set_scheduler_threads(NULL, 1), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_runtime_options_set_routing_timeout_ms(NULL, 1), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_runtime_options_set_spin_us(NULL, 1), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_runtime_options_set_linger_us(NULL, 1), LIMINAL_NULL_ARGUMENT);
    CHECK_OK(liminal_runtime_options_set_scheduler_threads(options, 2));
    CHECK_INVALID(liminal_runtime_options_set_scheduler_threads(options, 0), "scheduler_threads");
    CHECK_INVALID(liminal_runtime_options_set_scheduler_threads(options, 65), "scheduler_threads");
    CHECK_OK(liminal_runtime_options_set_scheduler_threads(options, 64));
    CHECK_OK(liminal_runtime_options_set_scheduler_threads(options, 1));
    CHECK_INVALID(liminal_runtime_options_set_routing_timeout_ms(options, 0), "routing_timeout_ms");
    CHECK_OK(liminal_runtime_options_set_routing_timeout_ms(options, 2000));
    CHECK_INVALID(liminal_runtime_options_set_spin_us(options, 1000001), "spin_us");
    CHECK_OK(liminal_runtime_options_set_spin_us(options, 1000000));
    CHECK_OK(liminal_runtime_options_set_spin_us(options, 0));
    CHECK_INVALID(liminal_runtime_options_set_linger_us(options, 10000001), "linger_us");
    CHECK_OK(liminal_runtime_options_set_linger_us(options, 10000000));
    CHECK_OK(liminal_runtime_options_set_linger_us(options, 0));

    /* The options still make a runtime after the failed setters. */
    CHECK_STATUS(liminal_runtime_new(options, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_runtime_new(NULL, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK(strstr(liminal_last_error(), "out") != NULL);
    liminal_runtime *runtime = NULL;
    CHECK_OK(liminal_runtime_new(options, &runtime));
    liminal_runtime_options_free(options);
    CHECK_OK(liminal_runtime_free(runtime));
}

static void test_runtime(liminal_runtime *runtime) {
    CHECK_STATUS(liminal_runtime_shutdown(NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_OK(liminal_runtime_free(NULL));
    size_t left = 99;
    CHECK_STATUS(liminal_runtime_drain(NULL, 0, &left), LIMINAL_NULL_ARGUMENT);
    CHECK(left == 99);
    liminal_metrics metrics;
    CHECK_STATUS(liminal_runtime_metrics(NULL, &metrics), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_runtime_metrics(runtime, NULL), LIMINAL_NULL_ARGUMENT);

    char buffer[8];
    size_t len = 0;
    CHECK_STATUS(liminal_runtime_stats_json(NULL, buffer, sizeof buffer, &len), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_runtime_stats_json(runtime, NULL, 16, &len), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_runtime_stats_json(runtime, NULL, 0, &len), LIMINAL_BUFFER_TOO_SMALL);
    CHECK(len > 0);
    CHECK_STATUS(liminal_runtime_stats_json(runtime, buffer, sizeof buffer, NULL), LIMINAL_BUFFER_TOO_SMALL);
    CHECK(strlen(buffer) == sizeof buffer - 1); /* truncated, NUL-terminated */
    CHECK_STATUS(liminal_runtime_stats_prometheus(NULL, buffer, sizeof buffer, &len), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_runtime_stats_prometheus(runtime, NULL, 16, &len), LIMINAL_NULL_ARGUMENT);
    len = 0;
    CHECK_STATUS(liminal_runtime_stats_prometheus(runtime, NULL, 0, &len), LIMINAL_BUFFER_TOO_SMALL);
    CHECK(len > 0);

    /* A stats callback handed to a failing call is released, never called. */
    int before = frees;
    liminal_stats_callback stats = {never_stats, NULL, count_free};
    CHECK_STATUS(liminal_runtime_set_stats_callback(NULL, 100, stats), LIMINAL_NULL_ARGUMENT);
    CHECK(frees == before + 1);
    CHECK_INVALID(liminal_runtime_set_stats_callback(runtime, 9, stats), "interval_ms");
    CHECK(frees == before + 2);
    CHECK_INVALID(liminal_runtime_set_stats_callback(runtime, 0, stats), "interval_ms");
    CHECK(frees == before + 3);
    liminal_stats_callback stop = {NULL, NULL, count_free};
    CHECK_OK(liminal_runtime_set_stats_callback(runtime, 0, stop));
    CHECK(frees == before + 4);
}

static void test_message(void) {
    CHECK_STATUS(liminal_message_new(NULL), LIMINAL_NULL_ARGUMENT);
    liminal_message *message = NULL;
    CHECK_OK(liminal_message_new(&message));
    CHECK_OK(liminal_message_set_int(message, "keep", 5));
    CHECK_STATUS(liminal_message_set_int(NULL, "n", 1), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_set_int(message, NULL, 1), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_set_int(message, "", 1), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_message_set_int(message, BAD_UTF8, 1), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_message_set_text(NULL, "t", "x"), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_set_text(message, "t", NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_set_text(message, "t", BAD_UTF8), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_message_set_text(message, "", "x"), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_message_set_text(message, "keep", BAD_UTF8), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_message_set_double(NULL, "d", 1.0), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_set_double(message, NULL, 1.0), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_set_double(message, "", 1.0), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_message_set_bool(NULL, "b", true), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_set_bool(message, BAD_UTF8, true), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_message_set_null(NULL, "z"), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_set_null(message, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_set_null(message, ""), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_message_set_payload(message, NULL, 3), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_set_payload(NULL, NULL, 0), LIMINAL_NULL_ARGUMENT);
    /* Nothing changed: one field, still an integer 5, no payload. */
    size_t count = 99;
    CHECK_OK(liminal_message_field_count(message, &count));
    CHECK(count == 1);
    int64_t keep = 0;
    CHECK_STATUS(liminal_message_get_int(message, "n", &keep), LIMINAL_NOT_FOUND);
    CHECK_OK(liminal_message_get_int(message, "keep", &keep));
    CHECK(keep == 5);
    const uint8_t *payload = (const uint8_t *)"x";
    size_t payload_len = 9;
    CHECK_OK(liminal_message_payload(message, &payload, &payload_len));
    CHECK(payload == NULL && payload_len == 0);

    CHECK_STATUS(liminal_message_field_count(NULL, &count), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_field_count(message, NULL), LIMINAL_NULL_ARGUMENT);
    int64_t n;
    double d;
    bool b;
    CHECK_STATUS(liminal_message_get_int(message, "n", &n), LIMINAL_NOT_FOUND);
    CHECK_STATUS(liminal_message_get_int(message, "n", NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_get_int(NULL, "n", &n), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_get_int(message, NULL, &n), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_get_int(message, BAD_UTF8, &n), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_message_get_double(NULL, "n", &d), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_get_double(message, "keep", &d), LIMINAL_NOT_FOUND); /* wrong type */
    CHECK_STATUS(liminal_message_get_double(message, "keep", NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_get_bool(message, NULL, &b), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_get_bool(message, "keep", &b), LIMINAL_NOT_FOUND);
    CHECK_STATUS(liminal_message_get_text(message, "t", NULL, 4, NULL), LIMINAL_NOT_FOUND);
    CHECK_STATUS(liminal_message_get_text(NULL, "t", NULL, 0, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_get_text(message, NULL, NULL, 0, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_OK(liminal_message_set_text(message, "t", "text"));
    CHECK_STATUS(liminal_message_get_text(message, "t", NULL, 4, NULL), LIMINAL_NULL_ARGUMENT);
    size_t needed = 0;
    CHECK_STATUS(liminal_message_get_text(message, "t", NULL, 0, &needed), LIMINAL_BUFFER_TOO_SMALL);
    CHECK(needed == 4);
    liminal_field_type type;
    CHECK_STATUS(liminal_message_field_type(message, "missing", &type), LIMINAL_NOT_FOUND);
    CHECK_STATUS(liminal_message_field_type(NULL, "t", &type), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_field_type(message, NULL, &type), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_field_type(message, "t", NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_payload(message, NULL, &payload_len), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_payload(message, &payload, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_payload(NULL, &payload, &payload_len), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_fields_json(NULL, NULL, 0, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_fields_json(message, NULL, 8, NULL), LIMINAL_NULL_ARGUMENT);
    needed = 0;
    CHECK_STATUS(liminal_message_fields_json(message, NULL, 0, &needed), LIMINAL_BUFFER_TOO_SMALL);
    CHECK(needed == strlen("{\"keep\":5,\"t\":\"text\"}"));
    liminal_message_free(NULL);
    liminal_message_free(message);
}

static void test_routing(liminal_runtime *runtime) {
    liminal_routing *routing = NULL;
    CHECK_STATUS(liminal_routing_builtin(LIMINAL_BUILTIN_LEAST_LOADED, NULL, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_routing_builtin(42, NULL, &routing), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_routing_builtin(-1, NULL, &routing), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_routing_builtin(LIMINAL_BUILTIN_AFFINITY, NULL, &routing), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_routing_builtin(LIMINAL_BUILTIN_AFFINITY, "", &routing), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_routing_builtin(LIMINAL_BUILTIN_STICKY_KEY, NULL, &routing), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_routing_builtin(LIMINAL_BUILTIN_STICKY_KEY, "", &routing), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_routing_builtin(LIMINAL_BUILTIN_STICKY_KEY, BAD_UTF8, &routing), LIMINAL_INVALID_ARGUMENT);
    CHECK(routing == NULL);

    /* A route callback handed to a failing call is released at once. */
    int before = frees;
    liminal_route_callback no_fn = {NULL, NULL, count_free};
    CHECK_STATUS(liminal_routing_new(runtime, no_fn, (const uint8_t *)"x", 1, NULL, &routing), LIMINAL_NULL_ARGUMENT);
    CHECK(frees == before + 1);
    liminal_route_callback none_cb = {route_none, NULL, count_free};
    CHECK_STATUS(liminal_routing_new(NULL, none_cb, (const uint8_t *)"x", 1, NULL, &routing), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_routing_new(runtime, none_cb, (const uint8_t *)"x", 0, NULL, &routing), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_routing_new(runtime, none_cb, NULL, 1, NULL, &routing), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_routing_new(runtime, none_cb, (const uint8_t *)"x", 1, BAD_UTF8, &routing), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_routing_new(runtime, none_cb, (const uint8_t *)"x", 1, NULL, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK(frees == before + 6);
    CHECK(routing == NULL);
    CHECK(liminal_routing_hash(NULL) == 0);
    liminal_routing_free(NULL);
}

static void test_group_options(liminal_runtime *runtime, liminal_routing *routing) {
    CHECK_STATUS(liminal_group_options_new(NULL), LIMINAL_NULL_ARGUMENT);
    liminal_group_options_free(NULL);
    CHECK_STATUS(liminal_group_options_set_name(NULL, "g"), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_options_set_max_attempts(NULL, 1), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_options_set_count_holding_crashes(NULL, true), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_options_set_auto_ack_ms(NULL, 1), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_options_set_waiting_room(NULL, 1), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_options_set_overflow(NULL, LIMINAL_OVERFLOW_REJECT, 0), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_options_set_deadline_ms(NULL, 1), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_options_set_ack_lease_ms(NULL, 1), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_options_set_lease_policy(NULL, LIMINAL_LEASE_CRASH), LIMINAL_NULL_ARGUMENT);

    liminal_group_options *options = NULL;
    CHECK_OK(liminal_group_options_new(&options));
    CHECK_OK(liminal_group_options_set_name(options, "bad-input-group"));
    CHECK_STATUS(liminal_group_options_set_name(options, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_INVALID(liminal_group_options_set_name(options, ""), "name");
    CHECK_INVALID(liminal_group_options_set_name(options, BAD_UTF8), "name");
    CHECK_OK(liminal_group_options_set_max_attempts(options, 1));
    CHECK_INVALID(liminal_group_options_set_max_attempts(options, 0), "max_attempts");
    CHECK_OK(liminal_group_options_set_waiting_room(options, 2));
    CHECK_INVALID(liminal_group_options_set_waiting_room(options, 0), "waiting_room");
    CHECK_OK(liminal_group_options_set_overflow(options, LIMINAL_OVERFLOW_REJECT, 0));
    CHECK_INVALID(liminal_group_options_set_overflow(options, 0, 10), "overflow");
    CHECK_INVALID(liminal_group_options_set_overflow(options, 4, 10), "overflow");
    CHECK_INVALID(liminal_group_options_set_overflow(options, -1, 10), "overflow");
    CHECK_INVALID(liminal_group_options_set_overflow(options, LIMINAL_OVERFLOW_BLOCK, 0), "overflow");
    CHECK_OK(liminal_group_options_set_lease_policy(options, LIMINAL_LEASE_QUARANTINE));
    CHECK_OK(liminal_group_options_set_lease_policy(options, LIMINAL_LEASE_CRASH));
    CHECK_INVALID(liminal_group_options_set_lease_policy(options, 0), "lease_policy");
    CHECK_INVALID(liminal_group_options_set_lease_policy(options, 3), "lease_policy");
    /* Settings without a bad value: every value is accepted. */
    CHECK_OK(liminal_group_options_set_count_holding_crashes(options, false));
    CHECK_OK(liminal_group_options_set_auto_ack_ms(options, 0));
    CHECK_OK(liminal_group_options_set_deadline_ms(options, 0));
    CHECK_OK(liminal_group_options_set_ack_lease_ms(options, 0));

    /* The failed setters changed nothing: a waiting room of 2 that rejects,
     * and the name in the statistics. */
    liminal_group *group = NULL;
    CHECK_OK(liminal_group_new(runtime, routing, options, &group));
    liminal_group_options_free(options);
    liminal_message *message = new_message(1);
    completion_box boxes[2];
    for (int i = 0; i < 2; i++) {
        latch_init(&boxes[i].done);
        liminal_completion_callback cb = {on_complete, &boxes[i], NULL};
        CHECK_OK(liminal_group_dispatch_async(group, message, NULL, cb, NULL));
    }
    int before = frees;
    liminal_completion_callback refused = {never_completed, NULL, count_free};
    CHECK_STATUS(liminal_group_dispatch_async(group, message, NULL, refused, NULL), LIMINAL_QUEUE_FULL);
    CHECK(frees == before + 1);
    size_t waiting = 0;
    CHECK_OK(liminal_group_waiting(group, &waiting));
    CHECK(waiting == 2);
    char json[4096];
    CHECK_OK(liminal_runtime_stats_json(runtime, json, sizeof json, NULL));
    CHECK(strstr(json, "\"bad-input-group\"") != NULL);
    liminal_group_free(group); /* the two waiting fail: the group closed */
    for (int i = 0; i < 2; i++) {
        latch_wait(&boxes[i].done, 1);
        CHECK(boxes[i].status == LIMINAL_NO_CONSUMER_AVAILABLE);
        latch_destroy(&boxes[i].done);
    }
    liminal_message_free(message);
}

static void test_consumer_options(void) {
    CHECK_STATUS(liminal_consumer_options_new(NULL), LIMINAL_NULL_ARGUMENT);
    liminal_consumer_options_free(NULL);
    CHECK_STATUS(liminal_consumer_options_set_max_in_flight(NULL, 1), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_consumer_options_set_buffer_depth(NULL, 1), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_consumer_options_set_tags(NULL, NULL, 0), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_consumer_options_set_ack_lease_ms(NULL, 1), LIMINAL_NULL_ARGUMENT);
}

static void test_dispatch_options(void) {
    CHECK_STATUS(liminal_dispatch_options_new(NULL), LIMINAL_NULL_ARGUMENT);
    liminal_dispatch_options_free(NULL);
    CHECK_STATUS(liminal_dispatch_options_set_deadline_ms(NULL, 1), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_dispatch_options_set_timeout_ms(NULL, 1), LIMINAL_NULL_ARGUMENT);
    liminal_dispatch_options *options = NULL;
    CHECK_OK(liminal_dispatch_options_new(&options));
    CHECK_OK(liminal_dispatch_options_set_deadline_ms(options, 0)); /* 0: the group's */
    CHECK_OK(liminal_dispatch_options_set_timeout_ms(options, 0));  /* 0: none */
    liminal_dispatch_options_free(options);
}

int main(void) {
    test_status_functions_are_total();
    test_runtime_options();
    liminal_runtime *runtime = new_runtime();
    test_runtime(runtime);
    test_message();
    test_routing(runtime);
    test_consumer_options();
    test_dispatch_options();

    liminal_routing *routing = NULL;
    CHECK_OK(liminal_routing_builtin(LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, NULL, &routing));
    test_group_options(runtime, routing);

    /* group */
    liminal_group *group = NULL;
    CHECK_STATUS(liminal_group_new(NULL, routing, NULL, &group), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_new(runtime, NULL, NULL, &group), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_new(runtime, routing, NULL, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK(group == NULL);
    CHECK_OK(liminal_group_new(runtime, routing, NULL, &group));
    CHECK_STATUS(liminal_group_deploy(NULL, routing), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_deploy(group, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK(liminal_group_routing_hash(group) == liminal_routing_hash(routing));
    size_t count = 99;
    CHECK_STATUS(liminal_group_consumer_count(NULL, &count), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_consumer_count(group, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_waiting(NULL, &count), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_waiting(group, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_in_flight(NULL, &count), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_in_flight(group, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK(count == 99);
    liminal_consumer *found = NULL;
    CHECK_STATUS(liminal_group_consumer(NULL, "a", &found), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_consumer(group, NULL, &found), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_consumer(group, BAD_UTF8, &found), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_group_consumer(group, "a", NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_consumer(group, "nobody", &found), LIMINAL_UNKNOWN_CONSUMER);
    CHECK(found == NULL);
    liminal_snapshot *snapshot = NULL;
    CHECK_STATUS(liminal_group_snapshot(NULL, &snapshot), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_snapshot(group, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK(liminal_snapshot_count(NULL) == 0);
    liminal_consumer_view view;
    CHECK_STATUS(liminal_snapshot_get(NULL, 0, &view), LIMINAL_NULL_ARGUMENT);
    liminal_snapshot_free(NULL);
    size_t left = 99;
    CHECK_STATUS(liminal_group_drain(NULL, 0, &left), LIMINAL_NULL_ARGUMENT);
    CHECK(left == 99);
    CHECK(liminal_group_routing_hash(NULL) == 0);
    int before = frees;
    liminal_dead_letter_callback dl = {never_dead_letter, NULL, count_free};
    CHECK_STATUS(liminal_group_set_dead_letter(NULL, dl), LIMINAL_NULL_ARGUMENT);
    CHECK(frees == before + 1);
    liminal_group_free(NULL);

    /* consumer options: failed setters keep the earlier values */
    liminal_consumer_options *options = NULL;
    CHECK_OK(liminal_consumer_options_new(&options));
    CHECK_OK(liminal_consumer_options_set_max_in_flight(options, 3));
    CHECK_INVALID(liminal_consumer_options_set_max_in_flight(options, 0), "max_in_flight");
    CHECK_OK(liminal_consumer_options_set_buffer_depth(options, 7));
    const char *tags[] = {"x"};
    CHECK_OK(liminal_consumer_options_set_tags(options, tags, 1));
    const char *bad_tags[] = {"ok", BAD_UTF8};
    const char *empty_tags[] = {"ok", ""};
    CHECK_STATUS(liminal_consumer_options_set_tags(options, NULL, 2), LIMINAL_NULL_ARGUMENT);
    CHECK_INVALID(liminal_consumer_options_set_tags(options, bad_tags, 2), "tags");
    CHECK_INVALID(liminal_consumer_options_set_tags(options, empty_tags, 2), "tags");
    CHECK_OK(liminal_consumer_options_set_ack_lease_ms(options, 0));

    /* consumer registration */
    liminal_delivery_callback d = {never_delivered, NULL, count_free};
    liminal_crash_callback c = {never_crashed, NULL, count_free};
    liminal_consumer *consumer = NULL;
    before = frees;
    CHECK_STATUS(liminal_consumer_register(NULL, "a", d, c, options, &consumer), LIMINAL_NULL_ARGUMENT);
    CHECK(frees == before + 2); /* both callbacks consumed */
    CHECK_STATUS(liminal_consumer_register(group, NULL, d, c, options, &consumer), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_consumer_register(group, "", d, c, options, &consumer), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_consumer_register(group, BAD_UTF8, d, c, options, &consumer), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_consumer_register(group, "a", d, c, options, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK(frees == before + 10);
    CHECK(consumer == NULL);
    CHECK_OK(liminal_group_consumer_count(group, &count));
    CHECK(count == 0); /* nothing registered */
    liminal_delivery_callback acking = {ack, NULL, count_free};
    CHECK_OK(liminal_consumer_register(group, "a", acking, no_crash(), options, &consumer));
    liminal_consumer_options_free(options);
    liminal_consumer *dup = NULL;
    before = frees;
    CHECK_STATUS(liminal_consumer_register(group, "a", d, c, NULL, &dup), LIMINAL_DUPLICATE_CONSUMER);
    CHECK(frees == before + 2);
    CHECK(dup == NULL);
    CHECK_OK(liminal_group_consumer_count(group, &count));
    CHECK(count == 1);

    CHECK_STATUS(liminal_consumer_crash(NULL, "x"), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_consumer_crash(consumer, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_consumer_crash(consumer, BAD_UTF8), LIMINAL_INVALID_ARGUMENT);
    CHECK(liminal_consumer_is_alive(consumer));
    CHECK_STATUS(liminal_consumer_set_tags(NULL, NULL, 0), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_consumer_set_tags(consumer, NULL, 1), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_consumer_set_tags(consumer, bad_tags, 2), LIMINAL_INVALID_ARGUMENT);
    /* BUG check: the header says tags are non-empty strings. */
    liminal_status empty_tag_status = liminal_consumer_set_tags(consumer, empty_tags, 2);
    CHECK_STATUS(liminal_consumer_set_buffer_depth(NULL, 1), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_consumer_set_max_in_flight(NULL, 1), LIMINAL_NULL_ARGUMENT);
    CHECK_INVALID(liminal_consumer_set_max_in_flight(consumer, 0), "max_in_flight");
    uint32_t in_flight = 99;
    CHECK_STATUS(liminal_consumer_in_flight(NULL, &in_flight), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_consumer_in_flight(consumer, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK(in_flight == 99);
    CHECK_STATUS(liminal_consumer_leave(NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_consumer_crash_at_next_delivery(NULL), LIMINAL_NULL_ARGUMENT);
    liminal_delivery *delivery = NULL;
    CHECK_STATUS(liminal_consumer_next_delivery(NULL, 0, &delivery), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_consumer_next_delivery(consumer, 0, &delivery), LIMINAL_INVALID_ARGUMENT); /* push mode */
    CHECK_STATUS(liminal_consumer_next_delivery(consumer, 0, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK(delivery == NULL);
    CHECK(liminal_consumer_id(NULL) == NULL);
    CHECK(strcmp(liminal_consumer_id(consumer), "a") == 0);
    CHECK(!liminal_consumer_is_alive(NULL));
    CHECK(!liminal_consumer_is_paused(NULL));
    liminal_consumer_free(NULL);

    /* Nothing changed: max in flight 3, buffer depth 7, tags ["x"]. */
    CHECK_OK(liminal_group_snapshot(group, &snapshot));
    CHECK(liminal_snapshot_count(snapshot) == 1);
    CHECK_STATUS(liminal_snapshot_get(snapshot, 0, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_snapshot_get(snapshot, 1, &view), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_snapshot_get(snapshot, (size_t)-1, &view), LIMINAL_INVALID_ARGUMENT);
    CHECK_OK(liminal_snapshot_get(snapshot, 0, &view));
    CHECK(strcmp(view.id, "a") == 0 && view.max_in_flight == 3 && view.buffer_depth == 7);
    /* BUG check: the header requires non-empty tags for
     * liminal_consumer_set_tags (LIMINAL_INVALID_ARGUMENT), as
     * liminal_consumer_options_set_tags enforces; bad input changes nothing. */
    BUG_IF(empty_tag_status != LIMINAL_INVALID_ARGUMENT,
           "liminal_consumer_set_tags(consumer, {\"ok\", \"\"}, 2) returned %s (tags now: %zu), "
           "expected LIMINAL_INVALID_ARGUMENT: an empty tag is accepted",
           liminal_status_name(empty_tag_status), view.tag_count);
    if (empty_tag_status == LIMINAL_INVALID_ARGUMENT)
        CHECK(view.tag_count == 1 && strcmp(view.tags[0], "x") == 0);
    liminal_snapshot_free(snapshot);

    /* dispatch */
    liminal_message *message = new_message(1);
    liminal_metrics metrics;
    CHECK_OK(liminal_runtime_metrics(runtime, &metrics));
    uint64_t dispatched = metrics.dispatched;
    liminal_outcome *outcome = NULL;
    CHECK_STATUS(liminal_group_dispatch(NULL, message, NULL, &outcome), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_dispatch(group, NULL, NULL, &outcome), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_dispatch(group, message, NULL, NULL), LIMINAL_NULL_ARGUMENT);
    liminal_completion_callback no_completion = {NULL, NULL, count_free};
    before = frees;
    CHECK_STATUS(liminal_group_dispatch_async(group, message, NULL, no_completion, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK(frees == before + 1);
    liminal_completion_callback completion = {never_completed, NULL, count_free};
    CHECK_STATUS(liminal_group_dispatch_async(NULL, message, NULL, completion, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_dispatch_async(group, NULL, NULL, completion, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK(frees == before + 3);
    CHECK(outcome == NULL);
    CHECK_OK(liminal_runtime_metrics(runtime, &metrics));
    CHECK(metrics.dispatched == dispatched); /* nothing was dispatched */

    /* outcome accessors */
    CHECK(liminal_outcome_status(NULL) == LIMINAL_NULL_ARGUMENT);
    CHECK(liminal_outcome_dispatch_id(NULL) == 0 && liminal_outcome_attempts(NULL) == 0);
    CHECK(liminal_outcome_delivered_to(NULL) == NULL);
    CHECK(liminal_outcome_rerouted_count(NULL) == 0 && liminal_outcome_rerouted_from(NULL, 0) == NULL);
    CHECK(liminal_outcome_crashed_handling(NULL) == 0 && liminal_outcome_crashed_holding(NULL) == 0);
    CHECK(!liminal_outcome_is_poison(NULL));
    CHECK(liminal_outcome_released(NULL) == 0 && liminal_outcome_lease_expired(NULL) == 0);
    CHECK(liminal_outcome_waited_ns(NULL) == 0);
    uint64_t ns = 7;
    CHECK_STATUS(liminal_outcome_reroute_ns(NULL, 0, &ns), LIMINAL_NULL_ARGUMENT);
    liminal_outcome_free(NULL);
    CHECK_OK(liminal_group_dispatch(group, message, NULL, &outcome));
    CHECK_STATUS(liminal_outcome_reroute_ns(outcome, 0, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_outcome_reroute_ns(outcome, 0, &ns), LIMINAL_INVALID_ARGUMENT); /* no re-route */
    CHECK(ns == 7);
    CHECK(liminal_outcome_rerouted_from(outcome, 0) == NULL);
    liminal_outcome_free(outcome);

    /* delivery accessors and answers, on NULL and on a real (pulled) delivery */
    CHECK_STATUS(liminal_delivery_ack(NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_delivery_crash(NULL, "x"), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_delivery_release(NULL, 0), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_delivery_extend_lease(NULL, 10), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_delivery_keep(NULL, &delivery), LIMINAL_NULL_ARGUMENT);
    CHECK(liminal_delivery_message(NULL) == NULL);
    CHECK(liminal_delivery_dispatch_id(NULL) == 0 && liminal_delivery_id(NULL) == 0);
    CHECK(liminal_delivery_attempt(NULL) == 0 && !liminal_delivery_redelivered(NULL));
    CHECK(liminal_delivery_crashed_handling(NULL) == 0 && liminal_delivery_crashed_holding(NULL) == 0);
    CHECK(liminal_delivery_consumer_id(NULL) == NULL);
    liminal_delivery_free(NULL);

    liminal_consumer *puller = NULL;
    CHECK_OK(liminal_consumer_leave(consumer)); /* the pull consumer takes the next message */
    CHECK_OK(liminal_consumer_register(group, "p", no_delivery(), no_crash(), NULL, &puller));
    completion_box box;
    latch_init(&box.done);
    liminal_completion_callback pulled = {on_complete, &box, NULL};
    CHECK_OK(liminal_group_dispatch_async(group, message, NULL, pulled, NULL));
    CHECK_OK(liminal_consumer_next_delivery(puller, 30000, &delivery));
    liminal_delivery *copy = NULL;
    CHECK_STATUS(liminal_delivery_keep(delivery, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_delivery_crash(delivery, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_delivery_crash(delivery, BAD_UTF8), LIMINAL_INVALID_ARGUMENT);
    CHECK_INVALID(liminal_delivery_extend_lease(delivery, 0), "lease_ms");
    CHECK(liminal_consumer_is_alive(puller)); /* the bad crash calls did nothing */
    CHECK_OK(liminal_delivery_keep(delivery, &copy));
    CHECK(liminal_delivery_id(copy) == liminal_delivery_id(delivery));
    CHECK_OK(liminal_delivery_ack(copy));
    CHECK_STATUS(liminal_delivery_ack(delivery), LIMINAL_STALE_DELIVERY);
    latch_wait(&box.done, 1);
    CHECK(box.status == LIMINAL_OK && strcmp(box.delivered_to, "p") == 0);
    liminal_delivery_free(copy);
    liminal_delivery_free(delivery);
    latch_destroy(&box.done);

    /* unknown consumer selected, and a consumer that is gone */
    liminal_route_callback bad_id = {route_bad_id, NULL, NULL};
    liminal_routing *bad_routing = NULL;
    CHECK_OK(liminal_routing_new(runtime, bad_id, (const uint8_t *)"bad", 3, "bad", &bad_routing));
    CHECK_OK(liminal_group_deploy(group, bad_routing));
    CHECK_STATUS(liminal_group_dispatch(group, message, NULL, &outcome), LIMINAL_UNKNOWN_CONSUMER_SELECTED);
    CHECK(strstr(liminal_last_error(), "nobody") != NULL);
    CHECK(!liminal_consumer_is_alive(consumer));
    CHECK_STATUS(liminal_consumer_leave(consumer), LIMINAL_CONSUMER_GONE);
    CHECK_STATUS(liminal_consumer_crash(consumer, "x"), LIMINAL_CONSUMER_GONE);
    CHECK_STATUS(liminal_consumer_crash_at_next_delivery(consumer), LIMINAL_CONSUMER_GONE);
    CHECK_STATUS(liminal_consumer_set_buffer_depth(consumer, 1), LIMINAL_CONSUMER_GONE);
    CHECK_STATUS(liminal_consumer_set_tags(consumer, tags, 1), LIMINAL_CONSUMER_GONE);
    CHECK_STATUS(liminal_consumer_set_max_in_flight(consumer, 2), LIMINAL_CONSUMER_GONE);
    CHECK_STATUS(liminal_group_consumer(group, "a", &found), LIMINAL_UNKNOWN_CONSUMER);
    CHECK(found == NULL);

    liminal_consumer_free(consumer);
    liminal_consumer_free(puller);
    liminal_routing_free(bad_routing);
    liminal_routing_free(routing);
    liminal_group_free(group);
    liminal_message_free(message);
    CHECK_OK(liminal_runtime_free(runtime));
    return bugs_exit("test_bad_input");
}
