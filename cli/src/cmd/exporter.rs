//! `shmq exporter`: every queue in the directory, at `/metrics`, for
//! Prometheus to scrape. Each scrape lists the directory afresh, so
//! queues appear and disappear as they are created and removed; the text
//! is `stat --prometheus`'s (one implementation, `crate::metrics`).

use std::collections::BTreeMap;
use std::io::Write;

use shmq::Options;

use super::ls::{self, Entry};
use crate::{CliError, CliResult};

/// `shmq exporter` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Address to serve on (port 0 takes a free one; the address served is
    /// printed on the first line of stdout).
    #[arg(long, default_value = "127.0.0.1:9464", value_name = "ADDR:PORT")]
    listen: String,
}

pub(crate) fn run(args: Args, opts: Options) -> CliResult {
    let server = tiny_http::Server::http(&args.listen)
        .map_err(|e| CliError::Other(format!("listening on {}: {e}", args.listen)))?;
    let addr = server
        .server_addr()
        .to_ip()
        .map(|a| a.to_string())
        .unwrap_or(args.listen);
    let dir = opts.get_dir();
    println!(
        "serving http://{addr}/metrics for the queues in {}",
        dir.display()
    );
    std::io::stdout().flush()?;
    // What was last said about each unusable file, so a file that stays
    // broken is reported once, not at every scrape.
    let mut reported: BTreeMap<String, String> = BTreeMap::new();
    for request in server.incoming_requests() {
        let path = request.url().split('?').next().unwrap_or("");
        let response = match (request.method(), path) {
            (tiny_http::Method::Get | tiny_http::Method::Head, "/metrics") => {
                match ls::scan(&opts) {
                    Ok(entries) => {
                        report_unusable(&entries, &mut reported);
                        metrics(&entries)
                    }
                    Err(e) => text(500, format!("{e}\n")),
                }
            }
            (tiny_http::Method::Get | tiny_http::Method::Head, "/") => text(
                200,
                format!(
                    "shmq exporter for the queues in {}: the metrics are at /metrics\n",
                    dir.display()
                ),
            ),
            (tiny_http::Method::Get | tiny_http::Method::Head, _) => text(
                404,
                format!("no such page: {path} (the metrics are at /metrics)\n"),
            ),
            _ => text(405, "only GET and HEAD are served\n".into()),
        };
        // A scraper that hung up before the answer is its own affair.
        let _ = request.respond(response);
    }
    Ok(())
}

type Response = tiny_http::Response<std::io::Cursor<Vec<u8>>>;

fn metrics(entries: &[Entry]) -> Response {
    let mut queues = Vec::new();
    let mut unusable = 0;
    for e in entries {
        match e {
            Entry::Queue(s) => queues.push(&**s),
            Entry::Unusable { .. } => unusable += 1,
        }
    }
    let body = crate::metrics::prometheus_text(&queues, Some(unusable));
    tiny_http::Response::from_string(body).with_header(header(&crate::metrics::content_type()))
}

fn text(code: u16, body: String) -> Response {
    tiny_http::Response::from_string(body)
        .with_status_code(code)
        .with_header(header("text/plain; charset=utf-8"))
}

fn header(content_type: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes("Content-Type", content_type)
        .expect("a content type is a valid header value")
}

/// Says on stderr which files became unusable (and why) or usable again
/// since the last scrape.
fn report_unusable(entries: &[Entry], reported: &mut BTreeMap<String, String>) {
    let now: BTreeMap<String, String> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Unusable { name, why } => Some((name.clone(), why.clone())),
            Entry::Queue(_) => None,
        })
        .collect();
    for (name, why) in &now {
        if reported.get(name) != Some(why) {
            eprintln!("shmq exporter: {name} is not a usable queue: {why}");
        }
    }
    for name in reported.keys() {
        if !now.contains_key(name) {
            eprintln!("shmq exporter: {name} is usable again or gone");
        }
    }
    *reported = now;
}
