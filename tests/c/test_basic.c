/* What a C user does with shmq: round trip, metadata, fan-out, zero-copy
 * reserve/commit/abort, batches, timeouts, groups, seeks, stats, threads. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>

#include "check.h"

static void test_version(void) {
    CHECK(strcmp(shmq_version(), SHMQ_VERSION_STRING) == 0);
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", SHMQ_VERSION_MAJOR, SHMQ_VERSION_MINOR,
             SHMQ_VERSION_PATCH);
    CHECK(strcmp(SHMQ_VERSION_STRING, expect) == 0);
    CHECK(shmq_abi_version() == SHMQ_ABI_VERSION);
}

/* Options not laid out for this library's ABI are refused before any
 * field is used: a zeroed struct, another header's version. */
static void test_abi_version(void) {
    shmq_options o = shmq_options_default();
    CHECK(o.abi_version == SHMQ_ABI_VERSION);
    CHECK((shmq_options_default)().abi_version == shmq_abi_version());
    shmq_queue *q = NULL;
    shmq_options bad = test_options(64, 256);
    bad.abi_version = SHMQ_ABI_VERSION + 1;
    CHECK(shmq_queue_create("abi", &bad, &q) == SHMQ_INCOMPATIBLE);
    CHECK(q == NULL);
    CHECK(strstr(shmq_last_error(), "abi_version") != NULL);
    memset(&bad, 0, sizeof bad);
    CHECK(shmq_queue_open_or_create("abi", &bad, &q) == SHMQ_INCOMPATIBLE);
    CHECK(strstr(shmq_last_error(), "shmq_options_default()") != NULL);
    CHECK(q == NULL);
}

static void test_defaults(void) {
    shmq_options o = shmq_options_default();
    CHECK(o.dir == NULL);
    CHECK(o.slots == 4096);
    CHECK(o.slot_size == 1024);
    CHECK(o.max_groups == 16);
    CHECK(o.overflow == SHMQ_OVERFLOW_BLOCK);
    CHECK(o.lease_ms == 30000);
    CHECK(o.max_deliveries == 5);
    CHECK(o.unblock_timeout_ms == 5000);
    CHECK(o.mode == 0600);
    shmq_consumer_options c = shmq_consumer_options_default();
    CHECK(c.start == SHMQ_START_EARLIEST);
    CHECK(c.ack == SHMQ_ACK_AUTO);
    CHECK(c.wait == SHMQ_WAIT_STRATEGY_SPIN_FUTEX && SHMQ_WAIT_STRATEGY_SPIN_FUTEX == 0);
}

static void test_round_trip(void) {
    shmq_options o = test_options(64, 256);
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("round-trip", &o, &q));
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_consumer_new(q, "readers", NULL, &c));
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));

    const char *text = "hello from C";
    uint64_t seq = 99;
    CHECK_OK(shmq_publish(p, (const uint8_t *)text, strlen(text), &seq));
    CHECK(seq == 0);

    shmq_message m;
    memset(&m, 0, sizeof m);
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(m.len == strlen(text));
    CHECK(m.data != NULL && memcmp(m.data, text, m.len) == 0);
    CHECK(m.seq == 0);
    CHECK(m.attempt == 1);
    CHECK(m.type_id == 0);
    CHECK(m.timestamp_ns > 1600000000ull * 1000000000ull);
    CHECK_OK(shmq_ack(c, &m));

    /* Nothing more: a poll times out at once, with a message. */
    CHECK_STATUS(shmq_receive(c, 0, &m), SHMQ_TIMEOUT);
    CHECK(strcmp(shmq_last_error(), "timed out") == 0);

    /* A second message; the seq is optional. */
    CHECK_OK(shmq_publish(p, (const uint8_t *)"x", 1, NULL));
    CHECK_OK(shmq_receive(c, SHMQ_WAIT_FOREVER, &m));
    CHECK(m.seq == 1 && m.len == 1 && m.data[0] == 'x');
    /* An empty message: data may be NULL with len 0. */
    CHECK_OK(shmq_publish(p, NULL, 0, &seq));
    CHECK(seq == 2);
    CHECK_OK(shmq_receive(c, MS(1000), &m)); /* ends the previous delivery */
    CHECK(m.seq == 2 && m.len == 0);
    CHECK_OK(shmq_ack_all(c));
    CHECK_OK(shmq_ack_all(c)); /* nothing pending: still fine */

    shmq_producer_free(&p);
    CHECK(p == NULL);
    shmq_consumer_free(&c);
    CHECK(c == NULL);
    shmq_queue_close(&q);
    CHECK(q == NULL);
    CHECK_OK(shmq_queue_remove("round-trip", &o));
}

/* A message longer than a slot: consecutive slots, one buffer to read and
   to reserve; the queue's largest message in its options and stats. */
static void test_messages_longer_than_a_slot(void) {
    shmq_options o = test_options(128, 256); /* strides of 288: 9 pages */
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("long", &o, &q));
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_consumer_new(q, "readers", NULL, &c));
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    size_t max = 0;
    CHECK_OK(shmq_producer_max_payload(p, &max));
    CHECK(max == 64 * 288 - 32);

    static uint8_t big[10000];
    for (size_t i = 0; i < sizeof big; i++) {
        big[i] = (uint8_t)(i * 7 + i / 251);
    }
    uint64_t seq = 99, next = 99;
    CHECK_OK(shmq_publish(p, big, sizeof big, &seq));
    CHECK_OK(shmq_publish(p, (const uint8_t *)"next", 4, &next));
    CHECK(next == seq + 35); /* 32 + 10000 bytes in slots of 288 */
    uint8_t *buf = NULL;
    shmq_reservation *r = NULL;
    REQUIRE_OK(shmq_reserve(p, 5000, &buf, &r));
    memcpy(buf, big, 5000);
    CHECK_OK(shmq_commit(r, &seq));
    CHECK(seq == next + 1);

    shmq_message m;
    memset(&m, 0, sizeof m);
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(m.len == sizeof big && memcmp(m.data, big, m.len) == 0);
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(m.len == 4 && memcmp(m.data, "next", 4) == 0);
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(m.len == 5000 && memcmp(m.data, big, 5000) == 0);
    CHECK_OK(shmq_ack_all(c));

    shmq_queue_stats st;
    CHECK_OK(shmq_stats(q, &st));
    CHECK(st.max_message_size == max && st.published == 3);
    CHECK(st.depth == 0 && st.depth_bytes == 0);
    CHECK_STATUS(shmq_publish(p, big, max + 1, NULL), SHMQ_TOO_LARGE);
    shmq_producer_free(&p);
    shmq_consumer_free(&c);
    shmq_queue_close(&q);
    CHECK_OK(shmq_queue_remove("long", &o));

    /* Asked for: at most that; more than half the ring: refused. */
    o.max_message_size = 1000;
    REQUIRE_OK(shmq_queue_create("long-asked", &o, &q));
    REQUIRE_OK(shmq_producer_new(q, &p));
    CHECK_OK(shmq_producer_max_payload(p, &max));
    CHECK(max == 1000);
    shmq_producer_free(&p);
    shmq_queue_close(&q);
    CHECK_OK(shmq_queue_remove("long-asked", &o));
    o.max_message_size = 1 << 20;
    CHECK_STATUS(shmq_queue_create("long-refused", &o, &q), SHMQ_INVALID_OPTION);
    CHECK(strstr(shmq_last_error(), "more than this ring holds") != NULL);
}

/* The ring sized in bytes: 1 MiB of 64-byte slots is 16384 of them, which
 * hold as many small events or one long frame. */
static void test_capacity(void) {
    shmq_options o = shmq_options_default();
    o.dir = test_dir;
    o.capacity = 1 << 20;
    o.slot_size = 32;
    o.overflow = SHMQ_OVERFLOW_REJECT;
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("capacity", &o, &q));
    shmq_queue_stats st;
    CHECK_OK(shmq_stats(q, &st));
    CHECK(st.slots == 16384 && st.capacity == 1 << 20);
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    uint32_t i;
    for (i = 0; i < 16384; i++) {
        CHECK_OK(shmq_publish(p, (const uint8_t *)&i, sizeof i, NULL));
    }
    CHECK_STATUS(shmq_publish(p, (const uint8_t *)&i, sizeof i, NULL), SHMQ_FULL);
    shmq_message m;
    for (i = 0; i < 16384; i++) {
        CHECK_OK(shmq_receive(c, MS(1000), &m));
    }
    CHECK(m.len == 4 && memcmp(m.data, &(uint32_t){16383}, 4) == 0);
    static uint8_t frame[400000];
    memset(frame, 7, sizeof frame);
    CHECK_OK(shmq_publish(p, frame, sizeof frame, NULL));
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(m.len == sizeof frame && memcmp(m.data, frame, m.len) == 0);
    CHECK_OK(shmq_ack_all(c));
    shmq_producer_free(&p);
    shmq_consumer_free(&c);
    shmq_queue_close(&q);
    CHECK_OK(shmq_queue_remove("capacity", &o));
    /* Both sizes of the ring given: refused. */
    o.slots = 64;
    CHECK_STATUS(shmq_queue_create("capacity-slots", &o, &q), SHMQ_INVALID_OPTION);
    CHECK(strstr(shmq_last_error(), "give one of them") != NULL);
}

/* max_in_flight: an ack=manual group has at most that many slots out; a
 * window past the ring is refused. */
static void test_max_in_flight(void) {
    shmq_options o = shmq_options_default();
    o.dir = test_dir;
    o.slots = 64;
    o.max_in_flight = 65;
    shmq_queue *q = NULL;
    CHECK_STATUS(shmq_queue_create("window", &o, &q), SHMQ_INVALID_OPTION);
    CHECK(strstr(shmq_last_error(), "max_in_flight must be from 1") != NULL);
    o.max_in_flight = 1;
    REQUIRE_OK(shmq_queue_create("window", &o, &q));
    shmq_consumer_options co = shmq_consumer_options_default();
    co.ack = SHMQ_ACK_MANUAL;
    co.create = SHMQ_CREATE_GROUP;
    shmq_consumer *a = NULL, *b = NULL;
    REQUIRE_OK(shmq_consumer_new(q, "w", &co, &a));
    REQUIRE_OK(shmq_consumer_new(q, "w", &co, &b));
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    CHECK_OK(shmq_publish(p, (const uint8_t *)"one", 3, NULL));
    CHECK_OK(shmq_publish(p, (const uint8_t *)"two", 3, NULL));
    shmq_message m, n;
    CHECK_OK(shmq_receive(a, MS(1000), &m));
    CHECK(m.len == 3 && memcmp(m.data, "one", 3) == 0);
    /* One out: the window is full for the whole group. */
    CHECK_STATUS(shmq_receive(b, MS(20), &n), SHMQ_TIMEOUT);
    CHECK_OK(shmq_ack(a, &m));
    CHECK_OK(shmq_receive(b, MS(1000), &n));
    CHECK(n.len == 3 && memcmp(n.data, "two", 3) == 0);
    CHECK_OK(shmq_ack(b, &n));
    shmq_producer_free(&p);
    shmq_consumer_free(&a);
    shmq_consumer_free(&b);
    shmq_queue_close(&q);
    CHECK_OK(shmq_queue_remove("window", &o));
}

static void test_meta(void) {
    shmq_options o = test_options(16, 64);
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("meta", &o, &q));
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    shmq_meta meta = {.type_id = 7, .correlation_id = 0xfeedfacecafebeefull};
    uint64_t seq;
    CHECK_OK(shmq_publish_with(p, (const uint8_t *)"typed", 5, &meta, &seq));
    meta.type_id = 8;
    CHECK_OK(shmq_publish_with_timeout(p, (const uint8_t *)"t2", 2, &meta, MS(100), &seq));
    CHECK(seq == 1);
    shmq_message m;
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(m.type_id == 7 && m.correlation_id == 0xfeedfacecafebeefull);
    CHECK(m.len == 5 && memcmp(m.data, "typed", 5) == 0);
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(m.type_id == 8 && m.seq == 1);
    CHECK_OK(shmq_ack(c, &m));
    shmq_producer_free(&p);
    shmq_consumer_free(&c);
    shmq_queue_close(&q);
}

/* Every group sees every message, in order, at its own pace. */
static void test_fan_out(void) {
    shmq_options o = test_options(256, 64);
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("fan-out", &o, &q));
    const char *groups[3] = {"billing", "email", "audit"};
    for (int g = 0; g < 3; g++) {
        CHECK_OK(shmq_group_create(q, groups[g], SHMQ_START_EARLIEST, 0));
    }
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    enum { N = 200 };
    for (int i = 0; i < N; i++) {
        char buf[32];
        int len = snprintf(buf, sizeof buf, "order-%d", i);
        uint64_t seq;
        CHECK_OK(shmq_publish(p, (const uint8_t *)buf, (size_t)len, &seq));
        CHECK(seq == (uint64_t)i);
    }
    for (int g = 0; g < 3; g++) {
        shmq_consumer *c = NULL;
        REQUIRE_OK(shmq_consumer_new(q, groups[g], NULL, &c));
        int in_order = 1;
        for (int i = 0; i < N; i++) {
            shmq_message m;
            char want[32];
            int len = snprintf(want, sizeof want, "order-%d", i);
            if (shmq_receive(c, MS(1000), &m) != SHMQ_OK || m.seq != (uint64_t)i ||
                m.len != (size_t)len || memcmp(m.data, want, m.len) != 0) {
                in_order = 0;
                break;
            }
            CHECK_OK(shmq_ack(c, &m));
        }
        CHECK(in_order);
        shmq_message m;
        CHECK_STATUS(shmq_receive(c, 0, &m), SHMQ_TIMEOUT);
        shmq_consumer_free(&c);
    }
    shmq_queue_stats s;
    CHECK_OK(shmq_stats(q, &s));
    CHECK(s.published == N && s.next_seq == N && s.groups == 3 && s.depth == 0);
    shmq_producer_free(&p);
    shmq_queue_close(&q);
}

/* Write in place: reserve, fill, commit; an abort publishes nothing. */
static void test_reserve_commit_abort(void) {
    shmq_options o = test_options(16, 128);
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("zero-copy", &o, &q));
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));

    uint8_t *buf = NULL;
    shmq_reservation *r = NULL;
    REQUIRE_OK(shmq_reserve(p, 100, &buf, &r));
    REQUIRE(buf != NULL && r != NULL);
    for (int i = 0; i < 100; i++) {
        buf[i] = (uint8_t)i;
    }
    shmq_meta meta = {.type_id = 3, .correlation_id = 42};
    CHECK_OK(shmq_reservation_set_meta(r, &meta));
    CHECK_OK(shmq_reservation_truncate(r, 64));
    uint64_t seq = 99;
    CHECK_OK(shmq_commit(r, &seq));
    CHECK(seq == 0);

    /* An aborted reservation takes a position that consumers skip. */
    CHECK_OK(shmq_reserve_timeout(p, 10, MS(100), &buf, &r));
    memset(buf, 'z', 10);
    CHECK_OK(shmq_abort(r));
    CHECK_OK(shmq_publish(p, (const uint8_t *)"after", 5, &seq));
    CHECK(seq == 2);

    shmq_message m;
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(m.seq == 0 && m.len == 64 && m.type_id == 3 && m.correlation_id == 42);
    int same = m.len == 64;
    for (size_t i = 0; same && i < m.len; i++) {
        same = m.data[i] == (uint8_t)i;
    }
    CHECK(same);
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(m.seq == 2 && m.len == 5 && memcmp(m.data, "after", 5) == 0);
    CHECK_OK(shmq_ack(c, &m));

    shmq_queue_stats s;
    CHECK_OK(shmq_stats(q, &s));
    CHECK(s.aborted == 1);
    CHECK(s.published == 2);

    /* A reservation still pending when its producer is freed is aborted. */
    CHECK_OK(shmq_reserve(p, 8, &buf, &r));
    shmq_producer_free(&p);
    CHECK_STATUS(shmq_receive(c, MS(50), &m), SHMQ_TIMEOUT);
    CHECK_OK(shmq_stats(q, &s));
    CHECK(s.aborted == 2);
    shmq_consumer_free(&c);
    shmq_queue_close(&q);
}

static void test_batches(void) {
    shmq_options o = test_options(64, 64);
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("batches", &o, &q));
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));

    enum { N = 10 };
    char texts[N][8];
    shmq_buf bufs[N];
    for (int i = 0; i < N; i++) {
        int len = snprintf(texts[i], sizeof texts[i], "b%d", i);
        bufs[i].data = (const uint8_t *)texts[i];
        bufs[i].len = (size_t)len;
    }
    uint64_t first = 99;
    CHECK_OK(shmq_publish_batch(p, bufs, N, &first));
    CHECK(first == 0);

    shmq_message msgs[4];
    size_t got = 0, total = 0;
    int in_order = 1;
    while (total < N) {
        size_t n = 0;
        shmq_status st = shmq_receive_batch(c, msgs, 4, MS(1000), &n);
        CHECK_OK(st);
        if (st != SHMQ_OK) {
            break;
        }
        CHECK(n >= 1 && n <= 4);
        for (size_t i = 0; i < n; i++) {
            char want[8];
            int len = snprintf(want, sizeof want, "b%d", (int)(total + i));
            in_order &= msgs[i].seq == total + i && msgs[i].len == (size_t)len &&
                        memcmp(msgs[i].data, want, msgs[i].len) == 0;
        }
        total += n;
        got++;
        CHECK_OK(shmq_ack_all(c));
    }
    CHECK(total == N && in_order);
    CHECK(got >= 3); /* 10 messages in batches of at most 4 */
    size_t n = 7;
    CHECK_STATUS(shmq_receive_batch(c, msgs, 4, 0, &n), SHMQ_TIMEOUT);
    CHECK(n == 7); /* untouched on failure */
    shmq_producer_free(&p);
    shmq_consumer_free(&c);
    shmq_queue_close(&q);
}

static void test_timeouts(void) {
    /* Receive on an empty queue waits about as long as asked. */
    shmq_options o = test_options(4, 32);
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("timeouts", &o, &q));
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_consumer_new(q, "slow", NULL, &c));
    shmq_message m;
    uint64_t t0 = now_ns();
    CHECK_STATUS(shmq_receive(c, MS(50), &m), SHMQ_TIMEOUT);
    uint64_t waited = now_ns() - t0;
    CHECK(waited >= MS(45) && waited < MS(5000));

    /* A full queue with overflow=block: a publish waits for its timeout. */
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    for (int i = 0; i < 4; i++) {
        CHECK_OK(shmq_publish_timeout(p, (const uint8_t *)"fill", 4, MS(100), NULL));
    }
    uint64_t seq = 1234;
    t0 = now_ns();
    CHECK_STATUS(shmq_publish_timeout(p, (const uint8_t *)"more", 4, MS(50), &seq), SHMQ_TIMEOUT);
    waited = now_ns() - t0;
    CHECK(waited >= MS(45) && waited < MS(5000));
    CHECK(seq == 1234);
    CHECK_STATUS(shmq_publish_timeout(p, (const uint8_t *)"more", 4, 0, &seq), SHMQ_TIMEOUT);
    uint8_t *buf;
    shmq_reservation *r;
    CHECK_STATUS(shmq_reserve_timeout(p, 4, MS(20), &buf, &r), SHMQ_TIMEOUT);
    /* Room again once the consumer moves on. */
    CHECK_OK(shmq_receive(c, 0, &m));
    CHECK_OK(shmq_ack(c, &m));
    CHECK_OK(shmq_publish_timeout(p, (const uint8_t *)"more", 4, MS(1000), &seq));
    CHECK(seq == 4);
    shmq_producer_free(&p);
    shmq_consumer_free(&c);
    shmq_queue_close(&q);

    /* overflow=reject: SHMQ_FULL at once, counted. */
    o.overflow = SHMQ_OVERFLOW_REJECT;
    REQUIRE_OK(shmq_queue_create("reject", &o, &q));
    CHECK_OK(shmq_group_create(q, "g", SHMQ_START_EARLIEST, 0));
    REQUIRE_OK(shmq_producer_new(q, &p));
    for (int i = 0; i < 4; i++) {
        CHECK_OK(shmq_publish(p, (const uint8_t *)"fill", 4, NULL));
    }
    CHECK_STATUS(shmq_publish(p, (const uint8_t *)"more", 4, NULL), SHMQ_FULL);
    CHECK(strstr(shmq_last_error(), "full") != NULL);
    shmq_queue_stats s;
    CHECK_OK(shmq_stats(q, &s));
    CHECK(s.rejected == 1 && s.overflow == SHMQ_OVERFLOW_REJECT && s.depth == 4);
    shmq_producer_free(&p);
    shmq_queue_close(&q);
}

static void test_groups_and_seek(void) {
    shmq_options o = test_options(64, 64);
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("groups", &o, &q));
    CHECK_OK(shmq_group_create(q, "early", SHMQ_START_EARLIEST, 0));
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    for (int i = 0; i < 10; i++) {
        CHECK_OK(shmq_publish(p, (const uint8_t *)&i, sizeof i, NULL));
    }
    CHECK_OK(shmq_group_create(q, "late", SHMQ_START_LATEST, 0));
    CHECK_OK(shmq_group_create(q, "from5", SHMQ_START_SEQ, 5));

    size_t n = 0;
    CHECK_OK(shmq_groups(q, NULL, 0, &n));
    CHECK(n == 3);
    shmq_group_info infos[2];
    CHECK_OK(shmq_groups(q, infos, 2, &n));
    CHECK(n == 3); /* the total, though only 2 fit */
    CHECK(strcmp(infos[0].name, "early") == 0 && infos[0].next == 0 && infos[0].lag == 10);
    CHECK(strcmp(infos[1].name, "late") == 0 && infos[1].next == 10);
    shmq_group_info info;
    CHECK_OK(shmq_group_stats(q, "from5", &info));
    CHECK(info.next == 5 && !info.consumer_attached && info.created_ns > 0);

    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_consumer_new(q, "from5", NULL, &c));
    CHECK_OK(shmq_group_stats(q, "from5", &info));
    CHECK(info.consumer_attached);
    shmq_message m;
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(m.seq == 5);
    uint64_t pos = 0;
    CHECK_OK(shmq_consumer_position(c, &pos)); /* beside the pending delivery */
    CHECK(pos == 6);
    pos = 0;
    CHECK_OK(shmq_ack(c, &m));
    CHECK_OK(shmq_consumer_position(c, &pos));
    CHECK(pos == 6);
    /* Replay from 2 with the consumer's own seek. */
    uint64_t next = 0;
    CHECK_OK(shmq_consumer_seek(c, SHMQ_SEEK_SEQ, 2, &next));
    CHECK(next == 2);
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    int value = -1;
    memcpy(&value, m.data, sizeof value);
    CHECK(m.seq == 2 && value == 2);
    /* A group with a consumer can be neither deleted nor seeked from outside. */
    CHECK_STATUS(shmq_group_delete(q, "from5"), SHMQ_BUSY);
    CHECK_STATUS(shmq_group_seek(q, "from5", SHMQ_SEEK_EARLIEST, 0, &next), SHMQ_BUSY);
    shmq_consumer_free(&c);

    CHECK_OK(shmq_group_seek(q, "late", SHMQ_SEEK_EARLIEST, 0, &next));
    CHECK(next == 0);
    CHECK_OK(shmq_group_seek(q, "early", SHMQ_SEEK_LATEST, 0, NULL));
    CHECK_OK(shmq_group_stats(q, "early", &info));
    CHECK(info.next == 10 && info.lag == 0);
    CHECK_OK(shmq_group_delete(q, "from5"));
    CHECK_STATUS(shmq_group_stats(q, "from5", &info), SHMQ_NOT_FOUND);
    CHECK_STATUS(shmq_group_delete(q, "from5"), SHMQ_NOT_FOUND);
    CHECK_OK(shmq_groups(q, NULL, 0, &n));
    CHECK(n == 2);
    shmq_producer_free(&p);
    shmq_queue_close(&q);
}

/* Names, paths and the other getters; the wait strategies. */
static void test_getters_and_wait_strategies(void) {
    shmq_options o = test_options(16, 200);
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("names", &o, &q));

    char buf[512];
    size_t len = 0;
    CHECK_OK(shmq_queue_name(q, buf, sizeof buf, &len));
    CHECK(len == 5 && strcmp(buf, "names") == 0);
    CHECK_OK(shmq_queue_name(q, buf, 3, &len)); /* too small: cut, still a C string */
    CHECK(len == 5 && strcmp(buf, "na") == 0);
    CHECK_OK(shmq_queue_name(q, NULL, 0, &len)); /* just the length */
    CHECK(len == 5);
    CHECK_STATUS(shmq_queue_name(q, NULL, 8, &len), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_queue_name(q, buf, sizeof buf, NULL), SHMQ_NULL_ARGUMENT);
    char want[512];
    snprintf(want, sizeof want, "%s/names.shmq", test_dir);
    CHECK_OK(shmq_queue_path(q, buf, sizeof buf, &len));
    CHECK(len == strlen(want) && strcmp(buf, want) == 0);
    CHECK_STATUS(shmq_queue_spill_dir(q, buf, sizeof buf, &len), SHMQ_NOT_FOUND);

    const char *old = getenv("SHMQ_DIR");
    char saved[512] = "";
    if (old != NULL) {
        snprintf(saved, sizeof saved, "%s", old);
    }
    setenv("SHMQ_DIR", test_dir, 1);
    CHECK_OK(shmq_default_dir(buf, sizeof buf, &len));
    CHECK(strcmp(buf, test_dir) == 0 && len == strlen(test_dir));
    unsetenv("SHMQ_DIR");
    CHECK_OK(shmq_default_dir(buf, sizeof buf, &len));
    CHECK(strcmp(buf, "/dev/shm") == 0 && len == 8);
    if (old != NULL) {
        setenv("SHMQ_DIR", saved, 1);
    }

    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    size_t max = 0;
    CHECK_OK(shmq_producer_max_payload(p, &max));
    /* 16 slots of 200 bytes (strides of 256): a ring of one page, mapped
       twice; a message may take half of it, less its 32-byte header. */
    CHECK(max == 8 * 256 - 32);
    uint8_t *slot = NULL;
    shmq_reservation *r = NULL;
    REQUIRE_OK(shmq_reserve(p, 4, &slot, &r));
    uint64_t seq = 99, committed = 98;
    CHECK_OK(shmq_reservation_seq(r, &seq));
    CHECK_OK(shmq_producer_max_payload(p, &max)); /* beside the reservation */
    memcpy(slot, "abcd", 4);
    CHECK_OK(shmq_commit(r, &committed));
    CHECK(seq == 0 && committed == 0);
    CHECK_STATUS(shmq_reservation_seq(r, &seq), SHMQ_INVALID_ARGUMENT); /* ended */

    /* Every wait strategy receives; an unknown one is refused. */
    const shmq_wait_strategy strategies[] = {SHMQ_WAIT_STRATEGY_SPIN_FUTEX,
                                             SHMQ_WAIT_STRATEGY_SPIN_YIELD,
                                             SHMQ_WAIT_STRATEGY_BUSY_SPIN};
    for (size_t i = 0; i < 3; i++) {
        shmq_consumer_options co = shmq_consumer_options_default();
        co.wait = strategies[i];
        co.ack = i == 1 ? SHMQ_ACK_MANUAL : SHMQ_ACK_AUTO;
        char group[16];
        snprintf(group, sizeof group, "g%zu", i);
        shmq_consumer *c = NULL;
        REQUIRE_OK(shmq_consumer_new(q, group, &co, &c));
        CHECK_OK(shmq_consumer_group(c, buf, sizeof buf, &len));
        CHECK(strcmp(buf, group) == 0 && len == strlen(group));
        shmq_ack_mode ack = 7;
        CHECK_OK(shmq_consumer_ack_mode(c, &ack));
        CHECK(ack == co.ack);
        shmq_message m;
        CHECK_OK(shmq_receive(c, MS(1000), &m));
        CHECK(m.seq == 0 && m.len == 4 && memcmp(m.data, "abcd", 4) == 0);
        CHECK_OK(shmq_consumer_group(c, buf, SHMQ_GROUP_NAME_CAP, &len)); /* beside it */
        CHECK_OK(shmq_ack(c, &m));
        CHECK_STATUS(shmq_receive(c, MS(20), &m), SHMQ_TIMEOUT);
        shmq_consumer_free(&c);
    }
    shmq_consumer_options bad = shmq_consumer_options_default();
    bad.wait = 3;
    shmq_consumer *c = NULL;
    CHECK_STATUS(shmq_consumer_new(q, "bad", &bad, &c), SHMQ_INVALID_OPTION);
    CHECK(c == NULL && strstr(shmq_last_error(), "wait must be") != NULL);

    shmq_producer_free(&p);
    shmq_queue_close(&q);
}

static void test_open_and_remove(void) {
    shmq_options o = test_options(32, 64);
    shmq_queue *a = NULL, *b = NULL, *c = NULL;
    REQUIRE_OK(shmq_queue_open_or_create("shared", &o, &a));
    /* A second open of the same file, with only the directory given. */
    shmq_options dir_only = shmq_options_default();
    dir_only.dir = test_dir;
    dir_only.slots = 1024; /* ignored: read from the file */
    REQUIRE_OK(shmq_queue_open("shared", &dir_only, &b));
    REQUIRE_OK(shmq_queue_open_or_create("shared", &dir_only, &c));
    shmq_queue_stats s;
    CHECK_OK(shmq_stats(c, &s));
    CHECK(s.slots == 32 && s.slot_size == 64);
    CHECK_OK(shmq_queue_flush(a));

    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(a, &p));
    shmq_consumer *cons = NULL;
    CHECK_OK(shmq_group_create(b, "g", SHMQ_START_EARLIEST, 0));
    REQUIRE_OK(shmq_consumer_new(c, "g", NULL, &cons));
    /* The queue handle may be closed before its producers and consumers. */
    shmq_queue_close(&a);
    shmq_queue_close(&b);
    shmq_queue_close(&c);
    CHECK_OK(shmq_publish(p, (const uint8_t *)"still here", 10, NULL));
    shmq_message m;
    CHECK_OK(shmq_receive(cons, MS(1000), &m));
    CHECK(m.len == 10 && memcmp(m.data, "still here", 10) == 0);
    shmq_consumer_free(&cons);
    shmq_producer_free(&p);

    CHECK_OK(shmq_queue_remove("shared", &o));
    CHECK_STATUS(shmq_queue_open("shared", &o, &a), SHMQ_NOT_FOUND);
    CHECK(a == NULL);
}

/* Two producer threads and a consumer thread on one queue. */
enum { PER_PRODUCER = 20000 };
static shmq_queue *threads_queue;

static void *produce(void *arg) {
    uint32_t id = (uint32_t)(uintptr_t)arg;
    shmq_producer *p = NULL;
    shmq_status st = shmq_producer_new(threads_queue, &p);
    if (st != SHMQ_OK) {
        fprintf(stderr, "producer %u: %s (%s)\n", id, shmq_status_str((int)st), shmq_last_error());
        return (void *)1;
    }
    uintptr_t failures = 0;
    for (uint32_t i = 0; i < PER_PRODUCER; i++) {
        uint32_t body[2] = {id, i};
        shmq_meta meta = {.type_id = id, .correlation_id = i};
        shmq_status st = shmq_publish_with(p, (const uint8_t *)body, sizeof body, &meta, NULL);
        if (st != SHMQ_OK) {
            fprintf(stderr, "producer %u: message %u: %s (%s)\n", id, i, shmq_status_str((int)st),
                    shmq_last_error());
            failures++;
        }
    }
    shmq_producer_free(&p);
    return (void *)failures;
}

static void *consume(void *arg) {
    shmq_consumer *c = arg;
    uint32_t next[2] = {0, 0};
    uintptr_t failures = 0;
    for (int n = 0; n < 2 * PER_PRODUCER; n++) {
        shmq_message m;
        shmq_status st = shmq_receive(c, MS(10000), &m);
        if (st != SHMQ_OK || m.len != 8) {
            fprintf(stderr, "consumer: message %d: %s (%s)\n", n, shmq_status_str((int)st),
                    shmq_last_error());
            return (void *)(uintptr_t)(1 + 2 * PER_PRODUCER);
        }
        uint32_t body[2];
        memcpy(body, m.data, sizeof body);
        /* Per producer, in order, nothing lost or doubled. */
        if (body[0] > 1 || body[1] != next[body[0]] || m.type_id != body[0] ||
            m.correlation_id != body[1]) {
            if (failures++ < 5) {
                fprintf(stderr, "consumer: seq %llu: producer %u message %u (type %u, corr %llu), expected message %u\n",
                        (unsigned long long)m.seq, body[0], body[1], m.type_id,
                        (unsigned long long)m.correlation_id, body[0] <= 1 ? next[body[0]] : 0);
            }
        }
        if (body[0] <= 1) {
            next[body[0]] = body[1] + 1;
        }
    }
    return (void *)failures;
}

static void test_threads(void) {
    shmq_options o = test_options(1024, 16);
    REQUIRE_OK(shmq_queue_create("threads", &o, &threads_queue));
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_consumer_new(threads_queue, "g", NULL, &c));
    pthread_t prod[2], cons;
    REQUIRE(pthread_create(&cons, NULL, consume, c) == 0);
    for (uintptr_t i = 0; i < 2; i++) {
        REQUIRE(pthread_create(&prod[i], NULL, produce, (void *)i) == 0);
    }
    for (int i = 0; i < 2; i++) {
        void *r;
        pthread_join(prod[i], &r);
        CHECK((uintptr_t)r == 0);
    }
    void *r;
    pthread_join(cons, &r);
    CHECK((uintptr_t)r == 0);
    shmq_consumer_free(&c);
    shmq_queue_close(&threads_queue);
}

/* A batch that goes in only in part says how many did and from which seq,
 * so that the caller retries only the rest (retrying all would duplicate). */
static void test_partial_batch(void) {
    enum { N = 10 };
    char texts[N][8];
    shmq_buf bufs[N];
    for (int i = 0; i < N; i++) {
        int len = snprintf(texts[i], sizeof texts[i], "p%d", i);
        bufs[i].data = (const uint8_t *)texts[i];
        bufs[i].len = (size_t)len;
    }
    /* overflow=reject, 8 slots, one group: 8 go in, 2 do not. */
    shmq_options o = test_options(8, 64);
    o.overflow = SHMQ_OVERFLOW_REJECT;
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("partial-rj", &o, &q));
    REQUIRE_OK(shmq_group_create(q, "g", SHMQ_START_EARLIEST, 0));
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    uint64_t first = 99;
    CHECK_STATUS(shmq_publish_batch(p, bufs, N, &first), SHMQ_FULL);
    CHECK(first == 0);
    CHECK(strstr(shmq_last_error(), "only 8 of the batch's 10 messages were published") != NULL);
    CHECK(strstr(shmq_last_error(), "nothing was published") == NULL);
    shmq_queue_stats st;
    REQUIRE_OK(shmq_stats(q, &st));
    CHECK(st.published == 8);
    size_t published = 99;
    first = 99;
    CHECK_STATUS(shmq_publish_batch_timeout(p, bufs + 8, 2, 0, &first, &published), SHMQ_FULL);
    CHECK(published == 0 && first == 99);
    shmq_producer_free(&p);
    shmq_queue_close(&q);
    REQUIRE_OK(shmq_queue_remove("partial-rj", &o));

    /* overflow=block with a timeout: the count, and SHMQ_OK. */
    o = test_options(8, 64);
    REQUIRE_OK(shmq_queue_create("partial-bl", &o, &q));
    REQUIRE_OK(shmq_group_create(q, "g", SHMQ_START_EARLIEST, 0));
    REQUIRE_OK(shmq_producer_new(q, &p));
    first = 99;
    published = 99;
    CHECK_OK(shmq_publish_batch_timeout(p, bufs, N, MS(200), &first, &published));
    CHECK(first == 0 && published == 8);
    /* Still full: a timeout before any went in. */
    CHECK_STATUS(shmq_publish_batch_timeout(p, bufs + 8, 2, MS(50), &first, &published),
                 SHMQ_TIMEOUT);
    CHECK(published == 0);
    /* Bad arguments: the status, and the count is 0. */
    published = 99;
    CHECK_STATUS(shmq_publish_batch_timeout(p, NULL, 2, 0, &first, &published),
                 SHMQ_NULL_ARGUMENT);
    CHECK(published == 0);
    shmq_producer_free(&p);
    shmq_queue_close(&q);
    REQUIRE_OK(shmq_queue_remove("partial-bl", &o));
}

int main(void) {
    alarm(120); /* a hang is a failure, not a stuck CI */
    make_test_dir();
    RUN(test_version);
    RUN(test_abi_version);
    RUN(test_defaults);
    RUN(test_round_trip);
    RUN(test_messages_longer_than_a_slot);
    RUN(test_capacity);
    RUN(test_max_in_flight);
    RUN(test_meta);
    RUN(test_fan_out);
    RUN(test_reserve_commit_abort);
    RUN(test_batches);
    RUN(test_timeouts);
    RUN(test_groups_and_seek);
    RUN(test_getters_and_wait_strategies);
    RUN(test_open_and_remove);
    RUN(test_threads);
    RUN(test_partial_batch);
    return finish();
}
