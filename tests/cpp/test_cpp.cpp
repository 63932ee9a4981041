// The C++ API (include/shmq.hpp): every class and the failure modes the
// wrapper exists for. A received message owns its delivery and refuses to
// be read once it ended (ack, nack, destruction, the next receive, a seek,
// ack_all, the consumer's end); moved-from objects are empty; timeouts are
// durations and a full ring never hangs; a partial batch says how much
// went in; errors carry the status and the library's message once.
//
// Built and run under ASan + UBSan by ffi/tests/c_suite.rs.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "check.hpp"

using namespace std::chrono_literals;
using check::test_dir;

namespace {

std::size_t count_of(std::string_view haystack, std::string_view needle) {
    std::size_t n = 0;
    for (std::size_t at = haystack.find(needle); at != std::string_view::npos;
         at = haystack.find(needle, at + 1)) {
        n++;
    }
    return n;
}

// The library's version and the error type: status, message, subclasses.
void test_version_and_errors() {
    test_dir d("errors");
    CHECK_EQ(shmq::version(), shmq::header_version);
    CHECK_EQ(shmq::abi_version(), shmq::header_abi_version);
    CHECK_EQ(shmq::header_version, std::string_view(SHMQ_VERSION_STRING));
    CHECK_EQ(std::string(shmq::status_str(SHMQ_BUSY)), "busy");
    static_assert(shmq::timeout_error::status == SHMQ_TIMEOUT, "one type per status");
    static_assert(std::is_base_of<shmq::error, shmq::partial_batch_error>::value, "");
    static_assert(std::is_base_of<std::runtime_error, shmq::error>::value, "");

    // Caught by its own type, as shmq::error and as std::runtime_error.
    CHECK_THROWS_WITH(shmq::not_found_error, shmq::queue::open("missing", d.opts(16, 64)),
                      "not found");
    try {
        shmq::queue::open("missing", d.opts(16, 64));
        CHECK(!"open of a missing queue throws");
    } catch (const shmq::error &e) {
        CHECK_EQ(e.code(), SHMQ_NOT_FOUND);
        CHECK_EQ(std::string(e.code_name()), "not found");
        // The library's message, as it is: the status is not said twice.
        CHECK_EQ(std::string(e.what()), std::string(shmq_last_error()));
        CHECK_EQ(count_of(e.what(), "not found"), 1u);
        CHECK(std::string(e.what()).find("missing") != std::string::npos);
    }
    try {
        shmq::queue::open("missing", d.opts(16, 64));
    } catch (const std::runtime_error &e) {
        CHECK(std::strstr(e.what(), "not found") != nullptr);
    }

    // "invalid option: ..." from the library: not "invalid option: invalid option: ...".
    try {
        shmq::queue::create("bad-slots", d.opts(3, 64));
        CHECK(!"3 slots is refused");
    } catch (const shmq::invalid_option_error &e) {
        CHECK_EQ(e.code(), SHMQ_INVALID_OPTION);
        CHECK_EQ(count_of(e.what(), "invalid option"), 1u);
        CHECK(std::strstr(e.what(), "slots") != nullptr);
    }

    // A timeout's message is "timed out", once.
    auto q = shmq::queue::create("errors", d.opts(2, 64));
    q.create_group("g");
    auto p = q.make_producer();
    p.publish("1");
    p.publish("2");
    try {
        p.publish("3", 0ms);
        CHECK(!"a full ring times out");
    } catch (const shmq::timeout_error &e) {
        CHECK_EQ(std::string(e.what()), "timed out");
        CHECK_EQ(e.code(), SHMQ_TIMEOUT);
    }
    // overflow=reject: "queue is full ..." once.
    auto r = shmq::queue::create("errors-reject",
                                 d.opts(2, 64).overflow(shmq::overflow_policy::reject));
    r.create_group("g");
    auto rp = r.make_producer();
    rp.publish("1");
    rp.publish("2");
    try {
        rp.publish("3");
        CHECK(!"a full ring with overflow=reject throws");
    } catch (const shmq::full_error &e) {
        CHECK_EQ(count_of(e.what(), "full"), 1u);
        CHECK_EQ(e.code(), SHMQ_FULL);
    }
    CHECK_EQ(r.stats().rejected, 1u);
    shmq::queue::remove("errors", d.opts(2, 64));
    shmq::queue::remove("errors-reject", d.opts(2, 64));
}

// create / open / open_or_create / remove, options, names, getters.
void test_queue_lifecycle() {
    test_dir d("lifecycle");
    // The defaults are the C defaults; dir and spill_dir unset.
    shmq_options def = shmq_options_default();
    shmq_options got = shmq::options().c_options();
    CHECK(std::memcmp(&def, &got, sizeof def) == 0);
    CHECK(got.dir == nullptr && got.spill_dir == nullptr);
    // (c_options() points into its options object: keep that alive.)
    const shmq::options set = d.opts(64, 128)
                                  .lease(2s)
                                  .max_deliveries(3)
                                  .dlq_slots(8)
                                  .dedup_window(16)
                                  .dedup_ttl(1min)
                                  .unblock_timeout(250ms)
                                  .mode(0640)
                                  .max_groups(4);
    got = set.c_options();
    CHECK(got.slots == 64 && got.slot_size == 128);
    CHECK(got.lease_ms == 2000 && got.max_deliveries == 3);
    CHECK(got.dlq_slots == 8 && got.dedup_window == 16 && got.dedup_ttl_ms == 60000);
    CHECK(got.unblock_timeout_ms == 250 && got.mode == 0640 && got.max_groups == 4);
    CHECK_EQ(std::string(got.dir), d.path());

    {
        auto q = shmq::queue::create("life", d.opts(64, 128).max_groups(4));
        CHECK(static_cast<bool>(q));
        CHECK(q.get() != nullptr);
        CHECK_EQ(q.name(), "life");
        CHECK_EQ(q.path(), d.path() + "/life.shmq");
        CHECK(!q.spill_dir().has_value());
        CHECK_NOTHROW(q.flush());
        CHECK_THROWS_WITH(shmq::exists_error, shmq::queue::create("life", d.opts(64, 128)),
                          "exists");
        // open uses only dir; open_or_create keeps what the file says.
        auto o = shmq::queue::open("life", shmq::options().dir(d.path()));
        CHECK_EQ(o.stats().slots, 64u);
        auto oc = shmq::queue::open_or_create("life", d.opts(1024, 16));
        CHECK_EQ(oc.stats().slot_size, 128u);
        // The C struct constructor copies its strings.
        shmq_options raw = shmq_options_default();
        std::string dir = d.path();
        raw.dir = dir.c_str();
        shmq::options from_raw(raw);
        dir.assign(dir.size(), 'x');
        CHECK_EQ(shmq::queue::open("life", from_raw).name(), "life");
    }
    shmq::queue::remove("life", d.opts(64, 128));
    CHECK_THROWS(shmq::not_found_error, shmq::queue::open("life", d.opts(64, 128)));
    CHECK_THROWS(shmq::not_found_error, shmq::queue::remove("life", d.opts(64, 128)));
    {
        auto q = shmq::queue::open_or_create("made", d.opts(16, 64));
        CHECK_EQ(q.stats().slots, 16u);
    }
    shmq::queue::remove("made", d.opts(16, 64));

    // Names: the library's rules, and a NUL (which would cut the name short
    // in C) refused by the wrapper before C sees it.
    CHECK_THROWS(shmq::invalid_name_error, shmq::queue::create("bad/name", d.opts(16, 64)));
    CHECK_THROWS_WITH(shmq::invalid_name_error,
                      shmq::queue::create(std::string_view("cut\0short", 9), d.opts(16, 64)),
                      "NUL");
    CHECK(!std::filesystem::exists(d.path() + "/cut.shmq"));
    CHECK_THROWS_WITH(shmq::invalid_option_error, shmq::options().dir(std::string_view("a\0b", 3)),
                      "NUL");
    CHECK_THROWS_WITH(shmq::invalid_option_error,
                      shmq::queue::create("empty-dir", shmq::options().dir("")), "dir");

    // The default directory: $SHMQ_DIR.
    setenv("SHMQ_DIR", d.path().c_str(), 1);
    CHECK_EQ(shmq::default_dir(), d.path());
    {
        auto q = shmq::queue::create("in-default", shmq::options().slots(16).slot_size(64));
        CHECK_EQ(q.path(), d.path() + "/in-default.shmq");
    }
    shmq::queue::remove("in-default");
    unsetenv("SHMQ_DIR");
    CHECK_EQ(shmq::default_dir(), "/dev/shm");

    // Closed (or moved-from) queue: empty; its producers and consumers live on.
    auto q = shmq::queue::create("closed", d.opts(16, 64));
    auto p = q.make_producer();
    auto c = q.make_consumer("g");
    auto moved = std::move(q);
    CHECK(!q);
    CHECK(q.get() == nullptr);
    CHECK_THROWS_WITH(shmq::null_argument_error, q.stats(), "empty");
    CHECK_THROWS(shmq::null_argument_error, q.make_producer());
    CHECK_THROWS(shmq::null_argument_error, q.dlq_len());
    moved.close();
    moved.close(); // twice: a no-op
    CHECK(!moved);
    CHECK_EQ(p.publish("after close"), 0u);
    auto m = c.receive(1s);
    REQUIRE(m.has_value());
    CHECK_EQ(m->text(), "after close");
    shmq::queue::remove("closed", d.opts(16, 64));
}

// Publish with and without metadata, payloads of every kind, receive.
void test_round_trip() {
    test_dir d("round-trip");
    // Messages of at most a slot, as asked (a ring of 64 slots of 128
    // bytes would take messages of half of it).
    auto q = shmq::queue::create("rt", d.opts(64, 128).max_message_size(128));
    auto c = q.make_consumer("g");
    auto p = q.make_producer();
    CHECK_EQ(p.max_payload(), 128u);

    auto before = std::chrono::system_clock::now();
    CHECK_EQ(p.publish("hello"), 0u);
    const std::string with_nul("a\0b", 3);
    CHECK_EQ(p.publish(with_nul), 1u);
    const std::vector<std::uint8_t> bytes{0, 1, 2, 255};
    CHECK_EQ(p.publish(bytes), 2u);
    const std::array<std::byte, 2> arr{std::byte{7}, std::byte{8}};
    CHECK_EQ(p.publish(arr), 3u);
    CHECK_EQ(p.publish("typed", shmq::meta{7, 0xfeedfacecafebeefull, std::nullopt}), 4u);
    CHECK_EQ(p.publish(shmq::bytes_view()), 5u); // empty payload
    CHECK_EQ(p.publish(std::string_view("view"), 1s), 6u);
    CHECK_EQ(p.publish("both", {3, 4, std::nullopt}, 1s), 7u);
    auto after = std::chrono::system_clock::now();

    auto m = c.receive();
    CHECK_EQ(m.text(), "hello");
    CHECK(m.data() == "hello");
    CHECK_EQ(m.size(), 5u);
    CHECK_EQ(m.seq(), 0u);
    CHECK_EQ(m.attempt(), 1u);
    CHECK_EQ(m.type_id(), 0u);
    CHECK(m.timestamp() >= before - 1s && m.timestamp() <= after + 1s);
    CHECK_EQ(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                            m.timestamp().time_since_epoch())
                                            .count()),
             m.timestamp_ns());
    m.ack();
    m = c.receive(1s).value();
    CHECK_EQ(m.text(), with_nul);
    m = c.receive(1s).value();
    CHECK(std::equal(m.data().begin(), m.data().end(), bytes.begin(), bytes.end()));
    CHECK(m.data() == shmq::bytes_view(bytes));
    m = c.receive(1s).value();
    CHECK(m.data() == shmq::bytes_view(arr));
    m = c.receive(1s).value();
    CHECK_EQ(m.text(), "typed");
    CHECK_EQ(m.type_id(), 7u);
    CHECK_EQ(m.correlation_id(), 0xfeedfacecafebeefull);
    m = c.receive(1s).value();
    CHECK(m.data().empty());
    CHECK_EQ(m.text(), "");
    m = c.receive(1s).value();
    CHECK_EQ(m.text(), "view");
    m = c.receive(1s).value();
    CHECK(m.text() == "both" && m.type_id() == 3 && m.correlation_id() == 4);
    m.ack();
    CHECK(!c.try_receive().has_value());

    auto s = q.stats();
    CHECK(s.published == 8 && s.next_seq == 8);
    CHECK(s.producers == 1 && s.consumers == 1 && s.groups == 1);
    CHECK_EQ(s.depth, 0u);

    // Refused payloads: too large; a NULL pointer with a length (caught by
    // the library, reported as an exception).
    CHECK_THROWS_WITH(shmq::too_large_error, p.publish(std::string(129, 'x')), "max_message_size");
    CHECK_THROWS_WITH(shmq::null_argument_error, p.publish(shmq::bytes_view(nullptr, 3)), "data");
    CHECK_EQ(q.stats().published, 8u);
    shmq::queue::remove("rt", d.opts(64, 128));
}

// The ring sized in bytes: 256 KiB of 64-byte slots.
void test_capacity() {
    test_dir d("capacity");
    auto o = shmq::options().dir(d.path()).capacity(256 << 10).slot_size(32);
    auto q = shmq::queue::create("cap", o);
    CHECK_EQ(q.stats().slots, 4096u);
    CHECK_EQ(q.stats().capacity, 256u << 10);
    auto c = q.make_consumer("g");
    auto p = q.make_producer();
    const std::string frame(100000, 'f');
    p.publish("event");
    p.publish(frame);
    {
        auto m = c.receive();
        CHECK_EQ(m.text(), "event");
    }
    auto m = c.receive();
    CHECK_EQ(m.text(), frame);
    // Both sizes of the ring: refused.
    CHECK_THROWS_WITH(shmq::invalid_option_error,
                      shmq::queue::create("both", d.opts(64, 32).capacity(1 << 20)),
                      "give one of them");
    shmq::queue::remove("cap", o);
}

// Expiry: a message's ttl and the queue's, discarded and counted, or
// dead-lettered with the reason.
void test_expiry() {
    using namespace std::chrono_literals;
    test_dir d("expiry");
    auto q = shmq::queue::create("exp", d.opts(16, 64));
    q.create_group("g", shmq::start_at::earliest());
    auto p = q.make_producer();
    shmq::meta brief;
    brief.ttl = 1ms;
    p.publish("stale", brief);
    std::this_thread::sleep_for(20ms);
    p.publish("fresh");
    auto c = q.make_consumer("g");
    CHECK_EQ(c.receive().text(), "fresh");
    auto dead = q.dlq_list();
    CHECK_EQ(dead.size(), 1u);
    CHECK(dead[0].reason == SHMQ_DLQ_REASON_EXPIRED);
    CHECK_EQ(q.group_stats("g").messages_expired, 1u);
    auto o = d.opts(16, 64).message_ttl(1ms).on_expiry(shmq::on_expiry_policy::discard);
    auto q2 = shmq::queue::create("exp2", o);
    q2.create_group("g", shmq::start_at::earliest());
    q2.make_producer().publish("dropped");
    std::this_thread::sleep_for(20ms);
    auto c2 = q2.make_consumer("g");
    CHECK(!c2.receive(10ms).has_value());
    CHECK_EQ(q2.group_stats("g").messages_expired, 1u);
    CHECK_EQ(q2.dlq_list().size(), 0u);
    shmq::queue::remove("exp", d.opts(16, 64));
    shmq::queue::remove("exp2", o);
}

// Scheduled delivery: a message's delay (not received before its time,
// received after) and deliver_at, the listing, cancel by id and by key,
// the stats, the queue's delivery_delay. The schedule is kept in the test's
// directory (spill_dir), and removed with the queue.
void test_schedule() {
    using namespace std::chrono_literals;
    test_dir d("schedule");
    auto o = d.opts(16, 64).spill_dir(d.path() + "/store");
    auto q = shmq::queue::create("sched", o);
    q.create_group("g", shmq::start_at::earliest());
    auto p = q.make_producer();
    auto t0 = std::chrono::steady_clock::now();
    shmq::meta later;
    later.delay = 500ms;
    later.type_id = 4;
    auto later_id = p.publish("later", later);
    shmq::meta far;
    far.deliver_at = std::chrono::system_clock::now() + 1h;
    far.ordering_key = shmq::bytes_view("k");
    far.headers = {{"h", "v"}};
    auto far_id = p.publish("far", far);
    shmq::meta keyed;
    keyed.delay = 2h;
    keyed.key = shmq::bytes_view("reminder-7");
    auto keyed_id = p.publish("remind", keyed);
    p.publish("now");
    auto s = q.stats();
    CHECK_EQ(s.scheduled, 3u);
    CHECK(s.next_due_ns != 0);
    auto listed = q.scheduled();
    CHECK_EQ(listed.size(), 3u);
    CHECK_EQ(listed[0].id, later_id);
    CHECK_EQ(listed[0].type_id, 4u);
    CHECK_EQ(listed[1].id, far_id);
    CHECK_EQ(listed[2].id, keyed_id);
    CHECK(listed[2].keyed);
    CHECK_EQ(q.scheduled(1).size(), 1u);
    CHECK_EQ(q.scheduled_payload(far_id), "far");
    CHECK(q.scheduled_ordering_key(far_id) == std::optional<std::string>("k"));
    CHECK(!q.scheduled_ordering_key(later_id).has_value());
    auto headers = q.scheduled_headers(far_id);
    CHECK_EQ(headers.size(), 1u);
    CHECK(headers[0] == std::make_pair(std::string("h"), std::string("v")));
    CHECK(q.scheduled_headers(later_id).empty());
    CHECK_THROWS_WITH(shmq::not_found_error, q.scheduled_payload(999999), "not found");
    auto c = q.make_consumer("g");
    CHECK_EQ(c.receive().text(), "now");
    if (check::since(t0) < 400ms) {
        CHECK(!c.receive(20ms).has_value());
    }
    CHECK_EQ(c.receive(5s)->text(), "later");
    CHECK(check::since(t0) >= 500ms);
    CHECK(q.cancel_scheduled(far_id));
    CHECK(!q.cancel_scheduled(far_id));
    CHECK(q.cancel_scheduled_key("reminder-7"));
    CHECK(!q.cancel_scheduled_key("reminder-7"));
    s = q.stats();
    CHECK_EQ(s.scheduled, 0u);
    CHECK_EQ(s.scheduled_cancelled, 2u);
    CHECK_EQ(s.next_due_ns, 0u);
    CHECK(q.scheduled().empty());

    // The queue's own delay; a reservation is refused.
    auto o2 = d.opts(16, 64).spill_dir(d.path() + "/store2").delivery_delay(50ms);
    auto q2 = shmq::queue::create("sched2", o2);
    q2.create_group("g", shmq::start_at::earliest());
    auto p2 = q2.make_producer();
    auto t1 = std::chrono::steady_clock::now();
    p2.publish("delayed");
    CHECK_EQ(q2.stats().scheduled, 1u);
    CHECK_THROWS_WITH(shmq::invalid_option_error, p2.reserve(4), "delivery_delay");
    auto c2 = q2.make_consumer("g");
    CHECK_EQ(c2.receive(5s)->text(), "delayed");
    CHECK(check::since(t1) >= 50ms);
    c.close();
    c2.close();
    shmq::queue::remove("sched", o);
    shmq::queue::remove("sched2", o2);
}

// Defect 1: a message read after its delivery ended threw nothing and read
// reused memory. Now every way a delivery ends makes the payload throw.
void test_message_lifetime() {
    test_dir d("lifetime");
    auto q = shmq::queue::create("life", d.opts(16, 64));
    auto c = q.make_consumer("g");
    auto p = q.make_producer();

    p.publish("first");
    auto m = c.receive();
    CHECK(m.active() && !m.empty());
    CHECK_EQ(m.text(), "first");
    m.ack();
    CHECK(!m.active() && !m.empty());
    CHECK_THROWS_WITH(shmq::invalid_argument_error, m.text(), "acked");
    CHECK_THROWS_WITH(shmq::invalid_argument_error, m.data(), "no longer readable");
    CHECK_THROWS(shmq::invalid_argument_error, m.ack());
    CHECK_THROWS(shmq::invalid_argument_error, m.nack());
    CHECK_THROWS(shmq::invalid_argument_error, m.extend_lease(1s));
    CHECK_EQ(m.seq(), 0u); // the metadata stays readable
    CHECK_EQ(m.size(), 5u);
    // Ten more go through the ring over its slot: still refused.
    for (int i = 0; i < 10; i++) {
        p.publish("overwrite-" + std::to_string(i));
        auto n = c.receive(1s);
        REQUIRE(n.has_value());
        CHECK_EQ(n->text(), "overwrite-" + std::to_string(i));
        n->ack();
    }
    CHECK_THROWS(shmq::invalid_argument_error, m.text());

    // The next receive ends the previous delivery.
    p.publish("a");
    p.publish("b");
    auto a = c.receive();
    auto b = c.receive();
    CHECK(!a.active());
    CHECK_THROWS_WITH(shmq::invalid_argument_error, a.text(), "received again");
    CHECK_EQ(b.text(), "b");
    // So does a receive that times out.
    CHECK(!c.try_receive().has_value());
    CHECK_THROWS(shmq::invalid_argument_error, b.text());

    // Moved from: empty; the new owner has the delivery.
    p.publish("moved");
    auto src = c.receive();
    shmq::message dst = std::move(src);
    CHECK(src.empty() && !src.active());
    CHECK_THROWS_WITH(shmq::null_argument_error, src.text(), "empty");
    CHECK_THROWS(shmq::null_argument_error, src.data());
    CHECK_THROWS(shmq::null_argument_error, src.seq());
    CHECK_THROWS(shmq::null_argument_error, src.ack());
    CHECK(dst.active());
    CHECK_EQ(dst.text(), "moved");
    shmq::message assigned;
    CHECK(assigned.empty());
    CHECK_THROWS(shmq::null_argument_error, assigned.text());
    assigned = std::move(dst);
    CHECK(dst.empty());
    CHECK_EQ(assigned.text(), "moved");
    // In a std::optional too.
    std::optional<shmq::message> held = std::move(assigned);
    CHECK_EQ(held->text(), "moved");
    held->ack();

    // A seek ends it; so does ack_all.
    p.publish("seek");
    auto s = c.receive();
    CHECK_EQ(c.seek(shmq::seek_to::latest()), q.stats().next_seq);
    CHECK_THROWS(shmq::invalid_argument_error, s.text());
    p.publish("ack-all");
    auto all = c.receive();
    c.ack_all();
    CHECK_THROWS(shmq::invalid_argument_error, all.text());
    c.ack_all(); // nothing pending: fine

    // A message outliving its consumer: ended, and safe to destroy.
    auto orphan_seq = p.publish("orphan");
    auto orphan = c.receive();
    c.close();
    CHECK(!c);
    CHECK(!orphan.active());
    CHECK_THROWS_WITH(shmq::invalid_argument_error, orphan.text(), "consumer was destroyed");
    CHECK_EQ(orphan.seq(), orphan_seq);
    shmq::queue::remove("life", d.opts(16, 64));
}

// Destruction (or give_back) gives a delivery back as C does on release.
void test_destruction_gives_back() {
    test_dir d("give-back");
    auto q = shmq::queue::create("manual", d.opts(16, 64));
    auto c = q.make_consumer("work", shmq::consumer_options().ack(shmq::ack_mode::manual));
    CHECK(c.ack_mode() == shmq::ack_mode::manual);
    auto p = q.make_producer();
    auto seq = p.publish("again");
    {
        auto m = c.receive();
        CHECK(m.seq() == seq && m.attempt() == 1);
    } // not acked: given back
    auto m = c.receive(1s);
    REQUIRE(m.has_value());
    CHECK(m->seq() == seq && m->attempt() == 2 && m->text() == "again");
    m->give_back();
    CHECK(!m->active());
    CHECK_THROWS_WITH(shmq::invalid_argument_error, m->text(), "given back");
    m->give_back(); // a no-op now
    m = c.receive(1s);
    REQUIRE(m.has_value());
    CHECK_EQ(m->attempt(), 3u);
    // Assigning over a pending message gives it back too.
    m = shmq::message();
    m = c.receive(1s);
    REQUIRE(m.has_value());
    CHECK_EQ(m->attempt(), 4u);
    m->ack();
    CHECK(!c.try_receive().has_value());
    auto g = q.group_stats("work");
    CHECK_EQ(g.acked, 1u);
    CHECK_EQ(g.redelivered, 3u);
    CHECK_EQ(g.in_flight, 0u);

    // A consumer destroyed with a delivery pending gives it back.
    seq = p.publish("orphan");
    auto held = c.receive();
    c = shmq::consumer(); // frees the old consumer
    CHECK(!held.active());
    c = q.make_consumer("work", shmq::consumer_options().ack(shmq::ack_mode::manual));
    auto again = c.receive(1s);
    REQUIRE(again.has_value());
    CHECK(again->seq() == seq && again->attempt() == 2);
    again->ack();
    shmq::queue::remove("manual", d.opts(16, 64));

    // ack=auto: a message holds its slot; destroying it frees the slot.
    auto a = shmq::queue::create("auto", d.opts(4, 64));
    auto ac = a.make_consumer("g");
    auto ap = a.make_producer();
    for (int i = 0; i < 4; i++) {
        ap.publish("fill");
    }
    {
        auto first = ac.receive();
        CHECK_THROWS(shmq::timeout_error, ap.publish("more", 20ms));
    }
    CHECK_EQ(ap.publish("more", 1s), 4u);
    shmq::queue::remove("auto", d.opts(4, 64));
}

// Defect 2: durations; a full ring with a timeout does not hang.
void test_timeouts() {
    test_dir d("timeouts");
    auto q = shmq::queue::create("t", d.opts(4, 64));
    auto c = q.make_consumer("slow");
    auto t0 = std::chrono::steady_clock::now();
    CHECK(!c.receive(50ms).has_value());
    auto waited = check::since(t0);
    CHECK(waited >= 45ms && waited < 5s);
    CHECK(!c.try_receive().has_value());
    CHECK(!c.receive(0ms).has_value());
    CHECK(!c.receive(-5ms).has_value()); // negative: a poll
    CHECK(!c.receive(std::chrono::duration<double, std::milli>(1.5)).has_value());
    CHECK(c.receive_batch(4, 20ms).empty());

    // A full ring (overflow=block): publish, reserve and batch time out.
    auto p = q.make_producer();
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(p.publish("fill", 100ms), static_cast<std::uint64_t>(i));
    }
    t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH(shmq::timeout_error, p.publish("more", 50ms), "timed out");
    waited = check::since(t0);
    CHECK(waited >= 45ms && waited < 5s);
    CHECK_THROWS(shmq::timeout_error, p.publish("more", 0ms));
    CHECK_THROWS(shmq::timeout_error, p.publish("more", shmq::meta{1, 2, std::nullopt}, 10ms));
    CHECK_THROWS(shmq::timeout_error, p.reserve(4, 20ms));
    bool partial = false, timed_out = false;
    try {
        p.publish_batch({"x", "y"}, 20ms);
    } catch (const shmq::partial_batch_error &) {
        partial = true; // nothing went in: not a partial batch
    } catch (const shmq::timeout_error &) {
        timed_out = true;
    }
    CHECK(timed_out && !partial);
    CHECK_EQ(q.stats().published, 4u);
    // Room again once the consumer moves on.
    auto m = c.receive(shmq::forever);
    REQUIRE(m.has_value());
    m->ack();
    CHECK_EQ(p.publish("more", 1s), 4u);

    // The conversion: 0 and less do not wait, forever is forever.
    CHECK_EQ(shmq::detail::to_ns(0ms), 0u);
    CHECK_EQ(shmq::detail::to_ns(-1s), 0u);
    CHECK_EQ(shmq::detail::to_ns(3ms), 3000000u);
    CHECK_EQ(shmq::detail::to_ns(std::chrono::duration<double, std::milli>(1.5)), 1500000u);
    CHECK_EQ(shmq::detail::to_ns(shmq::forever), SHMQ_WAIT_FOREVER);
    CHECK_EQ(shmq::detail::to_ns(std::chrono::hours::max()), SHMQ_WAIT_FOREVER);
    shmq::queue::remove("t", d.opts(4, 64));
}

// publish_batch, and a batch that goes in only in part.
void test_publish_batch() {
    test_dir d("batch-publish");
    auto q = shmq::queue::create("b", d.opts(64, 64).max_message_size(64));
    auto c = q.make_consumer("g");
    auto p = q.make_producer();
    CHECK_EQ(p.publish_batch({"a", "bb", "ccc"}), 0u);
    const std::vector<std::string> strings{"d", "e", "f", "g", "h"};
    CHECK_EQ(p.publish_batch(strings), 3u);
    const std::vector<shmq::bytes_view> views{"i", "j"};
    CHECK_EQ(p.publish_batch(views, 1s), 8u);
    const char *expect[] = {"a", "bb", "ccc", "d", "e", "f", "g", "h", "i", "j"};
    for (std::uint64_t i = 0; i < 10; i++) {
        auto m = c.receive(1s);
        REQUIRE(m.has_value());
        CHECK(m->seq() == i && m->text() == expect[i]);
    }
    // Refused whole: empty, or one too large.
    CHECK_THROWS_WITH(shmq::invalid_argument_error, p.publish_batch(std::vector<std::string>{}),
                      "0 messages");
    CHECK_THROWS(shmq::too_large_error, p.publish_batch({"ok", std::string(65, 'x')}));
    CHECK_EQ(q.stats().published, 10u);
    shmq::queue::remove("b", d.opts(64, 64));

    std::vector<std::string> ten;
    for (int i = 0; i < 10; i++) {
        ten.push_back("p" + std::to_string(i));
    }
    const std::vector<std::string> rest(ten.begin() + 8, ten.end());
    // overflow=reject, 8 slots: 8 go in, then the cause (full).
    auto rq = shmq::queue::create("partial-reject",
                                  d.opts(8, 64).overflow(shmq::overflow_policy::reject));
    rq.create_group("g");
    auto rp = rq.make_producer();
    try {
        rp.publish_batch(ten);
        CHECK(!"a partial batch throws");
    } catch (const shmq::partial_batch_error &e) {
        CHECK_EQ(e.code(), SHMQ_FULL);
        CHECK_EQ(e.published(), 8u);
        CHECK_EQ(e.count(), 10u);
        CHECK_EQ(e.first_seq(), 0u);
        CHECK(std::strstr(e.what(), "only 8 of the batch's 10") != nullptr);
    }
    CHECK_EQ(rq.stats().published, 8u);
    // The rest finds no room at all: a plain full_error.
    CHECK_THROWS(shmq::full_error, rp.publish_batch(rest));
    // Caught as shmq::error too.
    try {
        rp.publish_batch(ten);
    } catch (const shmq::error &e) {
        CHECK_EQ(e.code(), SHMQ_FULL);
    }
    shmq::queue::remove("partial-reject", d.opts(8, 64));

    // overflow=block with a timeout: 8 go in, then the timeout.
    auto bq = shmq::queue::create("partial-block", d.opts(8, 64));
    auto bc = bq.make_consumer("g");
    auto bp = bq.make_producer();
    std::size_t published = 0;
    try {
        bp.publish_batch(ten, 200ms);
        CHECK(!"a partial batch throws");
    } catch (const shmq::partial_batch_error &e) {
        CHECK_EQ(e.code(), SHMQ_TIMEOUT);
        CHECK(e.published() == 8 && e.first_seq() == 0 && e.count() == 10);
        CHECK(std::strstr(e.what(), "8 of the batch's 10") != nullptr);
        published = e.published();
    }
    CHECK_THROWS(shmq::timeout_error, bp.publish_batch(rest, 50ms));
    // Consume, then publish only the rest.
    for (std::size_t i = 0; i < published; i++) {
        auto m = bc.receive(1s);
        REQUIRE(m.has_value());
        CHECK_EQ(m->text(), ten[i]);
        m->ack();
    }
    CHECK_EQ(bp.publish_batch(rest, 1s), 8u);
    auto b = bc.receive_batch(8, 1s);
    CHECK(b.size() == 2 && b[0].text() == "p8" && b[1].text() == "p9");
    shmq::queue::remove("partial-block", d.opts(8, 64));
}

// reserve / commit / abort, written in place, and misuse.
void test_reserve_commit() {
    test_dir d("reserve");
    auto q = shmq::queue::create("r", d.opts(16, 64));
    auto c = q.make_consumer("g");
    auto p = q.make_producer();

    auto r = p.reserve(5);
    CHECK(r.pending() && !r.empty());
    CHECK_EQ(r.size(), 5u);
    std::memcpy(r.data(), "hello", 5);
    r.set_meta(7, 9);
    CHECK_EQ(r.seq(), 0u);
    r.truncate(4);
    CHECK_EQ(r.size(), 4u);
    CHECK_THROWS(shmq::invalid_argument_error, r.truncate(5)); // past the reserved length
    // Busy meanwhile: the producer's other calls are refused.
    CHECK_THROWS_WITH(shmq::busy_error, p.publish("x"), "reservation pending");
    CHECK_THROWS(shmq::busy_error, p.reserve(1));
    // Keys are for publish, not reservations.
    CHECK_THROWS_WITH(shmq::invalid_argument_error, r.set_meta(shmq::meta{1, 0, "key"}), "key");
    CHECK(r.pending());
    CHECK_EQ(r.commit(), 0u);
    CHECK(!r.pending());
    CHECK_THROWS_WITH(shmq::invalid_argument_error, r.data(), "committed");
    CHECK_THROWS(shmq::invalid_argument_error, r.commit());
    CHECK_THROWS(shmq::invalid_argument_error, r.abort());
    auto m = c.receive(1s);
    REQUIRE(m.has_value());
    CHECK(m->text() == "hell" && m->type_id() == 7 && m->correlation_id() == 9);

    // Aborted: its position is skipped.
    r = p.reserve(3);
    r.abort();
    CHECK_THROWS_WITH(shmq::invalid_argument_error, r.data(), "aborted");
    // Destroyed pending: aborted, and the producer is free again.
    {
        auto pending = p.reserve(3);
        std::memcpy(pending.data(), "abc", 3);
    }
    // Assigned over while pending: aborted too.
    auto over = p.reserve(2);
    over = shmq::reservation();
    CHECK(over.empty());
    CHECK_EQ(p.publish("after"), 4u);
    m = c.receive(1s);
    REQUIRE(m.has_value());
    CHECK(m->seq() == 4 && m->text() == "after");
    CHECK_EQ(q.stats().aborted, 3u);

    // Moved from: empty.
    auto src = p.reserve(1);
    shmq::reservation dst = std::move(src);
    CHECK(src.empty() && !src.pending());
    CHECK_THROWS_WITH(shmq::null_argument_error, src.data(), "empty");
    CHECK_THROWS(shmq::null_argument_error, src.commit());
    dst.data()[0] = 'z';
    // ... and the producer moved meanwhile: the reservation follows.
    auto p2 = std::move(p);
    CHECK(!p);
    CHECK_THROWS_WITH(shmq::null_argument_error, p.publish("x"), "empty");
    CHECK_EQ(dst.commit(), 5u);
    CHECK_THROWS(shmq::too_large_error, p2.reserve(65));

    // A reservation outliving its producer: aborted by the producer's free,
    // refused afterwards, and its destruction touches nothing freed.
    auto orphan = p2.reserve(4);
    p2.close();
    CHECK(!orphan.pending());
    CHECK_THROWS_WITH(shmq::invalid_argument_error, orphan.data(), "producer was destroyed");
    CHECK_THROWS(shmq::invalid_argument_error, orphan.commit());
    m = c.receive(1s);
    REQUIRE(m.has_value());
    CHECK_EQ(m->text(), "z");
    CHECK(!c.receive(50ms).has_value());
    shmq::queue::remove("r", d.opts(16, 64));
}

// receive_batch: entries, their end, misuse.
void test_receive_batch() {
    test_dir d("batch-receive");
    auto q = shmq::queue::create("rb", d.opts(16, 64));
    auto c = q.make_consumer("g");
    auto p = q.make_producer();
    for (int i = 0; i < 10; i++) {
        p.publish("m" + std::to_string(i));
    }
    auto b = c.receive_batch(4, 1s);
    REQUIRE(b.size() == 4);
    CHECK(b.active() && !b.empty());
    std::uint64_t want = 0;
    for (auto e : b) {
        CHECK(e.seq() == want && e.text() == "m" + std::to_string(want) && e.attempt() == 1);
        want++;
    }
    CHECK(b.at(3).data() == "m3");
    CHECK_THROWS(std::out_of_range, b[4]);
    auto kept = b[0];
    b.ack();
    CHECK(!b.active() && !kept.active());
    CHECK_THROWS_WITH(shmq::invalid_argument_error, kept.text(), "has ended");
    CHECK_EQ(kept.seq(), 0u); // metadata is a copy
    b.ack();                  // ended: nothing to do

    // The next receive ends a batch.
    auto b2 = c.receive_batch(4);
    auto first = b2[0];
    auto m = c.receive();
    CHECK(!b2.active());
    CHECK_THROWS(shmq::invalid_argument_error, first.data());
    CHECK_EQ(m.seq(), 8u);
    // A receive_batch ends a message.
    auto b3 = c.try_receive_batch(8);
    CHECK(!m.active());
    CHECK(b3.size() == 1 && b3[0].text() == "m9");
    // Moved: the entries follow the delivery, not the object.
    auto e3 = b3[0];
    shmq::batch moved = std::move(b3);
    CHECK(b3.empty() && !b3.active());
    CHECK(moved.active());
    CHECK_EQ(e3.text(), "m9");
    CHECK(c.try_receive_batch(8).empty()); // ends `moved`
    CHECK_THROWS(shmq::invalid_argument_error, e3.text());
    CHECK_THROWS(shmq::invalid_argument_error, c.receive_batch(0, 1ms));

    // A batch holds its slots (ack=auto) until it ends.
    auto full = shmq::queue::create("rb-full", d.opts(4, 64));
    auto fc = full.make_consumer("g");
    auto fp = full.make_producer();
    fp.publish_batch({"1", "2", "3", "4"});
    {
        auto held = fc.receive_batch(4);
        CHECK_EQ(held.size(), 4u);
        CHECK_THROWS(shmq::timeout_error, fp.publish("5", 10ms));
    }
    CHECK_EQ(fp.publish("5", 1s), 4u);
    shmq::queue::remove("rb-full", d.opts(4, 64));

    // ack=manual: batches refused.
    auto mc = q.make_consumer("manual", shmq::consumer_options().ack(shmq::ack_mode::manual));
    CHECK_THROWS_WITH(shmq::invalid_option_error, mc.receive_batch(4, 1ms), "ack=auto");
    shmq::queue::remove("rb", d.opts(16, 64));
}

// Seeks of a consumer and of a group, and positions.
void test_seek_and_position() {
    test_dir d("seek");
    auto q = shmq::queue::create("s", d.opts(64, 64));
    auto c = q.make_consumer("s");
    auto p = q.make_producer();
    for (int i = 0; i < 3; i++) {
        p.publish("m" + std::to_string(i));
    }
    std::this_thread::sleep_for(5ms); // message 3 is stamped after the others
    for (int i = 3; i < 10; i++) {
        p.publish("m" + std::to_string(i));
    }
    std::uint64_t ts3 = 0;
    std::chrono::system_clock::time_point tp3;
    for (std::uint64_t i = 0; i < 5; i++) {
        auto m = c.receive(1s);
        REQUIRE(m.has_value());
        CHECK_EQ(m->seq(), i);
        if (i == 3) {
            ts3 = m->timestamp_ns();
            tp3 = m->timestamp();
        }
        m->ack();
    }
    CHECK_EQ(c.position(), 5u);
    CHECK_EQ(c.seek(shmq::seek_to::seq(2)), 2u);
    CHECK_EQ(c.position(), 2u);
    CHECK_EQ(c.receive().seq(), 2u);
    CHECK_EQ(c.seek(shmq::seek_to::earliest()), 0u);
    CHECK_EQ(c.receive().seq(), 0u);
    CHECK_EQ(c.seek(shmq::seek_to::latest()), 10u);
    CHECK(!c.try_receive().has_value());
    CHECK_EQ(c.seek(shmq::seek_to::time_ns(ts3)), 3u);
    CHECK_EQ(c.receive().text(), "m3");
    CHECK_EQ(c.seek(shmq::seek_to::time(tp3)), 3u);
    // A group with no consumer attached.
    c.close();
    CHECK_EQ(q.seek_group("s", shmq::seek_to::seq(7)), 7u);
    CHECK_EQ(q.group_stats("s").next, 7u);
    c = q.make_consumer("s");
    CHECK_EQ(c.receive().text(), "m7");
    CHECK_THROWS(shmq::not_found_error, q.seek_group("nope", shmq::seek_to::earliest()));
    shmq::queue::remove("s", d.opts(64, 64));
}

// Groups: create (every start), delete, list, stats; consumer getters.
void test_groups() {
    test_dir d("groups");
    auto q = shmq::queue::create("g", d.opts(64, 64).max_groups(8));
    q.create_group("early");
    auto p = q.make_producer();
    for (int i = 0; i < 3; i++) {
        p.publish("m");
    }
    q.create_group("late", shmq::start_at::latest());
    q.create_group("from1", shmq::start_at::seq(1));
    CHECK_THROWS_WITH(shmq::exists_error, q.create_group("early"), "exists");
    CHECK_THROWS(shmq::invalid_name_error, q.create_group("bad name"));
    CHECK_THROWS_WITH(shmq::invalid_name_error, q.create_group(std::string_view("a\0b", 3)), "NUL");
    CHECK_THROWS(shmq::invalid_name_error, q.create_group(std::string(49, 'g')));

    auto groups = q.groups();
    CHECK_EQ(groups.size(), 3u);
    std::set<std::string> names;
    for (const auto &g : groups) {
        names.insert(g.name);
    }
    CHECK(names == std::set<std::string>({"early", "late", "from1"}));
    CHECK_EQ(q.stats().groups, 3u);
    auto early = q.group_stats("early");
    CHECK(early.lag == 3 && early.committed == 0);
    CHECK(!early.consumer_attached && early.created_ns > 0);
    CHECK_EQ(q.group_stats("late").next, 3u);
    CHECK_EQ(q.group_stats("from1").next, 1u);
    CHECK_THROWS(shmq::not_found_error, q.group_stats("missing"));

    auto late = q.make_consumer("late");
    CHECK(!late.try_receive().has_value());
    auto from1 =
        q.make_consumer("from1", shmq::consumer_options().wait(shmq::wait_strategy::spin_yield));
    CHECK_EQ(from1.group(), "from1");
    CHECK(from1.ack_mode() == shmq::ack_mode::automatic);
    CHECK_EQ(from1.receive(1s)->seq(), 1u);
    CHECK(q.group_stats("from1").consumer_attached);
    // ack=auto: one consumer per group.
    CHECK_THROWS(shmq::busy_error, q.make_consumer("from1"));
    // Not while attached; then it goes.
    CHECK_THROWS(shmq::busy_error, q.delete_group("from1"));
    from1.close();
    q.delete_group("from1");
    CHECK_EQ(q.groups().size(), 2u);
    CHECK_THROWS(shmq::not_found_error, q.delete_group("from1"));
    // A consumer that makes its group, at its start.
    auto fresh = q.make_consumer("fresh", shmq::consumer_options()
                                              .start(shmq::start_at::latest())
                                              .wait(shmq::wait_strategy::busy_spin));
    CHECK_EQ(fresh.position(), 3u);
    p.publish("new");
    CHECK_EQ(fresh.receive(1s)->text(), "new");
    auto at = q.make_consumer("at2", shmq::consumer_options().start(shmq::start_at::seq(2)));
    CHECK_EQ(at.receive(1s)->seq(), 2u);
    // An ack mode the library does not know.
    shmq_consumer_options bad = shmq_consumer_options_default();
    bad.ack = 5;
    CHECK_THROWS(shmq::invalid_option_error, q.make_consumer("bad", shmq::consumer_options(bad)));
    shmq::queue::remove("g", d.opts(64, 64));
}

// ack=manual: competing consumers, nack and redelivery, leases.
void test_manual_ack() {
    test_dir d("manual");
    auto q = shmq::queue::create("work", d.opts(64, 64));
    const auto manual = shmq::consumer_options().ack(shmq::ack_mode::manual);
    auto c1 = q.make_consumer("work", manual);
    auto c2 = q.make_consumer("work", manual); // no busy_error: manual
    auto p = q.make_producer();
    for (int i = 0; i < 6; i++) {
        p.publish("job-" + std::to_string(i));
    }
    std::set<std::uint64_t> seen;
    for (int i = 0; i < 3; i++) {
        auto m1 = c1.receive(1s);
        auto m2 = c2.receive(1s);
        REQUIRE(m1.has_value() && m2.has_value());
        CHECK(m1->seq() != m2->seq());
        CHECK_EQ(m2->text(), "job-" + std::to_string(m2->seq()));
        seen.insert(m1->seq());
        seen.insert(m2->seq());
        m2->ack(); // out of order
        m1->ack();
    }
    CHECK_EQ(seen.size(), 6u);
    CHECK(!c1.try_receive().has_value() && !c2.try_receive().has_value());

    // Nack: delivered again, attempt 2; then after a delay.
    auto seq = p.publish("retry");
    auto m = c1.receive(1s);
    REQUIRE(m.has_value());
    CHECK(m->seq() == seq && m->attempt() == 1);
    m->nack();
    CHECK_THROWS_WITH(shmq::invalid_argument_error, m->text(), "nacked");
    m = c1.receive(1s);
    REQUIRE(m.has_value());
    CHECK(m->seq() == seq && m->attempt() == 2 && m->text() == "retry");
    auto t0 = std::chrono::steady_clock::now();
    m->nack_after(200ms);
    CHECK(!c1.try_receive().has_value());
    m = c1.receive(3s);
    REQUIRE(m.has_value());
    CHECK(check::since(t0) >= 190ms);
    CHECK(m->seq() == seq && m->attempt() == 3);
    m->ack();
    auto g = q.group_stats("work");
    CHECK(g.acked == 7 && g.nacked == 2 && g.redelivered == 2);
    CHECK(g.in_flight == 0 && g.consumers == 2);

    // nack with ack=auto: nothing to give back (the delivery ends).
    auto a = q.make_consumer("auto");
    auto am = a.receive(1s);
    REQUIRE(am.has_value());
    CHECK_THROWS_WITH(shmq::invalid_option_error, am->nack(), "ack=manual");
    CHECK(!am->active());
    am = a.receive(1s);
    REQUIRE(am.has_value());
    CHECK_NOTHROW(am->extend_lease(1ms)); // a no-op with ack=auto
    am->ack();
    shmq::queue::remove("work", d.opts(64, 64));

    // Leases: held too long, the ack is refused (and ends the delivery);
    // extended, nobody else gets it.
    auto lq = shmq::queue::create("leases", d.opts(16, 64).lease(50ms));
    auto l1 = lq.make_consumer("work", manual);
    auto l2 = lq.make_consumer("work", manual);
    auto lp = lq.make_producer();
    seq = lp.publish("slow");
    auto s1 = l1.receive(1s);
    REQUIRE(s1.has_value());
    std::this_thread::sleep_for(120ms);
    auto s2 = l2.receive(3s);
    REQUIRE(s2.has_value());
    CHECK(s2->seq() == seq && s2->attempt() == 2);
    CHECK_THROWS_WITH(shmq::lease_expired_error, s1->ack(), "lease");
    CHECK(!s1->active());
    CHECK_THROWS(shmq::invalid_argument_error, s1->text());
    s2->ack();
    seq = lp.publish("extended");
    s1 = l1.receive(1s);
    REQUIRE(s1.has_value());
    s1->extend_lease(5s);
    std::this_thread::sleep_for(150ms);
    CHECK(!l2.receive(100ms).has_value());
    CHECK_EQ(s1->text(), "extended"); // still pending
    s1->ack();
    shmq::queue::remove("leases", d.opts(16, 64));
}

// The dead-letter queue, round trip: dead-letter, list, payload, redrive,
// receive again, max_deliveries, purge, full.
void test_dlq_round_trip() {
    test_dir d("dlq");
    auto q = shmq::queue::create("dlq", d.opts(16, 128).max_deliveries(2));
    auto c = q.make_consumer("work", shmq::consumer_options().ack(shmq::ack_mode::manual));
    auto p = q.make_producer();
    const std::string poison = "poison " + std::string(90, 'p'); // longer than a first guess
    auto seq = p.publish(poison, shmq::meta{9, 77, std::nullopt});
    auto m = c.receive(1s);
    REQUIRE(m.has_value());
    m->dead_letter();
    CHECK_THROWS_WITH(shmq::invalid_argument_error, m->text(), "dead-lettered");
    CHECK(!c.try_receive().has_value());
    CHECK_EQ(q.dlq_len(), 1u);
    CHECK_EQ(q.stats().dlq_depth, 1u);
    CHECK_EQ(q.group_stats("work").dead_lettered, 1u);

    auto letters = q.dlq_list();
    REQUIRE(letters.size() == 1);
    const shmq::dead_letter &dl = letters[0];
    CHECK_EQ(dl.seq, seq);
    CHECK_EQ(std::string(dl.group), "work");
    CHECK(static_cast<shmq::dlq_reason>(dl.reason) == shmq::dlq_reason::nacked);
    CHECK(dl.attempts == 1 && dl.type_id == 9 && dl.correlation_id == 77 && !dl.redriven);
    CHECK_EQ(dl.len, poison.size());
    CHECK(dl.dead_lettered_ns >= dl.first_delivery_ns && dl.timestamp_ns > 0);
    CHECK_EQ(q.dlq_payload(seq), poison);
    CHECK_EQ(q.dlq_payload(seq, "work"), poison);
    CHECK_THROWS(shmq::not_found_error, q.dlq_payload(seq, "other"));
    CHECK_THROWS(shmq::not_found_error, q.dlq_payload(seq + 100));

    // Redrive it: back to "work", received again.
    CHECK_THROWS(shmq::not_found_error, q.dlq_redrive(seq + 100));
    CHECK_EQ(q.dlq_redrive(seq), 1u);
    CHECK_EQ(q.dlq_len(), 0u);
    letters = q.dlq_list();
    REQUIRE(letters.size() == 1);
    CHECK(letters[0].redriven && letters[0].redrives == 1);
    m = c.receive(1s);
    REQUIRE(m.has_value());
    CHECK(m->seq() == seq && m->text() == poison && m->type_id() == 9);
    m->ack();
    CHECK(q.dlq_list().empty());

    // max_deliveries = 2: the third delivery goes to the DLQ instead.
    auto twice = p.publish("twice");
    for (std::uint32_t attempt = 1; attempt <= 2; attempt++) {
        m = c.receive(1s);
        REQUIRE(m.has_value());
        CHECK(m->seq() == twice && m->attempt() == attempt);
        m->nack();
    }
    CHECK(!c.receive(300ms).has_value());
    letters = q.dlq_list();
    REQUIRE(letters.size() == 1);
    CHECK(static_cast<shmq::dlq_reason>(letters[0].reason) == shmq::dlq_reason::max_deliveries);
    CHECK_EQ(letters[0].attempts, 2u);
    // Redrive all; dead-letter it again; purge.
    CHECK_EQ(q.dlq_redrive(), 1u);
    m = c.receive(1s);
    REQUIRE(m.has_value());
    CHECK_EQ(m->text(), "twice");
    m->dead_letter();
    CHECK_EQ(q.dlq_purge(), 1u);
    CHECK_EQ(q.dlq_len(), 0u);
    CHECK_EQ(q.dlq_purge(), 0u);
    CHECK_EQ(q.dlq_redrive(), 0u);
    CHECK_EQ(q.dlq_redrive_for(10ms), 0u);
    shmq::queue::remove("dlq", d.opts(16, 128));

    // dlq_slots = 1: the second dead letter has no room.
    auto f = shmq::queue::create("dlq-full", d.opts(16, 64).dlq_slots(1));
    auto fc = f.make_consumer("work", shmq::consumer_options().ack(shmq::ack_mode::manual));
    auto fp = f.make_producer();
    fp.publish("one");
    fp.publish("two");
    fc.receive(1s)->dead_letter();
    auto two = fc.receive(1s);
    REQUIRE(two.has_value());
    CHECK_THROWS_WITH(shmq::dlq_full_error, two->dead_letter(), "dead-letter");
    CHECK(!two->active());
    CHECK_EQ(f.dlq_len(), 1u);
    f.dlq_purge();
    shmq::queue::remove("dlq-full", d.opts(16, 64));
}

// Keyed (idempotent) publishing.
void test_keyed_publish() {
    test_dir d("keyed");
    auto q = shmq::queue::create("keyed", d.opts(16, 64));
    auto p = q.make_producer();
    const std::string key = "order-42";
    auto first = p.publish("charge", shmq::meta{1, 0, key});
    CHECK_EQ(p.publish("charge", shmq::meta{1, 0, key}), first);
    CHECK_EQ(p.publish("charge", shmq::meta{1, 0, "order-42"}, 0ms), first);
    CHECK_EQ(p.publish("charge", shmq::meta{1, 0, "order-43"}), first + 1);
    CHECK_EQ(p.publish("charge", shmq::meta{1, 0, std::nullopt}), first + 2); // no key
    CHECK_EQ(p.publish("charge", shmq::meta{1, 0, std::nullopt}), first + 3);
    auto s = q.stats();
    CHECK(s.published == 4 && s.deduplicated == 2);
    shmq::queue::remove("keyed", d.opts(16, 64));
}

// Ordering keys and headers: published with a meta, read back in place
// from a message and a batch entry; refused past their limits; not
// readable once the delivery ended.
void test_keys_and_headers() {
    test_dir d("envelope");
    auto q = shmq::queue::create("envelope", d.opts(16, 256));
    auto c = q.make_consumer("g");
    auto p = q.make_producer();
    shmq::meta m;
    m.type_id = 3;
    m.ordering_key = "customer-7";
    m.headers = {{"traceparent", "00-abc"}, {"content-type", "text/plain"}, {"traceparent", "2"}};
    auto seq = p.publish("paid", m);
    {
        auto got = c.receive(1s);
        REQUIRE(got.has_value());
        CHECK(got->seq() == seq && got->text() == "paid" && got->type_id() == 3);
        CHECK(got->ordering_key().has_value() &&
              got->ordering_key()->as_string_view() == "customer-7");
        CHECK_EQ(got->header_count(), 3u);
        auto hs = got->headers();
        REQUIRE(hs.size() == 3);
        CHECK(hs[1].name == "content-type" && hs[1].value.as_string_view() == "text/plain");
        CHECK(hs[2].name == "traceparent" && hs[2].value.as_string_view() == "2");
        CHECK(got->header_at(0).value.as_string_view() == "00-abc");
        CHECK_THROWS(std::out_of_range, got->header_at(3));
        CHECK(got->header("traceparent").value().as_string_view() == "00-abc");
        CHECK(!got->header("missing").has_value());
        got->ack();
        CHECK_THROWS_WITH(shmq::invalid_argument_error, got->headers(), "has ended");
        CHECK_THROWS(shmq::invalid_argument_error, got->ordering_key());
        CHECK_EQ(got->header_count(), 3u); // metadata stays readable
    }
    p.publish("plain");
    p.publish("keyed", shmq::meta{0, 0, std::nullopt, std::string_view("k"), {}});
    {
        auto b = c.receive_batch(8, 1s);
        REQUIRE(b.size() == 2);
        CHECK(!b[0].ordering_key().has_value() && b[0].header_count() == 0);
        CHECK(b[0].headers().empty() && !b[0].header("x").has_value());
        CHECK(b[1].ordering_key().value().as_string_view() == "k");
        b.ack();
        CHECK_THROWS(shmq::invalid_argument_error, b[1].ordering_key());
    }
    shmq::meta bad;
    std::string long_key(SHMQ_MAX_ORDERING_KEY + 1, 'k');
    bad.ordering_key = long_key;
    CHECK_THROWS_WITH(shmq::invalid_option_error, p.publish("x", bad), "1024");
    bad = shmq::meta{};
    bad.headers.assign(SHMQ_MAX_HEADERS + 1, shmq::header{"h", "v"});
    CHECK_THROWS_WITH(shmq::invalid_option_error, p.publish("x", bad), "16");
    bad.headers = {{"", "v"}};
    CHECK_THROWS(shmq::invalid_option_error, p.publish("x", bad));
    {
        auto r = p.reserve(4);
        bad.headers = {{"h", "v"}};
        CHECK_THROWS_WITH(shmq::invalid_argument_error, r.set_meta(bad), "reservation");
        r.abort();
    }
    CHECK(!c.try_receive().has_value());
    shmq::queue::remove("envelope", d.opts(16, 256));
}

// A keyed dead letter keeps its key and headers (dlq_ordering_key,
// dlq_headers), and a group names the key of its oldest unfinished
// message (group_oldest_unacked_key).
void test_keyed_dead_letters() {
    test_dir d("keyed-dlq");
    auto q = shmq::queue::create("keyed-dlq", d.opts(16, 256));
    auto c = q.make_consumer("work", shmq::consumer_options().ack(shmq::ack_mode::manual));
    auto p = q.make_producer();
    shmq::meta m;
    m.ordering_key = "customer-7";
    m.headers = {{"traceparent", "00-abc"}, {"content-type", "text/plain"}, {"traceparent", "2"}};
    auto seq = p.publish("paid", m);
    auto plain = p.publish("plain");
    CHECK_EQ(q.group_oldest_unacked_key("work").value(), "customer-7");
    auto got = c.receive(1s);
    REQUIRE(got.has_value());
    CHECK_EQ(got->seq(), seq);
    CHECK_EQ(q.group_oldest_unacked_key("work").value(), "customer-7");
    CHECK_EQ(q.group_stats("work").busy_lanes, 1u);
    CHECK_EQ(q.group_stats("work").oldest_unacked_key_len, std::strlen("customer-7"));
    CHECK_THROWS(shmq::not_found_error, q.group_oldest_unacked_key("missing"));
    got->dead_letter();

    auto letters = q.dlq_list();
    REQUIRE(letters.size() == 1);
    CHECK(letters[0].ordering_key_len == 10 && letters[0].headers_len == 3);
    CHECK_EQ(q.dlq_ordering_key(seq).value(), "customer-7");
    CHECK_EQ(q.dlq_ordering_key(seq, "work").value(), "customer-7");
    auto hs = q.dlq_headers(seq, "work");
    REQUIRE(hs.size() == 3);
    CHECK(hs[0].first == "traceparent" && hs[0].second == "00-abc");
    CHECK(hs[1].first == "content-type" && hs[1].second == "text/plain");
    CHECK(hs[2].first == "traceparent" && hs[2].second == "2");
    CHECK_THROWS(shmq::not_found_error, q.dlq_ordering_key(seq + 100));
    CHECK_THROWS(shmq::not_found_error, q.dlq_headers(seq, "other"));

    // The unkeyed message next: dead-lettered with no key and no headers.
    got = c.receive(1s);
    REQUIRE(got.has_value());
    CHECK_EQ(got->seq(), plain);
    CHECK(!q.group_oldest_unacked_key("work").has_value());
    got->dead_letter();
    CHECK(!q.dlq_ordering_key(plain).has_value());
    CHECK(q.dlq_headers(plain).empty());
    CHECK_EQ(q.group_stats("work").busy_lanes, 0u);
    shmq::queue::remove("keyed-dlq", d.opts(16, 256));
}

// Empty handles (default-constructed, moved from, closed) throw; move
// assignment frees what it replaces; nothing is freed twice.
void test_handles() {
    test_dir d("handles");
    shmq::queue eq;
    shmq::producer ep;
    shmq::consumer ec;
    shmq::message em;
    shmq::batch eb;
    shmq::reservation er;
    CHECK(!eq && !ep && !ec && em.empty() && eb.empty() && er.empty());
    CHECK(eq.get() == nullptr && ep.get() == nullptr && ec.get() == nullptr);
    CHECK_THROWS_WITH(shmq::null_argument_error, eq.groups(), "shmq::queue::groups");
    CHECK_THROWS_WITH(shmq::null_argument_error, ep.publish("x"), "shmq::producer::publish");
    CHECK_THROWS_WITH(shmq::null_argument_error, ep.publish_batch({"x"}), "empty");
    CHECK_THROWS(shmq::null_argument_error, ep.max_payload());
    CHECK_THROWS_WITH(shmq::null_argument_error, ec.receive(), "shmq::consumer::receive");
    CHECK_THROWS(shmq::null_argument_error, ec.try_receive());
    CHECK_THROWS(shmq::null_argument_error, ec.receive_batch(1));
    CHECK_THROWS(shmq::null_argument_error, ec.seek(shmq::seek_to::earliest()));
    CHECK_THROWS(shmq::null_argument_error, ec.position());
    CHECK_THROWS(shmq::null_argument_error, ec.group());
    CHECK_THROWS(shmq::null_argument_error, ec.ack_mode());
    CHECK_THROWS(shmq::null_argument_error, ec.ack_all());
    CHECK_THROWS(shmq::null_argument_error, em.ack());
    CHECK_THROWS(shmq::null_argument_error, er.commit());
    CHECK(eb.begin() == eb.end());
    eb.ack(); // nothing to end

    auto q = shmq::queue::create("h", d.opts(16, 64));
    auto p = q.make_producer();
    CHECK(static_cast<bool>(p) && p.get() != nullptr);
    CHECK_EQ(q.stats().producers, 1u);
    // Move assignment frees the producer it replaces.
    p = q.make_producer();
    CHECK_EQ(q.stats().producers, 1u);
    p.close();
    p.close();
    CHECK(!p && q.stats().producers == 0);
    p = q.make_producer();

    // A consumer moved: its messages keep working through it.
    auto c = q.make_consumer("solo");
    p.publish("kept");
    auto m = c.receive();
    shmq::consumer c2 = std::move(c);
    CHECK(!c);
    CHECK_THROWS(shmq::null_argument_error, c.receive(1ms));
    CHECK(m.active());
    CHECK_EQ(m.text(), "kept");
    m.ack();
    // Move assignment frees the consumer it replaces (ack=auto: the group
    // is free for another consumer afterwards).
    CHECK_THROWS(shmq::busy_error, q.make_consumer("solo"));
    c2 = q.make_consumer("other");
    CHECK_EQ(c2.group(), "other");
    auto solo = q.make_consumer("solo");
    CHECK_EQ(solo.group(), "solo");
    CHECK_EQ(q.stats().consumers, 2u);
    // The raw handle is there for C calls.
    std::uint64_t pos = 99;
    CHECK_EQ(shmq_consumer_position(solo.get(), &pos), SHMQ_OK);
    CHECK_EQ(pos, 1u);
    solo.close();
    CHECK(solo.get() == nullptr);
    shmq::queue::remove("h", d.opts(16, 64));
}

// Spill to disk and journal options, through the options class.
void test_spill_and_journal() {
    test_dir d("spill");
    const std::string spill = d.path() + "/spill-dir";
    auto opts = d.opts(16, 64)
                    .overflow(shmq::overflow_policy::spill)
                    .spill_dir(spill)
                    .spill_segment_size(64 * 1024)
                    .spill_max_bytes(1 << 20)
                    .sync(shmq::sync_mode::every_n, 10);
    {
        auto q = shmq::queue::create("spill", opts);
        CHECK_EQ(q.spill_dir().value_or(""), spill);
        q.create_group("g");
        auto p = q.make_producer();
        for (int i = 0; i < 100; i++) {
            p.publish("s" + std::to_string(i));
        }
        auto s = q.stats();
        CHECK(s.published == 100 && s.spilled > 0 && s.overflow == SHMQ_OVERFLOW_SPILL);
        auto c = q.make_consumer("g");
        for (std::uint64_t i = 0; i < 100; i++) {
            auto m = c.receive(1s);
            REQUIRE(m.has_value());
            CHECK(m->seq() == i && m->text() == "s" + std::to_string(i));
        }
    }
    shmq::queue::remove("spill", opts);
    CHECK(!std::filesystem::exists(spill));
    CHECK_THROWS_WITH(shmq::invalid_option_error,
                      shmq::queue::create("bad-sync",
                                          d.opts(16, 64).sync(shmq::sync_mode::every_n, 0)),
                      "sync_every");

    // One segment and fallback reject: the spill fills, spill_full_error.
    auto tight = d.opts(16, 64)
                     .overflow(shmq::overflow_policy::spill)
                     .spill_dir(spill)
                     .spill_segment_size(64 * 1024)
                     .spill_max_bytes(64 * 1024)
                     .spill_fallback(shmq::overflow_policy::reject);
    {
        auto q = shmq::queue::create("tight", tight);
        q.create_group("g");
        auto p = q.make_producer();
        bool full = false;
        const std::string payload(64, 'x');
        for (int i = 0; i < 10000 && !full; i++) {
            try {
                p.publish(payload);
            } catch (const shmq::spill_full_error &e) {
                full = true;
                CHECK(std::strstr(e.what(), "nothing was published") != nullptr);
            }
        }
        CHECK(full);
        CHECK(q.stats().spill_full >= 1);
    }
    shmq::queue::remove("tight", tight);

    // A journal: enabled, and replay below the ring.
    auto jopts = d.opts(16, 64)
                     .spill_dir(spill)
                     .spill_segment_size(64 * 1024)
                     .journal_max_age(std::chrono::hours(1))
                     .journal_max_bytes(1 << 20);
    {
        auto q = shmq::queue::create("journal", jopts);
        auto c = q.make_consumer("g");
        auto p = q.make_producer();
        for (int i = 0; i < 50; i++) {
            p.publish("j" + std::to_string(i));
            c.receive(1s)->ack();
        }
        auto s = q.stats();
        CHECK(s.journal_enabled == 1 && s.journal_journaled == 50);
        CHECK_EQ(c.seek(shmq::seek_to::seq(3)), 3u);
        CHECK_EQ(c.receive(1s)->text(), "j3");
    }
    shmq::queue::remove("journal", jopts);
}

// One producer thread, one consumer thread, one queue shared.
void test_threads() {
    test_dir d("threads");
    auto q = shmq::queue::create("threads", d.opts(64, 64));
    auto c = q.make_consumer("g");
    constexpr int n = 2000;
    std::thread producer([&q] {
        auto p = q.make_producer();
        for (int i = 0; i < n; i++) {
            auto corr = static_cast<std::uint64_t>(i);
            p.publish(std::to_string(i), shmq::meta{0, corr, std::nullopt});
        }
    });
    int in_order = 0;
    for (int i = 0; i < n; i++) {
        auto m = c.receive(10s);
        if (!m) {
            break;
        }
        auto corr = static_cast<std::uint64_t>(i);
        if (m->text() == std::to_string(i) && m->correlation_id() == corr) {
            in_order++;
        }
    }
    producer.join();
    CHECK_EQ(in_order, n);
    shmq::queue::remove("threads", d.opts(64, 64));
}

} // namespace

int main() {
    alarm(120); // a hang is a failure, not a stuck CI
    check::make_root_dir();
    RUN(test_version_and_errors);
    RUN(test_queue_lifecycle);
    RUN(test_round_trip);
    RUN(test_capacity);
    RUN(test_expiry);
    RUN(test_schedule);
    RUN(test_message_lifetime);
    RUN(test_destruction_gives_back);
    RUN(test_timeouts);
    RUN(test_publish_batch);
    RUN(test_reserve_commit);
    RUN(test_receive_batch);
    RUN(test_seek_and_position);
    RUN(test_groups);
    RUN(test_manual_ack);
    RUN(test_dlq_round_trip);
    RUN(test_keyed_publish);
    RUN(test_keys_and_headers);
    RUN(test_keyed_dead_letters);
    RUN(test_handles);
    RUN(test_spill_and_journal);
    RUN(test_threads);
    return check::finish();
}
