/* Durable groups from C (liminal_group_options_set_store), from the header
 * alone:
 *
 * 1. six messages dispatched asynchronously to a durable group with no
 *    consumer are accepted (LIMINAL_OK once stored); a second group on the
 *    same store, in this runtime or another, is refused with
 *    LIMINAL_STORE_LOCKED while the first lives; freeing the group fails
 *    them with LIMINAL_NO_CONSUMER_AVAILABLE and leaves them in the store;
 * 2. a new group on the store, with a recovered callback and a consumer,
 *    gets all six back in acceptance order, flagged redelivered, payload
 *    intact, each with a `<store id>-<sequence>` message id; the recovered
 *    callback ends each with LIMINAL_OK, and its free_user runs exactly
 *    once, when the options and every group made with them are gone;
 * 3. reopened once more, the store gives nothing back;
 * 4. bad input: NULL options, an empty path, a sync interval without a
 *    store, a store path that is a regular file, the status names.
 *
 * Synchronised on condition variables, never on sleeps. Run plain, under
 * ASan+UBSan and under valgrind (scripts/test.sh). */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */
#include "check.h"

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#define MESSAGES 6
#define ID_MAX 96

/* The recovered callback's user data (also the consumer's): what came back. */
typedef struct recovery {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int recovered;    /* recovered-callback calls */
    int recovered_ok; /* ... with status LIMINAL_OK */
    int delivered;    /* delivery-callback calls */
    int not_redelivered;
    int64_t recovered_n[MESSAGES];
    int64_t delivered_n[MESSAGES];
    char ids[MESSAGES][ID_MAX];
    atomic_int freed; /* free_user calls */
} recovery;

static void recovery_init(recovery *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mutex, NULL);
    pthread_cond_init(&r->cond, NULL);
}

static void recovery_destroy(recovery *r) {
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->mutex);
}

/* Wait until the recovered callback ran `count` times (30 s = a hang). */
static void wait_recovered(recovery *r, int count) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 30;
    pthread_mutex_lock(&r->mutex);
    while (r->recovered < count) {
        if (pthread_cond_timedwait(&r->cond, &r->mutex, &deadline) == ETIMEDOUT) {
            fprintf(stderr, "timed out (30 s) waiting for %d recovered messages (at %d, %d delivered)\n",
                    count, r->recovered, r->delivered);
            exit(1);
        }
    }
    pthread_mutex_unlock(&r->mutex);
}

static void on_recovered(void *user, const liminal_message *message,
                         const liminal_outcome *outcome) {
    recovery *r = user;
    int64_t n = message_n(message);
    liminal_status status = liminal_outcome_status(outcome);
    if (status != LIMINAL_OK)
        fprintf(stderr, "recovered message n=%" PRId64 " ended with %s\n", n,
                liminal_status_name(status));
    else
        CHECK(strcmp(liminal_outcome_delivered_to(outcome), "c") == 0);
    pthread_mutex_lock(&r->mutex);
    if (r->recovered < MESSAGES) r->recovered_n[r->recovered] = n;
    r->recovered += 1;
    if (status == LIMINAL_OK) r->recovered_ok += 1;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mutex);
}

static void recovery_freed(void *user) { atomic_fetch_add(&((recovery *)user)->freed, 1); }

static liminal_verdict record_and_ack(void *user, liminal_delivery *delivery) {
    recovery *r = user;
    const liminal_message *message = liminal_delivery_message(delivery);
    int64_t n = message_n(message);
    char id[ID_MAX];
    size_t len = 0;
    CHECK_OK(liminal_delivery_message_id(delivery, id, sizeof id, &len));
    CHECK(len == strlen(id));

    /* The payload came back with the fields. */
    char want[32];
    snprintf(want, sizeof want, "payload-%" PRId64, n);
    const uint8_t *data = NULL;
    size_t size = 0;
    CHECK_OK(liminal_message_payload(message, &data, &size));
    CHECK(size == strlen(want) && data != NULL && memcmp(data, want, size) == 0);

    pthread_mutex_lock(&r->mutex);
    if (r->delivered < MESSAGES) {
        r->delivered_n[r->delivered] = n;
        snprintf(r->ids[r->delivered], ID_MAX, "%s", id);
    }
    r->delivered += 1;
    if (!liminal_delivery_redelivered(delivery)) r->not_redelivered += 1;
    pthread_mutex_unlock(&r->mutex);
    return LIMINAL_VERDICT_ACK;
}

/* Completions of the first host's dispatches. */
typedef struct first_host {
    latch completed;
    atomic_int no_consumer; /* ended with LIMINAL_NO_CONSUMER_AVAILABLE */
} first_host;

static void first_done(void *user, liminal_status status, const liminal_outcome *outcome) {
    (void)outcome;
    first_host *h = user;
    if (status == LIMINAL_NO_CONSUMER_AVAILABLE) atomic_fetch_add(&h->no_consumer, 1);
    latch_add(&h->completed);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static size_t in_flight(const liminal_group *group) {
    size_t n = 0;
    CHECK_OK(liminal_group_in_flight(group, &n));
    return n;
}

static liminal_group_options *store_options(const char *store) {
    liminal_group_options *options = NULL;
    CHECK_OK(liminal_group_options_new(&options));
    CHECK_OK(liminal_group_options_set_store(options, store));
    return options;
}

/* 1: accepted with nobody to take them; the store is held; freed, kept. */
static void accept_then_let_go(const char *store) {
    liminal_runtime *runtime = new_runtime();
    liminal_group_options *options = store_options(store);
    liminal_group *group = new_group_with(runtime, LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, options);

    first_host host;
    latch_init(&host.completed);
    atomic_store(&host.no_consumer, 0);
    for (int n = 0; n < MESSAGES; n++) {
        liminal_message *message = new_message(n);
        char payload[32];
        int len = snprintf(payload, sizeof payload, "payload-%d", n);
        CHECK_OK(liminal_message_set_payload(message, (const uint8_t *)payload, (size_t)len));
        liminal_completion_callback done = {first_done, &host, NULL};
        CHECK_OK(liminal_group_dispatch_async(group, message, NULL, done, NULL));
        liminal_message_free(message);
    }
    CHECK(in_flight(group) == MESSAGES);
    CHECK(latch_count(&host.completed) == 0);

    /* The store is held: a second group on it is refused, here and from
     * another runtime, and writes nothing to its out parameter. */
    liminal_group *second = NULL;
    liminal_routing *routing = NULL;
    CHECK_OK(liminal_routing_builtin(LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, NULL, &routing));
    CHECK_STATUS(liminal_group_new(runtime, routing, options, &second), LIMINAL_STORE_LOCKED);
    CHECK(second == NULL);
    liminal_runtime *other = new_runtime();
    CHECK_STATUS(liminal_group_new(other, routing, options, &second), LIMINAL_STORE_LOCKED);
    CHECK(second == NULL);
    CHECK_OK(liminal_runtime_free(other));
    liminal_routing_free(routing);

    /* Freed: the six fail here with LIMINAL_NO_CONSUMER_AVAILABLE and stay
     * in the store. */
    liminal_group_free(group);
    latch_wait(&host.completed, MESSAGES);
    BUG_IF(atomic_load(&host.no_consumer) != MESSAGES,
           "freeing a durable group: %d of %d completions were LIMINAL_NO_CONSUMER_AVAILABLE",
           atomic_load(&host.no_consumer), MESSAGES);
    liminal_group_options_free(options);
    CHECK_OK(liminal_runtime_free(runtime));
    CHECK(latch_count(&host.completed) == MESSAGES); /* exactly once each */
    latch_destroy(&host.completed);
}

/* 2 and 3: recovered in order by a new group, then nothing left. */
static void recover_then_nothing_left(const char *store) {
    recovery rec;
    recovery_init(&rec);
    liminal_group_options *options = store_options(store);
    liminal_recovered_callback on_rec = {on_recovered, &rec, recovery_freed};
    CHECK_OK(liminal_group_options_set_recovered(options, on_rec));

    liminal_runtime *runtime = new_runtime();
    liminal_group *group = new_group_with(runtime, LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, options);
    /* Brought back before liminal_group_new returned: waiting, no consumer. */
    CHECK(in_flight(group) == MESSAGES);
    liminal_delivery_callback on_delivery = {record_and_ack, &rec, NULL};
    liminal_consumer *consumer = NULL;
    CHECK_OK(liminal_consumer_register(group, "c", on_delivery, no_crash(), NULL, &consumer));

    wait_recovered(&rec, MESSAGES);
    pthread_mutex_lock(&rec.mutex);
    CHECK(rec.recovered == MESSAGES);
    CHECK(rec.recovered_ok == MESSAGES);
    CHECK(rec.delivered == MESSAGES);
    for (int i = 0; i < MESSAGES; i++) {
        CHECK(rec.delivered_n[i] == i); /* acceptance order */
        CHECK(rec.recovered_n[i] >= 0 && rec.recovered_n[i] < MESSAGES);
    }
    BUG_IF(rec.not_redelivered != 0,
           "%d recovered deliveries not flagged redelivered (set_store: they \"count as redelivered\")",
           rec.not_redelivered);
    /* Message ids: `<store id>-<sequence number>` (the header does not say
     * how the store id is spelt: hex digits here), one store id, the
     * sequence numbers rising in acceptance order. */
    char store_id[ID_MAX] = "";
    unsigned long long last_seq = 0;
    for (int i = 0; i < MESSAGES; i++) {
        const char *dash = strrchr(rec.ids[i], '-');
        unsigned long long seq = 0;
        int used = 0;
        BUG_IF(dash == NULL || dash == rec.ids[i] ||
                   sscanf(dash + 1, "%llu%n", &seq, &used) != 1 || dash[1 + used] != '\0',
               "message id \"%s\" is not <store id>-<sequence number>", rec.ids[i]);
        if (dash == NULL) continue;
        int prefix = (int)(dash - rec.ids[i]);
        if (i == 0) snprintf(store_id, sizeof store_id, "%.*s", prefix, rec.ids[i]);
        BUG_IF(strncmp(rec.ids[i], store_id, (size_t)prefix) != 0 || store_id[prefix] != '\0',
               "message ids of one store with two store ids: %s, %s", rec.ids[i], store_id);
        BUG_IF(i > 0 && seq <= last_seq, "message ids not rising in acceptance order: %s after %llu",
               rec.ids[i], last_seq);
        last_seq = seq;
        printf("  recovered n=%d as message %s\n", i, rec.ids[i]);
    }
    pthread_mutex_unlock(&rec.mutex);

    liminal_consumer_free(consumer);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
    /* The options still hold the recovered callback. */
    BUG_IF(atomic_load(&rec.freed) != 0, "recovered free_user ran while the options lived");

    /* 3: reopened in a fresh runtime: everything was acknowledged. */
    runtime = new_runtime();
    group = new_group_with(runtime, LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, options);
    size_t waiting = 0;
    CHECK_OK(liminal_group_waiting(group, &waiting));
    BUG_IF(in_flight(group) != 0 || waiting != 0,
           "acknowledged messages came back: %zu in flight, %zu waiting", in_flight(group), waiting);
    liminal_group_free(group);
    CHECK_OK(liminal_runtime_free(runtime));
    liminal_group_options_free(options);

    pthread_mutex_lock(&rec.mutex);
    CHECK(rec.recovered == MESSAGES); /* nothing more ended in the callback */
    pthread_mutex_unlock(&rec.mutex);
    CHECK(atomic_load(&rec.freed) == 1);
    recovery_destroy(&rec);
}

static void count_free(void *user) { atomic_fetch_add((atomic_int *)user, 1); }

/* 4: bad input. */
static void bad_input(const char *where) {
    CHECK_STATUS(liminal_group_options_set_store(NULL, where), LIMINAL_NULL_ARGUMENT);
    liminal_group_options *options = NULL;
    CHECK_OK(liminal_group_options_new(&options));
    CHECK_STATUS(liminal_group_options_set_store(options, ""), LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_group_options_set_store_sync_interval_ms(options, 10),
                 LIMINAL_INVALID_ARGUMENT);
    CHECK_STATUS(liminal_group_options_set_store_sync_interval_ms(NULL, 10),
                 LIMINAL_NULL_ARGUMENT);
    CHECK_OK(liminal_group_options_set_store(options, where));
    CHECK_OK(liminal_group_options_set_store_sync_interval_ms(options, 10));
    CHECK_OK(liminal_group_options_set_store(options, NULL)); /* non-durable again */
    CHECK_STATUS(liminal_group_options_set_store_sync_interval_ms(options, 10),
                 LIMINAL_INVALID_ARGUMENT);

    /* The library owns a recovered callback even when the call fails. */
    atomic_int freed = 0;
    liminal_recovered_callback cb = {on_recovered, &freed, count_free};
    CHECK_STATUS(liminal_group_options_set_recovered(NULL, cb), LIMINAL_NULL_ARGUMENT);
    CHECK(atomic_load(&freed) == 1);

    /* A store path that is a regular file cannot be a store. */
    char file[512];
    snprintf(file, sizeof file, "%s/not-a-directory", where);
    FILE *f = fopen(file, "w");
    CHECK(f != NULL);
    fputs("x", f);
    CHECK(fclose(f) == 0);
    CHECK_OK(liminal_group_options_set_store(options, file));
    liminal_runtime *runtime = new_runtime();
    liminal_routing *routing = NULL;
    CHECK_OK(liminal_routing_builtin(LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, NULL, &routing));
    liminal_group *group = NULL;
    CHECK_STATUS(liminal_group_new(runtime, routing, options, &group), LIMINAL_STORE_FAILED);
    CHECK(group == NULL);
    liminal_routing_free(routing);
    CHECK_OK(liminal_runtime_free(runtime));
    liminal_group_options_free(options);

    CHECK(strcmp(liminal_status_name(LIMINAL_STORE_LOCKED), "LIMINAL_STORE_LOCKED") == 0);
    CHECK(strcmp(liminal_status_name(LIMINAL_STORE_FAILED), "LIMINAL_STORE_FAILED") == 0);
    CHECK(!liminal_status_is_retriable(LIMINAL_STORE_LOCKED));
}

/* The temporary directory, removed at exit (a failed CHECK included). */
static char dir[256];

static void remove_dir(void) {
    if (dir[0] != '\0') nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    CHECK(snprintf(dir, sizeof dir, "%s/liminal-test-durable-XXXXXX",
                   tmp && *tmp ? tmp : "/tmp") < (int)sizeof dir);
    CHECK(mkdtemp(dir) != NULL);
    atexit(remove_dir);
    /* A directory inside it: the store creates it when missing. */
    char store[sizeof dir + 8];
    snprintf(store, sizeof store, "%s/store", dir);

    accept_then_let_go(store);
    recover_then_nothing_left(store);
    bad_input(dir);

    CHECK(nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0);
    CHECK(access(dir, F_OK) != 0);
    dir[0] = '\0';
    return bugs_exit("test_durable");
}
