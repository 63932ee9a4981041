// hello.cpp - the C++17 RAII wrapper (include/shmq.hpp).
//
//   c++ -std=c++17 -Iinclude examples/c/hello.cpp -Ltarget/release -lshmq_ffi
//       -Wl,-rpath,"$PWD/target/release" -o hello_cpp    (one line)
#include <cstdio>
#include <cstring>

#include "shmq.hpp"

int main() {
    shmq_options opts = shmq_options_default();
    opts.slots = 1024;
    opts.slot_size = 256;
    try {
        auto q = shmq::queue::open_or_create("hello-cpp", opts);
        auto consumer = q.make_consumer("printer");
        auto producer = q.make_producer();
        producer.publish("hello", 1, 0);
        producer.publish("from C++", 1, 1);
        // Zero-copy: write the payload straight into the queue's slot.
        producer.publish_in_place(5, [](std::uint8_t *buf) { std::memcpy(buf, "in-pl", 5); });
        while (auto m = consumer.receive(100'000'000 /* 100 ms */)) {
            std::printf("seq %llu: %.*s\n", static_cast<unsigned long long>(m->seq()),
                        static_cast<int>(m->size()), m->text().data());
            consumer.ack(*m);
        }

        // At-least-once: a manual-ack worker, an idempotent publish, a nack
        // (delivered again, attempt 2) and the dead-letter queue.
        shmq_consumer_options manual = shmq_consumer_options_default();
        manual.ack = SHMQ_ACK_MANUAL;
        auto worker = q.make_consumer("workers", manual);
        auto first = producer.publish_keyed("charge #42", "order-42");
        auto again = producer.publish_keyed("charge #42", "order-42"); // not enqueued
        std::printf("keyed publish: seq %llu, retried: seq %llu\n",
                    static_cast<unsigned long long>(first), static_cast<unsigned long long>(again));
        while (auto m = worker.receive(100'000'000)) {
            if (m->seq() == first && m->attempt() == 1) {
                worker.nack(*m); // try it again
            } else if (m->seq() == first) {
                std::printf("seq %llu done on attempt %u\n",
                            static_cast<unsigned long long>(m->seq()), m->attempt());
                worker.ack(*m);
            } else {
                worker.nack(*m, SHMQ_NACK_DEAD_LETTER); // the earlier messages: poison
            }
        }
        for (const shmq_dead_letter &d : q.dlq_list()) {
            std::printf("dead letter seq %llu of %s: %s\n", static_cast<unsigned long long>(d.seq),
                        d.group, q.dlq_payload(d.seq, d.group).c_str());
        }
        std::printf("purged %llu dead letters\n", static_cast<unsigned long long>(q.dlq_purge()));
        try {
            shmq::queue::open("no-such-queue", opts);
        } catch (const shmq::error &e) {
            std::printf("expected error: %s (status %d)\n", e.what(), static_cast<int>(e.status()));
        }
    } catch (const shmq::error &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    shmq::queue::remove("hello-cpp", opts);
    return 0;
}
