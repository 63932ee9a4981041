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
    Queue::open("envq").unwrap();
    // SAFETY: as above.
    unsafe { std::env::remove_var("SHMQ_DIR") };
}
