/* hello: the README's example. Two consumers; "a" crashes while it holds the message,
 * which is re-routed to "b". Error handling left out for brevity (see quickstart.c). */
#include <liminal.h>
#include <stdio.h>

static liminal_verdict handle(void *user, liminal_delivery *d) {
    int64_t order = 0;
    liminal_message_get_int(liminal_delivery_message(d), "order", &order);
    printf("%s handles order %lld\n", (const char *)user, (long long)order);
    return LIMINAL_VERDICT_ACK;
}

int main(void) {
    liminal_runtime *rt; liminal_routing *route; liminal_group *group;
    liminal_consumer *a, *b; liminal_message *msg; liminal_outcome *out;
    liminal_runtime_new(NULL, &rt);
    liminal_routing_builtin(LIMINAL_BUILTIN_FIRST_WITH_CAPACITY, NULL, &route);
    liminal_group_new(rt, route, NULL, &group);
    liminal_consumer_register(group, "a", (liminal_delivery_callback){handle, "a", NULL},
                              (liminal_crash_callback){NULL, NULL, NULL}, NULL, &a);
    liminal_consumer_register(group, "b", (liminal_delivery_callback){handle, "b", NULL},
                              (liminal_crash_callback){NULL, NULL, NULL}, NULL, &b);
    liminal_consumer_crash_at_next_delivery(a);          /* "a" dies holding the next message */
    liminal_message_new(&msg);
    liminal_message_set_int(msg, "order", 42);
    if (liminal_group_dispatch(group, msg, NULL, &out) != LIMINAL_OK) return 1;
    printf("delivered to %s, re-routed from %s\n", liminal_outcome_delivered_to(out),
           liminal_outcome_rerouted_from(out, 0));
    liminal_outcome_free(out); liminal_message_free(msg);
    liminal_consumer_free(a); liminal_consumer_free(b);
    liminal_group_free(group); liminal_routing_free(route);
    return liminal_runtime_free(rt) == LIMINAL_OK ? 0 : 1;
}
