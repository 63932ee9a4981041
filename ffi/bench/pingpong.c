/* pingpong.c - one-way latency of shmq from C: two processes (pinned to
 * cores 0 and 1 when there are two), busy polling (timeout_ns = 0), a
 * 64-byte payload; one-way = round trip / 2. Prints p50, p99, p99.9, max.
 *
 *   cc -std=c11 -O2 -Iinclude ffi/bench/pingpong.c -Ltarget/release -lshmq_ffi \
 *      -Wl,-rpath,"$PWD/target/release" -o pingpong && ./pingpong [COUNT]
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmq.h"

#define SIZE 64
#define WARMUP 20000

static void die(const char *what, shmq_status st) {
    fprintf(stderr, "pingpong: %s: %s: %s\n", what, shmq_status_str((int)st), shmq_last_error());
    exit(1);
}

static void pin(int core) {
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
        return;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core, &set);
    sched_setaffinity(0, sizeof set, &set);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Opens `name`'s consumer of group "g" and a producer of `other`. */
static void open_pair(shmq_options *o, const char *in, const char *out, shmq_queue **qin,
                      shmq_queue **qout, shmq_consumer **c, shmq_producer **p) {
    shmq_status st;
    if ((st = shmq_queue_open(in, o, qin)) != SHMQ_OK) die("open", st);
    if ((st = shmq_queue_open(out, o, qout)) != SHMQ_OK) die("open", st);
    if ((st = shmq_consumer_new(*qin, "g", NULL, c)) != SHMQ_OK) die("consumer", st);
    if ((st = shmq_producer_new(*qout, p)) != SHMQ_OK) die("producer", st);
}

static volatile uint64_t sink;

/* Receives one message by busy polling and reads its payload whole (as
 * `shmq bench latency` does). */
static void recv_spin(shmq_consumer *c) {
    shmq_message m;
    shmq_status st;
    while ((st = shmq_receive(c, 0, &m)) == SHMQ_TIMEOUT) {
    }
    if (st != SHMQ_OK) die("receive", st);
    uint64_t words[SIZE / 8];
    memcpy(words, m.data, m.len < sizeof words ? m.len : sizeof words);
    sink = words[0] ^ words[SIZE / 8 - 1];
}

int main(int argc, char **argv) {
    long count = argc > 1 ? atol(argv[1]) : 200000;
    char dir[] = "/dev/shm/shmq-pingpong-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    shmq_options o = shmq_options_default();
    o.dir = dir;
    o.slots = 1024;
    o.slot_size = SIZE;
    shmq_queue *q;
    shmq_status st;
    const char *names[2] = {"ping", "pong"};
    for (int i = 0; i < 2; i++) {
        if ((st = shmq_queue_create(names[i], &o, &q)) != SHMQ_OK) die("create", st);
        if ((st = shmq_group_create(q, "g", SHMQ_START_EARLIEST, 0)) != SHMQ_OK) die("group", st);
        shmq_queue_close(&q);
    }
    long total = count + WARMUP;
    uint8_t payload[SIZE];
    memset(payload, 0x5a, sizeof payload);

    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    shmq_queue *qin, *qout;
    shmq_consumer *c;
    shmq_producer *p;
    if (child == 0) { /* echo */
        alarm(120);
        pin(1);
        open_pair(&o, "ping", "pong", &qin, &qout, &c, &p);
        for (long i = 0; i < total; i++) {
            recv_spin(c);
            if ((st = shmq_publish(p, payload, SIZE, NULL)) != SHMQ_OK) die("publish", st);
        }
        shmq_producer_free(&p);
        shmq_consumer_free(&c);
        shmq_queue_close(&qin);
        shmq_queue_close(&qout);
        _exit(0);
    }
    pin(0);
    open_pair(&o, "pong", "ping", &qin, &qout, &c, &p);
    uint64_t *one_way = malloc(sizeof(uint64_t) * (size_t)count);
    if (one_way == NULL) return 1;
    for (long i = 0; i < total; i++) {
        uint64_t t0 = now_ns();
        if ((st = shmq_publish(p, payload, SIZE, NULL)) != SHMQ_OK) die("publish", st);
        recv_spin(c);
        uint64_t rtt = now_ns() - t0;
        if (i >= WARMUP) {
            one_way[i - WARMUP] = rtt / 2;
        }
    }
    int status = 0;
    waitpid(child, &status, 0);
    qsort(one_way, (size_t)count, sizeof one_way[0], cmp);
    printf("shmq C ping-pong, %d-byte payload, %ld round trips, one-way (rtt/2):\n", SIZE, count);
    printf("p50 %llu ns  p99 %llu ns  p99.9 %llu ns  max %llu ns\n",
           (unsigned long long)one_way[count / 2], (unsigned long long)one_way[count * 99 / 100],
           (unsigned long long)one_way[count * 999 / 1000], (unsigned long long)one_way[count - 1]);
    free(one_way);
    shmq_producer_free(&p);
    shmq_consumer_free(&c);
    shmq_queue_close(&qin);
    shmq_queue_close(&qout);
    for (int i = 0; i < 2; i++) {
        shmq_queue_remove(names[i], &o);
    }
    rmdir(dir);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
