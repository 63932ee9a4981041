// shmq.hpp - header-only C++17 RAII wrapper over shmq.h. Link -lshmq_ffi.
//
// Errors become shmq::error (with the shmq_status and shmq_last_error());
// a receive that times out returns std::nullopt. Handles are move-only and
// free themselves. Thread rules are those of shmq.h: a queue may be shared
// between threads; a producer or consumer is used by one thread at a time.
#ifndef SHMQ_HPP
#define SHMQ_HPP

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shmq.h"

namespace shmq {

// A failed call: its status and shmq_last_error() at the time.
class error : public std::runtime_error {
  public:
    explicit error(shmq_status status)
        : std::runtime_error(std::string(shmq_status_str(status)) + ": " + shmq_last_error()),
          status_(status) {}
    shmq_status status() const noexcept { return status_; }

  private:
    shmq_status status_;
};

inline void check(shmq_status status) {
    if (status != SHMQ_OK) {
        throw error(status);
    }
}

// A received message, borrowed in place: valid until the consumer's next
// receive, ack, nack or destruction. With ack manual, a message not acked
// or nacked by then is given back to the group (delivered again).
struct message {
    shmq_message raw;
    std::string_view text() const {
        return {reinterpret_cast<const char *>(raw.data), raw.len};
    }
    const std::uint8_t *data() const { return raw.data; }
    std::size_t size() const { return raw.len; }
    std::uint64_t seq() const { return raw.seq; }
    std::uint32_t type_id() const { return raw.type_id; }
    std::uint64_t correlation_id() const { return raw.correlation_id; }
    std::uint64_t timestamp_ns() const { return raw.timestamp_ns; }
    std::uint32_t attempt() const { return raw.attempt; }
};

class producer {
  public:
    explicit producer(shmq_producer *p) : p_(p) {}
    producer(producer &&o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    producer &operator=(producer &&o) noexcept {
        std::swap(p_, o.p_);
        return *this;
    }
    producer(const producer &) = delete;
    producer &operator=(const producer &) = delete;
    ~producer() { shmq_producer_free(&p_); }

    // Publishes `bytes`; returns its seq.
    std::uint64_t publish(std::string_view bytes, std::uint32_t type_id = 0,
                          std::uint64_t correlation_id = 0) {
        shmq_meta meta{};
        meta.type_id = type_id;
        meta.correlation_id = correlation_id;
        std::uint64_t seq = 0;
        check(shmq_publish_with(p_, reinterpret_cast<const std::uint8_t *>(bytes.data()),
                                bytes.size(), &meta, &seq));
        return seq;
    }

    // Publishes `bytes` with an idempotency key: a key the queue still
    // remembers enqueues nothing and returns the first message's seq.
    std::uint64_t publish_keyed(std::string_view bytes, std::string_view key,
                                std::uint32_t type_id = 0, std::uint64_t correlation_id = 0) {
        shmq_meta meta{};
        meta.type_id = type_id;
        meta.correlation_id = correlation_id;
        meta.key = reinterpret_cast<const std::uint8_t *>(key.data());
        meta.key_len = key.size();
        std::uint64_t seq = 0;
        check(shmq_publish_with(p_, reinterpret_cast<const std::uint8_t *>(bytes.data()),
                                bytes.size(), &meta, &seq));
        return seq;
    }

    // Writes a message of `len` bytes in place: `fill(uint8_t *buf)` writes
    // it; returns its seq. If `fill` throws, the reservation is aborted.
    template <typename Fill> std::uint64_t publish_in_place(std::size_t len, Fill fill) {
        std::uint8_t *buf = nullptr;
        shmq_reservation *r = nullptr;
        check(shmq_reserve(p_, len, &buf, &r));
        try {
            fill(buf);
        } catch (...) {
            shmq_abort(r);
            throw;
        }
        std::uint64_t seq = 0;
        check(shmq_commit(r, &seq));
        return seq;
    }

    shmq_producer *get() const noexcept { return p_; }

  private:
    shmq_producer *p_;
};

class consumer {
  public:
    explicit consumer(shmq_consumer *c) : c_(c) {}
    consumer(consumer &&o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
    consumer &operator=(consumer &&o) noexcept {
        std::swap(c_, o.c_);
        return *this;
    }
    consumer(const consumer &) = delete;
    consumer &operator=(const consumer &) = delete;
    ~consumer() { shmq_consumer_free(&c_); }

    // The next message, or nullopt after `timeout_ns` (0: poll,
    // SHMQ_WAIT_FOREVER: wait).
    std::optional<message> receive(std::uint64_t timeout_ns = SHMQ_WAIT_FOREVER) {
        message m{};
        shmq_status st = shmq_receive(c_, timeout_ns, &m.raw);
        if (st == SHMQ_TIMEOUT) {
            return std::nullopt;
        }
        check(st);
        return m;
    }

    // Finishes `m` (throws shmq::error with SHMQ_LEASE_EXPIRED if, with
    // ack manual, its lease was taken away first).
    void ack(const message &m) { check(shmq_ack(c_, &m.raw)); }

    // Ack manual: gives `m` back (SHMQ_NACK_REQUEUE, SHMQ_NACK_REQUEUE_AFTER
    // with `delay_ns`) or dead-letters it (SHMQ_NACK_DEAD_LETTER).
    void nack(const message &m, shmq_nack_kind kind = SHMQ_NACK_REQUEUE,
              std::uint64_t delay_ns = 0) {
        check(shmq_nack(c_, &m.raw, kind, delay_ns));
    }

    // Ack manual: extends `m`'s lease to `extension_ns` from now.
    void extend_lease(const message &m, std::uint64_t extension_ns) {
        check(shmq_extend_lease(c_, &m.raw, extension_ns));
    }

    shmq_consumer *get() const noexcept { return c_; }

  private:
    shmq_consumer *c_;
};

class queue {
  public:
    // Creates queue `name` with `opts` (see shmq_options_default()).
    static queue create(const std::string &name, const shmq_options &opts) {
        shmq_queue *q = nullptr;
        check(shmq_queue_create(name.c_str(), &opts, &q));
        return queue(q);
    }
    static queue open(const std::string &name, const shmq_options &opts) {
        shmq_queue *q = nullptr;
        check(shmq_queue_open(name.c_str(), &opts, &q));
        return queue(q);
    }
    static queue open_or_create(const std::string &name, const shmq_options &opts) {
        shmq_queue *q = nullptr;
        check(shmq_queue_open_or_create(name.c_str(), &opts, &q));
        return queue(q);
    }
    static void remove(const std::string &name, const shmq_options &opts) {
        check(shmq_queue_remove(name.c_str(), &opts));
    }

    queue(queue &&o) noexcept : q_(std::exchange(o.q_, nullptr)) {}
    queue &operator=(queue &&o) noexcept {
        std::swap(q_, o.q_);
        return *this;
    }
    queue(const queue &) = delete;
    queue &operator=(const queue &) = delete;
    ~queue() { shmq_queue_close(&q_); }

    producer make_producer() const {
        shmq_producer *p = nullptr;
        check(shmq_producer_new(q_, &p));
        return producer(p);
    }
    consumer make_consumer(const std::string &group,
                           shmq_consumer_options opts = shmq_consumer_options_default()) const {
        shmq_consumer *c = nullptr;
        check(shmq_consumer_new(q_, group.c_str(), &opts, &c));
        return consumer(c);
    }
    void create_group(const std::string &group, shmq_start start = SHMQ_START_EARLIEST,
                      std::uint64_t seq = 0) const {
        check(shmq_group_create(q_, group.c_str(), start, seq));
    }
    shmq_queue_stats stats() const {
        shmq_queue_stats s{};
        check(shmq_stats(q_, &s));
        return s;
    }

    // The dead-letter queue.
    std::uint64_t dlq_len() const {
        std::uint64_t n = 0;
        check(shmq_dlq_len(q_, &n));
        return n;
    }
    std::vector<shmq_dead_letter> dlq_list() const {
        std::vector<shmq_dead_letter> out;
        std::size_t count = 0;
        do { // grows until a snapshot fits
            out.resize(count + 8);
            check(shmq_dlq_list(q_, out.data(), out.size(), &count));
        } while (count > out.size());
        out.resize(count);
        return out;
    }
    // The payload of the dead letter of `seq` (of `group`; empty: any).
    std::string dlq_payload(std::uint64_t seq, const std::string &group = "") const {
        const char *g = group.empty() ? nullptr : group.c_str();
        std::string out;
        std::size_t len = 0;
        do { // grows until it fits
            out.resize(len);
            check(shmq_dlq_payload(q_, seq, g, reinterpret_cast<std::uint8_t *>(out.data()),
                                   out.size(), &len));
        } while (len > out.size());
        out.resize(len);
        return out;
    }
    // Redrives all dead letters, or those of `seq`; returns how many.
    std::uint64_t dlq_redrive(std::optional<std::uint64_t> seq = std::nullopt) const {
        std::uint64_t n = 0;
        check(shmq_dlq_redrive(q_, seq ? &*seq : nullptr, &n));
        return n;
    }
    std::uint64_t dlq_purge() const {
        std::uint64_t n = 0;
        check(shmq_dlq_purge(q_, &n));
        return n;
    }

    const shmq_queue *get() const noexcept { return q_; }

  private:
    explicit queue(shmq_queue *q) : q_(q) {}
    shmq_queue *q_;
};

} // namespace shmq

#endif // SHMQ_HPP
