/* An unrelated CPU-bound process for W8: one thread that spins until it is
 * killed (bench/run.sh starts it and kills it by its PID). */
#include <signal.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

int main(void) {
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    volatile unsigned long spins = 0;
    while (!stop) spins++;
    return 0;
}
