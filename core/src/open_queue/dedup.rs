//! Idempotent publishing: a table of `dedup_window` remembered keys in the
//! queue file, so that a producer retrying a publish (after a timeout, or
//! after its process was killed and restarted) does not enqueue it twice.
//!
//! Lookups and reservations run under the admin lock: keyed publishes are
//! the slow path, and the lock makes "is this key known? if not, it is
//! mine" one step, so two producers with the same key never both publish.
//! A reserved entry is PENDING(pid) with the position its producer claimed;
//! the producer marks it PUBLISHED after its commit. A PENDING entry of a
//! dead producer is resolved from the ring: if its position was committed,
//! the key counts as published; if it was aborted (or never claimed), the
//! entry is free again. Entries are reused oldest first (by count), and a
//! key older than `dedup_ttl` is forgotten (by age). Each process keeps a
//! private index of which entries hold which key (`DedupIndex`), brought
//! up to date from the table's counter under the lock, so a lookup costs
//! O(1), not a scan of the window.

use crate::error::{Error, Result};
use crate::layout::DedupEntry;
use crate::loom::Ordering;
use crate::open_queue::OpenQueue;
use crate::os;
use crate::protocol::dedup_table::{FREE, PENDING, PUBLISHED};
use crate::protocol::dedup_table::{Lookup, lookup_or_reserve_indexed};
use crate::protocol::ring::Peek;

/// What [`reserve`] decided.
pub(crate) enum Reserve {
    /// The key is remembered: its message already has this seq.
    Published(u64),
    /// The key is ours to publish; report to entry `i`.
    Mine(usize),
}

fn entries(shared: &OpenQueue) -> &[DedupEntry] {
    shared.dedup_entries()
}

/// Looks `key` up and, if it is unknown, reserves an entry for it. Waits
/// (at most `unblock_timeout`) while another live producer is publishing
/// the same key.
pub(crate) fn reserve(shared: &OpenQueue, key: u64) -> Result<Reserve> {
    let table = entries(shared);
    if table.is_empty() {
        return Err(Error::InvalidOption(
            "this queue remembers no keys (created with dedup_window 0)".into(),
        ));
    }
    let waited = std::time::Instant::now();
    loop {
        let found = {
            let _g = shared.lock();
            // Under the admin lock: nobody else in this process holds it.
            let mut index = shared
                .dedup_index
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            lookup_or_reserve_indexed(
                table,
                &mut index,
                &shared.header().dedup_next,
                key,
                shared.me.key >> 2,
                os::clock::realtime_ns(),
                shared.config.dedup_ttl_ns,
                |owner| shared.alive(0, owner << 2),
                |pos| resolve(shared, pos),
            )
        };
        match found {
            Lookup::Published(seq) => return Ok(Reserve::Published(seq)),
            Lookup::Mine(i) => return Ok(Reserve::Mine(i)),
            Lookup::Full => {
                return Err(Error::Busy(format!(
                    "all {} dedup entries are being published right now",
                    table.len()
                )));
            }
            Lookup::Wait => {}
        }
        if waited.elapsed().as_nanos() as u64 > shared.config.unblock_timeout_ns {
            return Err(Error::Busy(
                "another producer is publishing the same key and has not finished".into(),
            ));
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}

/// Whether position `pos` (claimed by a producer that died) was published:
/// `Some(true)` committed, `Some(false)` aborted or never claimed, `None`
/// not decided yet (claimed, neither committed nor aborted so far).
///
/// Exact, never "published" for a message that is not in the queue:
/// - spilling and `pos` at or past the ring's tail: a spill seq, appended
///   under the admin lock (which we hold). Below `end_seq` it was appended
///   whole by its producer: a seq whose append did not finish is taken
///   back from the entry ([`cancel_unfinished_spills`]) before anyone else
///   may append at it.
/// - below `head`: every group is past it, and `head` is never moved past
///   a committed keyed position whose entry is still PENDING
///   ([`settle_passed`] marks it PUBLISHED first). So a PENDING entry
///   there was aborted, or its position was never written: free.
/// - in the ring: the slot's word says committed or aborted; a position
///   claimed and never committed is aborted here (its producer is dead).
pub(crate) fn resolve(shared: &OpenQueue, pos: u64) -> Option<bool> {
    let ring = shared.ring();
    let word = ring.ctl.tail.load(Ordering::Acquire);
    let tail = crate::protocol::spill::ring_tail(word);
    let head = ring.ctl.head.load(Ordering::Acquire);
    if crate::protocol::spill::spilling(word) && pos >= tail && pos != u64::MAX {
        // Spilled under the admin lock, which we hold: below end_seq it
        // was appended whole.
        return Some(pos < shared.header().spill.end_seq.load(Ordering::Acquire));
    }
    if pos == u64::MAX || pos >= tail || pos < head {
        return Some(false);
    }
    match ring.peek(pos) {
        Peek::Ready(_) => Some(true),
        Peek::Skip(_) => Some(false),
        Peek::Settling => settled(shared, pos),
        // Claimed by the dead producer and never committed: nobody will
        // commit it now, so abort it here, as a consumer would after
        // `unblock_timeout` (with no consumer running, the retrying
        // producer used to wait out that timeout and fail with Busy).
        // `pos < tail` was checked above; the CAS races only with a
        // consumer's abort of the same position.
        Peek::NotYet(seen) => {
            if ring.abort(pos, seen) {
                let r = settled(shared, pos);
                if r == Some(false) {
                    shared
                        .header()
                        .counters
                        .aborted
                        .fetch_add(1, Ordering::Relaxed);
                }
                r
            } else {
                match ring.peek(pos) {
                    Peek::Ready(_) => Some(true),
                    Peek::Skip(_) | Peek::Settling => Some(false),
                    Peek::NotYet(_) => None,
                }
            }
        }
    }
}

/// [`resolve`] of aborted position `pos`: settled, so not published
/// (`Some(false)`); or not settled because its producer may still commit
/// it, so published if it did (`Some(true)`) and not known yet (`None`)
/// otherwise.
fn settled(shared: &OpenQueue, pos: u64) -> Option<bool> {
    match shared.settle_abort(pos) {
        Some(_) => Some(false),
        None => matches!(shared.ring().peek(pos), Peek::Ready(_)).then_some(true),
    }
}

/// Records, in producer record `rec` and then in entry `i`, the position
/// (or spill seq) the reserved key's message claimed, before it is
/// written, so a crash can be resolved from the ring. Called again for
/// each position if the first was aborted before it was written.
pub(crate) fn claimed(shared: &OpenQueue, rec: usize, i: usize, pos: u64) {
    crate::os::fault::point("keyed.before_claimed");
    let r = &shared.producer_records()[rec];
    if r.keyed_pos.load(Ordering::Relaxed) == 0 {
        // SeqCst, before `keyed_pos`: whoever sees the position committed
        // sees the count above 0 (`settle_passed` skips its scan at 0).
        shared
            .header()
            .keyed_in_flight
            .fetch_add(1, Ordering::SeqCst);
    }
    r.keyed_entry.store(i as u64, Ordering::Relaxed);
    // SeqCst: before the announcement and the look at the slot that
    // follow (`Ring::begin`), so that whoever moves `head` past a
    // position this producer goes on to commit sees the intent (through
    // the commit, the consumer's cursor and `min_committed`'s load of it).
    r.keyed_pos.store(pos + 1, Ordering::SeqCst);
    entries(shared)[i].seq.store(pos, Ordering::Release);
    crate::os::fault::point("keyed.after_claimed");
}

/// The keyed message was committed (or appended to the spill). A
/// `head` that passed it first may have marked it already.
pub(crate) fn published(shared: &OpenQueue, rec: usize, i: usize, pos: u64) {
    crate::os::fault::point("keyed.before_published");
    let e = &entries(shared)[i];
    debug_assert_eq!(e.seq.load(Ordering::Relaxed), pos);
    let _ = pos;
    let mine = shared.me.key | PENDING;
    // Only our own reservation: an entry settled by someone else and
    // reserved again since then is not ours to mark.
    let _ = e
        .state
        .compare_exchange(mine, PUBLISHED, Ordering::AcqRel, Ordering::Relaxed);
    clear_keyed(shared, rec);
}

/// Record `rec`'s keyed publish is over (published, abandoned, or its
/// dead owner's settled): clears its position, then counts it out of
/// `keyed_in_flight`.
fn clear_keyed(shared: &OpenQueue, rec: usize) {
    let r = &shared.producer_records()[rec];
    if r.keyed_pos.swap(0, Ordering::AcqRel) != 0 {
        count_out(shared);
    }
}

/// One keyed publish fewer in flight (saturating: the word is shared
/// memory).
fn count_out(shared: &OpenQueue) {
    let _ =
        shared
            .header()
            .keyed_in_flight
            .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
}

/// The keyed publish was scheduled (`Meta::delay`): the key is remembered
/// with its schedule id, which a repeat is answered with. (A producer
/// killed between the schedule's append and this leaves the entry
/// PENDING with no position: it is freed, and a retry schedules again.)
pub(crate) fn remember_scheduled(shared: &OpenQueue, i: usize, id: u64) {
    let e = &entries(shared)[i];
    e.seq.store(id, Ordering::Release);
    let mine = shared.me.key | PENDING;
    let _ = e
        .state
        .compare_exchange(mine, PUBLISHED, Ordering::AcqRel, Ordering::Relaxed);
}

/// The keyed publish failed: forget the key.
pub(crate) fn abandon(shared: &OpenQueue, rec: usize, i: usize) {
    let mine = shared.me.key | PENDING;
    let _ =
        entries(shared)[i]
            .state
            .compare_exchange(mine, FREE, Ordering::AcqRel, Ordering::Relaxed);
    clear_keyed(shared, rec);
}

/// Under the admin lock, just before `head` moves from `from` to `to`:
/// marks PUBLISHED every PENDING entry whose keyed position in
/// `from..to` is committed. After this the slot may be reused and the
/// ring no longer knows the position's fate, so this is where it is
/// written down: a producer killed between its commit and its
/// `published` is resolved exactly, however long its retry takes. A
/// position of that range that is not committed was aborted (groups pass
/// nothing else) and needs nothing: a PENDING entry below `head` is free
/// (see [`resolve`]).
pub(crate) fn settle_passed(shared: &OpenQueue, from: u64, to: u64) {
    let table = entries(shared);
    // SeqCst: pairs with `claimed`'s increment (see there).
    if table.is_empty() || shared.header().keyed_in_flight.load(Ordering::SeqCst) == 0 {
        return;
    }
    let ring = shared.ring();
    crate::protocol::dedup_table::settle_passed(
        table,
        shared
            .producer_records()
            .iter()
            .map(|r| (&r.keyed_pos, &r.keyed_entry)),
        from,
        to,
        |pos| {
            os::fault::point("keyed.settle_passed");
            matches!(ring.peek(pos), Peek::Ready(_))
        },
    );
}

/// Under the admin lock, before any spill append or the switch back to
/// the ring: a producer record whose keyed seq is at or past the spill's
/// `end_seq` belongs to a spiller killed before its append finished (a
/// live one holds the lock for the whole append, and ring positions lie
/// below `end_seq`). That seq will be given to the next message, so it is
/// taken back from the entry first (the key is then free: its retry
/// publishes) and the torn record, if any, is cut off so that no opener
/// adopts it later. Returns how many were taken back.
pub(crate) fn cancel_unfinished_spills(shared: &OpenQueue) -> u64 {
    let table = entries(shared);
    // A dead spiller's intent keeps `keyed_in_flight` above 0 (its count
    // was never taken out); at 0 there is nothing to look for. Every
    // refill runs this, so the records are scanned only when it may matter.
    if table.is_empty() || shared.header().keyed_in_flight.load(Ordering::SeqCst) == 0 {
        return 0;
    }
    let word = shared.ring().ctl.tail.load(Ordering::Acquire);
    if !crate::protocol::spill::spilling(word) {
        return 0;
    }
    let end = shared.header().spill.end_seq.load(Ordering::Acquire);
    let mut n = 0;
    for r in shared.producer_records() {
        let kp = r.keyed_pos.load(Ordering::Acquire);
        if kp == 0 || kp - 1 < end {
            continue;
        }
        if let Some(e) = table.get(r.keyed_entry.load(Ordering::Relaxed) as usize)
            && e.seq.load(Ordering::Relaxed) == kp - 1
        {
            e.seq.store(u64::MAX, Ordering::Release);
        }
        if r.keyed_pos
            .compare_exchange(kp, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            count_out(shared);
        }
        n += 1;
    }
    n
}

/// A producer record taken over from a dead producer: settles the keyed
/// publish it left in flight, under the admin lock, before the new owner
/// forgets it.
pub(crate) fn settle_dead_record(shared: &OpenQueue, rec: usize) {
    let r = &shared.producer_records()[rec];
    let kp = r.keyed_pos.load(Ordering::Acquire);
    if kp == 0 {
        return;
    }
    let table = entries(shared);
    if let Some(e) = table.get(r.keyed_entry.load(Ordering::Relaxed) as usize) {
        let _g = shared.lock();
        cancel_unfinished_spills(shared);
        let st = e.state.load(Ordering::Acquire);
        if st & 3 == PENDING && e.seq.load(Ordering::Relaxed) == kp - 1 {
            match resolve(shared, kp - 1) {
                Some(true) => e.state.store(PUBLISHED, Ordering::Release),
                Some(false) => e.state.store(FREE, Ordering::Release),
                None => {}
            }
        }
    }
    clear_keyed(shared, rec);
}
