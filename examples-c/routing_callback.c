/* routing_callback: a routing function written in C. Version 1 routes by
 * tenant: "gold" tenants go to the least-loaded consumer tagged "premium",
 * everyone else to one tagged "standard". Mid-run, version 2 is hot-deployed:
 * it routes by the message's "region" field to the consumer tagged with that
 * region. Every decision is checked; exits non-zero on a wrong one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example.h"

static int has_tag(const liminal_consumer_view *v, const char *tag) {
    for (size_t t = 0; t < v->tag_count; t++)
        if (strcmp(v->tags[t], tag) == 0) return 1;
    return 0;
}

/* Select the least-loaded consumer with room carrying `tag`; with none, the
 * message waits in the group's waiting room until one has room. */
static liminal_route_result pick(const liminal_consumer_view *views, size_t count, const char *tag,
                                 const char **selected) {
    long best = -1;
    for (size_t i = 0; i < count; i++) {
        if (!has_tag(&views[i], tag) || views[i].in_flight >= views[i].max_in_flight) continue;
        if (best < 0 || views[i].in_flight < views[best].in_flight) best = (long)i;
    }
    if (best < 0) return LIMINAL_ROUTE_NONE;
    *selected = views[best].id;
    return LIMINAL_ROUTE_SELECTED;
}

static liminal_route_result by_tenant(void *user, const liminal_message *message,
                                      const liminal_consumer_view *views, size_t count,
                                      const char **selected) {
    (void)user;
    char tenant[32] = "";
    if (liminal_message_get_text(message, "tenant", tenant, sizeof tenant, NULL) != LIMINAL_OK)
        return LIMINAL_ROUTE_FAILED; /* unroutable: fail it rather than let it wait */
    return pick(views, count, strcmp(tenant, "gold") == 0 ? "premium" : "standard", selected);
}

static liminal_route_result by_region(void *user, const liminal_message *message,
                                      const liminal_consumer_view *views, size_t count,
                                      const char **selected) {
    (void)user;
    char region[32] = "";
    if (liminal_message_get_text(message, "region", region, sizeof region, NULL) != LIMINAL_OK)
        return LIMINAL_ROUTE_FAILED;
    return pick(views, count, region, selected);
}

static liminal_verdict ack(void *user, liminal_delivery *delivery) {
    (void)user; (void)delivery;
    return LIMINAL_VERDICT_ACK;
}

static const char *route(liminal_group *group, const char *tenant, const char *region) {
    static char to[32];
    liminal_message *message = NULL;
    TRY(liminal_message_new(&message));
    TRY(liminal_message_set_text(message, "tenant", tenant));
    TRY(liminal_message_set_text(message, "region", region));
    liminal_outcome *outcome = NULL;
    TRY(liminal_group_dispatch(group, message, NULL, &outcome));
    snprintf(to, sizeof to, "%s", liminal_outcome_delivered_to(outcome));
    liminal_outcome_free(outcome);
    liminal_message_free(message);
    return to;
}

int main(void) {
    liminal_runtime *runtime = NULL;
    TRY(liminal_runtime_new(NULL, &runtime));
    static const char v1_identity[] = "example.routing.by_tenant.v1";
    static const char v2_identity[] = "example.routing.by_region.v2";
    liminal_route_callback cb1 = {by_tenant, NULL, NULL}, cb2 = {by_region, NULL, NULL};
    liminal_routing *v1 = NULL, *v2 = NULL;
    TRY(liminal_routing_new(runtime, cb1, (const uint8_t *)v1_identity, strlen(v1_identity), "by_tenant", &v1));
    TRY(liminal_routing_new(runtime, cb2, (const uint8_t *)v2_identity, strlen(v2_identity), "by_region", &v2));
    liminal_group *group = NULL;
    TRY(liminal_group_new(runtime, v1, NULL, &group));

    const char *tags_p1[] = {"premium", "eu"};
    const char *tags_s1[] = {"standard", "us"};
    const char *tags_s2[] = {"standard", "eu"};
    struct { const char *id; const char **tags; size_t n; } specs[] = {
        {"premium-eu", tags_p1, 2}, {"standard-us", tags_s1, 2}, {"standard-eu", tags_s2, 2}};
    liminal_consumer *consumers[3];
    liminal_consumer_options *options = NULL;
    TRY(liminal_consumer_options_new(&options));
    for (int i = 0; i < 3; i++) {
        liminal_delivery_callback d = {ack, NULL, NULL};
        liminal_crash_callback c = {NULL, NULL, NULL};
        TRY(liminal_consumer_options_set_tags(options, specs[i].tags, specs[i].n));
        TRY(liminal_consumer_register(group, specs[i].id, d, c, options, &consumers[i]));
    }
    liminal_consumer_options_free(options);

    int wrong = 0;
    printf("v1 (hash %016llx): by tenant\n", (unsigned long long)liminal_routing_hash(v1));
    const char *to = route(group, "gold", "us");
    printf("  gold/us   -> %s\n", to);
    wrong += strcmp(to, "premium-eu") != 0;
    to = route(group, "silver", "eu");
    printf("  silver/eu -> %s\n", to);
    wrong += strncmp(to, "standard-", 9) != 0;

    TRY(liminal_group_deploy(group, v2));
    printf("v2 (hash %016llx) hot-deployed: by region\n", (unsigned long long)liminal_group_routing_hash(group));
    to = route(group, "gold", "us");
    printf("  gold/us   -> %s\n", to);
    wrong += strcmp(to, "standard-us") != 0;
    to = route(group, "silver", "eu");
    printf("  silver/eu -> %s\n", to);
    wrong += strcmp(to, "premium-eu") != 0 && strcmp(to, "standard-eu") != 0;

    for (int i = 0; i < 3; i++) liminal_consumer_free(consumers[i]);
    liminal_group_free(group);
    liminal_routing_free(v1);
    liminal_routing_free(v2);
    TRY(liminal_runtime_free(runtime));
    if (wrong) {
        fprintf(stderr, "routing_callback: %d wrong decisions\n", wrong);
        return 1;
    }
    printf("routing_callback: every decision as routed, before and after the hot deploy\n");
    return 0;
}
