//! Learning curves: the progressive metric against events, as CSV and as an SVG plot.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use eddy_runtime::CurvePoint;

/// Writes `points` to `csv` and a plot beside it (same name, `.svg`).
pub fn write(points: &[CurvePoint], csv: &Path) -> anyhow::Result<()> {
    let mut text = String::from("events,metric,stream,window\n");
    for p in points {
        writeln!(
            text,
            "{},{},{},{}",
            p.events, p.metric, p.value, p.window_value
        )?;
    }
    std::fs::write(csv, text).with_context(|| format!("writing {}", csv.display()))?;
    let svg = csv.with_extension("svg");
    std::fs::write(&svg, plot(points)).with_context(|| format!("writing {}", svg.display()))?;
    Ok(())
}

/// A plain SVG line chart: stream metric (solid) and recent-window metric (dashed).
fn plot(points: &[CurvePoint]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 360.0;
    const PAD: f64 = 48.0;
    let metric = points.first().map_or("metric", |p| p.metric);
    let max_x = points.iter().map(|p| p.events).max().unwrap_or(1).max(1) as f64;
    let values = points
        .iter()
        .flat_map(|p| [p.value, p.window_value])
        .filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let x = |e: u64| PAD + (W - 2.0 * PAD) * e as f64 / max_x;
    let y = |v: f64| H - PAD - (H - 2.0 * PAD) * (v - lo) / (hi - lo);
    let line = |f: &dyn Fn(&CurvePoint) -> f64| {
        points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.events), y(f(p))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<line x1="{PAD}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/>
<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{b}" stroke="black"/>
<text x="{PAD}" y="{t}">{metric} (progressive): stream solid, recent window dashed</text>
<text x="{r}" y="{bl}" text-anchor="end">{max_x} events</text>
<text x="4" y="{PAD}">{hi:.4}</text>
<text x="4" y="{b}">{lo:.4}</text>
<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{stream}"/>
<polyline fill="none" stroke="#ff7f0e" stroke-width="1.5" stroke-dasharray="4 3" points="{window}"/>
</svg>
"##,
        b = H - PAD,
        r = W - PAD,
        t = PAD - 16.0,
        bl = H - PAD + 20.0,
        stream = line(&|p| p.value),
        window = line(&|p| p.window_value),
    )
}
