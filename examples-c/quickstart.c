/* quickstart: a runtime, a group routed by a built-in (sticky key on the
 * "customer" field), three consumers. Twelve orders are dispatched, each with
 * a one-second deadline; consumer "beta" crashes mid-stream while holding
 * one. The order it held is re-routed at once to a live consumer, and beta's
 * customers move while the others keep theirs. Exits non-zero if any of that
 * did not happen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example.h"

typedef struct worker {
    const char *name;
    int handled;
    int crash_on; /* crash on this delivery (1-based); 0 = never */
} worker;

static liminal_verdict handle(void *user, liminal_delivery *delivery) {
    worker *w = user;
    w->handled += 1;
    if (w->crash_on != 0 && w->handled == w->crash_on) {
        int64_t order = 0;
        TRY(liminal_message_get_int(liminal_delivery_message(delivery), "order", &order));
        printf("  [%s] crashing while holding order %lld\n", w->name, (long long)order);
        return LIMINAL_VERDICT_CRASH;
    }
    return LIMINAL_VERDICT_ACK;
}

static int crashes = 0;
static void crashed(void *user, const char *id, liminal_crash_kind kind, const char *reason,
                    bool alive) {
    (void)user; (void)kind; (void)alive;
    printf("  [liminal] consumer %s crashed: %s\n", id, reason);
    crashes += 1;
}

int main(void) {
    printf("liminal %s\n", liminal_version());
    liminal_runtime *runtime = NULL;
    TRY(liminal_runtime_new(NULL, &runtime)); /* NULL options: the defaults */
    liminal_routing *routing = NULL;
    TRY(liminal_routing_builtin(LIMINAL_BUILTIN_STICKY_KEY, "customer", &routing));
    liminal_group *group = NULL;
    TRY(liminal_group_new(runtime, routing, NULL, &group));
    liminal_routing_free(routing);

    worker workers[3] = {{"alpha", 0, 0}, {"beta", 0, 2}, {"gamma", 0, 0}};
    liminal_consumer *consumers[3];
    for (int i = 0; i < 3; i++) {
        liminal_delivery_callback on_delivery = {handle, &workers[i], NULL};
        liminal_crash_callback on_crash = {crashed, NULL, NULL};
        TRY(liminal_consumer_register(group, workers[i].name, on_delivery, on_crash, NULL,
                                      &consumers[i]));
    }

    /* Settings live in options objects, one validating setter each. A message
     * with no consumer free waits for one; the deadline bounds that wait. */
    liminal_dispatch_options *options = NULL;
    TRY(liminal_dispatch_options_new(&options));
    TRY(liminal_dispatch_options_set_deadline_ms(options, 1000));

    int delivered = 0, rerouted = 0, bad = 0;
    for (int order = 1; order <= 12; order++) {
        char customer[16];
        snprintf(customer, sizeof customer, "customer-%d", order % 8);
        liminal_message *message = NULL;
        TRY(liminal_message_new(&message));
        TRY(liminal_message_set_text(message, "customer", customer));
        TRY(liminal_message_set_int(message, "order", order));
        liminal_outcome *outcome = NULL;
        TRY(liminal_group_dispatch(group, message, options, &outcome));
        const char *to = liminal_outcome_delivered_to(outcome);
        printf("order %2d (%s) -> %s", order, customer, to);
        for (size_t i = 0; i < liminal_outcome_rerouted_count(outcome); i++) {
            uint64_t ns = 0;
            TRY(liminal_outcome_reroute_ns(outcome, i, &ns));
            printf("   [re-routed from %s: crash noticed -> re-route in %.1f us]",
                   liminal_outcome_rerouted_from(outcome, i), ns / 1000.0);
            rerouted += 1;
            if (ns >= 1000000) bad += 1;
        }
        printf("\n");
        if (crashes > 0 && strcmp(to, "beta") == 0) bad += 1; /* never back to the crashed one */
        delivered += 1;
        liminal_outcome_free(outcome);
        liminal_message_free(message);
    }
    liminal_dispatch_options_free(options);

    liminal_metrics m;
    TRY(liminal_runtime_metrics(runtime, &m));
    printf("\nmetrics: dispatched=%llu delivered=%llu rerouted=%llu crashes=%llu dead_lettered=%llu\n",
           (unsigned long long)m.dispatched, (unsigned long long)m.delivered,
           (unsigned long long)m.rerouted, (unsigned long long)m.consumer_crashes,
           (unsigned long long)m.dead_lettered);
    printf("dispatch latency p50=%.1f us p99=%.1f us; re-route p50=%.1f us\n",
           m.dispatch_p50_ns / 1000.0, m.dispatch_p99_ns / 1000.0, m.reroute_p50_ns / 1000.0);

    for (int i = 0; i < 3; i++) liminal_consumer_free(consumers[i]);
    liminal_group_free(group);
    TRY(liminal_runtime_free(runtime));

    if (delivered != 12 || rerouted != 1 || crashes != 1 || bad != 0 || m.delivered != 12) {
        fprintf(stderr, "quickstart: unexpected result (delivered=%d rerouted=%d crashes=%d bad=%d)\n",
                delivered, rerouted, crashes, bad);
        return 1;
    }
    printf("quickstart: 12/12 delivered, 1 crash re-routed, nothing lost\n");
    return 0;
}
