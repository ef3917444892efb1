//! `--plot FILE.svg`: latency over the run (p50, p99, max per second) above
//! the latency distribution (percentile against latency, log scale).

use std::path::Path;

use plotters::prelude::*;

use crate::report::Series;

const SIZE: (u32, u32) = (900, 800);

pub fn write(path: &Path, series: &Series) -> Result<(), String> {
    draw(path, series).map_err(|e| format!("{}: {e}", path.display()))
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn draw(path: &Path, s: &Series) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(SIZE.1 / 2);

    let secs = s.per_second.len().max(1) as f64;
    let top_ms = ms(s.total.max()).max(0.001) * 1.1;
    let mut chart = ChartBuilder::on(&top)
        .caption(format!("{} over time", s.title), ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..secs, (0.001f64..top_ms).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("second of the run (by send time)")
        .y_desc("ms")
        .draw()?;
    for (name, q, colour) in [("p50", 0.5, BLUE), ("p99", 0.99, RED), ("max", 1.0, BLACK)] {
        let points = s
            .per_second
            .iter()
            .enumerate()
            .filter(|(_, h)| h.count() > 0)
            .map(|(i, h)| (i as f64 + 0.5, ms(h.quantile(q)).max(0.001)));
        chart
            .draw_series(LineSeries::new(points, &colour))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    chart.configure_series_labels().border_style(BLACK).draw()?;

    // Distribution: x = latency, y = "nines" (1/(1-q)) so the tail shows.
    let total = s.total.count().max(1) as f64;
    let mut seen = 0u64;
    let mut points = Vec::new();
    for (upper, count) in s.total.buckets() {
        seen += count;
        let q = seen as f64 / total;
        let nines = 1.0 / (1.0 - q).max(1.0 / (total * 10.0));
        points.push((ms(upper).max(0.001), nines));
    }
    let max_nines = points.last().map_or(10.0, |p| p.1).max(10.0);
    let mut dist = ChartBuilder::on(&bottom)
        .caption(format!("{} distribution", s.title), ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (0.001f64..top_ms).log_scale(),
            (1f64..max_nines).log_scale(),
        )?;
    dist.configure_mesh()
        .x_desc("ms")
        .y_desc("1 / (1 - percentile): 10 = p90, 100 = p99")
        .draw()?;
    dist.draw_series(LineSeries::new(points, &BLUE))?;
    root.present()?;
    Ok(())
}
