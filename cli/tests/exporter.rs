//! `shmq exporter` as Prometheus sees it: its `/metrics` follows the
//! directory's queues, Debian's `promtool check metrics` accepts the text,
//! and a real Prometheus server scrapes it while messages flow and answers
//! queries for depth, lag and rates, and every expression of the Grafana
//! dashboard (`docs/grafana-shmq.json`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;
use common::{SHMQ, have_tool, ok, wait_for};

/// A child process killed when dropped (a failing test leaves none).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `shmq exporter` on a free port of 127.0.0.1, and the address it serves.
fn exporter(d: &Path) -> (Running, String) {
    let mut child = Command::new(SHMQ)
        .arg("--dir")
        .arg(d)
        .args(["exporter", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (Running(child), addr)
}

/// A plain HTTP/1.0 request: the status code, the headers and the body.
fn http(addr: &str, method: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (code, head.to_string(), body.to_string())
}

fn metrics(addr: &str) -> String {
    let (code, _, body) = http(addr, "GET", "/metrics");
    assert_eq!(code, 200, "{body}");
    body
}

/// `promtool check metrics` on `text`: its complaints, if any.
fn promtool(text: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = common::finish(child, Duration::from_secs(30));
    if out.status.success() && out.stdout.is_empty() && out.stderr.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A queue with a spill and a journal, two groups, messages in it.
fn busy_queue(d: &Path, name: &str) {
    let spill = d.join(format!("spill-{name}"));
    ok(
        d,
        &[
            "create",
            name,
            "--slots",
            "256",
            "--slot-size",
            "128",
            "--overflow",
            "spill",
            "--spill-dir",
            spill.to_str().unwrap(),
            "--spill-segment-size",
            "1048576",
            "--journal-age",
            "600",
        ],
    );
    ok(d, &["group-create", name, "billing"]);
    ok(d, &["group-create", name, "audit"]);
}

#[test]
fn the_exporter_follows_the_directory_and_promtool_accepts_its_text() {
    if !have_tool("promtool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mut running, addr) = exporter(d);

    // An empty directory: the exporter's own family, no queue's.
    let (code, head, body) = http(&addr, "GET", "/metrics");
    assert_eq!(code, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(body.contains("shmq_unusable_files 0"), "{body}");
    assert!(!body.contains("queue=\""), "{body}");

    // A queue appears at the next scrape, with its groups and journal.
    busy_queue(d, "orders");
    ok(d, &["publish", "orders", "--count", "300", "--size", "16"]);
    ok(d, &["create", "plain", "--slots", "16"]);
    let text = metrics(&addr);
    for want in [
        "shmq_depth{queue=\"orders\"} 300",
        "shmq_depth{queue=\"plain\"} 0",
        "shmq_group_lag{group=\"audit\",queue=\"orders\"} 300",
        "shmq_spill_depth{queue=\"orders\"} 44",
        "shmq_journal_replaying_groups{queue=\"orders\"} 0",
        "# TYPE shmq_published_total counter",
        "# HELP shmq_group_oldest_unacked_age_seconds Age of the group's oldest unfinished message.",
    ] {
        assert!(text.contains(want), "{want}:\n{text}");
    }
    // Each family once, with every queue's sample under it.
    assert_eq!(text.matches("# TYPE shmq_depth gauge").count(), 1);
    // The text stat --prometheus prints is the exporter's, for one queue.
    let stat = ok(d, &["stat", "orders", "--prometheus"]);
    for line in stat.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        // Ages move between two reads; the rest stands still.
        if !name.contains("age_seconds") {
            assert!(text.contains(line), "{line} (stat) is not in the scrape");
        }
    }
    promtool(&text).unwrap();
    promtool(&stat).unwrap();

    // A file that is not a queue is counted (and said once on stderr);
    // a removed queue is gone from the next scrape.
    std::fs::write(d.join("broken.shmq"), b"not a queue").unwrap();
    ok(d, &["rm", "plain"]);
    let text = metrics(&addr);
    assert!(text.contains("shmq_unusable_files 1"), "{text}");
    assert!(!text.contains("queue=\"plain\""), "{text}");
    metrics(&addr);

    // Only /metrics (and a page at / saying so).
    assert_eq!(http(&addr, "GET", "/").0, 200);
    assert_eq!(http(&addr, "GET", "/nope").0, 404);
    assert_eq!(http(&addr, "POST", "/metrics").0, 405);

    // A second exporter on the same address says so and exits.
    let out = common::shmq(d, &["exporter", "--listen", &addr]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("listening on {addr}")), "{err}");

    let _ = running.0.kill();
    let _ = running.0.wait();
    let mut err = String::new();
    running
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(
        err.matches("broken is not a usable queue").count(),
        1,
        "said once: {err}"
    );
}

/// A Prometheus server scraping `target` every second, with its data in
/// `d`, and the address of its HTTP API.
fn prometheus(d: &Path, target: &str) -> (Running, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = d.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: shmq\n    static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(d.join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", d.join("tsdb").display()))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let running = Running(child);
    wait_for(
        Duration::from_secs(60),
        "prometheus ready",
        || match TcpStream::connect(&addr) {
            Ok(_) => match http(&addr, "GET", "/-/ready").0 {
                200 => Ok(()),
                code => Err(format!("/-/ready: {code}")),
            },
            Err(e) => Err(format!(
                "{e}; log:\n{}",
                std::fs::read_to_string(d.join("prometheus.log")).unwrap_or_default()
            )),
        },
    );
    (running, addr)
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An instant query's result vector (empty when it has no data).
fn query(prom: &str, expr: &str) -> Result<Vec<serde_json::Value>, String> {
    let (code, _, body) = http(
        prom,
        "GET",
        &format!("/api/v1/query?query={}", url_encode(expr)),
    );
    if code != 200 {
        return Err(format!("{expr}: HTTP {code}: {body}"));
    }
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

/// The first sample's value of `expr`, once it has one.
fn value(prom: &str, expr: &str) -> Result<f64, String> {
    let r = query(prom, expr)?;
    r.first()
        .and_then(|s| s["value"][1].as_str())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{expr}: no data yet"))
}

/// Every `expr` in the dashboard (panels, rows and their panels).
fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn a_real_prometheus_scrapes_the_exporter_and_answers_the_dashboard() {
    if !have_tool("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    busy_queue(d, "orders");

    // Messages flow: 100 every 20 ms; billing acks most, nacks every 10th
    // (a redelivery) and dead-letters every 50th; audit reads half as
    // fast as messages come, so its lag grows and the ring spills.
    let _load = {
        let q = shmq::Queue::open_with("orders", &shmq::Options::new().dir(d)).unwrap();
        let mut p = q.producer().unwrap();
        let manual = shmq::ConsumerOptions::new().ack(shmq::Ack::Manual);
        let mut billing = q.consumer("billing", manual).unwrap();
        let mut audit = q.consumer("audit", Default::default()).unwrap();
        let mut n = 0u64;
        common::Load::start(Duration::from_millis(20), move || {
            for _ in 0..100 {
                p.publish(&n.to_le_bytes()).unwrap();
                n += 1;
            }
            for _ in 0..50 {
                let _ = audit.try_receive().unwrap();
            }
            while let Some(m) = billing.try_receive().unwrap() {
                let r = match (m.seq() % 50, m.seq() % 10, m.attempt()) {
                    (0, _, _) => m.nack(shmq::Nack::DeadLetter),
                    (_, 0, 1) => m.nack(shmq::Nack::Requeue),
                    _ => m.ack(),
                };
                r.unwrap();
            }
            n < 1_000_000
        })
    };

    let (_exporter, target) = exporter(d);
    let (_prometheus, prom) = prometheus(d, &target);

    // Depth, lag and rates while messages flow.
    let published = wait_for(Duration::from_secs(60), "a publish rate", || {
        value(&prom, "rate(shmq_published_total{queue=\"orders\"}[5s])").and_then(|v| {
            if v > 0.0 {
                Ok(v)
            } else {
                Err(format!("rate {v}"))
            }
        })
    });
    assert!(published > 100.0, "{published}");
    let lag = value(&prom, "shmq_group_lag{queue=\"orders\",group=\"audit\"}").unwrap();
    assert!(lag > 0.0, "{lag}");
    let depth = value(&prom, "shmq_depth{queue=\"orders\"}").unwrap();
    assert!(depth > 0.0, "{depth}");
    wait_for(Duration::from_secs(30), "billing's redeliveries", || {
        value(
            &prom,
            "rate(shmq_group_redelivered_total{group=\"billing\"}[5s])",
        )
        .and_then(|v| if v > 0.0 { Ok(()) } else { Err(format!("{v}")) })
    });

    // Every expression of the dashboard has data, with Grafana's
    // variables as it would fill them ("All" queues).
    let board: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/grafana-shmq.json")).unwrap();
    let mut all = Vec::new();
    exprs(&board["panels"], &mut all);
    assert!(all.len() >= 10, "{all:?}");
    for expr in &all {
        let filled = expr
            .replace("$__rate_interval", "10s")
            .replace("$queue", ".+");
        assert!(
            !filled.contains('$'),
            "a variable the test does not fill: {expr}"
        );
        wait_for(Duration::from_secs(30), expr, || {
            let r = query(&prom, &filled)?;
            if r.is_empty() {
                Err("no data".into())
            } else {
                Ok(())
            }
        });
    }
    // The queue variable's values come from shmq_depth's queue label.
    let vars = &board["templating"]["list"];
    let queue_var = vars
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "queue")
        .unwrap();
    assert_eq!(queue_var["definition"], "label_values(shmq_depth, queue)");
    let series = query(&prom, "shmq_depth").unwrap();
    assert!(
        series.iter().any(|s| s["metric"]["queue"] == "orders"),
        "{series:?}"
    );
}
