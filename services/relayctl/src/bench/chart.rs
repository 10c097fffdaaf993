//! The SVG chart of end-to-end latency against offered rate (drawn by hand: a few lines of SVG
//! need no plotting crate).

use std::fmt::Write as _;

use super::load::Latency;
use super::report::E2eRun;

/// A chart series: name, colour, and the latency figure it plots.
type Series = (&'static str, &'static str, fn(&Latency) -> f64);

/// p50, p99 and max latency of the min-balance end-to-end runs against offered rate.
pub(super) fn e2e_latency(runs: &[E2eRun], date: &str, revision: &str) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 420.0, 70.0, 45.0, 40.0, 50.0);
    let max_rate = runs
        .iter()
        .map(|r| f64::from(r.offered_rate))
        .fold(1.0, f64::max);
    let max_ms = runs.iter().map(|r| r.latency.max_ms).fold(50.0, f64::max) * 1.1;
    let x = |rate: f64| left + (w - left - right) * rate / max_rate;
    let y = |ms: f64| h - bottom - (h - top - bottom) * ms / max_ms;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="14">relay end-to-end latency vs offered rate ({} rev {})</text>
"#,
        w / 2.0,
        date,
        revision
    );
    for i in 0..=5 {
        let ms = max_ms * f64::from(i) / 5.0;
        let (gx, gy, lx) = (w - right, y(ms), left - 6.0);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{gx}" y1="{gy:.1}" y2="{gy:.1}" stroke="#ddd"/><text x="{lx}" y="{:.1}" text-anchor="end">{ms:.0} ms</text>"##,
            gy + 4.0
        );
    }
    for r in runs {
        let rx = x(f64::from(r.offered_rate));
        let _ = writeln!(
            s,
            r#"<text x="{rx:.1}" y="{}" text-anchor="middle">{}/s</text>"#,
            h - bottom + 18.0,
            r.offered_rate
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#c00" stroke-dasharray="4 4"/><text x="{}" y="{:.1}" fill="#c00" text-anchor="end">50 ms target</text>"##,
        w - right,
        y(50.0),
        y(50.0),
        w - right - 4.0,
        y(50.0) - 4.0
    );
    let series: [Series; 3] = [
        ("p50", "#1f77b4", |l| l.p50_ms),
        ("p99", "#ff7f0e", |l| l.p99_ms),
        ("max", "#7f7f7f", |l| l.max_ms),
    ];
    for (i, (name, colour, value)) in series.iter().enumerate() {
        let points: Vec<String> = runs
            .iter()
            .map(|r| {
                format!(
                    "{:.1},{:.1}",
                    x(f64::from(r.offered_rate)),
                    y(value(&r.latency))
                )
            })
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        for p in &points {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(s, r#"<circle cx="{px}" cy="{py}" r="3" fill="{colour}"/>"#);
        }
        let ly = top + 14.0 + 16.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{}" y="{}" width="12" height="3" fill="{colour}"/><text x="{}" y="{}">{name}</text>"#,
            left + 10.0,
            ly - 4.0,
            left + 28.0,
            ly
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">offered callbacks per second</text>"#,
        (left + w - right) / 2.0,
        h - 12.0
    );
    s.push_str("</svg>\n");
    s
}
