// hello.cpp - the C++17 API (include/shmq.hpp): RAII handles, messages that
// own their delivery, std::chrono timeouts, errors as exceptions.
//
//   c++ -std=c++17 -Iinclude examples/c/hello.cpp -Ltarget/release -lshmq_ffi
//       -Wl,-rpath,"$PWD/target/release" -o hello_cpp    (one line)
#include <cstdio>
#include <cstring>

#include "shmq.hpp"

using namespace std::chrono_literals;

static unsigned long long ull(std::uint64_t v) { return static_cast<unsigned long long>(v); }

int main() {
    // No dir: $SHMQ_DIR, else /dev/shm (`make run` sets a private SHMQ_DIR).
    const auto opts = shmq::options().slots(1024).slot_size(256);
    try {
        auto q = shmq::queue::open_or_create("hello-cpp", opts);
        auto consumer = q.make_consumer("printer");
        auto producer = q.make_producer();
        producer.publish("hello", shmq::meta{1, 0, std::nullopt});
        producer.publish("from C++", shmq::meta{1, 1, std::nullopt});
        // Zero-copy: write the payload straight into the queue's slot.
        auto r = producer.reserve(5);
        std::memcpy(r.data(), "in-pl", 5);
        r.commit();
        producer.publish_batch({"batch-1", "batch-2"});
        while (auto m = consumer.receive(100ms)) {
            std::printf("seq %llu: %.*s\n", ull(m->seq()), static_cast<int>(m->text().size()),
                        m->text().data());
            m->ack(); // from here on m->text() throws: the slot may be reused
        }

        // At-least-once: a manual-ack worker, an idempotent publish, a nack
        // (delivered again, attempt 2) and the dead-letter queue.
        auto worker =
            q.make_consumer("workers", shmq::consumer_options().ack(shmq::ack_mode::manual));
        auto first = producer.publish("charge #42", shmq::meta{0, 0, "order-42"});
        auto again = producer.publish("charge #42", shmq::meta{0, 0, "order-42"}); // not enqueued
        std::printf("keyed publish: seq %llu, retried: seq %llu\n", ull(first), ull(again));
        while (auto m = worker.receive(100ms)) {
            if (m->seq() == first && m->attempt() == 1) {
                m->nack(); // try it again
            } else if (m->seq() == first) {
                std::printf("seq %llu done on attempt %u\n", ull(m->seq()), m->attempt());
                m->ack();
            } else {
                m->dead_letter(); // the earlier messages: poison
            }
        }
        for (const shmq::dead_letter &d : q.dlq_list()) {
            std::printf("dead letter seq %llu of %s: %s\n", ull(d.seq), d.group,
                        q.dlq_payload(d.seq, d.group).c_str());
        }
        std::printf("purged %llu dead letters\n", ull(q.dlq_purge()));
        try {
            shmq::queue::open("no-such-queue", opts);
        } catch (const shmq::not_found_error &e) {
            std::printf("expected error: %s (status %d)\n", e.what(), static_cast<int>(e.code()));
        }
    } catch (const shmq::error &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    shmq::queue::remove("hello-cpp", opts);
    return 0;
}
