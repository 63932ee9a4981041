//! Which queue a spill directory belongs to. A spill directory (with its
//! `journal/` and `dlq/`) holds the segments of exactly one queue: the
//! file `<dir>/queue`, written when the queue is created, names that
//! queue's `creation_id` and its file. Creating a queue refuses a
//! directory that belongs to another queue that still exists; removing one
//! deletes segments only of a directory that is its own; and a process
//! that opens a queue checks that the directory it would spill to is the
//! queue's, not another one of the same path (a container's own
//! `/var/tmp`, another mount): a process that sees another directory does
//! not spill, journal or overflow dead letters there, since none of the
//! queue's other processes could read it.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The owner file's name in a spill directory.
pub(crate) const FILE: &str = "queue";

/// Who a spill directory belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    /// The queue's `creation_id`.
    pub creation_id: u64,
    /// Its file, as its creator named it.
    pub queue: PathBuf,
}

/// The owner recorded in `dir`, if a well-formed one is there.
pub(crate) fn read(dir: &Path) -> Option<Owner> {
    let text = std::fs::read_to_string(dir.join(FILE)).ok()?;
    let mut id = None;
    let mut queue = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("creation_id ") {
            id = u64::from_str_radix(v.trim(), 16).ok();
        } else if let Some(v) = line.strip_prefix("queue ") {
            queue = Some(PathBuf::from(v));
        }
    }
    Some(Owner {
        creation_id: id?,
        queue: queue?,
    })
}

/// Records that `dir` belongs to the queue of `creation_id` in `queue`
/// (written to a temporary file, then renamed over the old one).
pub(crate) fn write(dir: &Path, creation_id: u64, queue: &Path) -> Result<()> {
    let tmp = dir.join(format!(".{FILE}.{}", std::process::id()));
    let body = format!(
        "creation_id {creation_id:016x}\nqueue {}\n",
        queue.display()
    );
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(body.as_bytes())?;
        std::fs::rename(&tmp, dir.join(FILE))
    })();
    r.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("recording the owner of {}", dir.display()), e)
    })
}

/// Whether `dir` is the spill directory of the queue of `creation_id`.
pub(crate) fn is_of(dir: &Path, creation_id: u64) -> bool {
    read(dir).is_some_and(|o| o.creation_id == creation_id)
}

/// Why a process that opened the queue of `creation_id` (file `queue`)
/// must not write segments to `dir`, if it must not.
pub(crate) fn refusal(dir: &Path, creation_id: u64, queue: &Path) -> Option<String> {
    if is_of(dir, creation_id) {
        return None;
    }
    let what = match read(dir) {
        Some(o) => format!(
            "that directory belongs to another queue ({})",
            o.queue.display()
        ),
        None => "that directory, as this process sees it, is not the one the queue was \
                 created with (no record of the queue there: another mount, such as a \
                 container's own /var/tmp)"
            .to_string(),
    };
    Some(format!(
        "queue {} spills (and journals) to {}, but {what}; what this process wrote \
         there the queue's other processes could not read, so it does not spill: \
         share that directory with this process (mount it at the same path), or \
         create the queue with a spill directory on a volume every sharer mounts \
         (Options::spill_dir, shmq create --spill-dir)",
        queue.display(),
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_records_its_queue_and_refuses_others() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read(d.path()), None);
        assert!(refusal(d.path(), 7, Path::new("/q/a.shmq")).is_some());
        write(d.path(), 7, Path::new("/q/a.shmq")).unwrap();
        assert_eq!(
            read(d.path()),
            Some(Owner {
                creation_id: 7,
                queue: PathBuf::from("/q/a.shmq")
            })
        );
        assert!(is_of(d.path(), 7));
        assert_eq!(refusal(d.path(), 7, Path::new("/q/a.shmq")), None);
        let why = refusal(d.path(), 8, Path::new("/r/a.shmq")).unwrap();
        assert!(
            why.contains("belongs to another queue (/q/a.shmq)"),
            "{why}"
        );
        assert!(why.contains("--spill-dir"), "{why}");
        write(d.path(), 8, Path::new("/r/a.shmq")).unwrap();
        assert!(is_of(d.path(), 8) && !is_of(d.path(), 7));
    }
}
