/* `liminal_runtime_free`: when it returns, every callback's free_user has
 * run (issue 23), checked per kind of callback:
 *
 * 1. handles kept: the group, its consumers, a routing handle and kept
 *    deliveries all outlive the runtime; free_user of every delivery,
 *    crash, completion, routing, dead-letter and stats callback has run
 *    when the free returns, and freeing the handles later runs none twice;
 * 2. host threads racing the shutdown: threads answer kept deliveries and
 *    dispatch into the group while the main thread frees the runtime; the
 *    count is read right after the free returns, with the threads still
 *    calling in.
 *
 * Run plain, under ASan+UBSan and under valgrind (scripts/test.sh). */
#include "check.h"

enum kind { DELIVERY, CRASH, COMPLETION, ROUTING, DEAD_LETTER, STATS, KINDS };
static const char *const KIND_NAMES[KINDS] = {"delivery", "crash",       "completion",
                                              "routing",  "dead letter", "stats"};

/* Per kind: user pointers handed to the library, and free_user calls. */
static atomic_int given[KINDS];
static atomic_int freed[KINDS];

/* A user pointer is the address of its kind's counter. */
static void *user_of(enum kind kind) {
    atomic_fetch_add(&given[kind], 1);
    return &freed[kind];
}

static void free_user(void *user) { atomic_fetch_add((atomic_int *)user, 1); }

static void check_all_freed(const char *when) {
    for (int k = 0; k < KINDS; k++) {
        int g = atomic_load(&given[k]), f = atomic_load(&freed[k]);
        BUG_IF(f != g, "%s: %s callbacks: %d handed over, %d freed", when, KIND_NAMES[k], g, f);
    }
}

static void reset_counts(void) {
    for (int k = 0; k < KINDS; k++) {
        atomic_store(&given[k], 0);
        atomic_store(&freed[k], 0);
    }
}

/* Kept deliveries, answered by whoever takes them. */
#define MAX_KEPT 4096
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;
static liminal_delivery *kept[MAX_KEPT];
static int kept_count;

static void stash_kept(liminal_delivery *delivery) {
    liminal_delivery *owned = NULL;
    if (liminal_delivery_keep(delivery, &owned) != LIMINAL_OK) return;
    pthread_mutex_lock(&kept_lock);
    if (kept_count < MAX_KEPT) {
        kept[kept_count++] = owned;
        owned = NULL;
    }
    pthread_mutex_unlock(&kept_lock);
    liminal_delivery_free(owned);
}

static liminal_delivery *take_kept(void) {
    pthread_mutex_lock(&kept_lock);
    liminal_delivery *delivery = kept_count > 0 ? kept[--kept_count] : NULL;
    pthread_mutex_unlock(&kept_lock);
    return delivery;
}

static void free_all_kept(void) {
    liminal_delivery *delivery;
    while ((delivery = take_kept()) != NULL) liminal_delivery_free(delivery);
}

static liminal_verdict defer_it(void *user, liminal_delivery *delivery) {
    (void)user;
    stash_kept(delivery);
    return LIMINAL_VERDICT_DEFER;
}

static void on_crash(void *user, const char *id, liminal_crash_kind kind, const char *reason,
                     bool alive) {
    (void)user, (void)id, (void)kind, (void)reason, (void)alive;
}

static void on_complete(void *user, liminal_status status, const liminal_outcome *outcome) {
    (void)user, (void)status, (void)outcome;
}

static void on_dead_letter(void *user, const liminal_message *message,
                           const liminal_outcome *trail) {
    (void)user, (void)message, (void)trail;
}

static void on_stats(void *user, const char *json, size_t len) { (void)user, (void)json, (void)len; }

static liminal_route_result route_first(void *user, const liminal_message *message,
                                        const liminal_consumer_view *views, size_t count,
                                        const char **selected) {
    (void)user, (void)message;
    if (count == 0) return LIMINAL_ROUTE_NONE;
    *selected = views[0].id;
    return LIMINAL_ROUTE_SELECTED;
}

static liminal_group *host_routed_group(liminal_runtime *runtime, liminal_routing **routing_out) {
    liminal_route_callback route = {route_first, user_of(ROUTING), free_user};
    static const uint8_t identity[] = "test_free_user/route_first";
    CHECK_OK(liminal_routing_new(runtime, route, identity, sizeof identity, "first", routing_out));
    liminal_group *group = NULL;
    CHECK_OK(liminal_group_new(runtime, *routing_out, NULL, &group));
    liminal_dead_letter_callback dead = {on_dead_letter, user_of(DEAD_LETTER), free_user};
    CHECK_OK(liminal_group_set_dead_letter(group, dead));
    return group;
}

static liminal_consumer *deferring_consumer(liminal_group *group, const char *id) {
    liminal_consumer_options *options = NULL;
    CHECK_OK(liminal_consumer_options_new(&options));
    CHECK_OK(liminal_consumer_options_set_max_in_flight(options, 8));
    liminal_delivery_callback delivery = {defer_it, user_of(DELIVERY), free_user};
    liminal_crash_callback crash = {on_crash, user_of(CRASH), free_user};
    liminal_consumer *consumer = NULL;
    CHECK_OK(liminal_consumer_register(group, id, delivery, crash, options, &consumer));
    liminal_consumer_options_free(options);
    return consumer;
}

static liminal_status dispatch(liminal_group *group, liminal_message *message) {
    liminal_completion_callback done = {on_complete, user_of(COMPLETION), free_user};
    uint64_t id = 0;
    return liminal_group_dispatch_async(group, message, NULL, done, &id);
}

/* 1. Every handle outlives the runtime. */
static void handles_kept_past_the_runtime(void) {
    reset_counts();
    liminal_runtime *runtime = new_runtime();
    liminal_stats_callback stats = {on_stats, user_of(STATS), free_user};
    CHECK_OK(liminal_runtime_set_stats_callback(runtime, 10, stats));
    liminal_routing *routing = NULL;
    liminal_group *group = host_routed_group(runtime, &routing);
    liminal_consumer *a = deferring_consumer(group, "a");
    liminal_consumer *b = deferring_consumer(group, "b");
    liminal_crash_callback crash = {on_crash, user_of(CRASH), free_user};
    liminal_consumer *pull = NULL;
    CHECK_OK(liminal_consumer_register(group, "pull", no_delivery(), crash, NULL, &pull));
    liminal_message *message = new_message(1);
    /* More than the consumers can hold: some held (kept), some waiting. */
    for (int i = 0; i < 40; i++) CHECK_OK(dispatch(group, message));
    /* A routing handle loaded but never deployed. */
    liminal_route_callback unused = {route_first, user_of(ROUTING), free_user};
    static const uint8_t other[] = "test_free_user/unused";
    liminal_routing *spare = NULL;
    CHECK_OK(liminal_routing_new(runtime, unused, other, sizeof other, "unused", &spare));

    CHECK_OK(liminal_runtime_free(runtime));
    check_all_freed("handles kept, right after liminal_runtime_free");

    /* Calls on what is left are refused, and nothing is freed twice. */
    CHECK_STATUS(liminal_group_set_dead_letter(
                     group, (liminal_dead_letter_callback){on_dead_letter, user_of(DEAD_LETTER),
                                                           free_user}),
                 LIMINAL_SHUT_DOWN);
    liminal_delivery *delivery = take_kept();
    if (delivery != NULL) {
        CHECK(liminal_delivery_ack(delivery) != LIMINAL_OK);
        liminal_delivery_free(delivery);
    }
    free_all_kept();
    liminal_consumer_free(a);
    liminal_consumer_free(b);
    liminal_consumer_free(pull);
    liminal_group_free(group);
    liminal_routing_free(routing);
    liminal_routing_free(spare);
    liminal_message_free(message);
    check_all_freed("handles kept, after they were freed");
}

/* 2. Host threads keep calling in while the runtime is freed. */
#define RACERS 3
typedef struct race {
    liminal_group *group;
    liminal_message *message;
    atomic_bool stop;
    pthread_barrier_t start;
} race;

static void *racer(void *arg) {
    race *r = arg;
    pthread_barrier_wait(&r->start);
    while (!atomic_load(&r->stop)) {
        liminal_delivery *delivery = take_kept();
        if (delivery != NULL) {
            (void)liminal_delivery_ack(delivery);
            liminal_delivery_free(delivery);
        }
        (void)dispatch(r->group, r->message);
    }
    return NULL;
}

static void host_threads_racing_the_free(void) {
    int rounds = scaled(60, 6);
    for (int round = 0; round < rounds; round++) {
        reset_counts();
        liminal_runtime *runtime = new_runtime();
        liminal_routing *routing = NULL;
        race r = {.group = host_routed_group(runtime, &routing), .message = new_message(round)};
        atomic_store(&r.stop, false);
        liminal_consumer *consumers[2] = {deferring_consumer(r.group, "a"),
                                          deferring_consumer(r.group, "b")};
        for (int i = 0; i < 20; i++) CHECK_OK(dispatch(r.group, r.message));
        pthread_barrier_init(&r.start, NULL, RACERS + 1);
        pthread_t threads[RACERS];
        for (int i = 0; i < RACERS; i++) CHECK(pthread_create(&threads[i], NULL, racer, &r) == 0);
        pthread_barrier_wait(&r.start);
        /* Give the racers a few rounds of calls (pacing, not a condition). */
        pace_ms(round % 3);
        CHECK_OK(liminal_runtime_free(runtime));
        /* Read while the racers still call in. */
        for (int k = 0; k < KINDS; k++) {
            if (k == COMPLETION) continue; /* racers keep handing new ones over */
            int g = atomic_load(&given[k]), f = atomic_load(&freed[k]);
            BUG_IF(f != g, "round %d, racing: %s callbacks: %d handed over, %d freed", round,
                   KIND_NAMES[k], g, f);
        }
        atomic_store(&r.stop, true);
        for (int i = 0; i < RACERS; i++) pthread_join(threads[i], NULL);
        pthread_barrier_destroy(&r.start);
        /* Completions handed over before and during the free, and refused
         * ones after it (freed before the dispatch call returned). */
        check_all_freed("racing, after the racers stopped");
        free_all_kept();
        liminal_consumer_free(consumers[0]);
        liminal_consumer_free(consumers[1]);
        liminal_group_free(r.group);
        liminal_routing_free(routing);
        liminal_message_free(r.message);
        check_all_freed("racing, after the handles were freed");
    }
}

int main(void) {
    handles_kept_past_the_runtime();
    host_threads_racing_the_free();
    return bugs_exit("test_free_user");
}
