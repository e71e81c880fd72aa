/* Bad input for every function returns its documented status and changes
 * nothing: NULL pointers, invalid UTF-8, empty ids, zero capacity, duplicate
 * and unknown consumers, out-of-range values. */
#include "check.h"

static const char BAD_UTF8[] = {(char)0xff, (char)0xfe, 0};

static liminal_verdict ack(void *user, liminal_delivery *delivery) {
    (void)user; (void)delivery;
    return LIMINAL_VERDICT_ACK;
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

static int frees = 0;
static void count_free(void *user) { (void)user; frees += 1; }

static void on_complete(void *user, liminal_status status, const liminal_outcome *outcome) {
    (void)user; (void)status; (void)outcome;
}

int main(void) {
    /* runtime */
    CHECK_STATUS(liminal_runtime_new(0, 0, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK(strstr(liminal_last_error(), "out") != NULL);
    liminal_runtime *runtime = NULL;
    CHECK_STATUS(liminal_runtime_new(65, 0, &runtime), LIMINAL_INVALID_ARGUMENT);
    CHECK(runtime == NULL);
    CHECK_OK(liminal_runtime_new(1, 2000, &runtime));
    CHECK_STATUS(liminal_runtime_shutdown(NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_OK(liminal_runtime_free(NULL));
    CHECK_STATUS(liminal_runtime_metrics(NULL, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_runtime_metrics(runtime, NULL), LIMINAL_NULL_ARGUMENT);

    /* message */
    CHECK_STATUS(liminal_message_new(NULL), LIMINAL_NULL_ARGUMENT);
    liminal_message *message = NULL;
    CHECK_OK(liminal_message_new(&message));
    CHECK_STATUS(liminal_message_set_int(NULL, "n", 1), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_set_int(message, NULL, 1), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_set_int(message, "", 1), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_message_set_int(message, BAD_UTF8, 1), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_message_set_text(message, "t", NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_set_text(message, "t", BAD_UTF8), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_message_set_double(NULL, "d", 1.0), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_set_bool(NULL, "b", true), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_set_null(NULL, "z"), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_set_payload(message, NULL, 3), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_set_payload(NULL, NULL, 0), LIMINAL_NULL_ARGUMENT);
    size_t count = 99;
    CHECK_OK(liminal_message_field_count(message, &count));
    CHECK(count == 0); /* nothing changed */
    CHECK_STATUS(liminal_message_field_count(NULL, &count), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_field_count(message, NULL), LIMINAL_NULL_ARGUMENT);
    int64_t n;
    CHECK_STATUS(liminal_message_get_int(message, "n", &n), LIMINAL_NOT_FOUND);
    CHECK_STATUS(liminal_message_get_int(message, "n", NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_get_double(NULL, "n", NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_get_bool(message, NULL, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_get_text(message, "t", NULL, 4, NULL), LIMINAL_NOT_FOUND);
    CHECK_OK(liminal_message_set_text(message, "t", "text"));
    CHECK_STATUS(liminal_message_get_text(message, "t", NULL, 4, NULL), LIMINAL_NULL_ARGUMENT);
    size_t needed = 0;
    CHECK_STATUS(liminal_message_get_text(message, "t", NULL, 0, &needed), LIMINAL_BUFFER_TOO_SMALL);
    CHECK(needed == 4);
    liminal_field_type type;
    CHECK_STATUS(liminal_message_field_type(message, "missing", &type), LIMINAL_NOT_FOUND);
    CHECK_STATUS(liminal_message_payload(message, NULL, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_message_fields_json(NULL, NULL, 0, NULL), LIMINAL_NULL_ARGUMENT);
    liminal_message_free(NULL);

    /* routing */
    liminal_routing *routing = NULL;
    CHECK_STATUS(liminal_routing_builtin(LIMINAL_BUILTIN_LEAST_LOADED, NULL, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_routing_builtin(42, NULL, &routing), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_routing_builtin(LIMINAL_BUILTIN_AFFINITY, NULL, &routing), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_routing_builtin(LIMINAL_BUILTIN_STICKY_KEY, "", &routing), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_routing_builtin(LIMINAL_BUILTIN_STICKY_KEY, BAD_UTF8, &routing), LIMINAL_INVALID_ARGUMENT);
    CHECK(routing == NULL);
    liminal_route_callback no_fn = {NULL, NULL, count_free};
    CHECK_STATUS(liminal_routing_new(runtime, no_fn, (const uint8_t *)"x", 1, NULL, &routing), LIMINAL_NULL_ARGUMENT);
    CHECK(frees == 1); /* consumed even on failure */
    liminal_route_callback none_cb = {route_none, NULL, count_free};
    CHECK_STATUS(liminal_routing_new(NULL, none_cb, (const uint8_t *)"x", 1, NULL, &routing), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_routing_new(runtime, none_cb, (const uint8_t *)"x", 0, NULL, &routing), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_routing_new(runtime, none_cb, NULL, 1, NULL, &routing), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_routing_new(runtime, none_cb, (const uint8_t *)"x", 1, BAD_UTF8, &routing), LIMINAL_INVALID_ARGUMENT);
    CHECK(frees == 5);
    CHECK(liminal_routing_hash(NULL) == 0);
    liminal_routing_free(NULL);
    CHECK_OK(liminal_routing_builtin(LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, NULL, &routing));

    /* group */
    liminal_group *group = NULL;
    CHECK_STATUS(liminal_group_new(NULL, routing, 0, 0, &group), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_new(runtime, NULL, 0, 0, &group), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_new(runtime, routing, 0, 0, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK(group == NULL);
    CHECK_OK(liminal_group_new(runtime, routing, 0, 0, &group));
    CHECK_STATUS(liminal_group_deploy(NULL, routing), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_deploy(group, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_consumer_count(NULL, &count), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_consumer_count(group, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_snapshot(group, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK(liminal_snapshot_count(NULL) == 0);
    CHECK_STATUS(liminal_snapshot_get(NULL, 0, NULL), LIMINAL_NULL_ARGUMENT);
    liminal_snapshot_free(NULL);
    CHECK(liminal_group_routing_hash(NULL) == 0);
    liminal_dead_letter_callback dl = {NULL, NULL, count_free};
    CHECK_STATUS(liminal_group_set_dead_letter(NULL, dl), LIMINAL_NULL_ARGUMENT);
    CHECK(frees == 6);
    liminal_group_free(NULL);

    /* consumer */
    liminal_delivery_callback d = {ack, NULL, count_free};
    liminal_crash_callback c = {NULL, NULL, count_free};
    liminal_consumer *consumer = NULL;
    CHECK_STATUS(liminal_consumer_register(NULL, "a", 1, 0, NULL, 0, d, c, &consumer), LIMINAL_NULL_ARGUMENT);
    CHECK(frees == 8); /* both callbacks consumed */
    CHECK_STATUS(liminal_consumer_register(group, NULL, 1, 0, NULL, 0, d, c, &consumer), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_consumer_register(group, "", 1, 0, NULL, 0, d, c, &consumer), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_consumer_register(group, BAD_UTF8, 1, 0, NULL, 0, d, c, &consumer), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_consumer_register(group, "a", 0, 0, NULL, 0, d, c, &consumer), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_consumer_register(group, "a", 1, 0, NULL, 2, d, c, &consumer), LIMINAL_NULL_ARGUMENT);
    const char *bad_tags[] = {"ok", BAD_UTF8};
    CHECK_STATUS(liminal_consumer_register(group, "a", 1, 0, bad_tags, 2, d, c, &consumer), LIMINAL_INVALID_ARGUMENT);
    const char *empty_tags[] = {""};
    CHECK_STATUS(liminal_consumer_register(group, "a", 1, 0, empty_tags, 1, d, c, &consumer), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_consumer_register(group, "a", 1, 0, NULL, 0, d, c, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK(consumer == NULL);
    CHECK_OK(liminal_group_consumer_count(group, &count));
    CHECK(count == 0); /* nothing registered */
    CHECK_OK(liminal_consumer_register(group, "a", 1, 0, NULL, 0, d, c, &consumer));
    liminal_consumer *dup = NULL;
    CHECK_STATUS(liminal_consumer_register(group, "a", 1, 0, NULL, 0, d, c, &dup), LIMINAL_DUPLICATE_CONSUMER);
    CHECK(dup == NULL);
    CHECK_STATUS(liminal_consumer_crash(NULL, "x"), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_consumer_crash(consumer, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_consumer_crash(consumer, BAD_UTF8), LIMINAL_INVALID_ARGUMENT);
    CHECK(liminal_consumer_is_alive(consumer));
    CHECK_STATUS(liminal_consumer_set_tags(consumer, bad_tags, 2), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_consumer_set_tags(NULL, NULL, 0), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_consumer_set_buffer_depth(NULL, 1), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_consumer_in_flight(consumer, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_consumer_leave(NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_consumer_crash_at_next_delivery(NULL), LIMINAL_NULL_ARGUMENT);
    liminal_delivery *delivery = NULL;
    CHECK_STATUS(liminal_consumer_next_delivery(consumer, 0, &delivery), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_consumer_next_delivery(consumer, 0, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK(liminal_consumer_id(NULL) == NULL);
    CHECK(strcmp(liminal_consumer_id(consumer), "a") == 0);
    CHECK(!liminal_consumer_is_alive(NULL));
    liminal_consumer_free(NULL);

    /* delivery */
    CHECK_STATUS(liminal_delivery_ack(NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_delivery_crash(NULL, "x"), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_delivery_keep(NULL, &delivery), LIMINAL_NULL_ARGUMENT);
    CHECK(liminal_delivery_message(NULL) == NULL);
    CHECK(liminal_delivery_dispatch_id(NULL) == 0 && liminal_delivery_id(NULL) == 0);
    CHECK(liminal_delivery_attempt(NULL) == 0 && !liminal_delivery_redelivered(NULL));
    CHECK(liminal_delivery_consumer_id(NULL) == NULL);
    liminal_delivery_free(NULL);

    /* dispatch */
    liminal_outcome *outcome = NULL;
    CHECK_STATUS(liminal_group_dispatch(NULL, message, &outcome), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_dispatch(group, NULL, &outcome), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_dispatch(group, message, NULL), LIMINAL_NULL_ARGUMENT);
    liminal_completion_callback no_completion = {NULL, NULL, count_free};
    int before = frees;
    CHECK_STATUS(liminal_group_dispatch_async(group, message, no_completion, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK(frees == before + 1);
    liminal_completion_callback completion = {on_complete, NULL, count_free};
    CHECK_STATUS(liminal_group_dispatch_async(NULL, message, completion, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK(frees == before + 2);
    CHECK(outcome == NULL);
    CHECK(liminal_outcome_status(NULL) == LIMINAL_NULL_ARGUMENT);
    CHECK(liminal_outcome_delivered_to(NULL) == NULL);
    CHECK(liminal_outcome_rerouted_count(NULL) == 0 && liminal_outcome_rerouted_from(NULL, 0) == NULL);
    uint64_t ns;
    CHECK_STATUS(liminal_outcome_reroute_ns(NULL, 0, &ns), LIMINAL_NULL_ARGUMENT);
    liminal_outcome_free(NULL);

    /* unknown consumer selected, and an unknown (gone) consumer */
    liminal_route_callback bad_id = {route_bad_id, NULL, NULL};
    liminal_routing *bad_routing = NULL;
    CHECK_OK(liminal_routing_new(runtime, bad_id, (const uint8_t *)"bad", 3, "bad", &bad_routing));
    CHECK_OK(liminal_group_deploy(group, bad_routing));
    CHECK_STATUS(liminal_group_dispatch(group, message, &outcome), LIMINAL_UNKNOWN_CONSUMER_SELECTED);
    CHECK(strstr(liminal_last_error(), "nobody") != NULL);
    CHECK_OK(liminal_consumer_leave(consumer));
    CHECK_STATUS(liminal_consumer_leave(consumer), LIMINAL_UNKNOWN_CONSUMER);
    CHECK_STATUS(liminal_consumer_crash(consumer, "x"), LIMINAL_UNKNOWN_CONSUMER);
    CHECK_STATUS(liminal_consumer_crash_at_next_delivery(consumer), LIMINAL_UNKNOWN_CONSUMER);

    liminal_consumer_free(consumer);
    liminal_routing_free(bad_routing);
    liminal_routing_free(routing);
    liminal_group_free(group);
    liminal_message_free(message);
    CHECK_OK(liminal_runtime_free(runtime));
    printf("test_bad_input: all passed\n");
    return 0;
}
