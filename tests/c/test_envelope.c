/* Ordering keys and headers from C: shmq_meta's ordering_key and headers
 * travel with a message through the ring, a batch receive, the spill and
 * the dead-letter queue's redrive; shmq_message's ordering_key and
 * headers_len, shmq_message_header and shmq_message_header_find read them
 * back; every bad argument (NULL with a length, too many headers, a name
 * too long, empty or not UTF-8, a key too long, too large for the slot, a
 * reservation, a message that is not current, an index past the end) is
 * a clear status, and nothing is published then. A dead letter keeps its
 * key and headers (shmq_dlq_ordering_key, shmq_dlq_header); a group's
 * stats count its busy keys and name its oldest unfinished key. */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>

#include "check.h"

#define LAST_ERROR_HAS(text) CHECK(strstr(shmq_last_error(), (text)) != NULL)

static shmq_header hdr(const char *name, const char *value) {
    shmq_header h = {0};
    h.name = name;
    h.name_len = strlen(name);
    h.value = (const uint8_t *)value;
    h.value_len = strlen(value);
    return h;
}

/* Publishes message `i`: payload "payload-<i>", ordering key
 * "customer-<i % 3>", headers traceparent, content-type, traceparent. */
static shmq_status publish_one(shmq_producer *p, uint64_t i, uint64_t *seq) {
    char payload[32], key[32], trace[32];
    snprintf(payload, sizeof payload, "payload-%llu", (unsigned long long)i);
    snprintf(key, sizeof key, "customer-%llu", (unsigned long long)(i % 3));
    snprintf(trace, sizeof trace, "00-trace-%llu", (unsigned long long)i);
    shmq_header h[3] = {hdr("traceparent", trace), hdr("content-type", "text/plain"),
                        hdr("traceparent", "second")};
    shmq_meta m = {0};
    m.type_id = 7;
    m.ordering_key = (const uint8_t *)key;
    m.ordering_key_len = strlen(key);
    m.headers = h;
    m.headers_len = 3;
    return shmq_publish_with(p, (const uint8_t *)payload, strlen(payload), &m, seq);
}

static int equals(const void *p, size_t len, const char *want) {
    return len == strlen(want) && (len == 0 || memcmp(p, want, len) == 0);
}

/* Checks that `msg`, current on `c`, is message `i` of publish_one. */
static void check_one(shmq_consumer *c, const shmq_message *msg, uint64_t i) {
    char payload[32], key[32], trace[32];
    snprintf(payload, sizeof payload, "payload-%llu", (unsigned long long)i);
    snprintf(key, sizeof key, "customer-%llu", (unsigned long long)(i % 3));
    snprintf(trace, sizeof trace, "00-trace-%llu", (unsigned long long)i);
    CHECK(equals(msg->data, msg->len, payload));
    CHECK(msg->type_id == 7);
    CHECK(msg->ordering_key != NULL && equals(msg->ordering_key, msg->ordering_key_len, key));
    CHECK(msg->headers_len == 3);
    const char *want[3][2] = {{"traceparent", trace}, {"content-type", "text/plain"},
                              {"traceparent", "second"}};
    for (size_t k = 0; k < 3; k++) {
        shmq_header h = {0};
        CHECK_OK(shmq_message_header(c, msg, k, &h));
        CHECK(equals(h.name, h.name_len, want[k][0]));
        CHECK(equals(h.value, h.value_len, want[k][1]));
    }
    shmq_header found = {0};
    CHECK_OK(shmq_message_header_find(c, msg, "traceparent", 11, &found));
    CHECK(equals(found.value, found.value_len, trace)); /* the first of the name */
    /* The payload stays 8-byte aligned behind the envelope. */
    CHECK((uintptr_t)msg->data % 8 == 0);
}

static void test_round_trip(void) {
    shmq_options o = test_options(8, 256);
    shmq_queue *q = NULL;
    shmq_producer *p = NULL;
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_queue_create("env-ring", &o, &q));
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    REQUIRE_OK(shmq_producer_new(q, &p));
    for (uint64_t i = 0; i < 20; i++) {
        uint64_t seq = UINT64_MAX;
        CHECK_OK(publish_one(p, i, &seq));
        CHECK(seq == i);
        shmq_message msg;
        CHECK_OK(shmq_receive(c, MS(5000), &msg));
        check_one(c, &msg, i);
        CHECK_OK(shmq_ack(c, &msg));
    }
    /* A message without them has none; a key alone, headers alone. */
    CHECK_OK(shmq_publish(p, (const uint8_t *)"plain", 5, NULL));
    shmq_meta k = {0};
    k.ordering_key = (const uint8_t *)"only-key";
    k.ordering_key_len = 8;
    CHECK_OK(shmq_publish_with(p, (const uint8_t *)"k", 1, &k, NULL));
    shmq_header one = hdr("only", "header");
    shmq_meta h = {0};
    h.headers = &one;
    h.headers_len = 1;
    CHECK_OK(shmq_publish_with(p, (const uint8_t *)"h", 1, &h, NULL));

    shmq_message msg;
    shmq_header out = {0};
    CHECK_OK(shmq_receive(c, MS(5000), &msg));
    CHECK(msg.ordering_key == NULL && msg.ordering_key_len == 0 && msg.headers_len == 0);
    CHECK_STATUS(shmq_message_header(c, &msg, 0, &out), SHMQ_INVALID_ARGUMENT);
    LAST_ERROR_HAS("0 headers");
    CHECK_STATUS(shmq_message_header_find(c, &msg, "only", 4, &out), SHMQ_NOT_FOUND);
    CHECK(out.name == NULL); /* untouched on failure */
    CHECK_OK(shmq_receive(c, MS(5000), &msg));
    CHECK(equals(msg.ordering_key, msg.ordering_key_len, "only-key") && msg.headers_len == 0);
    CHECK_OK(shmq_receive(c, MS(5000), &msg));
    CHECK(msg.ordering_key == NULL && msg.headers_len == 1);
    CHECK_OK(shmq_message_header_find(c, &msg, "only", 4, &out));
    CHECK(equals(out.name, out.name_len, "only") && equals(out.value, out.value_len, "header"));

    /* Reading headers of a message that is no longer current is refused. */
    shmq_message old = msg;
    CHECK_OK(shmq_ack(c, &msg));
    CHECK_STATUS(shmq_message_header(c, &old, 0, &out), SHMQ_INVALID_ARGUMENT);
    LAST_ERROR_HAS("not pending");
    /* NULL arguments. */
    CHECK_OK(publish_one(p, 1, NULL));
    CHECK_OK(shmq_receive(c, MS(5000), &msg));
    CHECK_STATUS(shmq_message_header(NULL, &msg, 0, &out), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_message_header(c, NULL, 0, &out), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_message_header(c, &msg, 0, NULL), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_message_header(c, &msg, 3, &out), SHMQ_INVALID_ARGUMENT);
    CHECK_STATUS(shmq_message_header(c, &msg, SIZE_MAX, &out), SHMQ_INVALID_ARGUMENT);
    CHECK_STATUS(shmq_message_header_find(c, &msg, NULL, 3, &out), SHMQ_NULL_ARGUMENT);
    LAST_ERROR_HAS("name");
    CHECK_STATUS(shmq_message_header_find(c, &msg, "\xff\xfe", 2, &out), SHMQ_INVALID_ARGUMENT);
    LAST_ERROR_HAS("UTF-8");
    /* A name given with its length: a prefix is not the name. */
    CHECK_STATUS(shmq_message_header_find(c, &msg, "traceparent", 5, &out), SHMQ_NOT_FOUND);
    check_one(c, &msg, 1);
    CHECK_OK(shmq_ack(c, &msg));

    shmq_consumer_free(&c);
    shmq_producer_free(&p);
    shmq_queue_close(&q);
    CHECK_OK(shmq_queue_remove("env-ring", &o));
}

static void test_batch(void) {
    shmq_options o = test_options(16, 256);
    shmq_queue *q = NULL;
    shmq_producer *p = NULL;
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_queue_create("env-batch", &o, &q));
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    REQUIRE_OK(shmq_producer_new(q, &p));
    for (uint64_t i = 0; i < 6; i++) {
        CHECK_OK(publish_one(p, i, NULL));
    }
    shmq_message msgs[8];
    size_t n = 0;
    CHECK_OK(shmq_receive_batch(c, msgs, 8, MS(5000), &n));
    CHECK(n == 6);
    /* Read back to front: each is found in the batch by its seq. */
    for (size_t k = n; k-- > 0;) {
        check_one(c, &msgs[k], msgs[k].seq);
    }
    shmq_message stranger = msgs[0];
    stranger.seq = 99;
    shmq_header out = {0};
    CHECK_STATUS(shmq_message_header(c, &stranger, 0, &out), SHMQ_INVALID_ARGUMENT);
    LAST_ERROR_HAS("batch");
    CHECK_OK(shmq_ack_all(c));
    CHECK_STATUS(shmq_message_header(c, &msgs[0], 0, &out), SHMQ_INVALID_ARGUMENT);

    shmq_consumer_free(&c);
    shmq_producer_free(&p);
    shmq_queue_close(&q);
    CHECK_OK(shmq_queue_remove("env-batch", &o));
}

/* Publishing `m` with payload "x" fails with `want`, naming `what`. */
static void check_refused(shmq_producer *p, const shmq_meta *m, shmq_status want,
                          const char *what) {
    uint64_t seq = 12345;
    CHECK_STATUS(shmq_publish_with(p, (const uint8_t *)"x", 1, m, &seq), want);
    CHECK(seq == 12345);
    if (strstr(shmq_last_error(), what) == NULL) {
        fprintf(stderr, "last error %s does not name %s\n", shmq_last_error(), what);
        CHECK(!"the last error names the limit");
    }
}

static void test_errors(void) {
    shmq_options o = test_options(8, 64);
    shmq_queue *q = NULL;
    shmq_producer *p = NULL;
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_queue_create("env-errors", &o, &q));
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    REQUIRE_OK(shmq_producer_new(q, &p));

    shmq_meta m = {0};
    m.ordering_key = NULL;
    m.ordering_key_len = 3;
    check_refused(p, &m, SHMQ_NULL_ARGUMENT, "meta->ordering_key");
    m = (shmq_meta){0};
    m.ordering_key = (const uint8_t *)"";
    m.ordering_key_len = 0; /* a key, empty: refused */
    check_refused(p, &m, SHMQ_INVALID_OPTION, "1024");
    static uint8_t long_key[SHMQ_MAX_ORDERING_KEY + 1];
    memset(long_key, 'k', sizeof long_key);
    m.ordering_key = long_key;
    m.ordering_key_len = sizeof long_key;
    check_refused(p, &m, SHMQ_INVALID_OPTION, "1024");

    m = (shmq_meta){0};
    m.headers = NULL;
    m.headers_len = 1;
    check_refused(p, &m, SHMQ_NULL_ARGUMENT, "meta->headers");
    shmq_header many[SHMQ_MAX_HEADERS + 1];
    for (size_t k = 0; k < SHMQ_MAX_HEADERS + 1; k++) {
        many[k] = hdr("h", "");
    }
    m.headers = many;
    m.headers_len = SHMQ_MAX_HEADERS + 1;
    check_refused(p, &m, SHMQ_INVALID_OPTION, "16");
    /* A huge count is refused before the array is read. */
    m.headers_len = SIZE_MAX;
    check_refused(p, &m, SHMQ_INVALID_OPTION, "16");

    shmq_header bad = hdr("", "v");
    m.headers = &bad;
    m.headers_len = 1;
    check_refused(p, &m, SHMQ_INVALID_OPTION, "header name");
    static char long_name[SHMQ_MAX_HEADER_NAME + 2];
    memset(long_name, 'n', SHMQ_MAX_HEADER_NAME + 1);
    bad = hdr(long_name, "v");
    check_refused(p, &m, SHMQ_INVALID_OPTION, "255");
    bad = hdr("\xc3\x28", "v");
    check_refused(p, &m, SHMQ_INVALID_OPTION, "UTF-8");
    bad = hdr("ok", "v");
    bad.name = NULL;
    check_refused(p, &m, SHMQ_NULL_ARGUMENT, "meta->headers[i].name");
    bad = hdr("ok", "v");
    bad.value = NULL;
    check_refused(p, &m, SHMQ_NULL_ARGUMENT, "meta->headers[i].value");
    bad = hdr("ok", "");
    bad.value = NULL; /* NULL with length 0: an empty value */
    CHECK_OK(shmq_publish_with(p, (const uint8_t *)"empty-value", 11, &m, NULL));

    /* The envelope counts against slot_size: 64 bytes fit alone, not with
     * a key; "k" takes 24 bytes of envelope, so 40 bytes of payload fit. */
    static uint8_t full[64];
    m = (shmq_meta){0};
    m.ordering_key = (const uint8_t *)"k";
    m.ordering_key_len = 1;
    CHECK_STATUS(shmq_publish_with(p, full, 64, &m, NULL), SHMQ_TOO_LARGE);
    LAST_ERROR_HAS("a payload of 64 bytes, an ordering key of");
    CHECK_STATUS(shmq_publish_with(p, full, 41, &m, NULL), SHMQ_TOO_LARGE);
    CHECK_OK(shmq_publish_with(p, full, 40, &m, NULL));

    /* A reservation takes none. */
    shmq_reservation *r = NULL;
    uint8_t *buf = NULL;
    REQUIRE_OK(shmq_reserve(p, 4, &buf, &r));
    memcpy(buf, "resv", 4);
    CHECK_STATUS(shmq_reservation_set_meta(r, &m), SHMQ_INVALID_ARGUMENT);
    LAST_ERROR_HAS("reservation");
    CHECK_OK(shmq_commit(r, NULL));

    /* Only what was accepted went in. */
    shmq_message msg;
    shmq_header out = {0};
    CHECK_OK(shmq_receive(c, MS(5000), &msg));
    CHECK(equals(msg.data, msg.len, "empty-value") && msg.headers_len == 1);
    CHECK_OK(shmq_message_header(c, &msg, 0, &out));
    CHECK(equals(out.name, out.name_len, "ok") && out.value_len == 0);
    CHECK_OK(shmq_receive(c, MS(5000), &msg));
    CHECK(msg.len == 40 && equals(msg.ordering_key, msg.ordering_key_len, "k"));
    CHECK_OK(shmq_receive(c, MS(5000), &msg));
    CHECK(equals(msg.data, msg.len, "resv") && msg.ordering_key == NULL && msg.headers_len == 0);
    CHECK_STATUS(shmq_receive(c, 0, &msg), SHMQ_TIMEOUT);

    shmq_consumer_free(&c);
    shmq_producer_free(&p);
    shmq_queue_close(&q);
    CHECK_OK(shmq_queue_remove("env-errors", &o));
}

/* A tiny ring that spills, then a dead-lettering and a redrive: the key
 * and headers come back every time. */
static void test_spill_and_redrive(void) {
    char spill[256];
    snprintf(spill, sizeof spill, "%s/spill-env", test_dir);
    shmq_options o = test_options(4, 256);
    o.overflow = SHMQ_OVERFLOW_SPILL;
    o.spill_dir = spill;
    o.spill_segment_size = 64u << 10;
    o.max_deliveries = 3;
    shmq_queue *q = NULL;
    shmq_producer *p = NULL;
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_queue_create("env-spill", &o, &q));
    REQUIRE_OK(shmq_group_create(q, "g", SHMQ_START_EARLIEST, 0));
    REQUIRE_OK(shmq_producer_new(q, &p));
    for (uint64_t i = 0; i < 40; i++) {
        CHECK_OK(publish_one(p, i, NULL));
    }
    shmq_queue_stats st;
    CHECK_OK(shmq_stats(q, &st));
    CHECK(st.spilled > 0);
    shmq_consumer_options co = shmq_consumer_options_default();
    co.ack = SHMQ_ACK_MANUAL;
    REQUIRE_OK(shmq_consumer_new(q, "g", &co, &c));
    for (uint64_t i = 0; i < 40; i++) {
        shmq_message msg;
        CHECK_OK(shmq_receive(c, MS(5000), &msg));
        CHECK(msg.seq == i);
        check_one(c, &msg, i);
        if (i == 5) {
            CHECK_OK(shmq_nack(c, &msg, SHMQ_NACK_DEAD_LETTER, 0));
        } else {
            CHECK_OK(shmq_ack(c, &msg));
        }
    }
    /* The dead letter keeps its key and headers: counted in the list,
     * read with shmq_dlq_ordering_key and shmq_dlq_header. */
    shmq_dead_letter letters[4];
    size_t count = 0;
    CHECK_OK(shmq_dlq_list(q, letters, 4, &count));
    CHECK(count == 1);
    CHECK(letters[0].seq == 5);
    CHECK(letters[0].ordering_key_len == strlen("customer-2"));
    CHECK(letters[0].headers_len == 3);
    char key[64];
    size_t key_len = 0;
    CHECK_OK(shmq_dlq_ordering_key(q, 5, "g", (uint8_t *)key, sizeof key, &key_len));
    CHECK(equals(key, key_len, "customer-2"));
    /* Too small a buffer: the start of it, and the whole length. */
    CHECK_OK(shmq_dlq_ordering_key(q, 5, NULL, (uint8_t *)key, 4, &key_len));
    CHECK(key_len == strlen("customer-2") && memcmp(key, "cust", 4) == 0);
    CHECK_OK(shmq_dlq_ordering_key(q, 5, NULL, NULL, 0, &key_len));
    CHECK(key_len == strlen("customer-2"));
    const char *want[3][2] = {{"traceparent", "00-trace-5"}, {"content-type", "text/plain"},
                              {"traceparent", "second"}};
    for (size_t k = 0; k < 3; k++) {
        char name[SHMQ_MAX_HEADER_NAME], value[64];
        size_t name_len = 0, value_len = 0;
        CHECK_OK(shmq_dlq_header(q, 5, "g", k, (uint8_t *)name, sizeof name, &name_len,
                                 (uint8_t *)value, sizeof value, &value_len));
        CHECK(equals(name, name_len, want[k][0]));
        CHECK(equals(value, value_len, want[k][1]));
    }
    size_t name_len = 0, value_len = 0;
    CHECK(shmq_dlq_header(q, 5, "g", 3, NULL, 0, &name_len, NULL, 0, &value_len) ==
          SHMQ_INVALID_ARGUMENT);
    LAST_ERROR_HAS("header index 3");
    CHECK(shmq_dlq_header(q, 6, "g", 0, NULL, 0, &name_len, NULL, 0, &value_len) ==
          SHMQ_NOT_FOUND);
    CHECK(shmq_dlq_header(q, 5, "other", 0, NULL, 0, &name_len, NULL, 0, &value_len) ==
          SHMQ_NOT_FOUND);
    CHECK(shmq_dlq_ordering_key(q, 6, NULL, NULL, 0, &key_len) == SHMQ_NOT_FOUND);
    CHECK(shmq_dlq_ordering_key(q, 5, NULL, (uint8_t *)key, sizeof key, NULL) ==
          SHMQ_NULL_ARGUMENT);
    CHECK(shmq_dlq_header(q, 5, NULL, 0, NULL, 4, &name_len, NULL, 0, &value_len) ==
          SHMQ_NULL_ARGUMENT);

    uint64_t seq = 5, n = 0;
    CHECK_OK(shmq_dlq_redrive(q, &seq, &n));
    CHECK(n == 1);
    shmq_message msg;
    CHECK_OK(shmq_receive(c, MS(5000), &msg));
    /* A keyed dead letter goes back to the end of its key: republished,
     * with a new seq. */
    CHECK(msg.seq >= 40);
    check_one(c, &msg, 5);
    CHECK_OK(shmq_ack(c, &msg));

    shmq_consumer_free(&c);
    shmq_producer_free(&p);
    shmq_queue_close(&q);
    CHECK_OK(shmq_queue_remove("env-spill", &o));
}

/* A keyed dead letter with no ring room stays, and the redrive says how
 * many went, how many stayed and which group holds the ring; a publish
 * that waits out its timeout names that group too. */
static void test_redrive_without_room(void) {
    shmq_options o = test_options(8, 256);
    /* ordering_lanes reaches the queue: 3 is refused by name. */
    shmq_queue *bad = NULL;
    o.ordering_lanes = 3;
    CHECK_STATUS(shmq_queue_create("env-lanes", &o, &bad), SHMQ_INVALID_OPTION);
    LAST_ERROR_HAS("ordering_lanes must be a power of two");
    o.ordering_lanes = 1;
    o.max_deliveries = 5;
    shmq_queue *q = NULL;
    shmq_producer *p = NULL;
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_queue_create("env-room", &o, &q));
    REQUIRE_OK(shmq_group_create(q, "work", SHMQ_START_EARLIEST, 0));
    REQUIRE_OK(shmq_producer_new(q, &p));
    shmq_consumer_options co = shmq_consumer_options_default();
    co.ack = SHMQ_ACK_MANUAL;
    REQUIRE_OK(shmq_consumer_new(q, "work", &co, &c));
    CHECK_OK(publish_one(p, 0, NULL)); /* keyed */
    CHECK_OK(shmq_publish(p, (const uint8_t *)"plain", 5, NULL));
    for (int i = 0; i < 2; i++) {
        shmq_message msg;
        CHECK_OK(shmq_receive(c, MS(5000), &msg));
        CHECK_OK(shmq_nack(c, &msg, SHMQ_NACK_DEAD_LETTER, 0));
    }
    REQUIRE_OK(shmq_group_create(q, "slow", SHMQ_START_LATEST, 0));
    for (int i = 0; i < 8; i++) {
        CHECK_OK(shmq_publish(p, (const uint8_t *)"x", 1, NULL));
    }
    for (int i = 0; i < 8; i++) {
        shmq_message msg;
        CHECK_OK(shmq_receive(c, MS(5000), &msg));
        CHECK_OK(shmq_ack(c, &msg));
    }
    CHECK(shmq_publish_timeout(p, (const uint8_t *)"y", 1, MS(20), NULL) == SHMQ_TIMEOUT);
    LAST_ERROR_HAS("group \"slow\" holds the ring");
    /* A consumer that must not create its group: a typo is refused. */
    shmq_consumer *typo = NULL;
    shmq_consumer_options strict = shmq_consumer_options_default();
    strict.create = SHMQ_GROUP_MUST_EXIST;
    CHECK_STATUS(shmq_consumer_new(q, "wrok", &strict, &typo), SHMQ_NOT_FOUND);
    LAST_ERROR_HAS("group \"wrok\"");
    CHECK(typo == NULL);
    uint64_t n = 99;
    CHECK(shmq_dlq_redrive_timeout(q, NULL, MS(20), &n) == SHMQ_TIMEOUT);
    CHECK(n == 1);
    LAST_ERROR_HAS("1 keyed one(s) stayed in the dead-letter queue");
    LAST_ERROR_HAS("group \"slow\" holds the ring");
    uint64_t len = 0;
    CHECK_OK(shmq_dlq_len(q, &len));
    CHECK(len == 1);
    CHECK_OK(shmq_group_delete(q, "slow"));
    CHECK_OK(shmq_dlq_redrive_timeout(q, NULL, MS(5000), &n));
    CHECK(n == 1);
    shmq_consumer_free(&c);
    shmq_producer_free(&p);
    shmq_queue_close(&q);
    CHECK_OK(shmq_queue_remove("env-room", &o));
}

/* Competing ack=manual consumers' view from C: shmq_group_info counts the
 * busy keys and says how long the oldest unfinished message's key is;
 * shmq_group_oldest_unacked_key reads it. */
static void test_group_stats(void) {
    shmq_options o = test_options(64, 256);
    shmq_queue *q = NULL;
    shmq_producer *p = NULL;
    shmq_consumer *c[4] = {NULL, NULL, NULL, NULL};
    REQUIRE_OK(shmq_queue_create("env-stats", &o, &q));
    REQUIRE_OK(shmq_group_create(q, "g", SHMQ_START_EARLIEST, 0));
    REQUIRE_OK(shmq_producer_new(q, &p));
    for (uint64_t i = 0; i < 6; i++) {
        CHECK_OK(publish_one(p, i, NULL));
    }
    shmq_consumer_options co = shmq_consumer_options_default();
    co.ack = SHMQ_ACK_MANUAL;
    for (int k = 0; k < 4; k++) {
        REQUIRE_OK(shmq_consumer_new(q, "g", &co, &c[k]));
    }
    shmq_group_info info;
    CHECK_OK(shmq_group_stats(q, "g", &info));
    CHECK(info.busy_lanes == 0);
    CHECK(info.oldest_unacked_key_len == strlen("customer-0"));

    /* Three competing consumers lease one message of each key: three keys
     * busy, and a fourth consumer gets nothing (seqs 3..5 wait behind
     * their keys' first messages). */
    shmq_message held[3], more;
    for (uint64_t i = 0; i < 3; i++) {
        CHECK_OK(shmq_receive(c[i], MS(5000), &held[i]));
        CHECK(held[i].seq == i);
    }
    CHECK(shmq_receive(c[3], 0, &more) == SHMQ_TIMEOUT);
    CHECK_OK(shmq_group_stats(q, "g", &info));
    CHECK(info.busy_lanes == 3);
    CHECK(info.in_flight == 3);
    CHECK(info.oldest_unacked_key_len == strlen("customer-0"));
    char key[64];
    size_t key_len = 0;
    CHECK_OK(shmq_group_oldest_unacked_key(q, "g", (uint8_t *)key, sizeof key, &key_len));
    CHECK(equals(key, key_len, "customer-0"));
    CHECK_OK(shmq_group_oldest_unacked_key(q, "g", (uint8_t *)key, 3, &key_len));
    CHECK(key_len == strlen("customer-0") && memcmp(key, "cus", 3) == 0);

    /* Seq 0 acked: the oldest unfinished is seq 1, of customer-1; the
     * lane of customer-0 stays busy, seq 3 is unfinished in it. */
    CHECK_OK(shmq_ack(c[0], &held[0]));
    CHECK_OK(shmq_group_oldest_unacked_key(q, "g", (uint8_t *)key, sizeof key, &key_len));
    CHECK(equals(key, key_len, "customer-1"));
    CHECK_OK(shmq_group_stats(q, "g", &info));
    CHECK(info.busy_lanes == 3);
    CHECK_OK(shmq_ack(c[1], &held[1]));
    CHECK_OK(shmq_ack(c[2], &held[2]));
    for (uint64_t i = 3; i < 6; i++) {
        CHECK_OK(shmq_receive(c[3], MS(5000), &more));
        CHECK(more.seq == i);
        CHECK_OK(shmq_ack(c[3], &more));
    }
    /* All finished: nothing busy, no oldest key. */
    CHECK_OK(shmq_group_stats(q, "g", &info));
    CHECK(info.busy_lanes == 0);
    CHECK(info.oldest_unacked_key_len == 0);
    CHECK_OK(shmq_group_oldest_unacked_key(q, "g", (uint8_t *)key, sizeof key, &key_len));
    CHECK(key_len == 0);
    CHECK(shmq_group_oldest_unacked_key(q, "nope", (uint8_t *)key, sizeof key, &key_len) ==
          SHMQ_NOT_FOUND);
    CHECK(shmq_group_oldest_unacked_key(q, "g", (uint8_t *)key, sizeof key, NULL) ==
          SHMQ_NULL_ARGUMENT);

    for (int k = 0; k < 4; k++) {
        shmq_consumer_free(&c[k]);
    }
    shmq_producer_free(&p);
    shmq_queue_close(&q);
    CHECK_OK(shmq_queue_remove("env-stats", &o));
}

int main(void) {
    make_test_dir();
    RUN(test_round_trip);
    RUN(test_batch);
    RUN(test_errors);
    RUN(test_spill_and_redrive);
    RUN(test_redrive_without_room);
    RUN(test_group_stats);
    return finish();
}
