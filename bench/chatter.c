/* chatter: the workload child of `bench/supervisors.py --only uss` (compiled there,
 * gcc -O2 -static). A service that logs: it writes BURST lines at start (enough to fill
 * a supervisor's in-memory ring and to make its log writer really write), then one line
 * every PERIOD_MS on stdout, every other one on stderr too, forever.
 *
 *   chatter BURST PERIOD_MS
 */
#define _GNU_SOURCE
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

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: chatter BURST PERIOD_MS\n");
        return 2;
    }
    long burst = atol(argv[1]), period = atol(argv[2]);
    for (long i = 0; i < burst; i++) say(1, "burst", i);
    struct timespec p = {period / 1000, (period % 1000) * 1000000L};
    for (long n = 0;; n++) {
        nanosleep(&p, NULL);
        say(1, "out", n);
        if (n % 2 == 0) say(2, "err", n);
    }
}
