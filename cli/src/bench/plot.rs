//! A percentile plot of latency histograms as a hand-written SVG, in the
//! style of HdrHistogram's plotter: x is the percentile on a log scale of
//! 1 / (1 - q) (so 90%, 99%, 99.9%, ... are evenly spaced), y the latency,
//! on a log scale too (so the median and a 10 µs preemption both show).

use std::fmt::Write;

use hdrhistogram::Histogram;

/// One line of the plot.
pub(crate) struct Series<'a> {
    pub name: &'a str,
    /// An SVG color.
    pub color: &'a str,
    pub hist: &'a Histogram<u64>,
}

const W: f64 = 820.0;
const H: f64 = 480.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
/// Points per decade of 1 / (1 - q).
const STEPS: u32 = 60;

/// The decades on the x axis, as far as the largest histogram resolves:
/// with n samples, the last meaningful quantile is 1 - 1/n.
fn decades(series: &[Series]) -> u32 {
    let n = series
        .iter()
        .map(|s| s.hist.len())
        .max()
        .unwrap_or(1)
        .max(10);
    ((n as f64).log10().floor() as u32).clamp(1, 6)
}

/// The quantile at `x` decades: 1 - 10^-x.
fn quantile_at(x: f64) -> f64 {
    1.0 - 10f64.powf(-x)
}

/// The decades of the y axis: from the power of ten at or below `min` to
/// the one at or above `max` (at least one decade), as exponents.
fn y_decades(min: f64, max: f64) -> (i32, i32) {
    let lo = min.max(1.0).log10().floor() as i32;
    let hi = (max.max(1.0).log10().ceil() as i32).max(lo + 1);
    (lo, hi)
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 10_000_000.0 {
        format!("{:.0} ms", ns / 1e6)
    } else if ns >= 1_000_000.0 {
        format!("{:.1} ms", ns / 1e6)
    } else if ns >= 10_000.0 {
        format!("{:.0} µs", ns / 1e3)
    } else if ns >= 1_000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn percent_label(decade: u32) -> String {
    match decade {
        0 => "0%".to_string(),
        d => {
            let p = quantile_at(d as f64) * 100.0;
            format!("{:.*}%", (d as usize).saturating_sub(2), p)
        }
    }
}

/// The SVG document: every series from its minimum (0%) to its last
/// resolvable percentile; y runs to the largest value plotted (the
/// maximum of each series is given in the legend).
pub(crate) fn percentile_svg(title: &str, series: &[Series]) -> String {
    let decades = decades(series);
    let points: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| {
            (0..=decades * STEPS)
                .map(|i| {
                    let x = i as f64 / STEPS as f64;
                    (x, s.hist.value_at_quantile(quantile_at(x)) as f64)
                })
                .collect()
        })
        .collect();
    let top = points.iter().flatten().map(|&(_, y)| y).fold(1.0, f64::max);
    let bottom = points
        .iter()
        .flatten()
        .map(|&(_, y)| y)
        .fold(f64::MAX, f64::min);
    let (lo, hi) = y_decades(bottom, top);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let px = |x: f64| LEFT + x / decades as f64 * pw;
    let py = |y: f64| TOP + ph - (y.max(1.0).log10() - lo as f64) / (hi - lo) as f64 * ph;

    let mut o = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="14">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    // Grid and axes.
    for e in lo..=hi {
        // A labelled line at each power of ten, light ones at 2x and 5x.
        for (m, label) in [(1.0, true), (2.0, false), (5.0, false)] {
            let y = m * 10f64.powi(e);
            if e == hi && m > 1.0 {
                break;
            }
            let stroke = if label { "#ccc" } else { "#eee" };
            let _ = writeln!(
                o,
                r#"<line x1="{LEFT}" x2="{}" y1="{py:.1}" y2="{py:.1}" stroke="{stroke}"/>"#,
                W - RIGHT,
                py = py(y),
            );
            let _ = writeln!(
                o,
                r#"<text x="{}" y="{:.1}" text-anchor="end"{}>{}</text>"#,
                LEFT - 6.0,
                py(y) + 4.0,
                if label { "" } else { r##" fill="#999""## },
                fmt_ns(y),
            );
        }
    }
    for d in 0..=decades {
        let x = px(d as f64);
        let _ = writeln!(
            o,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 18.0,
            percent_label(d)
        );
    }
    let _ = writeln!(
        o,
        r#"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        o,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile (log scale of 1 / (1 - q))</text>"#,
        LEFT + pw / 2.0,
        H - 14.0
    );
    let _ = writeln!(
        o,
        r#"<text transform="translate(18 {}) rotate(-90)" text-anchor="middle">one-way latency (log scale)</text>"#,
        TOP + ph / 2.0
    );
    // The lines and the legend.
    for (i, (s, pts)) in series.iter().zip(&points).enumerate() {
        let path: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            o,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            s.color,
            path.join(" ")
        );
        let ly = TOP + 18.0 + 18.0 * i as f64;
        let q = |q: f64| fmt_ns(s.hist.value_at_quantile(q) as f64);
        let _ = writeln!(
            o,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{}" stroke-width="2"/><text x="{}" y="{}">{}: p50 {}, p99 {}, p99.9 {}, max {}</text>"#,
            LEFT + 12.0,
            LEFT + 36.0,
            s.color,
            LEFT + 42.0,
            ly + 4.0,
            escape(s.name),
            q(0.5),
            q(0.99),
            q(0.999),
            fmt_ns(s.hist.max() as f64),
        );
    }
    o.push_str("</svg>\n");
    o
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn the_lines_follow_the_percentiles() {
        // 10,000 samples: 1..=10,000 ns, so the value at quantile q is
        // about q * 10,000 and the axis spans 4 decades.
        let h = hist(1..=10_000);
        let svg = percentile_svg(
            "t <&>",
            &[Series {
                name: "a",
                color: "red",
                hist: &h,
            }],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("t &lt;&amp;&gt;"));
        for label in ["0%", "90%", "99%", "99.9%", "99.99%"] {
            assert!(svg.contains(&format!(">{label}</text>")), "{label}");
        }
        assert!(!svg.contains("99.999%"));
        let line = svg.lines().find(|l| l.starts_with("<polyline")).unwrap();
        let pts: Vec<(f64, f64)> = line
            .split("points=\"")
            .nth(1)
            .unwrap()
            .trim_end_matches("\"/>")
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert_eq!(pts.len(), 4 * STEPS as usize + 1);
        // Left to right, and never down the page as the percentile grows
        // (SVG y grows downwards).
        assert!(pts.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 >= w[1].1));
        // The y axis runs over the decades 1 ns .. 10 µs, so the median
        // (x = log10 2 decades, the 18th of 60 points a decade; ~5 µs) sits
        // log10(5000) / 4 of the way up.
        let (_, y50) = pts[18];
        let ph = H - TOP - BOTTOM;
        let want = TOP + ph - 5000f64.log10() / 4.0 * ph;
        assert!((y50 - want).abs() < 3.0, "median at y {y50}, want {want}");
        for label in ["1 ns", "10 ns", "100 ns", "1.0 µs", "10 µs"] {
            assert!(svg.contains(&format!(">{label}</text>")), "{label}");
        }
    }

    #[test]
    fn y_axis_decades() {
        assert_eq!(y_decades(85.0, 12_000.0), (1, 5));
        assert_eq!(y_decades(100.0, 100.0), (2, 3));
        assert_eq!(y_decades(0.0, 0.0), (0, 1));
    }
}
