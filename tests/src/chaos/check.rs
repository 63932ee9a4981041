//! The checker: reads a chaos run's history back and reports every way it
//! breaks a guarantee of SPEC.md (1–11), each in its own class.
//!
//! What the clients write (see `src/bin/chaos/`), one file per process
//! incarnation, named `ROLE-ID-INCARNATION`:
//!
//! ```text
//! pi MIDS HOW IDEM OKEY   a publish is invoked: its message ids (comma-
//!                         separated), one|resv|async|batch|sched (a
//!                         delayed one: `po` gives its schedule id), 1 if it has an
//!                         idempotency key, its ordering key or "-"
//! po SEQ N                it returned ok: the first N of its ids went in,
//!                         the first at SEQ
//! pf ERR                  it failed: none went in
//! d GROUP SEQ ATTEMPT MID DIGEST   a delivery (MID from the payload)
//! ai SEQ / ao SEQ / af SEQ ERR     an ack invoked, ok, failed
//! ni SEQ HOW / no SEQ / nf SEQ ERR a nack (HOW: requeue|later|dead)
//! si TARGET / so POS / sf ERR      a replay's seek
//! ri / ro N / rf ERR               a DLQ redrive
//! x ERR                   an error no rule allows
//! ```
//!
//! and the runner, in `runner-0-0`: `dl GROUP SEQ MID REDRIVEN` (the DLQ
//! when the run ended), `exit CLIENT HOW` (`ok`, `killed`, `signal N`,
//! `code N`), `stuck GROUP DETAIL`, `fault CLIENT POINT`, `kill`, `stop`,
//! `cont`, and `cfg NAME VALUE` (`max_payload`, `max_deliveries`, `batch`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::rc::Rc;

use super::history::{self, Event};
use super::payload;

/// Every anomaly class, in the order the report lists them.
pub const CLASSES: &[&str] = &[
    "lost",
    "unexpected",
    "duplicated",
    "reordered",
    "corrupted",
    "attempts",
    "stuck",
    "crashed",
    "errors",
];

/// How many examples of each class the report shows.
const EXAMPLES: usize = 5;

/// What the checker found: counts of what happened, and the anomalies.
#[derive(Default, Debug)]
pub struct Report {
    /// Operations, messages and faults, by name.
    pub counts: BTreeMap<String, u64>,
    /// Anomalies by class: how many, and the first examples.
    pub anomalies: BTreeMap<&'static str, (u64, Vec<String>)>,
}

impl Report {
    fn count(&mut self, name: &str, n: u64) {
        *self.counts.entry(name.to_string()).or_default() += n;
    }

    fn anomaly(&mut self, class: &'static str, example: String) {
        debug_assert!(CLASSES.contains(&class));
        let e = self.anomalies.entry(class).or_default();
        e.0 += 1;
        if e.1.len() < EXAMPLES {
            e.1.push(example);
        }
    }

    /// How many anomalies of `class`.
    pub fn of(&self, class: &str) -> u64 {
        self.anomalies.get(class).map_or(0, |e| e.0)
    }

    /// Anomalies of every class.
    pub fn total(&self) -> u64 {
        self.anomalies.values().map(|e| e.0).sum()
    }

    /// The report as the runner prints it.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.counts {
            let _ = writeln!(s, "  {k:<28} {v}");
        }
        let _ = writeln!(s, "anomalies:");
        for class in CLASSES {
            let (n, ex) = self.anomalies.get(class).cloned().unwrap_or_default();
            let _ = writeln!(s, "  {class:<12} {n}");
            for e in ex {
                let _ = writeln!(s, "      {e}");
            }
        }
        s
    }
}

/// What became of one message id's publishes.
#[derive(Default)]
struct Publish {
    ok: bool,
    failed: u32,
    in_doubt: bool,
    /// Seqs a publish of it returned (a keyed retry returns the first's).
    seqs: BTreeSet<u64>,
    ordering_key: Option<String>,
    idem: bool,
}

/// One delivery, with where it came from.
struct Delivery {
    client: Rc<str>,
    seq: u64,
    attempt: u64,
    mid: u64,
}

/// An ack=manual group's record of one seq.
#[derive(Default)]
struct Handling {
    deliveries: Vec<(u64, Rc<str>, u64)>,
    /// Times of acks that returned ok.
    acked: Vec<u64>,
    /// Times of ack invokes that finished it (ok, or in doubt).
    finish_invokes: Vec<u64>,
    dead_lettered: bool,
    /// A dead-lettering was cut off by its process's death: the message
    /// may be in the DLQ and delivered again as well (documented in
    /// `open_queue/dead_letters.rs`), so a delivery after an ack is not a
    /// duplicate beyond the rules.
    dead_letter_cut: bool,
}

/// Checks the history of the run in `dir`.
pub fn check(dir: &Path) -> std::io::Result<Report> {
    let mut files = Vec::new();
    for (name, path) in history::files(dir)? {
        files.push((name, history::read(&path)?));
    }
    Ok(check_events(
        files
            .into_iter()
            .map(|(n, r)| (n, r.events, r.torn))
            .collect(),
    ))
}

/// The client name's role, id and incarnation.
fn parts(client: &str) -> (&str, u64, u64) {
    let mut it = client.rsplitn(3, '-');
    let inc = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let id = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    (it.next().unwrap_or(""), id, inc)
}

/// Checks histories already read: `(client, events, torn lines)`.
pub fn check_events(mut files: Vec<(String, Vec<Event>, Vec<String>)>) -> Report {
    let mut r = Report::default();
    // Incarnations in order: by role, id, then incarnation number.
    files.sort_by_key(|(c, _, _)| {
        let (role, id, inc) = parts(c);
        (role.to_string(), id, inc)
    });
    let runner: Vec<Event> = files
        .iter()
        .filter(|(c, _, _)| c.starts_with("runner"))
        .flat_map(|(_, e, _)| e.clone())
        .collect();
    let cfg = |name: &str, default: u64| {
        runner
            .iter()
            .rev()
            .find(|e| e.kind() == "cfg" && e.f(0) == name)
            .map_or(default, |e| e.n(1))
    };
    let max_payload = cfg("max_payload", 64) as usize;
    let max_deliveries = cfg("max_deliveries", 5);
    let batch = cfg("batch", 8);
    // How each client ended: died (killed, a signal, a failed exit) or not.
    let mut ended: HashMap<&str, &str> = HashMap::new();
    for e in &runner {
        match e.kind() {
            "exit" => {
                ended.insert(e.f(0), e.f(1));
                if e.f(1).starts_with("signal") || e.f(1).starts_with("code") {
                    r.anomaly("crashed", format!("{} ended with {}", e.f(0), e.f(1)));
                }
            }
            "stuck" => r.anomaly("stuck", format!("group {}: {}", e.f(0), e.from(1))),
            "kill" => r.count("faults: SIGKILL", 1),
            "stop" => r.count("faults: SIGSTOP", 1),
            "fault" => r.count(&format!("fault point {}", e.f(1)), 1),
            _ => {}
        }
    }
    let died = |c: &str| !matches!(ended.get(c), Some(&"ok"));
    for (c, events, _) in &files {
        for e in events.iter().filter(|e| e.kind() == "x") {
            r.anomaly("errors", format!("{c}: {}", e.from(0)));
        }
    }
    for (c, _, torn) in &files {
        // Only a process that died mid-write leaves a torn line, its last.
        if !torn.is_empty() && (!died(c) || torn.len() > 1) {
            r.anomaly(
                "errors",
                format!("{c}: {} torn history line(s)", torn.len()),
            );
        }
    }

    // Publishes.
    let mut pubs: HashMap<u64, Publish> = HashMap::new();
    for (c, events, _) in files.iter().filter(|(c, _, _)| parts(c).0 == "prod") {
        let mut pending: Option<(Vec<u64>, &Event)> = None;
        let mut last_seq: Option<u64> = None;
        for e in events {
            match e.kind() {
                "pi" => {
                    let mids: Vec<u64> = e.f(0).split(',').filter_map(|m| m.parse().ok()).collect();
                    for m in &mids {
                        let p = pubs.entry(*m).or_default();
                        p.idem |= e.f(2) == "1";
                        if e.f(3) != "-" {
                            p.ordering_key = Some(e.f(3).to_string());
                        }
                    }
                    r.count("publish calls", 1);
                    pending = Some((mids, e));
                }
                "po" => {
                    let Some((mids, invoked)) = pending.take() else {
                        continue;
                    };
                    let (seq, n) = (e.n(0), e.n(1) as usize);
                    // A scheduled publish returns its schedule id: its
                    // seq is given when it comes due (seen on delivery).
                    let scheduled = invoked.f(1) == "sched";
                    if scheduled {
                        r.count("publishes scheduled (ok)", 1);
                    } else {
                        if let Some(prev) = last_seq.filter(|p| seq <= *p) {
                            r.anomaly(
                                "reordered",
                                format!("{c}: a publish returned seq {seq} after seq {prev}"),
                            );
                        }
                        last_seq = Some(seq);
                    }
                    for (i, m) in mids.iter().enumerate() {
                        let p = pubs.get_mut(m).unwrap();
                        if i < n {
                            p.ok = true;
                            if i == 0 && !scheduled {
                                p.seqs.insert(seq);
                            }
                        } else {
                            p.failed += 1;
                        }
                    }
                }
                "pf" => {
                    let Some((mids, _)) = pending.take() else {
                        continue;
                    };
                    for m in &mids {
                        pubs.get_mut(m).unwrap().failed += 1;
                    }
                }
                _ => {}
            }
        }
        if let Some((mids, _)) = pending {
            for m in &mids {
                pubs.get_mut(m).unwrap().in_doubt = true;
            }
        }
    }
    for (m, p) in &pubs {
        if p.seqs.len() > 1 {
            r.anomaly(
                "duplicated",
                format!(
                    "message {m:#x} (idempotency key) was given seqs {:?}",
                    p.seqs
                ),
            );
        }
    }

    // Deliveries, checked one by one against what was published.
    let mut by_group: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
    let mut seq_mid: HashMap<u64, u64> = HashMap::new();
    let mut seen: HashSet<u64> = HashSet::new();
    for (c, events, _) in files.iter().filter(|(c, _, _)| parts(c).0 != "prod") {
        let name: Rc<str> = c.as_str().into();
        for e in events.iter().filter(|e| e.kind() == "d") {
            let (group, seq, attempt, mid, digest) = (
                e.f(0),
                e.n(1),
                e.n(2),
                e.n(3),
                e.f(4).parse::<u64>().unwrap_or(0),
            );
            r.count(&format!("deliveries: {group}"), 1);
            match pubs.get(&mid) {
                None => {
                    r.anomaly(
                        "unexpected",
                        format!("{c}: seq {seq} carries {mid:#x}, never published"),
                    );
                    continue;
                }
                Some(p) if !p.ok && !p.in_doubt => r.anomaly(
                    "unexpected",
                    format!("{c}: seq {seq} is {mid:#x}, whose publish failed"),
                ),
                Some(_) => {}
            }
            if digest != payload::digest(mid, max_payload) {
                r.anomaly(
                    "corrupted",
                    format!("{c}: seq {seq} ({mid:#x}): its payload's digest is wrong"),
                );
            }
            // One message per seq, in every group.
            match seq_mid.insert(seq, mid) {
                Some(other) if other != mid => r.anomaly(
                    "unexpected",
                    format!("seq {seq} delivered as {other:#x} and as {mid:#x}"),
                ),
                _ => {}
            }
            seen.insert(mid);
            by_group
                .entry(group.to_string())
                .or_default()
                .push(Delivery {
                    client: name.clone(),
                    seq,
                    attempt,
                    mid,
                });
        }
    }
    let dlq: Vec<&Event> = runner.iter().filter(|e| e.kind() == "dl").collect();
    for e in &dlq {
        seen.insert(e.n(2));
    }
    // A publish that died mid-call is in if anyone saw it.
    for (m, p) in &pubs {
        if p.in_doubt && !p.ok {
            r.count(
                if seen.contains(m) {
                    "publishes in doubt: in"
                } else {
                    "publishes in doubt: not in"
                },
                1,
            );
        }
    }
    r.count(
        "messages published (ok)",
        pubs.values().filter(|p| p.ok).count() as u64,
    );
    r.count(
        "publishes failed (cleanly)",
        pubs.values().filter(|p| !p.ok && !p.in_doubt).count() as u64,
    );
    // The first seq each message had: the one its publish returned, or
    // the lowest it was delivered at (a keyed redrive gives a new one).
    let mut first_seq: HashMap<u64, u64> = HashMap::new();
    for (seq, mid) in &seq_mid {
        let e = first_seq.entry(*mid).or_insert(*seq);
        *e = (*e).min(*seq);
    }
    for (m, p) in &pubs {
        if let Some(s) = p.seqs.first() {
            first_seq.insert(*m, *s);
        }
    }

    check_auto(
        &mut r,
        &files,
        by_group.get("auto"),
        &pubs,
        &first_seq,
        &died,
        batch,
    );
    check_manual(
        &mut r,
        &files,
        &pubs,
        &first_seq,
        &dlq,
        &died,
        max_deliveries,
    );
    check_replay(&mut r, &files);
    r
}

/// ack=auto: every message once, in seq order; one lost only where its
/// consumer died between committing it and writing it down (at most one
/// receive's worth, right after the dead consumer's last delivery).
fn check_auto(
    r: &mut Report,
    files: &[(String, Vec<Event>, Vec<String>)],
    deliveries: Option<&Vec<Delivery>>,
    pubs: &HashMap<u64, Publish>,
    first_seq: &HashMap<u64, u64>,
    died: &dyn Fn(&str) -> bool,
    batch: u64,
) {
    let empty = Vec::new();
    let deliveries = deliveries.unwrap_or(&empty);
    let mut prev: Option<&Delivery> = None;
    let mut got: HashSet<u64> = HashSet::new();
    for d in deliveries {
        if let Some(p) = prev {
            if d.seq == p.seq || got.contains(&d.mid) {
                r.anomaly(
                    "duplicated",
                    format!(
                        "ack=auto delivered seq {} twice ({} then {})",
                        d.seq, p.client, d.client
                    ),
                );
            } else if d.seq < p.seq {
                r.anomaly(
                    "reordered",
                    format!(
                        "ack=auto delivered seq {} after seq {} ({})",
                        d.seq, p.seq, d.client
                    ),
                );
            }
        }
        if d.attempt != 1 {
            r.anomaly(
                "duplicated",
                format!("ack=auto delivered seq {} as attempt {}", d.seq, d.attempt),
            );
        }
        got.insert(d.mid);
        prev = Some(d);
    }
    // The gaps a dead auto consumer may leave: (its last seq, the next
    // incarnation's first].
    let mut gaps: Vec<(u64, u64, u64)> = Vec::new();
    let autos: Vec<&(String, Vec<Event>, Vec<String>)> = files
        .iter()
        .filter(|(c, _, _)| parts(c).0 == "auto")
        .collect();
    for (i, (c, events, _)) in autos.iter().enumerate() {
        if !died(c) {
            continue;
        }
        let last = events
            .iter()
            .rev()
            .find(|e| e.kind() == "d")
            .map_or(0, |e| e.n(1));
        let last = last.max(
            autos[..i]
                .iter()
                .flat_map(|(_, e, _)| e.iter().rev().find(|e| e.kind() == "d"))
                .map(|e| e.n(1))
                .max()
                .unwrap_or(0),
        );
        let next = autos[i + 1..]
            .iter()
            .find_map(|(_, e, _)| e.iter().find(|e| e.kind() == "d"))
            .map_or(u64::MAX, |e| e.n(1));
        gaps.push((last, next, 0));
    }
    let mut lost: Vec<(u64, u64)> = Vec::new();
    for (m, p) in pubs {
        if p.ok && !got.contains(m) {
            lost.push((first_seq.get(m).copied().unwrap_or(u64::MAX), *m));
        }
    }
    lost.sort();
    for (seq, m) in lost {
        let gap = gaps
            .iter_mut()
            .find(|g| seq > g.0 && seq < g.1 && g.2 < batch);
        if let Some(g) = gap {
            g.2 += 1;
            r.count("ack=auto consumed in doubt (its consumer killed)", 1);
        } else {
            r.anomaly("lost", format!("group auto never got {m:#x} (seq {seq})"));
        }
    }
}

/// ack=manual: everything finished (acked or dead-lettered), nothing
/// delivered after an ack, no attempt past `max_deliveries`, and a key's
/// message leased only after the one before it finished.
fn check_manual(
    r: &mut Report,
    files: &[(String, Vec<Event>, Vec<String>)],
    pubs: &HashMap<u64, Publish>,
    first_seq: &HashMap<u64, u64>,
    dlq: &[&Event],
    died: &dyn Fn(&str) -> bool,
    max_deliveries: u64,
) {
    let mut seqs: BTreeMap<u64, Handling> = BTreeMap::new();
    let mut mid_of: HashMap<u64, u64> = HashMap::new();
    for (c, events, _) in files.iter().filter(|(c, _, _)| parts(c).0 == "work") {
        let name: Rc<str> = c.as_str().into();
        let mut open: HashMap<u64, (u64, &str)> = HashMap::new();
        for e in events {
            let seq = e.n(if e.kind() == "d" { 1 } else { 0 });
            match e.kind() {
                "d" if e.f(0) == "work" => {
                    if e.n(2) > max_deliveries {
                        r.anomaly(
                            "attempts",
                            format!(
                                "{c}: seq {seq} delivered as attempt {} (max {max_deliveries})",
                                e.n(2)
                            ),
                        );
                    }
                    let h = seqs.entry(seq).or_default();
                    h.deliveries.push((e.t, name.clone(), e.n(2)));
                    mid_of.insert(seq, e.n(3));
                    r.count("deliveries: work (redelivered)", u64::from(e.n(2) > 1));
                }
                "ai" | "ni" => {
                    open.insert(seq, (e.t, if e.kind() == "ai" { "ack" } else { e.f(1) }));
                }
                "ao" => {
                    let h = seqs.entry(seq).or_default();
                    h.acked.push(e.t);
                    if let Some((t, _)) = open.remove(&seq) {
                        h.finish_invokes.push(t);
                    }
                    r.count("acks", 1);
                }
                "no" => {
                    if let Some((_, how)) = open.remove(&seq) {
                        if how == "dead" {
                            seqs.entry(seq).or_default().dead_lettered = true;
                        }
                    }
                    r.count("nacks", 1);
                }
                "af" | "nf" => {
                    open.remove(&seq);
                    r.count("acks and nacks refused (lease gone)", 1);
                }
                _ => {}
            }
        }
        // Calls cut off by the process's death: in doubt.
        if died(c) {
            for (seq, (t, how)) in open {
                let h = seqs.entry(seq).or_default();
                match how {
                    "ack" => h.finish_invokes.push(t),
                    "dead" => {
                        h.dead_lettered = true;
                        h.dead_letter_cut = true;
                    }
                    _ => {}
                }
            }
        }
    }
    // Nothing delivered after an ack returned.
    for (seq, h) in &seqs {
        let Some(acked) = h.acked.iter().min() else {
            continue;
        };
        for (t, c, attempt) in h.deliveries.iter().filter(|d| d.0 > *acked) {
            if h.dead_letter_cut {
                r.count("delivered after an ack: its dead-lettering was killed", 1);
            } else {
                r.anomaly(
                    "duplicated",
                    format!("{c}: seq {seq} delivered again (attempt {attempt}) {} ms after an ack returned", (t - acked) / 1_000_000),
                );
            }
        }
    }
    // Finished: acked (or an ack in doubt), or dead-lettered and still in
    // the DLQ when the run ended.
    let mut finished: HashSet<u64> = HashSet::new();
    for (seq, h) in &seqs {
        if !h.finish_invokes.is_empty() {
            if let Some(m) = mid_of.get(seq) {
                finished.insert(*m);
            }
        }
    }
    for e in dlq {
        if e.f(0) == "work" && e.f(3) == "0" {
            finished.insert(e.n(2));
        }
        if let Some(h) = seqs.get_mut(&e.n(1)) {
            h.dead_lettered = true;
        }
    }
    let mut lost: Vec<(u64, u64)> = pubs
        .iter()
        .filter(|(m, p)| p.ok && !finished.contains(m))
        .map(|(m, _)| (first_seq.get(m).copied().unwrap_or(u64::MAX), *m))
        .collect();
    lost.sort();
    for (seq, m) in lost {
        r.anomaly(
            "lost",
            format!("group work never finished {m:#x} (seq {seq})"),
        );
    }
    // Per-key order: a key's next message is leased only after the one
    // before it was finished. A key that had a dead letter is left out
    // (SPEC 9: the one documented point where a key's order breaks).
    let mut keys: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut broken: HashSet<&str> = HashSet::new();
    for (seq, mid) in &mid_of {
        let Some(key) = pubs.get(mid).and_then(|p| p.ordering_key.as_deref()) else {
            continue;
        };
        let h = &seqs[seq];
        if h.dead_lettered || h.deliveries.iter().any(|d| d.2 >= max_deliveries) {
            broken.insert(key);
        }
        keys.entry(key).or_default().push(*seq);
    }
    for (key, mut list) in keys {
        if broken.contains(key) {
            r.count("keys left out of the order check (dead letters)", 1);
            continue;
        }
        list.sort();
        for w in list.windows(2) {
            let (a, b) = (&seqs[&w[0]], &seqs[&w[1]]);
            let Some(fin) = a.finish_invokes.iter().max() else {
                continue;
            };
            if let Some(d) = b.deliveries.iter().find(|d| d.0 < *fin) {
                r.anomaly(
                    "reordered",
                    format!(
                        "key {key}: seq {} leased by {} before seq {} was finished",
                        w[1], d.1, w[0]
                    ),
                );
            }
        }
    }
}

/// A replay group: after each seek, seqs rise (what they carry was checked
/// with every delivery).
fn check_replay(r: &mut Report, files: &[(String, Vec<Event>, Vec<String>)]) {
    for (c, events, _) in files.iter().filter(|(c, _, _)| parts(c).0 == "replay") {
        let mut prev: Option<u64> = None;
        for e in events {
            match e.kind() {
                "so" => {
                    prev = None;
                    r.count("replays (seeks)", 1);
                }
                "d" => {
                    let seq = e.n(1);
                    if let Some(p) = prev.filter(|p| seq <= *p) {
                        r.anomaly(
                            "reordered",
                            format!("{c}: replay delivered seq {seq} after seq {p}"),
                        );
                    }
                    prev = Some(seq);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::history::Log;
    use crate::chaos::payload::{digest, mid};

    /// A small history, written as the clients write it: producer 0 puts
    /// four messages in (the last two of key "k"), the ack=auto consumer
    /// and one worker get them all. `edit` changes what the consumers
    /// write: `(role, seq)` → the lines for that delivery.
    struct Hist {
        dir: tempfile::TempDir,
    }

    const MAX: usize = 64;

    fn m(i: u64) -> u64 {
        mid(0, i)
    }

    impl Hist {
        fn new() -> Hist {
            let h = Hist {
                dir: tempfile::tempdir().unwrap(),
            };
            std::fs::create_dir(h.dir.path().join("history")).unwrap();
            let mut r = h.log("runner-0-0");
            r.event("cfg", &[&"max_payload", &MAX]);
            r.event("cfg", &[&"max_deliveries", &4]);
            r.event("cfg", &[&"batch", &8]);
            let mut p = h.log("prod-0-0");
            for i in 0..4u64 {
                let key = if i >= 2 { "k" } else { "-" };
                p.event("pi", &[&m(i), &"one", &0, &key]);
                p.event("po", &[&i, &1]);
            }
            h
        }

        fn log(&self, name: &str) -> Log {
            Log::open(&self.dir.path().join("history").join(format!("{name}.log"))).unwrap()
        }

        fn deliver(&self, log: &mut Log, group: &str, seq: u64, attempt: u64) {
            log.event(
                "d",
                &[&group, &seq, &attempt, &m(seq), &digest(m(seq), MAX)],
            );
        }

        fn work_all(&self) {
            let mut w = self.log("work-0-0");
            for seq in 0..4 {
                self.deliver(&mut w, "work", seq, 1);
                w.event("ai", &[&seq]);
                w.event("ao", &[&seq]);
            }
        }

        fn auto(&self, seqs: &[u64]) {
            let mut a = self.log("auto-0-0");
            for s in seqs {
                self.deliver(&mut a, "auto", *s, 1);
            }
        }

        fn exits(&self, how: &[(&str, &str)]) {
            let mut r = self.log("runner-0-0");
            for (c, h) in how {
                r.event("exit", &[c, h]);
            }
        }

        fn check(&self) -> Report {
            check(self.dir.path()).unwrap()
        }
    }

    fn only(r: &Report, class: &str) {
        assert!(r.of(class) > 0, "no {class}:\n{}", r.render());
        assert_eq!(r.total(), r.of(class), "more than {class}:\n{}", r.render());
    }

    #[test]
    fn a_clean_history_has_no_anomaly() {
        let h = Hist::new();
        h.auto(&[0, 1, 2, 3]);
        h.work_all();
        let r = h.check();
        assert_eq!(r.total(), 0, "{}", r.render());
        assert_eq!(r.counts["messages published (ok)"], 4);
    }

    #[test]
    fn a_message_no_group_got_is_lost() {
        let h = Hist::new();
        h.auto(&[0, 2, 3]);
        h.work_all();
        only(&h.check(), "lost");
    }

    #[test]
    fn one_gap_after_a_killed_auto_consumer_is_in_doubt_not_lost() {
        let h = Hist::new();
        let mut a = h.log("auto-0-0");
        h.deliver(&mut a, "auto", 0, 1);
        let mut b = h.log("auto-0-1");
        for s in [2, 3] {
            h.deliver(&mut b, "auto", s, 1);
        }
        h.work_all();
        h.exits(&[("auto-0-0", "killed"), ("auto-0-1", "ok")]);
        let r = h.check();
        assert_eq!(r.total(), 0, "{}", r.render());
        assert_eq!(
            r.counts["ack=auto consumed in doubt (its consumer killed)"],
            1
        );
        // The same gap in a consumer that was not killed is a loss.
        let h = Hist::new();
        let mut a = h.log("auto-0-0");
        h.deliver(&mut a, "auto", 0, 1);
        let mut b = h.log("auto-0-1");
        h.deliver(&mut b, "auto", 2, 1);
        h.deliver(&mut b, "auto", 3, 1);
        h.work_all();
        h.exits(&[("auto-0-0", "ok"), ("auto-0-1", "ok")]);
        only(&h.check(), "lost");
    }

    #[test]
    fn twice_in_ack_auto_is_duplicated_and_backwards_is_reordered() {
        let h = Hist::new();
        h.auto(&[0, 1, 1, 2, 3]);
        h.work_all();
        only(&h.check(), "duplicated");
        let h = Hist::new();
        h.auto(&[0, 2, 1, 3]);
        h.work_all();
        only(&h.check(), "reordered");
    }

    #[test]
    fn a_wrong_digest_is_corrupted_and_an_unknown_message_unexpected() {
        let h = Hist::new();
        let mut a = h.log("auto-0-0");
        for s in 0..4 {
            let d = if s == 1 { 7 } else { digest(m(s), MAX) };
            a.event("d", &[&"auto", &s, &1, &m(s), &d]);
        }
        h.work_all();
        only(&h.check(), "corrupted");
        let h = Hist::new();
        h.auto(&[0, 1, 2, 3]);
        h.work_all();
        let mut a = h.log("auto-0-0");
        a.event("d", &[&"auto", &9, &1, &m(9), &digest(m(9), MAX)]);
        only(&h.check(), "unexpected");
    }

    #[test]
    fn ack_manual_after_an_ack_past_max_deliveries_and_out_of_key_order() {
        // Delivered again after its ack returned.
        let h = Hist::new();
        h.auto(&[0, 1, 2, 3]);
        h.work_all();
        let mut w = h.log("work-1-0");
        h.deliver(&mut w, "work", 1, 2);
        w.event("ai", &[&1]);
        w.event("ao", &[&1]);
        only(&h.check(), "duplicated");
        // Unless a dead-lettering of it was cut off by its worker's death:
        // the DLQ may hold it as well (documented), and redrive it.
        let h = Hist::new();
        h.auto(&[0, 1, 2, 3]);
        let mut cut = h.log("work-2-0");
        h.deliver(&mut cut, "work", 1, 1);
        cut.event("ni", &[&1, &"dead"]);
        h.work_all();
        let mut w = h.log("work-1-0");
        h.deliver(&mut w, "work", 1, 1);
        w.event("ai", &[&1]);
        w.event("ao", &[&1]);
        h.exits(&[("work-2-0", "killed")]);
        let r = h.check();
        assert_eq!(r.total(), 0, "{}", r.render());
        // A fifth attempt with max_deliveries 4.
        let h = Hist::new();
        h.auto(&[0, 1, 2, 3]);
        let mut w = h.log("work-0-0");
        for seq in 0..4 {
            h.deliver(&mut w, "work", seq, if seq == 0 { 5 } else { 1 });
            w.event("ai", &[&seq]);
            w.event("ao", &[&seq]);
        }
        only(&h.check(), "attempts");
        // Key "k": seq 3 leased before seq 2 was acked.
        let h = Hist::new();
        h.auto(&[0, 1, 2, 3]);
        let mut w = h.log("work-0-0");
        for seq in [0, 1, 2, 3] {
            h.deliver(&mut w, "work", seq, 1);
        }
        for seq in [0, 1, 3, 2] {
            w.event("ai", &[&seq]);
            w.event("ao", &[&seq]);
        }
        only(&h.check(), "reordered");
    }

    #[test]
    fn a_publish_cut_off_by_its_death_is_in_doubt_not_lost() {
        let h = Hist::new();
        let mut p = h.log("prod-0-1");
        p.event("pi", &[&m(10), &"one", &0, &"-"]);
        h.auto(&[0, 1, 2, 3]);
        h.work_all();
        h.exits(&[("prod-0-1", "killed")]);
        let r = h.check();
        assert_eq!(r.total(), 0, "{}", r.render());
        assert_eq!(r.counts["publishes in doubt: not in"], 1);
    }

    #[test]
    fn a_crash_and_an_error_are_reported() {
        let h = Hist::new();
        h.auto(&[0, 1, 2, 3]);
        h.work_all();
        h.exits(&[("work-0-0", "signal 11")]);
        only(&h.check(), "crashed");
        let h = Hist::new();
        h.auto(&[0, 1, 2, 3]);
        h.work_all();
        h.log("work-0-0").event("x", &[&"ack", &"Corrupt"]);
        only(&h.check(), "errors");
    }
}
