/* The C side of the cross-language tests (driven by ffi/tests/c_suite.rs and
 * tests/c/cross_cli.sh):
 *   cross produce DIR NAME COUNT        publishes "c-msg-<i>" (type_id 7,
 *                                       correlation_id i) to an existing queue
 *   cross consume DIR NAME GROUP COUNT  receives COUNT messages of GROUP and
 *                                       writes each payload and a newline */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shmq.h"

static int fail(const char *what, shmq_status st) {
    fprintf(stderr, "cross: %s: %s: %s\n", what, shmq_status_str((int)st), shmq_last_error());
    return 1;
}

static int produce(shmq_options *o, const char *name, long count) {
    shmq_queue *q = NULL;
    shmq_status st = shmq_queue_open(name, o, &q);
    if (st != SHMQ_OK) {
        return fail("open", st);
    }
    shmq_producer *p = NULL;
    if ((st = shmq_producer_new(q, &p)) != SHMQ_OK) {
        return fail("producer", st);
    }
    for (long i = 0; i < count; i++) {
        char buf[32];
        int len = snprintf(buf, sizeof buf, "c-msg-%ld", i);
        shmq_meta meta = {.type_id = 7, .correlation_id = (uint64_t)i};
        st = shmq_publish_with_timeout(p, (const uint8_t *)buf, (size_t)len, &meta,
                                       20000000000ull, NULL);
        if (st != SHMQ_OK) {
            return fail("publish", st);
        }
    }
    shmq_producer_free(&p);
    shmq_queue_close(&q);
    return 0;
}

static int consume(shmq_options *o, const char *name, const char *group, long count) {
    shmq_queue *q = NULL;
    shmq_status st = shmq_queue_open(name, o, &q);
    if (st != SHMQ_OK) {
        return fail("open", st);
    }
    shmq_consumer *c = NULL;
    if ((st = shmq_consumer_new(q, group, NULL, &c)) != SHMQ_OK) {
        return fail("consumer", st);
    }
    uint64_t last_seq = 0;
    for (long i = 0; i < count; i++) {
        shmq_message m;
        if ((st = shmq_receive(c, 20000000000ull, &m)) != SHMQ_OK) {
            return fail("receive", st);
        }
        if (i > 0 && m.seq <= last_seq) {
            fprintf(stderr, "cross: seq %llu after %llu\n", (unsigned long long)m.seq,
                    (unsigned long long)last_seq);
            return 1;
        }
        last_seq = m.seq;
        fwrite(m.data, 1, m.len, stdout);
        fputc('\n', stdout);
        if ((st = shmq_ack(c, &m)) != SHMQ_OK) {
            return fail("ack", st);
        }
    }
    fflush(stdout);
    shmq_consumer_free(&c);
    shmq_queue_close(&q);
    return 0;
}

int main(int argc, char **argv) {
    alarm(60);
    shmq_options o = shmq_options_default();
    if (argc == 5 && strcmp(argv[1], "produce") == 0) {
        o.dir = argv[2];
        return produce(&o, argv[3], atol(argv[4]));
    }
    if (argc == 6 && strcmp(argv[1], "consume") == 0) {
        o.dir = argv[2];
        return consume(&o, argv[3], argv[4], atol(argv[5]));
    }
    fprintf(stderr, "usage: cross produce DIR NAME COUNT | cross consume DIR NAME GROUP COUNT\n");
    return 64;
}
