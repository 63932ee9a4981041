//! `SHMQ_DIR` picks the default directory (its own test binary: it sets
//! an environment variable).

use shmq::{Options, Queue};

#[test]
fn env_dir_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    // SAFETY: this binary runs this one test, on one thread.
    unsafe { std::env::set_var("SHMQ_DIR", dir.path()) };
    assert_eq!(shmq::default_dir(), dir.path());
    let q = Queue::create("envq", &Options::new().slots(8)).unwrap();
    assert_eq!(q.path(), dir.path().join("envq.shmq"));
    drop(Queue::open("envq").unwrap());
    // Removed as it was opened: by name alone, in the default directory.
    Queue::remove_default("envq").unwrap();
    assert!(matches!(Queue::open("envq"), Err(shmq::Error::NotFound(_))));
    assert!(matches!(
        Queue::remove_default("envq"),
        Err(shmq::Error::NotFound(_))
    ));
    // SAFETY: as above.
    unsafe { std::env::remove_var("SHMQ_DIR") };
}
