/* Deliveries from C: ack=manual with competing consumers, nack (requeue,
 * requeue after a delay, dead-letter), attempts, leases (expired and
 * extended), the dead-letter queue (list, payload, redrive, purge,
 * max_deliveries, full), keyed (idempotent) publishing, the new counters,
 * expiry, scheduled delivery, and the error paths of all of these. */
#define _POSIX_C_SOURCE 200809L

#include "check.h"

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void publish_str(shmq_producer *p, const char *s, uint64_t *seq) {
    REQUIRE_OK(shmq_publish(p, (const uint8_t *)s, strlen(s), seq));
}

static shmq_consumer *manual_consumer(shmq_queue *q, const char *group) {
    shmq_consumer_options co = shmq_consumer_options_default();
    co.ack = SHMQ_ACK_MANUAL;
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_consumer_new(q, group, &co, &c));
    return c;
}

static int msg_is(const shmq_message *m, const char *s) {
    return m->len == strlen(s) && memcmp(m->data, s, m->len) == 0;
}

static int find_group(shmq_queue *q, const char *group, shmq_group_info *out) {
    return shmq_group_stats(q, group, out) == SHMQ_OK;
}

static void test_competing_consumers(void) {
    shmq_options o = test_options(64, 128);
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("competing", &o, &q));
    shmq_consumer *c1 = manual_consumer(q, "work");
    shmq_consumer *c2 = manual_consumer(q, "work"); /* no SHMQ_BUSY: manual */
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    enum { N = 10 };
    for (int i = 0; i < N; i++) {
        char text[16];
        snprintf(text, sizeof text, "job-%d", i);
        publish_str(p, text, NULL);
    }

    /* c1 holds a message while c2 takes the next: leases, not a cursor. */
    int seen[N] = {0};
    int got1 = 0, got2 = 0;
    for (int i = 0; i < N; i += 2) {
        shmq_message m1, m2;
        CHECK_OK(shmq_receive(c1, MS(1000), &m1));
        CHECK_OK(shmq_receive(c2, MS(1000), &m2));
        CHECK(m1.seq != m2.seq);
        CHECK(m1.attempt == 1 && m2.attempt == 1);
        if (m1.seq < N) {
            seen[m1.seq]++;
            got1++;
        }
        if (m2.seq < N) {
            seen[m2.seq]++;
            got2++;
        }
        char want[16];
        snprintf(want, sizeof want, "job-%d", (int)m2.seq);
        CHECK(msg_is(&m2, want));
        /* Acked out of order: c2 first. */
        CHECK_OK(shmq_ack(c2, &m2));
        CHECK_OK(shmq_ack(c1, &m1));
        /* Acked twice: refused, not guessed at. */
        CHECK_STATUS(shmq_ack(c1, &m1), SHMQ_INVALID_ARGUMENT);
    }
    for (int i = 0; i < N; i++) {
        CHECK(seen[i] == 1);
    }
    CHECK(got1 == N / 2 && got2 == N / 2);
    shmq_message m;
    CHECK_STATUS(shmq_receive(c1, 0, &m), SHMQ_TIMEOUT);
    CHECK_STATUS(shmq_receive(c2, 0, &m), SHMQ_TIMEOUT);

    shmq_group_info g;
    REQUIRE(find_group(q, "work", &g));
    CHECK(g.acked == N);
    CHECK(g.delivered == N);
    CHECK(g.redelivered == 0);
    CHECK(g.in_flight == 0);
    CHECK(g.consumers == 2);
    CHECK(g.committed == N);
    CHECK(g.lag == 0);

    shmq_producer_free(&p);
    shmq_consumer_free(&c1);
    shmq_consumer_free(&c2);
    shmq_queue_close(&q);
}

static void test_nack_requeue(void) {
    shmq_options o = test_options(16, 64);
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("nack-requeue", &o, &q));
    shmq_consumer *c = manual_consumer(q, "work");
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    uint64_t seq = 99;
    publish_str(p, "again", &seq);
    CHECK(seq == 0);

    shmq_message m;
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(m.seq == 0 && m.attempt == 1 && msg_is(&m, "again"));
    CHECK_OK(shmq_nack(c, &m, SHMQ_NACK_REQUEUE, 0));
    /* The nack ended the delivery. */
    CHECK_STATUS(shmq_ack(c, &m), SHMQ_INVALID_ARGUMENT);

    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(m.seq == 0 && m.attempt == 2 && msg_is(&m, "again"));

    /* Released without ack by the next receive: given back (attempt 3). */
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(m.seq == 0 && m.attempt == 3 && msg_is(&m, "again"));

    /* Requeue after a delay: not before it. */
    uint64_t t0 = now_ns();
    CHECK_OK(shmq_nack(c, &m, SHMQ_NACK_REQUEUE_AFTER, MS(200)));
    CHECK_STATUS(shmq_receive(c, 0, &m), SHMQ_TIMEOUT);
    CHECK_OK(shmq_receive(c, MS(3000), &m));
    CHECK(now_ns() - t0 >= MS(190));
    CHECK(m.seq == 0 && m.attempt == 4);
    CHECK_OK(shmq_ack(c, &m));
    CHECK_STATUS(shmq_receive(c, 0, &m), SHMQ_TIMEOUT);

    shmq_group_info g;
    REQUIRE(find_group(q, "work", &g));
    CHECK(g.acked == 1);
    CHECK(g.nacked == 2);
    CHECK(g.redelivered == 3);
    CHECK(g.in_flight == 0);

    /* Freeing a consumer with a delivery pending gives it back too. */
    publish_str(p, "orphan", &seq);
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(m.seq == seq && m.attempt == 1);
    shmq_consumer_free(&c);
    c = manual_consumer(q, "work");
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(m.seq == seq && m.attempt == 2 && msg_is(&m, "orphan"));
    CHECK_OK(shmq_ack_all(c));
    CHECK_STATUS(shmq_receive(c, 0, &m), SHMQ_TIMEOUT);

    shmq_producer_free(&p);
    shmq_consumer_free(&c);
    shmq_queue_close(&q);
}

static void test_dead_letters(void) {
    shmq_options o = test_options(16, 64);
    o.max_deliveries = 2;
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("dead-letters", &o, &q));
    shmq_consumer *c = manual_consumer(q, "work");
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    shmq_meta meta = {.type_id = 9, .correlation_id = 77};
    uint64_t poison = 0;
    CHECK_OK(shmq_publish_with(p, (const uint8_t *)"poison", 6, &meta, &poison));

    shmq_message m;
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(m.seq == poison && m.type_id == 9);
    CHECK_OK(shmq_nack(c, &m, SHMQ_NACK_DEAD_LETTER, 0));
    CHECK_STATUS(shmq_receive(c, 0, &m), SHMQ_TIMEOUT);

    uint64_t n = 99;
    CHECK_OK(shmq_dlq_len(q, &n));
    CHECK(n == 1);
    shmq_queue_stats st;
    CHECK_OK(shmq_stats(q, &st));
    CHECK(st.dlq_depth == 1);
    shmq_group_info g;
    REQUIRE(find_group(q, "work", &g));
    CHECK(g.dead_lettered == 1);

    shmq_dead_letter dl[4];
    size_t count = 99;
    CHECK_OK(shmq_dlq_list(q, dl, 4, &count));
    REQUIRE(count == 1);
    CHECK(dl[0].seq == poison);
    CHECK(strcmp(dl[0].group, "work") == 0);
    CHECK(dl[0].attempts == 1);
    CHECK(dl[0].reason == SHMQ_DLQ_REASON_NACKED);
    CHECK(dl[0].type_id == 9 && dl[0].correlation_id == 77);
    CHECK(dl[0].len == 6);
    CHECK(!dl[0].redriven);
    CHECK(dl[0].timestamp_ns > 0 && dl[0].dead_lettered_ns >= dl[0].first_delivery_ns);
    CHECK(dl[0].last_delivery_ns >= dl[0].first_delivery_ns);
    /* Capacity 0 counts. */
    count = 0;
    CHECK_OK(shmq_dlq_list(q, NULL, 0, &count));
    CHECK(count == 1);

    /* The payload: length first, then too small, then whole. */
    size_t len = 0;
    CHECK_OK(shmq_dlq_payload(q, poison, NULL, NULL, 0, &len));
    CHECK(len == 6);
    char buf[16];
    memset(buf, 'x', sizeof buf);
    CHECK_OK(shmq_dlq_payload(q, poison, "work", (uint8_t *)buf, 3, &len));
    CHECK(len == 6 && memcmp(buf, "poi", 3) == 0 && buf[3] == 'x');
    CHECK_OK(shmq_dlq_payload(q, poison, "work", (uint8_t *)buf, sizeof buf, &len));
    CHECK(len == 6 && memcmp(buf, "poison", 6) == 0);
    len = 42;
    CHECK_STATUS(shmq_dlq_payload(q, poison, "other", (uint8_t *)buf, sizeof buf, &len),
                 SHMQ_NOT_FOUND);
    CHECK_STATUS(shmq_dlq_payload(q, poison + 100, NULL, (uint8_t *)buf, sizeof buf, &len),
                 SHMQ_NOT_FOUND);
    CHECK(len == 42);

    /* Redrive a seq that is not there: not found; then it: back to "work". */
    uint64_t none = poison + 100, redriven = 99;
    CHECK_STATUS(shmq_dlq_redrive(q, &none, &redriven), SHMQ_NOT_FOUND);
    CHECK(redriven == 99);
    CHECK(dl[0].redrives == 0);
    CHECK_OK(shmq_dlq_redrive(q, &poison, &redriven));
    CHECK(redriven == 1);
    CHECK_OK(shmq_dlq_len(q, &n));
    CHECK(n == 0);
    /* Listed while redriven: its history stays, and the redrive counts. */
    count = 99;
    CHECK_OK(shmq_dlq_list(q, dl, 4, &count));
    REQUIRE(count == 1);
    CHECK(dl[0].redriven && dl[0].redrives == 1);
    CHECK(dl[0].attempts == 1 && dl[0].reason == SHMQ_DLQ_REASON_NACKED);
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(m.seq == poison && msg_is(&m, "poison") && m.type_id == 9);
    CHECK_OK(shmq_ack(c, &m));
    count = 99;
    CHECK_OK(shmq_dlq_list(q, dl, 4, &count));
    CHECK(count == 0);

    /* max_deliveries = 2: the third delivery goes to the DLQ instead. */
    uint64_t twice = 0;
    publish_str(p, "twice", &twice);
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(m.seq == twice && m.attempt == 1);
    CHECK_OK(shmq_nack(c, &m, SHMQ_NACK_REQUEUE, 0));
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(m.seq == twice && m.attempt == 2);
    CHECK_OK(shmq_nack(c, &m, SHMQ_NACK_REQUEUE, 0));
    CHECK_STATUS(shmq_receive(c, MS(300), &m), SHMQ_TIMEOUT);
    CHECK_OK(shmq_dlq_list(q, dl, 4, &count));
    REQUIRE(count == 1);
    CHECK(dl[0].seq == twice);
    CHECK(dl[0].reason == SHMQ_DLQ_REASON_MAX_DELIVERIES);
    CHECK(dl[0].attempts == 2);

    /* Purge (count optional). */
    uint64_t purged = 99;
    CHECK_OK(shmq_dlq_purge(q, &purged));
    CHECK(purged == 1);
    CHECK_OK(shmq_dlq_len(q, &n));
    CHECK(n == 0);
    CHECK_OK(shmq_dlq_purge(q, NULL));
    CHECK_OK(shmq_dlq_redrive(q, NULL, NULL));

    shmq_producer_free(&p);
    shmq_consumer_free(&c);
    shmq_queue_close(&q);
}

static void test_leases(void) {
    shmq_options o = test_options(16, 64);
    o.lease_ms = 50;
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("leases", &o, &q));
    shmq_consumer *c1 = manual_consumer(q, "work");
    shmq_consumer *c2 = manual_consumer(q, "work");
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));

    /* Held longer than the lease: c2 gets it, c1's ack is refused. */
    uint64_t seq = 0;
    publish_str(p, "slow", &seq);
    shmq_message m1, m2;
    CHECK_OK(shmq_receive(c1, MS(1000), &m1));
    CHECK(m1.seq == seq && m1.attempt == 1);
    sleep_ms(120);
    CHECK_OK(shmq_receive(c2, MS(3000), &m2));
    CHECK(m2.seq == seq && m2.attempt == 2 && msg_is(&m2, "slow"));
    CHECK_STATUS(shmq_ack(c1, &m1), SHMQ_LEASE_EXPIRED);
    CHECK(strstr(shmq_last_error(), "lease") != NULL);
    /* The failed ack ended c1's delivery. */
    CHECK_STATUS(shmq_ack(c1, &m1), SHMQ_INVALID_ARGUMENT);
    CHECK_OK(shmq_ack(c2, &m2));

    /* Extended: nobody else gets it, and the ack succeeds. */
    publish_str(p, "extended", &seq);
    CHECK_OK(shmq_receive(c1, MS(1000), &m1));
    CHECK(m1.seq == seq);
    CHECK_OK(shmq_extend_lease(c1, &m1, MS(5000)));
    sleep_ms(150);
    CHECK_STATUS(shmq_receive(c2, MS(100), &m2), SHMQ_TIMEOUT);
    CHECK(msg_is(&m1, "extended")); /* still current */
    CHECK_OK(shmq_ack(c1, &m1));

    /* Extending a lease already taken away. */
    publish_str(p, "late", &seq);
    CHECK_OK(shmq_receive(c1, MS(1000), &m1));
    sleep_ms(120);
    CHECK_OK(shmq_receive(c2, MS(3000), &m2));
    CHECK(m2.seq == seq);
    CHECK_STATUS(shmq_extend_lease(c1, &m1, MS(5000)), SHMQ_LEASE_EXPIRED);
    CHECK_STATUS(shmq_ack(c1, &m1), SHMQ_LEASE_EXPIRED);
    CHECK_OK(shmq_ack(c2, &m2));

    shmq_group_info g;
    REQUIRE(find_group(q, "work", &g));
    CHECK(g.expired >= 2);
    CHECK(g.acked == 3);
    CHECK(g.in_flight == 0);

    shmq_producer_free(&p);
    shmq_consumer_free(&c1);
    shmq_consumer_free(&c2);
    shmq_queue_close(&q);
}

static void test_keyed_publish(void) {
    shmq_options o = test_options(16, 64);
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("keyed", &o, &q));
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    const char *key = "order-42";
    shmq_meta meta = {.type_id = 1, .key = (const uint8_t *)key, .key_len = strlen(key)};
    uint64_t first = 99, again = 98, other = 97;
    CHECK_OK(shmq_publish_with(p, (const uint8_t *)"charge", 6, &meta, &first));
    CHECK_OK(shmq_publish_with(p, (const uint8_t *)"charge", 6, &meta, &again));
    CHECK(first == again);
    CHECK_OK(shmq_publish_with_timeout(p, (const uint8_t *)"charge", 6, &meta, 0, &again));
    CHECK(first == again);
    meta.key = (const uint8_t *)"order-43";
    CHECK_OK(shmq_publish_with(p, (const uint8_t *)"charge", 6, &meta, &other));
    CHECK(other == first + 1);
    /* No key: never deduplicated. */
    shmq_meta plain = {.type_id = 1};
    CHECK_OK(shmq_publish_with(p, (const uint8_t *)"charge", 6, &plain, &other));
    CHECK_OK(shmq_publish_with(p, (const uint8_t *)"charge", 6, &plain, &other));

    shmq_queue_stats st;
    CHECK_OK(shmq_stats(q, &st));
    CHECK(st.published == 4);
    CHECK(st.deduplicated == 2);

    /* The dedup options are taken. */
    shmq_options d = shmq_options_default();
    CHECK(d.dedup_window == 1024);
    CHECK(d.dedup_ttl_ms == 300000);
    /* 0: 1024 entries, or enough for two of the largest messages. */
    CHECK(d.dlq_slots == 0);

    shmq_producer_free(&p);
    shmq_queue_close(&q);
}

/* Expiry: a message's ttl_ms, the queue's message_ttl_ms, both
 * on_expiry policies, the reason and the group's count; a bad policy. */
static void test_expiry(void) {
    shmq_options o = test_options(64, 128);
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("expiry", &o, &q));
    CHECK_OK(shmq_group_create(q, "g", SHMQ_START_EARLIEST, 0));
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    shmq_meta brief = {0};
    brief.ttl_ms = 1;
    brief.type_id = 5;
    REQUIRE_OK(shmq_publish_with(p, (const uint8_t *)"stale", 5, &brief, NULL));
    sleep_ms(20);
    publish_str(p, "fresh", NULL);
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    shmq_message m;
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(msg_is(&m, "fresh"));
    shmq_dead_letter dl[2];
    size_t count = 0;
    CHECK_OK(shmq_dlq_list(q, dl, 2, &count));
    REQUIRE(count == 1);
    CHECK(dl[0].reason == SHMQ_DLQ_REASON_EXPIRED && dl[0].type_id == 5);
    shmq_group_info info;
    CHECK(find_group(q, "g", &info));
    CHECK(info.messages_expired == 1 && info.dead_lettered == 1);
    shmq_consumer_free(&c);
    shmq_producer_free(&p);
    shmq_queue_close(&q);

    /* The queue's own ttl, discarding. */
    o.message_ttl_ms = 1;
    o.on_expiry = SHMQ_ON_EXPIRY_DISCARD;
    REQUIRE_OK(shmq_queue_create("expiry-discard", &o, &q));
    CHECK_OK(shmq_group_create(q, "g", SHMQ_START_EARLIEST, 0));
    REQUIRE_OK(shmq_producer_new(q, &p));
    publish_str(p, "dropped", NULL);
    sleep_ms(20);
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    CHECK_STATUS(shmq_receive(c, MS(20), &m), SHMQ_TIMEOUT);
    CHECK_OK(shmq_dlq_list(q, NULL, 0, &count));
    CHECK(count == 0);
    CHECK(find_group(q, "g", &info));
    CHECK(info.messages_expired == 1 && info.dead_lettered == 0);
    shmq_consumer_free(&c);
    shmq_producer_free(&p);
    shmq_queue_close(&q);

    o.on_expiry = 7;
    CHECK_STATUS(shmq_queue_create("expiry-bad", &o, &q), SHMQ_INVALID_OPTION);
    CHECK(strstr(shmq_last_error(), "on_expiry must be") != NULL);
}

/* Milliseconds since the Unix epoch (deliver_at_ms's clock). */
static uint64_t unix_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Scheduled delivery: a message's delay_ms (not received before its time,
 * received after) and deliver_at_ms, the listing and its getters, cancel by
 * schedule id and by idempotency key, the stats; the queue's
 * delivery_delay_ms; reservations refuse a delay. Every queue keeps its
 * schedule in the test directory (spill_dir). */
static void test_schedule(void) {
    char store[256];
    snprintf(store, sizeof store, "%s/schedule-store", test_dir);
    shmq_options o = test_options(64, 128);
    o.spill_dir = store;
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("schedule", &o, &q));
    CHECK_OK(shmq_group_create(q, "g", SHMQ_START_EARLIEST, 0));
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    uint64_t t0 = now_ns();
    shmq_meta later = {0};
    later.delay_ms = 500;
    later.type_id = 4;
    uint64_t later_id = 0;
    REQUIRE_OK(shmq_publish_with(p, (const uint8_t *)"later", 5, &later, &later_id));
    shmq_header h = {"h", 1, (const uint8_t *)"v", 1};
    shmq_meta far = {0};
    far.deliver_at_ms = unix_ms() + 3600 * 1000;
    far.ordering_key = (const uint8_t *)"k";
    far.ordering_key_len = 1;
    far.headers = &h;
    far.headers_len = 1;
    uint64_t far_id = 0;
    REQUIRE_OK(shmq_publish_with(p, (const uint8_t *)"far", 3, &far, &far_id));
    shmq_meta keyed = {0};
    keyed.delay_ms = 3600 * 1000;
    keyed.key = (const uint8_t *)"reminder-7";
    keyed.key_len = 10;
    uint64_t keyed_id = 0;
    REQUIRE_OK(shmq_publish_with(p, (const uint8_t *)"remind", 6, &keyed, &keyed_id));
    CHECK(later_id != far_id && far_id != keyed_id);
    publish_str(p, "now", NULL);

    shmq_queue_stats st;
    CHECK_OK(shmq_stats(q, &st));
    CHECK(st.scheduled == 3 && st.scheduled_cancelled == 0 && st.next_due_ns != 0);

    /* Earliest due first; the count even past the capacity. */
    shmq_scheduled_message list[4];
    size_t count = 0;
    CHECK_OK(shmq_queue_scheduled(q, list, 4, &count));
    REQUIRE(count == 3);
    CHECK(list[0].id == later_id && list[0].type_id == 4 && list[0].len == 5 && !list[0].keyed);
    CHECK(list[1].id == far_id && list[1].ordering_key_len == 1 && list[1].headers_len == 1);
    CHECK(list[2].id == keyed_id && list[2].keyed && list[2].ordering_key_len == 0);
    CHECK(list[0].due_ns < list[1].due_ns && list[1].due_ns < list[2].due_ns);
    CHECK(list[1].due_ns / 1000000u == far.deliver_at_ms);
    CHECK(st.next_due_ns == list[0].due_ns);
    shmq_scheduled_message one[1];
    CHECK_OK(shmq_queue_scheduled(q, one, 1, &count));
    CHECK(count == 3 && one[0].id == later_id);
    CHECK_OK(shmq_queue_scheduled(q, NULL, 0, &count));
    CHECK(count == 3);

    /* The payload, ordering key and header of one. */
    char buf[16];
    size_t len = 0;
    CHECK_OK(shmq_queue_scheduled_payload(q, far_id, (uint8_t *)buf, sizeof buf, &len));
    CHECK(len == 3 && memcmp(buf, "far", 3) == 0);
    CHECK_OK(shmq_queue_scheduled_ordering_key(q, far_id, (uint8_t *)buf, sizeof buf, &len));
    CHECK(len == 1 && buf[0] == 'k');
    char name[8], value[8];
    size_t name_len = 0, value_len = 0;
    CHECK_OK(shmq_queue_scheduled_header(q, far_id, 0, (uint8_t *)name, sizeof name, &name_len,
                                         (uint8_t *)value, sizeof value, &value_len));
    CHECK(name_len == 1 && name[0] == 'h' && value_len == 1 && value[0] == 'v');
    CHECK_STATUS(shmq_queue_scheduled_header(q, far_id, 1, NULL, 0, &name_len, NULL, 0,
                                             &value_len),
                 SHMQ_INVALID_ARGUMENT);
    len = 42;
    CHECK_STATUS(shmq_queue_scheduled_payload(q, 999999, NULL, 0, &len), SHMQ_NOT_FOUND);
    CHECK(len == 42);

    /* Not delivered before its time ("now" is), delivered after. */
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    shmq_message m;
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(msg_is(&m, "now"));
    if (now_ns() - t0 < MS(400)) {
        CHECK_STATUS(shmq_receive(c, MS(20), &m), SHMQ_TIMEOUT);
    }
    CHECK_OK(shmq_receive(c, MS(5000), &m));
    CHECK(msg_is(&m, "later") && m.type_id == 4);
    CHECK(now_ns() - t0 >= MS(500));

    /* Cancel by id, then by key; once only. */
    bool cancelled = false;
    CHECK_OK(shmq_queue_cancel_scheduled(q, far_id, &cancelled));
    CHECK(cancelled);
    CHECK_OK(shmq_queue_cancel_scheduled(q, far_id, &cancelled));
    CHECK(!cancelled);
    CHECK_OK(shmq_queue_cancel_scheduled(q, later_id, NULL)); /* delivered: nothing to cancel */
    CHECK_OK(shmq_queue_cancel_scheduled_key(q, (const uint8_t *)"reminder-7", 10, &cancelled));
    CHECK(cancelled);
    CHECK_OK(shmq_queue_cancel_scheduled_key(q, (const uint8_t *)"reminder-7", 10, &cancelled));
    CHECK(!cancelled);
    CHECK_OK(shmq_stats(q, &st));
    CHECK(st.scheduled == 0 && st.scheduled_cancelled == 2 && st.next_due_ns == 0);
    CHECK_OK(shmq_queue_scheduled(q, list, 4, &count));
    CHECK(count == 0);
    CHECK_STATUS(shmq_receive(c, MS(20), &m), SHMQ_TIMEOUT);

    /* A time already past publishes at once, with a seq. */
    shmq_meta past = {0};
    past.deliver_at_ms = 1;
    uint64_t seq = 0;
    REQUIRE_OK(shmq_publish_with(p, (const uint8_t *)"past", 4, &past, &seq));
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(msg_is(&m, "past") && m.seq == seq);

    /* Reservations take no delay; NULLs are refused. */
    shmq_reservation *r = NULL;
    uint8_t *data = NULL;
    REQUIRE_OK(shmq_reserve(p, 4, &data, &r));
    CHECK_STATUS(shmq_reservation_set_meta(r, &later), SHMQ_INVALID_ARGUMENT);
    CHECK(strstr(shmq_last_error(), "delay_ms") != NULL);
    CHECK_OK(shmq_abort(r));
    CHECK_STATUS(shmq_queue_cancel_scheduled(NULL, 1, &cancelled), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_queue_cancel_scheduled_key(q, NULL, 3, &cancelled), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_queue_scheduled(q, NULL, 2, &count), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_queue_scheduled(q, list, 4, NULL), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_queue_scheduled(q, list, SIZE_MAX, &count), SHMQ_INVALID_ARGUMENT);
    shmq_consumer_free(&c);
    shmq_producer_free(&p);
    shmq_queue_close(&q);
    CHECK_OK(shmq_queue_remove("schedule", &o));
    CHECK(!exists(store));

    /* The queue's own delay: every publish, batches too; no reservation. */
    o.delivery_delay_ms = 50;
    REQUIRE_OK(shmq_queue_create("schedule-default", &o, &q));
    CHECK_OK(shmq_group_create(q, "g", SHMQ_START_EARLIEST, 0));
    REQUIRE_OK(shmq_producer_new(q, &p));
    t0 = now_ns();
    publish_str(p, "a", NULL);
    shmq_buf batch[2] = {{(const uint8_t *)"b", 1}, {(const uint8_t *)"c", 1}};
    CHECK_OK(shmq_publish_batch(p, batch, 2, NULL));
    CHECK_OK(shmq_stats(q, &st));
    CHECK(st.scheduled == 3);
    CHECK_STATUS(shmq_reserve(p, 4, &data, &r), SHMQ_INVALID_OPTION);
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    const char *want[3] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(shmq_receive(c, MS(5000), &m));
        CHECK(msg_is(&m, want[i]));
    }
    CHECK(now_ns() - t0 >= MS(50));
    shmq_consumer_free(&c);
    shmq_producer_free(&p);
    shmq_queue_close(&q);
    CHECK_OK(shmq_queue_remove("schedule-default", &o));

    /* More than ten years: refused, naming the option. */
    o.delivery_delay_ms = (uint64_t)3651 * 86400 * 1000;
    check_create_refused("schedule-bad", o, "delivery_delay", NULL);
}

static void test_errors(void) {
    shmq_options o = test_options(16, 64);
    o.dlq_slots = 1;
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("delivery-errors", &o, &q));
    shmq_consumer *c = manual_consumer(q, "work");
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    publish_str(p, "one", NULL);
    publish_str(p, "two", NULL);

    shmq_message m, other;
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    other = m;
    other.seq += 1000;

    /* NULLs and mismatches change nothing: the delivery stays current. */
    CHECK_STATUS(shmq_nack(NULL, &m, SHMQ_NACK_REQUEUE, 0), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_nack(c, NULL, SHMQ_NACK_REQUEUE, 0), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_nack(c, &m, 7, 0), SHMQ_INVALID_OPTION);
    CHECK(strstr(shmq_last_error(), "SHMQ_NACK_REQUEUE") != NULL);
    CHECK_STATUS(shmq_nack(c, &other, SHMQ_NACK_REQUEUE, 0), SHMQ_INVALID_ARGUMENT);
    CHECK_STATUS(shmq_extend_lease(NULL, &m, 1), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_extend_lease(c, NULL, 1), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_extend_lease(c, &other, 1), SHMQ_INVALID_ARGUMENT);
    CHECK_STATUS(shmq_ack(c, &other), SHMQ_INVALID_ARGUMENT);
    CHECK(msg_is(&m, "one"));

    /* dlq_slots = 1: the first dead letter fits, the second does not. */
    CHECK_OK(shmq_nack(c, &m, SHMQ_NACK_DEAD_LETTER, 0));
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    CHECK(msg_is(&m, "two"));
    CHECK_STATUS(shmq_nack(c, &m, SHMQ_NACK_DEAD_LETTER, 0), SHMQ_DLQ_FULL);
    CHECK(strstr(shmq_last_error(), "dead-letter") != NULL);
    CHECK(strcmp(shmq_status_str(SHMQ_DLQ_FULL), "dead-letter queue is full") == 0);
    CHECK_STATUS(shmq_ack(c, &m), SHMQ_INVALID_ARGUMENT); /* ended */
    uint64_t n = 0;
    CHECK_OK(shmq_dlq_len(q, &n));
    CHECK(n == 1);
    uint64_t purged = 0;
    CHECK_OK(shmq_dlq_purge(q, &purged));
    CHECK(purged == 1);

    /* Batches are for ack auto. */
    shmq_message batch[4];
    size_t count = 77;
    CHECK_STATUS(shmq_receive_batch(c, batch, 4, 0, &count), SHMQ_INVALID_OPTION);
    CHECK(count == 77);

    /* nack on an ack auto consumer: nothing to give back. */
    shmq_consumer *a = NULL;
    REQUIRE_OK(shmq_consumer_new(q, "auto", NULL, &a));
    CHECK_OK(shmq_receive(a, MS(1000), &m));
    CHECK_STATUS(shmq_nack(a, &m, SHMQ_NACK_REQUEUE, 0), SHMQ_INVALID_OPTION);
    CHECK_OK(shmq_receive(a, MS(1000), &m));
    CHECK_OK(shmq_extend_lease(a, &m, MS(1))); /* a no-op */
    CHECK_OK(shmq_ack(a, &m));
    shmq_consumer_free(&a);

    /* A bad ack mode. */
    shmq_consumer_options co = shmq_consumer_options_default();
    co.ack = 5;
    shmq_consumer *bad = NULL;
    CHECK_STATUS(shmq_consumer_new(q, "bad", &co, &bad), SHMQ_INVALID_OPTION);
    CHECK(bad == NULL);

    /* Keys: NULL with a length; reservations refuse keys. */
    shmq_meta meta = {.key = NULL, .key_len = 3};
    uint64_t seq = 55;
    CHECK_STATUS(shmq_publish_with(p, (const uint8_t *)"k", 1, &meta, &seq), SHMQ_NULL_ARGUMENT);
    CHECK(seq == 55);
    shmq_reservation *r = NULL;
    uint8_t *buf = NULL;
    REQUIRE_OK(shmq_reserve(p, 4, &buf, &r));
    meta.key = (const uint8_t *)"abc";
    CHECK_STATUS(shmq_reservation_set_meta(r, &meta), SHMQ_INVALID_ARGUMENT);
    CHECK_OK(shmq_abort(r));

    /* DLQ functions: NULLs, out-parameters untouched. */
    uint64_t u = 42;
    size_t z = 42;
    shmq_dead_letter dl[2];
    CHECK_STATUS(shmq_dlq_len(NULL, &u), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_dlq_len(q, NULL), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_dlq_list(NULL, dl, 2, &z), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_dlq_list(q, NULL, 2, &z), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_dlq_list(q, dl, 2, NULL), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_dlq_list(q, dl, SIZE_MAX, &z), SHMQ_INVALID_ARGUMENT);
    CHECK_STATUS(shmq_dlq_payload(NULL, 0, NULL, NULL, 0, &z), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_dlq_payload(q, 0, NULL, NULL, 4, &z), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_dlq_payload(q, 0, NULL, NULL, 0, NULL), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_dlq_redrive(NULL, NULL, &u), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_dlq_purge(NULL, &u), SHMQ_NULL_ARGUMENT);
    CHECK(u == 42 && z == 42);

    shmq_producer_free(&p);
    shmq_consumer_free(&c);
    shmq_queue_close(&q);
}

int main(void) {
    make_test_dir();
    RUN(test_competing_consumers);
    RUN(test_nack_requeue);
    RUN(test_dead_letters);
    RUN(test_leases);
    RUN(test_keyed_publish);
    RUN(test_expiry);
    RUN(test_schedule);
    RUN(test_errors);
    return finish();
}
