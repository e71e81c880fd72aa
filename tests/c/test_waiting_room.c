/* The waiting room from C (DESIGN.md 2c): a message is never failed because
 * nobody is free right now; acknowledgement leases and their policies,
 * extension and release; overflow policies with exact counts; deadlines and
 * the blocking dispatch's own timeout; drain under load; statistics as JSON
 * (polled and periodic) and Prometheus text.
 * Run some tests only: `test_waiting_room lease` (substring of the name). */
#include "check.h"

#include <ctype.h>
#include <stdatomic.h>

/* ---- helpers ----------------------------------------------------------- */

/* One tracked dispatch: its completions and how it ended. */
typedef struct slot {
    atomic_int completions;
    atomic_int freed;
    liminal_status status;
    int64_t n;
    char delivered_to[32];
    uint32_t attempts, released, lease_expired, crashed_handling, crashed_holding;
    size_t rerouted;
    struct tracker *tracker;
} slot;

typedef struct tracker {
    slot *slots;
    int capacity;
    latch done;
    latch freed;
} tracker;

static void tracker_init(tracker *t, int capacity) {
    t->slots = calloc((size_t)capacity, sizeof(slot));
    CHECK(t->slots != NULL);
    t->capacity = capacity;
    for (int i = 0; i < capacity; i++) {
        t->slots[i].tracker = t;
        t->slots[i].n = i;
    }
    latch_init(&t->done);
    latch_init(&t->freed);
}

static void tracker_destroy(tracker *t) {
    free(t->slots);
    latch_destroy(&t->done);
    latch_destroy(&t->freed);
}

static void slot_complete(void *user, liminal_status status, const liminal_outcome *outcome) {
    slot *s = user;
    CHECK(liminal_outcome_status(outcome) == status);
    s->status = status;
    const char *to = liminal_outcome_delivered_to(outcome);
    snprintf(s->delivered_to, sizeof s->delivered_to, "%s", to ? to : "");
    s->attempts = liminal_outcome_attempts(outcome);
    s->released = liminal_outcome_released(outcome);
    s->lease_expired = liminal_outcome_lease_expired(outcome);
    s->crashed_handling = liminal_outcome_crashed_handling(outcome);
    s->crashed_holding = liminal_outcome_crashed_holding(outcome);
    s->rerouted = liminal_outcome_rerouted_count(outcome);
    atomic_fetch_add(&s->completions, 1);
    latch_add(&s->tracker->done);
}

static void slot_free(void *user) {
    slot *s = user;
    atomic_fetch_add(&s->freed, 1);
    latch_add(&s->tracker->freed);
}

static liminal_completion_callback track(tracker *t, int i) {
    CHECK(i < t->capacity);
    liminal_completion_callback cb = {slot_complete, &t->slots[i], slot_free};
    return cb;
}

/* Dispatch message `n` (field "n" = i) asynchronously into slot i. */
static liminal_status dispatch_tracked(liminal_group *group, tracker *t, int i,
                                       const liminal_dispatch_options *options) {
    liminal_message *message = new_message(i);
    liminal_status status = liminal_group_dispatch_async(group, message, options, track(t, i), NULL);
    liminal_message_free(message);
    return status;
}

static liminal_verdict ack_verdict(void *user, liminal_delivery *delivery) {
    (void)user; (void)delivery;
    return LIMINAL_VERDICT_ACK;
}

static liminal_delivery_callback acking(void) {
    liminal_delivery_callback cb = {ack_verdict, NULL, NULL};
    return cb;
}

/* Never answers (and keeps nothing). */
static liminal_verdict silent(void *user, liminal_delivery *delivery) {
    (void)delivery;
    if (user != NULL) latch_add(user);
    return LIMINAL_VERDICT_DEFER;
}

typedef struct crash_log {
    latch reports;
    pthread_mutex_t mutex;
    liminal_crash_kind kind;
    bool alive;
    char reason[256];
} crash_log;

static void crash_log_init(crash_log *c) {
    memset(c, 0, sizeof *c);
    latch_init(&c->reports);
    pthread_mutex_init(&c->mutex, NULL);
}

static void crash_log_destroy(crash_log *c) {
    latch_destroy(&c->reports);
    pthread_mutex_destroy(&c->mutex);
}

static void log_crash(void *user, const char *id, liminal_crash_kind kind, const char *reason,
                      bool alive) {
    crash_log *c = user;
    (void)id;
    pthread_mutex_lock(&c->mutex);
    c->kind = kind;
    c->alive = alive;
    snprintf(c->reason, sizeof c->reason, "%s", reason);
    pthread_mutex_unlock(&c->mutex);
    latch_add(&c->reports);
}

static liminal_crash_callback logging(crash_log *c) {
    liminal_crash_callback cb = {log_crash, c, NULL};
    return cb;
}

/* Dead letters: how many, and the last status and message number. */
typedef struct dead_box {
    latch seen;
    pthread_mutex_t mutex;
    liminal_status last_status;
    int64_t last_n;
} dead_box;

static void dead_box_init(dead_box *d) {
    memset(d, 0, sizeof *d);
    latch_init(&d->seen);
    pthread_mutex_init(&d->mutex, NULL);
    d->last_n = -1;
}

static void dead_box_destroy(dead_box *d) {
    latch_destroy(&d->seen);
    pthread_mutex_destroy(&d->mutex);
}

static void on_dead(void *user, const liminal_message *message, const liminal_outcome *trail) {
    dead_box *d = user;
    pthread_mutex_lock(&d->mutex);
    d->last_status = liminal_outcome_status(trail);
    d->last_n = message_n(message);
    pthread_mutex_unlock(&d->mutex);
    latch_add(&d->seen);
}

static void set_dead_letter(liminal_group *group, dead_box *d) {
    liminal_dead_letter_callback cb = {on_dead, d, NULL};
    CHECK_OK(liminal_group_set_dead_letter(group, cb));
}

static liminal_group_options *group_options(void) {
    liminal_group_options *options = NULL;
    CHECK_OK(liminal_group_options_new(&options));
    return options;
}

static liminal_dispatch_options *dispatch_options(uint64_t deadline_ms, uint64_t timeout_ms) {
    liminal_dispatch_options *options = NULL;
    CHECK_OK(liminal_dispatch_options_new(&options));
    CHECK_OK(liminal_dispatch_options_set_deadline_ms(options, deadline_ms));
    CHECK_OK(liminal_dispatch_options_set_timeout_ms(options, timeout_ms));
    return options;
}

static size_t group_waiting(liminal_group *group) {
    size_t n = 0;
    CHECK_OK(liminal_group_waiting(group, &n));
    return n;
}

static liminal_metrics metrics_of(liminal_runtime *runtime) {
    liminal_metrics m;
    CHECK_OK(liminal_runtime_metrics(runtime, &m));
    return m;
}

/* ---- the last consumer crashes under load, a replacement comes -------- */

static void test_crash_with_everything_waiting(void) {
    const int total = scaled(1000, 500);
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = new_group_with(runtime, LIMINAL_BUILTIN_LEAST_LOADED, NULL);
    latch held;
    latch_init(&held);
    liminal_delivery_callback d = {silent, &held, NULL};
    liminal_consumer *last = register_consumer(group, "last", 10, d, no_crash());
    tracker t;
    tracker_init(&t, total);
    for (int i = 0; i < total; i++) CHECK_OK(dispatch_tracked(group, &t, i, NULL));
    latch_wait(&held, 10);
    settle(runtime); /* its callbacks returned: it merely holds the ten */
    size_t in_flight = 0;
    CHECK_OK(liminal_group_in_flight(group, &in_flight));
    CHECK(in_flight == (size_t)total);
    CHECK(group_waiting(group) == (size_t)total - 10);
    CHECK_OK(liminal_consumer_crash(last, "the last consumer died"));
    size_t consumers = 9;
    CHECK_OK(liminal_group_consumer_count(group, &consumers));
    CHECK(consumers == 0);
    CHECK(group_waiting(group) == (size_t)total); /* the 10 it held wait too */
    CHECK(latch_count(&t.done) == 0);             /* nothing failed */
    liminal_consumer *replacement = register_consumer(group, "replacement", 64, acking(), no_crash());
    latch_wait(&t.done, total);
    int rerouted = 0;
    for (int i = 0; i < total; i++) {
        slot *s = &t.slots[i];
        CHECK(atomic_load(&s->completions) == 1);
        CHECK(s->status == LIMINAL_OK && strcmp(s->delivered_to, "replacement") == 0);
        if (s->rerouted > 0) {
            rerouted += 1;
            CHECK(s->crashed_holding == 1 && s->crashed_handling == 0);
        }
    }
    CHECK(rerouted == 10);
    liminal_metrics m = metrics_of(runtime);
    CHECK(m.delivered == (uint64_t)total + 1 /* settle's */ && m.dead_lettered == 0);
    liminal_consumer_free(last);
    liminal_consumer_free(replacement);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
    latch_wait(&t.freed, total);
    tracker_destroy(&t);
    latch_destroy(&held);
}

/* ---- acknowledgement lease ------------------------------------------- */

static liminal_group *lease_group(liminal_runtime *runtime, uint64_t lease_ms, int32_t policy) {
    liminal_group_options *options = group_options();
    CHECK_OK(liminal_group_options_set_ack_lease_ms(options, lease_ms));
    CHECK_OK(liminal_group_options_set_lease_policy(options, policy));
    liminal_group *group = new_group_with(runtime, LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, options);
    liminal_group_options_free(options);
    return group;
}

static void test_lease_crash_policy(void) {
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = lease_group(runtime, 50, LIMINAL_LEASE_CRASH);
    keeper k;
    keeper_init(&k);
    crash_log crashes;
    crash_log_init(&crashes);
    liminal_consumer *sleeper = register_consumer(group, "a-sleeper", 8, keeping(&k), logging(&crashes));
    liminal_consumer *worker = register_consumer(group, "b-worker", 8, acking(), no_crash());
    liminal_message *message = new_message(1);
    liminal_outcome *outcome = NULL;
    int64_t start = now_ns();
    CHECK_OK(liminal_group_dispatch(group, message, NULL, &outcome));
    CHECK(ms_since(start) >= 50); /* not taken back before the lease ran out */
    CHECK(strcmp(liminal_outcome_delivered_to(outcome), "b-worker") == 0);
    CHECK(liminal_outcome_lease_expired(outcome) == 1);
    CHECK(liminal_outcome_rerouted_count(outcome) == 1);
    CHECK(strcmp(liminal_outcome_rerouted_from(outcome, 0), "a-sleeper") == 0);
    CHECK(latch_count(&k.kept_latch) == 1);
    latch_wait(&crashes.reports, 1);
    CHECK(crashes.kind == LIMINAL_CRASH_LEASE_EXPIRED && !crashes.alive);
    CHECK(!liminal_consumer_is_alive(sleeper));
    /* Its late answer is fenced off. */
    CHECK_STATUS(liminal_delivery_ack(keeper_get(&k, 0)), LIMINAL_STALE_DELIVERY);
    liminal_metrics m = metrics_of(runtime);
    CHECK(m.lease_expired == 1 && m.delivered == 1);
    liminal_outcome_free(outcome);
    liminal_message_free(message);
    liminal_consumer_free(sleeper);
    liminal_consumer_free(worker);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
    keeper_destroy(&k);
    crash_log_destroy(&crashes);
}

static void test_lease_quarantine_policy(void) {
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = lease_group(runtime, 50, LIMINAL_LEASE_QUARANTINE);
    keeper k;
    keeper_init(&k);
    crash_log crashes;
    crash_log_init(&crashes);
    liminal_consumer *sleeper = register_consumer(group, "a-sleeper", 8, keeping(&k), logging(&crashes));
    liminal_consumer *worker = register_consumer(group, "b-worker", 8, acking(), no_crash());
    liminal_message *message = new_message(1);
    liminal_outcome *outcome = NULL;
    CHECK_OK(liminal_group_dispatch(group, message, NULL, &outcome));
    CHECK(strcmp(liminal_outcome_delivered_to(outcome), "b-worker") == 0);
    CHECK(liminal_outcome_lease_expired(outcome) == 1);
    liminal_outcome_free(outcome);
    latch_wait(&crashes.reports, 1);
    CHECK(crashes.kind == LIMINAL_CRASH_LEASE_EXPIRED && crashes.alive);
    CHECK(liminal_consumer_is_alive(sleeper));
    CHECK(liminal_consumer_is_paused(sleeper));
    /* Paused: the next message skips it although it comes first. */
    CHECK_OK(liminal_group_dispatch(group, message, NULL, &outcome));
    CHECK(strcmp(liminal_outcome_delivered_to(outcome), "b-worker") == 0);
    liminal_outcome_free(outcome);
    CHECK(latch_count(&k.kept_latch) == 1);
    CHECK(liminal_consumer_is_paused(sleeper));
    /* It answers (late: fenced off), and is given work again. */
    CHECK_STATUS(liminal_delivery_ack(keeper_get(&k, 0)), LIMINAL_STALE_DELIVERY);
    /* BUG check: the header says paused "until it answers something". */
    BUG_IF(liminal_consumer_is_paused(sleeper),
           "a quarantined consumer is still paused after answering its expired delivery");
    atomic_store(&k.ack_mode, 1);
    CHECK_OK(liminal_group_dispatch(group, message, NULL, &outcome));
    BUG_IF(strcmp(liminal_outcome_delivered_to(outcome), "a-sleeper") != 0,
           "after answering, the quarantined consumer got nothing new (delivered to %s)",
           liminal_outcome_delivered_to(outcome));
    liminal_outcome_free(outcome);
    CHECK(latch_count(&crashes.reports) == 1); /* one report per expiry */
    liminal_message_free(message);
    liminal_consumer_free(sleeper);
    liminal_consumer_free(worker);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
    keeper_destroy(&k);
    crash_log_destroy(&crashes);
}

static void test_extend_lease(void) {
    const int lease = scaled(50, 300);
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = lease_group(runtime, (uint64_t)lease, LIMINAL_LEASE_CRASH);
    keeper k;
    keeper_init(&k);
    crash_log crashes;
    crash_log_init(&crashes);
    liminal_consumer *holder = register_consumer(group, "a-holder", 8, keeping(&k), logging(&crashes));
    liminal_consumer *other = register_consumer(group, "b-other", 8, acking(), no_crash());
    tracker t;
    tracker_init(&t, 1);
    CHECK_OK(dispatch_tracked(group, &t, 0, NULL));
    latch_wait(&k.kept_latch, 1);
    liminal_delivery *d = keeper_get(&k, 0);
    int64_t start = now_ns();
    int extensions = 0;
    /* Hold it for five leases, extending (by four leases) every 20 ms. */
    while (ms_since(start) < 5 * lease) {
        CHECK_OK(liminal_delivery_extend_lease(d, 4 * (uint64_t)lease));
        extensions += 1;
        pace_ms(20);
    }
    CHECK_OK(liminal_delivery_ack(d));
    latch_wait(&t.done, 1);
    CHECK(ms_since(start) >= 5 * lease);
    CHECK(t.slots[0].status == LIMINAL_OK && strcmp(t.slots[0].delivered_to, "a-holder") == 0);
    CHECK(t.slots[0].lease_expired == 0 && t.slots[0].attempts == 1);
    CHECK(latch_count(&crashes.reports) == 0 && liminal_consumer_is_alive(holder));
    printf("extend lease: held %lld ms (lease %d ms, %d extensions)\n",
           (long long)ms_since(start), lease, extensions);
    liminal_consumer_free(holder);
    liminal_consumer_free(other);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
    tracker_destroy(&t);
    keeper_destroy(&k);
    crash_log_destroy(&crashes);
}

/* ---- release with a delay -------------------------------------------- */

typedef struct release_times {
    atomic_llong released_at;
    atomic_llong delivered_at;
} release_times;

static liminal_verdict release_later(void *user, liminal_delivery *delivery) {
    release_times *r = user;
    atomic_store(&r->released_at, now_ns());
    CHECK_OK(liminal_delivery_release(delivery, 100));
    return LIMINAL_VERDICT_DEFER;
}

static liminal_verdict note_and_ack(void *user, liminal_delivery *delivery) {
    release_times *r = user;
    atomic_store(&r->delivered_at, now_ns());
    CHECK(liminal_delivery_attempt(delivery) == 2);
    CHECK(liminal_delivery_redelivered(delivery)); /* it reached a callback before */
    return LIMINAL_VERDICT_ACK;
}

static void test_release_with_delay(void) {
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = new_group_with(runtime, LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, NULL);
    release_times r;
    atomic_store(&r.released_at, 0);
    atomic_store(&r.delivered_at, 0);
    liminal_delivery_callback dr = {release_later, &r, NULL};
    liminal_consumer *releaser = register_consumer(group, "a-releaser", 8, dr, no_crash());
    liminal_delivery_callback da = {note_and_ack, &r, NULL};
    liminal_consumer *taker = register_consumer(group, "b-taker", 8, da, no_crash());
    liminal_message *message = new_message(1);
    liminal_outcome *outcome = NULL;
    CHECK_OK(liminal_group_dispatch(group, message, NULL, &outcome));
    CHECK(strcmp(liminal_outcome_delivered_to(outcome), "b-taker") == 0);
    CHECK(liminal_outcome_released(outcome) == 1 && liminal_outcome_attempts(outcome) == 2);
    CHECK(liminal_outcome_crashed_handling(outcome) == 0 && liminal_outcome_rerouted_count(outcome) == 0);
    long long gap_ms = (atomic_load(&r.delivered_at) - atomic_load(&r.released_at)) / 1000000;
    printf("release(100): re-routed after %lld ms\n", gap_ms);
    CHECK(gap_ms >= 100); /* no sooner than the delay */
    CHECK(liminal_consumer_is_alive(releaser));
    CHECK(metrics_of(runtime).released == 1);
    liminal_outcome_free(outcome);
    liminal_message_free(message);
    liminal_consumer_free(releaser);
    liminal_consumer_free(taker);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
}

/* A released message never goes back to the consumer that released it:
 * alone in its group, it waits (here until its deadline). */
static liminal_verdict release_now(void *user, liminal_delivery *delivery) {
    (void)delivery;
    latch_add(user);
    return LIMINAL_VERDICT_RELEASE;
}

static void test_release_never_returns(void) {
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = new_group_with(runtime, LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, NULL);
    latch seen;
    latch_init(&seen);
    liminal_delivery_callback d = {release_now, &seen, NULL};
    liminal_consumer *only = register_consumer(group, "only", 8, d, no_crash());
    liminal_dispatch_options *options = dispatch_options(100, 0);
    liminal_message *message = new_message(1);
    liminal_outcome *outcome = NULL;
    CHECK_STATUS(liminal_group_dispatch(group, message, options, &outcome), LIMINAL_EXPIRED);
    CHECK(latch_count(&seen) == 1); /* offered once, never again */
    CHECK(liminal_consumer_is_alive(only));
    CHECK(metrics_of(runtime).released == 1);
    liminal_message_free(message);
    liminal_dispatch_options_free(options);
    liminal_consumer_free(only);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
    latch_destroy(&seen);
}

/* Waiting messages are looked at again when capacity, tags or the routing
 * function change (no answer needed). */
static liminal_route_result route_nobody(void *user, const liminal_message *message,
                                         const liminal_consumer_view *views, size_t count,
                                         const char **selected) {
    (void)user; (void)message; (void)views; (void)count; (void)selected;
    return LIMINAL_ROUTE_NONE;
}

static void test_waiting_looked_at_again(void) {
    liminal_runtime *runtime = new_runtime();

    /* Capacity: a pull consumer holding 1 of max 1, three waiting. */
    liminal_group *group = new_group_with(runtime, LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, NULL);
    liminal_consumer *puller = register_consumer(group, "puller", 1, no_delivery(), no_crash());
    tracker t;
    tracker_init(&t, 4);
    for (int i = 0; i < 4; i++) CHECK_OK(dispatch_tracked(group, &t, i, NULL));
    liminal_delivery *held[4] = {NULL, NULL, NULL, NULL};
    CHECK_OK(liminal_consumer_next_delivery(puller, 30000, &held[0]));
    CHECK(group_waiting(group) == 3);
    CHECK_OK(liminal_consumer_set_max_in_flight(puller, 4)); /* the three come in */
    for (int i = 1; i < 4; i++) CHECK_OK(liminal_consumer_next_delivery(puller, 30000, &held[i]));
    CHECK(group_waiting(group) == 0);
    CHECK_OK(liminal_consumer_set_max_in_flight(puller, 1)); /* takes nothing away */
    for (int i = 0; i < 4; i++) {
        CHECK_OK(liminal_delivery_ack(held[i]));
        liminal_delivery_free(held[i]);
    }
    latch_wait(&t.done, 4);
    for (int i = 0; i < 4; i++) CHECK(t.slots[i].status == LIMINAL_OK);
    liminal_consumer_free(puller);
    liminal_group_free(group);
    latch_wait(&t.freed, 4); /* free_user runs right after each completion */
    tracker_destroy(&t);

    /* Tags: an affinity message waits until a consumer carries its tag. */
    liminal_routing *affinity = NULL;
    CHECK_OK(liminal_routing_builtin(LIMINAL_BUILTIN_AFFINITY, "needs", &affinity));
    CHECK_OK(liminal_group_new(runtime, affinity, NULL, &group));
    liminal_routing_free(affinity);
    liminal_consumer *plain = register_consumer(group, "plain", 8, acking(), no_crash());
    tracker_init(&t, 1);
    liminal_message *message = new_message(0);
    CHECK_OK(liminal_message_set_text(message, "needs", "gpu"));
    CHECK_OK(liminal_group_dispatch_async(group, message, NULL, track(&t, 0), NULL));
    liminal_message_free(message);
    CHECK(group_waiting(group) == 1 && latch_count(&t.done) == 0);
    const char *tags[] = {"gpu"};
    CHECK_OK(liminal_consumer_set_tags(plain, tags, 1));
    latch_wait(&t.done, 1);
    CHECK(t.slots[0].status == LIMINAL_OK && strcmp(t.slots[0].delivered_to, "plain") == 0);
    liminal_consumer_free(plain);
    liminal_group_free(group);
    latch_wait(&t.freed, 1);
    tracker_destroy(&t);

    /* Routing: a function that picks nobody, then a hot deploy. */
    liminal_route_callback none = {route_nobody, NULL, NULL};
    liminal_routing *nobody = NULL;
    CHECK_OK(liminal_routing_new(runtime, none, (const uint8_t *)"nobody", 6, "nobody", &nobody));
    CHECK_OK(liminal_group_new(runtime, nobody, NULL, &group));
    liminal_routing_free(nobody);
    liminal_consumer *worker = register_consumer(group, "worker", 8, acking(), no_crash());
    tracker_init(&t, 1);
    CHECK_OK(dispatch_tracked(group, &t, 0, NULL));
    CHECK(group_waiting(group) == 1 && latch_count(&t.done) == 0);
    liminal_routing *first = NULL;
    CHECK_OK(liminal_routing_builtin(LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, NULL, &first));
    CHECK_OK(liminal_group_deploy(group, first));
    liminal_routing_free(first);
    latch_wait(&t.done, 1);
    CHECK(t.slots[0].status == LIMINAL_OK && strcmp(t.slots[0].delivered_to, "worker") == 0);
    liminal_consumer_free(worker);
    liminal_group_free(group);
    latch_wait(&t.freed, 1);
    tracker_destroy(&t);
    CHECK_OK(liminal_runtime_free(runtime));
}

/* ---- overflow policies ------------------------------------------------ */

static liminal_group *room_group(liminal_runtime *runtime, int32_t policy, uint64_t block_ms) {
    liminal_group_options *options = group_options();
    CHECK_OK(liminal_group_options_set_waiting_room(options, 4));
    CHECK_OK(liminal_group_options_set_overflow(options, policy, block_ms));
    liminal_group *group = new_group_with(runtime, LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, options);
    liminal_group_options_free(options);
    return group;
}

static void test_overflow_reject(void) {
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = room_group(runtime, LIMINAL_OVERFLOW_REJECT, 0);
    dead_box dead;
    dead_box_init(&dead);
    set_dead_letter(group, &dead);
    tracker t;
    tracker_init(&t, 6);
    for (int i = 0; i < 4; i++) CHECK_OK(dispatch_tracked(group, &t, i, NULL));
    CHECK(group_waiting(group) == 4);
    CHECK_STATUS(dispatch_tracked(group, &t, 4, NULL), LIMINAL_QUEUE_FULL);
    CHECK(atomic_load(&t.slots[4].freed) == 1 && atomic_load(&t.slots[4].completions) == 0);
    liminal_message *message = new_message(5);
    liminal_outcome *outcome = NULL;
    CHECK_STATUS(liminal_group_dispatch(group, message, NULL, &outcome), LIMINAL_QUEUE_FULL);
    liminal_message_free(message);
    CHECK(group_waiting(group) == 4);
    liminal_metrics m = metrics_of(runtime);
    CHECK(m.rejected == 2 && m.dispatched == 4 && m.waiting == 4);
    liminal_consumer *consumer = register_consumer(group, "a", 8, acking(), no_crash());
    latch_wait(&t.done, 4);
    for (int i = 0; i < 4; i++) CHECK(t.slots[i].status == LIMINAL_OK);
    CHECK(latch_count(&dead.seen) == 0); /* rejected dispatches are not dead letters */
    CHECK(metrics_of(runtime).rejected == 2);
    liminal_consumer_free(consumer);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
    tracker_destroy(&t);
    dead_box_destroy(&dead);
}

static void test_overflow_drop_oldest(void) {
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = room_group(runtime, LIMINAL_OVERFLOW_DROP_OLDEST, 0);
    dead_box dead;
    dead_box_init(&dead);
    set_dead_letter(group, &dead);
    tracker t;
    tracker_init(&t, 5);
    for (int i = 0; i < 4; i++) CHECK_OK(dispatch_tracked(group, &t, i, NULL));
    CHECK(group_waiting(group) == 4);
    CHECK_OK(dispatch_tracked(group, &t, 4, NULL)); /* accepted: the oldest goes */
    latch_wait(&t.done, 1);
    CHECK(atomic_load(&t.slots[0].completions) == 1 && t.slots[0].status == LIMINAL_DROPPED);
    latch_wait(&dead.seen, 1);
    CHECK(dead.last_status == LIMINAL_DROPPED && dead.last_n == 0);
    CHECK(group_waiting(group) == 4);
    liminal_metrics m = metrics_of(runtime);
    CHECK(m.dropped == 1 && m.dead_lettered == 1 && m.rejected == 0);
    liminal_consumer *consumer = register_consumer(group, "a", 8, acking(), no_crash());
    latch_wait(&t.done, 5);
    for (int i = 1; i < 5; i++) {
        CHECK(atomic_load(&t.slots[i].completions) == 1);
        CHECK(t.slots[i].status == LIMINAL_OK);
    }
    CHECK(latch_count(&dead.seen) == 1);
    liminal_consumer_free(consumer);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
    tracker_destroy(&t);
    dead_box_destroy(&dead);
}

typedef struct blocked_dispatch {
    liminal_group *group;
    tracker *t;
    int index;
    atomic_int *acked;
    liminal_status status;
    int acked_at_return;
    int64_t elapsed_ms;
} blocked_dispatch;

static void *dispatch_blocking_thread(void *arg) {
    blocked_dispatch *b = arg;
    int64_t start = now_ns();
    b->status = dispatch_tracked(b->group, b->t, b->index, NULL);
    b->elapsed_ms = ms_since(start);
    b->acked_at_return = b->acked ? atomic_load(b->acked) : 0;
    return NULL;
}

static void test_overflow_block(void) {
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = room_group(runtime, LIMINAL_OVERFLOW_BLOCK, 30000);
    liminal_consumer *puller = register_consumer(group, "puller", 1, no_delivery(), no_crash());
    tracker t;
    tracker_init(&t, 6);
    CHECK_OK(dispatch_tracked(group, &t, 0, NULL));
    liminal_delivery *d = NULL;
    CHECK_OK(liminal_consumer_next_delivery(puller, 30000, &d)); /* held: the puller is full */
    for (int i = 1; i < 5; i++) CHECK_OK(dispatch_tracked(group, &t, i, NULL));
    CHECK(group_waiting(group) == 4);
    atomic_int acked;
    atomic_store(&acked, 0);
    blocked_dispatch b = {group, &t, 5, &acked, LIMINAL_PANIC, -1, 0};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, dispatch_blocking_thread, &b) == 0);
    pace_ms(50); /* let it block (the check below holds either way) */
    atomic_store(&acked, 1);
    CHECK_OK(liminal_delivery_ack(d)); /* frees room: one waiting message moves on */
    liminal_delivery_free(d);
    pthread_join(thread, NULL);
    CHECK(b.status == LIMINAL_OK);
    /* BUG check: under BLOCK the call returns only once there is room. */
    BUG_IF(b.acked_at_return != 1,
           "overflow BLOCK: dispatch into a full waiting room returned %s before any room was freed",
           liminal_status_name(b.status));
    for (int answered = 1; answered < 6; answered++) {
        CHECK_OK(liminal_consumer_next_delivery(puller, 30000, &d));
        CHECK(message_n(liminal_delivery_message(d)) == answered); /* in order */
        CHECK_OK(liminal_delivery_ack(d));
        liminal_delivery_free(d);
    }
    latch_wait(&t.done, 6);
    for (int i = 0; i < 6; i++) CHECK(t.slots[i].status == LIMINAL_OK);
    CHECK(metrics_of(runtime).rejected == 0);
    liminal_consumer_free(puller);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
    tracker_destroy(&t);
}

static void test_overflow_block_times_out(void) {
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = room_group(runtime, LIMINAL_OVERFLOW_BLOCK, 100);
    tracker t;
    tracker_init(&t, 6);
    for (int i = 0; i < 4; i++) CHECK_OK(dispatch_tracked(group, &t, i, NULL));
    int64_t start = now_ns();
    CHECK_STATUS(dispatch_tracked(group, &t, 4, NULL), LIMINAL_QUEUE_FULL);
    CHECK(ms_since(start) >= 100);
    CHECK(atomic_load(&t.slots[4].freed) == 1 && atomic_load(&t.slots[4].completions) == 0);
    liminal_message *message = new_message(5);
    liminal_outcome *outcome = NULL;
    start = now_ns();
    CHECK_STATUS(liminal_group_dispatch(group, message, NULL, &outcome), LIMINAL_QUEUE_FULL);
    CHECK(ms_since(start) >= 100);
    liminal_message_free(message);
    CHECK(group_waiting(group) == 4);
    CHECK(metrics_of(runtime).rejected == 2);
    liminal_group_free(group); /* the four waiting fail: the group closed */
    latch_wait(&t.done, 4);
    for (int i = 0; i < 4; i++) CHECK(t.slots[i].status == LIMINAL_NO_CONSUMER_AVAILABLE);
    CHECK(metrics_of(runtime).group_closed == 4);
    CHECK_OK(liminal_runtime_free(runtime));
    tracker_destroy(&t);
}

/* ---- deadlines and the blocking dispatch's timeout ------------------- */

static void test_deadline_while_waiting(void) {
    liminal_runtime *runtime = new_runtime();
    liminal_group_options *options = group_options();
    CHECK_OK(liminal_group_options_set_deadline_ms(options, 50)); /* the group's default */
    liminal_group *group = new_group_with(runtime, LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, options);
    liminal_group_options_free(options);
    dead_box dead;
    dead_box_init(&dead);
    set_dead_letter(group, &dead);
    tracker t;
    tracker_init(&t, 2);
    liminal_dispatch_options *own = dispatch_options(80, 0); /* its own deadline */
    int64_t start = now_ns();
    CHECK_OK(dispatch_tracked(group, &t, 0, NULL));
    CHECK_OK(dispatch_tracked(group, &t, 1, own));
    latch_wait(&t.done, 2);
    CHECK(ms_since(start) >= 80);
    CHECK(t.slots[0].status == LIMINAL_EXPIRED && t.slots[1].status == LIMINAL_EXPIRED);
    latch_wait(&dead.seen, 2);
    CHECK(dead.last_status == LIMINAL_EXPIRED);
    CHECK(group_waiting(group) == 0);
    liminal_metrics m = metrics_of(runtime);
    CHECK(m.expired == 2 && m.dead_lettered == 2);
    /* A blocking dispatch reports it too. */
    liminal_message *message = new_message(9);
    liminal_outcome *outcome = NULL;
    start = now_ns();
    CHECK_STATUS(liminal_group_dispatch(group, message, own, &outcome), LIMINAL_EXPIRED);
    CHECK(ms_since(start) >= 80 && outcome == NULL);
    liminal_message_free(message);
    liminal_dispatch_options_free(own);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
    tracker_destroy(&t);
    dead_box_destroy(&dead);
}

static void test_deadline_while_held(void) {
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = new_group_with(runtime, LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, NULL);
    dead_box dead;
    dead_box_init(&dead);
    set_dead_letter(group, &dead);
    keeper k;
    keeper_init(&k);
    liminal_consumer *holder = register_consumer(group, "holder", 8, keeping(&k), no_crash());
    tracker t;
    tracker_init(&t, 1);
    liminal_dispatch_options *options = dispatch_options(50, 0);
    int64_t start = now_ns();
    CHECK_OK(dispatch_tracked(group, &t, 0, options));
    latch_wait(&t.done, 1);
    CHECK(ms_since(start) >= 50);
    CHECK(t.slots[0].status == LIMINAL_EXPIRED);
    CHECK(latch_count(&k.kept_latch) == 1); /* it was held when it expired */
    latch_wait(&dead.seen, 1);
    CHECK(dead.last_status == LIMINAL_EXPIRED && dead.last_n == 0);
    /* The holder's later answer is fenced off; it is not blamed. */
    CHECK_STATUS(liminal_delivery_ack(keeper_get(&k, 0)), LIMINAL_STALE_DELIVERY);
    CHECK(liminal_consumer_is_alive(holder));
    uint32_t in_flight = 9;
    CHECK_OK(liminal_consumer_in_flight(holder, &in_flight));
    CHECK(in_flight == 0);
    liminal_dispatch_options_free(options);
    liminal_consumer_free(holder);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
    tracker_destroy(&t);
    keeper_destroy(&k);
    dead_box_destroy(&dead);
}

static void test_blocking_dispatch_timeout(void) {
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = new_group_with(runtime, LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, NULL);
    dead_box dead;
    dead_box_init(&dead);
    set_dead_letter(group, &dead);
    liminal_dispatch_options *options = dispatch_options(0, 50);
    liminal_message *message = new_message(3);
    liminal_outcome *outcome = NULL;
    /* Waiting: nobody there. */
    int64_t start = now_ns();
    CHECK_STATUS(liminal_group_dispatch(group, message, options, &outcome), LIMINAL_TIMED_OUT);
    CHECK(ms_since(start) >= 50 && outcome == NULL);
    CHECK(group_waiting(group) == 0); /* withdrawn */
    latch_wait(&dead.seen, 1);
    CHECK(dead.last_status == LIMINAL_TIMED_OUT && dead.last_n == 3);
    /* Held: the holder's late answer is fenced off. */
    keeper k;
    keeper_init(&k);
    liminal_consumer *holder = register_consumer(group, "holder", 8, keeping(&k), no_crash());
    start = now_ns();
    CHECK_STATUS(liminal_group_dispatch(group, message, options, &outcome), LIMINAL_TIMED_OUT);
    CHECK(ms_since(start) >= 50);
    CHECK(latch_count(&k.kept_latch) == 1);
    CHECK_STATUS(liminal_delivery_ack(keeper_get(&k, 0)), LIMINAL_STALE_DELIVERY);
    liminal_metrics m = metrics_of(runtime);
    CHECK(m.timed_out == 2 && m.delivered == 0);
    liminal_message_free(message);
    liminal_dispatch_options_free(options);
    liminal_consumer_free(holder);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
    keeper_destroy(&k);
    dead_box_destroy(&dead);
}

/* ---- drain under load -------------------------------------------------- */

typedef struct drain_load {
    liminal_group *group;
    tracker *t;
    int accepted;
    liminal_status ended_with;
    latch started;
    int target;
} drain_load;

static void *produce_until_draining(void *arg) {
    drain_load *load = arg;
    for (int i = 0; i < load->t->capacity; i++) {
        liminal_status status = dispatch_tracked(load->group, load->t, i, NULL);
        if (status != LIMINAL_OK) {
            load->ended_with = status;
            CHECK(atomic_load(&load->t->slots[i].freed) == 1); /* released at once */
            break;
        }
        load->accepted += 1;
        if (load->accepted == load->target) latch_add(&load->started);
        if (i % 64 == 63) pace_ms(1); /* pace the load */
    }
    return NULL;
}

typedef struct answerer {
    keeper *k;
    atomic_int stop;
    int answered;
} answerer;

static void *answer_kept(void *arg) {
    answerer *a = arg;
    while (!atomic_load(&a->stop) || a->answered < latch_count(&a->k->kept_latch)) {
        if (a->answered < latch_count(&a->k->kept_latch)) {
            CHECK_OK(liminal_delivery_ack(keeper_get(a->k, a->answered % 64)));
            pthread_mutex_lock(&a->k->mutex);
            liminal_delivery_free(a->k->all[a->answered % 64]);
            a->k->all[a->answered % 64] = NULL;
            pthread_mutex_unlock(&a->k->mutex);
            a->answered += 1;
        } else {
            latch_wait_for(&a->k->kept_latch, a->answered + 1, 1);
        }
    }
    return NULL;
}

/* A keeper variant for long runs: a ring of 64 (one held at a time). */
static liminal_verdict keep_ring(void *user, liminal_delivery *delivery) {
    keeper *k = user;
    liminal_delivery *kept = NULL;
    CHECK_OK(liminal_delivery_keep(delivery, &kept));
    pthread_mutex_lock(&k->mutex);
    CHECK(k->all[k->count % 64] == NULL);
    k->all[k->count % 64] = kept;
    k->count += 1;
    pthread_mutex_unlock(&k->mutex);
    latch_add(&k->kept_latch);
    return LIMINAL_VERDICT_DEFER;
}

static void test_drain_under_load(void) {
    const int capacity = 200000;
    liminal_runtime *runtime = new_runtime();
    liminal_group *group = new_group_with(runtime, LIMINAL_BUILTIN_LEAST_LOADED, NULL);
    keeper k;
    keeper_init(&k);
    liminal_delivery_callback dk = {keep_ring, &k, NULL};
    /* Ties go to the first in id order: the slow one gets work whenever free. */
    liminal_consumer *slow = register_consumer(group, "a-slow", 1, dk, no_crash());
    liminal_consumer *fast = register_consumer(group, "b-fast", 4, acking(), no_crash());
    answerer a = {&k, 0, 0};
    pthread_t answer_thread;
    CHECK(pthread_create(&answer_thread, NULL, answer_kept, &a) == 0);
    tracker t;
    tracker_init(&t, capacity);
    drain_load load;
    memset(&load, 0, sizeof load);
    load.group = group;
    load.t = &t;
    load.ended_with = LIMINAL_OK;
    load.target = scaled(2000, 1000);
    latch_init(&load.started);
    pthread_t producer;
    CHECK(pthread_create(&producer, NULL, produce_until_draining, &load) == 0);
    latch_wait(&load.started, 1);
    size_t left = 99;
    CHECK_OK(liminal_group_drain(group, 30000, &left));
    CHECK(left == 0);
    pthread_join(producer, NULL);
    CHECK(load.ended_with == LIMINAL_DRAINING);
    printf("drain: %d accepted before draining\n", load.accepted);
    /* Every accepted dispatch completed, once, before drain returned.
     * BUG check: drain returned left == 0 with completions still to come. */
    int done_at_return = latch_count(&t.done);
    if (done_at_return != load.accepted) {
        latch_wait(&t.done, load.accepted); /* do they come later? */
        for (int i = 0; i < load.accepted; i++)
            if (atomic_load(&t.slots[i].completions) == 1 && t.slots[i].status != LIMINAL_OK)
                fprintf(stderr, "slot %d: %s\n", i, liminal_status_name(t.slots[i].status));
    }
    BUG_IF(done_at_return != load.accepted,
           "liminal_group_drain returned LIMINAL_OK with left 0 while %d of %d accepted "
           "dispatches had not completed yet (they completed later)",
           load.accepted - done_at_return, load.accepted);
    CHECK(atomic_load(&t.slots[load.accepted].completions) == 0); /* the refused one */
    for (int i = 0; i < load.accepted; i++) {
        CHECK(atomic_load(&t.slots[i].completions) == 1);
        CHECK(t.slots[i].status == LIMINAL_OK);
    }
    size_t in_flight = 9;
    CHECK_OK(liminal_group_in_flight(group, &in_flight));
    CHECK(in_flight == 0 && group_waiting(group) == 0);
    liminal_message *message = new_message(0);
    liminal_outcome *outcome = NULL;
    CHECK_STATUS(liminal_group_dispatch(group, message, NULL, &outcome), LIMINAL_DRAINING);
    liminal_message_free(message);
    atomic_store(&a.stop, 1);
    pthread_join(answer_thread, NULL);
    CHECK(latch_count(&k.kept_latch) > 0 && latch_count(&k.kept_latch) < load.accepted);
    liminal_consumer_free(slow);
    liminal_consumer_free(fast);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
    k.count = 0; /* the ring's deliveries were freed as they were answered */
    keeper_destroy(&k);
    latch_destroy(&load.started);
    tracker_destroy(&t);
}

/* ---- statistics ------------------------------------------------------- */

/* A small JSON validator (RFC 8259 grammar, no semantics). */
static const char *json_value(const char *p);

static const char *json_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

static const char *json_string(const char *p) {
    if (*p != '"') return NULL;
    for (p++; *p != '"'; p++) {
        if ((unsigned char)*p < 0x20) return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)p[i])) return NULL;
                p += 4;
            } else if (strchr("\"\\/bfnrt", *p) == NULL || *p == 0) {
                return NULL;
            }
        }
    }
    return p + 1;
}

static const char *json_number(const char *p) {
    if (*p == '-') p++;
    if (*p == '0') p++;
    else if (isdigit((unsigned char)*p)) while (isdigit((unsigned char)*p)) p++;
    else return NULL;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) return NULL;
        while (isdigit((unsigned char)*p)) p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!isdigit((unsigned char)*p)) return NULL;
        while (isdigit((unsigned char)*p)) p++;
    }
    return p;
}

static const char *json_value(const char *p) {
    p = json_ws(p);
    if (*p == '{') {
        p = json_ws(p + 1);
        if (*p == '}') return p + 1;
        for (;;) {
            p = json_string(json_ws(p));
            if (!p) return NULL;
            p = json_ws(p);
            if (*p != ':') return NULL;
            p = json_value(p + 1);
            if (!p) return NULL;
            p = json_ws(p);
            if (*p == '}') return p + 1;
            if (*p != ',') return NULL;
            p++;
        }
    }
    if (*p == '[') {
        p = json_ws(p + 1);
        if (*p == ']') return p + 1;
        for (;;) {
            p = json_value(p);
            if (!p) return NULL;
            p = json_ws(p);
            if (*p == ']') return p + 1;
            if (*p != ',') return NULL;
            p++;
        }
    }
    if (*p == '"') return json_string(p);
    if (strncmp(p, "true", 4) == 0) return p + 4;
    if (strncmp(p, "false", 5) == 0) return p + 5;
    if (strncmp(p, "null", 4) == 0) return p + 4;
    return json_number(p);
}

static int is_json(const char *text) {
    const char *end = json_value(text);
    return end != NULL && *json_ws(end) == 0;
}

static char *copy_stats(liminal_runtime *runtime, int prometheus) {
    size_t len = 0;
    liminal_status status = prometheus ? liminal_runtime_stats_prometheus(runtime, NULL, 0, &len)
                                       : liminal_runtime_stats_json(runtime, NULL, 0, &len);
    CHECK(status == LIMINAL_BUFFER_TOO_SMALL && len > 0);
    /* Room for growth between the two calls. */
    size_t capacity = len + 4096;
    char *buffer = malloc(capacity);
    CHECK(buffer != NULL);
    size_t full = 0;
    CHECK_OK(prometheus ? liminal_runtime_stats_prometheus(runtime, buffer, capacity, &full)
                        : liminal_runtime_stats_json(runtime, buffer, capacity, &full));
    CHECK(strlen(buffer) == full);
    return buffer;
}

static void test_stats_json_and_prometheus(void) {
    liminal_runtime *runtime = new_runtime();
    liminal_group_options *options = group_options();
    CHECK_OK(liminal_group_options_set_name(options, "orders"));
    liminal_group *group = new_group_with(runtime, LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, options);
    liminal_group_options_free(options);
    liminal_consumer *consumer = register_consumer(group, "worker-1", 8, acking(), no_crash());
    liminal_message *message = new_message(1);
    for (int i = 0; i < 3; i++) {
        liminal_outcome *outcome = NULL;
        CHECK_OK(liminal_group_dispatch(group, message, NULL, &outcome));
        liminal_outcome_free(outcome);
    }
    char *json = copy_stats(runtime, 0);
    CHECK(is_json(json));
    CHECK(strstr(json, "\"messaging.system\":\"liminal\"") != NULL);
    CHECK(strstr(json, "\"orders\"") != NULL && strstr(json, "\"worker-1\"") != NULL);
    char *prometheus = copy_stats(runtime, 1);
    CHECK(strstr(prometheus, "liminal_messages_sent_total") != NULL);
    printf("stats: %zu bytes of JSON, %zu of Prometheus text\n", strlen(json), strlen(prometheus));
    free(json);
    free(prometheus);
    liminal_message_free(message);
    liminal_consumer_free(consumer);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
}

typedef struct stats_sink {
    latch calls;
    latch freed;
    atomic_int bad;
    atomic_int after_free;
} stats_sink;

static void on_stats(void *user, const char *json, size_t len) {
    stats_sink *s = user;
    if (latch_count(&s->freed) > 0) atomic_fetch_add(&s->after_free, 1);
    if (json == NULL || strlen(json) != len || !is_json(json) ||
        strstr(json, "\"messaging.system\":\"liminal\"") == NULL)
        atomic_fetch_add(&s->bad, 1);
    latch_add(&s->calls);
}

static void on_stats_free(void *user) { latch_add(&((stats_sink *)user)->freed); }

static void test_stats_callback(void) {
    liminal_runtime *runtime = new_runtime();
    stats_sink sink;
    latch_init(&sink.calls);
    latch_init(&sink.freed);
    atomic_store(&sink.bad, 0);
    atomic_store(&sink.after_free, 0);
    liminal_stats_callback cb = {on_stats, &sink, on_stats_free};
    CHECK_OK(liminal_runtime_set_stats_callback(runtime, 10, cb));
    latch_wait(&sink.calls, 2);
    CHECK(atomic_load(&sink.bad) == 0);
    liminal_stats_callback stop = {NULL, NULL, NULL};
    CHECK_OK(liminal_runtime_set_stats_callback(runtime, 0, stop));
    latch_wait(&sink.freed, 1); /* released once its last call returned */
    CHECK(atomic_load(&sink.after_free) == 0);
    CHECK_OK(liminal_runtime_free(runtime));
    CHECK(latch_count(&sink.freed) == 1);
    latch_destroy(&sink.calls);
    latch_destroy(&sink.freed);
}

typedef struct named_test {
    const char *name;
    void (*run)(void);
} named_test;

static const named_test TESTS[] = {
    {"crash_with_everything_waiting", test_crash_with_everything_waiting},
    {"lease_crash_policy", test_lease_crash_policy},
    {"lease_quarantine_policy", test_lease_quarantine_policy},
    {"extend_lease", test_extend_lease},
    {"release_with_delay", test_release_with_delay},
    {"release_never_returns", test_release_never_returns},
    {"waiting_looked_at_again", test_waiting_looked_at_again},
    {"overflow_reject", test_overflow_reject},
    {"overflow_drop_oldest", test_overflow_drop_oldest},
    {"overflow_block", test_overflow_block},
    {"overflow_block_times_out", test_overflow_block_times_out},
    {"deadline_while_waiting", test_deadline_while_waiting},
    {"deadline_while_held", test_deadline_while_held},
    {"blocking_dispatch_timeout", test_blocking_dispatch_timeout},
    {"drain_under_load", test_drain_under_load},
    {"stats_json_and_prometheus", test_stats_json_and_prometheus},
    {"stats_callback", test_stats_callback},
};

int main(int argc, char **argv) {
    for (size_t i = 0; i < sizeof TESTS / sizeof TESTS[0]; i++) {
        if (argc > 1 && strstr(TESTS[i].name, argv[1]) == NULL) continue;
        printf("-- %s\n", TESTS[i].name);
        fflush(stdout);
        TESTS[i].run();
    }
    return bugs_exit("test_waiting_room");
}
