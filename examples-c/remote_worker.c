/* remote_worker: a consumer in its own process, joined to a host's group
 * over Zenoh. Usage:
 *   remote_worker ENDPOINT GROUP ID [ack|defer] [LEASE_MS]
 * ack (default): acknowledge each delivery at once. defer: keep every
 * delivery unanswered (a worker that holds messages, to be killed).
 * Prints "joined" once the host accepted it, then one line per delivery
 * (with the message's stable id, to deduplicate on), "host lost: REASON"
 * when the host it served goes (it rejoins the next host by itself);
 * leaves gracefully when its standard input closes, then prints "left". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example.h"

typedef struct behaviour {
    int defer;
    long handled;
} behaviour;

static liminal_verdict handle(void *user, liminal_delivery *delivery) {
    behaviour *b = user;
    b->handled += 1;
    int64_t order = -1;
    liminal_message_get_int(liminal_delivery_message(delivery), "order", &order);
    char message_id[96] = "?";
    (void)liminal_delivery_message_id(delivery, message_id, sizeof message_id, NULL);
    printf("delivery %llu order %lld attempt %u%s message %s\n",
           (unsigned long long)liminal_delivery_dispatch_id(delivery), (long long)order,
           liminal_delivery_attempt(delivery),
           liminal_delivery_redelivered(delivery) ? " (redelivered)" : "", message_id);
    fflush(stdout);
    return b->defer ? LIMINAL_VERDICT_DEFER : LIMINAL_VERDICT_ACK;
}

/* The host this worker served is gone: what it held was dropped. */
static void host_lost(void *user, const char *consumer_id, const char *reason) {
    (void)user;
    (void)consumer_id;
    printf("host lost: %s\n", reason);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s ENDPOINT GROUP ID [ack|defer] [LEASE_MS]\n", argv[0]);
        return 2;
    }
    if (!liminal_has_remote()) {
        fprintf(stderr, "this liminal was built without remote consumers\n");
        return 2;
    }
    behaviour b = {argc > 4 && strcmp(argv[4], "defer") == 0, 0};
    liminal_remote_options *remote = NULL;
    TRY(liminal_remote_options_new(&remote));
    TRY(liminal_remote_options_add_connect(remote, argv[1]));
    if (argc > 5) TRY(liminal_remote_options_set_lease_ms(remote, strtoull(argv[5], NULL, 10)));
    liminal_consumer_options *options = NULL;
    TRY(liminal_consumer_options_new(&options));
    TRY(liminal_consumer_options_set_max_in_flight(options, 1000));
    liminal_delivery_callback on_delivery = {handle, &b, NULL};
    liminal_worker *worker = NULL;
    TRY(liminal_worker_new(argv[2], argv[3], on_delivery, options, remote, &worker));
    liminal_host_lost_callback on_host_lost = {host_lost, NULL, NULL};
    TRY(liminal_worker_set_host_lost(worker, on_host_lost));
    liminal_consumer_options_free(options);
    liminal_remote_options_free(remote);
    TRY(liminal_worker_wait_joined(worker, 10000));
    printf("joined\n");
    fflush(stdout);
    /* The worker's delivery thread serves; this one waits for stdin to close
     * (or for this process to be killed). */
    while (getchar() != EOF) {
    }
    liminal_worker_free(worker); /* leave: what it still holds is re-routed */
    printf("left\n");
    fflush(stdout);
    return 0;
}
