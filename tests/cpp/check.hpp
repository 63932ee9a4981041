// A tiny test harness for the C++ tests of shmq (the C++ sibling of
// tests/c/check.h): CHECK macros that count, exception checks, a private
// temporary directory per test, and a closing line "N passed, N failed".
// The program exits non-zero on any failure.
#ifndef SHMQ_TESTS_CHECK_HPP
#define SHMQ_TESTS_CHECK_HPP

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <sstream>
#include <string>
#include <typeinfo>

#include "shmq.hpp"

namespace check {

inline int passed = 0;
inline int failed = 0;

inline void fail(const char *file, int line, const std::string &what) {
    ++failed;
    std::fprintf(stderr, "%s:%d: %s\n", file, line, what.c_str());
}

template <typename A, typename B>
void equal(const A &a, const B &b, const char *as, const char *bs, const char *file, int line) {
    if (a == b) {
        ++passed;
        return;
    }
    std::ostringstream out;
    out << "CHECK_EQ(" << as << ", " << bs << ") failed: " << a << " != " << b;
    fail(file, line, out.str());
}

} // namespace check

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            ++check::passed;                                                                       \
        } else {                                                                                   \
            check::fail(__FILE__, __LINE__, "CHECK(" #cond ") failed");                            \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(a, b) check::equal((a), (b), #a, #b, __FILE__, __LINE__)

// Stops the program when a check later code relies on failed.
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (cond) {                                                                                \
            ++check::passed;                                                                       \
        } else {                                                                                   \
            check::fail(__FILE__, __LINE__, "REQUIRE(" #cond ") failed; cannot go on");            \
            std::exit(2);                                                                          \
        }                                                                                          \
    } while (0)

// Checks that `expr` throws `type` (not another exception, not nothing)
// and that its what() contains `substr`.
#define CHECK_THROWS_WITH(type, expr, substr)                                                      \
    do {                                                                                           \
        const char *want_ = (substr);                                                              \
        bool ok_ = false;                                                                          \
        std::string got_ = "nothing was thrown";                                                   \
        try {                                                                                      \
            (void)(expr);                                                                          \
        } catch (const type &e_) {                                                                 \
            ok_ = std::strstr(e_.what(), want_) != nullptr;                                        \
            got_ = std::string(#type " with what() \"") + e_.what() + "\"";                        \
        } catch (const std::exception &e_) {                                                       \
            got_ = std::string("another exception, ") + typeid(e_).name() + ": " + e_.what();      \
        } catch (...) {                                                                            \
            got_ = "a non-std exception";                                                          \
        }                                                                                          \
        if (ok_) {                                                                                 \
            ++check::passed;                                                                       \
        } else {                                                                                   \
            check::fail(__FILE__, __LINE__,                                                        \
                        std::string(#expr " should throw " #type " containing \"") + want_ +      \
                            "\"; got " + got_);                                                    \
        }                                                                                          \
    } while (0)

#define CHECK_THROWS(type, expr) CHECK_THROWS_WITH(type, expr, "")

#define CHECK_NOTHROW(expr)                                                                        \
    do {                                                                                           \
        try {                                                                                      \
            (void)(expr);                                                                          \
            ++check::passed;                                                                       \
        } catch (const std::exception &e_) {                                                       \
            check::fail(__FILE__, __LINE__, std::string(#expr " threw: ") + e_.what());           \
        }                                                                                          \
    } while (0)

namespace check {

inline std::string root_dir;

// A private directory for one test's queue files (and spill directories),
// under the program's own temporary directory. The destructor checks that
// the test removed every queue it made, then deletes the directory.
class test_dir {
  public:
    explicit test_dir(const char *test) : path_(root_dir + "/" + test) {
        std::filesystem::create_directory(path_);
    }
    test_dir(const test_dir &) = delete;
    test_dir &operator=(const test_dir &) = delete;
    ~test_dir() {
        std::error_code ec;
        for (const auto &e : std::filesystem::directory_iterator(path_, ec)) {
            fail(__FILE__, __LINE__, "left behind: " + e.path().string());
        }
        std::filesystem::remove_all(path_, ec);
    }
    const std::string &path() const noexcept { return path_; }
    // Options of a queue in this directory.
    shmq::options opts(std::uint64_t slots, std::uint64_t slot_size) const {
        return shmq::options().dir(path_).slots(slots).slot_size(slot_size);
    }

  private:
    std::string path_;
};

inline void make_root_dir() {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    char tmpl[] = "/tmp/shmq-cpptest-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
        std::perror("mkdtemp");
        std::exit(2);
    }
    root_dir = tmpl;
}

// The closing line; the exit status of the program.
inline int finish() {
    std::error_code ec;
    std::filesystem::remove_all(root_dir, ec);
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

inline std::chrono::steady_clock::duration since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::steady_clock::now() - t0;
}

} // namespace check

// Runs one test function, naming it; an exception escaping it is a failure.
#define RUN(test)                                                                                  \
    do {                                                                                           \
        int before_ = check::failed;                                                               \
        try {                                                                                      \
            test();                                                                                \
        } catch (const std::exception &e_) {                                                       \
            check::fail(__FILE__, __LINE__, std::string(#test " threw: ") + e_.what());           \
        }                                                                                          \
        std::printf("%-40s %s\n", #test, check::failed == before_ ? "ok" : "FAILED");              \
    } while (0)

#endif
