//! Numbers for people: sizes in bytes and KiB/MiB/GiB, rates in k and M.

/// A size for people: bytes, and KiB/MiB/GiB where it helps.
pub(crate) fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 10 => format!("{n} bytes, {}", human(n)),
        n => format!("{n} bytes"),
    }
}

/// A size in the largest of bytes, KiB, MiB, GiB that it reaches.
pub(crate) fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} bytes"),
    }
}

/// A rate for a narrow column: "0", "950", "12.3k", "4.5M".
pub(crate) fn rate(r: f64) -> String {
    match r {
        r if r >= 1e6 => format!("{:.1}M", r / 1e6),
        r if r >= 1e4 => format!("{:.1}k", r / 1e3),
        r => format!("{}", r.round() as u64),
    }
}
