//! The chart of a run, as SVG: query p50 latency per engine (grouped horizontal bars, log
//! scale), and the loading rate over time of each engine.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::report::RunReport;
use crate::{Error, Result};

/// Engine colours, in [`super::report::Settings::engines`] order.
const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// Pixels per query row of the latency chart.
const ROW_PX: u32 = 34;

/// Writes the chart of `report` to `path` (SVG).
pub fn write_svg(report: &RunReport, path: &Path) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| Error::Plot {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if path
        .extension()
        .is_some_and(|x| !x.eq_ignore_ascii_case("svg"))
    {
        return Err(err(&"the chart is SVG: give a file name ending in .svg"));
    }
    let query_px = 120 + ROW_PX * report.queries.len().max(1) as u32;
    let rate_px = 360;
    let root = SVGBackend::new(path, (1100, query_px + rate_px)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (top, bottom) = root.split_vertically(query_px);
    latencies(report, &top).map_err(|e| err(&e))?;
    rates(report, &bottom).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

type Draw<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn latencies(report: &RunReport, area: &Draw<'_>) -> DrawResult {
    let engines = &report.settings.engines;
    let p50s: Vec<f64> = report
        .queries
        .iter()
        .flat_map(|q| q.engines.iter().filter_map(|e| e.p50_ms))
        .filter(|v| *v > 0.0)
        .collect();
    let lo = p50s.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = p50s.iter().copied().fold(0.0, f64::max);
    let (lo, hi) = if p50s.is_empty() {
        (0.1, 10.0)
    } else {
        // Room on the right for the legend.
        (lo / 2.0, hi * 8.0)
    };
    let n = report.queries.len().max(1) as f64;
    let title = format!(
        "{}: query p50 latency per engine (ms, log scale; lower is better)",
        report.workload.name
    );
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(220)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..n)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(12)
        .x_label_formatter(&|v| short(*v))
        .x_desc("p50 latency, ms")
        .label_style(("sans-serif", 14))
        .draw()?;
    let bar = 0.8 / engines.len().max(1) as f64;
    for (k, engine) in engines.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let mut bars = Vec::new();
        let mut missing = Vec::new();
        for (i, q) in report.queries.iter().enumerate() {
            // The first query at the top.
            let y0 = n - 1.0 - i as f64 + 0.1 + bar * (engines.len() - 1 - k) as f64;
            match q.engine(engine).and_then(|e| e.p50_ms) {
                Some(v) => bars.push(Rectangle::new(
                    [(lo, y0), (v.max(lo), y0 + bar * 0.9)],
                    colour.filled(),
                )),
                None => missing.push(Text::new(
                    format!("{engine}: n/a"),
                    (lo * 1.1, y0 + bar * 0.45),
                    ("sans-serif", 12)
                        .into_font()
                        .color(&colour)
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                )),
            }
        }
        chart
            .draw_series(bars)?
            .label(engine.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled()));
        chart.draw_series(missing)?;
    }
    // The query names, left of the plot, one per row.
    let label = ("sans-serif", 14)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (i, q) in report.queries.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(lo, n - 0.5 - i as f64));
        let name = match &q.mismatch {
            Some(_) => format!("{} (MISMATCH)", q.name),
            None => q.name.clone(),
        };
        area.draw(&Text::new(name, (x - 8, y), label.clone()))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    Ok(())
}

fn rates(report: &RunReport, area: &Draw<'_>) -> DrawResult {
    let sampled: Vec<_> = report
        .ingest
        .iter()
        .filter(|p| !p.samples.is_empty())
        .collect();
    let t_max = sampled
        .iter()
        .flat_map(|p| p.samples.iter().map(|s| s[0]))
        .fold(0.0, f64::max)
        .max(1e-3);
    let r_max = sampled
        .iter()
        .flat_map(|p| p.samples.iter().map(|s| s[1] / 1e6))
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "loading rate over time (M rows/s, sampled every 0.25 s)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..r_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the phase started")
        .y_desc("M rows/s")
        .label_style(("sans-serif", 14))
        .draw()?;
    for p in &sampled {
        let k = report
            .settings
            .engines
            .iter()
            .position(|e| *e == p.engine)
            .unwrap_or(0);
        let colour = COLOURS[k % COLOURS.len()];
        let points = p.samples.iter().map(|s| (s[0], s[1] / 1e6));
        if p.samples.len() < 30 {
            // Few samples (a short phase): mark them, a line alone may not show.
            chart.draw_series(points.clone().map(|xy| Circle::new(xy, 3, colour.filled())))?;
        }
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(format!("{} {}", p.engine, p.phase))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2)));
    }
    if !sampled.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()?;
    }
    Ok(())
}

/// A latency tick: about 2 significant digits, no trailing zeros.
fn short(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
