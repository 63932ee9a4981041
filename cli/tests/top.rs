//! `shmq top` in a real terminal: tmux runs it in an 80×24 window, the
//! test reads the screen (`capture-pane`) and presses keys (`send-keys`)
//! while messages flow. Progress bars are checked here too: they show on a
//! terminal and nowhere else.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;
use common::{SHMQ, have_tool, ok, shmq, wait_for};

/// A private tmux server (its own socket in the test's directory, no
/// configuration file), killed when dropped.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn start(dir: &Path, command: &str) -> Tmux {
        let t = Tmux {
            socket: dir.join("tmux.sock"),
        };
        t.run(&["new-session", "-d", "-x", "80", "-y", "24", command]);
        t
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-f")
            .arg("/dev/null")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p"])
    }

    fn keys(&self, keys: &str) {
        self.run(&["send-keys", keys]);
    }

    /// The screen once `check` accepts it (it says what it missed).
    fn wait(&self, what: &str, check: impl Fn(&str) -> Result<(), String>) -> String {
        wait_for(Duration::from_secs(20), what, || {
            let s = self.screen();
            check(&s)
                .map(|()| s.clone())
                .map_err(|why| format!("{why}\n{s}"))
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

/// The screen line of queue `name` in the queue list, split in columns.
fn row<'a>(screen: &'a str, name: &str) -> Option<Vec<&'a str>> {
    screen
        .lines()
        .map(|l| l.trim_start_matches(['›', ' ']))
        .find(|l| l.split_whitespace().next() == Some(name))
        .map(|l| l.split_whitespace().collect())
}

fn number(cell: &str) -> f64 {
    let (n, scale) = match cell.strip_suffix('k') {
        Some(n) => (n, 1e3),
        None => match cell.strip_suffix('M') {
            Some(n) => (n, 1e6),
            None => (cell, 1.0),
        },
    };
    n.parse::<f64>()
        .unwrap_or_else(|_| panic!("not a number: {cell:?}"))
        * scale
}

#[test]
fn top_shows_rates_lag_and_history_and_answers_its_keys_in_80x24() {
    if !have_tool("tmux") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["create", "orders", "--slots", "4096"]);
    ok(d, &["create", "alpha", "--slots", "64"]);
    let long = "g".repeat(48);
    ok(d, &["group-create", "orders", "billing"]);
    ok(d, &["group-create", "orders", &long]);
    std::fs::write(d.join("broken.shmq"), b"not a queue").unwrap();

    // Messages flow all through the test: 50 every 50 ms, and billing
    // reads half of them, so its lag grows.
    let load = {
        let q = shmq::Queue::open_with("orders", &shmq::Options::new().dir(d)).unwrap();
        let mut p = q.producer().unwrap();
        let mut billing = q.consumer("billing", Default::default()).unwrap();
        let mut n = 0u64;
        common::Load::start(Duration::from_millis(50), move || {
            for _ in 0..50 {
                p.publish(&n.to_le_bytes()).unwrap();
                n += 1;
            }
            for _ in 0..25 {
                let _ = billing.try_receive().unwrap();
            }
            n < 200_000
        })
    };

    let status = d.join("status");
    let tmux = Tmux::start(
        d,
        &format!(
            "{SHMQ} --dir {} top; echo \"exit=$?\" > {}",
            d.display(),
            status.display()
        ),
    );
    let screen = tmux.wait("publish and delivery rates of orders", |s| {
        let r = row(s, "orders").ok_or("no orders row")?;
        // queue depth pub/s deliv/s lag inflt redel/s dlq spill sched
        if number(r[2]) > 0.0 && number(r[3]) > 0.0 && number(r[4]) > 0.0 {
            Ok(())
        } else {
            Err("orders has no publish rate, delivery rate or lag yet".into())
        }
    });
    for line in screen.lines() {
        assert!(line.chars().count() <= 80, "wider than 80: {line:?}");
    }
    assert!(screen.contains("2 queues (1 not usable)"), "{screen}");
    assert!(row(&screen, "alpha").is_some(), "{screen}");
    assert!(
        row(&screen, "broken").is_some_and(|r| r[1] == "-"),
        "{screen}"
    );
    // Sorted by name, alpha first and selected: its detail is shown.
    assert!(screen.contains("sorted by name"), "{screen}");
    assert!(screen.contains(" alpha ──"), "{screen}");

    // j j selects orders: its groups, with a lag trend, appear.
    tmux.keys("j");
    tmux.keys("j");
    let screen = tmux.wait("orders selected, with its groups", |s| {
        if !s.contains(" orders ──") {
            return Err("orders not selected".into());
        }
        let billing = s
            .lines()
            .find(|l| l.starts_with("billing "))
            .ok_or("no billing row")?;
        if !billing.contains(['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█']) {
            return Err("no lag trend in billing's row".into());
        }
        Ok(())
    });
    assert!(screen.contains("lag trend"), "{screen}");
    assert!(screen.contains("publish/s"), "{screen}");
    assert!(
        screen.lines().any(|l| l.starts_with("gggggggg")),
        "the 48-character group has a row: {screen}"
    );

    // s sorts by depth: orders (the deepest) moves to the top and stays
    // selected.
    tmux.keys("s");
    let screen = tmux.wait("sorted by depth", |s| {
        s.contains("sorted by depth")
            .then_some(())
            .ok_or_else(|| "not sorted by depth".into())
    });
    let list: Vec<&str> = screen
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("queue "))
        .skip(1)
        .take(3)
        .map(|l| {
            l.trim_start_matches(['›', ' '])
                .split_whitespace()
                .next()
                .unwrap_or("")
        })
        .collect();
    assert_eq!(list[0], "orders", "{screen}");
    assert!(screen.contains(" orders ──"), "{screen}");

    // Queues come and go while it runs.
    ok(d, &["rm", "alpha"]);
    ok(d, &["create", "zeta", "--slots", "16"]);
    tmux.wait("alpha gone, zeta there", |s| {
        match (row(s, "alpha"), row(s, "zeta")) {
            (None, Some(_)) => Ok(()),
            _ => Err("the list did not follow the directory".into()),
        }
    });

    // q quits, with status 0.
    tmux.keys("q");
    let said = wait_for(Duration::from_secs(10), "top exiting", || {
        // The shell creates the file before it writes the line: an empty
        // file is not yet the answer.
        match std::fs::read_to_string(&status) {
            Ok(s) if s.ends_with('\n') => Ok(s),
            Ok(s) => Err(format!("status file so far: {s:?}")),
            Err(e) => Err(e.to_string()),
        }
    });
    assert_eq!(said.trim(), "exit=0");
    drop(load);
}

#[test]
fn top_without_a_terminal_says_what_to_use_instead() {
    let dir = tempfile::tempdir().unwrap();
    let out = shmq(dir.path(), &["top"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not one") && err.contains("shmq exporter"),
        "{err}"
    );
    let out = shmq(dir.path(), &["top", "--interval", "0.01"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 0.1"));
}

#[test]
fn progress_shows_on_a_terminal_and_never_in_a_pipe() {
    if !have_tool("tmux") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // No consumer: the publisher fills the ring and waits, its bar up.
    ok(d, &["create", "p", "--slots", "1024"]);
    ok(d, &["group-create", "p", "g"]);
    let tmux = Tmux::start(
        d,
        &format!(
            "{SHMQ} --dir {} publish p --count 5000 --size 16; sleep 30",
            d.display()
        ),
    );
    let screen = tmux.wait("a publish bar", |s| {
        // The publisher says why it waits after a second of it, above
        // the bar.
        (s.contains("publishing to p [")
            && s.contains("/5,000 messages")
            && s.contains("waiting for room in p"))
        .then_some(())
        .ok_or_else(|| "no bar, or no word on the wait".into())
    });
    let (said, bar) = (
        screen.find("waiting for room in p").unwrap(),
        screen.find("publishing to p [").unwrap(),
    );
    assert!(said < bar, "the bar stays below what is said: {screen}");
    // Consumed elsewhere, the publish finishes and its bar is gone.
    let out = common::finish(
        Command::new(SHMQ)
            .arg("--dir")
            .arg(d)
            .args(["consume", "p", "--group", "g", "--count", "5000"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(20),
    );
    assert!(out.status.success());
    // Its stderr was a pipe: no bar there.
    assert!(
        out.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    let screen = tmux.wait("the publish done", |s| {
        s.contains("published 5000 messages to p")
            .then_some(())
            .ok_or_else(|| "not done".into())
    });
    assert!(!screen.contains("publishing to p ["), "{screen}");
    // With stderr a pipe, the CLI's own lines only.
    let out = shmq(
        d,
        &[
            "publish",
            "p",
            "--count",
            "1000",
            "--size",
            "8",
            "--timeout",
            "10",
        ],
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err, "published 1000 messages to p\n");
}
