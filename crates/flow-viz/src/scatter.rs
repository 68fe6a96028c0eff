//! Square framed plots over [−π, π]², points in red, as in the post.

use ndarray::Array2;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;

use crate::{Result, VizError, ensure_font};

/// Side of the square plotting area, in pixels.
pub const PLOT_SIZE: u32 = 360;
/// Both axes span [−PLOT_RANGE, PLOT_RANGE] (the post's `plot` uses {−π, π}).
pub const PLOT_RANGE: f64 = std::f64::consts::PI;

const MARGIN: u32 = 12;
const Y_LABELS: u32 = 42;
const X_LABELS: u32 = 30;
const CAPTION: u32 = 34;

pub(crate) type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Draws into a fresh white `width × height` image.
pub(crate) fn canvas(width: u32, height: u32, draw: impl FnOnce(&Area) -> Result<()>) -> Result<RgbImage> {
    ensure_font();
    let mut buffer = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        draw(&root)?;
        root.present().map_err(VizError::draw)?;
    }
    RgbImage::from_raw(width, height, buffer).ok_or(VizError::Draw("buffer size".into()))
}

pub(crate) use image::RgbImage;

/// Canvas size that makes the plotting area square.
/// Width and height in pixels of a [`scatter`] frame.
pub fn square_canvas_size() -> (u32, u32) {
    (PLOT_SIZE + 2 * MARGIN + Y_LABELS, PLOT_SIZE + 2 * MARGIN + X_LABELS + CAPTION)
}

type SquareChart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn square_chart<'a, 'b>(area: &'a Area<'b>, title: &str) -> Result<SquareChart<'a, 'b>> {
    square_chart_within(area, title, PLOT_RANGE)
}

/// A framed square chart over [−range, range]².
fn square_chart_within<'a, 'b>(area: &'a Area<'b>, title: &str, range: f64) -> Result<SquareChart<'a, 'b>> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(MARGIN)
        .x_label_area_size(X_LABELS)
        .y_label_area_size(Y_LABELS)
        .build_cartesian_2d(-range..range, -range..range)
        .map_err(VizError::draw)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(7)
        .y_labels(7)
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(VizError::draw)?;
    // A full frame, as Mathematica's Frame -> True draws.
    let frame = Rectangle::new([(-range, -range), (range, range)], BLACK.stroke_width(1));
    chart.draw_series(std::iter::once(frame)).map_err(VizError::draw)?;
    Ok(chart)
}

fn check_2d(points: &Array2<f32>) -> Result<()> {
    if points.ncols() != 2 {
        return Err(VizError::NotTwoDimensional(points.ncols()));
    }
    Ok(())
}

fn inside(x: f64, y: f64) -> bool {
    within(x, y, PLOT_RANGE)
}

fn within(x: f64, y: f64, range: f64) -> bool {
    x.abs() <= range && y.abs() <= range
}

/// The post's `plot`: a square framed scatter plot of 2-D points in red.
pub fn scatter(points: &Array2<f32>, title: &str) -> Result<RgbImage> {
    scatter_within(points, title, PLOT_RANGE)
}

/// A square window [−r, r]² that shows `points`: the post's [−π, π]² unless the points
/// reach further, then the 99.5 % quantile of their largest coordinate with a 10 % margin (a
/// few outliers do not shrink everything else to a dot).
pub fn fitting_range(points: &[&Array2<f32>]) -> f64 {
    let mut extents: Vec<f64> = points
        .iter()
        .flat_map(|p| {
            p.rows().into_iter().map(|row| row.iter().fold(0.0f64, |m, &v| m.max(f64::from(v).abs())))
        })
        .filter(|v| v.is_finite())
        .collect();
    if extents.is_empty() {
        return PLOT_RANGE;
    }
    extents.sort_by(f64::total_cmp);
    let quantile = extents[((extents.len() - 1) as f64 * 0.995).round() as usize];
    PLOT_RANGE.max(1.1 * quantile)
}

/// [`scatter`] over [−range, range]² (data sets larger than the post's spiral).
pub fn scatter_within(points: &Array2<f32>, title: &str, range: f64) -> Result<RgbImage> {
    scatter_coloured(points, |_| RED, title, range)
}

/// [`scatter_within`] with each point coloured by its `shade` in [0, 1] (viridis:
/// a class k of K as k / (K − 1), a continuous condition by its place in the range shown).
pub fn scatter_shaded(points: &Array2<f32>, shades: &[f64], title: &str, range: f64) -> Result<RgbImage> {
    if shades.len() != points.nrows() {
        return Err(VizError::Empty("one shade per point"));
    }
    scatter_coloured(points, |i| ViridisRGB::get_color_normalized(shades[i], 0.0, 1.0), title, range)
}

/// Point i in `colour(i)`, over [−range, range]².
fn scatter_coloured(
    points: &Array2<f32>,
    colour: impl Fn(usize) -> RGBColor,
    title: &str,
    range: f64,
) -> Result<RgbImage> {
    check_2d(points)?;
    let (width, height) = square_canvas_size();
    canvas(width, height, |root| {
        root.fill(&WHITE).map_err(VizError::draw)?;
        let mut chart = square_chart_within(root, title, range)?;
        let dots = points
            .rows()
            .into_iter()
            .enumerate()
            .map(|(i, p)| (i, (f64::from(p[0]), f64::from(p[1]))))
            .filter(|&(_, (x, y))| within(x, y, range))
            .map(|(i, p)| Circle::new(p, 2, colour(i).filled()));
        chart.draw_series(dots).map_err(VizError::draw)?;
        Ok(())
    })
}

/// Arrows `vectors` at `origins`, scaled so the longest is an eighth of the
/// plot, coloured by length (viridis) with a colour bar.
pub fn vector_field(origins: &Array2<f32>, vectors: &Array2<f32>, title: &str) -> Result<RgbImage> {
    check_2d(origins)?;
    check_2d(vectors)?;
    let lengths: Vec<f64> =
        vectors.rows().into_iter().map(|v| f64::from(v[0]).hypot(f64::from(v[1]))).collect();
    let longest = lengths.iter().cloned().fold(0.0, f64::max);
    if longest == 0.0 {
        return Err(VizError::Empty("all vectors are zero"));
    }
    let scale = PLOT_RANGE / 4.0 / longest;
    let (width, height) = square_canvas_size();
    let legend_width = 90;
    canvas(width + legend_width, height, |root| {
        root.fill(&WHITE).map_err(VizError::draw)?;
        let (plot_area, legend_area) = root.split_horizontally(width);
        let mut chart = square_chart(&plot_area, title)?;
        for ((origin, vector), length) in origins.rows().into_iter().zip(vectors.rows()).zip(&lengths) {
            let (x, y) = (f64::from(origin[0]), f64::from(origin[1]));
            if !inside(x, y) {
                continue;
            }
            let (dx, dy) = (f64::from(vector[0]) * scale, f64::from(vector[1]) * scale);
            let colour = ViridisRGB::get_color_normalized(*length, 0.0, longest);
            chart.draw_series(arrow((x, y), (dx, dy), colour)).map_err(VizError::draw)?;
        }
        colour_bar(&legend_area, longest)
    })
}

/// A shaft and a two-line head.
fn arrow(from: (f64, f64), delta: (f64, f64), colour: RGBColor) -> Vec<PathElement<(f64, f64)>> {
    let to = (from.0 + delta.0, from.1 + delta.1);
    let (ux, uy) = (-delta.0 * 0.3, -delta.1 * 0.3);
    let (cos, sin) = (0.4f64.cos(), 0.4f64.sin());
    let head = |sign: f64| (to.0 + ux * cos - sign * uy * sin, to.1 + sign * ux * sin + uy * cos);
    let style = ShapeStyle::from(&colour).stroke_width(1);
    vec![PathElement::new(vec![from, to], style), PathElement::new(vec![head(1.0), to, head(-1.0)], style)]
}

fn colour_bar(area: &Area, longest: f64) -> Result<()> {
    let mut chart = ChartBuilder::on(area)
        .margin_top(MARGIN + CAPTION)
        .margin_bottom(MARGIN + X_LABELS)
        .margin_right(10)
        .y_label_area_size(44)
        .caption("|v|", ("sans-serif", 14))
        .build_cartesian_2d(0.0..1.0, 0.0..longest)
        .map_err(VizError::draw)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(VizError::draw)?;
    let bands = 64;
    let rectangles = (0..bands).map(|i| {
        let (low, high) = (longest * i as f64 / bands as f64, longest * (i + 1) as f64 / bands as f64);
        let colour = ViridisRGB::get_color_normalized(low, 0.0, longest);
        Rectangle::new([(0.0, low), (1.0, high)], colour.filled())
    });
    chart.draw_series(rectangles).map_err(VizError::draw)?;
    Ok(())
}

/// Paths of the first `particles` particles of a recorded trajectory: thin
/// lines from a black start dot to a red end dot.
pub fn trajectories(path: &[(f64, Array2<f32>)], particles: usize, title: &str) -> Result<RgbImage> {
    trajectories_within(path, particles, title, PLOT_RANGE)
}

/// [`trajectories`] over [−range, range]² (data sets larger than the post's spiral).
pub fn trajectories_within(
    path: &[(f64, Array2<f32>)],
    particles: usize,
    title: &str,
    range: f64,
) -> Result<RgbImage> {
    let (Some((_, first)), Some((_, last))) = (path.first(), path.last()) else {
        return Err(VizError::Empty("a trajectory needs recorded states"));
    };
    check_2d(first)?;
    let count = particles.min(first.nrows());
    let (width, height) = square_canvas_size();
    canvas(width, height, |root| {
        root.fill(&WHITE).map_err(VizError::draw)?;
        let mut chart = square_chart_within(root, title, range)?;
        let line = ShapeStyle::from(&RGBColor(70, 110, 200).mix(0.5)).stroke_width(1);
        for i in 0..count {
            let points: Vec<(f64, f64)> =
                path.iter().map(|(_, x)| (f64::from(x[[i, 0]]), f64::from(x[[i, 1]]))).collect();
            chart.draw_series(std::iter::once(PathElement::new(points, line))).map_err(VizError::draw)?;
        }
        let dots = |states: &Array2<f32>, colour: RGBColor| {
            (0..count)
                .map(|i| (f64::from(states[[i, 0]]), f64::from(states[[i, 1]])))
                .filter(|&(x, y)| within(x, y, range))
                .map(move |p| Circle::new(p, 2, colour.filled()))
                .collect::<Vec<_>>()
        };
        chart.draw_series(dots(first, BLACK)).map_err(VizError::draw)?;
        chart.draw_series(dots(last, RED)).map_err(VizError::draw)?;
        Ok(())
    })
}

/// The data behind a scatter plot as text: point counts on a `cells × cells`
/// grid over [−π, π]², shaded ` .:-=+*#%@` relative to the fullest cell, top
/// row first. Stable where PNG bytes are not, so tests snapshot this.
pub fn density_grid(points: &Array2<f32>, cells: usize) -> Result<String> {
    check_2d(points)?;
    let mut counts = vec![0usize; cells * cells];
    for p in points.rows() {
        let (x, y) = (f64::from(p[0]), f64::from(p[1]));
        if !inside(x, y) {
            continue;
        }
        let cell = |v: f64| (((v + PLOT_RANGE) / (2.0 * PLOT_RANGE) * cells as f64) as usize).min(cells - 1);
        counts[(cells - 1 - cell(y)) * cells + cell(x)] += 1;
    }
    let shades: Vec<char> = " .:-=+*#%@".chars().collect();
    let fullest = counts.iter().copied().max().unwrap_or(0).max(1);
    let rows: Vec<String> = counts
        .chunks(cells)
        .map(|row| {
            row.iter()
                .map(|&c| if c == 0 { ' ' } else { shades[1 + (c * (shades.len() - 2)) / fullest] })
                .collect()
        })
        .collect();
    Ok(rows.join("\n"))
}

/// Centres of a `cells × cells` grid over the plot's square, row by row from the bottom:
/// where [`density_map`] expects its log-densities.
pub fn density_cells(cells: usize) -> Array2<f32> {
    let side = 2.0 * PLOT_RANGE / cells as f64;
    Array2::from_shape_fn((cells * cells, 2), |(i, j)| {
        let index = if j == 0 { i % cells } else { i / cells };
        (-PLOT_RANGE + (index as f64 + 0.5) * side) as f32
    })
}

/// Log-densities of the [`density_cells`] grid as a heat map (viridis), on a
/// log scale: the colour spans the `decades` natural-log units below the
/// highest value, and anything lower is drawn in the darkest colour.
pub fn density_map(log_density: &[f64], cells: usize, decades: f64, title: &str) -> Result<RgbImage> {
    if cells == 0 || log_density.len() != cells * cells {
        return Err(VizError::Empty("a density map needs one value per grid cell"));
    }
    let top = log_density.iter().copied().filter(|v| v.is_finite()).fold(f64::NEG_INFINITY, f64::max);
    if !top.is_finite() {
        return Err(VizError::Empty("no finite log-density"));
    }
    let side = 2.0 * PLOT_RANGE / cells as f64;
    let (width, height) = square_canvas_size();
    canvas(width, height, |root| {
        root.fill(&WHITE).map_err(VizError::draw)?;
        let mut chart = square_chart(root, title)?;
        let squares = log_density.iter().enumerate().map(|(i, &value)| {
            let (x, y) = (-PLOT_RANGE + (i % cells) as f64 * side, -PLOT_RANGE + (i / cells) as f64 * side);
            let level = if value.is_finite() { ((value - top) / decades + 1.0).clamp(0.0, 1.0) } else { 0.0 };
            Rectangle::new([(x, y), (x + side, y + side)], ViridisRGB::get_color(level).filled())
        });
        chart.draw_series(squares).map_err(VizError::draw)?;
        Ok(())
    })
}
