/* The journal from C: a queue of 16 slots with 64 KiB segments in a
 * private spill_dir keeps all of 1000 messages a consumer has read, and the
 * consumer seeks back (SHMQ_SEEK_SEQ, SHMQ_SEEK_TIME, SHMQ_SEEK_EARLIEST)
 * and replays them in order with their bytes; the journal counters of
 * shmq_stats; retention by bytes; an ack=manual seek held to the ring; a
 * reopened queue finding its journal; bad journal options
 * (SHMQ_INVALID_OPTION). */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>

#include "check.h"

#define SEGMENT (64u << 10)
#define HOUR_MS (3600u * 1000u)

/* The spill directory of queue `name`: <test_dir>/spill-<name>; the
 * journal lives in its subdirectory "journal". */
static const char *spill_dir_of(const char *name) {
    static char path[256];
    snprintf(path, sizeof path, "%s/spill-%s", test_dir, name);
    return path;
}

static const char *journal_dir_of(const char *name) {
    static char path[300];
    snprintf(path, sizeof path, "%s/journal", spill_dir_of(name));
    return path;
}

/* Options of a journaled queue of 16 slots with 64 KiB segments. */
static shmq_options journal_options(const char *name, uint64_t max_bytes) {
    shmq_options o = test_options(16, 256);
    o.spill_dir = spill_dir_of(name);
    o.spill_segment_size = SEGMENT;
    o.journal_max_age_ms = HOUR_MS;
    o.journal_max_bytes = max_bytes;
    return o;
}

/* Creates queue `name` with `o`, a consumer of group "g" with `co` (NULL:
 * the defaults, ack=auto) and a producer. */
static void start(const char *name, const shmq_options *o, const shmq_consumer_options *co,
                  shmq_queue **q, shmq_consumer **c, shmq_producer **p) {
    REQUIRE_OK(shmq_queue_create(name, o, q));
    REQUIRE_OK(shmq_consumer_new(*q, "g", co, c));
    REQUIRE_OK(shmq_producer_new(*q, p));
}

/* Frees what `start` made. */
static void release(shmq_queue **q, shmq_consumer **c, shmq_producer **p) {
    shmq_consumer_free(c);
    shmq_producer_free(p);
    shmq_queue_close(q);
}

/* Frees what `start` made and removes the queue, journal included. */
static void stop(const char *name, const shmq_options *o, shmq_queue **q, shmq_consumer **c,
                 shmq_producer **p) {
    release(q, c, p);
    CHECK_OK(shmq_queue_remove(name, o));
}

/* Message `i`: "m-<i>-" then a letter pattern, 16 to 115 bytes. */
static size_t fill(uint8_t *buf, uint64_t i) {
    size_t len = 16 + (size_t)(i % 100);
    int n = snprintf((char *)buf, len, "m-%llu-", (unsigned long long)i);
    for (size_t k = (size_t)n; k < len; k++) {
        buf[k] = (uint8_t)('a' + (i + k) % 26);
    }
    return len;
}

/* Receives `count` messages; checks each one's seq and bytes against
 * message `first + k`, and its timestamp against `stamps` (if not NULL). */
static void receive_in_order(shmq_consumer *c, uint64_t first, uint64_t count,
                             const uint64_t *stamps) {
    uint8_t want[128];
    uint64_t bad = 0;
    for (uint64_t k = 0; k < count; k++) {
        shmq_message m;
        shmq_status st = shmq_receive(c, MS(5000), &m);
        if (st != SHMQ_OK) {
            CHECK_STATUS(st, SHMQ_OK);
            fprintf(stderr, "receiving message %llu\n", (unsigned long long)(first + k));
            return;
        }
        uint64_t i = first + k;
        size_t len = fill(want, i);
        if (m.seq != i || m.len != len || memcmp(m.data, want, len) != 0 ||
            (stamps != NULL && m.timestamp_ns != stamps[i])) {
            if (bad++ == 0) {
                fprintf(stderr, "message %llu: seq %llu, len %zu\n", (unsigned long long)i,
                        (unsigned long long)m.seq, m.len);
            }
        }
    }
    CHECK(bad == 0);
}

/* Nothing more to receive now. */
static void check_drained(shmq_consumer *c) {
    shmq_message m;
    CHECK_STATUS(shmq_receive(c, 0, &m), SHMQ_TIMEOUT);
}

/* Publishes messages `from` .. `to - 1`, receiving each one on `c` (the
 * ring holds only 16); writes their timestamps to `stamps` if not NULL. */
static void publish_and_read(shmq_producer *p, shmq_consumer *c, uint64_t from, uint64_t to,
                             uint64_t *stamps) {
    uint8_t buf[128];
    for (uint64_t i = from; i < to; i++) {
        uint64_t seq = 0;
        shmq_status st = shmq_publish(p, buf, fill(buf, i), &seq);
        if (st != SHMQ_OK || seq != i) {
            CHECK_STATUS(st, SHMQ_OK);
            CHECK(seq == i);
            return;
        }
        shmq_message m;
        st = shmq_receive(c, MS(5000), &m);
        if (st != SHMQ_OK || m.seq != i) {
            CHECK_STATUS(st, SHMQ_OK);
            CHECK(m.seq == i);
            return;
        }
        if (stamps != NULL) {
            stamps[i] = m.timestamp_ns;
        }
        if (i % 100 == 99) {
            /* A few distinct instants for the seeks by time. */
            struct timespec pause = {0, 2000000};
            nanosleep(&pause, NULL);
        }
    }
}

enum { N = 1000 };

static void test_replay_by_seq_time_and_earliest(void) {
    const char *name = "replay";
    shmq_options o = journal_options(name, 64 * SEGMENT);
    shmq_queue *q = NULL;
    shmq_producer *p = NULL;
    shmq_consumer *c = NULL;
    start(name, &o, NULL, &q, &c, &p);

    static uint64_t stamps[N + 1];
    uint64_t bytes = 0;
    uint8_t buf[128];
    for (uint64_t i = 0; i < N; i++) {
        bytes += fill(buf, i);
    }
    publish_and_read(p, c, 0, N, stamps);
    check_drained(c);
    CHECK(exists(journal_dir_of(name)));

    shmq_queue_stats s;
    memset(&s, 0xab, sizeof s);
    REQUIRE_OK(shmq_stats(q, &s));
    CHECK(s.journal_enabled == 1);
    CHECK(s.journal_first_seq == 0 && s.journal_first_ns == stamps[0]);
    CHECK(s.journal_next_seq == N && s.journal_journaled == N);
    CHECK(s.journal_journaled_bytes == bytes);
    CHECK(s.journal_segments > 1); /* it rolled */
    CHECK(s.journal_bytes_on_disk == s.journal_segments * SEGMENT);
    CHECK(s.journal_expired == 0);
    /* The ring holds 16 of them; nothing was spilled. */
    CHECK(s.next_seq == N && s.oldest_seq >= N - 16);
    CHECK(s.spilled == 0 && s.spill_segments == 0);

    /* Far below the ring: replayed from the journal, in order. */
    uint64_t next = 0xdead;
    CHECK_OK(shmq_consumer_seek(c, SHMQ_SEEK_SEQ, 3, &next));
    CHECK(next == 3);
    receive_in_order(c, 3, N - 3, stamps);
    check_drained(c);

    /* Back in the ring: new messages flow as usual. */
    CHECK_OK(shmq_publish(p, buf, fill(buf, N), NULL));
    receive_in_order(c, N, 1, NULL);
    check_drained(c);

    /* Earliest is the journal's oldest message. */
    CHECK_OK(shmq_consumer_seek(c, SHMQ_SEEK_EARLIEST, 0, &next));
    CHECK(next == 0);
    receive_in_order(c, 0, N + 1, NULL);
    check_drained(c);

    /* By time: exactly the messages stamped at or after it. */
    const uint64_t cuts[] = {0, 1, 99, 100, 500, 999};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        uint64_t t = stamps[cuts[k]];
        uint64_t first = 0;
        while (stamps[first] < t) {
            first++;
        }
        next = 0xdead;
        CHECK_OK(shmq_consumer_seek(c, SHMQ_SEEK_TIME, t, &next));
        if (next != first) {
            fprintf(stderr, "cut %llu: next %llu, wanted %llu\n", (unsigned long long)cuts[k],
                    (unsigned long long)next, (unsigned long long)first);
            CHECK(next == first);
            continue;
        }
        receive_in_order(c, first, N - first, stamps);
        receive_in_order(c, N, 1, NULL);
        check_drained(c);
    }
    /* A time before everything: the oldest retained; after it: latest. */
    CHECK_OK(shmq_consumer_seek(c, SHMQ_SEEK_TIME, 1, &next));
    CHECK(next == 0);
    CHECK_OK(shmq_consumer_seek(c, SHMQ_SEEK_TIME, UINT64_MAX, &next));
    CHECK(next == N + 1);
    check_drained(c);

    /* A group seeks the same way (shmq_group_seek) and replays on its next
     * consumer. */
    shmq_consumer_free(&c);
    uint64_t at = 0xdead;
    CHECK_OK(shmq_group_seek(q, "g", SHMQ_SEEK_SEQ, 500, &at));
    CHECK(at == 500);
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    /* Replay is one message at a time: a batch is refused meanwhile. */
    shmq_message batch[8];
    size_t count = 99;
    CHECK_STATUS(shmq_receive_batch(c, batch, 8, MS(10), &count), SHMQ_INVALID_OPTION);
    CHECK(strstr(shmq_last_error(), "replaying from the journal") != NULL);
    receive_in_order(c, 500, N + 1 - 500, NULL);
    check_drained(c);
    /* Back in the ring, batches work again. */
    CHECK_OK(shmq_publish(p, buf, fill(buf, N + 1), NULL));
    CHECK_OK(shmq_receive_batch(c, batch, 8, MS(5000), &count));
    CHECK(count == 1 && batch[0].seq == N + 1 && batch[0].len == fill(buf, N + 1));
    CHECK_OK(shmq_ack_all(c));

    stop(name, &o, &q, &c, &p);
    CHECK(!exists(journal_dir_of(name)) && !exists(spill_dir_of(name)));
}

/* A manual-ack consumer does not replay the journal: its seek is held to
 * what the ring retains. */
static void test_manual_seek_stays_in_the_ring(void) {
    const char *name = "manual";
    shmq_options o = journal_options(name, 64 * SEGMENT);
    shmq_queue *q = NULL;
    shmq_producer *p = NULL;
    shmq_consumer *c = NULL;
    shmq_consumer_options co = shmq_consumer_options_default();
    co.ack = SHMQ_ACK_MANUAL;
    start(name, &o, &co, &q, &c, &p);
    uint8_t buf[128];
    for (uint64_t i = 0; i < 100; i++) {
        CHECK_OK(shmq_publish(p, buf, fill(buf, i), NULL));
        shmq_message m;
        CHECK_OK(shmq_receive(c, MS(5000), &m));
        CHECK_OK(shmq_ack(c, &m));
    }
    shmq_queue_stats s;
    REQUIRE_OK(shmq_stats(q, &s));
    CHECK(s.oldest_seq > 0 && s.journal_first_seq == 0);
    uint64_t next = 0xdead;
    CHECK_OK(shmq_consumer_seek(c, SHMQ_SEEK_SEQ, 0, &next));
    CHECK(next == s.oldest_seq);
    stop(name, &o, &q, &c, &p);
}

/* With a budget of three segments the oldest ones go: Earliest is the
 * oldest retained message, an older seq is clamped to it. */
static void test_retention_by_bytes(void) {
    const char *name = "bytes";
    shmq_options o = journal_options(name, 3 * SEGMENT);
    shmq_queue *q = NULL;
    shmq_producer *p = NULL;
    shmq_consumer *c = NULL;
    start(name, &o, NULL, &q, &c, &p);
    enum { M = 5000 };
    publish_and_read(p, c, 0, M, NULL);
    check_drained(c);
    shmq_queue_stats s;
    REQUIRE_OK(shmq_stats(q, &s));
    CHECK(s.journal_enabled == 1);
    CHECK(s.journal_segments <= 3 && s.journal_bytes_on_disk <= 3 * SEGMENT);
    CHECK(s.journal_first_seq > 0 && s.journal_expired == s.journal_first_seq);
    CHECK(s.journal_first_ns != 0 && s.journal_next_seq == M && s.journal_journaled == M);
    uint64_t next = 0xdead;
    CHECK_OK(shmq_consumer_seek(c, SHMQ_SEEK_EARLIEST, 0, &next));
    CHECK(next == s.journal_first_seq);
    receive_in_order(c, s.journal_first_seq, M - s.journal_first_seq, NULL);
    check_drained(c);
    CHECK_OK(shmq_consumer_seek(c, SHMQ_SEEK_SEQ, 0, &next));
    CHECK(next == s.journal_first_seq);
    stop(name, &o, &q, &c, &p);
}

/* The journal options live in the queue file: a queue opened with only
 * its dir keeps journaling, and replays what was journaled before. */
static void test_reopen_finds_the_journal(void) {
    const char *name = "reopen";
    shmq_options o = journal_options(name, 64 * SEGMENT);
    shmq_queue *q = NULL;
    shmq_producer *p = NULL;
    shmq_consumer *c = NULL;
    start(name, &o, NULL, &q, &c, &p);
    publish_and_read(p, c, 0, 300, NULL);
    check_drained(c);
    release(&q, &c, &p);

    shmq_options only_dir = shmq_options_default();
    only_dir.dir = test_dir;
    REQUIRE_OK(shmq_queue_open(name, &only_dir, &q));
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    REQUIRE_OK(shmq_producer_new(q, &p));
    publish_and_read(p, c, 300, 400, NULL);
    check_drained(c);
    shmq_queue_stats s;
    REQUIRE_OK(shmq_stats(q, &s));
    CHECK(s.journal_enabled == 1 && s.journal_first_seq == 0);
    CHECK(s.journal_next_seq == 400 && s.journal_journaled == 400);
    uint64_t next = 0xdead;
    CHECK_OK(shmq_consumer_seek(c, SHMQ_SEEK_EARLIEST, 0, &next));
    CHECK(next == 0);
    receive_in_order(c, 0, 400, NULL);
    check_drained(c);
    stop(name, &only_dir, &q, &c, &p);
    CHECK(!exists(spill_dir_of(name)));
}

/* Without a journal (the default, whatever journal_max_bytes says) every
 * journal field is 0, and there is nothing below the ring to seek to. */
static void test_no_journal(void) {
    const char *name = "plain";
    shmq_options o = test_options(16, 256);
    CHECK(o.journal_max_age_ms == 0 && o.journal_max_bytes == (1ull << 30));
    o.spill_dir = spill_dir_of(name);
    o.journal_max_bytes = 1; /* ignored without an age */
    shmq_queue *q = NULL;
    shmq_producer *p = NULL;
    shmq_consumer *c = NULL;
    start(name, &o, NULL, &q, &c, &p);
    publish_and_read(p, c, 0, 100, NULL);
    shmq_queue_stats s;
    memset(&s, 0xab, sizeof s);
    REQUIRE_OK(shmq_stats(q, &s));
    CHECK(s.journal_enabled == 0 && s.journal_first_seq == 0 && s.journal_first_ns == 0 &&
          s.journal_next_seq == 0 && s.journal_journaled == 0 &&
          s.journal_journaled_bytes == 0 && s.journal_segments == 0 &&
          s.journal_bytes_on_disk == 0 && s.journal_expired == 0);
    CHECK(!exists(journal_dir_of(name)));
    uint64_t next = 0xdead;
    CHECK_OK(shmq_consumer_seek(c, SHMQ_SEEK_SEQ, 3, &next));
    CHECK(next == s.oldest_seq && next > 3);
    stop(name, &o, &q, &c, &p);
}

/* Creating with `o` fails with SHMQ_INVALID_OPTION, names `what`, and
 * leaves no queue file and no spill directory behind. */
static void check_bad(shmq_options o, const char *what) {
    check_create_refused("bad-journal", o, what, spill_dir_of("bad-journal"));
}

static void test_bad_journal_options(void) {
    /* Retention needs at least two segments. */
    check_bad(journal_options("bad-journal", 2 * SEGMENT - 1), "max_bytes");
    check_bad(journal_options("bad-journal", SEGMENT), "two segments");
    check_bad(journal_options("bad-journal", 0), "max_bytes");
    /* Exactly two segments is enough. */
    shmq_options o = journal_options("bad-journal", 2 * SEGMENT);
    shmq_queue *q = NULL;
    CHECK_OK(shmq_queue_create("bad-journal", &o, &q));
    shmq_queue_close(&q);
    CHECK_OK(shmq_queue_remove("bad-journal", &o));
    /* The journal's segments follow the spill's rules. */
    o = journal_options("bad-journal", 64 * SEGMENT);
    o.spill_segment_size = 4096;
    check_bad(o, "spill_segment_size");
    o = journal_options("bad-journal", 64 * SEGMENT);
    o.spill_dir = "";
    check_bad(o, "spill_dir");
}

int main(void) {
    make_test_dir();
    RUN(test_replay_by_seq_time_and_earliest);
    RUN(test_manual_seek_stays_in_the_ring);
    RUN(test_retention_by_bytes);
    RUN(test_reopen_finds_the_journal);
    RUN(test_no_journal);
    RUN(test_bad_journal_options);
    return finish();
}
