/* hello.c - publish and receive with shmq from C.
 *
 *   cc -std=c11 -Iinclude examples/c/hello.c -Ltarget/release -lshmq_ffi \
 *      -Wl,-rpath,"$PWD/target/release" -o hello && ./hello
 *
 * Creates queue "hello-c" in $SHMQ_DIR (default /dev/shm), a group
 * "printer", publishes three messages and prints them. */
#include <stdio.h>
#include <string.h>

#include "shmq.h"

static int fail(const char *what, shmq_status st) {
    fprintf(stderr, "%s: %s: %s\n", what, shmq_status_str((int)st), shmq_last_error());
    return 1;
}

int main(void) {
    shmq_options opts = shmq_options_default();
    opts.slots = 1024;
    opts.slot_size = 256;

    shmq_queue *q = NULL;
    shmq_status st = shmq_queue_open_or_create("hello-c", &opts, &q);
    if (st != SHMQ_OK) return fail("open", st);

    shmq_consumer *c = NULL; /* creates group "printer" at the oldest message */
    if ((st = shmq_consumer_new(q, "printer", NULL, &c)) != SHMQ_OK) return fail("consumer", st);
    shmq_producer *p = NULL;
    if ((st = shmq_producer_new(q, &p)) != SHMQ_OK) return fail("producer", st);

    const char *words[] = {"hello", "from", "C"};
    for (int i = 0; i < 3; i++) {
        shmq_meta meta = {.type_id = 1, .correlation_id = (uint64_t)i};
        uint64_t seq;
        st = shmq_publish_with(p, (const uint8_t *)words[i], strlen(words[i]), &meta, &seq);
        if (st != SHMQ_OK) return fail("publish", st);
    }

    shmq_message m;
    while ((st = shmq_receive(c, 100000000 /* 100 ms */, &m)) == SHMQ_OK) {
        /* m.data points into shared memory until the ack. */
        printf("seq %llu: %.*s\n", (unsigned long long)m.seq, (int)m.len, (const char *)m.data);
        shmq_ack(c, &m);
    }
    if (st != SHMQ_TIMEOUT) return fail("receive", st);

    shmq_producer_free(&p);
    shmq_consumer_free(&c);
    shmq_queue_close(&q);
    return shmq_queue_remove("hello-c", &opts) == SHMQ_OK ? 0 : 1;
}
