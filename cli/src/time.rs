//! Times of day for people: RFC 3339 in UTC out (`2026-12-07T18:00:00Z`),
//! RFC 3339 or `@<Unix seconds>` in (`shmq publish --deliver-at`), and
//! "in how long".

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a number of days since 1970-01-01 (`civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// CLOCK_REALTIME nanoseconds as RFC 3339 in UTC: to the second
/// (`2026-12-07T18:00:00Z`), or to the millisecond with `millis`
/// (`2026-12-07T18:00:00.250Z`).
pub(crate) fn rfc3339(ns: u64, millis: bool) -> String {
    let secs = (ns / 1_000_000_000) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rest / 3600, rest / 60 % 60, rest % 60);
    if millis {
        let ms = ns / 1_000_000 % 1000;
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{ms:03}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    }
}

/// Now, CLOCK_REALTIME nanoseconds.
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(u64::MAX as u128) as u64)
}

/// How far off `due_ns` is from `now_ns`, for people: `in 45s`, `in 4m 10s`,
/// `in 2h 5m`, `in 3d 4h`, or `due` for a time reached (a message due and
/// not yet moved into the ring).
pub(crate) fn until(due_ns: u64, now_ns: u64) -> String {
    if due_ns <= now_ns {
        return "due".into();
    }
    let left = Duration::from_nanos(due_ns - now_ns);
    let s = left.as_secs();
    match s {
        0 => format!("in {}ms", left.as_millis().max(1)),
        1..60 => format!("in {s}s"),
        60..3600 => format!("in {}m {}s", s / 60, s % 60),
        3600..86_400 => format!("in {}h {}m", s / 3600, s / 60 % 60),
        _ => format!("in {}d {}h", s / 86_400, s / 3600 % 24),
    }
}

/// A point in time: RFC 3339 (`2026-12-07T18:00:00Z`, with fractions of a
/// second and a `±hh:mm` offset allowed: `2026-12-07T19:00:00.5+01:00`),
/// or `@` and Unix seconds (`@1796666400`, `@1796666400.25`).
pub(crate) fn instant(s: &str) -> Result<SystemTime, String> {
    let t = s.trim();
    let bad = || {
        format!(
            "{s:?} is not a time: give RFC 3339 (2026-12-07T18:00:00Z, \
             2026-12-07T19:00:00+01:00) or @ and Unix seconds (@1796666400)"
        )
    };
    if let Some(unix) = t.strip_prefix('@') {
        let (whole, frac) = unix.split_once('.').unwrap_or((unix, ""));
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let secs: u64 = whole.parse().map_err(|_| bad())?;
        let nanos = fraction_ns(frac).ok_or_else(bad)?;
        return UNIX_EPOCH
            .checked_add(Duration::new(secs, nanos))
            .ok_or_else(|| format!("{s:?} is too far ahead"));
    }
    let b = t.as_bytes();
    // YYYY-MM-DDTHH:MM:SS, then [.fraction], then Z or ±HH:MM.
    if b.len() < 20 || !t.is_ascii() {
        return Err(bad());
    }
    let num = |from: usize, len: usize| -> Result<u32, String> {
        let part = &t[from..from + len];
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let sep = |at: usize, want: &[u8]| {
        if want.contains(&b[at]) {
            Ok(())
        } else {
            Err(bad())
        }
    };
    let year = i64::from(num(0, 4)?);
    sep(4, b"-")?;
    let month = num(5, 2)?;
    sep(7, b"-")?;
    let day = num(8, 2)?;
    sep(10, b"Tt ")?;
    let hour = num(11, 2)?;
    sep(13, b":")?;
    let minute = num(14, 2)?;
    sep(16, b":")?;
    let second = num(17, 2)?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(format!("{s:?} is not a date and time of day"));
    }
    let mut rest = &t[19..];
    let mut nanos = 0;
    if let Some(after) = rest.strip_prefix('.') {
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        nanos = fraction_ns(&after[..digits])
            .filter(|_| digits > 0)
            .ok_or_else(bad)?;
        rest = &after[digits..];
    }
    let offset_s: i64 = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]
            if [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()) =>
        {
            let h = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let m = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            if h > 23 || m > 59 {
                return Err(bad());
            }
            let off = h * 3600 + m * 60;
            if *sign == b'-' { -off } else { off }
        }
        _ => return Err(bad()),
    };
    // A leap second counts as the second after it (as most clocks do).
    let secs = days_from_civil(year, month, day) * 86_400
        + i64::from(hour) * 3600
        + i64::from(minute) * 60
        + i64::from(second)
        - offset_s;
    let at = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(secs as u64, nanos))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))
            .and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos))))
    };
    at.ok_or_else(|| format!("{s:?} is out of the clock's range"))
}

/// The nanoseconds of a decimal fraction's digits (`"25"`: 250 ms); `None`
/// for anything but digits. Digits past the ninth are dropped.
fn fraction_ns(digits: &str) -> Option<u32> {
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ns = digits
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(9)
        .fold(0u32, |ns, c| ns * 10 + u32::from(c - b'0'));
    Some(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(t: SystemTime) -> f64 {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        }
    }

    #[test]
    fn rfc3339_and_unix_seconds_are_read() {
        // The expectations are Python's datetime.fromisoformat(..).timestamp().
        for (text, want) in [
            ("2026-12-07T18:00:00Z", 1_796_666_400.0),
            ("2026-12-07t18:00:00z", 1_796_666_400.0),
            ("2026-12-07 18:00:00Z", 1_796_666_400.0),
            ("2026-12-07T18:00:00+00:00", 1_796_666_400.0),
            ("2026-12-07T18:00:00+05:30", 1_796_646_600.0),
            ("2026-12-07T18:00:00-08:00", 1_796_695_200.0),
            ("2000-02-29T23:59:59.5Z", 951_868_799.5),
            ("1970-01-01T00:00:00Z", 0.0),
            ("1969-12-31T23:59:59Z", -1.0),
            ("2100-03-01T00:00:00Z", 4_107_542_400.0),
            ("@1796666400", 1_796_666_400.0),
            ("@1796666400.25", 1_796_666_400.25),
            (" @0 ", 0.0),
        ] {
            let got = instant(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(unix(got), want, "{text}");
        }
        let exact = instant("2026-12-07T18:00:00.123456789Z").unwrap();
        assert_eq!(
            exact.duration_since(UNIX_EPOCH).unwrap(),
            Duration::new(1_796_666_400, 123_456_789)
        );
    }

    #[test]
    fn what_is_not_a_time_is_refused() {
        for text in [
            "",
            "tomorrow",
            "2026-12-07",
            "2026-12-07T18:00:00",
            "2026-12-07T18:00Z",
            "2026-13-07T18:00:00Z",
            "2026-02-29T18:00:00Z",
            "2026-12-07T24:00:00Z",
            "2026-12-07T18:60:00Z",
            "2026-12-07T18:00:00.Z",
            "2026-12-07T18:00:00+0100",
            "2026-12-07T18:00:00+24:00",
            "2026-12-07T18:00:00 UTC",
            "+2026-12-07T18:00:00Z",
            "@",
            "@-5",
            "@12x",
            "@1.2.3",
            "1796666400",
            "2026-12-07T18:00:0é",
        ] {
            assert!(instant(text).is_err(), "{text:?} was taken");
        }
    }

    #[test]
    fn times_are_written_in_utc() {
        assert_eq!(
            rfc3339(1_796_666_400_000_000_000, false),
            "2026-12-07T18:00:00Z"
        );
        assert_eq!(
            rfc3339(951_868_799_500_000_000, true),
            "2000-02-29T23:59:59.500Z"
        );
        assert_eq!(rfc3339(0, false), "1970-01-01T00:00:00Z");
        // Written, then read back.
        for ns in [0, 86_399_999_999_999, 4_107_542_400_123_000_000] {
            let back = instant(&rfc3339(ns, true)).unwrap();
            assert_eq!(
                back.duration_since(UNIX_EPOCH).unwrap().as_millis(),
                u128::from(ns / 1_000_000)
            );
        }
    }

    #[test]
    fn how_long_until() {
        let s = 1_000_000_000;
        assert_eq!(until(5 * s, 5 * s), "due");
        assert_eq!(until(4 * s, 5 * s), "due");
        assert_eq!(until(5 * s + 250_000_000, 5 * s), "in 250ms");
        assert_eq!(until(50 * s, 5 * s), "in 45s");
        assert_eq!(until(255 * s, 5 * s), "in 4m 10s");
        assert_eq!(until(7505 * s, 5 * s), "in 2h 5m");
        assert_eq!(until(273_605 * s, 5 * s), "in 3d 4h");
    }
}
