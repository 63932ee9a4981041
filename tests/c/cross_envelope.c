/* The C side of the cross-language test of ordering keys and headers
 * (driven by python/tests/test_cross_envelope.py):
 *   cross_envelope produce DIR NAME TAG COUNT
 *       publishes "TAG-<i>" with ordering key "key-TAG-<i>" and headers
 *       lang=TAG, lang=again, trace=t-TAG to an existing queue
 *   cross_envelope consume DIR NAME GROUP COUNT SEEK
 *       receives COUNT messages of GROUP (after seeking to seq SEEK, unless
 *       it is "-") and writes `SEQ\tKEY\tPAYLOAD` and `\tNAME=VALUE` per
 *       header (read with shmq_message_header), and a newline, for each */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmq.h"

#define SECONDS_20 20000000000ull

static int fail(const char *what, shmq_status st) {
    fprintf(stderr, "cross_envelope: %s: %s: %s\n", what, shmq_status_str((int)st),
            shmq_last_error());
    return 1;
}

static shmq_header header(const char *name, const char *value) {
    shmq_header h = {name, strlen(name), (const uint8_t *)value, strlen(value)};
    return h;
}

static int produce(shmq_options *o, const char *name, const char *tag, long count) {
    shmq_queue *q = NULL;
    shmq_status st = shmq_queue_open(name, o, &q);
    if (st != SHMQ_OK) {
        return fail("open", st);
    }
    shmq_producer *p = NULL;
    if ((st = shmq_producer_new(q, &p)) != SHMQ_OK) {
        return fail("producer", st);
    }
    char trace[64];
    snprintf(trace, sizeof trace, "t-%s", tag);
    shmq_header h[3] = {header("lang", tag), header("lang", "again"), header("trace", trace)};
    for (long i = 0; i < count; i++) {
        char payload[64], key[64];
        int len = snprintf(payload, sizeof payload, "%s-%ld", tag, i);
        int key_len = snprintf(key, sizeof key, "key-%s-%ld", tag, i);
        shmq_meta meta = {0};
        meta.ordering_key = (const uint8_t *)key;
        meta.ordering_key_len = (size_t)key_len;
        meta.headers = h;
        meta.headers_len = 3;
        st = shmq_publish_with_timeout(p, (const uint8_t *)payload, (size_t)len, &meta, SECONDS_20,
                                       NULL);
        if (st != SHMQ_OK) {
            return fail("publish", st);
        }
    }
    shmq_producer_free(&p);
    shmq_queue_close(&q);
    return 0;
}

static int consume(shmq_options *o, const char *name, const char *group, long count,
                   const char *seek) {
    shmq_queue *q = NULL;
    shmq_status st = shmq_queue_open(name, o, &q);
    if (st != SHMQ_OK) {
        return fail("open", st);
    }
    shmq_consumer *c = NULL;
    if ((st = shmq_consumer_new(q, group, NULL, &c)) != SHMQ_OK) {
        return fail("consumer", st);
    }
    if (strcmp(seek, "-") != 0) {
        st = shmq_consumer_seek(c, SHMQ_SEEK_SEQ, strtoull(seek, NULL, 10), NULL);
        if (st != SHMQ_OK) {
            return fail("seek", st);
        }
    }
    for (long i = 0; i < count; i++) {
        shmq_message m;
        if ((st = shmq_receive(c, SECONDS_20, &m)) != SHMQ_OK) {
            return fail("receive", st);
        }
        printf("%llu\t%.*s\t%.*s", (unsigned long long)m.seq, (int)m.ordering_key_len,
               m.ordering_key != NULL ? (const char *)m.ordering_key : "", (int)m.len,
               (const char *)m.data);
        for (size_t k = 0; k < m.headers_len; k++) {
            shmq_header h;
            if ((st = shmq_message_header(c, &m, k, &h)) != SHMQ_OK) {
                return fail("header", st);
            }
            printf("\t%.*s=%.*s", (int)h.name_len, h.name, (int)h.value_len,
                   (const char *)h.value);
        }
        printf("\n");
        if ((st = shmq_ack(c, &m)) != SHMQ_OK) {
            return fail("ack", st);
        }
    }
    shmq_consumer_free(&c);
    shmq_queue_close(&q);
    return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: see the comment of tests/c/cross_envelope.c\n");
        return 64;
    }
    shmq_options o = shmq_options_default();
    o.dir = argv[2];
    if (strcmp(argv[1], "produce") == 0) {
        return produce(&o, argv[3], argv[4], strtol(argv[5], NULL, 10));
    }
    if (strcmp(argv[1], "consume") == 0 && argc == 7) {
        return consume(&o, argv[3], argv[4], strtol(argv[5], NULL, 10), argv[6]);
    }
    fprintf(stderr, "usage: see the comment of tests/c/cross_envelope.c\n");
    return 64;
}
