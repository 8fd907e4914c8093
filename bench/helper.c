/* bench-helper: the work every init runs in bench/supervisors.py, and the bench's probes.
 * One static binary, compiled by the bench script (gcc -O2 -static); every init starts
 * exactly the same program with the same arguments.
 *
 *   t0 FILE CMD...          write "<CLOCK_MONOTONIC ns>\n" to FILE, then exec CMD
 *                           (the init), so "exec to N running" is measured from here
 *   stamp FILE [sleep]      append "<pid> S <ns>\n" at start; then sleep forever
 *                           (`sleep`) or append "<pid> E <ns>\n" and _exit(0)
 *   spawn N CMD...          fork+exec CMD N times, then reap forever (what tini and
 *                           dumb-init need to have five children: they take one)
 *   spawn-sync N CMD...     as spawn, but each fork waits until its child has exec'd
 *                           (what Rust's Command::spawn does); for bench/probe-spawn.py
 *   spawn-vfork N CMD...    as spawn, with posix_spawn (vfork-style); same
 *   spawn-cgroup N DIR CMD...  as spawn, each child in a cgroup of its own, as zedinit
 *                           does: mkdir DIR (a new cgroup2 directory, as zedinit's
 *                           zedinit.<nonce>), then per child mkdir DIR/svc.I and clone3
 *                           with CLONE_INTO_CGROUP into it; same. The caller removes DIR
 *   storm N GO DONE [MS]    block until a byte arrives on fifo GO; fork N children that
 *                           each fork a grandchild and _exit at once: N orphans, now PID
 *                           1's children, all blocked reading one pipe; once all are
 *                           re-parented and waiting, close the pipe's write end (the
 *                           release): all N exit at once. Poll a pidfd per orphan
 *                           every 0.1 ms until all have exited (pidfd readable) and
 *                           all are reaped (signal 0 fails: ESRCH). Write "<start>
 *                           <release> <reaped> <polls> <made> <left> <exited>" (ns) to
 *                           fifo DONE; sleep forever. MS: pause before the release
 *                           (for a profiler to attach; not used by the benchmark)
 *   watch INITPID GO DONE   the orphan probe (runs outside the namespace): triggers the
 *                           storm, reads its report, then counts zombies among
 *                           INITPID's children; prints the report and that count
 *   bareloop N CMD...       reference "supervisor": fork, exec CMD, waitpid; N times
 *
 * Invoked as `run` (argv[0]'s last component; how runsv and s6-supervise start a
 * service), it reads its arguments from ./args, one per line, so runit and s6 exec the
 * same program directly rather than through a shell script.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void append_line(const char *file, const char *line) {
    int fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) { perror(file); _exit(111); }
    if (write(fd, line, strlen(line)) < 0) { perror("write"); _exit(111); }
    close(fd);
}

static void sleep_forever(void) __attribute__((noreturn));
static void sleep_forever(void) {
    for (;;) pause();
}

static int dispatch(int argc, char **argv);

/* `run` in a runit/s6 service directory: arguments from ./args. */
static int run_from_args_file(void) {
    static char buf[4096];
    int fd = open("args", O_RDONLY | O_CLOEXEC);
    if (fd < 0) { perror("args"); return 111; }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 111;
    buf[n] = 0;
    char *argv[64];
    int argc = 0;
    argv[argc++] = "bench-helper";
    for (char *save = NULL, *tok = strtok_r(buf, "\n", &save); tok && argc < 63;
         tok = strtok_r(NULL, "\n", &save))
        argv[argc++] = tok;
    argv[argc] = NULL;
    return dispatch(argc, argv);
}

static int watch(int init_pid, const char *go, const char *done) {
    /* Opening GO blocks until the storm program has it open. */
    int gofd = open(go, O_WRONLY | O_CLOEXEC);
    if (gofd < 0) { perror(go); return 1; }
    if (write(gofd, "g", 1) != 1) { perror("go"); return 1; }
    close(gofd);
    int donefd = open(done, O_RDONLY | O_CLOEXEC);
    if (donefd < 0) { perror(done); return 1; }
    char msg[256];
    ssize_t m = read(donefd, msg, sizeof msg - 1);
    if (m <= 0) { fprintf(stderr, "storm: no report\n"); return 1; }
    msg[m] = 0;
    close(donefd);
    /* Zombies left among the init's children afterwards (its services included). */
    static char buf[1 << 20];
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", init_pid, init_pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { perror(path); return 1; }
    size_t len = 0;
    ssize_t r;
    while ((r = read(fd, buf + len, sizeof buf - 1 - len)) > 0) len += r;
    buf[len] = 0;
    close(fd);
    int zombies = 0;
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok;
         tok = strtok_r(NULL, " ", &save)) {
        char sp[64], st[512];
        snprintf(sp, sizeof sp, "/proc/%s/stat", tok);
        int sfd = open(sp, O_RDONLY | O_CLOEXEC);
        if (sfd < 0) continue;
        ssize_t k = read(sfd, st, sizeof st - 1);
        close(sfd);
        if (k <= 0) continue;
        st[k] = 0;
        char *rp = strrchr(st, ')');
        if (rp && rp[1] == ' ' && rp[2] == 'Z') zombies++;
    }
    msg[strcspn(msg, "\n")] = 0;
    printf("%s %d\n", msg, zombies);
    return 0;
}

/* clone3(2)'s arguments (linux/sched.h's struct clone_args; not included: it redefines
 * glibc's CLONE_* flags). */
struct clone3_args {
    unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size,
        tls, set_tid, set_tid_size, cgroup;
};
#define CLONE3_INTO_CGROUP 0x200000000ULL

/* spawn-cgroup: zedinit's start of a service reduced to its kernel work: a new cgroup
 * per child, opened, and the child cloned straight into it (clone3 CLONE_INTO_CGROUP,
 * as sys/launch.rs does; a fork and a write to cgroup.procs in the child would be a
 * migration, another kernel path, and the populated notification would come from the
 * child instead). Without CLONE_VM and a stack, clone3 forks: the child runs on its
 * copy of this stack and only execs. Never waits for an exec, like spawn. */
static int spawn_cgroup(int n, const char *dir, char **cmd) {
    if (mkdir(dir, 0755)) { perror(dir); return 111; }
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/svc.%d", dir, i + 1);
        if (mkdir(path, 0755)) { perror(path); return 111; }
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) { perror(path); return 111; }
        struct clone3_args a = {.flags = CLONE3_INTO_CGROUP, .exit_signal = SIGCHLD,
                                .cgroup = (unsigned long long)fd};
        long pid = syscall(SYS_clone3, &a, sizeof a);
        if (pid == 0) {
            execv(cmd[0], cmd);
            _exit(111);
        }
        if (pid < 0) { perror("clone3"); return 111; }
        close(fd);
    }
    for (;;)
        if (wait(NULL) < 0 && errno == ECHILD) sleep_forever();
}

static int dispatch(int argc, char **argv) {
    char line[128];
    if (argc >= 3 && !strcmp(argv[1], "stamp")) {
        snprintf(line, sizeof line, "%d S %lld\n", getpid(), now_ns());
        append_line(argv[2], line);
        if (argc >= 4 && !strcmp(argv[3], "sleep")) sleep_forever();
        snprintf(line, sizeof line, "%d E %lld\n", getpid(), now_ns());
        append_line(argv[2], line);
        _exit(0);
    }
    if (argc >= 4 && !strcmp(argv[1], "t0")) {
        snprintf(line, sizeof line, "%lld\n", now_ns());
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, line, strlen(line)) < 0) { perror(argv[2]); return 111; }
        close(fd);
        execv(argv[3], argv + 3);
        perror(argv[3]);
        return 111;
    }
    if (argc >= 4 && !strcmp(argv[1], "spawn")) {
        int n = atoi(argv[2]);
        for (int i = 0; i < n; i++) {
            pid_t pid = fork();
            if (pid == 0) {
                execv(argv[3], argv + 3);
                _exit(111);
            }
        }
        for (;;)
            if (wait(NULL) < 0 && errno == ECHILD) sleep_forever();
    }
    if (argc >= 5 && !strcmp(argv[1], "spawn-cgroup"))
        return spawn_cgroup(atoi(argv[2]), argv[3], argv + 4);
    if (argc >= 4 && (!strcmp(argv[1], "spawn-sync") || !strcmp(argv[1], "spawn-vfork"))) {
        /* spawn-sync: as Rust's std::process::Command::spawn with a pre_exec hook does:
         * fork, and block until the child has exec'd (EOF on a CLOEXEC pipe), one child
         * after the other. spawn-vfork: posix_spawn (glibc: clone(CLONE_VM|CLONE_VFORK),
         * the parent also resumes only once the child has exec'd). */
        int n = atoi(argv[2]);
        int sync = !strcmp(argv[1], "spawn-sync");
        for (int i = 0; i < n; i++) {
            if (sync) {
                int p[2];
                if (pipe2(p, O_CLOEXEC)) return 111;
                pid_t pid = fork();
                if (pid == 0) {
                    setsid();
                    execv(argv[3], argv + 3);
                    int e = errno;
                    if (write(p[1], &e, sizeof e) < 0) {}
                    _exit(127);
                }
                close(p[1]);
                int e;
                while (read(p[0], &e, sizeof e) < 0 && errno == EINTR) {}
                close(p[0]);
            } else {
                posix_spawnattr_t a;
                posix_spawnattr_init(&a);
                posix_spawnattr_setflags(&a, POSIX_SPAWN_SETSID);
                pid_t pid;
                posix_spawn(&pid, argv[3], NULL, &a, argv + 3, environ);
                posix_spawnattr_destroy(&a);
            }
        }
        for (;;)
            if (wait(NULL) < 0 && errno == ECHILD) sleep_forever();
    }
    if (argc >= 5 && !strcmp(argv[1], "storm")) {
        int n = atoi(argv[2]);
        int gofd = open(argv[3], O_RDONLY | O_CLOEXEC);
        if (gofd < 0) { perror(argv[3]); return 111; }
        char c;
        if (read(gofd, &c, 1) != 1) return 111;
        close(gofd);
        /* One pidfd per orphan: room for them. */
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        /* hold: the orphans block reading it until it is closed. ready: each orphan
         * sends its pid there once it holds no write end of `hold`. */
        int hold[2], ready[2];
        if (pipe2(hold, O_CLOEXEC) || pipe2(ready, O_CLOEXEC)) { perror("pipe"); return 111; }
        long long start = now_ns();
        for (int i = 0; i < n; i++) {
            pid_t pid = fork();
            if (pid == 0) {
                if (fork() == 0) {
                    /* The orphan: holds no write end of `hold`, says so, waits. */
                    close(hold[1]);
                    close(ready[0]);
                    int me = getpid();
                    if (write(ready[1], &me, sizeof me) != sizeof me) _exit(1);
                    close(ready[1]);
                    char b;
                    while (read(hold[0], &b, 1) > 0) {}
                    _exit(0); /* EOF: the release */
                }
                _exit(0); /* the orphan becomes PID 1's */
            }
            if (pid < 0) { i--; struct timespec ts = {0, 1000000}; nanosleep(&ts, NULL); }
        }
        close(ready[1]);
        int *fds = calloc(n, sizeof *fds);
        int got = 0, v;
        while (got < n && read(ready[0], &v, sizeof v) == sizeof v) {
            /* Still alive (it waits for the release), so the pid is the orphan's. */
            fds[got] = syscall(SYS_pidfd_open, v, 0);
            if (fds[got] < 0) { perror("pidfd_open"); return 111; }
            got++;
        }
        close(ready[0]);
        /* Our own children are reaped by us: every orphan is now PID 1's. */
        while (waitpid(-1, NULL, 0) > 0) {}
        /* Every orphan has closed its write end of `hold`: ours is the last. An optional
         * pause before the release lets a profiler attach (bench/probe-orphans). */
        if (argc >= 6) {
            long ms = atol(argv[5]);
            struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
            nanosleep(&ts, NULL);
        }
        long long release = now_ns();
        close(hold[1]);
        /* Reaped = the pid is released: signal 0 then fails with ESRCH (a zombie still
         * accepts it). Walk the orphans in order; poll every 0.1 ms. */
        long polls = 0;
        int i = 0, j = 0; /* orphans [0, j) have exited, [0, i) have been reaped */
        long long deadline = release + 60LL * 1000000000LL, clear = 0, exited = 0;
        for (;;) {
            /* Exited (zombie or gone): its pidfd polls readable. */
            for (;;) {
                if (j < i) j = i;
                if (j >= got) break;
                struct pollfd p = {fds[j], POLLIN, 0};
                if (poll(&p, 1, 0) != 1) break;
                j++;
            }
            while (i < got && syscall(SYS_pidfd_send_signal, fds[i], 0, NULL, 0) < 0 && errno == ESRCH)
                i++;
            if (j < i) j = i; /* reaped implies exited */
            long long t = now_ns();
            polls++;
            if (j >= got && !exited) exited = t;
            if (i == got) { clear = t; break; }
            if (t > deadline) break;
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
        close(hold[0]);
        for (int k = 0; k < got; k++) close(fds[k]);
        free(fds);
        snprintf(line, sizeof line, "%lld %lld %lld %ld %d %d %lld\n", start, release, clear,
                 polls, got, got - i, exited);
        int donefd = open(argv[4], O_WRONLY | O_CLOEXEC);
        if (donefd < 0 || write(donefd, line, strlen(line)) < 0) return 111;
        close(donefd);
        sleep_forever();
    }
    if (argc >= 5 && !strcmp(argv[1], "watch"))
        return watch(atoi(argv[2]), argv[3], argv[4]);
    if (argc >= 4 && !strcmp(argv[1], "bareloop")) {
        int n = atoi(argv[2]);
        for (int i = 0; i < n; i++) {
            pid_t pid = fork();
            if (pid == 0) {
                execv(argv[3], argv + 3);
                _exit(111);
            }
            waitpid(pid, NULL, 0);
        }
        return 0;
    }
    fprintf(stderr, "bench-helper: bad arguments (see bench/helper.c)\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    if (!strcmp(base, "run")) return run_from_args_file();
    return dispatch(argc, argv);
}
