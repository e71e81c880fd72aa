/* Ordered keys from C: a key waits for its head while other keys pass; a
 * released or crashed head goes back to the front of its key; the key is
 * visible on the message; the listing of waiting keys and the statistics;
 * bad input (empty, over-long and non-UTF-8 keys, key fields of the wrong
 * type, a key field with auto-acknowledgement, listing bounds), each a
 * clear status with nothing dispatched. Synchronised on latches. */
#include "check.h"

typedef struct ended {
    latch done;
    latch freed;
    atomic_int completions;
} ended;

static void on_done(void *user, liminal_status status, const liminal_outcome *outcome) {
    (void)status; (void)outcome;
    ended *e = user;
    atomic_fetch_add(&e->completions, 1);
    latch_add(&e->done);
}

static void on_freed(void *user) { latch_add(&((ended *)user)->freed); }

static liminal_message *event(const char *account, int64_t n) {
    liminal_message *message = new_message(n);
    if (account != NULL) CHECK_OK(liminal_message_set_text(message, "account", account));
    return message;
}

static liminal_status send_event(liminal_group *group, ended *e, liminal_message *message,
                                 const liminal_dispatch_options *options) {
    liminal_completion_callback done = {on_done, e, on_freed};
    liminal_status status = liminal_group_dispatch_async(group, message, options, done, NULL);
    liminal_message_free(message);
    return status;
}

static liminal_group *keyed_group(liminal_runtime *runtime) {
    liminal_group_options *options = NULL;
    CHECK_OK(liminal_group_options_new(&options));
    CHECK_OK(liminal_group_options_set_key_field(options, "account"));
    CHECK_OK(liminal_group_options_set_name(options, "orders"));
    /* Crashes from the test may count as "died handling it". */
    CHECK_OK(liminal_group_options_set_max_attempts(options, 10));
    liminal_group *group = new_group_with(runtime, LIMINAL_BUILTIN_LEAST_LOADED, options);
    liminal_group_options_free(options);
    return group;
}

static void check_key(liminal_delivery *delivery, const char *account, int64_t n) {
    const liminal_message *message = liminal_delivery_message(delivery);
    char key[LIMINAL_ORDERING_KEY_MAX + 1];
    size_t len = 0;
    if (account == NULL) {
        CHECK_STATUS(liminal_message_ordering_key(message, key, sizeof key, &len),
                     LIMINAL_NOT_FOUND);
    } else {
        CHECK_OK(liminal_message_ordering_key(message, key, sizeof key, &len));
        CHECK(strcmp(key, account) == 0 && len == strlen(account));
    }
    CHECK(message_n(message) == n);
}

static void test_order(void) {
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = keyed_group(runtime);
    keeper first;
    keeper_init(&first);
    liminal_consumer *c1 = register_consumer(group, "c1", 8, keeping(&first), no_crash());
    ended e;
    memset(&e, 0, sizeof e);
    latch_init(&e.done);
    latch_init(&e.freed);
    CHECK_OK(send_event(group, &e, event("a", 1), NULL));
    CHECK_OK(send_event(group, &e, event("a", 2), NULL));
    CHECK_OK(send_event(group, &e, event("a", 3), NULL));
    CHECK_OK(send_event(group, &e, event("b", 1), NULL));
    CHECK_OK(send_event(group, &e, event(NULL, 9), NULL));
    latch_wait(&first.kept_latch, 3);
    check_key(keeper_get(&first, 0), "a", 1);
    check_key(keeper_get(&first, 1), "b", 1);
    check_key(keeper_get(&first, 2), NULL, 9);
    size_t waiting = 0;
    CHECK_OK(liminal_group_waiting(group, &waiting));
    CHECK(waiting == 2);

    liminal_key_list *list = NULL;
    CHECK_OK(liminal_group_waiting_keys(group, 10, &list));
    CHECK(liminal_key_list_count(list) == 1 && liminal_key_list_total(list) == 1);
    const char *key = NULL;
    size_t depth = 0;
    uint64_t age = 0;
    CHECK_OK(liminal_key_list_get(list, 0, &key, &depth, &age));
    CHECK(strcmp(key, "a") == 0 && depth == 3);
    CHECK_OK(liminal_key_list_get(list, 0, NULL, NULL, NULL));
    CHECK_STATUS(liminal_key_list_get(list, 1, &key, &depth, &age), LIMINAL_INVALID_ARGUMENT);
    liminal_key_list_free(list);

    char json[8192];
    CHECK_OK(liminal_runtime_stats_json(runtime, json, sizeof json, NULL));
    CHECK(strstr(json, "\"liminal.ordering.keys_waiting\":1") != NULL);
    CHECK(strstr(json, "\"liminal.ordering.longest_key_queue\":3") != NULL);

    /* The head is acknowledged: a2 is next, to the only consumer. */
    CHECK_OK(liminal_delivery_ack(keeper_get(&first, 0)));
    latch_wait(&first.kept_latch, 4);
    check_key(keeper_get(&first, 3), "a", 2);
    /* Released: back to the front of its key, to another consumer. */
    keeper second;
    keeper_init(&second);
    liminal_consumer *c2 = register_consumer(group, "c2", 8, keeping(&second), no_crash());
    CHECK_OK(liminal_delivery_release(keeper_get(&first, 3), 0));
    latch_wait(&second.kept_latch, 1);
    check_key(keeper_get(&second, 0), "a", 2);
    /* Its holder crashes: back again, never a3. */
    keeper third;
    keeper_init(&third);
    liminal_consumer *c3 = register_consumer(group, "c3", 8, keeping(&third), no_crash());
    CHECK_OK(liminal_consumer_crash(c2, "test"));
    latch_wait(&third.kept_latch, 1);
    check_key(keeper_get(&third, 0), "a", 2);
    CHECK_OK(liminal_group_waiting(group, &waiting));
    CHECK(waiting == 1);
    CHECK_OK(liminal_delivery_ack(keeper_get(&third, 0)));
    /* a3 goes to the least loaded: c3 (c1 holds b1 and 9). */
    latch_wait(&third.kept_latch, 2);
    check_key(keeper_get(&third, 1), "a", 3);
    CHECK_OK(liminal_delivery_ack(keeper_get(&third, 1)));
    CHECK_OK(liminal_delivery_ack(keeper_get(&first, 1)));
    CHECK_OK(liminal_delivery_ack(keeper_get(&first, 2)));
    latch_wait(&e.done, 5);
    CHECK(atomic_load(&e.completions) == 5);

    CHECK_OK(liminal_group_waiting_keys(group, 1, &list));
    CHECK(liminal_key_list_count(list) == 0 && liminal_key_list_total(list) == 0);
    liminal_key_list_free(list);

    liminal_consumer_free(c1);
    liminal_consumer_free(c2);
    liminal_consumer_free(c3);
    liminal_group_free(group);
    liminal_runtime_free(runtime);
    latch_wait(&e.freed, 5);
    keeper_destroy(&first);
    keeper_destroy(&second);
    keeper_destroy(&third);
    latch_destroy(&e.done);
    latch_destroy(&e.freed);
}

static void refused(liminal_group *group, liminal_message *message,
                    const liminal_dispatch_options *options, const char *detail) {
    ended e;
    memset(&e, 0, sizeof e);
    latch_init(&e.done);
    latch_init(&e.freed);
    CHECK_STATUS(send_event(group, &e, message, options), LIMINAL_INVALID_ARGUMENT);
    CHECK(strstr(liminal_last_error(), detail) != NULL);
    /* Nothing half-dispatched: the callback was released, never called. */
    CHECK(latch_count(&e.freed) == 1 && atomic_load(&e.completions) == 0);
    size_t count = 1;
    CHECK_OK(liminal_group_in_flight(group, &count));
    CHECK(count == 0);
    CHECK_OK(liminal_group_waiting(group, &count));
    CHECK(count == 0);
    latch_destroy(&e.done);
    latch_destroy(&e.freed);
}

static void test_bad_input(void) {
    char long_key[LIMINAL_ORDERING_KEY_MAX + 2];
    memset(long_key, 'k', sizeof long_key);
    long_key[LIMINAL_ORDERING_KEY_MAX + 1] = '\0';

    liminal_group_options *options = NULL;
    CHECK_OK(liminal_group_options_new(&options));
    CHECK_STATUS(liminal_group_options_set_key_field(NULL, "account"), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_options_set_key_field(options, ""), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_group_options_set_key_field(options, "\xff"), LIMINAL_INVALID_ARGUMENT);
    CHECK_OK(liminal_group_options_set_key_field(options, NULL));
    /* Order needs explicit acknowledgements. */
    CHECK_OK(liminal_group_options_set_key_field(options, "account"));
    CHECK_OK(liminal_group_options_set_auto_ack_ms(options, 5));
    liminal_runtime *runtime = new_runtime();
    liminal_routing *routing = NULL;
    CHECK_OK(liminal_routing_builtin(LIMINAL_BUILTIN_LEAST_LOADED, NULL, &routing));
    liminal_group *group = NULL;
    CHECK_STATUS(liminal_group_new(runtime, routing, options, &group), LIMINAL_INVALID_ARGUMENT);
    CHECK(group == NULL);
    liminal_routing_free(routing);
    liminal_group_options_free(options);

    liminal_dispatch_options *dispatch = NULL;
    CHECK_OK(liminal_dispatch_options_new(&dispatch));
    CHECK_STATUS(liminal_dispatch_options_set_key(NULL, "k"), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_dispatch_options_set_key(dispatch, ""), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_dispatch_options_set_key(dispatch, long_key), LIMINAL_INVALID_ARGUMENT);
    CHECK(strstr(liminal_last_error(), "limit") != NULL);
    CHECK_STATUS(liminal_dispatch_options_set_key(dispatch, "\xff"), LIMINAL_INVALID_ARGUMENT);
    long_key[LIMINAL_ORDERING_KEY_MAX] = '\0';
    CHECK_OK(liminal_dispatch_options_set_key(dispatch, long_key));
    CHECK_OK(liminal_dispatch_options_set_key(dispatch, NULL));

    group = keyed_group(runtime);
    liminal_message *message = new_message(1);
    CHECK_OK(liminal_message_set_double(message, "account", 1.5));
    refused(group, message, NULL, "double");
    message = new_message(2);
    CHECK_OK(liminal_message_set_bool(message, "account", true));
    refused(group, message, NULL, "boolean");
    message = new_message(3);
    CHECK_OK(liminal_message_set_null(message, "account"));
    refused(group, message, NULL, "null");
    message = new_message(4);
    CHECK_OK(liminal_message_set_text(message, "account", ""));
    refused(group, message, NULL, "empty");
    long_key[LIMINAL_ORDERING_KEY_MAX] = 'k';
    message = new_message(5);
    CHECK_OK(liminal_message_set_text(message, "account", long_key));
    refused(group, message, NULL, "limit");

    /* A key given with the dispatch to a group that auto-acknowledges. */
    CHECK_OK(liminal_group_options_new(&options));
    CHECK_OK(liminal_group_options_set_auto_ack_ms(options, 5));
    liminal_group *auto_ack = new_group_with(runtime, LIMINAL_BUILTIN_LEAST_LOADED, options);
    liminal_group_options_free(options);
    CHECK_OK(liminal_dispatch_options_set_key(dispatch, "k"));
    refused(auto_ack, new_message(6), dispatch, "acknowledg");
    liminal_group_free(auto_ack);
    liminal_dispatch_options_free(dispatch);

    /* The message's key: none before dispatch; a too-small buffer. */
    message = event("a", 7);
    char small[4];
    CHECK_STATUS(liminal_message_ordering_key(message, small, sizeof small, NULL),
                 LIMINAL_NOT_FOUND);
    CHECK_STATUS(liminal_message_ordering_key(NULL, small, sizeof small, NULL),
                 LIMINAL_NULL_ARGUMENT);
    liminal_message_free(message);

    /* Listing bounds. */
    liminal_key_list *list = NULL;
    CHECK_STATUS(liminal_group_waiting_keys(group, 0, &list), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_group_waiting_keys(group, LIMINAL_KEY_LIST_MAX + 1, &list),
                 LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_group_waiting_keys(group, 1, NULL), LIMINAL_NULL_ARGUMENT);
    CHECK_STATUS(liminal_group_waiting_keys(NULL, 1, &list), LIMINAL_NULL_ARGUMENT);
    CHECK(list == NULL);
    CHECK(liminal_key_list_count(NULL) == 0 && liminal_key_list_total(NULL) == 0);
    CHECK_STATUS(liminal_key_list_get(NULL, 0, NULL, NULL, NULL), LIMINAL_NULL_ARGUMENT);
    liminal_key_list_free(NULL);

    liminal_group_free(group);
    liminal_runtime_free(runtime);
}

int main(int argc, char **argv) {
    const char *only = argc > 1 ? argv[1] : NULL;
    if (!only || strstr("order", only)) test_order();
    if (!only || strstr("bad_input", only)) test_bad_input();
    printf("test_ordering: ok\n");
    return bugs_exit("test_ordering");
}
