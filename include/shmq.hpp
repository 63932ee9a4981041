// shmq.hpp - header-only C++17 RAII API over shmq.h. Link with -lshmq_ffi.
//
//   shmq::queue      an open queue (create / open / open_or_create / remove),
//                    groups, stats, getters, the dead-letter queue, the
//                    scheduled messages (list, cancel)
//   shmq::producer   publish (with metadata, a timeout), publish_batch,
//                    reserve -> shmq::reservation (write in place, commit)
//   shmq::consumer   receive / try_receive -> shmq::message,
//                    receive_batch -> shmq::batch, seek, position
//   shmq::message    one delivery: owns it until ack(), nack(), give_back(),
//                    destruction or the consumer's next receive/seek/ack_all;
//                    reading its payload after that throws shmq::error
//   shmq::error      every failure: code() is the shmq_status, what() the
//                    library's message; one subclass per status
//                    (shmq::timeout_error, shmq::full_error, ...), and
//                    shmq::partial_batch_error for a batch that went in in part
//
// Conventions:
// - Every handle is move-only and frees itself (shmq_queue_close,
//   shmq_producer_free, shmq_consumer_free, shmq_abort); a moved-from or
//   closed handle is empty, and using it throws shmq::null_argument_error.
//   No destructor throws.
// - Timeouts are std::chrono durations (0 or negative: do not wait;
//   shmq::forever: no limit). A receive that times out returns an empty
//   std::optional (a batch: an empty batch); a publish or reserve that times
//   out throws shmq::timeout_error. The overloads without a timeout wait as
//   long as it takes (a full ring with overflow=block waits for room).
// - Payloads are passed as shmq::bytes_view (pointer + size; made from a
//   std::string_view, a string literal, a std::string, a std::vector of
//   bytes, a std::array, ...) and read as shmq::bytes_view or
//   std::string_view. Names are std::string_view.
// - Thread rules are those of shmq.h: a queue may be used by any number of
//   threads at once; a producer or consumer by one thread at a time, and the
//   reservations, messages and batches it hands out belong to it (same rule).
#ifndef SHMQ_HPP
#define SHMQ_HPP

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <ratio>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "shmq.h"

namespace shmq {

// ---------------------------------------------------------------- errors --

// A failed call. code() is its shmq_status; what() is shmq_last_error() at
// the time of the failure (which already names the problem, e.g. "timed
// out" or "invalid option: ..."), or the wrapper's own message for misuse
// it catches itself (an empty handle, a finished message).
class error : public std::runtime_error {
  public:
    error(shmq_status code, const std::string &what) : std::runtime_error(what), code_(code) {}
    shmq_status code() const noexcept { return code_; }
    // The static description of code() (shmq_status_str).
    const char *code_name() const noexcept { return shmq_status_str(static_cast<int>(code_)); }

  private:
    shmq_status code_;
};

// The error of one status code, so that it can be caught on its own.
template <shmq_status Code> class status_error : public error {
  public:
    static constexpr shmq_status status = Code;
    explicit status_error(const std::string &what) : error(Code, what) {}
};

using full_error = status_error<SHMQ_FULL>;
using timeout_error = status_error<SHMQ_TIMEOUT>;
using too_large_error = status_error<SHMQ_TOO_LARGE>;
using corrupt_error = status_error<SHMQ_CORRUPT>;
using incompatible_error = status_error<SHMQ_INCOMPATIBLE>;
using not_found_error = status_error<SHMQ_NOT_FOUND>;
using exists_error = status_error<SHMQ_EXISTS>;
using invalid_name_error = status_error<SHMQ_INVALID_NAME>;
using invalid_option_error = status_error<SHMQ_INVALID_OPTION>;
using lease_expired_error = status_error<SHMQ_LEASE_EXPIRED>;
using aborted_error = status_error<SHMQ_ABORTED>;
using busy_error = status_error<SHMQ_BUSY>;
using io_error = status_error<SHMQ_IO>;
using dlq_full_error = status_error<SHMQ_DLQ_FULL>;
using spill_full_error = status_error<SHMQ_SPILL_FULL>;
using null_argument_error = status_error<SHMQ_NULL_ARGUMENT>;
using invalid_argument_error = status_error<SHMQ_INVALID_ARGUMENT>;
using panic_error = status_error<SHMQ_PANIC>;
using other_error = status_error<SHMQ_OTHER>;

// A batch that went in only in part: its first published() messages were
// published, from first_seq(); publish only the rest again (retrying all
// would duplicate them). code() says why the rest did not go in:
// SHMQ_TIMEOUT (the timeout passed), SHMQ_FULL, SHMQ_SPILL_FULL or
// SHMQ_ABORTED. (A batch of which nothing went in throws the plain error of
// its code, e.g. shmq::timeout_error or shmq::full_error.)
class partial_batch_error : public error {
  public:
    partial_batch_error(shmq_status code, const std::string &what, std::size_t published,
                        std::size_t count, std::uint64_t first_seq)
        : error(code, what), published_(published), count_(count), first_seq_(first_seq) {}
    // How many of the batch's first messages were published.
    std::size_t published() const noexcept { return published_; }
    // How many messages the batch had.
    std::size_t count() const noexcept { return count_; }
    // The seq of the first published message; the others follow in order.
    std::uint64_t first_seq() const noexcept { return first_seq_; }

  private:
    std::size_t published_;
    std::size_t count_;
    std::uint64_t first_seq_;
};

namespace detail {

// Throws the error type of `code` with `what`.
[[noreturn]] inline void raise(shmq_status code, const std::string &what) {
    switch (code) {
    case SHMQ_FULL: throw full_error(what);
    case SHMQ_TIMEOUT: throw timeout_error(what);
    case SHMQ_TOO_LARGE: throw too_large_error(what);
    case SHMQ_CORRUPT: throw corrupt_error(what);
    case SHMQ_INCOMPATIBLE: throw incompatible_error(what);
    case SHMQ_NOT_FOUND: throw not_found_error(what);
    case SHMQ_EXISTS: throw exists_error(what);
    case SHMQ_INVALID_NAME: throw invalid_name_error(what);
    case SHMQ_INVALID_OPTION: throw invalid_option_error(what);
    case SHMQ_LEASE_EXPIRED: throw lease_expired_error(what);
    case SHMQ_ABORTED: throw aborted_error(what);
    case SHMQ_BUSY: throw busy_error(what);
    case SHMQ_IO: throw io_error(what);
    case SHMQ_DLQ_FULL: throw dlq_full_error(what);
    case SHMQ_SPILL_FULL: throw spill_full_error(what);
    case SHMQ_NULL_ARGUMENT: throw null_argument_error(what);
    case SHMQ_INVALID_ARGUMENT: throw invalid_argument_error(what);
    case SHMQ_PANIC: throw panic_error(what);
    case SHMQ_OTHER: throw other_error(what);
    default: throw error(code, what);
    }
}

// The message of the call that just failed with `code` on this thread.
inline std::string last_error(shmq_status code) {
    const char *text = shmq_last_error();
    if (text != nullptr && *text != '\0') {
        return text;
    }
    return shmq_status_str(static_cast<int>(code));
}

// Throws the error of a C call that returned `code` (not SHMQ_OK).
[[noreturn]] inline void raise_last(shmq_status code) { raise(code, last_error(code)); }

inline void check(shmq_status code) {
    if (code != SHMQ_OK) {
        raise_last(code);
    }
}

// A NUL-terminated copy of `s` for the C API; a NUL inside it would cut the
// name short there, so it is refused here (with `code`).
inline std::string c_string(std::string_view s, const char *what, shmq_status code) {
    if (s.find('\0') != std::string_view::npos) {
        raise(code, std::string(what) + " contains a NUL byte");
    }
    return std::string(s);
}

inline std::string name_string(std::string_view s, const char *what) {
    return c_string(s, what, SHMQ_INVALID_NAME);
}

// Reads a string getter of the C API (shmq_queue_name and the like: a
// buffer, its capacity, the full length).
template <typename Fn> std::string read_text(Fn fn) {
    std::string out(64, '\0');
    for (;;) {
        std::size_t len = 0;
        check(fn(&out[0], out.size(), &len));
        if (len < out.size()) {
            out.resize(len);
            return out;
        }
        out.resize(len + 1);
    }
}

// Reads a bytes getter of the C API (shmq_dlq_payload and its kin: a
// buffer, its capacity, the full length) until the bytes fit.
template <typename Fn> std::string read_bytes(Fn fn) {
    std::string out;
    for (;;) {
        std::size_t len = 0;
        std::uint8_t *buf = out.empty() ? nullptr : reinterpret_cast<std::uint8_t *>(&out[0]);
        check(fn(buf, out.size(), &len));
        if (len <= out.size()) {
            out.resize(len);
            return out;
        }
        out.resize(len);
    }
}

// Reads an array getter of the C API (shmq_groups, shmq_dlq_list: an
// array, its capacity, the total count) until a snapshot fits.
template <typename T, typename Fn> std::vector<T> read_array(Fn fn) {
    std::vector<T> out;
    for (;;) {
        std::size_t count = 0;
        check(fn(out.empty() ? nullptr : out.data(), out.size(), &count));
        if (count <= out.size()) {
            out.resize(count);
            return out;
        }
        out.resize(count + 4);
    }
}

// Is C a contiguous container of 1-byte elements (std::string, a vector of
// bytes, std::array<std::uint8_t, N>, ...)? Arrays of char are left to the
// const char * constructor (a string literal is text up to its NUL).
template <typename C, typename = void> struct is_byte_container : std::false_type {};
template <typename C>
struct is_byte_container<C, std::void_t<decltype(std::data(std::declval<const C &>())),
                                        decltype(std::size(std::declval<const C &>()))>> {
    using pointer = decltype(std::data(std::declval<const C &>()));
    static constexpr bool value =
        std::is_pointer<pointer>::value &&
        !std::is_void<std::remove_pointer_t<pointer>>::value &&
        sizeof(std::remove_pointer_t<pointer>) == 1 &&
        !(std::is_array<C>::value &&
          std::is_same<std::remove_cv_t<std::remove_extent_t<C>>, char>::value);
};

} // namespace detail

// The static description of a status code (shmq_status_str).
inline const char *status_str(shmq_status code) noexcept {
    return shmq_status_str(static_cast<int>(code));
}

// The library's version, "MAJOR.MINOR.PATCH" (shmq_version); compare it
// with header_version to catch a header/library mismatch.
inline std::string_view version() noexcept { return shmq_version(); }
inline constexpr std::string_view header_version = SHMQ_VERSION_STRING;
// The library's C ABI version (shmq_abi_version); header_abi_version is
// this header's. They differ only if the program loaded a library it was
// not built against (docs/versioning.md).
inline std::uint32_t abi_version() noexcept { return shmq_abi_version(); }
inline constexpr std::uint32_t header_abi_version = SHMQ_ABI_VERSION;

// ------------------------------------------------------------ timeouts --

// A timeout meaning "as long as it takes" (SHMQ_WAIT_FOREVER).
inline constexpr std::chrono::nanoseconds forever = std::chrono::nanoseconds::max();

namespace detail {

// A duration as the C API's nanoseconds: 0 (or less) is 0, shmq::forever
// (or anything longer than 146 years) is SHMQ_WAIT_FOREVER.
template <typename Rep, typename Period>
std::uint64_t to_ns(std::chrono::duration<Rep, Period> d) noexcept {
    if (!(d > std::chrono::duration<Rep, Period>::zero())) {
        return 0; // also NaN
    }
    if (std::chrono::duration<long double, std::nano>(d).count() >= 4.6e18L) {
        return SHMQ_WAIT_FOREVER;
    }
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d);
    return static_cast<std::uint64_t>(ns.count());
}

} // namespace detail

// ---------------------------------------------------------------- bytes --

// A read-only view of bytes: a pointer and a size (C++17 has no std::span).
// It does not own them: keep them alive while the view is used.
class bytes_view {
  public:
    constexpr bytes_view() noexcept = default;
    bytes_view(const void *data, std::size_t size) noexcept
        : data_(static_cast<const std::uint8_t *>(data)), size_(size) {}
    bytes_view(std::string_view s) noexcept : bytes_view(s.data(), s.size()) {}
    // A NUL-terminated string, without its NUL (NULL: empty).
    bytes_view(const char *s) noexcept : bytes_view(s, s == nullptr ? 0 : std::strlen(s)) {}
    // A contiguous container of 1-byte elements, whole.
    template <typename C, typename = std::enable_if_t<detail::is_byte_container<C>::value &&
                                                      !std::is_same<C, bytes_view>::value>>
    bytes_view(const C &c) noexcept : bytes_view(std::data(c), std::size(c)) {}

    const std::uint8_t *data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    const std::uint8_t *begin() const noexcept { return data_; }
    const std::uint8_t *end() const noexcept { return data_ + size_; }
    std::uint8_t operator[](std::size_t i) const noexcept { return data_[i]; }
    // The same bytes as text.
    std::string_view as_string_view() const noexcept {
        return {reinterpret_cast<const char *>(data_), size_};
    }

    friend bool operator==(bytes_view a, bytes_view b) noexcept {
        return a.size_ == b.size_ && (a.size_ == 0 || std::memcmp(a.data_, b.data_, a.size_) == 0);
    }
    friend bool operator!=(bytes_view a, bytes_view b) noexcept { return !(a == b); }

  private:
    const std::uint8_t *data_ = nullptr;
    std::size_t size_ = 0;
};

// --------------------------------------------------------------- options --

enum class overflow_policy : shmq_overflow {
    block = SHMQ_OVERFLOW_BLOCK,   // wait for room (bounded by a publish's timeout)
    reject = SHMQ_OVERFLOW_REJECT, // fail at once: shmq::full_error
    spill = SHMQ_OVERFLOW_SPILL,   // append to segment files on disk
};

enum class sync_mode : shmq_sync {
    never = SHMQ_SYNC_NEVER,
    every_n = SHMQ_SYNC_EVERY_N,
    always = SHMQ_SYNC_ALWAYS,
};

enum class ack_mode : shmq_ack_mode {
    automatic = SHMQ_ACK_AUTO, // committed on receipt (at-most-once)
    manual = SHMQ_ACK_MANUAL,  // leased until acked (at-least-once)
};

enum class wait_strategy : shmq_wait_strategy {
    spin_futex = SHMQ_WAIT_STRATEGY_SPIN_FUTEX,
    spin_yield = SHMQ_WAIT_STRATEGY_SPIN_YIELD,
    busy_spin = SHMQ_WAIT_STRATEGY_BUSY_SPIN,
};

enum class dlq_reason : shmq_dlq_reason {
    other = SHMQ_DLQ_REASON_OTHER,
    nacked = SHMQ_DLQ_REASON_NACKED,
    max_deliveries = SHMQ_DLQ_REASON_MAX_DELIVERIES,
    expired = SHMQ_DLQ_REASON_EXPIRED,
};

// What happens to a message whose time to live ran out before a group
// finished it.
enum class on_expiry_policy : shmq_on_expiry {
    dead_letter = SHMQ_ON_EXPIRY_DEAD_LETTER, // to the group's DLQ (the default)
    discard = SHMQ_ON_EXPIRY_DISCARD,         // dropped and counted
};

// Where a new group starts.
struct start_at {
    shmq_start kind = SHMQ_START_EARLIEST;
    std::uint64_t value = 0;
    static start_at earliest() noexcept { return {SHMQ_START_EARLIEST, 0}; }
    static start_at latest() noexcept { return {SHMQ_START_LATEST, 0}; }
    static start_at seq(std::uint64_t s) noexcept { return {SHMQ_START_SEQ, s}; }
};

// Where a seek moves a group.
struct seek_to {
    shmq_seek whence = SHMQ_SEEK_EARLIEST;
    std::uint64_t value = 0;
    static seek_to earliest() noexcept { return {SHMQ_SEEK_EARLIEST, 0}; }
    static seek_to latest() noexcept { return {SHMQ_SEEK_LATEST, 0}; }
    static seek_to seq(std::uint64_t s) noexcept { return {SHMQ_SEEK_SEQ, s}; }
    // The first retained message published at or after `t`.
    static seek_to time(std::chrono::system_clock::time_point t) noexcept {
        auto ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
        return {SHMQ_SEEK_TIME, ns < 0 ? 0 : static_cast<std::uint64_t>(ns)};
    }
    // The same, in CLOCK_REALTIME nanoseconds (a message's timestamp_ns()).
    static seek_to time_ns(std::uint64_t ns) noexcept { return {SHMQ_SEEK_TIME, ns}; }
};

// Options of a queue: the defaults of shmq_options_default(), changed by
// chained setters. It owns its strings (dir, spill_dir). The fields that
// shape the file apply when it is created; open() uses only dir.
class options {
  public:
    options() : o_(shmq_options_default()) {}
    // From a C struct (its strings are copied).
    explicit options(const shmq_options &raw) : o_(raw) {
        if (raw.dir != nullptr) {
            dir_ = raw.dir;
        }
        if (raw.spill_dir != nullptr) {
            spill_dir_ = raw.spill_dir;
        }
    }

    // Directory of the queue file (default: $SHMQ_DIR, else /dev/shm).
    options &dir(std::string_view d) {
        dir_ = detail::c_string(d, "options::dir", SHMQ_INVALID_OPTION);
        return *this;
    }
    options &slots(std::uint64_t n) noexcept { o_.slots = n; return *this; }
    options &slot_size(std::uint64_t n) noexcept { o_.slot_size = n; return *this; }
    // The largest message in bytes (default 0: as much as half the ring
    // holds); a message longer than slot_size takes consecutive slots.
    options &max_message_size(std::uint64_t n) noexcept {
        o_.max_message_size = n;
        return *this;
    }
    // The ring's size in bytes instead of slots (default 0: slots decides
    // it): the most slots of slot_size that fit, a power of two.
    options &capacity(std::uint64_t bytes) noexcept {
        o_.capacity = bytes;
        return *this;
    }
    // How far an ack=manual group's dispatch may run ahead of its oldest
    // unfinished message, in slots (default 0: 65536, or the ring's slots
    // if fewer).
    options &max_in_flight(std::uint64_t n) noexcept {
        o_.max_in_flight = n;
        return *this;
    }
    // Every message's time to live (default zero: none), and what becomes
    // of a message that expires before a group finished it.
    options &message_ttl(std::chrono::milliseconds d) noexcept {
        o_.message_ttl_ms = ms(d);
        return *this;
    }
    options &on_expiry(on_expiry_policy p) noexcept {
        o_.on_expiry = static_cast<shmq_on_expiry>(p);
        return *this;
    }
    // The delay every message is published with (default zero: none): a
    // message reaches no group before it has passed, unless its meta's
    // delay or deliver_at says otherwise. A publish then returns the
    // message's schedule id, not a seq; a reservation is refused.
    options &delivery_delay(std::chrono::milliseconds d) noexcept {
        o_.delivery_delay_ms = ms(d);
        return *this;
    }
    options &max_groups(std::uint32_t n) noexcept { o_.max_groups = n; return *this; }
    options &overflow(overflow_policy p) noexcept {
        o_.overflow = static_cast<shmq_overflow>(p);
        return *this;
    }
    options &lease(std::chrono::milliseconds d) noexcept { o_.lease_ms = ms(d); return *this; }
    options &max_deliveries(std::uint32_t n) noexcept { o_.max_deliveries = n; return *this; }
    options &dlq_slots(std::uint32_t n) noexcept { o_.dlq_slots = n; return *this; }
    options &dedup_window(std::uint64_t n) noexcept { o_.dedup_window = n; return *this; }
    // Ordering lanes per ack=manual group (a power of two; default 1024).
    options &ordering_lanes(std::uint64_t n) noexcept { o_.ordering_lanes = n; return *this; }
    options &dedup_ttl(std::chrono::milliseconds d) noexcept {
        o_.dedup_ttl_ms = ms(d);
        return *this;
    }
    options &unblock_timeout(std::chrono::milliseconds d) noexcept {
        o_.unblock_timeout_ms = ms(d);
        return *this;
    }
    options &mode(std::uint32_t m) noexcept { o_.mode = m; return *this; }
    // Directory of the spill's (and journal's) segment files (default:
    // /var/tmp/shmq-<uid>/<name>).
    options &spill_dir(std::string_view d) {
        spill_dir_ = detail::c_string(d, "options::spill_dir", SHMQ_INVALID_OPTION);
        return *this;
    }
    options &spill_max_bytes(std::uint64_t n) noexcept { o_.spill_max_bytes = n; return *this; }
    options &spill_segment_size(std::uint64_t n) noexcept {
        o_.spill_segment_size = n;
        return *this;
    }
    options &spill_fallback(overflow_policy p) noexcept {
        o_.spill_fallback = static_cast<shmq_overflow>(p);
        return *this;
    }
    // When spilled records are flushed; `every` is for sync_mode::every_n.
    options &sync(sync_mode m, std::uint32_t every = 0) noexcept {
        o_.sync = static_cast<shmq_sync>(m);
        o_.sync_every = every;
        return *this;
    }
    // Keep a journal of every message this long (0: none, the default).
    options &journal_max_age(std::chrono::milliseconds d) noexcept {
        o_.journal_max_age_ms = ms(d);
        return *this;
    }
    options &journal_max_bytes(std::uint64_t n) noexcept { o_.journal_max_bytes = n; return *this; }
    // A user id (a group id) trusted besides this user and root: its queue
    // files and directories are used, where another user's are refused.
    options &trust_owner(std::uint32_t uid) noexcept { o_.trust_owner = uid; return *this; }
    options &trust_group(std::uint32_t gid) noexcept { o_.trust_group = gid; return *this; }

    // The C struct, for calling the C API directly. Its dir and spill_dir
    // point into this object: valid while it lives and is not changed (not
    // on a temporary: `shmq::options().dir(d).c_options()` dangles).
    shmq_options c_options() const noexcept {
        shmq_options o = o_;
        o.dir = dir_ ? dir_->c_str() : nullptr;
        o.spill_dir = spill_dir_ ? spill_dir_->c_str() : nullptr;
        return o;
    }

  private:
    static std::uint64_t ms(std::chrono::milliseconds d) noexcept {
        return d.count() < 0 ? 0 : static_cast<std::uint64_t>(d.count());
    }

    shmq_options o_;
    std::optional<std::string> dir_;
    std::optional<std::string> spill_dir_;
};

// Options of a consumer (shmq_consumer_options_default(), changed by
// chained setters).
class consumer_options {
  public:
    consumer_options() noexcept : o_(shmq_consumer_options_default()) {}
    explicit consumer_options(const shmq_consumer_options &raw) noexcept : o_(raw) {}
    // Where the group starts if this consumer creates it.
    consumer_options &start(start_at s) noexcept {
        o_.start = s.kind;
        o_.start_seq = s.value;
        return *this;
    }
    consumer_options &ack(ack_mode a) noexcept {
        o_.ack = static_cast<shmq_ack_mode>(a);
        return *this;
    }
    consumer_options &wait(wait_strategy w) noexcept {
        o_.wait = static_cast<shmq_wait_strategy>(w);
        return *this;
    }
    // Create the group if it does not exist (true), or refuse a missing
    // group with shmq::not_found_error (false). Unsaid, a missing group is
    // created with a warning on stderr (deprecated).
    consumer_options &create(bool yes) noexcept {
        o_.create = yes ? SHMQ_CREATE_GROUP : SHMQ_GROUP_MUST_EXIST;
        return *this;
    }
    const shmq_consumer_options &c_options() const noexcept { return o_; }

  private:
    shmq_consumer_options o_;
};

// One header of a message: a name (1 to SHMQ_MAX_HEADER_NAME bytes of
// UTF-8) and a value of bytes. In a meta it views the caller's memory;
// read from a message, the message's slot (valid while it is active()).
struct header {
    std::string_view name;
    bytes_view value;
};

// Metadata of a published message. `key` is an idempotency key (none by
// default): a key the queue still remembers enqueues nothing and the
// publish returns the first message's seq. `ordering_key` (1 to
// SHMQ_MAX_ORDERING_KEY bytes) and `headers` (at most SHMQ_MAX_HEADERS, in
// order, names may repeat) are stored with the message and read back by
// every consumer (message::ordering_key(), message::headers()); they count
// against max_message_size. `ttl` (zero: none) is the message's time to
// live: a group that has not finished it by then is not given it (see
// options::on_expiry). `delay` (zero: none, or the queue's
// options::delivery_delay) or `deliver_at` schedules the message for later
// (`delay` wins if both are set; a time already past publishes at once):
// it reaches no group before then, and the publish returns its schedule id
// (queue::scheduled, queue::cancel_scheduled), not a seq; its ttl counts
// from when it is due. Reservations and batches refuse keys, headers, a
// ttl and a delay. Everything is viewed, not copied: keep it alive during
// the publish.
struct meta {
    std::uint32_t type_id = 0;
    std::uint64_t correlation_id = 0;
    std::optional<bytes_view> key{};
    std::optional<bytes_view> ordering_key{};
    std::vector<header> headers{};
    std::chrono::milliseconds ttl{0};
    std::chrono::milliseconds delay{0};
    std::optional<std::chrono::system_clock::time_point> deliver_at{};
};

// Snapshots, as the C API fills them (plain data; see shmq.h).
using queue_stats = shmq_queue_stats;
using group_info = shmq_group_info;
using dead_letter = shmq_dead_letter;
using scheduled_message = shmq_scheduled_message;

namespace detail {

// What a consumer shares with the messages and batches it hands out, so
// that they can tell whether their delivery is still the current one, also
// after the consumer object was moved or destroyed.
struct consumer_state {
    shmq_consumer *handle = nullptr; // NULL once the consumer is freed
    // Bumped whenever the consumer's current delivery ends (ack, nack,
    // give_back, a batch's ack, ack_all, the next receive or seek, the
    // consumer's free). A delivery is current while the epoch is the one it
    // was received at.
    std::uint64_t epoch = 0;
    shmq_ack_mode ack = SHMQ_ACK_AUTO;
};

// What a producer shares with its reservation.
struct producer_state {
    shmq_producer *handle = nullptr; // NULL once the producer is freed
};

// A non-NULL pointer for an empty view too: an empty key is a key.
inline const std::uint8_t *non_null(bytes_view v) noexcept {
    return v.data() != nullptr ? v.data() : reinterpret_cast<const std::uint8_t *>("");
}

// The C metadata of `m`; its headers array is `storage`, which must
// outlive the returned struct's use.
inline shmq_meta c_meta(const meta &m, std::vector<shmq_header> &storage) {
    shmq_meta out{};
    out.type_id = m.type_id;
    out.correlation_id = m.correlation_id;
    out.ttl_ms = m.ttl.count() > 0 ? static_cast<std::uint64_t>(m.ttl.count()) : 0;
    out.delay_ms = m.delay.count() > 0 ? static_cast<std::uint64_t>(m.delay.count()) : 0;
    if (m.deliver_at) {
        auto since = std::chrono::duration_cast<std::chrono::milliseconds>(
            m.deliver_at->time_since_epoch());
        // At or before the epoch: long past, so at once (0 would mean "no time").
        out.deliver_at_ms = since.count() > 0 ? static_cast<std::uint64_t>(since.count()) : 1;
    }
    if (m.key) {
        out.key = non_null(*m.key);
        out.key_len = m.key->size();
    }
    if (m.ordering_key) {
        out.ordering_key = non_null(*m.ordering_key);
        out.ordering_key_len = m.ordering_key->size();
    }
    storage.clear();
    for (const header &h : m.headers) {
        storage.push_back(shmq_header{h.name.data(), h.name.size(), h.value.data(), h.value.size()});
    }
    out.headers = storage.empty() ? nullptr : storage.data();
    out.headers_len = storage.size();
    return out;
}

inline header from_c(const shmq_header &h) noexcept {
    return header{std::string_view(h.name, h.name_len), bytes_view(h.value, h.value_len)};
}

// Header `i` of `raw`, current on `c` (shmq_message_header);
// std::out_of_range past the end.
inline header header_at(const shmq_consumer *c, const shmq_message &raw, std::size_t i) {
    if (i >= raw.headers_len) {
        throw std::out_of_range("shmq: header " + std::to_string(i) + " of a message with " +
                                std::to_string(raw.headers_len) + " headers");
    }
    shmq_header h{};
    check(shmq_message_header(c, &raw, i, &h));
    return from_c(h);
}

// The value of the first header of `raw` named `name`, if any
// (shmq_message_header_find).
inline std::optional<bytes_view> header_named(const shmq_consumer *c, const shmq_message &raw,
                                              std::string_view name) {
    shmq_header h{};
    shmq_status st = shmq_message_header_find(c, &raw, name.data(), name.size(), &h);
    if (st == SHMQ_NOT_FOUND) {
        return std::nullopt;
    }
    check(st);
    return h.value_len == 0 ? bytes_view() : bytes_view(h.value, h.value_len);
}

} // namespace detail

// ---------------------------------------------------------------- message --

// One received message, owning its delivery (ack=auto: the slot it is read
// from; ack=manual: the lease). Move-only. The delivery ends at the first
// of: ack(), nack(), nack_after(), dead_letter(), give_back(), destruction,
// and the consumer's next receive, receive_batch, seek or ack_all, or its
// destruction. After that data() and text() throw
// shmq::invalid_argument_error instead of reading memory the queue may have
// reused; the metadata (seq(), type_id(), ...) stays readable. A moved-from
// (or default-constructed) message is empty(): every accessor throws
// shmq::null_argument_error.
//
// Destruction (and give_back()) gives a pending delivery back as the C API
// does when a delivery is released unacked: ack=auto (finished on receipt)
// frees its slot (shmq_ack); ack=manual gives it back to the group to be
// delivered again at once, attempt + 1 (shmq_nack with SHMQ_NACK_REQUEUE,
// so the group's `nacked` counter counts it).
class message {
  public:
    message() noexcept = default;
    message(message &&o) noexcept
        : state_(std::move(o.state_)), epoch_(o.epoch_), raw_(o.raw_),
          ended_(std::exchange(o.ended_, nullptr)) {
        o.state_.reset();
    }
    message &operator=(message &&o) noexcept {
        if (this != &o) {
            give_back();
            state_ = std::move(o.state_);
            o.state_.reset();
            epoch_ = o.epoch_;
            raw_ = o.raw_;
            ended_ = std::exchange(o.ended_, nullptr);
        }
        return *this;
    }
    message(const message &) = delete;
    message &operator=(const message &) = delete;
    ~message() { give_back(); }

    // Moved from or default-constructed: holds no message.
    bool empty() const noexcept { return !state_; }
    // The delivery is pending: the payload can be read and acked.
    bool active() const noexcept {
        return state_ && state_->handle != nullptr && state_->epoch == epoch_;
    }

    // The payload, in place in shared memory (valid while active()).
    bytes_view data() const {
        require_active("data");
        return {raw_.data, raw_.len};
    }
    // The payload as text (valid while active()).
    std::string_view text() const {
        require_active("text");
        return {reinterpret_cast<const char *>(raw_.data), raw_.len};
    }

    std::size_t size() const { return meta_("size").len; }
    std::uint64_t seq() const { return meta_("seq").seq; }
    // Publish time, CLOCK_REALTIME nanoseconds.
    std::uint64_t timestamp_ns() const { return meta_("timestamp_ns").timestamp_ns; }
    std::chrono::system_clock::time_point timestamp() const {
        auto ns =
            std::chrono::nanoseconds(static_cast<std::int64_t>(meta_("timestamp").timestamp_ns));
        return std::chrono::system_clock::time_point(
            std::chrono::duration_cast<std::chrono::system_clock::duration>(ns));
    }
    std::uint64_t correlation_id() const { return meta_("correlation_id").correlation_id; }
    std::uint32_t type_id() const { return meta_("type_id").type_id; }
    // Delivery attempt, 1 for the first.
    std::uint32_t attempt() const { return meta_("attempt").attempt; }
    // The ordering key, in place (valid while active()); none if it was
    // published without one.
    std::optional<bytes_view> ordering_key() const {
        require_active("ordering_key");
        if (raw_.ordering_key == nullptr) {
            return std::nullopt;
        }
        return bytes_view(raw_.ordering_key, raw_.ordering_key_len);
    }
    // How many headers it has.
    std::size_t header_count() const { return meta_("header_count").headers_len; }
    // Header `i`, in place (valid while active()); std::out_of_range past
    // the end.
    shmq::header header_at(std::size_t i) const {
        require_active("header_at");
        return detail::header_at(state_->handle, raw_, i);
    }
    // Its headers in order, in place (valid while active()).
    std::vector<shmq::header> headers() const {
        require_active("headers");
        std::vector<shmq::header> out;
        for (std::size_t i = 0; i < raw_.headers_len; i++) {
            out.push_back(detail::header_at(state_->handle, raw_, i));
        }
        return out;
    }
    // The value of its first header named `name`, in place (valid while
    // active()); none if it has no such header.
    std::optional<bytes_view> header(std::string_view name) const {
        require_active("header");
        return detail::header_named(state_->handle, raw_, name);
    }

    // Acknowledges the message and ends its delivery (whatever the result).
    // ack=manual: shmq::lease_expired_error if its lease was taken away
    // first (it was or will be delivered again).
    void ack() {
        require_active("ack");
        end("acked");
        detail::check(shmq_ack(state_->handle, &raw_));
    }
    // ack=manual: gives it back, delivered again as soon as possible
    // (attempt + 1). Ends the delivery whatever the result.
    void nack() { nack_(SHMQ_NACK_REQUEUE, 0, "nack", "nacked"); }
    // ack=manual: gives it back, delivered again not before `delay`.
    template <typename Rep, typename Period>
    void nack_after(std::chrono::duration<Rep, Period> delay) {
        nack_(SHMQ_NACK_REQUEUE_AFTER, detail::to_ns(delay), "nack_after", "nacked");
    }
    // ack=manual: moves it to the dead-letter queue (shmq::dlq_full_error
    // if it has no room: it then stays leased until its lease runs out).
    void dead_letter() { nack_(SHMQ_NACK_DEAD_LETTER, 0, "dead_letter", "dead-lettered"); }
    // ack=manual: extends the lease to `extension` from now; the delivery
    // stays pending. shmq::lease_expired_error if it was taken away. A
    // no-op with ack=auto.
    template <typename Rep, typename Period>
    void extend_lease(std::chrono::duration<Rep, Period> extension) {
        require_active("extend_lease");
        detail::check(shmq_extend_lease(state_->handle, &raw_, detail::to_ns(extension)));
    }
    // Gives a pending delivery back now, as destruction does (see above);
    // does nothing if it already ended. Never throws.
    void give_back() noexcept {
        if (!active()) {
            return;
        }
        end("given back");
        if (state_->ack == SHMQ_ACK_MANUAL) {
            (void)shmq_nack(state_->handle, &raw_, SHMQ_NACK_REQUEUE, 0);
        } else {
            (void)shmq_ack(state_->handle, &raw_);
        }
    }

  private:
    friend class consumer;
    message(std::shared_ptr<detail::consumer_state> state, const shmq_message &raw) noexcept
        : state_(std::move(state)), epoch_(state_->epoch), raw_(raw) {}

    // Marks the delivery ended (before the C call, which ends it whatever
    // its result).
    void end(const char *why) noexcept {
        ended_ = why;
        ++state_->epoch;
    }
    void nack_(shmq_nack_kind kind, std::uint64_t delay_ns, const char *what, const char *why) {
        require_active(what);
        end(why);
        detail::check(shmq_nack(state_->handle, &raw_, kind, delay_ns));
    }
    const shmq_message &meta_(const char *what) const {
        if (!state_) {
            empty_error(what);
        }
        return raw_;
    }
    [[noreturn]] static void empty_error(const char *what) {
        throw null_argument_error(std::string("shmq::message::") + what +
                                  ": the message is empty (moved from or default-constructed)");
    }
    void require_active(const char *what) const {
        if (!state_) {
            empty_error(what);
        }
        if (!active()) {
            std::string why = ended_ != nullptr ? ended_
                              : state_->handle == nullptr
                                  ? "its consumer was destroyed"
                                  : "its consumer received again, sought or acked all since";
            throw invalid_argument_error(std::string("shmq::message::") + what +
                                         ": the delivery of seq " + std::to_string(raw_.seq) +
                                         " has ended (" + why +
                                         "); its payload is no longer readable");
        }
    }

    std::shared_ptr<detail::consumer_state> state_;
    std::uint64_t epoch_ = 0;
    shmq_message raw_{};
    const char *ended_ = nullptr; // how this object ended its delivery
};

// ------------------------------------------------------------------ batch --

// Messages received together by consumer::receive_batch (ack=auto only).
// Move-only. The batch ends at the first of: ack(), destruction, and the
// consumer's next receive, receive_batch, seek or ack_all, or its
// destruction; after that an entry's data() and text() throw
// shmq::invalid_argument_error. Empty when the receive timed out.
class batch {
  public:
    // One message of a batch (a copyable view; its metadata is a copy, its
    // payload is read in place while the batch is pending).
    class entry {
      public:
        bytes_view data() const {
            require_active("data");
            return {raw_.data, raw_.len};
        }
        std::string_view text() const {
            require_active("text");
            return {reinterpret_cast<const char *>(raw_.data), raw_.len};
        }
        bool active() const noexcept {
            return state_ && state_->handle != nullptr && state_->epoch == epoch_;
        }
        std::size_t size() const noexcept { return raw_.len; }
        std::uint64_t seq() const noexcept { return raw_.seq; }
        std::uint64_t timestamp_ns() const noexcept { return raw_.timestamp_ns; }
        std::uint64_t correlation_id() const noexcept { return raw_.correlation_id; }
        std::uint32_t type_id() const noexcept { return raw_.type_id; }
        std::uint32_t attempt() const noexcept { return raw_.attempt; }
        // As message::ordering_key(), header_count(), header_at(),
        // headers() and header(): in place while the batch is pending.
        std::optional<bytes_view> ordering_key() const {
            require_active("ordering_key");
            if (raw_.ordering_key == nullptr) {
                return std::nullopt;
            }
            return bytes_view(raw_.ordering_key, raw_.ordering_key_len);
        }
        std::size_t header_count() const noexcept { return raw_.headers_len; }
        shmq::header header_at(std::size_t i) const {
            require_active("header_at");
            return detail::header_at(state_->handle, raw_, i);
        }
        std::vector<shmq::header> headers() const {
            require_active("headers");
            std::vector<shmq::header> out;
            for (std::size_t i = 0; i < raw_.headers_len; i++) {
                out.push_back(detail::header_at(state_->handle, raw_, i));
            }
            return out;
        }
        std::optional<bytes_view> header(std::string_view name) const {
            require_active("header");
            return detail::header_named(state_->handle, raw_, name);
        }

      private:
        friend class batch;
        entry(std::shared_ptr<detail::consumer_state> state, std::uint64_t epoch,
              const shmq_message &raw) noexcept
            : state_(std::move(state)), epoch_(epoch), raw_(raw) {}
        void require_active(const char *what) const {
            if (!active()) {
                throw invalid_argument_error(
                    std::string("shmq::batch::entry::") + what + ": the batch of seq " +
                    std::to_string(raw_.seq) +
                    " has ended (acked, destroyed, or its consumer received again, sought, acked "
                    "all or was destroyed); its payload is no longer readable");
            }
        }
        std::shared_ptr<detail::consumer_state> state_;
        std::uint64_t epoch_;
        shmq_message raw_;
    };

    class iterator {
      public:
        using iterator_category = std::input_iterator_tag;
        using value_type = entry;
        using difference_type = std::ptrdiff_t;
        using pointer = void;
        using reference = entry;
        entry operator*() const { return b_->entry_at(i_); }
        iterator &operator++() noexcept {
            ++i_;
            return *this;
        }
        iterator operator++(int) noexcept {
            iterator old = *this;
            ++i_;
            return old;
        }
        friend bool operator==(const iterator &a, const iterator &b) noexcept {
            return a.b_ == b.b_ && a.i_ == b.i_;
        }
        friend bool operator!=(const iterator &a, const iterator &b) noexcept { return !(a == b); }

      private:
        friend class batch;
        iterator(const batch *b, std::size_t i) noexcept : b_(b), i_(i) {}
        const batch *b_;
        std::size_t i_;
    };

    batch() noexcept = default;
    batch(batch &&o) noexcept
        : state_(std::move(o.state_)), epoch_(o.epoch_), msgs_(std::move(o.msgs_)) {
        o.state_.reset();
        o.msgs_.clear();
    }
    batch &operator=(batch &&o) noexcept {
        if (this != &o) {
            end_quietly();
            state_ = std::move(o.state_);
            o.state_.reset();
            epoch_ = o.epoch_;
            msgs_ = std::move(o.msgs_);
            o.msgs_.clear();
        }
        return *this;
    }
    batch(const batch &) = delete;
    batch &operator=(const batch &) = delete;
    ~batch() { end_quietly(); }

    std::size_t size() const noexcept { return msgs_.size(); }
    bool empty() const noexcept { return msgs_.empty(); }
    // The batch is pending: its payloads can be read.
    bool active() const noexcept {
        return !msgs_.empty() && state_ && state_->handle != nullptr && state_->epoch == epoch_;
    }
    // Message `i` (std::out_of_range past the end).
    entry operator[](std::size_t i) const { return entry_at(i); }
    entry at(std::size_t i) const { return entry_at(i); }
    iterator begin() const noexcept { return iterator(this, 0); }
    iterator end() const noexcept { return iterator(this, msgs_.size()); }

    // Ends the batch (shmq_ack_all): its slots are released. Nothing to do
    // if it already ended.
    void ack() {
        if (!active()) {
            return;
        }
        ++state_->epoch;
        detail::check(shmq_ack_all(state_->handle));
    }
  private:
    friend class consumer;
    // Ends the batch as ack() does, quietly (for the destructor).
    void end_quietly() noexcept {
        if (active()) {
            ++state_->epoch;
            (void)shmq_ack_all(state_->handle);
        }
    }
    batch(std::shared_ptr<detail::consumer_state> state, std::vector<shmq_message> msgs) noexcept
        : state_(std::move(state)), epoch_(state_->epoch), msgs_(std::move(msgs)) {}
    entry entry_at(std::size_t i) const {
        if (i >= msgs_.size()) {
            throw std::out_of_range("shmq::batch: index " + std::to_string(i) + " of a batch of " +
                                    std::to_string(msgs_.size()));
        }
        return entry(state_, epoch_, msgs_[i]);
    }

    std::shared_ptr<detail::consumer_state> state_;
    std::uint64_t epoch_ = 0;
    std::vector<shmq_message> msgs_;
};

// ------------------------------------------------------------ reservation --

// A slot reserved by producer::reserve, written in place, then commit()ed
// (published) or abort()ed. Move-only; destruction aborts a pending one
// (so does destroying its producer, after which its data() throws). Keep
// it short: consumers wait for it (past the queue's unblock_timeout they
// abort it, and commit() throws shmq::aborted_error). While it is pending
// its producer's other calls throw shmq::busy_error.
class reservation {
  public:
    reservation() noexcept = default;
    reservation(reservation &&o) noexcept
        : state_(std::move(o.state_)), r_(std::exchange(o.r_, nullptr)),
          data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)),
          ended_(std::exchange(o.ended_, nullptr)) {
        o.state_.reset();
    }
    reservation &operator=(reservation &&o) noexcept {
        if (this != &o) {
            abort_quietly();
            state_ = std::move(o.state_);
            o.state_.reset();
            r_ = std::exchange(o.r_, nullptr);
            data_ = std::exchange(o.data_, nullptr);
            size_ = std::exchange(o.size_, 0);
            ended_ = std::exchange(o.ended_, nullptr);
        }
        return *this;
    }
    reservation(const reservation &) = delete;
    reservation &operator=(const reservation &) = delete;
    ~reservation() { abort_quietly(); }

    // Moved from or default-constructed.
    bool empty() const noexcept { return !state_; }
    // Reserved and not yet committed or aborted (and its producer lives).
    bool pending() const noexcept { return r_ != nullptr && state_ && state_->handle != nullptr; }

    // The reserved bytes, in the queue's slot: write the message here.
    std::uint8_t *data() {
        require("data");
        return data_;
    }
    const std::uint8_t *data() const {
        require("data");
        return data_;
    }
    // The length the message will have (the reserved length, or less
    // after truncate()).
    std::size_t size() const noexcept { return size_; }

    // Sets the message's type_id and correlation_id (meta::key must be
    // empty: a reservation refuses keys, shmq::invalid_argument_error).
    void set_meta(const meta &m) {
        require("set_meta");
        std::vector<shmq_header> storage;
        shmq_meta cm = detail::c_meta(m, storage);
        detail::check(shmq_reservation_set_meta(r_, &cm));
    }
    void set_meta(std::uint32_t type_id, std::uint64_t correlation_id = 0) {
        set_meta(meta{type_id, correlation_id, std::nullopt, std::nullopt, {}});
    }
    // Shrinks the message to `len` bytes (at most the reserved length).
    void truncate(std::size_t len) {
        require("truncate");
        detail::check(shmq_reservation_truncate(r_, len));
        size_ = len;
    }
    // The seq the message will have.
    std::uint64_t seq() const {
        require("seq");
        std::uint64_t s = 0;
        detail::check(shmq_reservation_seq(r_, &s));
        return s;
    }
    // Publishes the message and returns its seq. The reservation ends
    // whatever the result (shmq::aborted_error: consumers gave up on it).
    std::uint64_t commit() {
        require("commit");
        shmq_reservation *r = finish("committed");
        std::uint64_t s = 0;
        detail::check(shmq_commit(r, &s));
        return s;
    }
    // Publishes nothing; consumers skip its position.
    void abort() {
        require("abort");
        detail::check(shmq_abort(finish("aborted")));
    }
  private:
    friend class producer;
    // Aborts a pending reservation, quietly (for the destructor).
    void abort_quietly() noexcept {
        if (pending()) {
            (void)shmq_abort(finish("aborted"));
        }
    }
    reservation(std::shared_ptr<detail::producer_state> state, shmq_reservation *r,
                std::uint8_t *data, std::size_t size) noexcept
        : state_(std::move(state)), r_(r), data_(data), size_(size) {}

    shmq_reservation *finish(const char *why) noexcept {
        ended_ = why;
        data_ = nullptr;
        return std::exchange(r_, nullptr);
    }
    void require(const char *what) const {
        if (!state_) {
            throw null_argument_error(
                std::string("shmq::reservation::") + what +
                ": the reservation is empty (moved from or default-constructed)");
        }
        if (!pending()) {
            std::string why = ended_ != nullptr ? std::string("it was ") + ended_
                                                : "its producer was destroyed, which aborted it";
            throw invalid_argument_error(std::string("shmq::reservation::") + what +
                                         ": the reservation has ended (" + why + ")");
        }
    }

    std::shared_ptr<detail::producer_state> state_;
    shmq_reservation *r_ = nullptr; // its producer's handle under another type
    std::uint8_t *data_ = nullptr;
    std::size_t size_ = 0;
    const char *ended_ = nullptr;
};

// --------------------------------------------------------------- producer --

// Publishes messages. Move-only; made by queue::make_producer.
class producer {
  public:
    producer() noexcept = default;
    producer(producer &&o) noexcept : state_(std::move(o.state_)) { o.state_.reset(); }
    producer &operator=(producer &&o) noexcept {
        if (this != &o) {
            close();
            state_ = std::move(o.state_);
            o.state_.reset();
        }
        return *this;
    }
    producer(const producer &) = delete;
    producer &operator=(const producer &) = delete;
    ~producer() { close(); }

    explicit operator bool() const noexcept { return state_ != nullptr; }
    // Frees the producer now (aborting a pending reservation); it is empty
    // afterwards.
    void close() noexcept {
        if (state_) {
            shmq_producer_free(&state_->handle);
            state_.reset();
        }
    }
    // The C handle (still owned by this object).
    shmq_producer *get() const noexcept { return state_ ? state_->handle : nullptr; }

    // Publishes `data` and returns its seq. On a full ring: waits as long
    // as it takes (overflow=block), or throws shmq::full_error (reject);
    // overflow=spill writes it to disk. shmq::too_large_error past the
    // queue's max_message_size (a message longer than slot_size takes
    // consecutive slots and is one buffer for its reader).
    std::uint64_t publish(bytes_view data) { return publish_(data, meta{}, SHMQ_WAIT_FOREVER); }
    // With metadata (type_id, correlation_id, idempotency key).
    std::uint64_t publish(bytes_view data, const meta &m) {
        return publish_(data, m, SHMQ_WAIT_FOREVER);
    }
    // Waiting at most `timeout` for room: shmq::timeout_error after it
    // (nothing was published).
    template <typename Rep, typename Period>
    std::uint64_t publish(bytes_view data, std::chrono::duration<Rep, Period> timeout) {
        return publish_(data, meta{}, detail::to_ns(timeout));
    }
    template <typename Rep, typename Period>
    std::uint64_t publish(bytes_view data, const meta &m,
                          std::chrono::duration<Rep, Period> timeout) {
        return publish_(data, m, detail::to_ns(timeout));
    }

    // Publishes a batch with as few claims as possible and one wake-up;
    // returns the seq of the first (the others follow in order). A batch
    // that went in only in part throws shmq::partial_batch_error (with how
    // many went in and from which seq); one of which nothing went in
    // throws the error of why (full_error, timeout_error, too_large_error,
    // ...). `msgs` is any range of things a bytes_view can be made of.
    std::uint64_t publish_batch(std::initializer_list<bytes_view> msgs) {
        return publish_batch_(bufs(msgs), SHMQ_WAIT_FOREVER);
    }
    template <typename Rep, typename Period>
    std::uint64_t publish_batch(std::initializer_list<bytes_view> msgs,
                                std::chrono::duration<Rep, Period> timeout) {
        return publish_batch_(bufs(msgs), detail::to_ns(timeout));
    }
    template <typename Range> std::uint64_t publish_batch(const Range &msgs) {
        return publish_batch_(bufs(msgs), SHMQ_WAIT_FOREVER);
    }
    template <typename Range, typename Rep, typename Period>
    std::uint64_t publish_batch(const Range &msgs, std::chrono::duration<Rep, Period> timeout) {
        return publish_batch_(bufs(msgs), detail::to_ns(timeout));
    }

    // Reserves a slot of `len` bytes to write in place (waiting for room
    // like publish; with a timeout: shmq::timeout_error after it). A
    // reservation never spills.
    reservation reserve(std::size_t len) { return reserve_(len, SHMQ_WAIT_FOREVER); }
    template <typename Rep, typename Period>
    reservation reserve(std::size_t len, std::chrono::duration<Rep, Period> timeout) {
        return reserve_(len, detail::to_ns(timeout));
    }

    // The largest payload this producer publishes (the queue's
    // max_message_size).
    std::size_t max_payload() const {
        std::size_t n = 0;
        detail::check(shmq_producer_max_payload(live("max_payload"), &n));
        return n;
    }

  private:
    friend class queue;
    explicit producer(std::shared_ptr<detail::producer_state> state) noexcept
        : state_(std::move(state)) {}

    shmq_producer *live(const char *what) const {
        if (!state_) {
            throw null_argument_error(
                std::string("shmq::producer::") + what +
                ": the producer is empty (moved from, closed or default-constructed)");
        }
        return state_->handle;
    }
    std::uint64_t publish_(bytes_view data, const meta &m, std::uint64_t timeout_ns) {
        shmq_producer *p = live("publish");
        std::vector<shmq_header> storage;
        shmq_meta cm = detail::c_meta(m, storage);
        std::uint64_t seq = 0;
        detail::check(
            shmq_publish_with_timeout(p, data.data(), data.size(), &cm, timeout_ns, &seq));
        return seq;
    }
    template <typename Range> static std::vector<shmq_buf> bufs(const Range &msgs) {
        std::vector<shmq_buf> out;
        for (const auto &m : msgs) {
            bytes_view v(m);
            out.push_back(shmq_buf{v.data(), v.size()});
        }
        return out;
    }
    std::uint64_t publish_batch_(const std::vector<shmq_buf> &msgs, std::uint64_t timeout_ns) {
        shmq_producer *p = live("publish_batch");
        std::uint64_t first = 0;
        std::size_t published = 0;
        shmq_status st = shmq_publish_batch_timeout(p, msgs.empty() ? nullptr : msgs.data(),
                                                    msgs.size(), timeout_ns, &first, &published);
        if (st == SHMQ_OK && published == msgs.size()) {
            return first;
        }
        if (published > 0) {
            if (st == SHMQ_OK) { // the timeout passed after some went in
                throw partial_batch_error(
                    SHMQ_TIMEOUT,
                    "timed out after only " + std::to_string(published) + " of the batch's " +
                        std::to_string(msgs.size()) + " messages were published (from seq " +
                        std::to_string(first) + "); publish the rest again",
                    published, msgs.size(), first);
            }
            throw partial_batch_error(st, detail::last_error(st), published, msgs.size(), first);
        }
        detail::raise_last(st == SHMQ_OK ? SHMQ_OTHER : st);
    }
    reservation reserve_(std::size_t len, std::uint64_t timeout_ns) {
        shmq_producer *p = live("reserve");
        std::uint8_t *data = nullptr;
        shmq_reservation *r = nullptr;
        detail::check(shmq_reserve_timeout(p, len, timeout_ns, &data, &r));
        return reservation(state_, r, data, len);
    }

    std::shared_ptr<detail::producer_state> state_;
};

// --------------------------------------------------------------- consumer --

// The consumer of one group. Move-only; made by queue::make_consumer. Its
// messages and batches stay safe to hold after it is moved or destroyed
// (destruction ends their delivery: their payloads then throw).
class consumer {
  public:
    consumer() noexcept = default;
    consumer(consumer &&o) noexcept : state_(std::move(o.state_)) { o.state_.reset(); }
    consumer &operator=(consumer &&o) noexcept {
        if (this != &o) {
            close();
            state_ = std::move(o.state_);
            o.state_.reset();
        }
        return *this;
    }
    consumer(const consumer &) = delete;
    consumer &operator=(const consumer &) = delete;
    ~consumer() { close(); }

    explicit operator bool() const noexcept { return state_ != nullptr; }
    // Frees the consumer now (its pending delivery ends as a release does;
    // the group keeps its cursor); it is empty afterwards.
    void close() noexcept {
        if (state_) {
            ++state_->epoch;
            shmq_consumer_free(&state_->handle);
            state_.reset();
        }
    }
    // The C handle (still owned by this object; receiving or acking through
    // it directly bypasses the tracking of messages).
    shmq_consumer *get() const noexcept { return state_ ? state_->handle : nullptr; }

    // The next message, waiting as long as it takes. The previous delivery
    // ends first (see message).
    message receive() {
        shmq_message raw{};
        detail::check(receive_(SHMQ_WAIT_FOREVER, raw));
        return message(state_, raw);
    }
    // The next message, or std::nullopt after `timeout`.
    template <typename Rep, typename Period>
    std::optional<message> receive(std::chrono::duration<Rep, Period> timeout) {
        return receive_opt(detail::to_ns(timeout));
    }
    // A message if one is ready, else std::nullopt (no system call).
    std::optional<message> try_receive() { return receive_opt(0); }

    // Up to `max` ready messages, waiting as long as it takes for the
    // first (ack=auto only: shmq::invalid_option_error with ack=manual).
    batch receive_batch(std::size_t max) { return receive_batch_(max, SHMQ_WAIT_FOREVER); }
    // The same, waiting at most `timeout`: an empty batch after it.
    template <typename Rep, typename Period>
    batch receive_batch(std::size_t max, std::chrono::duration<Rep, Period> timeout) {
        return receive_batch_(max, detail::to_ns(timeout));
    }
    batch try_receive_batch(std::size_t max) { return receive_batch_(max, 0); }

    // Ends the current delivery or batch, acknowledging it (ack=manual:
    // shmq::lease_expired_error if its lease was taken away).
    void ack_all() {
        shmq_consumer *c = live("ack_all");
        ++state_->epoch;
        detail::check(shmq_ack_all(c));
    }
    // Moves the group (replay or skip; clamped to what the queue retains)
    // and returns the seq it will receive next. Ends the current delivery.
    std::uint64_t seek(seek_to to) {
        shmq_consumer *c = live("seek");
        ++state_->epoch;
        std::uint64_t next = 0;
        detail::check(shmq_consumer_seek(c, to.whence, to.value, &next));
        return next;
    }
    // The seq this consumer will look at next.
    std::uint64_t position() const {
        std::uint64_t pos = 0;
        detail::check(shmq_consumer_position(live("position"), &pos));
        return pos;
    }
    // Its group's name.
    std::string group() const {
        shmq_consumer *c = live("group");
        return detail::read_text([c](char *buf, std::size_t cap, std::size_t *len) {
            return shmq_consumer_group(c, buf, cap, len);
        });
    }
    shmq::ack_mode ack_mode() const {
        live("ack_mode");
        return static_cast<shmq::ack_mode>(state_->ack);
    }

  private:
    friend class queue;
    explicit consumer(std::shared_ptr<detail::consumer_state> state) noexcept
        : state_(std::move(state)) {}

    shmq_consumer *live(const char *what) const {
        if (!state_) {
            throw null_argument_error(
                std::string("shmq::consumer::") + what +
                ": the consumer is empty (moved from, closed or default-constructed)");
        }
        return state_->handle;
    }
    shmq_status receive_(std::uint64_t timeout_ns, shmq_message &raw) {
        shmq_consumer *c = live("receive");
        ++state_->epoch; // the C call ends the previous delivery, whatever its result
        return shmq_receive(c, timeout_ns, &raw);
    }
    std::optional<message> receive_opt(std::uint64_t timeout_ns) {
        shmq_message raw{};
        shmq_status st = receive_(timeout_ns, raw);
        if (st == SHMQ_TIMEOUT) {
            return std::nullopt;
        }
        detail::check(st);
        return message(state_, raw);
    }
    batch receive_batch_(std::size_t max, std::uint64_t timeout_ns) {
        shmq_consumer *c = live("receive_batch");
        if (max == 0) {
            throw invalid_argument_error("shmq::consumer::receive_batch: max must be at least 1");
        }
        std::vector<shmq_message> msgs(max);
        ++state_->epoch;
        std::size_t n = 0;
        shmq_status st = shmq_receive_batch(c, msgs.data(), max, timeout_ns, &n);
        if (st == SHMQ_TIMEOUT) {
            return batch(state_, {});
        }
        detail::check(st);
        msgs.resize(n);
        return batch(state_, std::move(msgs));
    }

    std::shared_ptr<detail::consumer_state> state_;
};

// ------------------------------------------------------------------ queue --

// An open queue (a mapping of its file). Move-only; closes itself. Its
// producers and consumers keep the mapping alive, so it may be closed
// before them. Thread-safe (except close and assignment).
class queue {
  public:
    // Creates queue `name` (shmq::exists_error if it exists).
    static queue create(std::string_view name, const options &opts = options()) {
        return open_(shmq_queue_create, name, opts);
    }
    // Opens the existing queue `name` (only opts' dir is used;
    // shmq::not_found_error, corrupt_error, incompatible_error).
    static queue open(std::string_view name, const options &opts = options()) {
        return open_(shmq_queue_open, name, opts);
    }
    // Opens queue `name`, creating it with `opts` if it does not exist.
    static queue open_or_create(std::string_view name, const options &opts = options()) {
        return open_(shmq_queue_open_or_create, name, opts);
    }
    // Removes queue `name`'s file (and its spill and journal);
    // shmq::busy_error (naming their pids) while consumers are attached.
    static void remove(std::string_view name, const options &opts = options()) {
        std::string n = detail::name_string(name, "queue name");
        shmq_options o = opts.c_options();
        detail::check(shmq_queue_remove(n.c_str(), &o));
    }
    // Removes it even while consumers are attached (they keep reading the
    // removed file).
    static void remove_forced(std::string_view name, const options &opts = options()) {
        std::string n = detail::name_string(name, "queue name");
        shmq_options o = opts.c_options();
        detail::check(shmq_queue_remove_forced(n.c_str(), &o));
    }

    queue() noexcept = default;
    queue(queue &&o) noexcept : q_(std::exchange(o.q_, nullptr)) {}
    queue &operator=(queue &&o) noexcept {
        if (this != &o) {
            close();
            q_ = std::exchange(o.q_, nullptr);
        }
        return *this;
    }
    queue(const queue &) = delete;
    queue &operator=(const queue &) = delete;
    ~queue() { close(); }

    explicit operator bool() const noexcept { return q_ != nullptr; }
    // Closes the queue now; it is empty afterwards.
    void close() noexcept { shmq_queue_close(&q_); }
    // The C handle (still owned by this object).
    shmq_queue *get() const noexcept { return q_; }

    producer make_producer() const {
        shmq_queue *q = live("make_producer");
        auto state = std::make_shared<detail::producer_state>();
        detail::check(shmq_producer_new(q, &state->handle));
        return producer(std::move(state));
    }
    // The consumer of `group` (created at opts' start if it does not
    // exist). ack=auto: one live consumer per group (shmq::busy_error);
    // ack=manual: any number compete for its messages.
    consumer make_consumer(std::string_view group,
                           const consumer_options &opts = consumer_options()) const {
        shmq_queue *q = live("make_consumer");
        std::string g = detail::name_string(group, "group name");
        auto state = std::make_shared<detail::consumer_state>();
        detail::check(shmq_consumer_new(q, g.c_str(), &opts.c_options(), &state->handle));
        consumer c(std::move(state)); // owns the handle from here on
        shmq_ack_mode mode = SHMQ_ACK_AUTO;
        detail::check(shmq_consumer_ack_mode(c.state_->handle, &mode));
        c.state_->ack = mode;
        return c;
    }

    // Writes the mapping back to its file and waits.
    void flush() const { detail::check(shmq_queue_flush(live("flush"))); }

    // Groups.
    void create_group(std::string_view group, start_at start = start_at::earliest()) const {
        shmq_queue *q = live("create_group");
        std::string g = detail::name_string(group, "group name");
        detail::check(shmq_group_create(q, g.c_str(), start.kind, start.value));
    }
    // shmq::busy_error while a consumer is attached.
    void delete_group(std::string_view group) const {
        shmq_queue *q = live("delete_group");
        std::string g = detail::name_string(group, "group name");
        detail::check(shmq_group_delete(q, g.c_str()));
    }
    // Moves a group with no consumer attached; returns its next seq.
    std::uint64_t seek_group(std::string_view group, seek_to to) const {
        shmq_queue *q = live("seek_group");
        std::string g = detail::name_string(group, "group name");
        std::uint64_t next = 0;
        detail::check(shmq_group_seek(q, g.c_str(), to.whence, to.value, &next));
        return next;
    }
    std::vector<group_info> groups() const {
        shmq_queue *q = live("groups");
        return detail::read_array<group_info>(
            [q](group_info *out, std::size_t cap, std::size_t *n) {
                return shmq_groups(q, out, cap, n);
            });
    }
    // shmq::not_found_error if there is no such group.
    group_info group_stats(std::string_view group) const {
        shmq_queue *q = live("group_stats");
        std::string g = detail::name_string(group, "group name");
        group_info info{};
        detail::check(shmq_group_stats(q, g.c_str(), &info));
        return info;
    }
    // A copy of the ordering key of the oldest unfinished message of
    // `group` (which key holds it up); std::nullopt if that message has no
    // key or the group has nothing unfinished. shmq::not_found_error if
    // there is no such group.
    std::optional<std::string> group_oldest_unacked_key(std::string_view group) const {
        shmq_queue *q = live("group_oldest_unacked_key");
        std::string g = detail::name_string(group, "group name");
        std::string key =
            detail::read_bytes([&](std::uint8_t *buf, std::size_t cap, std::size_t *len) {
                return shmq_group_oldest_unacked_key(q, g.c_str(), buf, cap, len);
            });
        if (key.empty()) {
            return std::nullopt;
        }
        return key;
    }
    queue_stats stats() const {
        queue_stats s{};
        detail::check(shmq_stats(live("stats"), &s));
        return s;
    }

    // Getters.
    std::string name() const { return text_(shmq_queue_name, "name"); }
    std::string path() const { return text_(shmq_queue_path, "path"); }
    // The spill directory, or std::nullopt if the queue does not spill.
    std::optional<std::string> spill_dir() const {
        try {
            return text_(shmq_queue_spill_dir, "spill_dir");
        } catch (const not_found_error &) {
            return std::nullopt;
        }
    }

    // The dead-letter queue.
    std::uint64_t dlq_len() const {
        std::uint64_t n = 0;
        detail::check(shmq_dlq_len(live("dlq_len"), &n));
        return n;
    }
    // The dead letters (waiting, or redriven and not finished), oldest first.
    std::vector<dead_letter> dlq_list() const {
        shmq_queue *q = live("dlq_list");
        return detail::read_array<dead_letter>(
            [q](dead_letter *out, std::size_t cap, std::size_t *n) {
                return shmq_dlq_list(q, out, cap, n);
            });
    }
    // A copy of the payload of the dead letter of `seq`, of `group` (empty:
    // of any group). shmq::not_found_error if there is none.
    std::string dlq_payload(std::uint64_t seq, std::string_view group = {}) const {
        shmq_queue *q = live("dlq_payload");
        std::string g = detail::name_string(group, "group name");
        const char *gp = g.empty() ? nullptr : g.c_str();
        return detail::read_bytes([&](std::uint8_t *buf, std::size_t cap, std::size_t *len) {
            return shmq_dlq_payload(q, seq, gp, buf, cap, len);
        });
    }
    // A copy of the ordering key of the dead letter of `seq`, of `group`
    // (empty: of any group); std::nullopt if it has none.
    // shmq::not_found_error if there is no such dead letter.
    std::optional<std::string> dlq_ordering_key(std::uint64_t seq,
                                                std::string_view group = {}) const {
        shmq_queue *q = live("dlq_ordering_key");
        std::string g = detail::name_string(group, "group name");
        const char *gp = g.empty() ? nullptr : g.c_str();
        std::string key =
            detail::read_bytes([&](std::uint8_t *buf, std::size_t cap, std::size_t *len) {
                return shmq_dlq_ordering_key(q, seq, gp, buf, cap, len);
            });
        if (key.empty()) {
            return std::nullopt; // keys are 1 to SHMQ_MAX_ORDERING_KEY bytes
        }
        return key;
    }
    // Copies of the headers (name, value) of the dead letter of `seq`, of
    // `group` (empty: of any group), in the order they were published.
    // shmq::not_found_error if there is no such dead letter.
    std::vector<std::pair<std::string, std::string>>
    dlq_headers(std::uint64_t seq, std::string_view group = {}) const {
        shmq_queue *q = live("dlq_headers");
        std::string g = detail::name_string(group, "group name");
        const char *gp = g.empty() ? nullptr : g.c_str();
        std::size_t count = 0;
        bool found = false;
        for (const dead_letter &d : dlq_list()) {
            if (d.seq == seq && (g.empty() || g == d.group)) {
                count = d.headers_len;
                found = true;
                break;
            }
        }
        if (!found) {
            // The C API's own NOT_FOUND, with its message.
            std::size_t len = 0;
            detail::check(shmq_dlq_ordering_key(q, seq, gp, nullptr, 0, &len));
        }
        std::vector<std::pair<std::string, std::string>> out;
        for (std::size_t i = 0; i < count; i++) {
            std::size_t name_len = 0, value_len = 0;
            detail::check(shmq_dlq_header(q, seq, gp, i, nullptr, 0, &name_len, nullptr, 0,
                                          &value_len));
            std::string name(name_len, '\0'), value(value_len, '\0');
            detail::check(shmq_dlq_header(
                q, seq, gp, i, reinterpret_cast<std::uint8_t *>(name.data()), name.size(),
                &name_len, reinterpret_cast<std::uint8_t *>(value.data()), value.size(),
                &value_len));
            name.resize(std::min(name_len, name.size()));
            value.resize(std::min(value_len, value.size()));
            out.emplace_back(std::move(name), std::move(value));
        }
        return out;
    }
    // Sends every dead letter back to the group that dead-lettered it;
    // returns how many.
    std::uint64_t dlq_redrive() const { return redrive_(nullptr); }
    // Sends those of `seq` back (shmq::not_found_error if none).
    std::uint64_t dlq_redrive(std::uint64_t seq) const { return redrive_(&seq); }
    // Sends every dead letter back, waiting up to `timeout` for ring room
    // for the keyed ones (shmq::forever: as long as it takes). Keyed ones
    // still without room stay in the DLQ and it throws shmq::timeout_error
    // (what() says how many went, how many stayed, and which group holds
    // the ring).
    template <typename Rep, typename Period>
    std::uint64_t dlq_redrive_for(std::chrono::duration<Rep, Period> timeout) const {
        return redrive_(nullptr, detail::to_ns(timeout));
    }
    // Deletes the waiting dead letters; returns how many.
    std::uint64_t dlq_purge() const {
        std::uint64_t n = 0;
        detail::check(shmq_dlq_purge(live("dlq_purge"), &n));
        return n;
    }

    // Scheduled messages (meta::delay, meta::deliver_at,
    // options::delivery_delay): the first `limit`, earliest due first (the
    // schedule is read whole up to them, payloads included: ask for what
    // you need; stats().scheduled says how many there are).
    std::vector<scheduled_message> scheduled(std::size_t limit = 100) const {
        std::vector<scheduled_message> out(limit);
        std::size_t total = 0;
        detail::check(shmq_queue_scheduled(live("scheduled"), out.empty() ? nullptr : out.data(),
                                           out.size(), &total));
        // Fewer than `limit` scheduled: the listing wrote that many.
        out.resize(std::min(total, out.size()));
        return out;
    }
    // A copy of the payload of the scheduled message `id` (its publish's
    // return). shmq::not_found_error if it is not scheduled (it came due
    // and went into the ring, or was cancelled).
    std::string scheduled_payload(std::uint64_t id) const {
        shmq_queue *q = live("scheduled_payload");
        return detail::read_bytes([&](std::uint8_t *buf, std::size_t cap, std::size_t *len) {
            return shmq_queue_scheduled_payload(q, id, buf, cap, len);
        });
    }
    // A copy of its ordering key; std::nullopt if it has none.
    std::optional<std::string> scheduled_ordering_key(std::uint64_t id) const {
        shmq_queue *q = live("scheduled_ordering_key");
        std::string key =
            detail::read_bytes([&](std::uint8_t *buf, std::size_t cap, std::size_t *len) {
                return shmq_queue_scheduled_ordering_key(q, id, buf, cap, len);
            });
        if (key.empty()) {
            return std::nullopt; // keys are 1 to SHMQ_MAX_ORDERING_KEY bytes
        }
        return key;
    }
    // Copies of its headers (name, value), in the order they were published.
    std::vector<std::pair<std::string, std::string>> scheduled_headers(std::uint64_t id) const {
        shmq_queue *q = live("scheduled_headers");
        std::vector<std::pair<std::string, std::string>> out;
        for (std::size_t i = 0;; i++) {
            std::size_t name_len = 0, value_len = 0;
            shmq_status st = shmq_queue_scheduled_header(q, id, i, nullptr, 0, &name_len, nullptr,
                                                         0, &value_len);
            if (st == SHMQ_INVALID_ARGUMENT) {
                return out; // past the last header (a missing message is NOT_FOUND)
            }
            detail::check(st);
            std::string name(name_len, '\0'), value(value_len, '\0');
            detail::check(shmq_queue_scheduled_header(
                q, id, i, reinterpret_cast<std::uint8_t *>(name.data()), name.size(), &name_len,
                reinterpret_cast<std::uint8_t *>(value.data()), value.size(), &value_len));
            name.resize(std::min(name_len, name.size()));
            value.resize(std::min(value_len, value.size()));
            out.emplace_back(std::move(name), std::move(value));
        }
    }
    // Cancels the scheduled message `id`: it will not be delivered. False
    // if it is not scheduled (it came due and went into the ring, or was
    // cancelled before).
    bool cancel_scheduled(std::uint64_t id) const {
        bool cancelled = false;
        detail::check(shmq_queue_cancel_scheduled(live("cancel_scheduled"), id, &cancelled));
        return cancelled;
    }
    // Cancels the scheduled message published with idempotency key `key`
    // (meta::key; the earliest due if several are). The key stays
    // remembered.
    bool cancel_scheduled_key(bytes_view key) const {
        bool cancelled = false;
        detail::check(shmq_queue_cancel_scheduled_key(live("cancel_scheduled_key"),
                                                      detail::non_null(key), key.size(),
                                                      &cancelled));
        return cancelled;
    }

  private:
    explicit queue(shmq_queue *q) noexcept : q_(q) {}

    template <typename Fn> static queue open_(Fn fn, std::string_view name, const options &opts) {
        std::string n = detail::name_string(name, "queue name");
        shmq_options o = opts.c_options();
        shmq_queue *q = nullptr;
        detail::check(fn(n.c_str(), &o, &q));
        return queue(q);
    }
    shmq_queue *live(const char *what) const {
        if (q_ == nullptr) {
            throw null_argument_error(
                std::string("shmq::queue::") + what +
                ": the queue is empty (moved from, closed or default-constructed)");
        }
        return q_;
    }
    template <typename Fn> std::string text_(Fn fn, const char *what) const {
        shmq_queue *q = live(what);
        return detail::read_text(
            [q, fn](char *buf, std::size_t cap, std::size_t *len) { return fn(q, buf, cap, len); });
    }
    std::uint64_t redrive_(const std::uint64_t *seq, std::uint64_t timeout_ns = 0) const {
        std::uint64_t n = 0;
        detail::check(shmq_dlq_redrive_timeout(live("dlq_redrive"), seq, timeout_ns, &n));
        return n;
    }

    shmq_queue *q_ = nullptr;
};

// The directory queues live in when options::dir is not set ($SHMQ_DIR,
// else /dev/shm; read at each call).
inline std::string default_dir() {
    return detail::read_text([](char *buf, std::size_t cap, std::size_t *len) {
        return shmq_default_dir(buf, cap, len);
    });
}

} // namespace shmq

#endif // SHMQ_HPP
