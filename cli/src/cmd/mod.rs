//! One module per subcommand (or per family of them): its `clap` arguments
//! and the code that runs it.

use clap::ValueEnum;
use shmq::Start;

pub(crate) mod consume;
pub(crate) mod create;
pub(crate) mod dlq;
pub(crate) mod exporter;
pub(crate) mod group;
pub(crate) mod ls;
pub(crate) mod peek;
pub(crate) mod publish;
pub(crate) mod rm;
pub(crate) mod scheduled;
pub(crate) mod stat;
pub(crate) mod top;

/// Where a new group starts (`consume --start`, `group-create --start`).
#[derive(Clone, Copy, Debug, ValueEnum)]
enum StartArg {
    Earliest,
    Latest,
}

impl From<StartArg> for Start {
    fn from(s: StartArg) -> Start {
        match s {
            StartArg::Earliest => Start::Earliest,
            StartArg::Latest => Start::Latest,
        }
    }
}

/// Rows under a header, every column as wide as its widest cell (so a
/// 48-character group name moves nothing out of line): the first column
/// left-aligned, the others right-aligned, two spaces between.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.zip(&width).enumerate() {
            if i == 0 {
                out += &format!("{cell:<w$}");
            } else {
                out += &format!("  {cell:>w$}");
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out += &line(&mut row.iter().map(String::as_str));
    }
    out
}

/// A payload into a JSON object: "payload" if it is UTF-8, else
/// "payload_base64".
pub(crate) fn put_payload(v: &mut serde_json::Value, payload: &[u8]) {
    match std::str::from_utf8(payload) {
        Ok(text) => v["payload"] = text.into(),
        Err(_) => v["payload_base64"] = base64(payload).into(),
    }
}

/// Puts a message's ordering key and headers into its JSON object:
/// `"ordering_key"` (UTF-8 text, or `null` for none; `"ordering_key_base64"`
/// instead for other bytes) and `"headers"`, a list of `{"name", "value"}`
/// objects in order (`"value_base64"` instead of `"value"` for bytes that
/// are not UTF-8), as `put_payload` does for the payload.
pub(crate) fn put_envelope<'a>(
    v: &mut serde_json::Value,
    key: Option<&[u8]>,
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
) {
    match key.map(std::str::from_utf8) {
        None => v["ordering_key"] = serde_json::Value::Null,
        Some(Ok(text)) => v["ordering_key"] = text.into(),
        Some(Err(_)) => v["ordering_key_base64"] = base64(key.unwrap_or_default()).into(),
    }
    let headers: Vec<serde_json::Value> = headers
        .map(|(name, value)| match std::str::from_utf8(value) {
            Ok(text) => serde_json::json!({ "name": name, "value": text }),
            Err(_) => serde_json::json!({ "name": name, "value_base64": base64(value) }),
        })
        .collect();
    v["headers"] = headers.into();
}

/// A message's ordering key and headers for a line of text meant for
/// people (` key K header N=V ...`, non-printable bytes escaped; empty
/// without them).
pub(crate) fn describe_envelope<'a>(
    key: Option<&[u8]>,
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> String {
    let mut out = String::new();
    if let Some(k) = key {
        out.push_str(&format!(" key {}", k.escape_ascii()));
    }
    for (name, value) in headers {
        out.push_str(&format!(
            " header {}={}",
            name.escape_debug(),
            value.escape_ascii()
        ));
    }
    out
}

/// Standard base64 (RFC 4648, with padding).
fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_is_rfc_4648() {
        for (raw, enc) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"\xff\x00\n", "/wAK"),
        ] {
            assert_eq!(super::base64(raw), enc);
        }
    }
}
