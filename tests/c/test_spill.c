/* overflow=spill from C: a ring of 16 slots takes many times its capacity
 * with no consumer running (the rest goes to 64 KiB segment files in a
 * private spill_dir), and a consumer then receives every message in order;
 * the spill's budget with fallback reject (SHMQ_SPILL_FULL) and block
 * (SHMQ_TIMEOUT); a reservation waiting instead of spilling; sync modes;
 * a reopened queue finding its spill; bad spill options
 * (SHMQ_INVALID_OPTION); the spill counters of shmq_stats. */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>

#include "check.h"

#define LAST_ERROR_HAS(text) CHECK(strstr(shmq_last_error(), (text)) != NULL)

#define SEGMENT (64u << 10)

/* The spill directory of queue `name`: <test_dir>/spill-<name>. */
static const char *spill_dir_of(const char *name) {
    static char path[256];
    snprintf(path, sizeof path, "%s/spill-%s", test_dir, name);
    return path;
}

/* Options of an overflow=spill queue of 16 slots with 64 KiB segments. */
static shmq_options spill_options(const char *name, uint64_t slot_size) {
    shmq_options o = test_options(16, slot_size);
    o.overflow = SHMQ_OVERFLOW_SPILL;
    o.spill_dir = spill_dir_of(name);
    o.spill_segment_size = SEGMENT;
    return o;
}

/* Creates queue `name` with `o`, its group "g" (so that it retains
 * messages before any consumer runs) and a producer. */
static void start(const char *name, const shmq_options *o, shmq_queue **q, shmq_producer **p) {
    REQUIRE_OK(shmq_queue_create(name, o, q));
    REQUIRE_OK(shmq_group_create(*q, "g", SHMQ_START_EARLIEST, 0));
    REQUIRE_OK(shmq_producer_new(*q, p));
}

/* Frees what `start` made (and a consumer, if `c` is not NULL) and
 * removes the queue, spill included. */
static void stop(const char *name, const shmq_options *o, shmq_queue **q, shmq_producer **p,
                 shmq_consumer **c) {
    shmq_consumer_free(c);
    shmq_producer_free(p);
    shmq_queue_close(q);
    CHECK_OK(shmq_queue_remove(name, o));
}

/* Message `i`: "m-<i>-" then a letter pattern up to `len` bytes. */
static size_t fill(uint8_t *buf, size_t len, uint64_t i) {
    int n = snprintf((char *)buf, len, "m-%llu-", (unsigned long long)i);
    for (size_t k = (size_t)n; k < len; k++) {
        buf[k] = (uint8_t)('a' + (i + k) % 26);
    }
    return len;
}

/* Receives `count` messages of `len` bytes; checks each one's seq and
 * bytes against message `first + k`. */
static void receive_in_order(shmq_consumer *c, uint64_t first, uint64_t count, size_t len) {
    uint8_t want[1024];
    uint64_t bad = 0;
    for (uint64_t k = 0; k < count; k++) {
        shmq_message m;
        shmq_status st = shmq_receive(c, MS(2000), &m);
        if (st != SHMQ_OK) {
            CHECK_STATUS(st, SHMQ_OK);
            return;
        }
        fill(want, len, first + k);
        if (m.seq != first + k || m.len != len || memcmp(m.data, want, len) != 0) {
            if (bad++ == 0) {
                fprintf(stderr, "message %llu: seq %llu, len %zu\n",
                        (unsigned long long)(first + k), (unsigned long long)m.seq, m.len);
            }
        }
    }
    CHECK(bad == 0);
}

static void test_spill_round_trip(void) {
    const char *name = "round-trip";
    shmq_options o = spill_options(name, 256);
    shmq_queue *q = NULL;
    shmq_producer *p = NULL;
    start(name, &o, &q, &p);

    /* 200 times the ring's capacity, no consumer: about 7 segments. */
    enum { N = 16 * 200, LEN = 100, BATCH = 8 };
    uint8_t buf[BATCH][LEN];
    uint64_t i = 0, seq = 0;
    for (; i < N / 2; i++) {
        fill(buf[0], LEN, i);
        shmq_status st = shmq_publish_timeout(p, buf[0], LEN, 0, &seq);
        if (st != SHMQ_OK || seq != i) {
            CHECK_STATUS(st, SHMQ_OK);
            CHECK(seq == i);
            break;
        }
    }
    /* A batch while spilling gets consecutive seqs too. */
    shmq_buf bufs[BATCH];
    for (int k = 0; k < BATCH; k++) {
        bufs[k].data = buf[k];
        bufs[k].len = fill(buf[k], LEN, i + (uint64_t)k);
    }
    CHECK_OK(shmq_publish_batch(p, bufs, BATCH, &seq));
    CHECK(seq == i);
    for (i += BATCH; i < N; i++) {
        fill(buf[0], LEN, i);
        shmq_status st = shmq_publish(p, buf[0], LEN, &seq);
        if (st != SHMQ_OK || seq != i) {
            CHECK_STATUS(st, SHMQ_OK);
            CHECK(seq == i);
            break;
        }
    }

    shmq_queue_stats s;
    REQUIRE_OK(shmq_stats(q, &s));
    CHECK(s.overflow == SHMQ_OVERFLOW_SPILL);
    CHECK(s.published == N && s.next_seq == N);
    CHECK(s.spilled >= N - 16 && s.spilled <= N);
    CHECK(s.spilled_bytes == s.spilled * LEN);
    CHECK(s.spill_depth == s.spilled); /* nothing came back yet */
    CHECK(s.spill_segments >= 2);
    CHECK(s.spill_bytes_on_disk == s.spill_segments * SEGMENT);
    CHECK(s.spill_full == 0 && s.spill_lost == 0 && s.rejected == 0);
    CHECK(exists(spill_dir_of(name)));
    char dir[256];
    size_t dir_len = 0;
    CHECK_OK(shmq_queue_spill_dir(q, dir, sizeof dir, &dir_len));
    CHECK(dir_len == strlen(spill_dir_of(name)) && strcmp(dir, spill_dir_of(name)) == 0);

    /* A reservation writes in place in the ring, so it does not spill: it
     * waits for room, here until its timeout. */
    uint8_t *data = NULL;
    shmq_reservation *r = NULL;
    CHECK_STATUS(shmq_reserve_timeout(p, LEN, MS(20), &data, &r), SHMQ_TIMEOUT);
    CHECK(data == NULL && r == NULL);

    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    receive_in_order(c, 0, N, LEN);
    shmq_message m;
    CHECK_STATUS(shmq_receive(c, 0, &m), SHMQ_TIMEOUT);

    REQUIRE_OK(shmq_stats(q, &s));
    CHECK(s.spill_depth == 0);
    CHECK(s.spill_segments == 0 && s.spill_bytes_on_disk == 0);
    CHECK(s.spilled >= N - 16 && s.spill_lost == 0);
    uint64_t spilled = s.spilled;

    /* The spill is empty: the next publish goes to the ring again. */
    fill(buf[0], LEN, N);
    CHECK_OK(shmq_publish(p, buf[0], LEN, &seq));
    CHECK(seq == N);
    receive_in_order(c, N, 1, LEN);
    REQUIRE_OK(shmq_stats(q, &s));
    CHECK(s.spilled == spilled);

    stop(name, &o, &q, &p, &c);
    CHECK(!exists(spill_dir_of(name))); /* its segments go with it */
}

/* Publishes messages of `len` bytes until one does not return SHMQ_OK;
 * returns how many did, and that status in `*last`. */
static uint64_t publish_until_full(shmq_producer *p, size_t len, uint64_t timeout_ns,
                                   shmq_status *last) {
    uint8_t buf[1024];
    uint64_t i = 0;
    for (; i < 10000; i++) {
        uint64_t seq = 0xdead;
        fill(buf, len, i);
        *last = shmq_publish_timeout(p, buf, len, timeout_ns, &seq);
        if (*last != SHMQ_OK) {
            CHECK(seq == 0xdead); /* untouched on failure */
            break;
        }
        CHECK(seq == i);
    }
    return i;
}

static void test_spill_full_reject(void) {
    const char *name = "full-reject";
    shmq_options o = spill_options(name, 1024);
    o.spill_max_bytes = SEGMENT; /* one segment: about 60 messages */
    o.spill_fallback = SHMQ_OVERFLOW_REJECT;
    shmq_queue *q = NULL;
    shmq_producer *p = NULL;
    start(name, &o, &q, &p);

    shmq_status st = SHMQ_OK;
    uint64_t n = publish_until_full(p, 1000, SHMQ_WAIT_FOREVER, &st);
    CHECK_STATUS(st, SHMQ_SPILL_FULL);
    LAST_ERROR_HAS("spill_max_bytes");
    LAST_ERROR_HAS("nothing was published");
    CHECK(strcmp(shmq_status_str(SHMQ_SPILL_FULL), "queue and its spill are full") == 0);
    CHECK(n > 16 + 30 && n < 16 + 70);

    /* A batch is refused whole. */
    static uint8_t big[2][1000];
    shmq_buf two[2] = {{big[0], fill(big[0], 1000, n)}, {big[1], fill(big[1], 1000, n + 1)}};
    uint64_t seq = 0xdead;
    CHECK_STATUS(shmq_publish_batch(p, two, 2, &seq), SHMQ_SPILL_FULL);
    LAST_ERROR_HAS("spill_max_bytes");
    CHECK(seq == 0xdead);

    shmq_queue_stats s;
    REQUIRE_OK(shmq_stats(q, &s));
    CHECK(s.published == n && s.next_seq == n);
    CHECK(s.spill_full >= 2);
    CHECK(s.spill_segments == 1 && s.spill_bytes_on_disk == SEGMENT);
    CHECK(s.spill_depth == s.spilled && s.spilled == n - 16);

    /* Nothing published was lost; afterwards there is room again. */
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    receive_in_order(c, 0, n, 1000);
    uint8_t buf[1000];
    fill(buf, sizeof buf, n);
    CHECK_OK(shmq_publish(p, buf, sizeof buf, &seq));
    CHECK(seq == n);
    receive_in_order(c, n, 1, sizeof buf);

    stop(name, &o, &q, &p, &c);
}

/* A batch larger than what the ring and the spill hold goes in part-way,
 * and says how many went in: the rest, and only the rest, is to retry. */
static void test_spill_full_part_way(void) {
    const char *name = "full-partway";
    shmq_options o = spill_options(name, 1024);
    o.spill_max_bytes = SEGMENT;
    o.spill_fallback = SHMQ_OVERFLOW_REJECT;
    shmq_queue *q = NULL;
    shmq_producer *p = NULL;
    start(name, &o, &q, &p);
    enum { N = 200 };
    static uint8_t data[N][1000];
    static shmq_buf bufs[N];
    for (size_t i = 0; i < N; i++) {
        bufs[i].data = data[i];
        bufs[i].len = fill(data[i], 1000, i);
    }
    uint64_t first = 0xdead;
    size_t published = 0xdead;
    CHECK_STATUS(shmq_publish_batch_timeout(p, bufs, N, SHMQ_WAIT_FOREVER, &first, &published),
                 SHMQ_SPILL_FULL);
    CHECK(first == 0);
    CHECK(published > 16 && published < N);
    LAST_ERROR_HAS("of the batch's 200 messages were published");
    shmq_queue_stats s;
    REQUIRE_OK(shmq_stats(q, &s));
    CHECK(s.published == published);
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    receive_in_order(c, 0, published, 1000);
    stop(name, &o, &q, &p, &c);
}

static void test_spill_full_block(void) {
    const char *name = "full-block";
    shmq_options o = spill_options(name, 1024);
    o.spill_max_bytes = SEGMENT;
    CHECK(o.spill_fallback == SHMQ_OVERFLOW_BLOCK); /* the default */
    shmq_queue *q = NULL;
    shmq_producer *p = NULL;
    start(name, &o, &q, &p);

    /* Block: waits for room, here for as long as the timeout allows. */
    shmq_status st = SHMQ_OK;
    uint64_t t0 = now_ns();
    uint64_t n = publish_until_full(p, 1000, MS(50), &st);
    CHECK_STATUS(st, SHMQ_TIMEOUT);
    CHECK(now_ns() - t0 >= MS(50));
    shmq_queue_stats s;
    REQUIRE_OK(shmq_stats(q, &s));
    CHECK(s.published == n && s.spill_full >= 1);

    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    receive_in_order(c, 0, n, 1000);
    stop(name, &o, &q, &p, &c);
}

/* Every sync mode spills and reads back the same. */
static void test_sync_modes(void) {
    const shmq_sync modes[] = {SHMQ_SYNC_NEVER, SHMQ_SYNC_EVERY_N, SHMQ_SYNC_ALWAYS};
    const char *names[] = {"sync-never", "sync-every", "sync-always"};
    for (int k = 0; k < 3; k++) {
        shmq_options o = spill_options(names[k], 64);
        o.sync = modes[k];
        o.sync_every = modes[k] == SHMQ_SYNC_EVERY_N ? 4 : 0;
        shmq_queue *q = NULL;
        shmq_producer *p = NULL;
        start(names[k], &o, &q, &p);
        uint8_t buf[40];
        for (uint64_t i = 0; i < 100; i++) {
            fill(buf, sizeof buf, i);
            CHECK_OK(shmq_publish(p, buf, sizeof buf, NULL));
        }
        shmq_queue_stats s;
        REQUIRE_OK(shmq_stats(q, &s));
        CHECK(s.spilled == 100 - 16);
        shmq_consumer *c = NULL;
        REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
        receive_in_order(c, 0, 100, sizeof buf);
        stop(names[k], &o, &q, &p, &c);
    }
}

/* The spill options live in the queue file: a queue opened with only its
 * dir finds its spill (and its budget). */
static void test_reopen_finds_the_spill(void) {
    const char *name = "reopen";
    shmq_options o = spill_options(name, 128);
    shmq_queue *q = NULL;
    shmq_producer *p = NULL;
    start(name, &o, &q, &p);
    uint8_t buf[100];
    for (uint64_t i = 0; i < 500; i++) {
        fill(buf, sizeof buf, i);
        CHECK_OK(shmq_publish(p, buf, sizeof buf, NULL));
    }
    shmq_producer_free(&p);
    shmq_queue_close(&q);

    shmq_options only_dir = shmq_options_default();
    only_dir.dir = test_dir;
    REQUIRE_OK(shmq_queue_open(name, &only_dir, &q));
    shmq_queue_stats s;
    REQUIRE_OK(shmq_stats(q, &s));
    CHECK(s.overflow == SHMQ_OVERFLOW_SPILL);
    CHECK(s.spill_depth == 500 - 16 && s.spill_segments >= 1);
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    receive_in_order(c, 0, 500, sizeof buf);
    shmq_consumer_free(&c);
    shmq_queue_close(&q);
    CHECK_OK(shmq_queue_remove(name, &only_dir));
    CHECK(!exists(spill_dir_of(name)));
}

/* A queue that does not spill reports zero spill counters. */
static void test_no_spill_counters(void) {
    shmq_options o = test_options(16, 64);
    o.overflow = SHMQ_OVERFLOW_REJECT;
    shmq_queue *q = NULL;
    shmq_producer *p = NULL;
    start("plain", &o, &q, &p);
    for (int i = 0; i < 16; i++) {
        CHECK_OK(shmq_publish(p, (const uint8_t *)"x", 1, NULL));
    }
    CHECK_STATUS(shmq_publish(p, (const uint8_t *)"x", 1, NULL), SHMQ_FULL);
    shmq_queue_stats s;
    memset(&s, 0xab, sizeof s);
    REQUIRE_OK(shmq_stats(q, &s));
    CHECK(s.rejected == 1 && s.spilled == 0 && s.spilled_bytes == 0 && s.spill_depth == 0 &&
          s.spill_segments == 0 && s.spill_bytes_on_disk == 0 && s.spill_full == 0 &&
          s.spill_lost == 0);
    stop("plain", &o, &q, &p, NULL);
}

/* Creating with `o` fails with SHMQ_INVALID_OPTION, names `what`, and
 * leaves no queue file and no spill directory behind. */
static void check_bad(shmq_options o, const char *what) {
    check_create_refused("bad-spill", o, what, spill_dir_of("bad-spill"));
}

static void test_bad_spill_options(void) {
    shmq_options o = spill_options("bad-spill", 1024);
    o.spill_segment_size = 4096;
    check_bad(o, "spill_segment_size");
    o.spill_segment_size = (1ull << 32) + 1;
    check_bad(o, "spill_segment_size");

    o = spill_options("bad-spill", 70000); /* a record needs > 64 KiB */
    check_bad(o, "spill_segment_size");

    o = spill_options("bad-spill", 1024);
    o.spill_max_bytes = SEGMENT - 1;
    check_bad(o, "spill_max_bytes");

    o = spill_options("bad-spill", 1024);
    o.spill_fallback = SHMQ_OVERFLOW_SPILL;
    check_bad(o, "spill_fallback");
    o.spill_fallback = 7;
    check_bad(o, "spill_fallback");

    o = spill_options("bad-spill", 1024);
    o.sync = 3;
    check_bad(o, "sync");
    o.sync = SHMQ_SYNC_EVERY_N;
    o.sync_every = 0;
    check_bad(o, "sync_every");

    o = spill_options("bad-spill", 1024);
    o.spill_dir = "";
    check_bad(o, "spill_dir");
    static char long_dir[1100];
    memset(long_dir, 'd', sizeof long_dir - 1);
    long_dir[0] = '/';
    o.spill_dir = long_dir;
    check_bad(o, "spill_dir");

    /* The enumerations are checked whatever the overflow policy. */
    o = test_options(16, 64);
    o.spill_fallback = SHMQ_OVERFLOW_SPILL;
    check_bad(o, "spill_fallback");
    o = test_options(16, 64);
    o.sync = 42;
    check_bad(o, "sync");
}

int main(void) {
    make_test_dir();
    RUN(test_spill_round_trip);
    RUN(test_spill_full_reject);
    RUN(test_spill_full_part_way);
    RUN(test_spill_full_block);
    RUN(test_sync_modes);
    RUN(test_reopen_finds_the_spill);
    RUN(test_no_spill_counters);
    RUN(test_bad_spill_options);
    return finish();
}
