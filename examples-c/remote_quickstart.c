/* remote_quickstart: the quickstart's remote twin. A host opens a group to
 * workers over Zenoh (loopback TCP), starts two worker processes
 * (remote_worker), and dispatches ten orders to the first, "w-holds", which
 * keeps every delivery unanswered; with "w-acks" joined too, w-holds is
 * killed with SIGKILL while holding them. Its connection closes, the host re-routes what it held
 * to "w-acks", and prints each re-route and its timing. Exits non-zero if
 * any of that did not happen. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "example.h"

#define ORDERS 10

typedef struct tally {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int completed, delivered, rerouted, lost;
} tally;

static tally t = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0};
static struct timespec killed_at; /* set before the kill, read in callbacks */

static double ms_since(const struct timespec *then) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - then->tv_sec) * 1e3 + (double)(now.tv_nsec - then->tv_nsec) / 1e6;
}

static void crashed(void *user, const char *id, liminal_crash_kind kind, const char *reason,
                    bool alive) {
    (void)user; (void)alive;
    printf("  [host] worker %s failed (%s): %s\n", id,
           kind == LIMINAL_CRASH_CONNECTION_LOST ? "connection lost" : "other", reason);
    pthread_mutex_lock(&t.mutex);
    if (kind == LIMINAL_CRASH_CONNECTION_LOST) t.lost += 1;
    pthread_cond_broadcast(&t.cond);
    pthread_mutex_unlock(&t.mutex);
}

static void done(void *user, liminal_status status, const liminal_outcome *outcome) {
    (void)user;
    pthread_mutex_lock(&t.mutex);
    t.completed += 1;
    if (status == LIMINAL_OK) t.delivered += 1;
    size_t rerouted = liminal_outcome_rerouted_count(outcome);
    if (rerouted > 0) {
        uint64_t ns = 0;
        liminal_outcome_reroute_ns(outcome, 0, &ns);
        printf("  dispatch %llu re-routed from %s to %s: crash noticed -> re-route %.1f us, "
               "kill -9 -> acknowledged %.2f ms\n",
               (unsigned long long)liminal_outcome_dispatch_id(outcome),
               liminal_outcome_rerouted_from(outcome, 0), liminal_outcome_delivered_to(outcome),
               ns / 1000.0, ms_since(&killed_at));
        t.rerouted += 1;
    }
    pthread_cond_broadcast(&t.cond);
    pthread_mutex_unlock(&t.mutex);
}

/* A worker process: its pid, the write end of its stdin (closing it makes
 * the worker leave gracefully) and the read end of its stdout. */
typedef struct worker_process {
    pid_t pid;
    FILE *in, *out;
} worker_process;

/* The worker program: built next to this one (REMOTE_WORKER_PATH), or given
 * by the environment (LIMINAL_REMOTE_WORKER), e.g. the Python worker
 * tests/python/remote_worker.py: any program taking ENDPOINT GROUP ID
 * ack|defer and printing "joined", a line per delivery, and "left". */
static const char *worker_path(void) {
    const char *path = getenv("LIMINAL_REMOTE_WORKER");
#ifdef REMOTE_WORKER_PATH
    if (!path) path = REMOTE_WORKER_PATH;
#endif
    if (!path) {
        fprintf(stderr, "set LIMINAL_REMOTE_WORKER to the remote_worker program\n");
        exit(2);
    }
    return path;
}

static worker_process start_worker(const char *endpoint, const char *id, const char *mode) {
    int to_child[2], from_child[2];
    if (pipe(to_child) != 0 || pipe(from_child) != 0) {
        perror("pipe");
        exit(1);
    }
    const char *path = worker_path();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(to_child[0], STDIN_FILENO);
        dup2(from_child[1], STDOUT_FILENO);
        close(to_child[0]); close(to_child[1]);
        close(from_child[0]); close(from_child[1]);
        execl(path, path, endpoint, "orders", id, mode, (char *)NULL);
        perror("exec remote_worker");
        _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    worker_process w = {pid, fdopen(to_child[1], "w"), fdopen(from_child[0], "r")};
    return w;
}

/* Read the worker's lines until one starts with `prefix` (or, for
 * "delivery", with "held": the Python worker's word for a kept delivery). */
static void expect_line(worker_process *w, const char *id, const char *prefix) {
    char line[512];
    while (fgets(line, sizeof line, w->out)) {
        if (strncmp(line, prefix, strlen(prefix)) == 0) return;
        if (strcmp(prefix, "delivery") == 0 && strncmp(line, "held", 4) == 0) return;
    }
    fprintf(stderr, "worker %s ended before saying \"%s\"\n", id, prefix);
    exit(1);
}

static void wait_for(int *field, int target, int seconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    pthread_mutex_lock(&t.mutex);
    while (*field < target) {
        if (pthread_cond_timedwait(&t.cond, &t.mutex, &deadline) != 0) {
            fprintf(stderr, "timed out waiting (%d of %d)\n", *field, target);
            exit(1);
        }
    }
    pthread_mutex_unlock(&t.mutex);
}

/* A free loopback TCP endpoint (the kernel picks the port). */
static void free_endpoint(char *out, size_t size) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {0};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (fd < 0 || bind(fd, (struct sockaddr *)&address, length) != 0 ||
        getsockname(fd, (struct sockaddr *)&address, &length) != 0) {
        perror("finding a free port");
        exit(1);
    }
    snprintf(out, size, "tcp/127.0.0.1:%d", ntohs(address.sin_port));
    close(fd);
}

int main(void) {
    if (!liminal_has_remote()) {
        printf("this liminal was built without remote consumers: nothing to show\n");
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    alarm(120); /* a hang is a failure, not a wait */
    char endpoint[64];
    free_endpoint(endpoint, sizeof endpoint);
    liminal_runtime *runtime = NULL;
    TRY(liminal_runtime_new(NULL, &runtime));
    liminal_routing *routing = NULL;
    TRY(liminal_routing_builtin(LIMINAL_BUILTIN_LEAST_LOADED, NULL, &routing));
    liminal_group *group = NULL;
    TRY(liminal_group_new(runtime, routing, NULL, &group));
    liminal_routing_free(routing);

    liminal_remote_options *options = NULL;
    TRY(liminal_remote_options_new(&options));
    TRY(liminal_remote_options_add_listen(options, endpoint));
    liminal_crash_callback on_crash = {crashed, NULL, NULL};
    liminal_remote *remote = NULL;
    TRY(liminal_group_open_remote(group, "orders", options, on_crash, &remote));
    liminal_remote_options_free(options);
    printf("host listening on %s\n", endpoint);

    /* Only "w-holds" is there when the orders go out: it gets all ten. */
    worker_process holds = start_worker(endpoint, "w-holds", "defer");
    expect_line(&holds, "w-holds", "joined");
    printf("worker w-holds joined\n");
    liminal_message *message = NULL;
    TRY(liminal_message_new(&message));
    for (int i = 0; i < ORDERS; i++) {
        TRY(liminal_message_set_int(message, "order", i));
        liminal_completion_callback cb = {done, NULL, NULL};
        TRY(liminal_group_dispatch_async(group, message, NULL, cb, NULL));
    }
    liminal_message_free(message);
    for (int i = 0; i < ORDERS; i++) expect_line(&holds, "w-holds", "delivery");
    worker_process acks = start_worker(endpoint, "w-acks", "ack");
    expect_line(&acks, "w-acks", "joined");
    printf("worker w-acks joined\n");
    printf("w-holds holds %d orders: kill -9 %d\n", ORDERS, (int)holds.pid);
    clock_gettime(CLOCK_MONOTONIC, &killed_at);
    kill(holds.pid, SIGKILL);
    waitpid(holds.pid, NULL, 0);
    wait_for(&t.completed, ORDERS, 30);
    wait_for(&t.lost, 1, 30);
    printf("%d of %d delivered, %d re-routed after the kill\n", t.delivered, ORDERS, t.rerouted);
    fclose(holds.in);
    fclose(holds.out);

    fclose(acks.in); /* w-acks leaves gracefully */
    expect_line(&acks, "w-acks", "left");
    waitpid(acks.pid, NULL, 0);
    fclose(acks.out);
    liminal_remote_free(remote);
    liminal_group_free(group);
    TRY(liminal_runtime_free(runtime));
    return (t.delivered == ORDERS && t.rerouted == ORDERS && t.lost == 1) ? 0 : 1;
}
