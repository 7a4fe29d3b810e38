/* An LD_PRELOAD library that steps one process's wall clock, as NTP or `date -s` would, without
 * touching the machine's: clock_gettime(CLOCK_REALTIME[_COARSE]), gettimeofday() and time()
 * return the real time plus the number of seconds (a decimal, may be negative) written in the
 * file named by $BGR_CLOCK_SHIFT_FILE. The file is read again at most every 10 ms, so a test can
 * step the clock of a running process by rewriting it. Monotonic and boot clocks are left alone.
 *
 * The constructor removes LD_PRELOAD and BGR_CLOCK_SHIFT_FILE from the environment before the
 * program reads it, so the processes it starts (a guard's restarted instances) keep the real
 * clock. Built by tests/support.py:build_clock_shift. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define NS 1000000000LL

static char shift_path[4096];
static int (*real_clock_gettime)(clockid_t, struct timespec *);
static volatile long long shift_ns;
static volatile long long read_at_ns = -NS;

static void find_real(void) {
    if (!real_clock_gettime)
        real_clock_gettime = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
}

static void reload_shift(void) {
    struct timespec mono;
    if (!shift_path[0] || real_clock_gettime(CLOCK_MONOTONIC, &mono) != 0)
        return;
    long long now = mono.tv_sec * NS + mono.tv_nsec;
    if (now - read_at_ns < NS / 100)
        return;
    read_at_ns = now;
    int fd = open(shift_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[64];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = 0;
    shift_ns = (long long)(strtod(buf, NULL) * 1e9);
}

__attribute__((constructor)) static void init(void) {
    find_real();
    const char *path = getenv("BGR_CLOCK_SHIFT_FILE");
    if (path && strlen(path) < sizeof shift_path)
        strcpy(shift_path, path);
    unsetenv("BGR_CLOCK_SHIFT_FILE");
    unsetenv("LD_PRELOAD");
}

int clock_gettime(clockid_t clk, struct timespec *ts) {
    find_real();
    int rc = real_clock_gettime(clk, ts);
    if (rc != 0 || (clk != CLOCK_REALTIME && clk != CLOCK_REALTIME_COARSE))
        return rc;
    reload_shift();
    long long t = ts->tv_sec * NS + ts->tv_nsec + shift_ns;
    ts->tv_sec = (time_t)(t / NS);
    ts->tv_nsec = (long)(t % NS);
    if (ts->tv_nsec < 0) {
        ts->tv_nsec += NS;
        ts->tv_sec -= 1;
    }
    return rc;
}

int gettimeofday(struct timeval *tv, void *tz) {
    (void)tz;
    struct timespec ts;
    int rc = clock_gettime(CLOCK_REALTIME, &ts);
    if (rc == 0 && tv) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return rc;
}

time_t time(time_t *out) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return (time_t)-1;
    if (out)
        *out = ts.tv_sec;
    return ts.tv_sec;
}
