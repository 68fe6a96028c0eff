//! Line charts: loss curves, the time-warp curve, quality against cost.

use plotters::prelude::*;

use crate::scatter::{RgbImage, canvas};
use crate::{Result, VizError};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 420;

/// Loss of every step (light) with its running mean over 100 steps (dark).
/// The y range ends at the 99.5th percentile so that a few spikes do not flatten the curve.
pub fn loss_curve(losses: &[f32], title: &str) -> Result<RgbImage> {
    let mut sorted: Vec<f64> = losses.iter().map(|&l| f64::from(l)).filter(|l| l.is_finite()).collect();
    if sorted.is_empty() {
        return Err(VizError::Empty("no losses to plot"));
    }
    sorted.sort_by(f64::total_cmp);
    let high = sorted[(sorted.len() - 1) * 995 / 1000].max(f64::MIN_POSITIVE) * 1.1;
    let steps = losses.len() as f64;
    canvas(WIDTH, HEIGHT, |root| {
        root.fill(&WHITE).map_err(VizError::draw)?;
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(34)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..steps, 0.0..high)
            .map_err(VizError::draw)?;
        chart
            .configure_mesh()
            .x_desc("training step")
            .y_desc("loss (MSE)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style(("sans-serif", 12))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(VizError::draw)?;
        let raw = losses.iter().enumerate().map(|(i, l)| ((i + 1) as f64, f64::from(*l).min(high)));
        chart
            .draw_series(LineSeries::new(raw, RGBColor(230, 150, 150).stroke_width(1)))
            .map_err(VizError::draw)?
            .label("per step")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(230, 150, 150)));
        let window = 100.min(losses.len());
        let running: Vec<(f64, f64)> = losses
            .windows(window)
            .enumerate()
            .map(|(i, w)| ((i + window) as f64, w.iter().map(|&l| f64::from(l)).sum::<f64>() / window as f64))
            .collect();
        chart
            .draw_series(LineSeries::new(running, RED.stroke_width(2)))
            .map_err(VizError::draw)?
            .label(format!("mean of {window}"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(VizError::draw)?;
        Ok(())
    })
}

/// One frame of the time-warp animation: `curve` = (t, warp(t, s)) in red
/// against the identity (dashed), on the unit square.
pub fn warp_frame(curve: &[(f64, f64)], s: f64) -> Result<RgbImage> {
    canvas(440, 460, |root| {
        root.fill(&WHITE).map_err(VizError::draw)?;
        let mut chart = ChartBuilder::on(root)
            .caption(format!("warp(t, s),  s = {s:.2}"), ("sans-serif", 18))
            .margin(14)
            .x_label_area_size(34)
            .y_label_area_size(44)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(VizError::draw)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("t")
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(VizError::draw)?;
        chart
            .draw_series(DashedLineSeries::new(vec![(0.0, 0.0), (1.0, 1.0)], 6, 4, BLACK.stroke_width(1)))
            .map_err(VizError::draw)?;
        chart
            .draw_series(LineSeries::new(curve.iter().copied(), RED.stroke_width(2)))
            .map_err(VizError::draw)?;
        Ok(())
    })
}

/// One line of the quality chart: W₂ at each cost.
pub struct QualitySeries {
    pub label: String,
    /// (network evaluations per sample, W₂): RK4 × 20 and Euler × 80 meet at 80.
    pub points: Vec<(usize, f64)>,
    pub colour: (u8, u8, u8),
    pub dashed: bool,
}

/// Round values between `low` and `high` to label a log W₂ axis with.
fn w2_ticks(low: f64, high: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut decade = 10f64.powf(low.log10().floor());
    while decade <= high {
        for mantissa in [1.0, 1.5, 2.0, 3.0, 5.0, 7.0] {
            let tick = decade * mantissa;
            if (low..=high).contains(&tick) {
                ticks.push(tick);
            }
        }
        decade *= 10.0;
    }
    ticks
}

/// W₂ to the target against its cost in network evaluations, both on log
/// scales, with the noise floor: the W₂ of two independent target samples.
/// The log W₂ axis keeps curves that approach the floor apart.
pub fn quality_chart(series: &[QualitySeries], floor: f64, title: &str) -> Result<RgbImage> {
    let all: Vec<&(usize, f64)> = series.iter().flat_map(|s| &s.points).collect();
    if all.is_empty() {
        return Err(VizError::Empty("no quality measurements"));
    }
    let max_nfe = all.iter().map(|p| p.0).max().unwrap_or(1).max(2) as f64;
    let max_w2 = all.iter().map(|p| p.1).fold(floor, f64::max) * 1.15;
    // A log axis needs a positive floor under every value.
    let min_w2 = all.iter().map(|p| p.1).filter(|w| *w > 0.0).fold(floor, f64::min).max(1e-6) * 0.85;
    canvas(WIDTH, HEIGHT, |root| {
        root.fill(&WHITE).map_err(VizError::draw)?;
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(34)
            .y_label_area_size(56)
            .build_cartesian_2d(
                (1.0..max_nfe * 1.2).log_scale(),
                (min_w2..max_w2).log_scale().with_key_points(w2_ticks(min_w2, max_w2)),
            )
            .map_err(VizError::draw)?;
        chart
            .configure_mesh()
            .x_desc("network evaluations per sample (NFE)")
            .y_desc("W2 to target")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.2}"))
            .label_style(("sans-serif", 12))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(VizError::draw)?;
        for line in series {
            let colour = RGBColor(line.colour.0, line.colour.1, line.colour.2);
            let points: Vec<(f64, f64)> = line.points.iter().map(|&(s, w)| (s as f64, w)).collect();
            let style = colour.stroke_width(2);
            let drawn = if line.dashed {
                chart.draw_series(DashedLineSeries::new(points.clone(), 8, 5, style))
            } else {
                chart.draw_series(LineSeries::new(points.clone(), style))
            };
            let dashed = line.dashed;
            drawn.map_err(VizError::draw)?.label(line.label.clone()).legend(move |(x, y)| {
                let gap = if dashed { 6 } else { 0 };
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (7, 0)], style)
                    + PathElement::new(vec![(7 + gap, 0), (20, 0)], style)
            });
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(VizError::draw)?;
        }
        let floor_style = BLACK.stroke_width(1);
        chart
            .draw_series(DashedLineSeries::new(vec![(1.0, floor), (max_nfe * 1.2, floor)], 4, 4, floor_style))
            .map_err(VizError::draw)?
            .label("noise floor")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], floor_style));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(VizError::draw)?;
        Ok(())
    })
}
