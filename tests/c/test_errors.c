/* Every error path of the C API: NULL arguments, closed handles, too-large
 * payloads, corrupt queue files, bad names and options, misuse of
 * reservations and deliveries. Each returns its code, leaves out-parameters
 * untouched, and says what happened in shmq_last_error(). */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>

#include "check.h"

#define LAST_ERROR_HAS(text) CHECK(strstr(shmq_last_error(), (text)) != NULL)

static void test_null_arguments(void) {
    shmq_options o = test_options(16, 64);
    shmq_queue *q = (shmq_queue *)0x1; /* must stay untouched */
    CHECK_STATUS(shmq_queue_create(NULL, &o, &q), SHMQ_NULL_ARGUMENT);
    LAST_ERROR_HAS("`name`");
    CHECK(q == (shmq_queue *)0x1);
    CHECK_STATUS(shmq_queue_create("nulls", &o, NULL), SHMQ_NULL_ARGUMENT);
    LAST_ERROR_HAS("queue_out");
    CHECK_STATUS(shmq_queue_open(NULL, &o, &q), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_queue_open_or_create("nulls", &o, NULL), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_queue_remove(NULL, &o), SHMQ_NULL_ARGUMENT);
    q = NULL;
    REQUIRE_OK(shmq_queue_create("nulls", &o, &q));

    shmq_producer *p = NULL;
    shmq_consumer *c = NULL;
    CHECK_STATUS(shmq_producer_new(NULL, &p), SHMQ_NULL_ARGUMENT);
    LAST_ERROR_HAS("`queue`");
    CHECK_STATUS(shmq_producer_new(q, NULL), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_consumer_new(NULL, "g", NULL, &c), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_consumer_new(q, NULL, NULL, &c), SHMQ_NULL_ARGUMENT);
    LAST_ERROR_HAS("`group`");
    CHECK_STATUS(shmq_consumer_new(q, "g", NULL, NULL), SHMQ_NULL_ARGUMENT);
    CHECK(p == NULL && c == NULL);
    REQUIRE_OK(shmq_producer_new(q, &p));
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));

    uint64_t seq = 77;
    CHECK_STATUS(shmq_publish(NULL, (const uint8_t *)"x", 1, &seq), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_publish(p, NULL, 5, &seq), SHMQ_NULL_ARGUMENT);
    LAST_ERROR_HAS("`data`");
    /* Only a handle argument is said to be NULL once closed or freed. */
    CHECK(strstr(shmq_last_error(), "closed or freed") == NULL);
    CHECK_STATUS(shmq_publish(NULL, (const uint8_t *)"x", 1, &seq), SHMQ_NULL_ARGUMENT);
    LAST_ERROR_HAS("`producer` is NULL (a handle is NULL once closed or freed)");
    CHECK_STATUS(shmq_publish_with(p, (const uint8_t *)"x", 1, NULL, &seq), SHMQ_NULL_ARGUMENT);
    LAST_ERROR_HAS("`meta`");
    CHECK_STATUS(shmq_publish_timeout(NULL, (const uint8_t *)"x", 1, 0, &seq), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_publish_with_timeout(p, NULL, 1, NULL, 0, &seq), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_publish_batch(p, NULL, 3, &seq), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_publish_batch(NULL, NULL, 3, &seq), SHMQ_NULL_ARGUMENT);
    CHECK(seq == 77);

    uint8_t *buf = NULL;
    shmq_reservation *r = NULL;
    CHECK_STATUS(shmq_reserve(NULL, 4, &buf, &r), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_reserve(p, 4, NULL, &r), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_reserve(p, 4, &buf, NULL), SHMQ_NULL_ARGUMENT);
    CHECK(buf == NULL && r == NULL);
    CHECK_STATUS(shmq_commit(NULL, &seq), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_abort(NULL), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_reservation_truncate(NULL, 1), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_reservation_set_meta(NULL, NULL), SHMQ_NULL_ARGUMENT);

    shmq_message m;
    memset(&m, 0xab, sizeof m);
    shmq_message before = m;
    CHECK_STATUS(shmq_receive(NULL, 0, &m), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_receive(c, 0, NULL), SHMQ_NULL_ARGUMENT);
    LAST_ERROR_HAS("msg_out");
    CHECK(memcmp(&m, &before, sizeof m) == 0);
    size_t n = 5;
    CHECK_STATUS(shmq_receive_batch(c, NULL, 4, 0, &n), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_receive_batch(c, &m, 1, 0, NULL), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_receive_batch(NULL, &m, 1, 0, &n), SHMQ_NULL_ARGUMENT);
    CHECK(n == 5);
    CHECK_STATUS(shmq_ack(c, NULL), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_ack(NULL, &m), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_ack_all(NULL), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_consumer_seek(NULL, SHMQ_SEEK_EARLIEST, 0, NULL), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_consumer_position(c, NULL), SHMQ_NULL_ARGUMENT);

    shmq_queue_stats s;
    shmq_group_info g;
    CHECK_STATUS(shmq_stats(NULL, &s), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_stats(q, NULL), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_groups(q, NULL, 2, &n), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_groups(q, &g, 1, NULL), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_groups(NULL, &g, 1, &n), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_group_stats(q, NULL, &g), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_group_stats(q, "g", NULL), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_group_create(q, NULL, SHMQ_START_EARLIEST, 0), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_group_create(NULL, "h", SHMQ_START_EARLIEST, 0), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_group_delete(q, NULL), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_group_seek(q, NULL, SHMQ_SEEK_LATEST, 0, NULL), SHMQ_NULL_ARGUMENT);
    CHECK_STATUS(shmq_queue_flush(NULL), SHMQ_NULL_ARGUMENT);

    /* Closing and freeing NULL is a no-op. */
    shmq_queue_close(NULL);
    shmq_producer_free(NULL);
    shmq_consumer_free(NULL);

    shmq_producer_free(&p);
    shmq_consumer_free(&c);
    shmq_queue_close(&q);
}

/* A closed or freed handle is NULL: every call through it says so. */
static void test_closed_handles(void) {
    shmq_options o = test_options(16, 64);
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("closed", &o, &q));
    shmq_producer *p = NULL;
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    shmq_queue_close(&q);
    CHECK(q == NULL);
    shmq_queue_close(&q); /* twice: a no-op */
    shmq_queue_stats s;
    CHECK_STATUS(shmq_stats(q, &s), SHMQ_NULL_ARGUMENT);
    LAST_ERROR_HAS("closed");
    shmq_producer *p2 = NULL;
    CHECK_STATUS(shmq_producer_new(q, &p2), SHMQ_NULL_ARGUMENT);

    shmq_producer_free(&p);
    CHECK(p == NULL);
    shmq_producer_free(&p);
    CHECK_STATUS(shmq_publish(p, (const uint8_t *)"x", 1, NULL), SHMQ_NULL_ARGUMENT);
    shmq_consumer_free(&c);
    CHECK(c == NULL);
    shmq_consumer_free(&c);
    shmq_message m;
    CHECK_STATUS(shmq_receive(c, 0, &m), SHMQ_NULL_ARGUMENT);
}

static void test_too_large(void) {
    shmq_options o = test_options(16, 64);
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("too-large", &o, &q));
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    uint8_t big[65] = {0};
    uint64_t seq = 5;
    CHECK_STATUS(shmq_publish(p, big, sizeof big, &seq), SHMQ_TOO_LARGE);
    LAST_ERROR_HAS("65 bytes");
    LAST_ERROR_HAS("64");
    CHECK(seq == 5);
    CHECK_OK(shmq_publish(p, big, 64, &seq)); /* exactly slot_size fits */
    uint8_t *buf = NULL;
    shmq_reservation *r = NULL;
    CHECK_STATUS(shmq_reserve(p, 65, &buf, &r), SHMQ_TOO_LARGE);
    CHECK(buf == NULL && r == NULL);
    shmq_buf bufs[3] = {{big, 1}, {big, 65}, {big, 2}};
    CHECK_STATUS(shmq_publish_batch(p, bufs, 3, &seq), SHMQ_TOO_LARGE);
    shmq_queue_stats s;
    CHECK_OK(shmq_stats(q, &s));
    CHECK(s.published == 1); /* nothing of the refused batch */
    /* A length that is not a size is refused before it is read. */
    CHECK_STATUS(shmq_publish(p, big, SIZE_MAX, &seq), SHMQ_INVALID_ARGUMENT);
    shmq_buf holes[2] = {{big, 1}, {NULL, 4}};
    CHECK_STATUS(shmq_publish_batch(p, holes, 2, &seq), SHMQ_INVALID_ARGUMENT);
    LAST_ERROR_HAS("msgs[1]");
    CHECK_STATUS(shmq_publish_batch(p, bufs, 0, &seq), SHMQ_INVALID_ARGUMENT);
    shmq_producer_free(&p);
    shmq_queue_close(&q);
}

static void write_file(const char *name, const void *data, size_t len) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", test_dir, name);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, data, len) == (ssize_t)len);
    close(fd);
}

static void test_corrupt_files(void) {
    shmq_options o = test_options(16, 64);
    shmq_queue *q = NULL;
    /* Garbage. */
    uint8_t garbage[8192];
    for (size_t i = 0; i < sizeof garbage; i++) {
        garbage[i] = (uint8_t)(i * 131 + 7);
    }
    write_file("garbage.shmq", garbage, sizeof garbage);
    CHECK_STATUS(shmq_queue_open("garbage", &o, &q), SHMQ_CORRUPT);
    LAST_ERROR_HAS("garbage.shmq");
    CHECK(q == NULL);
    CHECK_STATUS(shmq_queue_open_or_create("garbage", &o, &q), SHMQ_CORRUPT);
    CHECK(q == NULL);
    /* Empty and truncated. */
    write_file("empty.shmq", "", 0);
    CHECK_STATUS(shmq_queue_open("empty", &o, &q), SHMQ_CORRUPT);
    write_file("short.shmq", "shmq", 4);
    CHECK_STATUS(shmq_queue_open("short", &o, &q), SHMQ_CORRUPT);

    /* A real queue file cut in half. */
    REQUIRE_OK(shmq_queue_create("cut", &o, &q));
    shmq_queue_close(&q);
    char path[256];
    snprintf(path, sizeof path, "%s/cut.shmq", test_dir);
    int fd = open(path, O_RDONLY);
    REQUIRE(fd >= 0);
    off_t size = lseek(fd, 0, SEEK_END);
    static uint8_t head[1 << 16];
    size_t keep = (size_t)size / 2 < sizeof head ? (size_t)size / 2 : sizeof head;
    REQUIRE(pread(fd, head, keep, 0) == (ssize_t)keep);
    close(fd);
    write_file("cut.shmq", head, keep);
    CHECK_STATUS(shmq_queue_open("cut", &o, &q), SHMQ_CORRUPT);
    CHECK(q == NULL);
}

static void test_names_and_options(void) {
    shmq_options o = test_options(16, 64);
    shmq_queue *q = NULL;
    CHECK_STATUS(shmq_queue_create("", &o, &q), SHMQ_INVALID_NAME);
    CHECK_STATUS(shmq_queue_create("a/b", &o, &q), SHMQ_INVALID_NAME);
    LAST_ERROR_HAS("a/b");
    CHECK_STATUS(shmq_queue_create("..", &o, &q), SHMQ_INVALID_NAME);
    CHECK_STATUS(shmq_queue_create("sp ace", &o, &q), SHMQ_INVALID_NAME);
    CHECK_STATUS(shmq_queue_create("\xff\xfe", &o, &q), SHMQ_INVALID_NAME);
    char long_name[202];
    memset(long_name, 'x', 201);
    long_name[201] = '\0';
    CHECK_STATUS(shmq_queue_create(long_name, &o, &q), SHMQ_INVALID_NAME);
    CHECK_STATUS(shmq_queue_open("a/b", &o, &q), SHMQ_INVALID_NAME);
    CHECK_STATUS(shmq_queue_remove("..", &o), SHMQ_INVALID_NAME);
    CHECK(q == NULL);

    shmq_options bad = o;
    bad.slots = 1000; /* not a power of two */
    CHECK_STATUS(shmq_queue_create("bad-slots", &bad, &q), SHMQ_INVALID_OPTION);
    bad = o;
    bad.overflow = 7;
    CHECK_STATUS(shmq_queue_create("bad-overflow", &bad, &q), SHMQ_INVALID_OPTION);
    LAST_ERROR_HAS("overflow");
    bad = o;
    bad.dir = "";
    CHECK_STATUS(shmq_queue_create("bad-dir", &bad, &q), SHMQ_INVALID_OPTION);
    bad = o;
    bad.mode = 0;
    CHECK_STATUS(shmq_queue_create("bad-mode", &bad, &q), SHMQ_INVALID_OPTION);
    bad = o;
    bad.dir = "/nonexistent/shmq/dir";
    CHECK_STATUS(shmq_queue_create("no-dir", &bad, &q), SHMQ_IO);
    CHECK(q == NULL);

    /* Exists, not found. */
    REQUIRE_OK(shmq_queue_create("names", &o, &q));
    shmq_queue *again = NULL;
    CHECK_STATUS(shmq_queue_create("names", &o, &again), SHMQ_EXISTS);
    CHECK(again == NULL);
    CHECK_STATUS(shmq_queue_open("missing", &o, &again), SHMQ_NOT_FOUND);
    CHECK_STATUS(shmq_queue_remove("missing", &o), SHMQ_NOT_FOUND);

    /* Group names, starts, seeks, consumer options. */
    char long_group[50];
    memset(long_group, 'g', 49);
    long_group[49] = '\0';
    CHECK_STATUS(shmq_group_create(q, long_group, SHMQ_START_EARLIEST, 0), SHMQ_INVALID_NAME);
    long_group[48] = '\0'; /* 48 characters: allowed */
    CHECK_OK(shmq_group_create(q, long_group, SHMQ_START_EARLIEST, 0));
    shmq_group_info info;
    CHECK_OK(shmq_group_stats(q, long_group, &info));
    CHECK(strcmp(info.name, long_group) == 0);
    CHECK_STATUS(shmq_group_create(q, long_group, SHMQ_START_EARLIEST, 0), SHMQ_EXISTS);
    CHECK_STATUS(shmq_group_create(q, "g/x", SHMQ_START_EARLIEST, 0), SHMQ_INVALID_NAME);
    CHECK_STATUS(shmq_group_create(q, "h", 9, 0), SHMQ_INVALID_OPTION);
    CHECK_STATUS(shmq_group_seek(q, long_group, 9, 0, NULL), SHMQ_INVALID_OPTION);
    CHECK_STATUS(shmq_group_seek(q, "missing", SHMQ_SEEK_LATEST, 0, NULL), SHMQ_NOT_FOUND);

    shmq_consumer *c = NULL;
    shmq_consumer_options co = shmq_consumer_options_default();
    co.ack = 5;
    CHECK_STATUS(shmq_consumer_new(q, "g", &co, &c), SHMQ_INVALID_OPTION);
    co = shmq_consumer_options_default();
    co.start = 9;
    CHECK_STATUS(shmq_consumer_new(q, "g", &co, &c), SHMQ_INVALID_OPTION);
    CHECK(c == NULL);
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    shmq_consumer *second = NULL;
    CHECK_STATUS(shmq_consumer_new(q, "g", NULL, &second), SHMQ_BUSY);
    CHECK(second == NULL);
    CHECK_STATUS(shmq_consumer_seek(c, 9, 0, NULL), SHMQ_INVALID_OPTION);
    shmq_consumer_free(&c);
    shmq_queue_close(&q);
}

static void test_reservation_misuse(void) {
    shmq_options o = test_options(16, 64);
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("misuse", &o, &q));
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    uint8_t *buf = NULL;
    shmq_reservation *r = NULL;
    REQUIRE_OK(shmq_reserve(p, 8, &buf, &r));
    /* One pending reservation per producer; the producer waits for it. */
    uint8_t *buf2 = NULL;
    shmq_reservation *r2 = NULL;
    CHECK_STATUS(shmq_reserve(p, 8, &buf2, &r2), SHMQ_BUSY);
    CHECK(buf2 == NULL && r2 == NULL);
    CHECK_STATUS(shmq_publish(p, (const uint8_t *)"x", 1, NULL), SHMQ_BUSY);
    LAST_ERROR_HAS("reservation pending");
    shmq_buf one = {(const uint8_t *)"x", 1};
    CHECK_STATUS(shmq_publish_batch(p, &one, 1, NULL), SHMQ_BUSY);
    CHECK_STATUS(shmq_reservation_truncate(r, 9), SHMQ_INVALID_ARGUMENT);
    memcpy(buf, "12345678", 8);
    uint64_t seq = 0;
    CHECK_OK(shmq_commit(r, &seq));
    /* Ended: a second commit or abort is an error, not a use-after-free. */
    CHECK_STATUS(shmq_commit(r, &seq), SHMQ_INVALID_ARGUMENT);
    LAST_ERROR_HAS("no reservation is pending");
    CHECK_STATUS(shmq_abort(r), SHMQ_INVALID_ARGUMENT);
    CHECK_STATUS(shmq_reservation_truncate(r, 1), SHMQ_INVALID_ARGUMENT);
    CHECK_OK(shmq_publish(p, (const uint8_t *)"x", 1, NULL));
    shmq_producer_free(&p);
    shmq_queue_close(&q);
}

static void test_delivery_misuse(void) {
    shmq_options o = test_options(16, 64);
    shmq_queue *q = NULL;
    REQUIRE_OK(shmq_queue_create("delivery", &o, &q));
    shmq_consumer *c = NULL;
    REQUIRE_OK(shmq_consumer_new(q, "g", NULL, &c));
    shmq_producer *p = NULL;
    REQUIRE_OK(shmq_producer_new(q, &p));
    for (int i = 0; i < 6; i++) {
        CHECK_OK(shmq_publish(p, (const uint8_t *)"abc", 3, NULL));
    }
    shmq_message m, other;
    CHECK_OK(shmq_receive(c, MS(1000), &m));
    other = m;
    other.seq = m.seq + 1;
    CHECK_STATUS(shmq_ack(c, &other), SHMQ_INVALID_ARGUMENT);
    LAST_ERROR_HAS("not this consumer's current delivery");
    CHECK_OK(shmq_ack(c, &m)); /* still pending after the refused ack */
    CHECK_STATUS(shmq_ack(c, &m), SHMQ_INVALID_ARGUMENT);
    LAST_ERROR_HAS("not pending");

    shmq_message batch[4];
    size_t n = 0;
    CHECK_STATUS(shmq_receive_batch(c, batch, 0, 0, &n), SHMQ_INVALID_ARGUMENT);
    CHECK_OK(shmq_receive_batch(c, batch, 4, MS(1000), &n));
    CHECK(n == 4);
    CHECK_STATUS(shmq_ack(c, &batch[0]), SHMQ_INVALID_ARGUMENT);
    LAST_ERROR_HAS("shmq_ack_all");
    CHECK_OK(shmq_ack_all(c));
    shmq_producer_free(&p);
    shmq_consumer_free(&c);
    shmq_queue_close(&q);
}

static void test_status_strings(void) {
    CHECK(strcmp(shmq_status_str(SHMQ_OK), "ok") == 0);
    CHECK(strcmp(shmq_status_str(SHMQ_TIMEOUT), "timed out") == 0);
    int codes[] = {SHMQ_FULL,        SHMQ_TOO_LARGE,        SHMQ_CORRUPT,      SHMQ_INCOMPATIBLE,
                   SHMQ_NOT_FOUND,   SHMQ_EXISTS,           SHMQ_INVALID_NAME, SHMQ_INVALID_OPTION,
                   SHMQ_LEASE_EXPIRED, SHMQ_ABORTED,        SHMQ_BUSY,         SHMQ_IO,
                   SHMQ_NULL_ARGUMENT, SHMQ_INVALID_ARGUMENT, SHMQ_PANIC,      SHMQ_OTHER};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = shmq_status_str(codes[i]);
        CHECK(s != NULL && s[0] != '\0' && strcmp(s, "unknown status code") != 0);
    }
    CHECK(strcmp(shmq_status_str(-1), "unknown status code") == 0);
    CHECK(strcmp(shmq_status_str(99999), "unknown status code") == 0);
}

/* The last error is per thread. */
static void *fail_in_thread(void *arg) {
    (void)arg;
    shmq_queue *q = NULL;
    shmq_status st = shmq_queue_open("a/b", NULL, &q);
    int ok = st == SHMQ_INVALID_NAME && strstr(shmq_last_error(), "a/b") != NULL;
    return (void *)(uintptr_t)ok;
}

static void test_last_error_is_per_thread(void) {
    shmq_queue *q = NULL;
    CHECK_STATUS(shmq_queue_open(NULL, NULL, &q), SHMQ_NULL_ARGUMENT);
    const char *mine = shmq_last_error();
    char copy[256];
    snprintf(copy, sizeof copy, "%s", mine);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, fail_in_thread, NULL) == 0);
    void *r;
    pthread_join(t, &r);
    CHECK((uintptr_t)r == 1);
    CHECK(strcmp(shmq_last_error(), copy) == 0);
    /* A success leaves it. */
    CHECK(strcmp(shmq_status_str(SHMQ_OK), "ok") == 0);
    CHECK(strcmp(shmq_last_error(), copy) == 0);
}

int main(void) {
    alarm(120);
    make_test_dir();
    RUN(test_null_arguments);
    RUN(test_closed_handles);
    RUN(test_too_large);
    RUN(test_corrupt_files);
    RUN(test_names_and_options);
    RUN(test_reservation_misuse);
    RUN(test_delivery_misuse);
    RUN(test_status_strings);
    RUN(test_last_error_is_per_thread);
    return finish();
}
