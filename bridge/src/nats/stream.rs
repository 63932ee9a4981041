//! The JetStream stream that stores `to-nats`'s subject: the one named
//! with `--stream` (made if missing, with a 2-minute duplicate window for
//! the `Nats-Msg-Id`s of messages a restarted bridge sends again), else
//! whichever stream already takes the subject.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamByNameErrorKind};

use crate::engine::Fatal;

/// Makes sure `subject` is stored by a stream: `stream` if given (made if
/// missing, taking per-message TTLs), else whichever stream already takes
/// it. Returns whether that stream takes per-message TTLs (`Nats-TTL`,
/// nats-server 2.11+): a message sent with one to a stream that does not
/// is refused.
pub(super) async fn make_stream(
    js: &jetstream::Context,
    subject: &str,
    stream: Option<&str>,
    replicas: usize,
    deadline: Instant,
) -> Result<bool, Fatal> {
    match stream {
        Some(name) => {
            let cfg = jetstream::stream::Config {
                name: name.to_string(),
                subjects: vec![subject.to_string()],
                num_replicas: replicas,
                duplicate_window: Duration::from_secs(120),
                allow_message_ttl: true,
                ..Default::default()
            };
            let mut s = setup_retry!(
                deadline,
                format!("cannot get or create the stream {name:?}"),
                js.get_or_create_stream(cfg.clone()),
                |e: &jetstream::context::CreateStreamError| matches!(
                    e.kind(),
                    CreateStreamErrorKind::TimedOut | CreateStreamErrorKind::JetStreamUnavailable
                )
            )?;
            let info = s
                .info()
                .await
                .map_err(|e| Fatal(format!("stream {name:?}: {e}")))?;
            if !info
                .config
                .subjects
                .iter()
                .any(|s| subject_matches(s, subject))
            {
                return Err(Fatal(format!(
                    "stream {name:?} does not take subject {subject:?} (its subjects: {:?})",
                    info.config.subjects
                )));
            }
            Ok(info.config.allow_message_ttl)
        }
        None => {
            let name = setup_retry!(
                deadline,
                format!(
                    "no JetStream stream stores subject {subject:?} (create one, or name it with --stream)"
                ),
                js.stream_by_subject(subject),
                |e: &jetstream::context::GetStreamByNameError| matches!(
                    e.kind(),
                    GetStreamByNameErrorKind::Request
                )
            )?;
            // Someone else's stream: per-message TTLs only if it says so
            // (not knowing, none: a refused publish would stop the bridge).
            let allows = match js.get_stream(&name).await {
                Ok(mut s) => s.info().await.is_ok_and(|i| i.config.allow_message_ttl),
                Err(_) => false,
            };
            Ok(allows)
        }
    }
}

/// Whether subject filter `filter` (with `*` and `>` wildcards) takes
/// `subject`.
fn subject_matches(filter: &str, subject: &str) -> bool {
    let (mut f, mut s) = (filter.split('.'), subject.split('.'));
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::subject_matches;

    #[test]
    fn subjects_match_with_wildcards() {
        assert!(subject_matches("orders.>", "orders.eu.new"));
        assert!(subject_matches("orders.*", "orders.new"));
        assert!(!subject_matches("orders.*", "orders.eu.new"));
        assert!(subject_matches("orders", "orders"));
        assert!(!subject_matches("orders", "orders.new"));
    }
}
