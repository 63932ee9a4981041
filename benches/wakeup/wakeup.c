/*
 * wakeup.c: how fast can one process wake another that is ASLEEP, for the
 * ways an event loop could be told "the word in shared memory changed"?
 * (issue #18, async waiters; figures in BENCHMARKS.md, "Async waiters: the
 * wake-up options measured").
 *
 * Two processes (fork) share an anonymous MAP_SHARED page holding a futex
 * word. For each wake k the waker waits until the waiter says it is armed,
 * sleeps --gap-us (so the waiter is blocked, its CPU idle), then reads
 * CLOCK_MONOTONIC, stores k in the word and makes its wake call. The
 * waiter reads CLOCK_MONOTONIC as soon as its blocking call returns.
 * Latency = waiter's return - waker's timestamp just before the wake call.
 *
 *   futex     waiter: FUTEX_WAIT on the word; waker: FUTEX_WAKE (baseline)
 *   doorbell  waiter: poll() on a unix SOCK_DGRAM socket with an abstract
 *             name (after setting an "armed" bit, as shmq does), then drains
 *             it with recv until EAGAIN; waker: clears the bit, sendto()
 *   io_uring  waiter: IORING_OP_FUTEX_WAIT (Linux 6.7+) on the word, the
 *             ring's completions signalling an eventfd (IORING_REGISTER_
 *             EVENTFD); it blocks in poll() on the eventfd, then reads it
 *             and reaps the CQE; waker: FUTEX_WAKE
 *   helper    waiter: a helper thread blocks in futex_waitv (or FUTEX_WAIT)
 *             on the word and writes a private eventfd; the main thread
 *             blocks in poll() on the eventfd; waker: FUTEX_WAKE
 *
 * The mechanisms alternate round by round (the VM is noisy); ratios are to
 * futex in the same round. Then the waker-side cost of one wake call when
 * nobody waits. io_uring refused (seccomp, kernel.io_uring_disabled, an old
 * kernel) is reported and skipped; the run still passes.
 *
 * Build: cc -O2 -Wall -Wextra -Werror -pthread -o wakeup wakeup.c
 * Raw system calls only (no liburing): Debian 12's <linux/io_uring.h>
 * predates IORING_OP_FUTEX_WAIT, whose number is defined below.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef __NR_futex_waitv
#define __NR_futex_waitv 449
#endif
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#define __NR_io_uring_enter 426
#define __NR_io_uring_register 427
#endif
#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32 0x02 /* == FUTEX_32; no FUTEX2_PRIVATE: shared */
#endif
/* enum io_uring_op: ..., SENDMSG_ZC (48), READ_MULTISHOT, WAITID,
 * FUTEX_WAIT (51, Linux 6.7). sqe->addr: the word, addr2: the expected
 * value, addr3: the futex2 bitmask, fd: futex2 flags. */
#define OP_FUTEX_WAIT 51
#ifndef IO_URING_OP_SUPPORTED
#define IO_URING_OP_SUPPORTED (1U << 0)
#endif

enum { M_FUTEX, M_DOORBELL, M_URING, M_HELPER, NMECH };
static const char *const MECH_NAME[NMECH] = {"futex", "doorbell", "io_uring", "helper"};
static const char *const MECH_DESC[NMECH] = {
    "(a) futex FUTEX_WAIT / FUTEX_WAKE",
    "(b) doorbell: poll() on a unix dgram socket / sendto()",
    "(c) io_uring FUTEX_WAIT + eventfd, poll() / FUTEX_WAKE",
    "(d) helper thread futex wait -> eventfd, poll() / FUTEX_WAKE",
};

/* The shared page. `word` is the futex word; the rest is the
 * benchmark's own hand-shake, each on its own line. */
struct shared {
    _Alignas(64) _Atomic uint32_t word;
    _Atomic uint32_t armed; /* doorbell: shmq's armed bit, beside the word */
    _Alignas(64) _Atomic uint32_t idle_word; /* nobody ever waits on it */
    _Alignas(64) _Atomic uint64_t ready; /* waiter: armed for wake k; wake k-1's figures below */
    _Atomic uint64_t woke_ns;  /* wake k-1: the waiter's blocking call returned */
    _Atomic uint64_t rearm_ns; /* wake k-1: its drain + the arm for wake k */
    _Alignas(64) _Atomic uint32_t stop;
    _Atomic uint32_t failed;
    char why[256];
};

struct opts {
    long count, rounds, warmup, gap_us, idle_calls;
    int pin, spin_gap, only[NMECH];
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long futex_wait(_Atomic uint32_t *w, uint32_t expect)
{
    return syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, expect, NULL, NULL, 0);
}

static long futex_wake(_Atomic uint32_t *w)
{
    return syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static long futex_waitv1(_Atomic uint32_t *w, uint32_t expect)
{
    struct futex_waitv v = {.val = expect, .uaddr = (uintptr_t)w, .flags = FUTEX2_SIZE_U32};
    return syscall(__NR_futex_waitv, &v, 1, 0, NULL, 0);
}

static void fail(struct shared *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct shared *sh, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sh->why, sizeof sh->why, fmt, ap);
    va_end(ap);
    atomic_store(&sh->failed, 1);
    _exit(1);
}

static void pin_to(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)sched_setaffinity(0, sizeof set, &set);
}

/* ---------------------------------------------------------------- doorbell */

static socklen_t bell_addr(struct sockaddr_un *a, const char *kind, long id)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    /* sun_path[0] = 0: an abstract name, gone when its socket closes. */
    int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "shmq-wakeup-bench-%s-%ld", kind, id);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

static int dgram_socket(void)
{
    return socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

/* ---------------------------------------------------------------- io_uring */

struct uring {
    int fd;
    unsigned *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
};

/* 0, or -errno of the call that failed (*what names it). */
static int uring_init(struct uring *r, const char **what)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    *what = "io_uring_setup";
    r->fd = (int)syscall(__NR_io_uring_setup, 4, &p);
    if (r->fd < 0)
        return -errno;
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    int single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
    if (single && cq_len > sq_len)
        sq_len = cq_len;
    *what = "mmap of the io_uring rings";
    char *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                    IORING_OFF_SQ_RING);
    if (sq == MAP_FAILED)
        return -errno;
    char *cq = sq;
    if (!single) {
        cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                  IORING_OFF_CQ_RING);
        if (cq == MAP_FAILED)
            return -errno;
    }
    void *sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
    if (sqes == MAP_FAILED)
        return -errno;
    r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    r->sq_array = (unsigned *)(sq + p.sq_off.array);
    r->cq_head = (unsigned *)(cq + p.cq_off.head);
    r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    r->sqes = sqes;
    return 0;
}

/* Submits IORING_OP_FUTEX_WAIT on *w while it holds expect: 0 or -errno. */
static int uring_futex_wait(struct uring *r, _Atomic uint32_t *w, uint32_t expect, uint64_t tag)
{
    unsigned tail = *r->sq_tail, i = tail & *r->sq_mask;
    struct io_uring_sqe *e = &r->sqes[i];
    memset(e, 0, sizeof *e);
    e->opcode = OP_FUTEX_WAIT;
    e->fd = FUTEX2_SIZE_U32;
    e->addr = (uintptr_t)w;
    e->addr2 = expect;
    e->addr3 = FUTEX_BITSET_MATCH_ANY;
    e->user_data = tag;
    r->sq_array[i] = i;
    __atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
    long n = syscall(__NR_io_uring_enter, r->fd, 1, 0, 0, NULL, 0);
    if (n < 0)
        return -errno;
    return n == 1 ? 0 : -EIO;
}

/* Reaps the completions: how many; *res the last one's result. */
static int uring_reap(struct uring *r, int *res)
{
    unsigned head = *r->cq_head, tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
    int n = 0;
    for (; head != tail; head++, n++)
        *res = r->cqes[head & *r->cq_mask].res;
    __atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
    return n;
}

/* Can this process use IORING_OP_FUTEX_WAIT? 1, or 0 with the reason. */
static int uring_probe(char *why, size_t n)
{
    struct uring r;
    const char *what;
    int e = uring_init(&r, &what);
    if (e < 0) {
        snprintf(why, n, "%s failed: %s (errno %d)", what, strerror(-e), -e);
        return 0;
    }
    size_t psz = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
    struct io_uring_probe *p = calloc(1, psz);
    if (p && syscall(__NR_io_uring_register, r.fd, IORING_REGISTER_PROBE, p, 256) == 0 &&
        (p->last_op < OP_FUTEX_WAIT || !(p->ops[OP_FUTEX_WAIT].flags & IO_URING_OP_SUPPORTED))) {
        snprintf(why, n, "the kernel has no IORING_OP_FUTEX_WAIT (Linux 6.7+)");
        free(p);
        close(r.fd);
        return 0;
    }
    free(p);
    /* One real wait whose value does not match: must complete -EAGAIN. */
    _Atomic uint32_t *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int ok = 0, res = 0;
    e = w == MAP_FAILED ? -errno : uring_futex_wait(&r, w, 1, 0);
    if (e < 0)
        snprintf(why, n, "io_uring_enter (FUTEX_WAIT) failed: %s (errno %d)", strerror(-e), -e);
    else if (uring_reap(&r, &res) != 1)
        snprintf(why, n, "IORING_OP_FUTEX_WAIT with a stale value did not complete at once");
    else if (res != -EAGAIN)
        snprintf(why, n, "IORING_OP_FUTEX_WAIT returned %d (%s), not -EAGAIN", res, strerror(-res));
    else
        ok = 1;
    if (w != MAP_FAILED)
        munmap((void *)w, 4096);
    close(r.fd);
    return ok;
}

/* ---------------------------------------------------------------- helper */

struct helper {
    struct shared *sh;
    int efd, use_waitv;
    _Atomic int started;
};

static void *helper_main(void *arg)
{
    struct helper *h = arg;
    struct shared *sh = h->sh;
    uint32_t seen = atomic_load(&sh->word);
    atomic_store(&h->started, 1);
    for (;;) {
        long r = h->use_waitv ? futex_waitv1(&sh->word, seen) : futex_wait(&sh->word, seen);
        if (r < 0 && errno != EAGAIN && errno != EINTR)
            fail(sh, "helper: futex wait: %s", strerror(errno));
        uint32_t v = atomic_load(&sh->word);
        if (v == seen)
            continue;
        seen = v;
        uint64_t one = 1;
        if (write(h->efd, &one, sizeof one) != sizeof one)
            fail(sh, "helper: write(eventfd): %s", strerror(errno));
        /* No exit on `stop` here: the helper could see it before the
         * last change of the word and leave the main thread in poll()
         * for good. It runs until the main thread's _exit. */
    }
    return NULL; /* not reached */
}

/* ---------------------------------------------------------------- the waiter */

static int poll_in(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    for (;;) {
        int n = poll(&p, 1, -1);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

static void waiter_main(int mech, struct shared *sh, int cpu, int use_waitv)
{
    pin_to(cpu);
    int fd = -1;
    struct uring ring;
    struct helper h = {.sh = sh, .efd = -1, .use_waitv = use_waitv};
    pthread_t helper_thread;
    const char *what;

    if (mech == M_DOORBELL) {
        struct sockaddr_un a;
        socklen_t len = bell_addr(&a, "bell", (long)getpid());
        fd = dgram_socket();
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, len) < 0)
            fail(sh, "doorbell: socket/bind: %s", strerror(errno));
    } else if (mech == M_URING) {
        int e = uring_init(&ring, &what);
        if (e < 0)
            fail(sh, "io_uring: %s: %s", what, strerror(-e));
        fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0 || syscall(__NR_io_uring_register, ring.fd, IORING_REGISTER_EVENTFD, &fd, 1) < 0)
            fail(sh, "io_uring: eventfd/IORING_REGISTER_EVENTFD: %s", strerror(errno));
    } else if (mech == M_HELPER) {
        fd = h.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0)
            fail(sh, "helper: eventfd: %s", strerror(errno));
        int e = pthread_create(&helper_thread, NULL, helper_main, &h);
        if (e)
            fail(sh, "helper: pthread_create: %s", strerror(e));
        while (!atomic_load(&h.started))
            cpu_relax();
    }

    uint64_t woke = 0;
    for (uint64_t k = 1;; k++) {
        uint32_t expect = atomic_load(&sh->word); /* k - 1 */
        /* arm for wake k */
        if (mech == M_DOORBELL) {
            atomic_fetch_or(&sh->armed, 1);
            /* (shmq re-checks its condition here; the word cannot have
             * moved: the waker waits for `ready`) */
        } else if (mech == M_URING) {
            int e = uring_futex_wait(&ring, &sh->word, expect, k);
            if (e < 0)
                fail(sh, "io_uring: io_uring_enter: %s", strerror(-e));
        }
        if (k > 1) {
            atomic_store(&sh->woke_ns, woke);
            atomic_store(&sh->rearm_ns, now_ns() - woke);
        }
        atomic_store_explicit(&sh->ready, k, memory_order_release);

        /* block until the word moves */
        while (atomic_load(&sh->word) == expect) {
            if (mech == M_FUTEX) {
                if (futex_wait(&sh->word, expect) < 0 && errno != EAGAIN && errno != EINTR)
                    fail(sh, "futex: FUTEX_WAIT: %s", strerror(errno));
            } else if (poll_in(fd) < 0) {
                fail(sh, "%s: poll: %s", MECH_NAME[mech], strerror(errno));
            }
            woke = now_ns();
            /* drain what made it readable */
            if (mech == M_DOORBELL) {
                char b[8];
                while (recv(fd, b, sizeof b, MSG_DONTWAIT) > 0) {
                }
            } else if (mech == M_URING || mech == M_HELPER) {
                uint64_t v;
                if (read(fd, &v, sizeof v) < 0 && errno != EAGAIN)
                    fail(sh, "%s: read(eventfd): %s", MECH_NAME[mech], strerror(errno));
                int res = 0;
                if (mech == M_URING && uring_reap(&ring, &res) > 0 && res != 0 && res != -EAGAIN)
                    fail(sh, "io_uring: FUTEX_WAIT completed with %d (%s)", res, strerror(-res));
            }
        }
        if (atomic_load(&sh->stop))
            break;
    }
    _exit(0); /* ends the helper thread too */
}

/* ---------------------------------------------------------------- the waker */

struct samples {
    uint64_t *lat, *call, *rearm;
    size_t n;
};

/* Waits until the waiter is armed for wake k. 0, or -1 (it failed or
 * stalled: *why says which). */
static int wait_ready(struct shared *sh, uint64_t k, int yield, char *why, size_t n)
{
    uint64_t deadline = now_ns() + 5000000000u;
    for (unsigned spins = 0; atomic_load_explicit(&sh->ready, memory_order_acquire) < k; spins++) {
        if (atomic_load(&sh->failed)) {
            snprintf(why, n, "%s", sh->why);
            return -1;
        }
        if ((spins & 1023) == 0 && now_ns() > deadline) {
            snprintf(why, n, "stalled: the waiter did not come back from wake %llu within 5 s",
                     (unsigned long long)k - 1);
            return -1;
        }
        if (yield)
            sched_yield();
        else
            cpu_relax();
    }
    return 0;
}

static void gap(const struct opts *o, uint64_t from)
{
    uint64_t until = from + (uint64_t)o->gap_us * 1000;
    if (o->spin_gap) {
        while (now_ns() < until)
            cpu_relax();
        return;
    }
    struct timespec ts = {.tv_sec = (time_t)(until / 1000000000u), .tv_nsec = (long)(until % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* One mechanism, count wakes (after warmup ones). 0, or -1 with *why. */
static int run_one(int mech, struct shared *sh, const struct opts *o, int cpus[2], int use_waitv,
                   struct samples *s, char *why, size_t whyn)
{
    memset(sh, 0, sizeof *sh);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, whyn, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0)
        waiter_main(mech, sh, cpus[1], use_waitv);

    int ring = -1;
    struct sockaddr_un a;
    socklen_t alen = 0;
    if (mech == M_DOORBELL) {
        alen = bell_addr(&a, "bell", (long)pid);
        ring = dgram_socket();
    }
    int yield = cpus[1] < 0 && sysconf(_SC_NPROCESSORS_ONLN) < 2;
    uint64_t total = (uint64_t)(o->warmup + o->count), t0 = 0, t1 = 0;
    int rc = 0;
    for (uint64_t k = 1; k <= total + 1; k++) {
        if (wait_ready(sh, k, yield, why, whyn) < 0) {
            rc = -1;
            break;
        }
        uint64_t seen = now_ns();
        if (k > 1 && k - 1 > (uint64_t)o->warmup) {
            s->lat[s->n] = atomic_load(&sh->woke_ns) - t0;
            s->call[s->n] = t1 - t0;
            s->rearm[s->n] = atomic_load(&sh->rearm_ns);
            s->n++;
        }
        if (k == total + 1)
            atomic_store(&sh->stop, 1); /* this last wake only stops it */
        else
            gap(o, seen);
        t0 = now_ns();
        atomic_store(&sh->word, (uint32_t)k);
        if (mech == M_DOORBELL) {
            if (atomic_fetch_and(&sh->armed, ~1u) & 1u)
                if (sendto(ring, "", 1, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&a, alen) != 1 &&
                    errno != EAGAIN) {
                    snprintf(why, whyn, "doorbell: sendto: %s", strerror(errno));
                    rc = -1;
                    break;
                }
        } else {
            futex_wake(&sh->word);
        }
        t1 = now_ns();
    }
    if (rc < 0)
        kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    if (rc == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        snprintf(why, whyn, "the waiter exited badly: %s", sh->failed ? sh->why : "(no reason given)");
        rc = -1;
    }
    if (ring >= 0)
        close(ring);
    return rc;
}

/* ---------------------------------------------------------------- the waker's cost with nobody asleep */

enum { I_FUTEX, I_SEND, I_SEND_DEAD, NIDLE };
static const char *const IDLE_DESC[NIDLE] = {
    "FUTEX_WAKE, nobody waiting (a, c, d)",
    "sendto, doorbell bound but nobody in poll (b)",
    "sendto, doorbell gone: ECONNREFUSED (b, dead waiter)",
};

static double idle_cost(int which, struct shared *sh, long calls, char *why, size_t whyn)
{
    if (which == I_FUTEX) {
        uint64_t t = now_ns();
        for (long i = 0; i < calls; i++)
            futex_wake(&sh->idle_word);
        return (double)(now_ns() - t) / (double)calls;
    }
    struct sockaddr_un a;
    socklen_t alen = bell_addr(&a, which == I_SEND ? "idle" : "dead", (long)getpid());
    int tx = dgram_socket(), rx = -1;
    if (which == I_SEND) {
        rx = dgram_socket();
        if (rx < 0 || bind(rx, (struct sockaddr *)&a, alen) < 0) {
            snprintf(why, whyn, "bind: %s", strerror(errno));
            return -1;
        }
    }
    uint64_t spent = 0;
    char b[8];
    /* A unix dgram socket queues at most net.unix.max_dgram_qlen (10)
     * datagrams: send 8, drain them (not timed), again. */
    for (long i = 0; i < calls; i += 8) {
        uint64_t t = now_ns();
        for (int j = 0; j < 8; j++) {
            ssize_t r = sendto(tx, "", 1, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&a, alen);
            if (which == I_SEND ? r != 1 : !(r < 0 && errno == ECONNREFUSED)) {
                snprintf(why, whyn, "sendto returned %zd (%s)", r, strerror(errno));
                close(tx);
                if (rx >= 0)
                    close(rx);
                return -1;
            }
        }
        spent += now_ns() - t;
        if (rx >= 0)
            while (recv(rx, b, sizeof b, MSG_DONTWAIT) > 0) {
            }
    }
    close(tx);
    if (rx >= 0)
        close(rx);
    return (double)spent / (double)((calls + 7) / 8 * 8);
}

/* ---------------------------------------------------------------- figures */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of n sorted values. */
static double median(const double *v, size_t n)
{
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Nearest-rank percentile of n sorted values. */
static uint64_t pct(const uint64_t *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(q * (double)n + 0.999999);
    return v[(i ? i : 1) - 1];
}

static void sort_samples(struct samples *s)
{
    qsort(s->lat, s->n, sizeof *s->lat, cmp_u64);
    qsort(s->call, s->n, sizeof *s->call, cmp_u64);
    qsort(s->rearm, s->n, sizeof *s->rearm, cmp_u64);
}

static double us(uint64_t ns) { return (double)ns / 1000.0; }

static void usage(FILE *f)
{
    fprintf(f,
            "usage: wakeup [--count N] [--rounds R] [--gap-us G] [--warmup W]\n"
            "              [--idle-calls M] [--only futex,doorbell,io_uring,helper]\n"
            "              [--no-pin] [--spin-gap] [--quick]\n"
            "  --count N       wakes per mechanism per round (default 3000)\n"
            "  --rounds R      rounds; the mechanisms alternate within each (default 6)\n"
            "  --gap-us G      the waker sleeps G us before each wake (default 100)\n"
            "  --warmup W      wakes not counted at the start of each run (default 50)\n"
            "  --idle-calls M  wake calls timed per round with nobody waiting (default 20000)\n"
            "  --only LIST     these mechanisms only (futex is the ratios' baseline)\n"
            "  --no-pin        let the scheduler place the two processes (default: the\n"
            "                  waker on the first CPU allowed, the waiter on the second)\n"
            "  --spin-gap      busy-wait the gap instead of sleeping it\n"
            "  --quick         2 rounds x 300 wakes, 4000 idle calls (CI; under 1 s);\n"
            "                  flags after it still apply\n");
}

static long num_arg(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        usage(stderr);
        exit(64);
    }
    char *end;
    long v = strtol(argv[++*i], &end, 10);
    if (*end || v < 0) {
        fprintf(stderr, "wakeup: bad number for %s: %s\n", argv[*i - 1], argv[*i]);
        exit(64);
    }
    return v;
}

static void cpu_model(char *out, size_t n)
{
    snprintf(out, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                c += 1 + (c[1] == ' ');
                c[strcspn(c, "\n")] = 0;
                snprintf(out, n, "%s", c);
            }
            break;
        }
    fclose(f);
}

int main(int argc, char **argv)
{
    struct opts o = {.count = 3000, .rounds = 6, .warmup = 50, .gap_us = 100, .idle_calls = 20000, .pin = 1};
    int any_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--count"))
            o.count = num_arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--rounds"))
            o.rounds = num_arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--gap-us"))
            o.gap_us = num_arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--warmup"))
            o.warmup = num_arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--idle-calls"))
            o.idle_calls = num_arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--quick"))
            o.count = 300, o.rounds = 2, o.idle_calls = 4000;
        else if (!strcmp(argv[i], "--no-pin"))
            o.pin = 0;
        else if (!strcmp(argv[i], "--spin-gap"))
            o.spin_gap = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            char *list = argv[++i], *save = NULL;
            for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                int m = 0;
                while (m < NMECH && strcmp(t, MECH_NAME[m]))
                    m++;
                if (m == NMECH) {
                    fprintf(stderr, "wakeup: unknown mechanism %s\n", t);
                    return 64;
                }
                o.only[m] = any_only = 1;
            }
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 64;
        }
    }
    if (o.count < 1 || o.rounds < 1) {
        fprintf(stderr, "wakeup: --count and --rounds must be at least 1\n");
        return 64;
    }
    if (o.idle_calls < 8)
        o.idle_calls = 8;
    int on[NMECH];
    for (int m = 0; m < NMECH; m++)
        on[m] = !any_only || o.only[m];

    /* Environment */
    struct utsname u;
    uname(&u);
    char model[256];
    cpu_model(model, sizeof model);
    int cpus[2] = {-1, -1};
    cpu_set_t set;
    if (o.pin && sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) >= 2) {
        for (int c = 0, got = 0; c < CPU_SETSIZE && got < 2; c++)
            if (CPU_ISSET(c, &set))
                cpus[got++] = c;
    }
    char uring_why[256] = "";
    if (on[M_URING] && !uring_probe(uring_why, sizeof uring_why))
        on[M_URING] = 0;
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
    int disabled = -1;
    if (f) {
        if (fscanf(f, "%d", &disabled) != 1)
            disabled = -1;
        fclose(f);
    }
    struct shared *sh = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    int use_waitv = !(futex_waitv1(&sh->idle_word, 1) < 0 && errno != EAGAIN);

    printf("wakeup: kernel %s %s, CPU %s, %ld CPUs online\n", u.release, u.machine, model,
           sysconf(_SC_NPROCESSORS_ONLN));
    printf("  %ld round(s) x %ld wakes per mechanism (+%ld warm-up), gap %ld us (%s), ", o.rounds, o.count,
           o.warmup, o.gap_us, o.spin_gap ? "busy-waited" : "slept");
    if (cpus[0] >= 0)
        printf("waker on CPU %d, waiter on CPU %d\n", cpus[0], cpus[1]);
    else
        printf("not pinned\n");
    if (uring_why[0])
        printf("  io_uring: SKIPPED: %s (kernel.io_uring_disabled = %d); the others run\n", uring_why, disabled);
    else if (on[M_URING])
        printf("  io_uring: IORING_OP_FUTEX_WAIT available (kernel.io_uring_disabled = %d)\n", disabled);
    if (on[M_HELPER])
        printf("  helper thread waits with %s\n", use_waitv ? "futex_waitv (449)" : "FUTEX_WAIT (futex_waitv refused)");
    fflush(stdout);

    pin_to(cpus[0]);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* the gap as asked, not +50 us */

    size_t per = (size_t)o.count, all = per * (size_t)o.rounds;
    struct samples pooled[NMECH], round[NMECH];
    for (int m = 0; m < NMECH; m++) {
        pooled[m].lat = calloc(all, 8), pooled[m].call = calloc(all, 8), pooled[m].rearm = calloc(all, 8);
        round[m].lat = calloc(per, 8), round[m].call = calloc(per, 8), round[m].rearm = calloc(per, 8);
        pooled[m].n = 0;
        if (!pooled[m].lat || !pooled[m].call || !pooled[m].rearm || !round[m].lat || !round[m].call ||
            !round[m].rearm) {
            fprintf(stderr, "wakeup: out of memory\n");
            return 1;
        }
    }
    double *r50[NMECH], *r99[NMECH];
    size_t nr[NMECH] = {0};
    for (int m = 0; m < NMECH; m++)
        r50[m] = calloc((size_t)o.rounds, sizeof(double)), r99[m] = calloc((size_t)o.rounds, sizeof(double));
    double *idle[NIDLE];
    for (int i = 0; i < NIDLE; i++)
        idle[i] = calloc((size_t)o.rounds, sizeof(double));
    int failed = 0;
    char why[512], failwhy[NMECH][512];
    memset(failwhy, 0, sizeof failwhy);

    printf("\nwake latency (us: waker's clock just before the wake call -> waiter's blocking call returned)\n");
    printf("round  mechanism   p50      p90      p99      p50/futex  p99/futex  wake call p50  re-arm p50\n");
    for (long r = 0; r < o.rounds; r++) {
        uint64_t f50 = 0, f99 = 0;
        /* futex first (the baseline), then the others in a rotating order */
        for (int j = 0; j < NMECH; j++) {
            int m = j == 0 ? M_FUTEX : 1 + (int)((j - 1 + r) % (NMECH - 1));
            if (!on[m])
                continue;
            round[m].n = 0;
            if (run_one(m, sh, &o, cpus, use_waitv, &round[m], why, sizeof why) < 0) {
                printf("%5ld  %-9s  FAILED: %s\n", r + 1, MECH_NAME[m], why);
                snprintf(failwhy[m], sizeof failwhy[m], "%s", why);
                on[m] = 0;
                failed = 1;
                continue;
            }
            memcpy(pooled[m].lat + pooled[m].n, round[m].lat, round[m].n * 8);
            memcpy(pooled[m].call + pooled[m].n, round[m].call, round[m].n * 8);
            memcpy(pooled[m].rearm + pooled[m].n, round[m].rearm, round[m].n * 8);
            pooled[m].n += round[m].n;
            struct samples *s = &round[m];
            sort_samples(s);
            uint64_t p50 = pct(s->lat, s->n, .50), p90 = pct(s->lat, s->n, .90), p99 = pct(s->lat, s->n, .99);
            if (m == M_FUTEX)
                f50 = p50, f99 = p99;
            printf("%5ld  %-9s %7.1f  %7.1f  %7.1f", r + 1, MECH_NAME[m], us(p50), us(p90), us(p99));
            if (f50 && f99) {
                r50[m][nr[m]] = (double)p50 / (double)f50;
                r99[m][nr[m]] = (double)p99 / (double)f99;
                printf("   %6.2fx    %6.2fx", r50[m][nr[m]], r99[m][nr[m]]);
                nr[m]++;
            } else {
                printf("       -          -  ");
            }
            printf("   %8.2f      %8.2f\n", us(pct(s->call, s->n, .50)), us(pct(s->rearm, s->n, .50)));
            fflush(stdout);
        }
        for (int i = 0; i < NIDLE; i++) {
            if ((i == I_FUTEX && !(on[M_FUTEX] || on[M_URING] || on[M_HELPER])) || (i != I_FUTEX && !on[M_DOORBELL]))
                continue;
            idle[i][r] = idle_cost(i, sh, o.idle_calls, why, sizeof why);
            if (idle[i][r] < 0) {
                printf("idle cost of %s: FAILED: %s\n", IDLE_DESC[i], why);
                failed = 1;
            }
        }
    }

    printf("\n## All rounds pooled (%ld x %ld wakes per mechanism)\n\n", o.rounds, o.count);
    printf("| mechanism | p50 | p90 | p99 | p50 / futex (median of rounds, range) | p99 / futex (median) "
           "| waker's wake call, p50 | waiter's drain + re-arm, p50 |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (int m = 0; m < NMECH; m++) {
        struct samples *s = &pooled[m];
        if (m == M_URING && uring_why[0]) {
            printf("| %s | skipped: %s | | | | | | |\n", MECH_DESC[m], uring_why);
            continue;
        }
        if (failwhy[m][0]) {
            printf("| %s | FAILED: %s | | | | | | |\n", MECH_DESC[m], failwhy[m]);
            continue;
        }
        if (!s->n)
            continue;
        sort_samples(s);
        printf("| %s | %.1f us | %.1f us | %.1f us |", MECH_DESC[m], us(pct(s->lat, s->n, .50)),
               us(pct(s->lat, s->n, .90)), us(pct(s->lat, s->n, .99)));
        if (nr[m]) {
            qsort(r50[m], nr[m], sizeof(double), cmp_dbl);
            qsort(r99[m], nr[m], sizeof(double), cmp_dbl);
            printf(" %.2fx (%.2f-%.2f) | %.2fx |", median(r50[m], nr[m]), r50[m][0], r50[m][nr[m] - 1],
                   median(r99[m], nr[m]));
        } else {
            printf(" - | - |");
        }
        printf(" %.2f us | %.2f us |\n", us(pct(s->call, s->n, .50)), us(pct(s->rearm, s->n, .50)));
    }
    printf("\n## The waker's cost of one wake call with nobody asleep (median of %ld rounds x %ld calls)\n\n",
           o.rounds, o.idle_calls);
    printf("| call | ns per call |\n|---|---|\n");
    for (int i = 0; i < NIDLE; i++) {
        double v[64];
        size_t n = 0;
        for (long r = 0; r < o.rounds && n < 64; r++)
            if (idle[i][r] > 0)
                v[n++] = idle[i][r];
        if (!n)
            continue;
        qsort(v, n, sizeof v[0], cmp_dbl);
        printf("| %s | %.0f |\n", IDLE_DESC[i], median(v, n));
    }
    if (failed)
        printf("\nwakeup: a mechanism FAILED (above)\n");
    return failed ? 1 : 0;
}
