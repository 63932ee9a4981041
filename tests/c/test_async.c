/* The readiness fds of the C API: a consumer's fd becomes readable when
 * a message comes after an arm (and stays so until drained); an arm with
 * a message there says so; a producer's fd becomes readable when room is
 * freed; NULL arguments and a pending reservation are refused. */
#define _GNU_SOURCE

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <sys/wait.h>

#include "check.h"

static int readable(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

static void test_consumer_fd(void) {
    shmq_options o = test_options(64, 64);
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("async", &o, &q));
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));

    int fd = -1, again = -1;
    CHECK_OK(shmq_consumer_fd(c, &fd));
    CHECK(fd >= 0);
    CHECK_OK(shmq_consumer_fd(c, &again));
    CHECK(again == fd);
    CHECK(!readable(fd, 0));

    int armed = -1;
    uint64_t recheck = 0;
    CHECK_OK(shmq_consumer_arm(c, &armed, &recheck));
    CHECK(armed == 1);
    CHECK(recheck == SHMQ_WAIT_FOREVER); /* idle: no timer */
    CHECK(!readable(fd, 0));
    for (int i = 0; i < 3; i++) CHECK_OK(shmq_publish(p, (const uint8_t *)"x", 1, NULL));
    CHECK(readable(fd, 5000));
    CHECK(readable(fd, 0)); /* until drained */
    CHECK_OK(shmq_consumer_drain(c));
    CHECK(!readable(fd, 0));

    /* Messages there: the arm says so and arms nothing. */
    CHECK_OK(shmq_consumer_arm(c, &armed, NULL));
    CHECK(armed == 0);
    shmq_message m;
    for (int i = 0; i < 3; i++) CHECK_OK(shmq_receive(c, 0, &m));
    CHECK_STATUS(shmq_receive(c, 0, &m), SHMQ_TIMEOUT);

    /* Disarmed: a publish rings nobody. */
    CHECK_OK(shmq_consumer_arm(c, &armed, NULL));
    CHECK(armed == 1);
    CHECK_OK(shmq_consumer_disarm(c));
    CHECK_OK(shmq_publish(p, (const uint8_t *)"y", 1, NULL));
    CHECK(!readable(fd, 50));

    /* NULLs. */
    CHECK_STATUS(shmq_consumer_fd(NULL, &fd), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_consumer_fd(c, NULL), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_consumer_arm(c, NULL, NULL), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_consumer_drain(NULL), SHMQ_NULL_ARGUMENT);

    shmq_producer_free(&p);
    shmq_consumer_free(&c);
    shmq_queue_close(&q);
    CHECK_OK(shmq_queue_remove("async", &o));
}

static void test_producer_fd(void) {
    shmq_options o = test_options(8, 64);
    o.overflow = SHMQ_OVERFLOW_REJECT;
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("async-room", &o, &q));
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    for (int i = 0; i < 8; i++) CHECK_OK(shmq_publish(p, (const uint8_t *)"x", 1, NULL));
    CHECK_STATUS(shmq_publish(p, (const uint8_t *)"x", 1, NULL), SHMQ_FULL);

    int fd = -1, armed = -1;
    uint64_t recheck = 0;
    CHECK_OK(shmq_producer_fd(p, &fd));
    CHECK_OK(shmq_producer_arm(p, 1, &armed, &recheck));
    CHECK(armed == 1);
    CHECK(recheck != SHMQ_WAIT_FOREVER && recheck > 0);
    CHECK(!readable(fd, 0));
    shmq_message m;
    CHECK_OK(shmq_receive(c, 0, &m));
    CHECK_OK(shmq_ack(c, &m)); /* the cursor moves: room, and a ring */
    CHECK(readable(fd, 5000));
    CHECK_OK(shmq_producer_drain(p));
    CHECK_OK(shmq_publish(p, (const uint8_t *)"x", 1, NULL));

    /* A pending reservation holds the producer. */
    CHECK_OK(shmq_receive(c, 0, &m));
    CHECK_OK(shmq_ack(c, &m));
    uint8_t *data = NULL;
    shmq_reservation *r = NULL;
    CHECK_OK(shmq_reserve(p, 1, &data, &r));
    CHECK_STATUS(shmq_producer_arm(p, 1, &armed, NULL), SHMQ_BUSY);
    CHECK_OK(shmq_abort(r));

    shmq_producer_free(&p);
    shmq_consumer_free(&c);
    shmq_queue_close(&q);
    CHECK_OK(shmq_queue_remove("async-room", &o));
}

/* A consumer's fd in another network namespace (a container without a
 * shared network): a child process unshares its network namespace, arms
 * its fd and polls it; a publish here must make it readable. Doorbells
 * used to be abstract sockets, which live in a network namespace: the
 * child was never woken. Needs root (CI runs as root): without it the
 * test says so and passes, unless SHMQ_REQUIRE_TOOLS is set. */
static void test_consumer_fd_across_network_namespaces(void) {
    shmq_options o = test_options(64, 64);
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("async-net", &o, &q));
    REQUIRE_OK(shmq_group_create(q, "g", SHMQ_START_EARLIEST, 0));
    int ready[2];
    REQUIRE(pipe(ready) == 0);
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        close(ready[0]);
        if (unshare(CLONE_NEWNET) != 0) _exit(errno == EPERM ? 77 : 2);
        shmq_queue *cq = NULL;
        shmq_consumer *c = NULL;
        int fd = -1, armed = -1;
        if (shmq_queue_open("async-net", &o, &cq) != SHMQ_OK) _exit(3);
        if (shmq_consumer_new(cq, "g", NULL, &c) != SHMQ_OK) _exit(4);
        if (shmq_consumer_fd(c, &fd) != SHMQ_OK) _exit(5);
        if (shmq_consumer_arm(c, &armed, NULL) != SHMQ_OK || armed != 1) _exit(6);
        if (write(ready[1], "a", 1) != 1) _exit(7);
        int ok = readable(fd, 5000);
        shmq_consumer_free(&c);
        shmq_queue_close(&cq);
        _exit(ok ? 0 : 1);
    }
    close(ready[1]);
    char b;
    CHECK(read(ready[0], &b, 1) >= 0);
    close(ready[0]);
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    CHECK_OK(shmq_publish(p, (const uint8_t *)"wake", 4, NULL));
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77 && !getenv("SHMQ_REQUIRE_TOOLS")) {
        printf("skipped: unshare(CLONE_NEWNET) needs root\n");
    } else {
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    shmq_producer_free(&p);
    shmq_queue_close(&q);
    CHECK_OK(shmq_queue_remove("async-net", &o));
}

int main(void) {
    make_test_dir();
    RUN(test_consumer_fd);
    RUN(test_producer_fd);
    RUN(test_consumer_fd_across_network_namespaces);
    return finish();
}
