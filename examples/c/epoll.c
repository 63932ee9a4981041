/* epoll.c - a shmq consumer inside an epoll event loop, from C.
 *
 *   cc -std=c11 -Iinclude examples/c/epoll.c -Ltarget/release -lshmq_ffi \
 *      -Wl,-rpath,"$PWD/target/release" -o epoll && ./epoll
 *
 * A child process publishes five messages, 20 ms apart; the parent's loop
 * sleeps in epoll_wait (edge-triggered) on the consumer's readiness fd
 * and never blocks in shmq: receive with timeout 0 until SHMQ_TIMEOUT,
 * arm, wait for the fd, drain, again. The same fd works in libuv,
 * libevent, Boost.Asio or poll(2). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmq.h"

static int fail(const char *what, shmq_status st) {
    fprintf(stderr, "%s: %s: %s\n", what, shmq_status_str((int)st), shmq_last_error());
    return 1;
}

/* The child: its own handles (never use a parent's handles after fork). */
static int publish_five(const shmq_options *opts) {
    shmq_queue *q = NULL;
    shmq_producer *p = NULL;
    shmq_status st = shmq_queue_open("epoll-c", opts, &q);
    if (st != SHMQ_OK) return fail("child open", st);
    if ((st = shmq_producer_new(q, &p)) != SHMQ_OK) return fail("child producer", st);
    for (int i = 1; i <= 5; i++) {
        char text[32];
        int n = snprintf(text, sizeof text, "tick %d", i);
        usleep(20000);
        if ((st = shmq_publish(p, (const uint8_t *)text, (size_t)n, NULL)) != SHMQ_OK)
            return fail("child publish", st);
    }
    shmq_producer_free(&p);
    shmq_queue_close(&q);
    return 0;
}

int main(void) {
    shmq_options opts = shmq_options_default();
    opts.slots = 1024;
    opts.slot_size = 256;

    shmq_queue *q = NULL;
    shmq_status st = shmq_queue_open_or_create("epoll-c", &opts, &q);
    if (st != SHMQ_OK) return fail("open", st);
    shmq_consumer *c = NULL; /* creates group "loop" at the oldest message */
    if ((st = shmq_consumer_new(q, "loop", NULL, &c)) != SHMQ_OK) return fail("consumer", st);

    pid_t child = fork();
    if (child < 0) return 1;
    if (child == 0) _exit(publish_five(&opts));

    int fd = -1;
    if ((st = shmq_consumer_fd(c, &fd)) != SHMQ_OK) return fail("consumer fd", st);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data = {.fd = fd}};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        perror("epoll");
        return 1;
    }

    int got = 0, waits = 0;
    while (got < 5) {
        shmq_message m;
        st = shmq_receive(c, 0, &m); /* 0: never waits */
        if (st == SHMQ_OK) {
            printf("seq %llu: %.*s\n", (unsigned long long)m.seq, (int)m.len, (const char *)m.data);
            shmq_ack(c, &m);
            got++;
            continue;
        }
        if (st != SHMQ_TIMEOUT) return fail("receive", st);
        int armed = 0;
        uint64_t recheck_ns = 0;
        if ((st = shmq_consumer_arm(c, &armed, &recheck_ns)) != SHMQ_OK) return fail("arm", st);
        if (!armed) continue; /* something came meanwhile */
        /* Idle queues need no timer: SHMQ_WAIT_FOREVER. This example
         * bounds the wait anyway, so that a bug cannot hang it. */
        int ms = recheck_ns == SHMQ_WAIT_FOREVER ? 10000 : (int)(recheck_ns / 1000000) + 1;
        struct epoll_event out;
        if (epoll_wait(ep, &out, 1, ms) == 0 && recheck_ns == SHMQ_WAIT_FOREVER) {
            fprintf(stderr, "no wake-up within 10 s\n");
            return 1;
        }
        waits++;
        if ((st = shmq_consumer_drain(c)) != SHMQ_OK) return fail("drain", st);
    }
    printf("5 messages, %d waits in epoll_wait\n", waits);

    int status = 0;
    waitpid(child, &status, 0);
    close(ep);
    shmq_consumer_free(&c);
    shmq_queue_close(&q);
    if (shmq_queue_remove("epoll-c", &opts) != SHMQ_OK) return 1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
