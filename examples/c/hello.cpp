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
