/* worker_pool: four host worker threads in pull mode acknowledge deliveries
 * after doing their work (deferred acks). Each holds at most 32 at a time;
 * the rest of the 20,000 messages wait in the group's waiting room. Under
 * load one worker thread dies (the first to have handled 500 messages; one
 * of four always gets there): it declares its consumer crashed and exits
 * while still holding deliveries. Everything it held is re-routed to the
 * surviving workers; the totals are checked: every message delivered exactly
 * once, nothing lost. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "example.h"

#define MESSAGES 20000
#define WORKERS 4
#define DIES_AT 500 /* the first worker to handle this many dies */

typedef struct worker {
    int index;
    liminal_consumer *consumer;
    long handled;
    long redelivered;
} worker;

static unsigned char *completed; /* per message: completions seen */
static atomic_long delivered, failed;
static atomic_int died; /* one death only */
static pthread_mutex_t done_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static long done_count = 0;

static void *work(void *arg) {
    worker *w = arg;
    for (;;) {
        liminal_delivery *delivery = NULL;
        liminal_status s = liminal_consumer_next_delivery(w->consumer, 100, &delivery);
        if (s == LIMINAL_TIMED_OUT) continue;
        if (s == LIMINAL_CONSUMER_GONE || s == LIMINAL_SHUT_DOWN) return NULL;
        TRY(s);
        if (liminal_delivery_redelivered(delivery)) w->redelivered += 1;
        if (w->handled == DIES_AT && atomic_exchange(&died, 1) == 0) {
            /* The thread dies with deliveries in hand: declare it. */
            uint32_t held = 0;
            TRY(liminal_consumer_in_flight(w->consumer, &held));
            printf("worker %d: dying with %u deliveries in hand after %ld messages\n", w->index,
                   held, w->handled);
            TRY(liminal_consumer_crash(w->consumer, "worker thread died"));
            liminal_delivery_free(delivery);
            return NULL;
        }
        w->handled += 1; /* the "work" */
        TRY(liminal_delivery_ack(delivery));
        liminal_delivery_free(delivery);
    }
}

static void on_complete(void *user, liminal_status status, const liminal_outcome *outcome) {
    (void)outcome;
    long index = (long)(intptr_t)user;
    completed[index] += 1;
    if (status == LIMINAL_OK) atomic_fetch_add(&delivered, 1);
    else atomic_fetch_add(&failed, 1);
    pthread_mutex_lock(&done_mutex);
    done_count += 1;
    pthread_cond_broadcast(&done_cond);
    pthread_mutex_unlock(&done_mutex);
}

int main(void) {
    completed = calloc(MESSAGES, 1);
    liminal_runtime *runtime = NULL;
    TRY(liminal_runtime_new(NULL, &runtime));
    liminal_routing *routing = NULL;
    TRY(liminal_routing_builtin(LIMINAL_BUILTIN_LEAST_LOADED, NULL, &routing));
    liminal_group *group = NULL;
    TRY(liminal_group_new(runtime, routing, NULL, &group));
    liminal_routing_free(routing);

    liminal_consumer_options *options = NULL;
    TRY(liminal_consumer_options_new(&options));
    TRY(liminal_consumer_options_set_max_in_flight(options, 32));
    worker workers[WORKERS];
    pthread_t threads[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        char id[16];
        snprintf(id, sizeof id, "worker-%d", i);
        workers[i] = (worker){i, NULL, 0, 0};
        liminal_delivery_callback pull = {NULL, NULL, NULL}; /* no function: pull mode */
        liminal_crash_callback no_crash = {NULL, NULL, NULL};
        TRY(liminal_consumer_register(group, id, pull, no_crash, options, &workers[i].consumer));
        pthread_create(&threads[i], NULL, work, &workers[i]);
    }
    liminal_consumer_options_free(options);

    liminal_message *message = NULL;
    TRY(liminal_message_new(&message));
    for (long i = 0; i < MESSAGES; i++) {
        TRY(liminal_message_set_int(message, "job", i));
        liminal_completion_callback done = {on_complete, (void *)(intptr_t)i, NULL};
        TRY(liminal_group_dispatch_async(group, message, NULL, done, NULL));
    }
    pthread_mutex_lock(&done_mutex);
    while (done_count < MESSAGES) pthread_cond_wait(&done_cond, &done_mutex);
    pthread_mutex_unlock(&done_mutex);

    liminal_message_free(message);
    liminal_group_free(group); /* workers' consumers leave: their threads end */
    for (int i = 0; i < WORKERS; i++) pthread_join(threads[i], NULL);

    long handled = 0, redelivered = 0;
    for (int i = 0; i < WORKERS; i++) {
        printf("worker %d handled %ld (%ld redelivered)\n", i, workers[i].handled,
               workers[i].redelivered);
        handled += workers[i].handled;
        redelivered += workers[i].redelivered;
        liminal_consumer_free(workers[i].consumer);
    }
    liminal_metrics m;
    TRY(liminal_runtime_metrics(runtime, &m));
    TRY(liminal_runtime_free(runtime));

    int once = 1;
    for (long i = 0; i < MESSAGES; i++) once &= completed[i] == 1;
    free(completed);
    printf("messages=%d delivered=%ld failed=%ld handled=%ld (%ld redelivered) rerouted=%llu "
           "crashes=%llu\n",
           MESSAGES, atomic_load(&delivered), atomic_load(&failed), handled, redelivered,
           (unsigned long long)m.rerouted, (unsigned long long)m.consumer_crashes);
    printf("waiting room: p50 %.1f us, p99 %.1f us, max %.1f ms\n", m.waiting_p50_ns / 1e3,
           m.waiting_p99_ns / 1e3, m.waiting_max_ns / 1e6);
    if (!once || atomic_load(&delivered) != MESSAGES || handled != MESSAGES ||
        m.consumer_crashes != 1 || m.rerouted < 1) {
        fprintf(stderr, "worker_pool: totals do not add up\n");
        return 1;
    }
    printf("worker_pool: every message delivered exactly once; the dead worker's load was re-routed\n");
    return 0;
}
