/* chatter: the workload child of `bench/supervisors.py --only uss` (compiled there,
 * gcc -O2 -static). A service that logs: it writes BURST lines at start (enough to fill
 * a supervisor's in-memory ring and to make its log writer really write), then one line
 * every PERIOD_MS on stdout, every other one on stderr too, forever. With FLOOD, each
 * SIGUSR1 makes it write FLOOD lines at once on stdout (a log flood, for
 * bench/memory_phases.py), then carry on as before.
 *
 *   chatter BURST PERIOD_MS [FLOOD]
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void say(int fd, const char *what, long n) {
    char line[160];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int len = snprintf(line, sizeof line,
                       "chatter %d %s line %ld at %lld.%09ld: the quick brown fox jumps\n",
                       (int)getpid(), what, n, (long long)ts.tv_sec, ts.tv_nsec);
    if (write(fd, line, (size_t)len) < 0) { /* a closed log pipe: keep running */ }
}

static volatile sig_atomic_t flood_asked;

static void on_usr1(int sig) {
    (void)sig;
    flood_asked = 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: chatter BURST PERIOD_MS [FLOOD]\n");
        return 2;
    }
    long burst = atol(argv[1]), period = atol(argv[2]);
    long flood = argc > 3 ? atol(argv[3]) : 0;
    if (flood > 0) {
        /* No SA_RESTART: the signal cuts the sleep short, the flood starts at once. */
        struct sigaction sa = {0};
        sa.sa_handler = on_usr1;
        sigaction(SIGUSR1, &sa, NULL);
    }
    for (long i = 0; i < burst; i++) say(1, "burst", i);
    struct timespec p = {period / 1000, (period % 1000) * 1000000L};
    for (long n = 0;; n++) {
        nanosleep(&p, NULL);
        if (flood_asked) {
            flood_asked = 0;
            for (long i = 0; i < flood; i++) say(1, "flood", i);
        }
        say(1, "out", n);
        if (n % 2 == 0) say(2, "err", n);
    }
}
