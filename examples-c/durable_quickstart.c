/* durable_quickstart: a durable group's messages survive its host's death.
 *
 * A host (a forked child) dispatches ten orders to a durable group: each
 * dispatch returns LIMINAL_OK only once the order is on disk. Its only
 * consumer is slow: it takes order 1 and never finishes it. Once the host
 * reported all ten accepted, the parent kills it with SIGKILL, then opens
 * the same store in a fresh runtime: every unfinished order comes back and
 * is handled, with its message id (the same on every delivery of an order:
 * deduplicate on it). Exits non-zero if an order was lost.
 *   durable_quickstart [store-dir]  (default /tmp/liminal-durable-quickstart,
 *                                    emptied first; a given one must be new) */
#define _XOPEN_SOURCE 700 /* nftw */
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "example.h"

#define ORDERS 10

/* A group on `store`, durable: it opens the store and brings back what an
 * earlier host accepted and did not finish (ending in `on_recovered`). */
static liminal_group *durable_group(liminal_runtime *runtime, const char *store,
                                    liminal_recovered_fn on_recovered) {
    liminal_routing *routing = NULL;
    TRY(liminal_routing_builtin(LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, NULL, &routing));
    liminal_group_options *options = NULL;
    TRY(liminal_group_options_new(&options));
    TRY(liminal_group_options_set_store(options, store)); /* this makes it durable */
    TRY(liminal_group_options_set_recovered(options,      /* set before liminal_group_new */
                                            (liminal_recovered_callback){on_recovered, NULL, NULL}));
    liminal_group *group = NULL;
    TRY(liminal_group_new(runtime, routing, options, &group));
    liminal_group_options_free(options);
    liminal_routing_free(routing);
    return group;
}

static liminal_message *order(int n) {
    liminal_message *message = NULL;
    TRY(liminal_message_new(&message));
    TRY(liminal_message_set_int(message, "order", n));
    TRY(liminal_message_set_payload(message, (const uint8_t *)"1 x widget", 10));
    return message;
}

/* The host's slow consumer: keeps the delivery to answer "later" (never). */
static liminal_verdict slow(void *user, liminal_delivery *delivery) {
    (void)user;
    int64_t n = 0;
    char id[96];
    TRY(liminal_message_get_int(liminal_delivery_message(delivery), "order", &n));
    TRY(liminal_delivery_message_id(delivery, id, sizeof id, NULL));
    printf("  [host] slow consumer took order %lld (message id %s); it takes its time\n",
           (long long)n, id);
    liminal_delivery *kept = NULL;
    TRY(liminal_delivery_keep(delivery, &kept)); /* answered never: the host dies first */
    return LIMINAL_VERDICT_DEFER;
}

static void ignore(void *user, liminal_status status, const liminal_outcome *outcome) {
    (void)user; (void)status; (void)outcome; /* the host dies before any completion */
}

/* The child: the host. Its runtime is made here, after the fork. */
static void run_host(const char *store, int report) {
    liminal_runtime *runtime = NULL;
    TRY(liminal_runtime_new(NULL, &runtime));
    liminal_group *group = durable_group(runtime, store, NULL); /* an empty store: nothing back */
    liminal_consumer_options *one_at_a_time = NULL;
    TRY(liminal_consumer_options_new(&one_at_a_time));
    TRY(liminal_consumer_options_set_max_in_flight(one_at_a_time, 1)); /* the rest wait */
    liminal_consumer *consumer = NULL;
    TRY(liminal_consumer_register(group, "slow", (liminal_delivery_callback){slow, NULL, NULL},
                                  (liminal_crash_callback){NULL, NULL, NULL}, one_at_a_time,
                                  &consumer));
    for (int n = 1; n <= ORDERS; n++) {
        liminal_message *message = order(n);
        /* Returns once the order is written and fdatasync'ed. */
        TRY(liminal_group_dispatch_async(group, message, NULL,
                                         (liminal_completion_callback){ignore, NULL, NULL}, NULL));
        liminal_message_free(message);
        printf("  [host] accepted %d\n", n);
        if (write(report, &n, sizeof n) != (ssize_t)sizeof n) exit(1); /* tell the parent */
    }
    for (;;) pause(); /* a host goes on running, until it is killed */
}

/* The recovery side: counts what the store gave back as it ends. */
static struct {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int ended, ok, seen[ORDERS + 1];
} tally = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, {0}};

static liminal_verdict handle(void *user, liminal_delivery *delivery) {
    (void)user;
    int64_t n = 0;
    char id[96];
    TRY(liminal_message_get_int(liminal_delivery_message(delivery), "order", &n));
    TRY(liminal_delivery_message_id(delivery, id, sizeof id, NULL));
    printf("  [new host] handled order %2lld  message id %s  redelivered=%s\n", (long long)n, id,
           liminal_delivery_redelivered(delivery) ? "yes" : "no");
    pthread_mutex_lock(&tally.mutex);
    if (n >= 1 && n <= ORDERS) tally.seen[n] += 1;
    pthread_mutex_unlock(&tally.mutex);
    return LIMINAL_VERDICT_ACK;
}

static void recovered(void *user, const liminal_message *message, const liminal_outcome *outcome) {
    (void)user; (void)message;
    pthread_mutex_lock(&tally.mutex);
    tally.ended += 1;
    if (liminal_outcome_status(outcome) == LIMINAL_OK) tally.ok += 1;
    pthread_cond_broadcast(&tally.cond);
    pthread_mutex_unlock(&tally.mutex);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line out before the kill, even into a pipe */
    const char *store = argc > 1 ? argv[1] : "/tmp/liminal-durable-quickstart";
    if (argc == 1) nftw(store, remove_entry, 16, FTW_DEPTH | FTW_PHYS); /* a fresh run */
    else if (rmdir(store) != 0 && access(store, F_OK) == 0) { /* not ours to empty */
        fprintf(stderr, "%s is not empty: give a new directory\n", store);
        return 2;
    }
    printf("liminal %s, store %s\n", liminal_version(), store);

    /* Fork before any runtime exists: the child makes its own. */
    int pipefd[2];
    pid_t host = pipe(pipefd) == 0 ? fork() : -1;
    if (host < 0) return 1;
    if (host == 0) {
        close(pipefd[0]);
        run_host(store, pipefd[1]); /* never returns */
    }
    close(pipefd[1]);
    int accepted = 0, n; /* wait for the host's reports: an event, not a sleep */
    while (accepted < ORDERS && read(pipefd[0], &n, sizeof n) == (ssize_t)sizeof n) accepted = n;
    if (accepted < ORDERS) fprintf(stderr, "the host stopped after %d accepted\n", accepted);
    kill(host, SIGKILL);
    int status = 0;
    waitpid(host, &status, 0);
    printf("[parent] host killed with SIGKILL (%s)\n",
           WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? "as planned" : "unexpectedly");

    /* A new host: a fresh runtime, the same store. */
    liminal_runtime *runtime = NULL;
    TRY(liminal_runtime_new(NULL, &runtime));
    liminal_group *group = durable_group(runtime, store, recovered);
    size_t unfinished = 0;
    TRY(liminal_group_in_flight(group, &unfinished));
    printf("[parent] reopened the store: %zu unfinished orders came back\n", unfinished);
    liminal_consumer *consumer = NULL;
    TRY(liminal_consumer_register(group, "fresh", (liminal_delivery_callback){handle, NULL, NULL},
                                  (liminal_crash_callback){NULL, NULL, NULL}, NULL, &consumer));

    pthread_mutex_lock(&tally.mutex); /* until each has ended (30 s: something is wrong) */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 30;
    while (tally.ended < (int)unfinished &&
           pthread_cond_timedwait(&tally.cond, &tally.mutex, &deadline) == 0) {
    }
    int lost = 0, ok = tally.ok;
    for (int i = 1; i <= ORDERS; i++) lost += tally.seen[i] == 0; /* accepted, never handled */
    pthread_mutex_unlock(&tally.mutex);

    liminal_consumer_free(consumer);
    liminal_group_free(group);
    TRY(liminal_runtime_free(runtime));

    if (accepted != ORDERS || lost != 0 || ok != (int)unfinished) {
        fprintf(stderr, "durable quickstart: %d accepted, %zu unfinished, %d recovered, %d LOST\n",
                accepted, unfinished, ok, lost);
        return 1;
    }
    printf("durable quickstart: %d accepted, host killed with %zu unfinished, %d recovered and "
           "delivered, nothing lost\n", accepted, unfinished, ok);
    return 0;
}
