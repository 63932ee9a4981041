/* A tiny test harness for the C tests of shmq: CHECK macros that count,
 * a private temporary directory per program, and a closing line
 * "N passed, N failed". Each test program exits non-zero on any failure. */
#ifndef SHMQ_TESTS_CHECK_H
#define SHMQ_TESTS_CHECK_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shmq.h"

static int checks_passed;
static int checks_failed;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (cond) {                                                              \
            checks_passed++;                                                     \
        } else {                                                                 \
            checks_failed++;                                                     \
            fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: %s\n", __FILE__, \
                    __LINE__, #cond, shmq_last_error());                         \
        }                                                                        \
    } while (0)

/* Checks that `expr` returns `want`; on a mismatch prints both codes. */
#define CHECK_STATUS(expr, want)                                                 \
    do {                                                                         \
        shmq_status got_ = (expr);                                               \
        if (got_ == (want)) {                                                    \
            checks_passed++;                                                     \
        } else {                                                                 \
            checks_failed++;                                                     \
            fprintf(stderr, "%s:%d: %s returned %d (%s), wanted %d (%s); last error: %s\n", \
                    __FILE__, __LINE__, #expr, (int)got_, shmq_status_str((int)got_), \
                    (int)(want), shmq_status_str((int)(want)), shmq_last_error()); \
        }                                                                        \
    } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, SHMQ_OK)

/* Stops the program when a check that later code relies on failed. */
#define REQUIRE(cond)                                                            \
    do {                                                                         \
        int req_ok_ = (cond) ? 1 : 0; /* evaluated once */                       \
        CHECK(req_ok_ && #cond);                                                 \
        if (!req_ok_) {                                                          \
            fprintf(stderr, "%s:%d: cannot go on\n", __FILE__, __LINE__);        \
            exit(2);                                                             \
        }                                                                        \
    } while (0)

#define REQUIRE_OK(expr)                                                         \
    do {                                                                         \
        shmq_status req_ = (expr);                                               \
        CHECK_STATUS(req_, SHMQ_OK);                                             \
        if (req_ != SHMQ_OK) {                                                   \
            fprintf(stderr, "%s:%d: cannot go on\n", __FILE__, __LINE__);        \
            exit(2);                                                             \
        }                                                                        \
    } while (0)

static char test_dir[64];

/* A private directory for this program's queue files. */
static const char *make_test_dir(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    strcpy(test_dir, "/tmp/shmq-ctest-XXXXXX");
    if (mkdtemp(test_dir) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
    return test_dir;
}

/* Removes `dir` and what is in it, subdirectories (spill directories)
 * included; symlinks are removed, not followed. */
static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *e;
        char path[1024];
        struct stat st;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
                continue;
            }
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
                remove_tree(path);
            } else {
                unlink(path);
            }
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Removes the directory made by make_test_dir and everything in it. */
static void remove_test_dir(void) { remove_tree(test_dir); }

/* Options for a queue in the test directory. */
static inline shmq_options test_options(uint64_t slots, uint64_t slot_size) {
    shmq_options o = shmq_options_default();
    o.dir = test_dir;
    o.slots = slots;
    o.slot_size = slot_size;
    return o;
}

static inline int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Creating queue `name` in the test directory with `o` fails with
 * SHMQ_INVALID_OPTION, the last error names `what`, the handle is left
 * untouched, and neither the queue file nor `dir_left` (if not NULL, say a
 * spill directory) is left behind. */
static inline void check_create_refused(const char *name, shmq_options o, const char *what,
                                        const char *dir_left) {
    shmq_queue *q = (shmq_queue *)0x1;
    CHECK_STATUS(shmq_queue_create(name, &o, &q), SHMQ_INVALID_OPTION);
    if (strstr(shmq_last_error(), what) == NULL) {
        fprintf(stderr, "last error %s does not name %s\n", shmq_last_error(), what);
        CHECK(!"the last error names the option");
    }
    if (q != (shmq_queue *)0x1) {
        CHECK(!"the queue handle is untouched");
        shmq_queue_close(&q);
        shmq_queue_remove(name, &o);
    }
    char file[256];
    snprintf(file, sizeof file, "%s/%s.shmq", test_dir, name);
    CHECK(!exists(file));
    CHECK(dir_left == NULL || !exists(dir_left));
}

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define MS(n) ((uint64_t)(n) * 1000000u)

/* Runs one test function, naming it. */
#define RUN(test)                                                                \
    do {                                                                         \
        int before_ = checks_failed;                                             \
        test();                                                                  \
        printf("%-40s %s\n", #test, checks_failed == before_ ? "ok" : "FAILED"); \
    } while (0)

/* The closing line; the exit status of the program. */
static int finish(void) {
    remove_test_dir();
    printf("%d passed, %d failed\n", checks_passed, checks_failed);
    return checks_failed == 0 ? 0 : 1;
}

#endif
