//! Every field of `Options` and `ConsumerOptions` can be set from every
//! face: Python's `Queue.create` / `Queue.consumer`, C's `shmq_options` /
//! `shmq_consumer_options`, C++'s `shmq::options` / `consumer_options`, and
//! the CLI's `shmq create` / `shmq consume`. The fields are read from the
//! core's source, so a field added there fails this test until the table
//! below says how each face spells it (`ordering_lanes` was once settable
//! from Rust alone).

use std::collections::BTreeMap;
use std::path::Path;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The field names of `pub struct NAME { ... }` in `src`.
fn fields(src: &str, name: &str) -> Vec<String> {
    let start = src
        .find(&format!("pub struct {name} {{"))
        .unwrap_or_else(|| panic!("no struct {name}"));
    let body = &src[start..];
    let body = &body[body.find('{').unwrap() + 1..body.find("\n}").unwrap()];
    body.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("//") && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l
                .strip_prefix("pub(crate) ")
                .or_else(|| l.strip_prefix("pub "))?;
            Some(l.split(':').next()?.trim().to_string())
        })
        .collect()
}

/// The faces, each with where its spellings are looked for.
struct Face {
    name: &'static str,
    /// The source the face's spelling must appear in.
    source: String,
    /// How a spelling may appear there (any of these).
    pattern: fn(&str) -> Vec<String>,
}

fn faces(consumer: bool) -> Vec<Face> {
    let header = read("include/shmq.h");
    let c_struct = |name: &str| {
        let at = header
            .find(&format!("typedef struct {name} {{"))
            .unwrap_or_else(|| panic!("no {name} in shmq.h"));
        header[at..at + header[at..].find(&format!("}} {name};")).unwrap()].to_string()
    };
    let python = read("python/src/queue.rs");
    let python_sig = |marker: &str| {
        let at = python.find(marker).unwrap_or_else(|| panic!("{marker}"));
        python[at..at + python[at..].find(")]").unwrap()].to_string()
    };
    if consumer {
        vec![
            Face {
                name: "Python Queue.consumer",
                source: python_sig("#[pyo3(signature = (group, *"),
                pattern: |s| vec![format!("{s}=")],
            },
            Face {
                name: "C shmq_consumer_options",
                source: c_struct("shmq_consumer_options"),
                pattern: |s| vec![format!(" {s};"), format!("*{s};")],
            },
            Face {
                name: "C++ shmq::consumer_options",
                source: read("include/shmq.hpp"),
                pattern: |s| vec![format!("consumer_options &{s}(")],
            },
            Face {
                name: "shmq consume",
                source: read("cli/src/cmd/consume.rs"),
                pattern: |s| vec![format!("    {s}: ")],
            },
        ]
    } else {
        vec![
            Face {
                name: "Python Queue.create",
                source: python_sig("#[pyo3(signature = (name, *, slots"),
                pattern: |s| vec![format!("{s}=")],
            },
            Face {
                name: "C shmq_options",
                source: c_struct("shmq_options"),
                pattern: |s| vec![format!(" {s};"), format!("*{s};")],
            },
            Face {
                name: "C++ shmq::options",
                source: read("include/shmq.hpp"),
                pattern: |s| vec![format!("    options &{s}(")],
            },
            Face {
                name: "shmq create",
                // The queue directory and the trust flags are global
                // (`shmq --dir D --trust-owner U create ...`).
                source: read("cli/src/cmd/create.rs") + &read("cli/src/main.rs"),
                pattern: |s| vec![format!("    {s}: ")],
            },
        ]
    }
}

/// How each face spells a core field (several names: all of them are
/// needed), in the order of `faces`.
fn spellings(consumer: bool) -> BTreeMap<&'static str, [&'static [&'static str]; 4]> {
    if consumer {
        BTreeMap::from([
            (
                "start",
                [
                    &["start"][..],
                    &["start", "start_seq"],
                    &["start"],
                    &["start"],
                ],
            ),
            ("ack", [&["ack"][..], &["ack"], &["ack"], &["ack"]]),
            ("wait", [&["wait"][..], &["wait"], &["wait"], &["wait"]]),
            (
                "create",
                [&["create"][..], &["create"], &["create"], &["create"]],
            ),
        ])
    } else {
        let same = |s: &'static [&'static str]| [s, s, s, s];
        BTreeMap::from([
            ("dir", same(&["dir"])),
            ("slots", same(&["slots"])),
            ("capacity", same(&["capacity"])),
            ("slot_size", same(&["slot_size"])),
            ("max_message_size", same(&["max_message_size"])),
            ("max_groups", same(&["max_groups"])),
            ("overflow", same(&["overflow"])),
            (
                "lease",
                [&["lease"][..], &["lease_ms"], &["lease"], &["lease"]],
            ),
            ("max_deliveries", same(&["max_deliveries"])),
            ("dlq_slots", same(&["dlq_slots"])),
            ("dedup_window", same(&["dedup_window"])),
            ("ordering_lanes", same(&["ordering_lanes"])),
            ("max_in_flight", same(&["max_in_flight"])),
            (
                "message_ttl",
                [
                    &["message_ttl"][..],
                    &["message_ttl_ms"],
                    &["message_ttl"],
                    &["message_ttl"],
                ],
            ),
            ("on_expiry", same(&["on_expiry"])),
            (
                "delivery_delay",
                [
                    &["delivery_delay"][..],
                    &["delivery_delay_ms"],
                    &["delivery_delay"],
                    &["delivery_delay"],
                ],
            ),
            (
                "dedup_ttl",
                [
                    &["dedup_ttl"][..],
                    &["dedup_ttl_ms"],
                    &["dedup_ttl"],
                    &["dedup_ttl"],
                ],
            ),
            (
                "unblock_timeout",
                [
                    &["unblock_timeout"][..],
                    &["unblock_timeout_ms"],
                    &["unblock_timeout"],
                    &["unblock_timeout"],
                ],
            ),
            ("mode", same(&["mode"])),
            ("spill_dir", same(&["spill_dir"])),
            ("spill_max_bytes", same(&["spill_max_bytes"])),
            ("spill_segment_size", same(&["spill_segment_size"])),
            ("spill_fallback", same(&["spill_fallback"])),
            (
                "sync",
                [&["sync"][..], &["sync", "sync_every"], &["sync"], &["sync"]],
            ),
            (
                "journal",
                [
                    &["journal_max_age", "journal_max_bytes"][..],
                    &["journal_max_age_ms", "journal_max_bytes"],
                    &["journal_max_age", "journal_max_bytes"],
                    &["journal_age", "journal_bytes"],
                ],
            ),
            ("trust", same(&["trust_owner", "trust_group"])),
        ])
    }
}

fn check(consumer: bool, struct_name: &str) {
    let file = if consumer {
        "core/src/options/consumer.rs"
    } else {
        "core/src/options/mod.rs"
    };
    let core = fields(&read(file), struct_name);
    assert!(core.len() >= 3, "{struct_name}: read {core:?}");
    let table = spellings(consumer);
    let faces = faces(consumer);
    let mut missing = Vec::new();
    for field in &core {
        let Some(spelled) = table.get(field.as_str()) else {
            missing.push(format!(
                "{struct_name}::{field} is new: say how every face sets it (this test's table), \
                 and make each face set it"
            ));
            continue;
        };
        for (face, names) in faces.iter().zip(spelled) {
            for name in *names {
                if !(face.pattern)(name).iter().any(|p| face.source.contains(p)) {
                    missing.push(format!(
                        "{struct_name}::{field}: {} has no {name}",
                        face.name
                    ));
                }
            }
        }
    }
    for field in table.keys() {
        assert!(
            core.iter().any(|f| f == field),
            "{struct_name} has no field {field} any more: update the table"
        );
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn every_queue_option_is_in_every_face() {
    check(false, "Options");
}

#[test]
fn every_consumer_option_is_in_every_face() {
    check(true, "ConsumerOptions");
}
