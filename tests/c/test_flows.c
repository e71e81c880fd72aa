/* Every flow of the C ABI, observed from C: which consumer got the message,
 * that a crashed one was excluded and reported, that nothing was lost. */
#include "check.h"

#include <stdint.h>

typedef struct consumer_ctx {
    const char *id;
    liminal_verdict verdict;
    latch delivered;
    latch freed;
    char last_json[256];
    char crashed_id[64];
    char crash_reason[160];
    liminal_crash_kind crash_kind;
    bool crash_alive;
    latch crashed;
    latch crash_freed;
    liminal_consumer *self;
    liminal_runtime *runtime;
    liminal_group *group;
    liminal_status inner_status;
} consumer_ctx;

static void ctx_init(consumer_ctx *ctx, const char *id, liminal_verdict verdict) {
    memset(ctx, 0, sizeof *ctx);
    ctx->id = id;
    ctx->verdict = verdict;
    latch_init(&ctx->delivered);
    latch_init(&ctx->freed);
    latch_init(&ctx->crashed);
    latch_init(&ctx->crash_freed);
}

static void ctx_destroy(consumer_ctx *ctx) {
    latch_destroy(&ctx->delivered);
    latch_destroy(&ctx->freed);
    latch_destroy(&ctx->crashed);
    latch_destroy(&ctx->crash_freed);
}

static liminal_verdict on_delivery(void *user, liminal_delivery *delivery) {
    consumer_ctx *ctx = user;
    const liminal_message *message = liminal_delivery_message(delivery);
    size_t len = 0;
    liminal_message_fields_json(message, ctx->last_json, sizeof ctx->last_json, &len);
    CHECK(strcmp(liminal_delivery_consumer_id(delivery), ctx->id) == 0);
    latch_add(&ctx->delivered);
    return ctx->verdict;
}

static void on_crash(void *user, const char *consumer_id, liminal_crash_kind kind,
                     const char *reason, bool alive) {
    consumer_ctx *ctx = user;
    snprintf(ctx->crashed_id, sizeof ctx->crashed_id, "%s", consumer_id);
    snprintf(ctx->crash_reason, sizeof ctx->crash_reason, "%s", reason);
    ctx->crash_kind = kind;
    ctx->crash_alive = alive;
    latch_add(&ctx->crashed);
}

static void on_free(void *user) { latch_add(&((consumer_ctx *)user)->freed); }
static void on_crash_free(void *user) { latch_add(&((consumer_ctx *)user)->crash_freed); }

static liminal_consumer *add_with(liminal_group *group, consumer_ctx *ctx, uint32_t max_in_flight) {
    liminal_delivery_callback d = {on_delivery, ctx, on_free};
    liminal_crash_callback c = {on_crash, ctx, on_crash_free};
    return register_consumer(group, ctx->id, max_in_flight, d, c);
}

static liminal_consumer *add(liminal_group *group, consumer_ctx *ctx) {
    return add_with(group, ctx, 64);
}

static liminal_group *new_group(liminal_runtime *runtime, liminal_builtin kind,
                                uint32_t max_attempts) {
    liminal_group_options *options = NULL;
    if (max_attempts > 0) {
        CHECK_OK(liminal_group_options_new(&options));
        CHECK_OK(liminal_group_options_set_max_attempts(options, max_attempts));
    }
    liminal_group *group = new_group_with(runtime, kind, options);
    liminal_group_options_free(options);
    return group;
}

static void test_blocking_dispatch(void) {
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = new_group(runtime, LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, 0);
    consumer_ctx a, b;
    ctx_init(&a, "a", LIMINAL_VERDICT_ACK);
    ctx_init(&b, "b", LIMINAL_VERDICT_ACK);
    liminal_consumer *cb = add(group, &b);
    liminal_consumer *ca = add(group, &a);

    liminal_message *message = new_message(7);
    CHECK_OK(liminal_message_set_text(message, "tenant", "acme"));
    CHECK_OK(liminal_message_set_double(message, "weight", 0.0 / 0.0));
    CHECK_OK(liminal_message_set_bool(message, "urgent", true));
    CHECK_OK(liminal_message_set_null(message, "none"));
    CHECK_OK(liminal_message_set_payload(message, (const uint8_t *)"hello", 5));
    liminal_outcome *outcome = NULL;
    CHECK_OK(liminal_group_dispatch(group, message, NULL, &outcome));
    CHECK(strcmp(liminal_outcome_delivered_to(outcome), "a") == 0);
    CHECK(liminal_outcome_status(outcome) == LIMINAL_OK);
    CHECK(liminal_outcome_rerouted_count(outcome) == 0);
    CHECK(liminal_outcome_attempts(outcome) == 1);
    CHECK(liminal_outcome_dispatch_id(outcome) > 0);
    CHECK(liminal_outcome_crashed_handling(outcome) == 0);
    CHECK(liminal_outcome_crashed_holding(outcome) == 0);
    CHECK(liminal_outcome_released(outcome) == 0 && liminal_outcome_lease_expired(outcome) == 0);
    CHECK(latch_count(&a.delivered) == 1 && latch_count(&b.delivered) == 0);
    CHECK(strcmp(a.last_json,
                 "{\"n\":7,\"tenant\":\"acme\",\"weight\":null,\"urgent\":true,\"none\":null}") == 0);

    /* Reading fields back. */
    char text[8];
    size_t len = 0;
    CHECK_OK(liminal_message_get_text(message, "tenant", text, sizeof text, &len));
    CHECK(strcmp(text, "acme") == 0 && len == 4);
    CHECK_STATUS(liminal_message_get_text(message, "tenant", text, 3, &len),
                 LIMINAL_BUFFER_TOO_SMALL);
    CHECK(strcmp(text, "ac") == 0 && len == 4);
    int64_t n = 0;
    CHECK_OK(liminal_message_get_int(message, "n", &n));
    CHECK(n == 7);
    bool urgent = false;
    CHECK_OK(liminal_message_get_bool(message, "urgent", &urgent));
    CHECK(urgent);
    liminal_field_type type;
    CHECK_OK(liminal_message_field_type(message, "none", &type));
    CHECK(type == LIMINAL_FIELD_NULL);
    CHECK_STATUS(liminal_message_get_int(message, "tenant", &n), LIMINAL_NOT_FOUND);
    CHECK_STATUS(liminal_message_get_int(message, "missing", &n), LIMINAL_NOT_FOUND);
    const uint8_t *payload = NULL;
    CHECK_OK(liminal_message_payload(message, &payload, &len));
    CHECK(len == 5 && memcmp(payload, "hello", 5) == 0);

    /* Snapshot: id order, defaults. */
    liminal_snapshot *snapshot = NULL;
    CHECK_OK(liminal_group_snapshot(group, &snapshot));
    CHECK(liminal_snapshot_count(snapshot) == 2);
    liminal_consumer_view view;
    CHECK_OK(liminal_snapshot_get(snapshot, 0, &view));
    CHECK(strcmp(view.id, "a") == 0 && view.max_in_flight == 64 && view.in_flight == 0);
    CHECK(view.buffer_depth == 0 && view.tag_count == 0);
    CHECK_OK(liminal_snapshot_get(snapshot, 1, &view));
    CHECK(strcmp(view.id, "b") == 0);
    CHECK_STATUS(liminal_snapshot_get(snapshot, 2, &view), LIMINAL_INVALID_ARGUMENT);
    liminal_snapshot_free(snapshot);

    /* Updates are visible in the next snapshot; lookup by id. */
    const char *tags[] = {"eu", "gpu"};
    CHECK_OK(liminal_consumer_set_tags(cb, tags, 2));
    CHECK_OK(liminal_consumer_set_buffer_depth(cb, 12));
    CHECK_OK(liminal_consumer_set_max_in_flight(cb, 5));
    CHECK_OK(liminal_group_snapshot(group, &snapshot));
    CHECK_OK(liminal_snapshot_get(snapshot, 1, &view));
    CHECK(view.buffer_depth == 12 && view.max_in_flight == 5 && view.tag_count == 2);
    CHECK(strcmp(view.tags[0], "eu") == 0 && strcmp(view.tags[1], "gpu") == 0);
    liminal_snapshot_free(snapshot);
    liminal_consumer *again = NULL;
    CHECK_OK(liminal_group_consumer(group, "b", &again));
    CHECK(strcmp(liminal_consumer_id(again), "b") == 0 && liminal_consumer_is_alive(again));
    liminal_consumer_free(again);
    size_t count = 9;
    CHECK_OK(liminal_group_waiting(group, &count));
    CHECK(count == 0);

    liminal_outcome_free(outcome);
    liminal_message_free(message);
    liminal_consumer_free(ca);
    liminal_consumer_free(cb);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
    /* Callbacks are released once their processes are gone; a graceful end
     * is not reported as a crash. */
    CHECK(latch_count(&a.freed) == 1 && latch_count(&b.freed) == 1);
    CHECK(latch_count(&a.crash_freed) == 1 && latch_count(&b.crash_freed) == 1);
    CHECK(latch_count(&a.crashed) == 0 && latch_count(&b.crashed) == 0);
    ctx_destroy(&a);
    ctx_destroy(&b);
}

static void test_crash_is_rerouted(void) {
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = new_group(runtime, LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, 0);
    consumer_ctx a, b;
    ctx_init(&a, "a", LIMINAL_VERDICT_CRASH);
    ctx_init(&b, "b", LIMINAL_VERDICT_ACK);
    liminal_consumer *ca = add(group, &a);
    liminal_consumer *cb = add(group, &b);
    liminal_message *message = new_message(1);
    liminal_outcome *outcome = NULL;
    CHECK_OK(liminal_group_dispatch(group, message, NULL, &outcome));
    CHECK(strcmp(liminal_outcome_delivered_to(outcome), "b") == 0);
    CHECK(liminal_outcome_rerouted_count(outcome) == 1);
    CHECK(strcmp(liminal_outcome_rerouted_from(outcome, 0), "a") == 0);
    CHECK(liminal_outcome_rerouted_from(outcome, 1) == NULL);
    CHECK(liminal_outcome_attempts(outcome) == 2);
    CHECK(liminal_outcome_crashed_handling(outcome) == 1);
    uint64_t ns = 0;
    CHECK_OK(liminal_outcome_reroute_ns(outcome, 0, &ns));
    /* Failure noticed -> re-route initiated: sub-millisecond (not checked
     * under valgrind, which slows everything down ~50x). */
    CHECK(ns > 0);
    if (!under_valgrind()) CHECK(ns < 1000000);
    printf("crash re-route: %llu ns\n", (unsigned long long)ns);
    latch_wait(&a.crashed, 1);
    CHECK(strcmp(a.crashed_id, "a") == 0);
    CHECK(a.crash_kind == LIMINAL_CRASH_VERDICT && !a.crash_alive);
    CHECK(strstr(a.crash_reason, "LIMINAL_VERDICT_CRASH") != NULL);
    CHECK(!liminal_consumer_is_alive(ca));
    size_t count = 0;
    CHECK_OK(liminal_group_consumer_count(group, &count));
    CHECK(count == 1);
    latch_wait(&a.freed, 1);
    latch_wait(&a.crash_freed, 1);

    /* Fault injection: b crashes at its next delivery; with no one left the
     * message waits, and fails when its deadline passes. */
    CHECK_OK(liminal_consumer_crash_at_next_delivery(cb));
    liminal_dispatch_options *options = NULL;
    CHECK_OK(liminal_dispatch_options_new(&options));
    CHECK_OK(liminal_dispatch_options_set_deadline_ms(options, 100));
    liminal_outcome *none = NULL;
    CHECK_STATUS(liminal_group_dispatch(group, message, options, &none), LIMINAL_EXPIRED);
    CHECK(none == NULL);
    latch_wait(&b.crashed, 1);
    CHECK(strcmp(b.crash_reason, "fault injected at delivery") == 0);
    CHECK(b.crash_kind == LIMINAL_CRASH_INJECTED && !b.crash_alive);
    CHECK(latch_count(&b.delivered) == 1); /* the callback never saw the second */
    liminal_dispatch_options_free(options);

    liminal_metrics metrics;
    CHECK_OK(liminal_runtime_metrics(runtime, &metrics));
    CHECK(metrics.dispatched == 2 && metrics.delivered == 1);
    CHECK(metrics.consumer_crashes == 2 && metrics.rerouted == 2);
    CHECK(metrics.dead_lettered == 1 && metrics.expired == 1 && metrics.reroute_count == 2);
    CHECK(metrics.dispatch_p50_ns > 0 && metrics.waiting == 0);

    liminal_outcome_free(outcome);
    liminal_message_free(message);
    liminal_consumer_free(ca);
    liminal_consumer_free(cb);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
    ctx_destroy(&a);
    ctx_destroy(&b);
}

typedef struct completions {
    latch done;
    latch freed;
    int delivered;
    pthread_mutex_t mutex;
} completions;

static void on_complete(void *user, liminal_status status, const liminal_outcome *outcome) {
    completions *c = user;
    CHECK(liminal_outcome_status(outcome) == status);
    pthread_mutex_lock(&c->mutex);
    if (status == LIMINAL_OK) c->delivered += 1;
    pthread_mutex_unlock(&c->mutex);
    latch_add(&c->done);
}

static void on_complete_free(void *user) { latch_add(&((completions *)user)->freed); }

static void test_async(void) {
    const int total = scaled(1000, 500);
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = new_group(runtime, LIMINAL_BUILTIN_LEAST_LOADED, 0);
    consumer_ctx a, b;
    ctx_init(&a, "a", LIMINAL_VERDICT_ACK);
    ctx_init(&b, "b", LIMINAL_VERDICT_ACK);
    liminal_consumer *ca = add_with(group, &a, 8);
    liminal_consumer *cb = add_with(group, &b, 8);
    completions c;
    latch_init(&c.done);
    latch_init(&c.freed);
    c.delivered = 0;
    pthread_mutex_init(&c.mutex, NULL);
    liminal_message *message = new_message(3);
    /* More messages than capacity: the rest wait in the waiting room. */
    for (int i = 0; i < total; i++) {
        liminal_completion_callback cb_ = {on_complete, &c, on_complete_free};
        uint64_t id = 0;
        CHECK_OK(liminal_group_dispatch_async(group, message, NULL, cb_, &id));
        CHECK(id > 0);
    }
    latch_wait(&c.done, total);
    latch_wait(&c.freed, total);
    CHECK(c.delivered == total);
    CHECK(latch_count(&a.delivered) + latch_count(&b.delivered) == total);
    CHECK(latch_count(&a.delivered) > 0 && latch_count(&b.delivered) > 0);
    liminal_message_free(message);
    liminal_consumer_free(ca);
    liminal_consumer_free(cb);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
    pthread_mutex_destroy(&c.mutex);
    latch_destroy(&c.done);
    latch_destroy(&c.freed);
    ctx_destroy(&a);
    ctx_destroy(&b);
}

/* Deferred acknowledgement: the callback keeps the delivery and another
 * thread acknowledges it. */
typedef struct deferred {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    liminal_delivery *kept;
} deferred;

static liminal_verdict defer_delivery(void *user, liminal_delivery *delivery) {
    deferred *d = user;
    pthread_mutex_lock(&d->mutex);
    CHECK_OK(liminal_delivery_keep(delivery, &d->kept));
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->mutex);
    return LIMINAL_VERDICT_DEFER;
}

static void *acker(void *arg) {
    deferred *d = arg;
    pthread_mutex_lock(&d->mutex);
    while (d->kept == NULL) pthread_cond_wait(&d->cond, &d->mutex);
    liminal_delivery *kept = d->kept;
    pthread_mutex_unlock(&d->mutex);
    CHECK(liminal_delivery_attempt(kept) == 1);
    CHECK(!liminal_delivery_redelivered(kept));
    CHECK(liminal_delivery_crashed_handling(kept) == 0 && liminal_delivery_crashed_holding(kept) == 0);
    CHECK(liminal_delivery_dispatch_id(kept) > 0 && liminal_delivery_id(kept) > 0);
    CHECK(message_n(liminal_delivery_message(kept)) == 1);
    CHECK_OK(liminal_delivery_ack(kept));
    CHECK_STATUS(liminal_delivery_ack(kept), LIMINAL_STALE_DELIVERY);
    CHECK_STATUS(liminal_delivery_release(kept, 0), LIMINAL_STALE_DELIVERY);
    CHECK_STATUS(liminal_delivery_crash(kept, "late"), LIMINAL_STALE_DELIVERY);
    liminal_delivery_free(kept);
    return NULL;
}

static void test_deferred_ack(void) {
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = new_group(runtime, LIMINAL_BUILTIN_LEAST_LOADED, 0);
    deferred d = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL};
    liminal_delivery_callback cb = {defer_delivery, &d, NULL};
    liminal_consumer *consumer = register_consumer(group, "deferring", 8, cb, no_crash());
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, acker, &d) == 0);
    liminal_message *message = new_message(1);
    liminal_outcome *outcome = NULL;
    CHECK_OK(liminal_group_dispatch(group, message, NULL, &outcome));
    CHECK(strcmp(liminal_outcome_delivered_to(outcome), "deferring") == 0);
    pthread_join(thread, NULL);
    uint32_t in_flight = 99;
    CHECK_OK(liminal_consumer_in_flight(consumer, &in_flight));
    CHECK(in_flight == 0);
    CHECK(liminal_consumer_is_alive(consumer)); /* the stale crash changed nothing */
    liminal_outcome_free(outcome);
    liminal_message_free(message);
    liminal_consumer_free(consumer);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
}

/* Release verdict: the message goes to another consumer, counted as an
 * attempt, not as a crash. */
static void test_release_verdict(void) {
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = new_group(runtime, LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, 0);
    consumer_ctx a, b;
    ctx_init(&a, "a", LIMINAL_VERDICT_RELEASE);
    ctx_init(&b, "b", LIMINAL_VERDICT_ACK);
    liminal_consumer *ca = add(group, &a);
    liminal_consumer *cb = add(group, &b);
    liminal_message *message = new_message(1);
    liminal_outcome *outcome = NULL;
    CHECK_OK(liminal_group_dispatch(group, message, NULL, &outcome));
    CHECK(strcmp(liminal_outcome_delivered_to(outcome), "b") == 0);
    CHECK(liminal_outcome_released(outcome) == 1 && liminal_outcome_attempts(outcome) == 2);
    CHECK(liminal_outcome_crashed_handling(outcome) == 0);
    CHECK(liminal_consumer_is_alive(ca)); /* releasing is not dying */
    CHECK(latch_count(&a.crashed) == 0);
    liminal_outcome_free(outcome);
    liminal_message_free(message);
    liminal_consumer_free(ca);
    liminal_consumer_free(cb);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
    ctx_destroy(&a);
    ctx_destroy(&b);
}

/* Pull mode: a host worker thread waits for deliveries. */
typedef struct puller {
    liminal_consumer *consumer;
    int handled;
    liminal_status ended_with;
} puller;

static void *pull_worker(void *arg) {
    puller *p = arg;
    for (;;) {
        liminal_delivery *delivery = NULL;
        liminal_status status = liminal_consumer_next_delivery(p->consumer, 30000, &delivery);
        if (status != LIMINAL_OK) {
            p->ended_with = status;
            break;
        }
        CHECK(message_n(liminal_delivery_message(delivery)) == p->handled);
        CHECK(strcmp(liminal_delivery_consumer_id(delivery), "puller") == 0);
        CHECK_OK(liminal_delivery_ack(delivery));
        liminal_delivery_free(delivery);
        p->handled += 1;
    }
    return NULL;
}

static void test_pull_mode(void) {
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = new_group(runtime, LIMINAL_BUILTIN_LEAST_LOADED, 0);
    puller p = {NULL, 0, LIMINAL_OK};
    p.consumer = register_consumer(group, "puller", 4, no_delivery(), no_crash());
    liminal_delivery *none = NULL;
    CHECK_STATUS(liminal_consumer_next_delivery(p.consumer, 1, &none), LIMINAL_TIMED_OUT);
    CHECK_STATUS(liminal_consumer_next_delivery(p.consumer, 0, &none), LIMINAL_TIMED_OUT);
    CHECK(none == NULL);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, pull_worker, &p) == 0);
    for (int i = 0; i < 20; i++) {
        liminal_message *message = new_message(i);
        liminal_outcome *outcome = NULL;
        CHECK_OK(liminal_group_dispatch(group, message, NULL, &outcome));
        CHECK(strcmp(liminal_outcome_delivered_to(outcome), "puller") == 0);
        liminal_outcome_free(outcome);
        liminal_message_free(message);
    }
    CHECK_OK(liminal_consumer_leave(p.consumer)); /* releases the waiting worker */
    pthread_join(thread, NULL);
    CHECK(p.handled == 20);
    CHECK(p.ended_with == LIMINAL_CONSUMER_GONE);
    liminal_consumer_free(p.consumer);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
}

/* Dead letters: a poison message crashes max_attempts consumers, no more. */
typedef struct dead_letters {
    latch seen;
    liminal_status status;
    size_t rerouted;
    uint32_t crashed_handling;
    bool poison;
} dead_letters;

static void on_dead_letter(void *user, const liminal_message *message, const liminal_outcome *trail) {
    dead_letters *d = user;
    CHECK(message_n(message) == 666);
    d->status = liminal_outcome_status(trail);
    d->rerouted = liminal_outcome_rerouted_count(trail);
    d->crashed_handling = liminal_outcome_crashed_handling(trail);
    d->poison = liminal_outcome_is_poison(trail);
    latch_add(&d->seen);
}

static void test_dead_letters(void) {
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = new_group(runtime, LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, 2);
    dead_letters d;
    memset(&d, 0, sizeof d);
    latch_init(&d.seen);
    liminal_dead_letter_callback dl = {on_dead_letter, &d, NULL};
    CHECK_OK(liminal_group_set_dead_letter(group, dl));
    consumer_ctx ctx[4];
    liminal_consumer *consumers[4];
    const char *ids[4] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) {
        ctx_init(&ctx[i], ids[i], LIMINAL_VERDICT_CRASH);
        consumers[i] = add(group, &ctx[i]);
    }
    liminal_message *poison = new_message(666);
    liminal_outcome *outcome = NULL;
    CHECK_STATUS(liminal_group_dispatch(group, poison, NULL, &outcome), LIMINAL_ATTEMPTS_EXHAUSTED);
    latch_wait(&d.seen, 1);
    CHECK(d.status == LIMINAL_ATTEMPTS_EXHAUSTED && d.rerouted == 2 && d.crashed_handling == 2);
    CHECK(d.poison); /* both attempts killed their consumer */
    size_t count = 0;
    CHECK_OK(liminal_group_consumer_count(group, &count));
    CHECK(count == 2); /* exactly max_attempts consumers died */
    CHECK(liminal_consumer_is_alive(consumers[2]) && liminal_consumer_is_alive(consumers[3]));
    liminal_metrics metrics;
    CHECK_OK(liminal_runtime_metrics(runtime, &metrics));
    CHECK(metrics.attempts_exhausted == 1 && metrics.dead_lettered == 1);
    liminal_message_free(poison);
    for (int i = 0; i < 4; i++) liminal_consumer_free(consumers[i]);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
    for (int i = 0; i < 4; i++) ctx_destroy(&ctx[i]);
    latch_destroy(&d.seen);
}

/* Hot deployment of C routing functions, and content addressing. */
typedef struct route_ctx {
    const char *target;
    latch freed;
    int calls;
} route_ctx;

static liminal_route_result route_to(void *user, const liminal_message *message,
                                     const liminal_consumer_view *views, size_t count,
                                     const char **selected) {
    route_ctx *r = user;
    (void)message;
    r->calls += 1;
    for (size_t i = 0; i < count; i++) {
        if (strcmp(views[i].id, r->target) == 0) {
            *selected = views[i].id;
            return LIMINAL_ROUTE_SELECTED;
        }
    }
    return LIMINAL_ROUTE_NONE;
}

static liminal_route_result route_fails(void *user, const liminal_message *message,
                                        const liminal_consumer_view *views, size_t count,
                                        const char **selected) {
    (void)user; (void)message; (void)views; (void)count; (void)selected;
    return LIMINAL_ROUTE_FAILED;
}

static void route_free(void *user) { latch_add(&((route_ctx *)user)->freed); }

static void test_hot_deploy(void) {
    liminal_runtime *runtime = new_runtime();
    route_ctx v1, v2, dup;
    memset(&v1, 0, sizeof v1);
    memset(&v2, 0, sizeof v2);
    memset(&dup, 0, sizeof dup);
    v1.target = "a";
    v2.target = "b";
    dup.target = "a";
    latch_init(&v1.freed);
    latch_init(&v2.freed);
    latch_init(&dup.freed);
    liminal_route_callback c1 = {route_to, &v1, route_free};
    liminal_route_callback c2 = {route_to, &v2, route_free};
    liminal_route_callback cd = {route_to, &dup, route_free};
    liminal_routing *r1 = NULL, *r2 = NULL, *rd = NULL;
    CHECK_OK(liminal_routing_new(runtime, c1, (const uint8_t *)"route-v1", 8, "v1", &r1));
    CHECK_OK(liminal_routing_new(runtime, c2, (const uint8_t *)"route-v2", 8, "v2", &r2));
    CHECK_OK(liminal_routing_new(runtime, cd, (const uint8_t *)"route-v1", 8, NULL, &rd));
    CHECK(liminal_routing_hash(r1) == liminal_routing_hash(rd));
    CHECK(liminal_routing_hash(r1) != liminal_routing_hash(r2));
    CHECK(latch_count(&dup.freed) == 1); /* identical bytes: the duplicate is released */

    liminal_group *group = NULL;
    CHECK_OK(liminal_group_new(runtime, r1, NULL, &group));
    consumer_ctx a, b;
    ctx_init(&a, "a", LIMINAL_VERDICT_ACK);
    ctx_init(&b, "b", LIMINAL_VERDICT_ACK);
    liminal_consumer *ca = add(group, &a);
    liminal_consumer *cb = add(group, &b);
    liminal_message *message = new_message(1);
    liminal_outcome *outcome = NULL;
    CHECK_OK(liminal_group_dispatch(group, message, NULL, &outcome));
    CHECK(strcmp(liminal_outcome_delivered_to(outcome), "a") == 0);
    liminal_outcome_free(outcome);
    CHECK_OK(liminal_group_deploy(group, r2));
    CHECK(liminal_group_routing_hash(group) == liminal_routing_hash(r2));
    CHECK_OK(liminal_group_dispatch(group, message, NULL, &outcome));
    CHECK(strcmp(liminal_outcome_delivered_to(outcome), "b") == 0);
    liminal_outcome_free(outcome);
    CHECK(v1.calls == 1 && v2.calls == 1);

    /* A failing routing callback is a routing crash; the next dispatch is fine. */
    route_ctx failing;
    memset(&failing, 0, sizeof failing);
    failing.target = "";
    latch_init(&failing.freed);
    liminal_route_callback cf = {route_fails, &failing, route_free};
    liminal_routing *rf = NULL;
    CHECK_OK(liminal_routing_new(runtime, cf, (const uint8_t *)"failing", 7, "failing", &rf));
    CHECK_OK(liminal_group_deploy(group, rf));
    CHECK_STATUS(liminal_group_dispatch(group, message, NULL, &outcome), LIMINAL_ROUTING_CRASHED);
    CHECK_OK(liminal_group_deploy(group, r1));
    CHECK_OK(liminal_group_dispatch(group, message, NULL, &outcome));
    liminal_outcome_free(outcome);

    liminal_message_free(message);
    liminal_consumer_free(ca);
    liminal_consumer_free(cb);
    liminal_group_free(group);
    liminal_routing_free(r1);
    liminal_routing_free(r2);
    liminal_routing_free(rd);
    liminal_routing_free(rf);
    CHECK_OK(liminal_runtime_free(runtime));
    CHECK(latch_count(&v1.freed) == 1 && latch_count(&v2.freed) == 1);
    CHECK(latch_count(&failing.freed) == 1);
    latch_destroy(&v1.freed);
    latch_destroy(&v2.freed);
    latch_destroy(&dup.freed);
    latch_destroy(&failing.freed);
    ctx_destroy(&a);
    ctx_destroy(&b);
}

/* A routing callback sees the group as it is at each evaluation: joins,
 * leaves, a consumer replaced under the same id, new tags and new numbers
 * (the library reuses its C strings between evaluations while membership
 * and tags are unchanged). */
typedef struct seen_ctx {
    size_t count;
    char ids[128];
    uint32_t max_in_flight[8];
    uint32_t buffer_depth[8];
    char tags[8][64];
} seen_ctx;

static liminal_route_result route_record(void *user, const liminal_message *message,
                                         const liminal_consumer_view *views, size_t count,
                                         const char **selected) {
    seen_ctx *seen = user;
    (void)message;
    memset(seen, 0, sizeof *seen);
    seen->count = count;
    for (size_t i = 0; i < count && i < 8; i++) {
        strncat(seen->ids, views[i].id, sizeof seen->ids - strlen(seen->ids) - 2);
        strcat(seen->ids, ",");
        seen->max_in_flight[i] = views[i].max_in_flight;
        seen->buffer_depth[i] = views[i].buffer_depth;
        for (size_t t = 0; t < views[i].tag_count; t++) {
            strncat(seen->tags[i], views[i].tags[t], sizeof seen->tags[i] - strlen(seen->tags[i]) - 2);
            strcat(seen->tags[i], ",");
        }
    }
    if (count == 0) return LIMINAL_ROUTE_NONE;
    *selected = views[count - 1].id;
    return LIMINAL_ROUTE_SELECTED;
}

static void dispatch_once(liminal_group *group) {
    liminal_message *message = new_message(0);
    liminal_outcome *outcome = NULL;
    CHECK_OK(liminal_group_dispatch(group, message, NULL, &outcome));
    liminal_outcome_free(outcome);
    liminal_message_free(message);
}

static void test_routing_views_follow_the_group(void) {
    liminal_runtime *runtime = new_runtime();
    seen_ctx seen;
    memset(&seen, 0, sizeof seen);
    liminal_route_callback callback = {route_record, &seen, NULL};
    liminal_routing *routing = NULL;
    CHECK_OK(liminal_routing_new(runtime, callback, (const uint8_t *)"record", 6, NULL, &routing));
    liminal_group *group = NULL;
    CHECK_OK(liminal_group_new(runtime, routing, NULL, &group));
    consumer_ctx a, b, c, a2;
    ctx_init(&a, "a", LIMINAL_VERDICT_ACK);
    ctx_init(&b, "b", LIMINAL_VERDICT_ACK);
    ctx_init(&c, "c", LIMINAL_VERDICT_ACK);
    ctx_init(&a2, "a", LIMINAL_VERDICT_ACK);
    liminal_consumer *ca = add_with(group, &a, 4);
    liminal_consumer *cb = add_with(group, &b, 2);

    dispatch_once(group);
    CHECK(seen.count == 2 && strcmp(seen.ids, "a,b,") == 0);
    CHECK(seen.max_in_flight[0] == 4 && seen.max_in_flight[1] == 2);
    CHECK(seen.tags[0][0] == '\0' && seen.tags[1][0] == '\0');
    dispatch_once(group); /* same membership: the same answer */
    CHECK(seen.count == 2 && strcmp(seen.ids, "a,b,") == 0 && seen.max_in_flight[0] == 4);

    /* New numbers, then new tags. */
    CHECK_OK(liminal_consumer_set_max_in_flight(cb, 7));
    CHECK_OK(liminal_consumer_set_buffer_depth(cb, 3));
    dispatch_once(group);
    CHECK(seen.max_in_flight[1] == 7 && seen.buffer_depth[1] == 3);
    const char *tags[] = {"eu", "gpu"};
    CHECK_OK(liminal_consumer_set_tags(cb, tags, 2));
    dispatch_once(group);
    CHECK(strcmp(seen.tags[1], "eu,gpu,") == 0 && seen.tags[0][0] == '\0');
    const char *fewer[] = {"us"};
    CHECK_OK(liminal_consumer_set_tags(cb, fewer, 1));
    dispatch_once(group);
    CHECK(strcmp(seen.tags[1], "us,") == 0);

    /* A join, a leave, and a consumer replaced under the same id. */
    liminal_consumer *cc = add_with(group, &c, 1);
    dispatch_once(group);
    CHECK(seen.count == 3 && strcmp(seen.ids, "a,b,c,") == 0);
    CHECK_OK(liminal_consumer_leave(ca));
    dispatch_once(group);
    CHECK(seen.count == 2 && strcmp(seen.ids, "b,c,") == 0);
    liminal_consumer *ca2 = add_with(group, &a2, 9);
    dispatch_once(group);
    CHECK(seen.count == 3 && strcmp(seen.ids, "a,b,c,") == 0 && seen.max_in_flight[0] == 9);
    CHECK(latch_count(&c.delivered) == 3 && latch_count(&b.delivered) == 5);
    CHECK(latch_count(&a.delivered) == 0 && latch_count(&a2.delivered) == 0);

    liminal_consumer_free(ca);
    liminal_consumer_free(cb);
    liminal_consumer_free(cc);
    liminal_consumer_free(ca2);
    liminal_group_free(group);
    liminal_routing_free(routing);
    CHECK_OK(liminal_runtime_free(runtime));
    ctx_destroy(&a);
    ctx_destroy(&b);
    ctx_destroy(&c);
    ctx_destroy(&a2);
}

/* Re-entrancy: a callback that leaves and frees its own consumer, and
 * blocking calls made from inside a callback. */
static liminal_verdict reentrant_delivery(void *user, liminal_delivery *delivery) {
    consumer_ctx *ctx = user;
    (void)delivery;
    liminal_outcome *outcome = NULL;
    liminal_message *message = new_message(0);
    ctx->inner_status = liminal_group_dispatch(ctx->group, message, NULL, &outcome);
    liminal_message_free(message);
    CHECK(liminal_runtime_free(ctx->runtime) == LIMINAL_WOULD_DEADLOCK);
    CHECK(liminal_runtime_shutdown(ctx->runtime) == LIMINAL_WOULD_DEADLOCK);
    CHECK(liminal_runtime_drain(ctx->runtime, 10, NULL) == LIMINAL_WOULD_DEADLOCK);
    CHECK(liminal_group_drain(ctx->group, 10, NULL) == LIMINAL_WOULD_DEADLOCK);
    CHECK_OK(liminal_consumer_leave(ctx->self));
    liminal_consumer_free(ctx->self);
    ctx->self = NULL;
    latch_add(&ctx->delivered);
    return LIMINAL_VERDICT_ACK;
}

static void test_callback_frees_its_consumer(void) {
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = new_group(runtime, LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, 0);
    consumer_ctx ctx;
    ctx_init(&ctx, "self", LIMINAL_VERDICT_ACK);
    ctx.runtime = runtime;
    ctx.group = group;
    liminal_delivery_callback d = {reentrant_delivery, &ctx, on_free};
    ctx.self = register_consumer(group, "self", 4, d, no_crash());
    consumer_ctx other;
    ctx_init(&other, "zz-other", LIMINAL_VERDICT_ACK);
    liminal_consumer *co = add(group, &other);
    liminal_message *message = new_message(1);
    liminal_outcome *outcome = NULL;
    /* Leaving from inside its own callback keeps the delivery in hand: the
     * callback's ACK counts. */
    CHECK_OK(liminal_group_dispatch(group, message, NULL, &outcome));
    CHECK(strcmp(liminal_outcome_delivered_to(outcome), "self") == 0);
    CHECK(liminal_outcome_rerouted_count(outcome) == 0);
    CHECK(latch_count(&other.delivered) == 0);
    CHECK(ctx.inner_status == LIMINAL_WOULD_DEADLOCK);
    CHECK(ctx.self == NULL);
    latch_wait(&ctx.freed, 1);
    size_t count = 9;
    CHECK_OK(liminal_group_consumer_count(group, &count));
    CHECK(count == 1);
    liminal_consumer_free(co);
    liminal_outcome_free(outcome);
    liminal_message_free(message);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
    ctx_destroy(&ctx);
    ctx_destroy(&other);
}

/* Shutdown with asynchronous dispatches in flight: each completes once. */
static liminal_verdict never_ack(void *user, liminal_delivery *delivery) {
    (void)user; (void)delivery;
    return LIMINAL_VERDICT_DEFER;
}

typedef struct shutdown_counts {
    latch done;
    int shut_down;
    pthread_mutex_t mutex;
} shutdown_counts;

static void on_shutdown_complete(void *user, liminal_status status, const liminal_outcome *outcome) {
    shutdown_counts *s = user;
    (void)outcome;
    pthread_mutex_lock(&s->mutex);
    if (status == LIMINAL_SHUT_DOWN) s->shut_down += 1;
    pthread_mutex_unlock(&s->mutex);
    latch_add(&s->done);
}

static void test_shutdown_in_flight(void) {
    const int total = scaled(2000, 1000);
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = new_group(runtime, LIMINAL_BUILTIN_LEAST_LOADED, 0);
    liminal_delivery_callback d = {never_ack, NULL, NULL};
    /* Holds 64, the rest wait. */
    liminal_consumer *consumer = register_consumer(group, "sink", 64, d, no_crash());
    shutdown_counts s;
    latch_init(&s.done);
    s.shut_down = 0;
    pthread_mutex_init(&s.mutex, NULL);
    liminal_message *message = new_message(1);
    for (int i = 0; i < total; i++) {
        liminal_completion_callback cb = {on_shutdown_complete, &s, NULL};
        CHECK_OK(liminal_group_dispatch_async(group, message, NULL, cb, NULL));
    }
    CHECK_OK(liminal_runtime_shutdown(runtime));
    CHECK(latch_count(&s.done) == total && s.shut_down == total);
    CHECK_OK(liminal_runtime_shutdown(runtime)); /* idempotent */
    liminal_completion_callback late = {on_shutdown_complete, &s, NULL};
    CHECK_STATUS(liminal_group_dispatch_async(group, message, NULL, late, NULL), LIMINAL_SHUT_DOWN);
    CHECK(latch_count(&s.done) == total);
    liminal_metrics metrics;
    CHECK_OK(liminal_runtime_metrics(runtime, &metrics)); /* works after shutdown */
    CHECK(metrics.shut_down == (uint64_t)total && metrics.dead_lettered == 0);
    liminal_message_free(message);
    liminal_consumer_free(consumer);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
    pthread_mutex_destroy(&s.mutex);
    latch_destroy(&s.done);
}

/* In flight means "accepted, not completed": once a blocking dispatch has
 * returned its outcome, the group no longer counts it. */
static liminal_verdict ack_now(void *user, liminal_delivery *delivery) {
    (void)user; (void)delivery;
    return LIMINAL_VERDICT_ACK;
}

static void test_in_flight_after_completion(void) {
    const int rounds = scaled(40000, 3000);
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = new_group(runtime, LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, 0);
    liminal_delivery_callback d = {ack_now, NULL, NULL};
    liminal_consumer *consumer = register_consumer(group, "a", 8, d, no_crash());
    liminal_message *message = new_message(1);
    int counted = 0, first = -1;
    for (int i = 0; i < rounds; i++) {
        liminal_outcome *outcome = NULL;
        CHECK_OK(liminal_group_dispatch(group, message, NULL, &outcome));
        liminal_outcome_free(outcome);
        size_t in_flight = 0;
        CHECK_OK(liminal_group_in_flight(group, &in_flight));
        if (in_flight != 0) {
            counted += 1;
            if (first < 0) first = i;
        }
    }
    /* BUG check: liminal_group_in_flight ("accepted, not completed"; the
     * same count as metrics.in_flight) still counts a dispatch whose blocking call has
     * returned its outcome (the group forgets it only after its completion
     * has returned, racing with the caller). */
    BUG_IF(counted > 0,
           "liminal_group_in_flight counted a completed dispatch right "
           "after liminal_group_dispatch returned it: %d of %d rounds (first at %d)",
           counted, rounds, first);
    liminal_message_free(message);
    liminal_consumer_free(consumer);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
}

int main(void) {
    test_blocking_dispatch();
    test_crash_is_rerouted();
    test_async();
    test_deferred_ack();
    test_release_verdict();
    test_pull_mode();
    test_dead_letters();
    test_hot_deploy();
    test_routing_views_follow_the_group();
    test_callback_frees_its_consumer();
    test_shutdown_in_flight();
    test_in_flight_after_completion();
    return bugs_exit("test_flows");
}
