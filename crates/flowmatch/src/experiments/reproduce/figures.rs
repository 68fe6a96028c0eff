//! The figures of `reproduce`, one entry each in [`FIGURES`]: adding a figure is adding an entry.

use std::cell::OnceCell;

use flow_model::{Integrator, PointsSolution};
use flow_ode::{Record, Solver, TimeGrid, warp_time};
use flow_viz::RgbImage;
use ndarray::Array2;

use crate::error::Result;

/// Frames of the time-warp animation: s from 0 to 1.5.
pub const WARP_FRAMES: usize = 31;
/// Frame delay of every animation, in hundredths of a second.
pub const FRAME_DELAY_CS: u16 = 5;
/// Paths drawn in the trajectories figure.
const DRAWN_PATHS: usize = 300;

/// What the figures are drawn from: the post's data, the trained models and
/// what was measured of them. Paths and frames shared by several figures are
/// computed once, on first use.
pub struct Reproduction {
    /// The post's 1 000 (or `--quick`'s fewer) Gaussian sources and spiral targets, paired by index.
    pub source: Array2<f32>,
    pub target: Array2<f32>,
    /// A network at its initial weights (the post's figure of an untrained flow).
    pub untrained: Integrator,
    pub flow: Integrator,
    pub flow_losses: Vec<f32>,
    /// The same network, ready for the stochastic samplers.
    pub stochastic: Integrator,
    /// The reflow the figures show: pooled pairs.
    pub reflow: Integrator,
    pub reflow_losses: Vec<f32>,
    /// The quality-against-cost curves and their noise floor.
    pub sweep: Vec<flow_viz::QualitySeries>,
    pub sweep_floor: f64,
    /// log p₁ on the density grid (flow-viz's `density_cells`), flow matching and reflow.
    pub densities: (Vec<f64>, Vec<f64>),
    flow_path: OnceCell<PointsSolution>,
    reflow_path: OnceCell<PointsSolution>,
    flow_frames: OnceCell<Vec<RgbImage>>,
    reflow_frames: OnceCell<Vec<RgbImage>>,
}

/// A drawn figure: a still or an animation.
pub enum Picture {
    Png(RgbImage),
    Gif(Vec<RgbImage>),
}

/// One file `reproduce` writes, and how it is drawn.
pub struct Figure {
    pub file: &'static str,
    pub draw: fn(&Reproduction) -> Result<Picture>,
}

/// Every figure, in the order they are drawn and listed in the report.
pub const FIGURES: [Figure; 15] = [
    Figure { file: "01_source_target.png", draw: source_target },
    Figure { file: "02_initial_velocities.png", draw: initial_velocities },
    Figure {
        file: "03_loss_flow_matching.png",
        draw: |r| png(flow_viz::loss_curve(&r.flow_losses, "flow matching loss")?),
    },
    Figure { file: "04_untrained_euler100.png", draw: untrained },
    Figure {
        file: "05_flow_matching_euler100.png",
        draw: |r| png(flow_viz::scatter(&r.flow_path()?.points, "flow matching, Euler × 100")?),
    },
    Figure { file: "06_flow_matching.gif", draw: |r| Ok(Picture::Gif(r.flow_frames()?.clone())) },
    Figure { file: "07_time_warp.gif", draw: |_| Ok(Picture::Gif(warp_frames()?)) },
    Figure { file: "08_flow_matching_rk4_20.png", draw: flow_rk4 },
    Figure {
        file: "09_loss_reflow.png",
        draw: |r| png(flow_viz::loss_curve(&r.reflow_losses, "reflow loss")?),
    },
    Figure { file: "10_reflow.gif", draw: |r| Ok(Picture::Gif(r.reflow_frames()?.clone())) },
    Figure { file: "11_combined.gif", draw: combined },
    Figure { file: "12_trajectories.png", draw: trajectories },
    Figure {
        file: "13_quality_vs_steps.png",
        draw: |r| png(flow_viz::quality_chart(&r.sweep, r.sweep_floor, "sample quality against cost")?),
    },
    Figure { file: "14_density.png", draw: density },
    Figure { file: "15_ode_sde_paths.png", draw: ode_and_sde_paths },
];

impl Reproduction {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        (source, target): (Array2<f32>, Array2<f32>),
        untrained: Integrator,
        (flow, flow_losses): (Integrator, Vec<f32>),
        stochastic: Integrator,
        (reflow, reflow_losses): (Integrator, Vec<f32>),
        (sweep, sweep_floor): (Vec<flow_viz::QualitySeries>, f64),
        densities: (Vec<f64>, Vec<f64>),
    ) -> Reproduction {
        Reproduction {
            source,
            target,
            untrained,
            flow,
            flow_losses,
            stochastic,
            reflow,
            reflow_losses,
            sweep,
            sweep_floor,
            densities,
            flow_path: OnceCell::new(),
            reflow_path: OnceCell::new(),
            flow_frames: OnceCell::new(),
            reflow_frames: OnceCell::new(),
        }
    }

    fn flow_path(&self) -> Result<&PointsSolution> {
        once(&self.flow_path, || euler(&self.flow, &self.source, 100, Record::Every(1)))
    }

    fn reflow_path(&self) -> Result<&PointsSolution> {
        once(&self.reflow_path, || euler(&self.reflow, &self.source, 100, Record::Every(1)))
    }

    fn flow_frames(&self) -> Result<&Vec<RgbImage>> {
        once(&self.flow_frames, || {
            crate::commands::animation_frames(&self.flow_path()?.trajectory, "flow matching")
        })
    }

    fn reflow_frames(&self) -> Result<&Vec<RgbImage>> {
        once(&self.reflow_frames, || {
            crate::commands::animation_frames(&self.reflow_path()?.trajectory, "reflow")
        })
    }
}

/// The cell's value, computed by `make` the first time.
fn once<T>(cell: &OnceCell<T>, make: impl FnOnce() -> Result<T>) -> Result<&T> {
    if let Some(value) = cell.get() {
        return Ok(value);
    }
    let value = make()?;
    Ok(cell.get_or_init(|| value))
}

fn png(image: RgbImage) -> Result<Picture> {
    Ok(Picture::Png(image))
}

fn euler(model: &Integrator, start: &Array2<f32>, steps: usize, record: Record) -> Result<PointsSolution> {
    Ok(model.integrate(start, &TimeGrid::uniform(steps)?, Solver::Euler, record)?)
}

fn source_target(r: &Reproduction) -> Result<Picture> {
    let pair = [
        &flow_viz::scatter(&r.source, "source: Gaussian")?,
        &flow_viz::scatter(&r.target, "target: spiral")?,
    ];
    png(flow_viz::side_by_side(&pair))
}

fn initial_velocities(r: &Reproduction) -> Result<Picture> {
    let velocities = &r.target - &r.source;
    png(flow_viz::vector_field(&r.source, &velocities, "x1 − x0")?)
}

fn untrained(r: &Reproduction) -> Result<Picture> {
    let end = euler(&r.untrained, &r.source, 100, Record::Nothing)?.points;
    png(flow_viz::scatter(&end, "untrained, Euler × 100")?)
}

fn flow_rk4(r: &Reproduction) -> Result<Picture> {
    let rk4 = r.flow.integrate(&r.source, &TimeGrid::uniform(20)?, Solver::Rk4, Record::Nothing)?;
    png(flow_viz::scatter(&rk4.points, "flow matching, RK4 × 20")?)
}

fn combined(r: &Reproduction) -> Result<Picture> {
    let frames =
        r.flow_frames()?.iter().zip(r.reflow_frames()?).map(|(a, b)| flow_viz::side_by_side(&[a, b]));
    Ok(Picture::Gif(frames.collect()))
}

fn trajectories(r: &Reproduction) -> Result<Picture> {
    let sides = [
        &flow_viz::trajectories(&r.flow_path()?.trajectory, DRAWN_PATHS, "flow matching paths")?,
        &flow_viz::trajectories(&r.reflow_path()?.trajectory, DRAWN_PATHS, "reflow paths")?,
    ];
    png(flow_viz::side_by_side(&sides))
}

/// The flow-matching model's paths by its ODE (Euler × 100) and its SDE (Euler–Maruyama × 100
/// at the default noise): the same marginals, jittered paths that end on the spiral.
fn ode_and_sde_paths(r: &Reproduction) -> Result<Picture> {
    let solver =
        Solver::new(flow_ode::SolverKind::EulerMaruyama, Solver::DEFAULT_RTOL, Solver::DEFAULT_ATOL)?;
    let sde = r.stochastic.integrate(&r.source, &TimeGrid::uniform(100)?, solver, Record::Every(1))?;
    let title = format!("SDE paths (Euler–Maruyama, noise {})", solver.noise().unwrap_or_default());
    let sides = [
        &flow_viz::trajectories(&r.flow_path()?.trajectory, DRAWN_PATHS, "ODE paths (Euler)")?,
        &flow_viz::trajectories(&sde.trajectory, DRAWN_PATHS, &title)?,
    ];
    png(flow_viz::side_by_side(&sides))
}

/// How many natural-log units below its peak the density maps' colours reach.
const DENSITY_RANGE: f64 = 10.0;

fn density(r: &Reproduction) -> Result<Picture> {
    let cells = super::DENSITY_CELLS;
    let sides = [
        &flow_viz::density_map(&r.densities.0, cells, DENSITY_RANGE, "flow matching: log density")?,
        &flow_viz::density_map(&r.densities.1, cells, DENSITY_RANGE, "reflow: log density")?,
    ];
    png(flow_viz::side_by_side(&sides))
}

/// warp(t, s) on 101 points of [0, 1].
pub fn warp_curve(s: f64) -> Vec<(f64, f64)> {
    (0..=100).map(|i| i as f64 / 100.0).map(|t| (t, warp_time(t, s))).collect()
}

fn warp_frames() -> Result<Vec<RgbImage>> {
    (0..WARP_FRAMES)
        .map(|i| 1.5 * i as f64 / (WARP_FRAMES - 1) as f64)
        .map(|s| Ok(flow_viz::warp_frame(&warp_curve(s), s)?))
        .collect()
}
