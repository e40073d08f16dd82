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

/// Log scales on both axes: engines load at rates (and for times) orders of magnitude
/// apart, e.g. 1 M rows/s for a second beside 15 k rows/s for a minute.
fn rates(report: &RunReport, area: &Draw<'_>) -> DrawResult {
    // Positive samples only: a log scale has no zero.
    let samples = |p: &super::Phase| -> Vec<(f64, f64)> {
        p.samples
            .iter()
            .filter(|s| s[0] > 0.0 && s[1] > 0.0)
            .map(|s| (s[0], s[1]))
            .collect()
    };
    let sampled: Vec<_> = report
        .ingest
        .iter()
        .map(|p| (p, samples(p)))
        .filter(|(_, s)| !s.is_empty())
        .collect();
    let all = || sampled.iter().flat_map(|(_, s)| s.iter().copied());
    let (t_min, t_max) = all().fold((f64::MAX, 0.0f64), |(lo, hi), (t, _)| {
        (lo.min(t), hi.max(t))
    });
    let (r_min, r_max) = all().fold((f64::MAX, 0.0f64), |(lo, hi), (_, r)| {
        (lo.min(r), hi.max(r))
    });
    // Whole decades: a log axis labels only powers of ten.
    let (t_min, t_max) = if sampled.is_empty() {
        (0.1, 1.0)
    } else {
        decades(t_min, t_max)
    };
    let (r_min, r_max) = if sampled.is_empty() {
        (1.0, 10.0)
    } else {
        decades(r_min, r_max)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(
            "loading rate over time (rows/s; log scales; sampled every 0.25 s)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((t_min..t_max).log_scale(), (r_min..r_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("seconds since the phase started")
        .y_desc("rows/s")
        .x_labels(8)
        .y_labels(8)
        .max_light_lines(1)
        .x_label_formatter(&|t| short(*t))
        .y_label_formatter(&|r| rate(*r))
        .label_style(("sans-serif", 14))
        .draw()?;
    for (p, points) in &sampled {
        let k = report
            .settings
            .engines
            .iter()
            .position(|e| *e == p.engine)
            .unwrap_or(0);
        let colour = COLOURS[k % COLOURS.len()];
        if points.len() < 30 {
            // Few samples (a short phase): mark them, a line alone may not show.
            chart.draw_series(points.iter().map(|&xy| Circle::new(xy, 3, colour.filled())))?;
        }
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))?
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

/// The powers of ten around `[lo, hi]` (both positive), at least one decade apart.
fn decades(lo: f64, hi: f64) -> (f64, f64) {
    let lo = 10f64.powi(lo.log10().floor() as i32);
    let hi = 10f64.powi(hi.log10().ceil() as i32).max(lo * 10.0);
    (lo, hi)
}

/// A rate tick: `15k`, `1.2M`.
fn rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{}M", short(r / 1e6))
    } else if r >= 1e3 {
        format!("{}k", short(r / 1e3))
    } else {
        short(r)
    }
}

/// A latency tick: about 2 significant digits, no trailing zeros.
fn short(v: f64) -> String {
    let text = if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_have_no_trailing_zeros_and_axes_whole_decades() {
        assert_eq!(short(1.0), "1");
        assert_eq!(short(0.1), "0.1");
        assert_eq!(short(0.25), "0.25");
        assert_eq!(short(2.5), "2.5");
        assert_eq!(short(100.0), "100");
        assert_eq!(rate(15_000.0), "15k");
        assert_eq!(rate(1_200_000.0), "1.2M");
        assert_eq!(decades(1.5e6, 3e6), (1e6, 1e7));
        assert_eq!(decades(0.25, 63.0), (0.1, 100.0));
        // One sample: still a decade to label.
        assert_eq!(decades(10.0, 10.0), (10.0, 100.0));
    }
}
